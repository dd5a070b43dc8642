//! Markdown and HTML renderings of a [`Report`]. Both print the same
//! [`Report::rows`]; the HTML page is one self-contained file (inline CSS
//! and SVG, no script, no external font or image).

use std::fmt::Write as _;

use super::{human_size, BinaryRow, ComponentDiff, ImageColumn, Report, Role};
use crate::analyze::Relro;

fn title(r: &Report) -> String {
    let mut s = r.image.clone();
    if let Some(v) = &r.version {
        s.push(' ');
        s.push_str(v);
    }
    let upstream = r.columns.iter().any(|c| c.role == Role::Upstream);
    s.push_str(": hardened vs locked");
    if upstream {
        s.push_str(" vs upstream");
    }
    s
}

fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
}

fn md_row(out: &mut String, cells: &[String]) {
    out.push('|');
    for c in cells {
        let _ = write!(out, " {} |", md_cell(c));
    }
    out.push('\n');
}

fn md_table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    md_row(out, header);
    out.push('|');
    for _ in header {
        out.push_str("---|");
    }
    out.push('\n');
    for r in rows {
        md_row(out, r);
    }
    out.push('\n');
}

fn header(r: &Report, first: &str) -> Vec<String> {
    std::iter::once(first.to_string())
        .chain(r.columns.iter().map(|c| c.role.title().to_string()))
        .collect()
}

/// The comparison table's rows: the label, then one value per column.
fn comparison_rows(r: &Report) -> Vec<Vec<String>> {
    r.rows
        .iter()
        .map(|row| {
            std::iter::once(row.label.clone())
                .chain(row.values.iter().cloned())
                .collect()
        })
        .collect()
}

/// A component difference as the three lists both renderers print.
fn diff_lists(d: &ComponentDiff) -> [(&'static str, Vec<String>); 3] {
    let changed = d
        .changed
        .iter()
        .map(|c| {
            format!(
                "{} {} → {}",
                c.name,
                c.from.as_deref().unwrap_or("?"),
                c.to.as_deref().unwrap_or("?")
            )
        })
        .collect();
    [
        ("added", d.added.clone()),
        ("removed", d.removed.clone()),
        ("changed", changed),
    ]
}

fn joined_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

fn diff_title(d: &ComponentDiff) -> String {
    format!("{} → {}", d.from.title(), d.to.title())
}

fn relro(r: Relro) -> &'static str {
    match r {
        Relro::Full => "full",
        Relro::Partial => "partial",
        Relro::None => "none",
    }
}

fn yn(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn binary_cells(b: &BinaryRow) -> Vec<String> {
    vec![
        b.path.clone(),
        relro(b.relro).into(),
        yn(b.canary),
        yn(b.nx),
        b.pie.clone(),
        b.fortify.clone(),
        yn(b.cfi),
        yn(b.safestack),
        b.cet.clone(),
    ]
}

const BINARY_HEADER: [&str; 9] = [
    "Path",
    "RELRO",
    "Canary",
    "NX",
    "PIE",
    "FORTIFY",
    "CFI",
    "SafeStack",
    "CET",
];

/// Labels of every column, one row per key.
fn label_rows(r: &Report) -> Vec<Vec<String>> {
    let mut keys: Vec<&String> = r.columns.iter().flat_map(|c| c.labels.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            std::iter::once(k.clone())
                .chain(
                    r.columns
                        .iter()
                        .map(|c| c.labels.get(k).cloned().unwrap_or_else(|| "—".into())),
                )
                .collect()
        })
        .collect()
}

fn size_rows(r: &Report) -> Vec<Vec<String>> {
    let row = |label: &str, f: &dyn Fn(&ImageColumn) -> String| -> Vec<String> {
        std::iter::once(label.to_string())
            .chain(r.columns.iter().map(f))
            .collect()
    };
    vec![
        row("Uncompressed (bytes)", &|c| c.uncompressed_size.to_string()),
        row("Compressed (bytes)", &|c| c.compressed_size.to_string()),
        row("Layers", &|c| c.layer_count.to_string()),
        row("Components", &|c| c.components.len().to_string()),
        row("Component source", &|c| c.component_source.clone()),
        row("Manifest", &|c| c.manifest_digest.clone()),
    ]
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", title(r));
    let _ = writeln!(
        s,
        "Measured from the images themselves by `armorred report` {}.\n",
        env!("CARGO_PKG_VERSION")
    );
    let rows = comparison_rows(r);
    md_table(&mut s, &header(r, "Property"), &rows);

    let _ = writeln!(s, "## Sizes\n");
    md_table(&mut s, &header(r, "Measure"), &size_rows(r));

    let _ = writeln!(s, "## Components\n");
    for d in &r.component_diffs {
        let _ = writeln!(s, "### {}\n", diff_title(d));
        for (what, v) in diff_lists(d) {
            let _ = writeln!(s, "- {what} ({}): {}", v.len(), joined_or_none(&v));
        }
        s.push('\n');
    }
    for c in &r.columns {
        let _ = writeln!(
            s,
            "### {} components ({}, from {})\n",
            c.role.title(),
            c.components.len(),
            c.component_source
        );
        for comp in &c.components {
            let _ = writeln!(s, "- {}", comp.display());
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## Binary hardening\n");
    for c in &r.columns {
        let _ = writeln!(
            s,
            "### {} ({} ELF files)\n",
            c.role.title(),
            c.binaries.len()
        );
        let h: Vec<String> = BINARY_HEADER.iter().map(|x| x.to_string()).collect();
        let rows: Vec<Vec<String>> = c.binaries.iter().map(binary_cells).collect();
        md_table(&mut s, &h, &rows);
    }

    let _ = writeln!(s, "## Labels\n");
    md_table(&mut s, &header(r, "Label"), &label_rows(r));

    let _ = writeln!(s, "## Sources\n");
    for c in &r.columns {
        let _ = writeln!(
            s,
            "- {}: `{}`{}",
            c.role.title(),
            c.source,
            c.reference
                .as_ref()
                .map(|x| format!(" (ref `{x}`)"))
                .unwrap_or_default()
        );
        for n in &c.notes {
            let _ = writeln!(s, "  - note: {n}");
        }
    }
    s
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn color(role: Role) -> (&'static str, &'static str) {
    // (solid, light) per image, the same in every chart.
    match role {
        Role::Upstream => ("#8d6e63", "#d7ccc8"),
        Role::Hardened => ("#1565c0", "#90caf9"),
        Role::Locked => ("#2e7d32", "#a5d6a7"),
    }
}

struct Bar {
    label: String,
    value: u64,
    text: String,
    fill: &'static str,
}

/// A horizontal bar chart as inline SVG.
fn bar_chart(title: &str, bars: &[Bar]) -> String {
    const W: f64 = 820.0;
    const LABEL_W: f64 = 210.0;
    const BAR_MAX: f64 = 360.0;
    const ROW_H: f64 = 30.0;
    let h = 40.0 + ROW_H * bars.len() as f64 + 10.0;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title><rect x="0" y="0" width="{W}" height="{h}" fill="#fafafa"/><text x="10" y="24" font-size="16" font-weight="bold" fill="#212121">{t}</text>"##,
        t = esc(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = 40.0 + ROW_H * i as f64;
        let w = (b.value as f64 / max * BAR_MAX).max(1.0);
        let _ = write!(
            s,
            r##"<text x="{lx}" y="{ty:.1}" font-size="13" text-anchor="end" fill="#424242">{label}</text><rect x="{LABEL_W}" y="{y:.1}" width="{w:.1}" height="{bh:.1}" fill="{fill}"><title>{label}: {text}</title></rect><text x="{vx:.1}" y="{ty:.1}" font-size="13" fill="#212121">{text}</text>"##,
            lx = LABEL_W - 8.0,
            ty = y + 15.0,
            bh = ROW_H - 8.0,
            label = esc(&b.label),
            fill = b.fill,
            text = esc(&b.text),
            vx = LABEL_W + w + 6.0,
        );
    }
    s.push_str("</svg>");
    s
}

fn html_table(out: &mut String, class: &str, header: &[String], rows: &[Vec<String>]) {
    let _ = write!(out, "<table class=\"{class}\"><thead><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>\n");
    for r in rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let cls = match c.as_str() {
                "yes" | "full" | "Enabled" | "Absent" | "Excluded" => " class=\"good\"",
                "no" | "none" | "Disabled" | "Present" => " class=\"bad\"",
                "partial" => " class=\"meh\"",
                _ if c.starts_with("Partial") => " class=\"meh\"",
                _ => "",
            };
            let cls = if i == 0 { "" } else { cls };
            let tag = if i == 0 { "th" } else { "td" };
            let _ = write!(out, "<{tag}{cls}>{}</{tag}>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#212121;background:#fff}\
h1{font-size:24px}h2{margin-top:32px;border-bottom:2px solid #e0e0e0}\
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #bdbdbd;padding:4px 10px;text-align:left;font-size:14px}\
thead th{background:#37474f;color:#fff}tbody th{background:#eceff1;font-weight:600}\
td.good{background:#c8e6c9}td.bad{background:#ffcdd2}td.meh{background:#fff9c4}\
table.checksec td,table.checksec th{font-size:12px;font-family:ui-monospace,monospace}table.sizes td,table.labels td{word-break:break-all}\
.charts{display:flex;flex-wrap:wrap;gap:16px}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}\
details{margin:6px 0}code{background:#f5f5f5;padding:1px 4px}";

pub fn html(r: &Report) -> String {
    let mut s = String::new();
    let t = title(r);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{CSS}</style></head><body>\n",
        esc(&t)
    );
    let _ = writeln!(s, "<h1>{}</h1>", esc(&t));
    let _ = writeln!(
        s,
        "<p>Measured from the images themselves by <code>armorred report</code> {}.</p>",
        env!("CARGO_PKG_VERSION")
    );
    s.push_str("<p class=\"legend\">");
    for c in &r.columns {
        let (solid, _) = color(c.role);
        let _ = write!(
            s,
            "<span style=\"background:{solid}\"></span>{}",
            c.role.title()
        );
    }
    s.push_str("</p>\n<div class=\"charts\">\n");
    let mut size_bars = Vec::new();
    for c in &r.columns {
        let (solid, light) = color(c.role);
        size_bars.push(Bar {
            label: format!("{} uncompressed", c.role.title()),
            value: c.uncompressed_size,
            text: format!(
                "{} ({} bytes)",
                human_size(c.uncompressed_size),
                c.uncompressed_size
            ),
            fill: solid,
        });
        size_bars.push(Bar {
            label: format!("{} compressed", c.role.title()),
            value: c.compressed_size,
            text: format!(
                "{} ({} bytes)",
                human_size(c.compressed_size),
                c.compressed_size
            ),
            fill: light,
        });
    }
    s.push_str(&bar_chart("Image size", &size_bars));
    s.push('\n');
    let comp_bars: Vec<Bar> = r
        .columns
        .iter()
        .map(|c| Bar {
            label: c.role.title().to_string(),
            value: c.components.len() as u64,
            text: format!("{} packages", c.components.len()),
            fill: color(c.role).0,
        })
        .collect();
    s.push_str(&bar_chart("Components", &comp_bars));
    s.push_str("\n</div>\n<h2>Comparison</h2>\n");
    let rows = comparison_rows(r);
    html_table(&mut s, "compare", &header(r, "Property"), &rows);
    s.push_str("<h2>Sizes</h2>\n");
    html_table(&mut s, "sizes", &header(r, "Measure"), &size_rows(r));

    s.push_str("<h2>Components</h2>\n");
    for d in &r.component_diffs {
        let _ = writeln!(s, "<h3>{}</h3><ul>", esc(&diff_title(d)));
        for (what, v) in diff_lists(d) {
            let _ = write!(
                s,
                "<li>{what} ({}): {}</li>",
                v.len(),
                esc(&joined_or_none(&v))
            );
        }
        s.push_str("</ul>\n");
    }
    for c in &r.columns {
        let _ = write!(
            s,
            "<details><summary>{} components: {} (from {})</summary><ul>",
            c.role.title(),
            c.components.len(),
            esc(&c.component_source)
        );
        for comp in &c.components {
            let _ = write!(s, "<li>{}</li>", esc(&comp.display()));
        }
        s.push_str("</ul></details>\n");
    }

    s.push_str("<h2>Binary hardening</h2>\n");
    for c in &r.columns {
        let _ = writeln!(
            s,
            "<h3>{} ({} ELF files)</h3>",
            c.role.title(),
            c.binaries.len()
        );
        let h: Vec<String> = BINARY_HEADER.iter().map(|x| x.to_string()).collect();
        let rows: Vec<Vec<String>> = c.binaries.iter().map(binary_cells).collect();
        html_table(&mut s, "checksec", &h, &rows);
    }
    s.push_str("<h2>Labels</h2>\n");
    html_table(&mut s, "labels", &header(r, "Label"), &label_rows(r));
    s.push_str("<h2>Sources</h2>\n<ul>");
    for c in &r.columns {
        let _ = write!(
            s,
            "<li>{}: <code>{}</code>{}",
            c.role.title(),
            esc(&c.source),
            c.reference
                .as_ref()
                .map(|x| format!(" (ref <code>{}</code>)", esc(x)))
                .unwrap_or_default()
        );
        for n in &c.notes {
            let _ = write!(s, "<br>note: {}", esc(n));
        }
        s.push_str("</li>");
    }
    s.push_str("</ul>\n</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::tests::column;
    use super::super::*;

    fn report() -> Report {
        assemble(
            "nginx",
            vec![
                column(Role::Hardened, 13_765_632, &["nginx-1.22.1"], &[]),
                column(
                    Role::Locked,
                    14_983_168,
                    &["nginx-1.22.1", "busybox-1.35.0"],
                    &["mail"],
                ),
            ],
        )
    }

    #[test]
    fn markdown_holds_the_rows() {
        let md = markdown(&report());
        assert!(md.contains("| Property | Hardened | Locked |"), "{md}");
        assert!(md.contains("| Image size | 13.8 MB | 15 MB |"), "{md}");
        assert!(md.contains("| Clang CFI | Disabled | Enabled |"), "{md}");
        assert!(md.contains("| mail module | Included | Excluded |"), "{md}");
        assert!(
            md.contains("| Uncompressed (bytes) | 13765632 | 14983168 |"),
            "{md}"
        );
        assert!(md.contains("- added (1): busybox 1.35.0"), "{md}");
    }

    #[test]
    fn html_is_self_contained_and_escaped() {
        let mut r = report();
        r.columns[0]
            .labels
            .insert("x".into(), "<script>alert(1)</script>".into());
        let h = html(&r);
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(!h.contains("<script"), "unescaped markup");
        assert!(!h.contains("src="), "external asset");
        assert!(
            !h.contains("href=") && !h.contains("url("),
            "external asset"
        );
        assert!(h.contains("&lt;script&gt;"));
        assert_eq!(h.matches("<svg").count(), 2);
        assert!(h.contains("13765632 bytes") && h.contains("14983168 bytes"));
        // Deterministic.
        assert_eq!(h, html(&r));
    }
}

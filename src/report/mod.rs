//! `armorred report`: the hardened and locked images of one recipe, and
//! optionally their upstream image, side by side — sizes, layers,
//! components and their differences, shell, coreutils, user, per-binary
//! hardening, dropped features, CFI/SafeStack and labels.
//!
//! Contract: [`collect`] reads images (never a recipe or a plan) and
//! returns a [`Report`] in which every figure was measured from the image
//! itself: sizes and layers from its manifest and blobs, hardening from
//! [`crate::analysis`], components from the attached SBOM (checked against
//! the store paths in the rootfs) or, for distribution images, their
//! package database ([`pkgdb`]). [`Report::rows`] is the comparison table
//! every format renders, so Markdown, HTML and JSON cannot disagree.

mod pkgdb;
mod render;
pub mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::analyze::{ElfReport, ElfType, ImageAnalysis, Relro};
use crate::attach::{read_sbom, SbomFormat};
use crate::layout_analysis::analyze_layout;
use crate::oci::layout::Layout;
use crate::store_path::{without_hash, StorePath};
use crate::tier::Tier;

pub use pkgdb::{parse_apk_installed, parse_dpkg_status, Component, ComponentKind, OsRelease};
pub use render::{html, markdown};
pub use source::{ImageSource, OpenedImage};

/// `report --format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Markdown: the comparison table, then the details.
    #[default]
    Md,
    /// One self-contained HTML page with inline SVG charts.
    Html,
    /// The measured data and the table rows.
    Json,
}

/// Which image a column shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Upstream,
    Hardened,
    Locked,
}

impl Role {
    pub fn title(self) -> &'static str {
        match self {
            Role::Upstream => "Upstream",
            Role::Hardened => "Hardened",
            Role::Locked => "Locked",
        }
    }
}

impl From<Tier> for Role {
    fn from(t: Tier) -> Role {
        match t {
            Tier::Hardened => Role::Hardened,
            Tier::Locked => Role::Locked,
        }
    }
}

/// Whether the image's own binaries carry a protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Coverage {
    Enabled,
    Partial {
        holds: usize,
        of: usize,
    },
    Disabled,
    /// No executable to judge.
    Unknown,
}

impl Coverage {
    fn of(bins: &[&ElfReport], has: impl Fn(&ElfReport) -> bool) -> Coverage {
        let holds = bins.iter().filter(|b| has(b)).count();
        match (holds, bins.len()) {
            (_, 0) => Coverage::Unknown,
            (0, _) => Coverage::Disabled,
            (h, n) if h == n => Coverage::Enabled,
            (h, n) => Coverage::Partial { holds: h, of: n },
        }
    }

    pub fn label(self) -> String {
        match self {
            Coverage::Enabled => "Enabled".into(),
            Coverage::Partial { holds, of } => format!("Partial ({holds}/{of})"),
            Coverage::Disabled => "Disabled".into(),
            Coverage::Unknown => "n/a".into(),
        }
    }
}

/// One row of the checksec-style table.
#[derive(Debug, Clone, Serialize)]
pub struct BinaryRow {
    pub path: String,
    pub elf_type: ElfType,
    pub relro: Relro,
    pub canary: bool,
    pub nx: bool,
    /// `yes`, `no`, or `dso` for shared libraries.
    pub pie: String,
    /// `fortified/fortifiable`, as checksec counts.
    pub fortify: String,
    pub cfi: bool,
    pub safestack: bool,
    pub cet: String,
}

impl From<&ElfReport> for BinaryRow {
    fn from(b: &ElfReport) -> BinaryRow {
        BinaryRow {
            path: b.path.clone(),
            elf_type: b.elf_type,
            relro: b.relro,
            canary: b.canary,
            nx: b.nx,
            pie: if b.elf_type == ElfType::SharedLibrary {
                "dso".into()
            } else {
                yes_no(b.pie).into()
            },
            fortify: format!(
                "{}/{}",
                b.fortify.fortified_count,
                b.fortify.fortified_count + b.fortify.fortifiable_count
            ),
            cfi: b.cfi.enabled,
            safestack: b.safestack,
            cet: match (b.cet.ibt, b.cet.shstk) {
                (true, true) => "ibt+shstk",
                (true, false) => "ibt",
                (false, true) => "shstk",
                (false, false) => "no",
            }
            .into(),
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Everything measured about one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageColumn {
    pub role: Role,
    /// How the image was named (layout path, archive, reference).
    pub source: String,
    pub reference: Option<String>,
    pub manifest_digest: String,
    /// Layer blobs plus the config, as stored.
    pub compressed_size: u64,
    /// The layers' uncompressed tar streams.
    pub uncompressed_size: u64,
    pub layer_count: usize,
    pub base_image: String,
    pub os: Option<String>,
    pub components: Vec<Component>,
    /// Where `components` came from.
    pub component_source: String,
    /// Distinct Nix store paths in the rootfs (`analyze`'s `component_count`).
    pub store_paths: usize,
    pub shell: bool,
    pub coreutils: bool,
    pub user: Option<String>,
    pub runs_as_root: bool,
    /// Over the image's own executables: the package's, else all.
    pub cfi: Coverage,
    pub safestack: Coverage,
    pub dropped_features: Vec<String>,
    pub binaries: Vec<BinaryRow>,
    pub labels: BTreeMap<String, String>,
    /// Disagreements found while measuring (SBOM vs rootfs, say).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionChange {
    pub name: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Components of `to` that `from` lacks and the other way round.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentDiff {
    pub from: Role,
    pub to: Role,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same name, another version.
    pub changed: Vec<VersionChange>,
}

/// One line of the comparison table: a label and one value per column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub label: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub image: String,
    pub version: Option<String>,
    /// Upstream (when given), hardened, locked.
    pub columns: Vec<ImageColumn>,
    pub component_diffs: Vec<ComponentDiff>,
    pub rows: Vec<Row>,
}

/// Measures one image.
pub fn describe(img: &OpenedImage, role: Role) -> Result<ImageColumn> {
    let dir = &img.dir;
    let reference = img.reference.as_deref();
    let analysis =
        analyze_layout(dir, reference).with_context(|| format!("analyzing {}", img.source))?;
    let layout = Layout::open(dir)?;
    let loaded = layout.load_image(reference)?;
    let distro = pkgdb::read_distro_files(layout.blobs(), &loaded.manifest.layers)
        .with_context(|| format!("reading the package databases of {}", img.source))?;
    let labels = analysis.labels.clone();
    let mut notes = Vec::new();

    let store_components: Vec<Component> = analysis
        .components
        .iter()
        .filter_map(|p| StorePath::parse(p).ok())
        .map(|p| {
            let (name, version) = p.pname_version();
            Component {
                name: name.to_string(),
                version: version.map(str::to_string),
                arch: None,
                kind: ComponentKind::Nix,
                debian_version: None,
                security_fixes: None,
            }
        })
        .collect();
    let sbom = sbom_components(dir, reference);
    let mut sources = Vec::new();
    let mut components: Vec<Component> = match sbom {
        Some(c) => {
            sources.push("attached CycloneDX SBOM");
            if c.len() != analysis.component_count {
                notes.push(format!(
                    "the SBOM lists {} components, the rootfs holds {} store paths",
                    c.len(),
                    analysis.component_count
                ));
            }
            c
        }
        None if !store_components.is_empty() => {
            sources.push("Nix store paths");
            store_components
        }
        None => Vec::new(),
    };
    let packages = distro.packages();
    if !packages.is_empty() || !distro.sources().is_empty() {
        sources.extend(distro.sources());
        components.extend(packages);
    }
    components.sort();
    let os_release = distro.os_release();
    // buildah writes an empty base.name for `FROM scratch`; that names nothing.
    let named = |v: Option<&String>| v.filter(|s| !s.trim().is_empty()).cloned();
    let annotations = &loaded.manifest.annotations;
    let base_image = named(labels.get("org.armorred.base"))
        .or_else(|| named(annotations.get("org.opencontainers.image.base.name")))
        .or_else(|| named(labels.get("org.opencontainers.image.base.name")))
        .or_else(|| os_release.as_ref().and_then(OsRelease::base_name))
        .unwrap_or_else(|| "unknown".into());

    let primary = primary_binaries(&analysis);
    Ok(ImageColumn {
        role,
        source: img.source.clone(),
        reference: reference.map(str::to_string),
        manifest_digest: loaded.descriptor.digest.to_string(),
        compressed_size: analysis.compressed_size,
        uncompressed_size: analysis.uncompressed_size,
        layer_count: analysis.layer_count,
        base_image,
        os: os_release.and_then(|o| o.pretty_name),
        component_source: if sources.is_empty() {
            "none found".into()
        } else {
            sources.join(", ")
        },
        components,
        store_paths: analysis.component_count,
        shell: analysis.shell.present,
        coreutils: analysis.coreutils.present,
        user: analysis.user.clone(),
        runs_as_root: analysis.runs_as_root,
        cfi: Coverage::of(&primary, |b| b.cfi.enabled),
        safestack: Coverage::of(&primary, |b| b.safestack),
        dropped_features: labels
            .get("org.armorred.dropped-features")
            .map(|d| {
                d.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        binaries: {
            let mut rows: Vec<BinaryRow> = analysis
                .binaries
                .iter()
                .filter(|b| matches!(b.elf_type, ElfType::Executable | ElfType::SharedLibrary))
                .map(BinaryRow::from)
                .collect();
            // by package name and file, not by store hash: readable, and the
            // same order when a rebuild changes a hash
            rows.sort_by(|a, b| {
                let key = |r: &BinaryRow| (without_hash(&r.path).to_string(), r.path.clone());
                key(a).cmp(&key(b))
            });
            rows
        },
        labels,
        notes,
    })
}

/// The executables CFI and SafeStack are judged on: the package's own
/// (label `org.armorred.nix.package`), else every executable. Libraries
/// without indirect calls carry no CFI trace, so they would only blur it.
fn primary_binaries(a: &ImageAnalysis) -> Vec<&ElfReport> {
    let exes = a
        .binaries
        .iter()
        .filter(|b| b.elf_type == ElfType::Executable);
    if let Some(pkg) = a.labels.get("org.armorred.nix.package") {
        let prefix = format!("{pkg}/");
        let own: Vec<&ElfReport> = exes
            .clone()
            .filter(|b| b.path.starts_with(&prefix))
            .collect();
        if !own.is_empty() {
            return own;
        }
    }
    exes.collect()
}

/// The components of the attached CycloneDX SBOM, if there is one.
fn sbom_components(dir: &Path, reference: Option<&str>) -> Option<Vec<Component>> {
    let bytes = read_sbom(dir, reference, SbomFormat::Cyclonedx).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(
        crate::sbom::cyclonedx_components(&v)?
            .into_iter()
            .map(|c| Component {
                name: c.name,
                version: c.version,
                arch: None,
                kind: ComponentKind::Nix,
                debian_version: c.debian_version,
                security_fixes: c.security_fixes,
            })
            .collect(),
    )
}

fn diff(from: &ImageColumn, to: &ImageColumn) -> ComponentDiff {
    let key = |c: &Component| (c.name.clone(), c.arch.clone());
    let index =
        |col: &ImageColumn| -> BTreeMap<(String, Option<String>), BTreeSet<Option<String>>> {
            let mut m: BTreeMap<_, BTreeSet<_>> = BTreeMap::new();
            for c in &col.components {
                m.entry(key(c)).or_default().insert(c.version.clone());
            }
            m
        };
    let (a, b) = (index(from), index(to));
    let show = |(n, arch): &(String, Option<String>), v: &Option<String>| {
        Component {
            name: n.clone(),
            version: v.clone(),
            arch: arch.clone(),
            kind: ComponentKind::Nix,
            debian_version: None,
            security_fixes: None,
        }
        .display()
    };
    let mut d = ComponentDiff {
        from: from.role,
        to: to.role,
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    };
    for (k, vs) in &b {
        match a.get(k) {
            None => d.added.extend(vs.iter().map(|v| show(k, v))),
            Some(old) if old != vs && old.len() == 1 && vs.len() == 1 => {
                d.changed.push(VersionChange {
                    name: k.0.clone(),
                    from: old.iter().next().cloned().flatten(),
                    to: vs.iter().next().cloned().flatten(),
                })
            }
            Some(old) => {
                d.added.extend(vs.difference(old).map(|v| show(k, v)));
                d.removed.extend(old.difference(vs).map(|v| show(k, v)));
            }
        }
    }
    for (k, vs) in &a {
        if !b.contains_key(k) {
            d.removed.extend(vs.iter().map(|v| show(k, v)));
        }
    }
    d
}

/// podman's sizes: SI units, three significant digits (`121 MB`, `72.3 MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let mut s = significant3(v);
    if s == "1000" && i < UNITS.len() - 1 {
        i += 1;
        s = "1".into();
    }
    format!("{s} {}", UNITS[i])
}

fn significant3(v: f64) -> String {
    let s = if v >= 99.95 {
        format!("{v:.0}")
    } else if v >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn percent_less(ours: u64, upstream: u64) -> Option<f64> {
    (upstream > 0).then(|| 100.0 * (upstream as f64 - ours as f64) / upstream as f64)
}

/// `UID 65534`, `root`, or the name as the config gives it.
pub fn user_label(user: Option<&str>) -> String {
    match user.map(str::trim) {
        None | Some("") => "root (unset)".into(),
        Some(u) => {
            let name = u.split(':').next().unwrap_or(u);
            match name {
                "0" | "root" => "root".into(),
                n if n.chars().all(|c| c.is_ascii_digit()) => format!("UID {u}"),
                _ => u.to_string(),
            }
        }
    }
}

fn present(b: bool) -> String {
    if b { "Present" } else { "Absent" }.into()
}

impl Report {
    /// The comparison table, in the product documents' order.
    pub fn table(columns: &[ImageColumn]) -> Vec<Row> {
        let row = |label: &str, f: &dyn Fn(&ImageColumn) -> String| Row {
            label: label.into(),
            values: columns.iter().map(f).collect(),
        };
        let upstream = columns.iter().find(|c| c.role == Role::Upstream);
        let mut rows = vec![
            row("Image size", &|c| human_size(c.uncompressed_size)),
            row("Compressed size", &|c| human_size(c.compressed_size)),
        ];
        if let Some(u) = upstream {
            rows.push(row("Size reduction", &|c| {
                if c.role == Role::Upstream {
                    return "—".into();
                }
                match percent_less(c.uncompressed_size, u.uncompressed_size) {
                    Some(_) if c.uncompressed_size >= u.uncompressed_size => format!(
                        "none ({} larger)",
                        human_size(c.uncompressed_size - u.uncompressed_size)
                    ),
                    Some(p) => format!(
                        "{p:.1}% ({} saved)",
                        human_size(u.uncompressed_size.saturating_sub(c.uncompressed_size))
                    ),
                    None => "—".into(),
                }
            }));
        }
        rows.push(row("Components", &|c| {
            format!("{} packages", c.components.len())
        }));
        if let Some(u) = upstream {
            rows.push(row("Component reduction", &|c| {
                if c.role == Role::Upstream {
                    return "—".into();
                }
                percent_less(c.components.len() as u64, u.components.len() as u64)
                    .map(|p| {
                        if p > 0.0 {
                            format!("{p:.1}%")
                        } else {
                            "none".into()
                        }
                    })
                    .unwrap_or_else(|| "—".into())
            }));
        }
        rows.push(row("Clang CFI", &|c| c.cfi.label()));
        rows.push(row("SafeStack", &|c| c.safestack.label()));
        // Features any of our images compiled out, in the order first named.
        let mut features: Vec<&str> = Vec::new();
        for c in columns {
            for f in &c.dropped_features {
                if !features.contains(&f.as_str()) {
                    features.push(f);
                }
            }
        }
        for f in features {
            rows.push(row(&format!("{f} module"), &|c| {
                if c.role == Role::Upstream {
                    "—".into()
                } else if c.dropped_features.iter().any(|d| d == f) {
                    "Excluded".into()
                } else {
                    "Included".into()
                }
            }));
        }
        rows.push(row("Shell", &|c| present(c.shell)));
        rows.push(row("Coreutils", &|c| present(c.coreutils)));
        rows.push(row("Layers", &|c| c.layer_count.to_string()));
        rows.push(row("Base image", &|c| c.base_image.clone()));
        rows.push(row("User", &|c| user_label(c.user.as_deref())));
        rows
    }
}

/// Builds the report from measured columns (upstream first, if any).
pub fn assemble(image: &str, columns: Vec<ImageColumn>) -> Report {
    let by = |r: Role| columns.iter().find(|c| c.role == r);
    let mut diffs = Vec::new();
    for (a, b) in [
        (Role::Hardened, Role::Locked),
        (Role::Upstream, Role::Hardened),
        (Role::Upstream, Role::Locked),
    ] {
        if let (Some(x), Some(y)) = (by(a), by(b)) {
            diffs.push(diff(x, y));
        }
    }
    let version = columns
        .iter()
        .find(|c| c.role != Role::Upstream)
        .and_then(|c| c.labels.get("org.opencontainers.image.version").cloned());
    Report {
        image: image.to_string(),
        version,
        rows: Report::table(&columns),
        component_diffs: diffs,
        columns,
    }
}

/// Measures `<out>/<image>-{hardened,locked}` and the upstream, if given.
pub fn collect(image: &str, out_dir: &Path, upstream: Option<&OpenedImage>) -> Result<Report> {
    let mut columns = Vec::new();
    if let Some(u) = upstream {
        columns.push(describe(u, Role::Upstream).context("measuring the upstream image")?);
    }
    for tier in Tier::ALL {
        let dir = crate::tier::layout_dir(out_dir, image, tier);
        let img = OpenedImage::layout(&dir, None);
        columns.push(
            describe(&img, tier.into()).with_context(|| {
                format!("measuring `{image}` tier `{tier}` in {}", dir.display())
            })?,
        );
    }
    Ok(assemble(image, columns))
}

/// Renders in `format`.
pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Md => markdown(report),
        ReportFormat::Html => html(report),
        ReportFormat::Json => {
            let mut s = serde_json::to_string_pretty(report).expect("reports serialize");
            s.push('\n');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn column(role: Role, size: u64, comps: &[&str], dropped: &[&str]) -> ImageColumn {
        ImageColumn {
            role,
            source: format!("{role:?}"),
            reference: None,
            manifest_digest: "sha256:00".into(),
            compressed_size: size / 2,
            uncompressed_size: size,
            layer_count: 3,
            base_image: "scratch".into(),
            os: None,
            components: comps
                .iter()
                .map(|c| {
                    let (n, v) = crate::store_path::parse_drv_name(c);
                    Component {
                        name: n.into(),
                        version: v.map(str::to_string),
                        arch: None,
                        kind: ComponentKind::Nix,
                        debian_version: None,
                        security_fixes: None,
                    }
                })
                .collect(),
            component_source: "test".into(),
            store_paths: comps.len(),
            shell: role == Role::Locked,
            coreutils: false,
            user: Some("65534".into()),
            runs_as_root: false,
            cfi: if role == Role::Locked {
                Coverage::Enabled
            } else {
                Coverage::Disabled
            },
            safestack: Coverage::Enabled,
            dropped_features: dropped.iter().map(|s| s.to_string()).collect(),
            binaries: Vec::new(),
            labels: BTreeMap::from([("org.armorred.tier".into(), format!("{role:?}"))]),
            notes: Vec::new(),
        }
    }

    #[test]
    fn sizes_read_like_podman() {
        assert_eq!(human_size(121_000_000), "121 MB");
        assert_eq!(human_size(72_340_000), "72.3 MB");
        assert_eq!(human_size(5_299_122), "5.3 MB");
        assert_eq!(human_size(13_765_632), "13.8 MB");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(999_999), "1 MB");
        assert_eq!(human_size(0), "0 B");
    }

    #[test]
    fn users() {
        assert_eq!(user_label(Some("65534")), "UID 65534");
        assert_eq!(user_label(Some("0:0")), "root");
        assert_eq!(user_label(None), "root (unset)");
        assert_eq!(user_label(Some("nginx")), "nginx");
    }

    #[test]
    fn table_rows_and_diffs() {
        let up = column(
            Role::Upstream,
            200_000_000,
            &["libc6-2.36", "nginx-1.22.1", "perl-5.36"],
            &[],
        );
        let h = column(
            Role::Hardened,
            100_000_000,
            &["glibc-2.36", "nginx-1.22.1"],
            &[],
        );
        let l = column(
            Role::Locked,
            50_000_000,
            &["glibc-2.36", "nginx-1.22.1", "busybox-1.35.0"],
            &["mail", "stream"],
        );
        let r = assemble("nginx", vec![up, h, l]);
        let get = |label: &str| {
            r.rows
                .iter()
                .find(|row| row.label == label)
                .unwrap_or_else(|| panic!("no row {label}: {:?}", r.rows))
                .values
                .clone()
        };
        assert_eq!(get("Image size"), ["200 MB", "100 MB", "50 MB"]);
        assert_eq!(get("Size reduction")[2], "75.0% (150 MB saved)");
        assert_eq!(
            get("Components"),
            ["3 packages", "2 packages", "3 packages"]
        );
        assert_eq!(get("Clang CFI"), ["Disabled", "Disabled", "Enabled"]);
        assert_eq!(get("mail module"), ["—", "Included", "Excluded"]);
        assert_eq!(get("Shell"), ["Absent", "Absent", "Present"]);
        assert_eq!(get("User")[1], "UID 65534");
        let hl = &r.component_diffs[0];
        assert_eq!((hl.from, hl.to), (Role::Hardened, Role::Locked));
        assert_eq!(hl.added, ["busybox 1.35.0"]);
        assert!(hl.removed.is_empty());
        let uh = &r.component_diffs[1];
        assert_eq!(uh.removed, ["libc6 2.36", "perl 5.36"]);
        assert_eq!(uh.added, ["glibc 2.36"]);
        // The table's label order is the product documents'.
        let labels: Vec<&str> = r.rows.iter().map(|r| r.label.as_str()).collect();
        let pos = |l: &str| labels.iter().position(|x| *x == l).unwrap();
        assert!(pos("Image size") < pos("Components"));
        assert!(pos("Clang CFI") < pos("SafeStack"));
        assert!(pos("SafeStack") < pos("mail module"));
        assert!(pos("Shell") < pos("Layers") && pos("Base image") < pos("User"));
    }

    #[test]
    fn components_show_their_debian_fixes() {
        let mut c = column(Role::Hardened, 1, &["nginx-1.26.3"], &[]).components[0].clone();
        assert_eq!(c.display(), "nginx 1.26.3");
        c.security_fixes = Some(19);
        c.debian_version = Some("1.26.3-3+deb13u9".into());
        assert_eq!(
            c.display(),
            "nginx 1.26.3 (+19 Debian security fixes, 1.26.3-3+deb13u9)"
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["security_fixes"], 19);
        assert_eq!(json["debian_version"], "1.26.3-3+deb13u9");
    }

    #[test]
    fn version_changes_are_not_adds_and_removes() {
        let a = column(Role::Hardened, 1, &["openssl-3.0.1"], &[]);
        let b = column(Role::Locked, 1, &["openssl-3.0.2"], &[]);
        let d = diff(&a, &b);
        assert!(d.added.is_empty() && d.removed.is_empty());
        assert_eq!(d.changed[0].to.as_deref(), Some("3.0.2"));
    }
}

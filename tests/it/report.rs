//! `armorred report` on nginx built in both tiers through real Nix.
//! Every figure in the report must be the one `analyze --json` and
//! `inspect --json` measure; the HTML page must render in headless
//! Chromium; a Debian-like upstream (built with buildah) must be counted
//! from its dpkg database, whether it comes as a layout or an archive.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::fixture::upstream;
use armorred::report::human_size;
use serde_json::Value;

fn analyze(layout: &Path) -> Value {
    nginx()
        .ctx
        .ok(&["analyze", layout.to_str().unwrap(), "--json"])
        .json()
}

fn inspect(layout: &Path) -> Value {
    nginx()
        .ctx
        .ok(&["inspect", layout.to_str().unwrap(), "--json"])
        .json()
}

/// The cells of the Markdown table row labelled `label` (first match).
fn md_row(md: &str, label: &str) -> Vec<String> {
    let prefix = format!("| {label} |");
    let line = md
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row `{label}` in\n{md}"));
    line.trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_string())
        .skip(1)
        .collect()
}

fn present(b: &Value) -> &'static str {
    if b.as_bool().unwrap() {
        "Present"
    } else {
        "Absent"
    }
}

/// The nginx binary's report in an `analyze --json` result.
fn nginx_binary<'a>(a: &'a Value, package: &str) -> &'a Value {
    let path = format!("{package}/bin/nginx");
    a["binaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["path"] == path.as_str())
        .unwrap_or_else(|| panic!("no {path} in the analysis"))
}

#[test]
fn markdown_rows_are_the_measured_figures() {
    let b = nginx();
    let md = b
        .ctx
        .ok(&["report", "nginx", "--out", "out", "--format", "md"])
        .stdout();
    let header = md_row(&md, "Property");
    assert_eq!(header, ["Hardened", "Locked"], "{md}");
    let mut dropped_in_locked = Vec::new();
    for (i, layout) in [&b.hardened, &b.locked].into_iter().enumerate() {
        let a = analyze(layout);
        let ins = inspect(layout);
        let cell = |label: &str| md_row(&md, label)[i].clone();
        let bytes = |v: &Value| v.as_u64().unwrap();
        assert_eq!(
            cell("Image size"),
            human_size(bytes(&a["uncompressed_size"]))
        );
        assert_eq!(
            cell("Compressed size"),
            human_size(bytes(&a["compressed_size"]))
        );
        assert_eq!(
            cell("Uncompressed (bytes)"),
            a["uncompressed_size"].to_string()
        );
        assert_eq!(
            cell("Compressed (bytes)"),
            ins["compressed_size"].to_string()
        );
        assert_eq!(ins["compressed_size"], a["compressed_size"]);
        assert_eq!(
            cell("Components"),
            format!("{} packages", a["component_count"])
        );
        let package = ins["labels"]["org.armorred.nix.package"].as_str().unwrap();
        let bin = nginx_binary(&a, package);
        let status = |on: bool| if on { "Enabled" } else { "Disabled" };
        assert_eq!(
            cell("Clang CFI"),
            status(bin["cfi"]["enabled"].as_bool().unwrap())
        );
        assert_eq!(
            cell("SafeStack"),
            status(bin["safestack"].as_bool().unwrap())
        );
        assert_eq!(cell("Shell"), present(&a["shell"]["present"]));
        assert_eq!(cell("Coreutils"), present(&a["coreutils"]["present"]));
        assert_eq!(
            cell("Layers"),
            ins["layers"].as_array().unwrap().len().to_string()
        );
        assert_eq!(cell("Base image"), ins["labels"]["org.armorred.base"]);
        assert_eq!(
            cell("User"),
            format!("UID {}", ins["user"].as_str().unwrap())
        );
        assert_eq!(cell("Manifest"), ins["manifest_digest"]);
        // Every label appears with its value.
        for (k, v) in ins["labels"].as_object().unwrap() {
            assert_eq!(md_row(&md, k)[i], v.as_str().unwrap(), "label {k}");
        }
        if i == 1 {
            dropped_in_locked = ins["labels"]["org.armorred.dropped-features"]
                .as_str()
                .unwrap()
                .split(',')
                .map(str::to_string)
                .collect();
        } else {
            assert!(ins["labels"].get("org.armorred.dropped-features").is_none());
        }
    }
    // The tiers differ where the recipe says they do, and the table shows it.
    assert_eq!(md_row(&md, "Clang CFI"), ["Disabled", "Enabled"]);
    assert_eq!(md_row(&md, "SafeStack"), ["Enabled", "Enabled"]);
    assert_eq!(md_row(&md, "Shell"), ["Absent", "Present"]);
    assert!(dropped_in_locked.contains(&"mail".to_string()));
    assert!(dropped_in_locked.contains(&"stream".to_string()));
    // The product documents' "Perl module: Included / Excluded" row, and XSLT.
    assert!(dropped_in_locked.contains(&"http_perl".to_string()));
    assert!(dropped_in_locked.contains(&"http_xslt".to_string()));
    for f in &dropped_in_locked {
        assert_eq!(
            md_row(&md, &format!("{f} module")),
            ["Included", "Excluded"]
        );
    }
    // The component difference between the tiers is the SBOMs' difference.
    let names = |layout: &Path| -> BTreeSet<String> {
        let sbom: Value = serde_json::from_str(
            &b.ctx
                .ok(&["sbom", layout.to_str().unwrap(), "--format", "cyclonedx"])
                .stdout(),
        )
        .unwrap();
        sbom["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| match c["version"].as_str() {
                Some(v) => format!("{} {v}", c["name"].as_str().unwrap()),
                None => c["name"].as_str().unwrap().to_string(),
            })
            .collect()
    };
    let (h, l) = (names(&b.hardened), names(&b.locked));
    let added: Vec<&String> = l.difference(&h).collect();
    assert!(!added.is_empty(), "the locked tier adds busybox");
    let line = md
        .lines()
        .find(|x| x.starts_with("- added ("))
        .expect("hardened → locked diff");
    assert_eq!(
        line,
        format!(
            "- added ({}): {}",
            added.len(),
            added
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    // Deterministic: the same images give the same bytes.
    let again = b
        .ctx
        .ok(&["report", "nginx", "--out", "out", "--format", "md"])
        .stdout();
    assert_eq!(md, again);
}

fn chromium(args: &[&str], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("180")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium (scripts/setup-system.sh installs it)");
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn html_is_self_contained_and_renders_in_chromium() {
    let b = nginx();
    let page = b.ctx.path().join("report.html");
    let r = b.ctx.ok(&[
        "report",
        "nginx",
        "--out",
        "out",
        "--format",
        "html",
        "--output",
        page.to_str().unwrap(),
    ]);
    assert_eq!(r.stdout().trim(), page.to_str().unwrap());
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for external in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "external asset `{external}`");
    }
    assert_eq!(html.matches("<svg").count(), 2, "size and component charts");

    let url = format!("file://{}", page.display());
    let png_path = b.ctx.path().join("report.png");
    chromium(
        &[
            &format!("--screenshot={}", png_path.display()),
            "--window-size=1200,2000",
        ],
        &url,
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 2000));
    let channels = info.color_type.samples();
    let colors: BTreeSet<&[u8]> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|px| &px[..3.min(channels)])
        .collect();
    assert!(
        colors.len() > 50,
        "only {} distinct colors: the page did not render",
        colors.len()
    );
    // The bar colors of both tiers are on screen.
    for rgb in [[0x15, 0x65, 0xc0], [0x2e, 0x7d, 0x32]] {
        assert!(colors.contains(&rgb[..]), "no pixel of {rgb:02x?}");
    }

    let dom = String::from_utf8(chromium(&["--dump-dom"], &url).stdout).unwrap();
    for layout in [&b.hardened, &b.locked] {
        let a = analyze(layout);
        for key in ["uncompressed_size", "compressed_size"] {
            let bytes = a[key].as_u64().unwrap();
            assert!(
                dom.contains(&format!("{} ({bytes} bytes)", human_size(bytes))),
                "{key} {bytes} of {} not in the rendered page",
                layout.display()
            );
        }
        assert!(dom.contains(&format!("{} packages", a["component_count"])));
    }
    assert!(dom.contains("Hardened") && dom.contains("Locked"));
}

fn upstream_column(report: &Value) -> &Value {
    let c = &report["columns"][0];
    assert_eq!(c["role"], "upstream");
    c
}

/// `report nginx --upstream UPSTREAM --format json` on the shared nginx build.
fn report_json(upstream: &str, extra: &[&str]) -> Value {
    let args = ["report", "nginx", "--out", "out", "--upstream", upstream];
    let format = ["--format", "json"];
    nginx().ctx.ok(&[&args[..], extra, &format].concat()).json()
}

#[test]
fn upstream_components_come_from_dpkg_in_every_input_form() {
    let b = nginx();
    let up = upstream();
    assert_eq!(up.installed, 12);
    let tmp = tempfile::tempdir().unwrap();
    let oci = up.oci("latest");
    let docker = tmp.path().join("up.docker.tar");
    let oci_archive = tmp.path().join("up.oci.tar");
    sh(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &oci,
            &format!("docker-archive:{}:upstream/nginx:1.22.1", docker.display()),
        ],
    );
    sh(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &oci,
            &format!("oci-archive:{}", oci_archive.display()),
        ],
    );
    let mut sizes = BTreeSet::new();
    for source in [
        oci.clone(),
        format!("docker-archive:{}", docker.display()),
        format!("oci-archive:{}", oci_archive.display()),
        // Bare paths are sniffed.
        docker.display().to_string(),
    ] {
        let r = report_json(&source, &[]);
        let u = upstream_column(&r);
        assert_eq!(
            u["components"].as_array().unwrap().len(),
            up.installed,
            "{source}"
        );
        assert!(u["components"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["kind"] == "deb"));
        assert_eq!(u["component_source"], "dpkg status", "{source}");
        assert_eq!(u["base_image"], "debian:12");
        assert_eq!(u["shell"], true);
        assert_eq!(u["coreutils"], true);
        assert_eq!(u["runs_as_root"], true);
        sizes.insert(u["uncompressed_size"].as_u64().unwrap());
        // The comparison rows carry the upstream column first.
        let row = |label: &str| {
            r["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["label"] == label)
                .unwrap()["values"]
                .clone()
        };
        assert_eq!(row("Components")[0], format!("{} packages", up.installed));
        assert_eq!(row("User")[0], "root");
        assert_eq!(row("Shell")[0], "Present");
    }
    assert_eq!(
        sizes.len(),
        1,
        "one image, one uncompressed size: {sizes:?}"
    );

    let md = b
        .ctx
        .ok(&["report", "nginx", "--out", "out", "--upstream", &oci])
        .stdout();
    assert_eq!(md_row(&md, "Property"), ["Upstream", "Hardened", "Locked"]);
    assert_eq!(
        md_row(&md, "Base image"),
        ["debian:12", "scratch", "scratch"]
    );
    // "none" when a tier has as many components as upstream or more (the
    // hardened nginx with its modules' libraries has as many as this small
    // upstream-like image).
    let reduction = |layout: &Path| {
        let ours = analyze(layout)["component_count"].as_u64().unwrap() as f64;
        let p = 100.0 * (1.0 - ours / up.installed as f64);
        if p > 0.0 {
            format!("{p:.1}%")
        } else {
            "none".to_string()
        }
    };
    assert_eq!(
        md_row(&md, "Component reduction")[1..],
        [reduction(&b.hardened), reduction(&b.locked)]
    );
    assert_ne!(
        reduction(&b.locked),
        "none",
        "locked drops the modules' libraries"
    );
    // Upstream → hardened: every Debian package but nginx is gone, and
    // nginx changes version (1.22.1-1~bullseye → 1.22.1).
    let r = report_json(&oci, &[]);
    let d = &r["component_diffs"][1];
    assert_eq!(
        (d["from"].as_str(), d["to"].as_str()),
        (Some("upstream"), Some("hardened"))
    );
    assert_eq!(
        d["removed"].as_array().unwrap().len(),
        up.installed - 1,
        "{d}"
    );
    assert_eq!(d["changed"][0]["name"], "nginx", "{d}");
    assert!(md.contains(&format!("- removed ({}): adduser 3.134,", up.installed - 1)));
}

#[test]
fn upstream_from_a_registry_is_copied_with_skopeo() {
    let b = nginx();
    let up = upstream();
    let reg = crate::fixture::LoopbackRegistry::start();
    let reference = format!("{}/upstream/nginx:1.22.1", reg.host);
    sh(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &up.oci("latest"),
            &format!("docker://{reference}"),
        ],
    );
    let r = report_json(&reference, &["--insecure"]);
    let u = upstream_column(&r);
    assert_eq!(u["source"], format!("docker://{reference}"));
    assert_eq!(u["components"].as_array().unwrap().len(), up.installed);
    // Without --insecure, TLS is required and the plain-HTTP registry fails.
    let r = b.ctx.run(&[
        "report",
        "nginx",
        "--out",
        "out",
        "--upstream",
        &format!("docker://{reference}"),
    ]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(r.stderr().contains("skopeo"), "{}", r.describe());
}

#[test]
fn missing_layouts_and_bad_upstreams_are_input_errors() {
    let ctx = TestContext::new();
    let r = ctx.run(&["report", "nginx", "--out", "nowhere"]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(
        r.stderr().contains("nowhere/nginx-hardened"),
        "{}",
        r.describe()
    );
    let b = nginx();
    let r = b.ctx.run(&[
        "report",
        "nginx",
        "--out",
        "out",
        "--upstream",
        "/no/such/upstream.tar",
    ]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(
        r.stderr().contains("/no/such/upstream.tar"),
        "{}",
        r.describe()
    );
}

//! Snapshots of what users read: `plan --json` for both nginx tiers,
//! `inspect` of the built nginx image and the Markdown report. Any change to
//! these outputs fails here, meant or not; a meant one is reviewed with
//! `cargo insta review` (or rerun with `INSTA_UPDATE=always`) and its
//! `snapshots/*.snap` committed with the code.
//!
//! What differs between machines, checkouts, commits and runs is replaced by
//! a placeholder before comparing: digests (the image carries the commit as a
//! label), Nix store hashes, this checkout's and this run's paths, the commit,
//! the host's compiler and wall-clock times. Everything else (versions,
//! hardening flags, labels, layer counts and sizes, the report's figures) is
//! compared as is: the nginx builds are reproducible.

use std::path::Path;

use crate::common::*;

/// `(regex, placeholder)`, applied in order.
fn filters() -> Vec<(String, String)> {
    let literal = |p: &Path, name: &str| (regex::escape(p.to_str().unwrap()), name.to_string());
    let mut f = vec![
        // The run directory first: it is inside the checkout (`target/tmp`).
        literal(run_dir(), "[RUN]"),
        // A temp dir's random name.
        (r"\[RUN\]/[^/\s]+".to_string(), "[RUN]/[TEMP]".to_string()),
        // A test's own temp dir (`TestContext::new`); a bare `/tmp` stays,
        // it is a writable path of the image.
        (
            format!(
                r"{}/armorred-[a-z]+-[A-Za-z0-9]+",
                regex::escape(std::env::temp_dir().to_str().unwrap())
            ),
            "[TEMP]".to_string(),
        ),
        literal(&sources_dir(), "[SOURCES]"),
        literal(&repo(), "[REPO]"),
    ];
    for (re, to) in [
        (r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]"),
        // A digest shortened for a table column.
        (r"sha256:[0-9a-f]{12}\b", "sha256:[SHORT]"),
        (r"/nix/store/[0-9a-df-np-sv-z]{32}-", "/nix/store/[HASH]-"),
        // The commit armorred was built from (`org.opencontainers.image.revision`).
        (r"\b[0-9a-f]{40}\b", "[COMMIT]"),
        // The host's clang, which `plan` records in the Nix command.
        (r#"clang-\d+\.\d+\.\d+"#, "clang-[VERSION]"),
        // Wall-clock times; the image's own (1970, from SOURCE_DATE_EPOCH) stay.
        (
            r"\b(19[89]\d|2\d{3})-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?",
            "[TIME]",
        ),
    ] {
        f.push((re.to_string(), to.to_string()));
    }
    f
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    for (re, to) in filters() {
        settings.add_filter(&re, to);
    }
    settings.bind(|| insta::assert_snapshot!(name, text));
}

#[test]
fn plan_json_of_each_nginx_tier() {
    let ctx = TestContext::new();
    for tier in ["hardened", "locked"] {
        let r = ctx.ok(&["plan", "nginx", "--tier", tier, "--json"]);
        // JSON as printed: key order is part of the output.
        let plan = r.json();
        assert_eq!(plan[0]["plan"]["tier"], tier, "{plan}");
        snapshot(&format!("plan_nginx_{tier}"), &r.stdout());
    }
}

#[test]
fn inspect_of_the_nginx_image() {
    let b = nginx();
    for (tier, layout) in [("hardened", &b.hardened), ("locked", &b.locked)] {
        // As users type it, relative to the working directory.
        let rel = layout.strip_prefix(b.ctx.path()).unwrap();
        let text = b.ctx.ok(&["inspect", rel.to_str().unwrap()]).stdout();
        snapshot(&format!("inspect_nginx_{tier}"), &text);
    }
}

#[test]
fn markdown_report_of_nginx() {
    let b = nginx();
    let md = b
        .ctx
        .ok(&["report", "nginx", "--out", "out", "--format", "md"])
        .stdout();
    snapshot("report_nginx_md", &md);
}

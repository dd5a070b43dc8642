//! Upstream's own test suites on the builds that ship: each package of the
//! nginx and redis images (both tiers) ran its source's test suite inside the
//! Nix derivation that goes into the image, and left the counts in
//! `nix-support/armorred-tests.json`. These tests read those records from the
//! store paths of each image's closure (as `armorred plan --layers` lists
//! them), and show that a broken build fails in its suite.
//!
//! The counts are written to the process's stderr handle directly, which the
//! test harness does not capture, so they appear in the CI log of a passing
//! run too.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::common::*;

/// The store paths of an image's closure, from `armorred plan --layers`.
fn closure_paths(ctx: &TestContext, image: &str, tier: &str) -> Vec<PathBuf> {
    let r = ctx.ok(&["plan", image, "--tier", tier, "--layers", "--json"]);
    let v = r.json();
    let plan = &v.as_array().expect("plan --json is a list")[0];
    let layers = plan["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in {}", r.describe()));
    let paths: Vec<PathBuf> = layers
        .iter()
        .flat_map(|l| l["paths"].as_array().cloned().unwrap_or_default())
        .map(|p| PathBuf::from(p["path"].as_str().expect("path is a string")))
        .collect();
    assert!(
        !paths.is_empty(),
        "empty closure for {image} {tier}: {}",
        r.describe()
    );
    paths
}

/// package name → (store path, record) for every record in the closure.
fn records(paths: &[PathBuf]) -> BTreeMap<String, (PathBuf, serde_json::Value)> {
    let mut out = BTreeMap::new();
    for p in paths {
        let f = p.join("nix-support/armorred-tests.json");
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(v["schema"], "armorred.upstream-tests/v1", "{}", f.display());
        let name = v["package"].as_str().expect("package").to_string();
        out.insert(name, (p.clone(), v));
    }
    out
}

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("`{k}` is not a count in {v}"))
}

/// Prints every suite's counts where CI's log keeps them, and asserts each
/// passed something and failed nothing.
fn assert_and_print(label: &str, recs: &BTreeMap<String, (PathBuf, serde_json::Value)>) {
    let mut err = std::io::stderr().lock();
    for (pkg, (path, v)) in recs {
        for s in v["suites"].as_array().expect("suites") {
            let tags: Vec<String> = s["skippedTags"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|t| t["tag"].as_str().unwrap_or("?").to_string())
                        .collect()
                })
                .unwrap_or_default();
            let line = format!(
                "upstream suite [{label}] {pkg} {}: `{}` ({} mode, scope {}): {} passed, {} failed, {} skipped{}",
                v["version"].as_str().unwrap_or(""),
                s["suite"].as_str().unwrap_or("?"),
                v["mode"].as_str().unwrap_or("?"),
                if s["scope"] == "full" { "full" } else { "CI subset" },
                n(s, "passed"),
                n(s, "failed"),
                n(s, "skipped"),
                if tags.is_empty() { String::new() } else { format!(", left out: {}", tags.join(", ")) },
            );
            let _ = writeln!(err, "{line}");
            assert!(n(s, "passed") > 0, "{line}\n{}", path.display());
            assert_eq!(
                n(s, "failed"),
                0,
                "{line}: {}\n{}",
                s["failedTests"],
                path.display()
            );
            assert!(
                !s["command"].as_str().unwrap_or("").is_empty(),
                "{line}: no command recorded"
            );
        }
    }
}

fn suite<'a>(rec: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    rec["suites"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["suite"] == name))
        .unwrap_or_else(|| panic!("no suite `{name}` in {rec}"))
}

#[test]
fn shipped_packages_passed_their_upstream_suites_in_both_tiers() {
    let ctx = TestContext::new();
    // The images themselves: the build checks the recipe's [[tests.upstream]]
    // against the closure and fails otherwise.
    for image in ["nginx", "redis"] {
        ctx.ok(&["build", image, "--tier", "all", "--out", "out"]);
    }
    let expected: [(&str, &str, &[&str]); 4] = [
        (
            "nginx",
            "hardened",
            &["libxml2", "openssl", "pcre2", "perl", "zlib"],
        ),
        ("nginx", "locked", &["busybox", "openssl", "pcre2", "zlib"]),
        ("redis", "hardened", &["openssl", "redis"]),
        ("redis", "locked", &["redis"]),
    ];
    let mut redis_paths = Vec::new();
    for (image, tier, packages) in expected {
        let recs = records(&closure_paths(&ctx, image, tier));
        let got: Vec<&str> = recs.keys().map(String::as_str).collect();
        assert_eq!(
            got, packages,
            "{image} {tier}: packages with an upstream test record"
        );
        assert_and_print(&format!("{image} {tier}"), &recs);
        if image == "redis" {
            let (path, rec) = &recs["redis"];
            redis_paths.push(path.clone());
            let runtest = suite(rec, "runtest");
            let tags: Vec<&str> = runtest["skippedTags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["tag"].as_str().unwrap())
                .collect();
            if tier == "locked" {
                // TLS is compiled out, and said so; nothing else is left out.
                assert_eq!(tags, ["tls"], "{rec}");
                assert!(rec["suites"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["suite"] != "runtest --tls"));
            } else {
                assert!(tags.is_empty(), "{rec}");
                assert!(n(suite(rec, "runtest --tls"), "passed") > 0, "{rec}");
            }
        }
    }
    // Each tier ran runtest on its own redis build.
    assert_ne!(redis_paths[0], redis_paths[1]);
    // What the full suite found CFI costs (unsymbolized crash reports) is a
    // declared trade-off of the locked tier, in its label.
    let locked = ctx.ok(&["inspect", "out/redis-locked", "--json"]).json();
    assert_eq!(
        locked["labels"]["org.armorred.tradeoffs"],
        "no-entrypoint-script,unsymbolized-crash-reports"
    );
    let hardened = ctx.ok(&["inspect", "out/redis-hardened", "--json"]).json();
    assert!(hardened["labels"].get("org.armorred.tradeoffs").is_none());
}

#[test]
fn a_broken_build_fails_in_its_upstream_suite() {
    let ctx = TestContext::new();
    let r = run_fixture_build(&ctx, "zlib-broken", "hardened", &[], &[]);
    assert!(
        !r.out.status.success(),
        "the broken zlib built:\n{}",
        r.describe()
    );
    let err = r.stderr();
    assert!(
        err.contains("upstream test suite failed: zlib: make test")
            && err.contains("failing tests: zlib test"),
        "the error does not name the suite and the failing test:\n{}",
        r.describe()
    );
}

#[test]
fn a_recipe_requiring_a_suite_the_closure_lacks_fails() {
    let ctx = TestContext::new();
    let fixtures = repo().join("tests/fixtures/recipes");
    let dir = ctx.path().join("recipes");
    std::fs::create_dir(&dir).unwrap();
    for f in ["hello.nix", "hello.c"] {
        std::fs::copy(fixtures.join(f), dir.join(f)).unwrap();
    }
    let recipe = std::fs::read_to_string(fixtures.join("hello.toml")).unwrap()
        + "\n[[tests.upstream]]\npackage = \"zlib\"\nsuite = \"make test\"\n";
    std::fs::write(dir.join("hello.toml"), recipe).unwrap();
    let r = ctx.run(&[
        "build",
        "hello",
        "--tier",
        "hardened",
        "--recipes",
        dir.to_str().unwrap(),
        "--out",
        "out",
    ]);
    assert!(!r.out.status.success(), "{}", r.describe());
    assert!(
        r.stderr()
            .contains("has no record of upstream suite `make test`"),
        "{}",
        r.describe()
    );
}

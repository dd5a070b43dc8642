//! Issue 3: binary-level proof of every hardening claim, on nginx built in
//! both tiers through real Nix; Debian's checksec is the independent
//! cross-check. Also: the gate refuses an unhardened package, and the locked
//! tier really lacks the modules it drops.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn analyze(layout: &Path) -> Value {
    nginx()
        .ctx
        .ok(&["analyze", layout.to_str().unwrap(), "--json"])
        .json()
}

fn package_of(layout: &Path) -> String {
    let v = nginx()
        .ctx
        .ok(&["inspect", layout.to_str().unwrap(), "--json"])
        .json();
    v["labels"]["org.armorred.nix.package"]
        .as_str()
        .unwrap()
        .to_string()
}

fn binaries<'a>(a: &'a Value, prefix: &str) -> Vec<&'a Value> {
    a["binaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["path"].as_str().unwrap().contains(prefix))
        .collect()
}

#[test]
fn nginx_and_its_libraries_have_the_base_hardening() {
    let b = nginx();
    for layout in [&b.hardened, &b.locked] {
        let a = analyze(layout);
        for lib in ["-nginx-", "-openssl-", "-pcre2-", "-zlib-"] {
            let bins = binaries(&a, lib);
            assert!(!bins.is_empty(), "no ELF of {lib} in {}", layout.display());
            for bin in bins {
                let p = bin["path"].as_str().unwrap();
                assert_eq!(bin["relro"], "full", "{p}");
                assert_eq!(bin["bind_now"], true, "{p}");
                assert_eq!(bin["canary"], true, "{p}");
                assert_eq!(bin["nx"], true, "{p}");
                assert_eq!(bin["rpath_outside_store"], false, "{p}");
                if bin["elf_type"] == "executable" {
                    assert_eq!(bin["pie"], true, "{p}");
                }
                assert!(
                    bin["fortify"]["fortified_count"].as_u64().unwrap() > 0,
                    "{p}: {}",
                    bin["fortify"]
                );
            }
        }
        assert_eq!(a["suid_sgid"].as_array().unwrap().len(), 0);
        assert_eq!(a["world_writable"].as_array().unwrap().len(), 0);
        assert_eq!(a["user"], "65534");
        assert_eq!(a["component_count"], 5 + usize::from(layout == &b.locked));
    }
}

#[test]
fn cfi_and_safestack_exactly_where_the_tier_asks() {
    let b = nginx();
    for (layout, cfi) in [(&b.hardened, false), (&b.locked, true)] {
        let a = analyze(layout);
        let pkg = package_of(layout);
        let nginx_bin = binaries(&a, &format!("{pkg}/bin/nginx"));
        assert_eq!(nginx_bin.len(), 1);
        assert_eq!(nginx_bin[0]["cfi"]["enabled"], cfi, "{}", layout.display());
        if cfi {
            assert!(nginx_bin[0]["cfi"]["symbols"].as_u64().unwrap() > 100);
        }
        assert_eq!(nginx_bin[0]["safestack"], true);
        // Dependencies are built once for both tiers without CFI/SafeStack.
        for dep in binaries(&a, "-openssl-") {
            assert_eq!(dep["cfi"]["enabled"], false);
            assert_eq!(dep["safestack"], false);
        }
    }
}

/// `checksec --output=json --file=X` → its verdicts for X.
fn checksec(file: &Path) -> BTreeMap<String, String> {
    let out = sh(
        "checksec",
        &["--output=json", &format!("--file={}", file.display())],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, fields) = v.as_object().unwrap().iter().next().unwrap();
    fields
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

#[test]
fn checksec_agrees_on_every_shared_column() {
    let b = nginx();
    for (layout, tier) in [(&b.hardened, "hardened"), (&b.locked, "locked")] {
        let bundle = b.ctx.path().join(format!("checksec-{tier}"));
        sh(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:1.22.1-{tier}", layout.display()),
                bundle.to_str().unwrap(),
            ],
        );
        let rootfs = bundle.join("rootfs");
        let a = analyze(layout);
        let mut compared = 0;
        for bin in a["binaries"].as_array().unwrap() {
            let p = bin["path"].as_str().unwrap();
            if p.contains("glibc") {
                continue; // imported from the host, not ours to vouch for
            }
            let c = checksec(&rootfs.join(p.trim_start_matches('/')));
            let ctx = format!("{tier} {p}: checksec {c:?}\nours {bin}");
            assert_eq!(c["relro"], bin["relro"].as_str().unwrap(), "{ctx}");
            assert_eq!(
                c["canary"] == "yes",
                bin["canary"].as_bool().unwrap(),
                "{ctx}"
            );
            assert_eq!(c["nx"] == "yes", bin["nx"].as_bool().unwrap(), "{ctx}");
            let pie = if bin["elf_type"] == "shared-library" {
                "dso"
            } else if bin["pie"] == true {
                "yes"
            } else {
                "no"
            };
            assert_eq!(c["pie"], pie, "{ctx}");
            assert_eq!(
                c["rpath"] == "yes",
                !bin["rpath"].as_array().unwrap().is_empty(),
                "{ctx}"
            );
            assert_eq!(
                c["runpath"] == "yes",
                !bin["runpath"].as_array().unwrap().is_empty(),
                "{ctx}"
            );
            assert_eq!(
                c["symbols"] == "yes",
                !bin["stripped"].as_bool().unwrap(),
                "{ctx}"
            );
            let fortified = bin["fortify"]["fortified_count"].as_u64().unwrap();
            assert_eq!(c["fortify_source"] == "yes", fortified > 0, "{ctx}");
            assert_eq!(c["fortified"].parse::<u64>().unwrap(), fortified, "{ctx}");
            compared += 1;
        }
        assert!(compared >= 6, "{tier}: compared only {compared} binaries");
    }
}

fn nginx_v(layout: &Path) -> String {
    let bin = Path::new(&package_of(layout)).join("bin/nginx");
    let out = Command::new(&bin).arg("-V").output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn locked_nginx_lacks_the_dropped_modules_and_hardened_has_them() {
    let b = nginx();
    let hardened = nginx_v(&b.hardened);
    let locked = nginx_v(&b.locked);
    for flag in [
        "--with-mail",
        "--with-stream",
        "--with-http_dav_module",
        "--with-http_mp4_module",
        "--with-http_flv_module",
    ] {
        assert!(
            hardened.contains(flag),
            "hardened lacks {flag}:\n{hardened}"
        );
        assert!(!locked.contains(flag), "locked still has {flag}:\n{locked}");
    }
    for flag in [
        "--without-http_ssi_module",
        "--without-http_memcached_module",
        "--without-http_grpc_module",
    ] {
        assert!(
            locked.contains(flag),
            "locked should build {flag}:\n{locked}"
        );
        assert!(
            !hardened.contains(flag),
            "hardened should keep the module of {flag}"
        );
    }
    assert!(
        locked.contains("-fsanitize=cfi") && !locked.contains("-fcf-protection"),
        "{locked}"
    );
    assert!(
        hardened.contains("-fcf-protection=full") && !hardened.contains("-fsanitize=cfi"),
        "{hardened}"
    );
    // The label tells users what was dropped.
    let v = b
        .ctx
        .ok(&["inspect", b.locked.to_str().unwrap(), "--json"])
        .json();
    assert!(v["labels"]["org.armorred.dropped-features"]
        .as_str()
        .unwrap()
        .contains("mail"));
}

fn fixture_ctx() -> TestContext {
    TestContext::new()
}

fn fixture_args<'a>(image: &'a str, tier: &'a str, out: &'a str) -> Vec<String> {
    let recipes = repo().join("tests/fixtures/recipes");
    vec![
        "build".into(),
        image.into(),
        "--tier".into(),
        tier.into(),
        "--recipes".into(),
        recipes.display().to_string(),
        "--out".into(),
        out.into(),
    ]
}

#[test]
fn build_refuses_an_unhardened_package_and_keeps_the_good_image() {
    let ctx = fixture_ctx();
    // A good image first, in the same --out place the bad build targets.
    let good = ctx.run(
        &fixture_args("hello", "hardened", "out")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(good.out.status.success(), "{}", good.describe());
    let weak = fixture_args("weak", "hardened", "out");
    let r = ctx.run(&weak.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code(), 1, "{}", r.describe());
    let err = r.stderr();
    assert!(err.contains("hardening gate"), "{err}");
    assert!(
        err.contains("-weak-1.0/bin/weak: missing relro_full"),
        "{err}"
    );
    for prop in ["bind_now", "canary", "pie", "fortify"] {
        assert!(err.contains(&format!("missing {prop}")), "{prop}: {err}");
    }
    // Nothing half-made is left for the refused image.
    assert!(
        !ctx.path().join("out/weak-hardened").exists(),
        "{}",
        ctx.listing()
    );
    let f = ctx.ok(&[
        "fsck",
        ctx.path().join("out/hello-hardened").to_str().unwrap(),
    ]);
    assert!(f.stdout().contains("0 problem(s)"), "{}", f.stdout());
}

#[test]
fn a_users_own_package_file_gets_the_tier_hardening() {
    let ctx = fixture_ctx();
    let r = ctx.run(
        &fixture_args("hello", "locked", "out")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(r.out.status.success(), "{}", r.describe());
    let a = ctx
        .ok(&[
            "analyze",
            ctx.path().join("out/hello-locked").to_str().unwrap(),
            "--json",
        ])
        .json();
    let hello = binaries(&a, "-hello-1.0/bin/hello");
    assert_eq!(hello.len(), 1);
    assert_eq!(hello[0]["cfi"]["enabled"], true);
    assert_eq!(hello[0]["safestack"], true);
    assert_eq!(hello[0]["relro"], "full");
}

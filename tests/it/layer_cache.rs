//! The layer cache, through the real binary and real Nix. Each
//! test has its own cache directory inside its temp dir.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

fn cache_dir(ctx: &TestContext) -> PathBuf {
    ctx.path().join("cache")
}

/// `build nginx --json` with the test's cache; returns the summary.
fn build(ctx: &TestContext, out: &str, extra: &[&str]) -> Value {
    let r = run_build(ctx, out, extra);
    assert!(
        r.out.status.success(),
        "{}\n--- dir ---\n{}",
        r.describe(),
        ctx.listing()
    );
    r.json()
}

/// The same, whatever its outcome.
fn run_build(ctx: &TestContext, out: &str, extra: &[&str]) -> Run {
    let cache = cache_dir(ctx);
    let mut args = vec![
        "build",
        "nginx",
        "--out",
        out,
        "--json",
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    if !extra.iter().any(|a| a.starts_with("--tier")) {
        args.extend(["--tier", "hardened"]);
    }
    args.extend(extra);
    ctx.run(&args)
}

fn stats(summary: &Value) -> (u64, u64, u64) {
    let c = &summary["layer_cache"];
    (
        c["hits"].as_u64().unwrap(),
        c["misses"].as_u64().unwrap(),
        c["corrupt"].as_u64().unwrap(),
    )
}

/// (layers written, layer blobs read back) by the first image of a build.
fn io(summary: &Value) -> (u64, u64) {
    let img = &summary["images"][0];
    (
        img["layers_written"].as_u64().unwrap(),
        img["layers_read"].as_u64().unwrap(),
    )
}

fn manifest_digest(summary: &Value, i: usize) -> String {
    summary["images"][i]["manifest_digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `inspect --json` layers: created_by → (digest, size).
fn layers(ctx: &TestContext, layout: &Path) -> Vec<(String, String)> {
    let v = ctx
        .ok(&["inspect", layout.to_str().unwrap(), "--json"])
        .json();
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["created_by"].as_str().unwrap().to_string(),
                l["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn fsck_ok(ctx: &TestContext, layout: &Path) {
    let f = ctx.ok(&["fsck", layout.to_str().unwrap(), "--json"]).json();
    assert_eq!(f["problems"].as_array().unwrap().len(), 0, "{f}");
}

#[test]
fn warm_rebuild_writes_no_layer() {
    let ctx = TestContext::new();
    let cold = build(&ctx, "cold", &[]);
    let n = cold["images"][0]["layers"].as_u64().unwrap();
    assert!(n >= 6, "{cold}");
    assert_eq!(stats(&cold), (0, n, 0), "{cold}");
    assert!(cold["layer_cache"]["bytes_written"].as_u64().unwrap() > 1 << 20);
    // What the gate and lint need is derived from each layer's stream while
    // it is written: no layer is read back.
    assert_eq!(io(&cold), (n, 0), "{cold}");

    // A fresh output directory: every layer is a hit, and every layer blob
    // of the new layout is the cache's own file (a hard link), not new data.
    let warm = build(&ctx, "warm", &[]);
    assert_eq!(stats(&warm), (n, 0, 0), "{warm}");
    assert_eq!(warm["layer_cache"]["bytes_written"], 0);
    // The gate and lint use the cached facts of every layer: no blob is read,
    // and they reach the same verdicts.
    assert_eq!(io(&warm), (0, 0), "{warm}");
    assert_eq!(warm["layer_cache"]["facts_hits"], n, "{warm}");
    assert_eq!(
        warm["images"][0]["verified_hardening"],
        cold["images"][0]["verified_hardening"]
    );
    assert_eq!(manifest_digest(&warm, 0), manifest_digest(&cold, 0));
    let layout = ctx.path().join("warm/nginx-hardened");
    let ls = layers(&ctx, &layout);
    assert_eq!(ls.len() as u64, n);
    let cache = cache_dir(&ctx);
    let mut before = BTreeMap::new();
    for (what, digest) in &ls {
        let ours = fs::metadata(blob(&layout, digest)).unwrap();
        let cached = fs::metadata(blob(&cache, digest)).unwrap();
        assert_eq!(ours.ino(), cached.ino(), "{what}: not the cached blob");
        assert!(cached.nlink() >= 3, "{what}: cache + cold + warm");
        before.insert(
            digest.clone(),
            (ours.ino(), ours.mtime(), ours.mtime_nsec()),
        );
    }
    fsck_ok(&ctx, &layout);

    // Into the same layout again: the blobs are not touched at all.
    let again = build(&ctx, "warm", &[]);
    assert_eq!(stats(&again), (n, 0, 0));
    for (digest, was) in &before {
        let m = fs::metadata(blob(&layout, digest)).unwrap();
        assert_eq!((m.ino(), m.mtime(), m.mtime_nsec()), *was, "{digest}");
    }

    // The cache changes nothing in the image.
    let direct = ctx
        .ok(&[
            "build",
            "nginx",
            "--tier",
            "hardened",
            "--out",
            "direct",
            "--json",
            "--no-cache",
        ])
        .json();
    assert_eq!(manifest_digest(&direct, 0), manifest_digest(&cold, 0));
    assert!(direct["layer_cache"].is_null());
    assert_eq!(io(&direct), (n, 0));
}

/// A cold build into `out`: its summary, layer count, layout and the
/// digest of its nginx layer.
fn cold_nginx(ctx: &TestContext) -> (Value, u64, PathBuf, String) {
    let cold = build(ctx, "out", &[]);
    let n = cold["images"][0]["layers"].as_u64().unwrap();
    let layout = ctx.path().join("out/nginx-hardened");
    let (_, digest) = layers(ctx, &layout)
        .into_iter()
        .find(|(what, _)| what.starts_with("armorred: nginx-"))
        .expect("an nginx layer");
    (cold, n, layout, digest)
}

#[test]
fn corrupt_layer_facts_are_detected_and_derived_again() {
    let ctx = TestContext::new();
    let (cold, n, _, digest) = cold_nginx(&ctx);
    let facts = cache_dir(&ctx).join(format!("facts/{}.json", &digest[7..]));
    let good = fs::read(&facts).unwrap();
    // Claim nginx has no ELF files: were this used, the gate would pass on
    // nothing and the hardening label would be empty.
    let text = String::from_utf8(good.clone()).unwrap();
    let damaged = text.replacen("\"inspected\"", "\"inspectid\"", 1);
    assert_ne!(damaged, text, "the facts list nginx's ELF files");
    fs::write(&facts, damaged).unwrap();

    let r = run_build(&ctx, "out", &[]);
    assert!(r.out.status.success(), "{}", r.describe());
    let rebuilt = r.json();
    assert_eq!(
        io(&rebuilt),
        (0, 1),
        "only the damaged layer is read: {rebuilt}"
    );
    let c = &rebuilt["layer_cache"];
    assert_eq!(
        (c["facts_hits"].as_u64(), c["facts_corrupt"].as_u64()),
        (Some(n - 1), Some(1))
    );
    assert!(
        r.stderr().contains("corrupt facts") && r.stderr().contains(&digest[7..]),
        "the corruption is reported at warn: {}",
        r.stderr()
    );
    assert_eq!(manifest_digest(&rebuilt, 0), manifest_digest(&cold, 0));
    assert_eq!(
        rebuilt["images"][0]["verified_hardening"],
        cold["images"][0]["verified_hardening"]
    );
    assert_eq!(
        fs::read(&facts).unwrap(),
        good,
        "derived again, byte for byte"
    );
    assert_eq!(io(&build(&ctx, "out", &[])), (0, 0));
}

#[test]
fn corrupt_cached_blob_is_detected_and_rebuilt() {
    let ctx = TestContext::new();
    let (cold, n, layout, digest) = cold_nginx(&ctx);
    // Flip one byte in place. The layout's blob is the same file, so the
    // image is damaged too until the rebuild replaces it.
    let cached = blob(&cache_dir(&ctx), &digest);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&cached)
        .unwrap();
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(4096)).unwrap();
    std::io::Read::read_exact(&mut f, &mut byte).unwrap();
    f.seek(SeekFrom::Start(4096)).unwrap();
    f.write_all(&[byte[0] ^ 0x01]).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&cached).unwrap().len(), {
        fs::metadata(blob(&layout, &digest)).unwrap().len()
    });

    let r = run_build(&ctx, "out", &[]);
    assert!(r.out.status.success(), "{}", r.describe());
    let rebuilt = r.json();
    assert_eq!(stats(&rebuilt), (n - 1, 1, 1), "{rebuilt}");
    assert!(
        r.stderr().contains("corrupt entry") && r.stderr().contains(&digest[7..]),
        "the corruption is reported at warn: {}",
        r.stderr()
    );
    assert_eq!(manifest_digest(&rebuilt, 0), manifest_digest(&cold, 0));
    fsck_ok(&ctx, &layout);
    assert_eq!(
        sh("sha256sum", &[cached.to_str().unwrap()]).stdout[..64],
        digest.as_bytes()[7..],
        "the cache holds a good blob again"
    );
    let next = build(&ctx, "out", &[]);
    assert_eq!(stats(&next), (n, 0, 0));
}

#[test]
fn tiers_share_dependency_layers_and_rebuild_only_what_changed() {
    let ctx = TestContext::new();
    let hardened = build(&ctx, "out", &["--tier", "hardened"]);
    let n = hardened["images"][0]["layers"].as_u64().unwrap();
    assert_eq!(stats(&hardened), (0, n, 0));
    // The locked tier has another nginx (and a shell layer and rootfs), but
    // the same dependencies: exactly those are hits.
    let locked = build(&ctx, "out", &["--tier", "locked"]);
    let h = layers(&ctx, &ctx.path().join("out/nginx-hardened"));
    let l = layers(&ctx, &ctx.path().join("out/nginx-locked"));
    let shared = ["glibc-", "openssl-", "pcre2-", "zlib-"];
    for dep in shared {
        let find = |ls: &[(String, String)]| {
            ls.iter()
                .find(|(what, _)| what.starts_with(&format!("armorred: {dep}")))
                .unwrap_or_else(|| panic!("no {dep} layer in {ls:?}"))
                .1
                .clone()
        };
        assert_eq!(find(&h), find(&l), "{dep}");
    }
    let ln = locked["images"][0]["layers"].as_u64().unwrap();
    assert_eq!(
        stats(&locked),
        (shared.len() as u64, ln - shared.len() as u64, 0),
        "{locked}"
    );
    // Only the layers that changed are written, and none is read back.
    let changed = ln - shared.len() as u64;
    assert_eq!(io(&locked), (changed, 0), "{locked}");
    let nginx = |ls: &[(String, String)]| {
        ls.iter()
            .find(|(what, _)| what.starts_with("armorred: nginx-"))
            .unwrap()
            .1
            .clone()
    };
    assert_ne!(nginx(&h), nginx(&l));
}

#[test]
fn max_layers_is_respected_and_deterministic() {
    let ctx = TestContext::new();
    let a = build(&ctx, "a", &["--max-layers", "3"]);
    let layout = ctx.path().join("a/nginx-hardened");
    let ls = layers(&ctx, &layout);
    assert!(ls.len() <= 3, "{ls:?}");
    // Five store paths in at most two store layers: one is merged.
    assert!(
        ls.iter().any(|(what, _)| what.split(' ').count() > 2),
        "{ls:?}"
    );
    let out = sh(
        "skopeo",
        &[
            "inspect",
            &format!("oci:{}:1.26.3-hardened", layout.display()),
        ],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), ls.len());
    fsck_ok(&ctx, &layout);

    // Again, without the cache and with it: the same image.
    let b = ctx
        .ok(&[
            "build",
            "nginx",
            "--tier",
            "hardened",
            "--out",
            "b",
            "--json",
            "--no-cache",
            "--max-layers",
            "3",
        ])
        .json();
    assert_eq!(manifest_digest(&a, 0), manifest_digest(&b, 0));
    let c = build(&ctx, "c", &["--max-layers", "3"]);
    assert_eq!(stats(&c).1, 0, "{c}");
    assert_eq!(manifest_digest(&a, 0), manifest_digest(&c, 0));
    // A different cap is a different layer plan, not a stale cache hit.
    let d = build(&ctx, "d", &["--max-layers", "4"]);
    assert_ne!(manifest_digest(&a, 0), manifest_digest(&d, 0));
    assert!(stats(&d).1 > 0, "{d}");
}

#[test]
fn concurrent_builds_share_one_cache_safely() {
    let ctx = TestContext::new();
    let cache = cache_dir(&ctx);
    // Two processes, both cold, writing the same layers into one cache.
    let spawn = |out: &str| {
        private_cache(&mut std::process::Command::new(bin()))
            .args(["build", "nginx", "--tier", "all", "--json", "--out", out])
            .arg("--cache-dir")
            .arg(&cache)
            .current_dir(ctx.path())
            .env("ARMORRED_RECIPES", repo().join("recipes"))
            .env("ARMORRED_NIX_DIR", repo().join("nix"))
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (p1, p2) = (spawn("one"), spawn("two"));
    let mut digests = Vec::new();
    for p in [p1, p2] {
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        digests.push((manifest_digest(&v, 0), manifest_digest(&v, 1)));
    }
    assert_eq!(digests[0], digests[1]);
    let third = build(&ctx, "three", &["--tier", "all"]);
    let layers: u64 = third["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["layers"].as_u64().unwrap())
        .sum();
    assert_eq!(stats(&third), (layers, 0, 0), "{third}");
    assert_eq!(
        (manifest_digest(&third, 0), manifest_digest(&third, 1)),
        digests[0]
    );
    for out in ["one", "two", "three"] {
        for tier in ["hardened", "locked"] {
            fsck_ok(&ctx, &ctx.path().join(format!("{out}/nginx-{tier}")));
        }
    }
    // Nothing half-written is left behind.
    assert_eq!(fs::read_dir(cache.join("tmp")).unwrap().count(), 0);
    for e in fs::read_dir(cache.join("layers")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(name.ends_with(".json") && !name.starts_with('.'), "{name}");
    }
}

#[test]
fn plan_layers_shows_the_layers_build_writes() {
    let ctx = TestContext::new();
    let mut merged_paths = 0;
    for max in ["100", "4"] {
        let args = ["plan", "nginx", "--tier", "hardened", "--layers"];
        let plan = ctx
            .ok(&[&args[..], &["--max-layers", max, "--json"]].concat())
            .json();
        let planned = plan[0]["layers"].as_array().unwrap().clone();
        let out = format!("out-{max}");
        build(&ctx, &out, &["--max-layers", max]);
        let built = layers(&ctx, &ctx.path().join(out).join("nginx-hardened"));
        assert_eq!(planned.len(), built.len(), "{plan}");
        for (p, (created_by, _)) in planned.iter().zip(&built) {
            let names: Vec<&str> = p["paths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| &x["path"].as_str().unwrap()[44..])
                .collect();
            match p["kind"].as_str().unwrap() {
                "rootfs" => assert!(created_by.contains("rootfs extras"), "{created_by}"),
                _ => assert_eq!(*created_by, format!("armorred: {}", names.join(" "))),
            }
        }
        let merged: Vec<&serde_json::Value> =
            planned.iter().filter(|l| l["kind"] == "merged").collect();
        assert_eq!(merged.len(), usize::from(max == "4"), "{plan}");
        if let Some(m) = merged.first() {
            merged_paths = m["paths"].as_array().unwrap().len();
        }
    }
    let text = ctx.ok(&[
        "plan",
        "nginx",
        "--tier",
        "hardened",
        "--layers",
        "--max-layers",
        "4",
    ]);
    assert!(
        merged_paths > 1
            && text
                .stdout()
                .contains(&format!("merged: {merged_paths} paths past the layer cap")),
        "{}",
        text.stdout()
    );
    let without = ctx.ok(&["plan", "nginx", "--tier", "hardened"]);
    assert!(
        without.stdout().contains("--layers"),
        "{}",
        without.stdout()
    );
}

//! CIS Docker Benchmark section 4 per image. nginx passes in both
//! tiers; each check has a fixture that fails it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

fn lint(ctx: &TestContext, layout: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["lint", layout.to_str().unwrap(), "--json"];
    args.extend(extra);
    let r = ctx.run(&args);
    (r.code(), r.json())
}

fn status<'a>(report: &'a Value, id: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report}"))["status"]
        .as_str()
        .unwrap()
}

fn copy_layout(ctx: &TestContext, src: &Path, name: &str) -> PathBuf {
    let dst = ctx.path().join(name);
    sh("cp", &["-a", src.to_str().unwrap(), dst.to_str().unwrap()]);
    dst
}

fn put(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = hex::encode(Sha256::digest(bytes));
    fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

fn get(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap())
        .unwrap()
}

/// Rewrites the layout's image: `edit` may change the config and add layers
/// (uncompressed tars); digests, diff_ids and index.json are recomputed.
fn rewrite(layout: &Path, edit: impl FnOnce(&mut Value, &mut Vec<Vec<u8>>)) {
    let mut index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let i = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .position(|d| {
            d["artifactType"].is_null()
                && !d["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("sha256-")
        })
        .unwrap();
    let mut manifest = get(layout, index["manifests"][i]["digest"].as_str().unwrap());
    let mut config = get(layout, manifest["config"]["digest"].as_str().unwrap());
    let mut new_layers = Vec::new();
    edit(&mut config, &mut new_layers);
    for tar in new_layers {
        let (d, n) = put(layout, &tar);
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .unwrap()
            .push(d.clone().into());
        manifest["layers"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n
            }));
    }
    let (cd, cn) = put(layout, &serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = cd.into();
    manifest["config"]["size"] = cn.into();
    let (md, mn) = put(layout, &serde_json::to_vec(&manifest).unwrap());
    index["manifests"][i]["digest"] = md.into();
    index["manifests"][i]["size"] = mn.into();
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

fn tar_with(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn nginx_passes_in_both_tiers() {
    let b = nginx();
    for layout in [&b.hardened, &b.locked] {
        let (code, r) = lint(&b.ctx, layout, &[]);
        assert_eq!(code, 0, "{r}");
        assert_eq!(r["passed"], true);
        for id in ["4.1", "4.8", "4.10", "4.11"] {
            assert_eq!(status(&r, id), "pass", "{id}: {r}");
        }
        assert_eq!(
            status(&r, "4.6"),
            "not-applicable",
            "nginx declares no healthcheck"
        );
    }
}

#[test]
fn cis_4_1_fails_for_a_root_user() {
    let b = nginx();
    let ctx = TestContext::new();
    let l = copy_layout(&ctx, &b.hardened, "root");
    rewrite(&l, |config, _| config["config"]["User"] = "".into());
    let (code, r) = lint(&ctx, &l, &[]);
    assert_eq!(code, 1);
    assert_eq!(status(&r, "4.1"), "fail", "{r}");
}

#[test]
fn cis_4_6_healthcheck_declared_must_be_carried() {
    let ctx = TestContext::new();
    build_fixture(&ctx, "leakyok", "hardened", &[], &[]);
    let recipe = repo().join("tests/fixtures/recipes/leakyok.toml");
    let (code, rep) = lint(
        &ctx,
        &ctx.path().join("out/leakyok-hardened"),
        &["--recipe", recipe.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{rep}");
    assert_eq!(status(&rep, "4.6"), "pass");
    // The same recipe against an image without the healthcheck: fail.
    let (code, rep) = lint(
        &ctx,
        &nginx().hardened,
        &["--recipe", recipe.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert_eq!(status(&rep, "4.6"), "fail", "{rep}");
}

#[test]
fn cis_4_8_fails_for_setuid_files() {
    let b = nginx();
    let ctx = TestContext::new();
    let l = copy_layout(&ctx, &b.hardened, "suid");
    rewrite(&l, |_, layers| {
        layers.push(tar_with(&[("usr/bin/su", 0o4755, b"#!/bin/false\n")]))
    });
    let (code, r) = lint(&ctx, &l, &[]);
    assert_eq!(code, 1);
    assert_eq!(status(&r, "4.8"), "fail", "{r}");
    assert!(r.to_string().contains("/usr/bin/su"));
}

#[test]
fn cis_4_10_fails_for_secrets_and_stops_the_build() {
    let b = nginx();
    let ctx = TestContext::new();
    let l = copy_layout(&ctx, &b.hardened, "secrets");
    let key = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----\n";
    rewrite(&l, |_, layers| {
        layers.push(tar_with(&[
            ("srv/app/.env", 0o644, b"DB_PASSWORD=hunter2\n"),
            ("srv/app/tls.key", 0o600, key),
        ]))
    });
    let (code, r) = lint(&ctx, &l, &[]);
    assert_eq!(code, 1);
    assert_eq!(status(&r, "4.10"), "fail", "{r}");
    let text = r.to_string();
    assert!(
        text.contains("/srv/app/.env") && text.contains("/srv/app/tls.key"),
        "{text}"
    );

    // At build time a hit stops the build, unless the recipe allows it.
    let out = ctx.path().join("out");
    let r = run_fixture_build(&ctx, "leaky", "hardened", &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(
        r.stderr().contains("CIS 4.10") && r.stderr().contains("/etc/app/.env"),
        "{}",
        r.stderr()
    );
    assert!(!out.join("leaky-hardened").exists());
    build_fixture(&ctx, "leakyok", "hardened", &[], &[]);
}

#[test]
fn cis_4_11_fails_without_a_hash_record_of_the_inputs() {
    let b = nginx();
    let ctx = TestContext::new();
    let l = copy_layout(&ctx, &b.locked, "nosbom");
    edit_attachments(&l, |list| list.retain(|d| d["artifactType"].is_null()));
    let (code, r) = lint(&ctx, &l, &[]);
    assert_eq!(code, 1);
    assert_eq!(status(&r, "4.11"), "fail", "{r}");
}

//! An image is committed only when it is whole: a build that fails after its
//! layers are written (here the secret check of the lint) leaves the
//! previous image in `--out` byte for byte, with no new blob or attachment;
//! and an unreadable index.json is an error, never an empty layout.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{repo, TestContext};
use sha2::{Digest, Sha256};

/// Every file under `dir` (but the lock file) with its mode and SHA-256.
fn tree(dir: &Path) -> BTreeMap<String, (u32, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, String)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                walk(root, &p, out);
            } else if rel != ".armorred.lock" {
                let mode = fs::metadata(&p).unwrap().permissions().mode();
                let hash = hex::encode(Sha256::digest(fs::read(&p).unwrap()));
                out.insert(rel, (mode, hash));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A recipes directory with the `leaky` fixture package, named `leaky`,
/// with the secret allowed (`allowed`) or not.
fn recipes(ctx: &TestContext, allowed: bool) -> std::path::PathBuf {
    let fixtures = repo().join("tests/fixtures/recipes");
    let dir = ctx.path().join(if allowed { "allowed" } else { "refused" });
    fs::create_dir_all(&dir).unwrap();
    for f in ["leaky.nix", "hello.c"] {
        fs::copy(fixtures.join(f), dir.join(f)).unwrap();
    }
    let text = if allowed {
        fs::read_to_string(fixtures.join("leakyok.toml"))
            .unwrap()
            .replace("name = \"leakyok\"", "name = \"leaky\"")
    } else {
        fs::read_to_string(fixtures.join("leaky.toml")).unwrap()
    };
    fs::write(dir.join("leaky.toml"), text).unwrap();
    dir
}

fn build(ctx: &TestContext, recipes: &Path, out: &Path) -> crate::common::Run {
    ctx.run(&[
        "build",
        "leaky",
        "--tier",
        "hardened",
        "--recipes",
        &recipes.display().to_string(),
        "--out",
        &out.display().to_string(),
    ])
}

#[test]
fn a_lint_failure_leaves_the_previous_image_byte_identical() {
    let ctx = TestContext::new();
    let out = ctx.path().join("out");
    let good = build(&ctx, &recipes(&ctx, true), &out);
    assert!(good.out.status.success(), "{}", good.describe());
    let layout = out.join("leaky-hardened");
    let before = tree(&layout);
    assert!(before.contains_key("index.json"), "{before:?}");

    let bad = build(&ctx, &recipes(&ctx, false), &out);
    assert_eq!(bad.code(), 1, "{}", bad.describe());
    assert!(
        bad.stderr().contains("lint failed") && bad.stderr().contains("CIS 4.10"),
        "{}",
        bad.describe()
    );
    // Same files, same bytes, same modes: no new layer, config, manifest,
    // SBOM or attachments index was left behind, and index.json still
    // names the previous image and its attachments.
    assert_eq!(tree(&layout), before);
    let fsck = ctx.run(&["fsck", &layout.display().to_string()]);
    assert!(fsck.out.status.success(), "{}", fsck.describe());
}

#[test]
fn an_unreadable_index_json_is_an_error_and_is_not_replaced() {
    let ctx = TestContext::new();
    let out = ctx.path().join("out");
    let recipes = recipes(&ctx, true);
    let first = build(&ctx, &recipes, &out);
    assert!(first.out.status.success(), "{}", first.describe());
    let index = out.join("leaky-hardened/index.json");
    fs::write(&index, b"{\"schemaVersion\": 2, \"manifests\": [").unwrap();
    let before = tree(&out.join("leaky-hardened"));

    let r = build(&ctx, &recipes, &out);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(r.stderr().contains("index.json"), "{}", r.describe());
    // Nothing was dropped: the damaged file and every blob are as they were.
    assert_eq!(tree(&out.join("leaky-hardened")), before);
}

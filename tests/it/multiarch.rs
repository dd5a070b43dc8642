//! Multi-arch: a recipe listing `x86_64-linux` and `aarch64-linux`
//! builds what this machine can (x86_64-linux, the offline package set is
//! host-only), warns naming aarch64-linux, and writes an OCI image index with
//! one linux/amd64 child. skopeo, umoci and podman read it; every armorred
//! command that reads a layout handles it; sign and verify cover the index
//! and its child. Pushing it is tested in `registry`.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn recipes() -> String {
    repo().join("tests/fixtures/recipes").display().to_string()
}

/// `armorred build multiarch --tier hardened --recipes <fixtures> --out OUT` plus `extra`.
fn run_build(ctx: &TestContext, out: &str, extra: &[&str]) -> Run {
    run_build_tier(ctx, "hardened", out, extra)
}

fn run_build_tier(ctx: &TestContext, tier: &str, out: &str, extra: &[&str]) -> Run {
    let recipes = recipes();
    let mut args = vec![
        "build",
        "multiarch",
        "--tier",
        tier,
        "--recipes",
        &recipes,
        "--out",
        out,
    ];
    args.extend(extra);
    ctx.run(&args)
}

/// [`run_build`] with `--json`, which must succeed.
fn build(ctx: &TestContext, out: &str, extra: &[&str]) -> (Run, Value) {
    build_tier(ctx, "hardened", out, extra)
}

fn build_tier(ctx: &TestContext, tier: &str, out: &str, extra: &[&str]) -> (Run, Value) {
    let mut args = vec!["--json"];
    args.extend(extra);
    let r = run_build_tier(ctx, tier, out, &args);
    assert!(r.out.status.success(), "{}", r.describe());
    let v = r.json();
    (r, v)
}

fn json_file(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Value {
    json_file(&layout.join("blobs/sha256").join(&digest[7..]))
}

fn skopeo_raw(src: &str) -> Value {
    serde_json::from_slice(&sh("skopeo", &["inspect", "--raw", src]).stdout).unwrap()
}

#[test]
fn two_platforms_build_an_index_with_the_host_child() {
    let ctx = TestContext::new();
    let (r, v) = build(&ctx, "out", &["--format", "oci-archive"]);
    // The warning names the platform and how to build it.
    let err = r.stderr();
    assert!(
        err.contains("platform aarch64-linux is not built") && err.contains("--builders"),
        "{}",
        r.describe()
    );
    assert!(err.contains("offline package set"), "{err}");
    let skipped = &v["skipped_platforms"];
    assert_eq!(skipped.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(skipped[0]["platform"], "aarch64-linux");
    assert_eq!(skipped[0]["image"], "multiarch");
    assert!(skipped[0]["hint"].as_str().unwrap().contains("ssh://"));

    // index.json names an index, with today's ref.name, whose one child is linux/amd64.
    let image = &v["images"][0];
    let top = image["manifest_digest"].as_str().unwrap().to_string();
    let layout = ctx.path().join("out/multiarch-hardened");
    let index_json = json_file(&layout.join("index.json"));
    let named = &index_json["manifests"][0];
    assert_eq!(named["mediaType"], INDEX);
    assert_eq!(named["digest"], top);
    assert_eq!(
        named["annotations"]["org.opencontainers.image.ref.name"],
        "1.0-hardened"
    );
    let index = blob(&layout, &top);
    assert_eq!(index["mediaType"], INDEX);
    assert_eq!(index["schemaVersion"], 2);
    let children = index["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{index}");
    let child = children[0]["digest"].as_str().unwrap().to_string();
    assert_eq!(children[0]["mediaType"], MANIFEST);
    assert_eq!(
        children[0]["platform"],
        serde_json::json!({"architecture": "amd64", "os": "linux"})
    );
    assert_eq!(image["platforms"][0]["platform"], "linux/amd64");
    assert_eq!(image["platforms"][0]["manifest_digest"], child);
    let manifest = blob(&layout, &child);
    let config = blob(&layout, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    // index.json names the index only; the SBOMs attach to the platform's
    // manifest, listed in the attachments index the entry names.
    assert_eq!(index_json["manifests"].as_array().unwrap().len(), 1);
    let attached = attachments(&layout);
    let subjects: Vec<&Value> = attached
        .iter()
        .filter_map(|d| d["annotations"].get("org.armorred.subject"))
        .collect();
    assert_eq!(subjects.len(), 2, "{attached:?}");
    assert!(subjects.iter().all(|s| *s == child.as_str()));

    // skopeo sees the index, in the layout and in the OCI archive.
    let src = format!("oci:{}:1.0-hardened", layout.display());
    let raw = skopeo_raw(&src);
    assert_eq!(raw["mediaType"], INDEX);
    assert_eq!(raw["manifests"][0]["platform"]["architecture"], "amd64");
    let archive = ctx.path().join("out/multiarch-hardened.oci.tar");
    let raw = skopeo_raw(&format!("oci-archive:{}", archive.display()));
    assert_eq!(raw["manifests"][0]["digest"], child.as_str());
    // skopeo copies the whole index into a layout that fsck accepts.
    let copy = ctx.path().join("copy");
    sh(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--all",
            &src,
            &format!("oci:{}:x", copy.display()),
        ],
    );
    assert_eq!(
        skopeo_raw(&format!("oci:{}:x", copy.display()))["mediaType"],
        INDEX
    );
    ctx.ok(&["fsck", copy.to_str().unwrap()]);
    // umoci unpacks it (resolving the index to the child).
    let bundle = ctx.path().join("bundle");
    sh(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:1.0-hardened", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert!(bundle.join("rootfs/usr/bin/hello").exists());

    // Every reader resolves the index to this machine's child.
    let l = layout.to_str().unwrap();
    let inspect = ctx.ok(&["inspect", l, "--json"]).json();
    assert_eq!(inspect["manifest_digest"], child.as_str());
    assert_eq!(inspect["index"]["digest"], top.as_str());
    assert_eq!(inspect["index"]["children"][0]["platform"], "linux/amd64");
    assert_eq!(inspect["architecture"], "amd64");
    // …or the child --ref names by digest.
    let by_digest = ctx.ok(&["inspect", l, "--ref", &child, "--json"]).json();
    assert_eq!(by_digest["manifest_digest"], child.as_str());
    let analyze = ctx.ok(&["analyze", l, "--json"]).json();
    assert_eq!(analyze["component_count"], 2, "{analyze}");
    ctx.ok(&["lint", l]);
    let spdx: Value =
        serde_json::from_str(&ctx.ok(&["sbom", l, "--format", "spdx"]).stdout()).unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    ctx.ok(&["fsck", l]);
    // `report` compares the tiers' amd64 children.
    let (_, locked) = build_tier(&ctx, "locked", "out", &[]);
    assert_eq!(
        locked["images"][0]["platforms"][0]["platform"],
        "linux/amd64"
    );
    let report = ctx
        .ok(&["report", "multiarch", "--out", "out", "--format", "json"])
        .json();
    let digests = report.to_string();
    assert!(
        digests.contains(&child)
            && digests.contains(
                locked["images"][0]["platforms"][0]["manifest_digest"]
                    .as_str()
                    .unwrap()
            ),
        "{report}"
    );

    // Sign and verify: the index and its child each carry a signature.
    ctx.generate_key_pair();
    let signed = ctx
        .ok_env(
            &["sign", l, "--key", "cosign.key", "--json"],
            &[COSIGN_TEST_PASSWORD],
        )
        .json();
    assert_eq!(signed["signed"], serde_json::json!([top, child]));
    assert_eq!(signed["docker_reference"], "armorred/multiarch");
    let v = ctx.ok(&["verify", l, "--key", "cosign.pub"]);
    assert!(v.stdout().contains(&top), "{}", v.stdout());
    assert!(v.stdout().contains("tier: hardened"), "{}", v.stdout());
    // A child without its own signature fails verification.
    let unsigned = ctx.path().join("unsigned");
    sh("cp", &["-a", l, unsigned.to_str().unwrap()]);
    let child_sig = format!("sha256-{}.sig", &child[7..]);
    assert_eq!(attachments(&unsigned).len(), 4, "two SBOMs, two signatures");
    edit_attachments(&unsigned, |list| {
        list.retain(|d| d["annotations"]["org.opencontainers.image.ref.name"] != child_sig.as_str())
    });
    assert_eq!(attachments(&unsigned).len(), 3);
    let r = ctx.run(&["verify", unsigned.to_str().unwrap(), "--key", "cosign.pub"]);
    assert_eq!(r.code(), 1, "{}", r.describe());

    // podman pulls the index and runs the amd64 child.
    let podman = Podman::new();
    let id = podman.load_layout(&layout, "1.0-hardened");
    let arch = podman.run(&["image", "inspect", "--format", "{{.Architecture}}", &id]);
    assert_eq!(String::from_utf8_lossy(&arch.stdout).trim(), "amd64");
    let mut args = vec!["run", "--rm"];
    args.extend(PODMAN_LIMITS);
    args.push(&id);
    let out = podman.run(&args);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello 63\n");
    drop(podman);

    // Reproducible: a rebuild gives the same index; a docker archive holds the amd64 child.
    let (_, again) = build(&ctx, "out2", &["--format", "docker-archive"]);
    assert_eq!(again["images"][0]["manifest_digest"], top.as_str());
    let docker = PathBuf::from(ctx.path()).join("out2/multiarch-hardened.docker.tar");
    let podman = Podman::new();
    let name = podman.load_archive(&docker);
    let id = podman.run(&["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(
        format!("sha256:{}", String::from_utf8_lossy(&id.stdout).trim()),
        image["config_digest"].as_str().unwrap()
    );
}

/// `build --sign-key` attests each child of the index with its own
/// provenance; `verify --attestations` on the index checks every child's,
/// and fails, naming the child, when one child's `.att` is gone.
#[test]
fn verify_attestations_of_an_index_needs_every_child() {
    let ctx = TestContext::new();
    ctx.generate_key_pair();
    let recipes = recipes();
    let v = ctx
        .ok_env(
            &[
                "build",
                "multiarch",
                "--tier",
                "hardened",
                "--recipes",
                &recipes,
                "--out",
                "out",
                "--sign-key",
                "cosign.key",
                "--json",
            ],
            &[COSIGN_TEST_PASSWORD],
        )
        .json();
    let top = v["images"][0]["manifest_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let child = v["images"][0]["platforms"][0]["manifest_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let layout = ctx.path().join("out/multiarch-hardened");
    let l = layout.to_str().unwrap();
    let verify = |l: &str, json: bool| {
        let mut args = vec!["verify", l, "--key", "cosign.pub", "--attestations"];
        if json {
            args.push("--json");
        }
        ctx.run(&args)
    };
    let r = verify(l, true);
    assert!(r.out.status.success(), "{}", r.describe());
    let a = r.json();
    assert_eq!(a["manifest_digest"], top.as_str(), "{a}");
    let children = a["children"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{a}");
    assert_eq!(children[0]["manifest_digest"], child.as_str(), "{a}");
    assert_eq!(
        children[0]["provenance"]["external_parameters"]["platform"], "linux/amd64",
        "{a}"
    );
    let text = verify(l, false).stdout();
    assert!(
        text.contains(&format!("platform manifest(s) of index {top}"))
            && text.contains(&format!("attestation(s) of {child}")),
        "{text}"
    );

    // The child's attestations removed: the index no longer verifies.
    let child_att = format!("sha256-{}.att", &child[7..]);
    edit_attachments(&layout, |list| {
        let before = list.len();
        list.retain(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"] != child_att.as_str()
        });
        assert_eq!(list.len(), before - 1, "no {child_att} among {list:?}");
    });
    let r = verify(l, false);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(
        r.stderr()
            .contains(&format!("no attestations for image {child}")),
        "{}",
        r.describe()
    );
    assert!(
        r.stderr().contains("hint: `build --sign-key` attests"),
        "{}",
        r.describe()
    );
}

#[test]
fn platform_selection_errors_name_the_platform() {
    let ctx = TestContext::new();
    // --platform picks one platform: today's single manifest, no warning.
    let r = run_build(&ctx, "out", &["--platform", "x86_64-linux"]);
    assert!(r.out.status.success(), "{}", r.describe());
    assert!(!r.stderr().contains("not built"), "{}", r.describe());
    let index_json = json_file(&ctx.path().join("out/multiarch-hardened/index.json"));
    assert_eq!(index_json["manifests"][0]["mediaType"], MANIFEST);
    // Only a platform this machine cannot build: an input error, nothing written.
    let r = run_build(&ctx, "none", &["--platform", "aarch64-linux"]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(
        r.stderr()
            .contains("none of its platforms can be built here")
            && r.stderr().contains("aarch64-linux"),
        "{}",
        r.describe()
    );
    assert!(!ctx.path().join("none").exists());
    // What Nix can build comes from Nix itself (`nix show-config`), with our
    // --builders applied: the nixpkgs set has no aarch64 builder here…
    let nixpkgs = ["--package-set", "nixpkgs", "--platform", "aarch64-linux"];
    let r = run_build(&ctx, "none", &nixpkgs);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(
        r.stderr()
            .contains("this Nix cannot build it (system x86_64-linux")
            && r.stderr().contains("no remote builders"),
        "{}",
        r.describe()
    );
    // …until one is given: then armorred asks Nix to build for aarch64-linux
    // (which fails here, as the nixpkgs set needs Nix >= 2.18 and a real builder).
    let mut with_builder = nixpkgs.to_vec();
    with_builder.extend(["--builders", "ssh://arm.invalid aarch64-linux"]);
    let r = run_build(&ctx, "none", &with_builder);
    assert_ne!(r.code(), 0, "{}", r.describe());
    assert!(
        !r.stderr().contains("cannot build it")
            && r.stderr().contains("tier `hardened` for aarch64-linux")
            && r.stderr().contains(r#""system":"aarch64-linux""#),
        "{}",
        r.describe()
    );
    // A platform the recipe does not list.
    let r = run_build(&ctx, "out", &["--platform", "riscv64-linux"]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(r.stderr().contains("lists only"), "{}", r.describe());
}

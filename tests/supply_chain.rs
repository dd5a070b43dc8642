//! Issue 4 on real images: cosign-format keys, signing and verification of
//! OCI layouts (with an independent Python checker), each verification
//! failure, and SBOMs of the built closure validated by the reference tools.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const PASS: &str = "correct horse";

/// A private copy of a built layout, so tests can sign and tamper freely.
fn copy_layout(ctx: &TestContext, src: &Path, name: &str) -> PathBuf {
    let dst = ctx.path().join(name);
    sh("cp", &["-a", src.to_str().unwrap(), dst.to_str().unwrap()]);
    dst
}

fn keypair(ctx: &TestContext, prefix: &str) -> (PathBuf, PathBuf) {
    let r = ctx.run_env(
        &["generate-key-pair", "--output-key-prefix", prefix],
        &[("COSIGN_PASSWORD", PASS)],
    );
    assert!(r.out.status.success(), "{}", r.describe());
    (
        ctx.path().join(format!("{prefix}.key")),
        ctx.path().join(format!("{prefix}.pub")),
    )
}

fn sign(ctx: &TestContext, layout: &Path, key: &Path) -> Run {
    ctx.run_env(
        &[
            "sign",
            layout.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--json",
        ],
        &[("COSIGN_PASSWORD", PASS)],
    )
}

fn verify(ctx: &TestContext, layout: &Path, public: &Path) -> Run {
    ctx.run(&[
        "verify",
        layout.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
    ])
}

fn index(layout: &Path) -> Value {
    serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap()
}

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let hex = hex::encode(Sha256::digest(bytes));
    fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len() as u64)
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

fn sig_entry(idx: &Value) -> (usize, Value) {
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .find(|(_, d)| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .is_some_and(|r| r.ends_with(".sig"))
        })
        .map(|(i, d)| (i, d.clone()))
        .expect("a signature entry in index.json")
}

#[test]
fn keys_are_cosign_format_and_private_key_is_0600() {
    let ctx = TestContext::new();
    let (key, public) = keypair(&ctx, "cosign");
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pem = fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    assert!(fs::read_to_string(&public)
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    // An implementation that shares no code with armorred decrypts it.
    let out = Command::new(python())
        .args([
            repo().join("tests/cosign_check.py").to_str().unwrap(),
            "decrypt",
            "--key",
        ])
        .arg(&key)
        .arg("--pub")
        .arg(&public)
        .env("COSIGN_PASSWORD", PASS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Refuses to overwrite.
    let again = ctx.run_env(
        &["generate-key-pair", "--output-key-prefix", "cosign"],
        &[("COSIGN_PASSWORD", PASS)],
    );
    assert_ne!(again.code(), 0);
    assert!(
        !again.stderr().contains(&pem[40..80]),
        "private key material in the error"
    );
}

#[test]
fn sign_then_verify_a_layout_and_check_independently() {
    let b = nginx();
    let ctx = TestContext::new();
    let (key, public) = keypair(&ctx, "k");
    let layout = copy_layout(&ctx, &b.locked, "locked");
    let s = sign(&ctx, &layout, &key);
    assert!(s.out.status.success(), "{}", s.describe());
    let s = s.json();
    assert_eq!(s["signatures"], 1);
    let digest = s["manifest_digest"].as_str().unwrap().to_string();
    assert_eq!(s["signature_tag"], format!("sha256-{}.sig", &digest[7..]));

    let v = verify(&ctx, &layout, &public);
    assert!(v.out.status.success(), "{}", v.describe());
    assert!(v.stdout().contains("tier: locked"), "{}", v.stdout());
    assert!(v.stdout().contains(&digest));

    // Signing the same payload again is idempotent (RFC 6979 signatures are
    // deterministic); a different payload appends, nothing is overwritten.
    assert_eq!(sign(&ctx, &layout, &key).json()["signatures"], 1);
    let s2 = ctx.run_env(
        &[
            "sign",
            layout.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "-a",
            "pipeline=ci",
            "--json",
        ],
        &[("COSIGN_PASSWORD", PASS)],
    );
    assert_eq!(s2.json()["signatures"], 2, "{}", s2.describe());
    ctx.ok(&["fsck", layout.to_str().unwrap()]);

    // The Python checker verifies the signature manifest on its own.
    let (_, sig) = sig_entry(&index(&layout));
    let manifest = layout.join("blobs/sha256").join(
        sig["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let out = Command::new(python())
        .args([
            repo().join("tests/cosign_check.py").to_str().unwrap(),
            "verify-image",
            "--pub",
        ])
        .arg(&public)
        .arg("--manifest")
        .arg(&manifest)
        .arg("--blobs")
        .arg(layout.join("blobs/sha256"))
        .args(["--digest", &digest])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // skopeo (not armorred) still reads the signed layout's image.
    sh(
        "skopeo",
        &[
            "inspect",
            &format!("oci:{}:1.22.1-locked", layout.display()),
        ],
    );
}

#[test]
fn verification_failures_are_clear() {
    let b = nginx();
    let ctx = TestContext::new();
    let (key, public) = keypair(&ctx, "good");
    let (_, other_pub) = keypair(&ctx, "other");

    // Missing signature.
    let unsigned = copy_layout(&ctx, &b.hardened, "unsigned");
    let r = verify(&ctx, &unsigned, &public);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(r.stderr().contains("has no signatures"), "{}", r.stderr());

    // Wrong key.
    let signed = copy_layout(&ctx, &b.hardened, "signed");
    assert!(sign(&ctx, &signed, &key).out.status.success());
    let r = verify(&ctx, &signed, &other_pub);
    assert_eq!(r.code(), 1);
    assert!(
        r.stderr().contains("signed with a different key"),
        "{}",
        r.stderr()
    );

    // Wrong passphrase when signing.
    let r = ctx.run_env(
        &[
            "sign",
            signed.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        &[("COSIGN_PASSWORD", "wrong")],
    );
    assert_ne!(r.code(), 0);
    assert!(
        r.stderr().to_lowercase().contains("passphrase")
            || r.stderr().to_lowercase().contains("password"),
        "{}",
        r.stderr()
    );

    // Edited payload: a new payload blob (changed identity), old signature.
    let edited = copy_layout(&ctx, &signed, "edited-payload");
    let mut idx = index(&edited);
    let (i, sig) = sig_entry(&idx);
    let mut m: Value =
        serde_json::from_slice(&blob(&edited, sig["digest"].as_str().unwrap())).unwrap();
    let payload = blob(&edited, m["layers"][0]["digest"].as_str().unwrap());
    let tampered = String::from_utf8(payload)
        .unwrap()
        .replace("armorred/nginx", "evil/nginx");
    let (pd, ps) = put_blob(&edited, tampered.as_bytes());
    m["layers"][0]["digest"] = pd.into();
    m["layers"][0]["size"] = ps.into();
    let (md, ms) = put_blob(&edited, &serde_json::to_vec(&m).unwrap());
    idx["manifests"][i]["digest"] = md.into();
    idx["manifests"][i]["size"] = ms.into();
    fs::write(edited.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    let r = verify(&ctx, &edited, &public);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(
        r.stderr().contains("payload or signature was altered"),
        "{}",
        r.stderr()
    );

    // Edited image manifest: its digest changes, so no signature names it.
    let changed = copy_layout(&ctx, &signed, "edited-manifest");
    let mut idx = index(&changed);
    let img_i = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .position(|d| d["annotations"]["org.opencontainers.image.ref.name"] == "1.22.1-hardened")
        .unwrap();
    let mut im: Value = serde_json::from_slice(&blob(
        &changed,
        idx["manifests"][img_i]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    im["annotations"]["org.example.injected"] = "yes".into();
    let (d, s) = put_blob(&changed, &serde_json::to_vec(&im).unwrap());
    idx["manifests"][img_i]["digest"] = d.clone().into();
    idx["manifests"][img_i]["size"] = s.into();
    fs::write(
        changed.join("index.json"),
        serde_json::to_vec(&idx).unwrap(),
    )
    .unwrap();
    let r = verify(&ctx, &changed, &public);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(
        r.stderr().contains(&d),
        "names the changed digest: {}",
        r.stderr()
    );

    // A valid signature, but for another image's digest.
    let locked = copy_layout(&ctx, &b.locked, "other-digest");
    let mut lidx = index(&locked);
    let (_, hsig) = sig_entry(&index(&signed));
    let locked_digest = lidx["manifests"][0]["digest"].as_str().unwrap().to_string();
    // Copy the hardened signature's blobs over and file it under the locked tag.
    for e in fs::read_dir(signed.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let dst = locked.join("blobs/sha256").join(e.file_name());
        if !dst.exists() {
            fs::copy(e.path(), dst).unwrap();
        }
    }
    let mut moved = hsig.clone();
    moved["annotations"]["org.opencontainers.image.ref.name"] =
        format!("sha256-{}.sig", &locked_digest[7..]).into();
    lidx["manifests"].as_array_mut().unwrap().push(moved);
    fs::write(
        locked.join("index.json"),
        serde_json::to_vec(&lidx).unwrap(),
    )
    .unwrap();
    let r = verify(&ctx, &locked, &public);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(r.stderr().contains(&locked_digest), "{}", r.stderr());
}

fn closure_len(package: &str, extra: Option<&str>) -> usize {
    let mut args = vec!["--query", "--requisites", package];
    if let Some(e) = extra {
        args.push(e);
    }
    String::from_utf8(sh("nix-store", &args).stdout)
        .unwrap()
        .lines()
        .count()
}

#[test]
fn sboms_of_built_images_validate_and_count_the_closure() {
    let b = nginx();
    for layout in [&b.hardened, &b.locked] {
        let spdx = b
            .ctx
            .ok(&["sbom", layout.to_str().unwrap(), "--format", "spdx"])
            .json();
        let cdx = b
            .ctx
            .ok(&["sbom", layout.to_str().unwrap(), "--format", "cyclonedx"])
            .json();
        let dir = tempfile::tempdir().unwrap();
        let (sp, cp) = (
            dir.path().join("s.spdx.json"),
            dir.path().join("c.cdx.json"),
        );
        fs::write(&sp, serde_json::to_vec(&spdx).unwrap()).unwrap();
        fs::write(&cp, serde_json::to_vec(&cdx).unwrap()).unwrap();
        let out = Command::new(python())
            .arg(repo().join("tests/validate_sbom.py"))
            .arg(&sp)
            .arg(&cp)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        // The component count is the closure's store-path count.
        let inspect = b
            .ctx
            .ok(&["inspect", layout.to_str().unwrap(), "--json"])
            .json();
        let package = inspect["labels"]["org.armorred.nix.package"]
            .as_str()
            .unwrap();
        let analysis = b
            .ctx
            .ok(&["analyze", layout.to_str().unwrap(), "--json"])
            .json();
        let shell = analysis["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .find(|c| c.contains("-busybox"));
        let n = closure_len(package, shell);
        assert_eq!(cdx["components"].as_array().unwrap().len(), n);
        assert_eq!(
            spdx["packages"].as_array().unwrap().len(),
            n + 1,
            "the image itself is the extra SPDX package"
        );
        assert_eq!(analysis["component_count"], n);
        // The serial number is derived from the image digest: reproducible.
        let digest = inspect["manifest_digest"].as_str().unwrap();
        assert!(cdx["serialNumber"]
            .as_str()
            .unwrap()
            .starts_with("urn:uuid:"));
        let again = b
            .ctx
            .ok(&["sbom", layout.to_str().unwrap(), "--format", "cyclonedx"])
            .json();
        assert_eq!(again["serialNumber"], cdx["serialNumber"]);
        let att = &inspect["attachments"];
        assert_eq!(att.as_array().unwrap().len(), 2, "{att}");
        assert!(digest.starts_with("sha256:"));
        let openssl = cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "openssl")
            .unwrap();
        assert!(openssl["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:nix/openssl@"));
        assert_eq!(openssl["licenses"][0]["license"]["id"], "Apache-2.0");
    }
}

/// A multi-platform index (two children here): `sign` signs the index and
/// every child, and `verify` checks each of them.
#[test]
fn signing_an_index_signs_every_child() {
    let b = nginx();
    let ctx = TestContext::new();
    let (key, public) = keypair(&ctx, "k");
    let layout = copy_layout(&ctx, &b.hardened, "multi");
    // Bring the locked image's blobs in and make an index of both manifests.
    for e in fs::read_dir(b.locked.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let dst = layout.join("blobs/sha256").join(e.file_name());
        if !dst.exists() {
            fs::copy(e.path(), dst).unwrap();
        }
    }
    let child = |l: &Path| {
        let mut d = index(l)["manifests"][0].clone();
        d.as_object_mut().unwrap().remove("annotations");
        d
    };
    let children = vec![child(&b.hardened), child(&b.locked)];
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children,
    });
    let (digest, size) = put_blob(&layout, &serde_json::to_vec(&idx).unwrap());
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": "multi"}
    }]});
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();

    let s = sign(&ctx, &layout, &key);
    assert!(s.out.status.success(), "{}", s.describe());
    let signed: Vec<String> = serde_json::from_value(s.json()["signed"].clone()).unwrap();
    assert_eq!(signed.len(), 3, "{signed:?}");
    assert_eq!(signed[0], digest);
    let tags: Vec<String> = index(&layout)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    for d in &signed {
        assert!(
            tags.contains(&format!("sha256-{}.sig", &d[7..])),
            "{d} unsigned: {tags:?}"
        );
    }
    let v = verify(&ctx, &layout, &public);
    assert!(v.out.status.success(), "{}", v.describe());
    assert!(v.stdout().contains(&digest), "{}", v.stdout());
    // Remove one child's signature: verification of the index fails, naming it.
    let child_digest = signed[2].clone();
    let mut top = index(&layout);
    top["manifests"].as_array_mut().unwrap().retain(|d| {
        d["annotations"]["org.opencontainers.image.ref.name"]
            != format!("sha256-{}.sig", &child_digest[7..]).as_str()
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let v = verify(&ctx, &layout, &public);
    assert_eq!(v.code(), 1, "{}", v.describe());
    assert!(v.stderr().contains(&child_digest), "{}", v.stderr());
}

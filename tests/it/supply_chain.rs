//! Supply chain on real images: cosign-format keys, signing and verification of
//! OCI layouts (with an independent Python checker), each verification
//! failure, and SBOMs of the built closure validated by the reference tools.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
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

/// The signature manifest's entry among the image's attachments.
fn sig_entry(layout: &Path) -> (usize, Value) {
    attachments(layout)
        .into_iter()
        .enumerate()
        .find(|(_, d)| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .is_some_and(|r| r.ends_with(".sig"))
        })
        .expect("a signature among the attachments")
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
    let (_, sig) = sig_entry(&layout);
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
            &format!("oci:{}:1.26.3-locked", layout.display()),
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
    let (i, sig) = sig_entry(&edited);
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
    edit_attachments(&edited, |list| {
        list[i]["digest"] = md.into();
        list[i]["size"] = ms.into();
    });
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
        .position(|d| d["annotations"]["org.opencontainers.image.ref.name"] == "1.26.3-hardened")
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
    let (_, hsig) = sig_entry(&signed);
    let locked_digest = index(&locked)["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
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
    edit_attachments(&locked, |list| list.push(moved));
    let r = verify(&ctx, &locked, &public);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(r.stderr().contains(&locked_digest), "{}", r.stderr());
}

fn closure_len(package: &str, extra: &[&str]) -> usize {
    let mut args = vec!["--query", "--requisites", package];
    args.extend_from_slice(extra);
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
        let mut validate = Command::new(python());
        validate
            .arg(repo().join("tests/validate_sbom.py"))
            .arg(&sp)
            .arg(&cp);
        let vex = b
            .ctx
            .run(&["sbom", layout.to_str().unwrap(), "--format", "openvex"]);
        if vex.out.status.success() {
            let vp = dir.path().join("v.openvex.json");
            fs::write(&vp, &vex.out.stdout).unwrap();
            validate.arg(&vp);
        }
        let out = validate.output().unwrap();
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
        // The image's other roots: the shell layer (locked) and the
        // entrypoint compatibility program (hardened).
        let extra: Vec<&str> = analysis["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .filter(|c| c.contains("-busybox") || c.contains("-armorred-entrypoint"))
            .collect();
        let n = closure_len(package, &extra);
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
        // Both SBOMs, and the VEX document exactly when a Debian patch fixes a CVE.
        let att = inspect["attachments"].as_array().unwrap();
        let of_type = |t: &str| att.iter().filter(|a| a["artifact_type"] == t).count();
        assert_eq!(of_type("application/spdx+json"), 1, "{att:?}");
        assert_eq!(of_type("application/vnd.cyclonedx+json"), 1, "{att:?}");
        let fixes_a_cve = cdx["components"].as_array().unwrap().iter().any(|c| {
            c["pedigree"]["patches"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p.get("resolves").is_some()))
        });
        assert_eq!(
            of_type("application/vnd.openvex+json"),
            usize::from(fixes_a_cve),
            "{att:?}"
        );
        assert_eq!(att.len(), 2 + usize::from(fixes_a_cve), "{att:?}");
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
    assert_eq!(index(&layout)["manifests"].as_array().unwrap().len(), 1);
    let tags: Vec<String> = attachments(&layout)
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
    edit_attachments(&layout, |list| {
        list.retain(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                != format!("sha256-{}.sig", &child_digest[7..]).as_str()
        })
    });
    let v = verify(&ctx, &layout, &public);
    assert_eq!(v.code(), 1, "{}", v.describe());
    assert!(v.stderr().contains(&child_digest), "{}", v.stderr());
}

/// The element of a JSON array whose `name` is `name`.
fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

/// `dpkg-query -W -f=<format> libc6` on this host.
fn libc6(format: &str) -> String {
    String::from_utf8(sh("dpkg-query", &["-W", &format!("-f={format}"), "libc6"]).stdout)
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn glibc_is_named_with_version_cpe_and_the_hosts_libc6() {
    let (ctx, layout) = hello();
    let l = layout.to_str().unwrap();
    let cdx = ctx.ok(&["sbom", l, "--format", "cyclonedx"]).json();
    let glibc = named(&cdx["components"], "glibc");

    let deb_version = libc6("${Version}");
    // Debian's `[epoch:]upstream-revision`: the store path carries the upstream part.
    let no_epoch = deb_version
        .split_once(':')
        .map_or(&*deb_version, |(_, v)| v);
    let upstream = no_epoch.rsplit_once('-').unwrap().0;
    let arch = libc6("${Architecture}");
    let os_release = fs::read_to_string("/etc/os-release").unwrap();
    let field = |k: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .trim_matches('"')
            .to_string()
    };
    let distro = format!("{}-{}", field("ID"), field("VERSION_ID"));

    assert_eq!(glibc["version"], upstream, "{glibc}");
    assert_eq!(
        glibc["cpe"],
        format!("cpe:2.3:a:gnu:glibc:{upstream}:*:*:*:*:*:*:*")
    );
    assert_eq!(
        glibc["purl"],
        format!(
            "pkg:deb/debian/libc6@{}?arch={arch}&distro={distro}",
            deb_version.replace('+', "%2B")
        ),
        "{glibc}"
    );
    let prop = |name: &str| {
        glibc["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["value"].as_str().unwrap().to_string())
    };
    let store_path = prop("nix:store_path").unwrap();
    assert!(
        store_path.ends_with(&format!("-glibc-{upstream}")),
        "{store_path}"
    );
    assert!(prop("nix:purl")
        .unwrap()
        .starts_with(&format!("pkg:nix/glibc@{upstream}?")));
    // syft's Nix cataloger, reading the store path as it lies in the image,
    // lists glibc with its version and a CPE.
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("nix/store")).unwrap();
    sh(
        "cp",
        &[
            "-a",
            &store_path,
            root.path().join("nix/store").to_str().unwrap(),
        ],
    );
    let scanned: Value = serde_json::from_slice(
        &Command::new(venv_tool("syft"))
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
            .args([
                "scan",
                &format!("dir:{}", root.path().display()),
                "-o",
                "json",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let found = scanned["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "glibc" && a["type"] == "nix")
        .unwrap_or_else(|| panic!("syft lists no glibc: {scanned}"));
    assert_eq!(found["version"], upstream);
    assert!(!found["cpes"].as_array().unwrap().is_empty(), "{found}");
    // The store path records the same origin the SBOM names.
    let origin: Value = serde_json::from_slice(
        &fs::read(Path::new(&store_path).join("nix-support/armorred-origin.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(origin["packages"][0]["package"], "libc6");
    assert_eq!(origin["packages"][0]["version"], deb_version);

    // SPDX names the same purl.
    let spdx = ctx.ok(&["sbom", l, "--format", "spdx"]).json();
    let spdx_glibc = named(&spdx["packages"], "glibc");
    assert_eq!(spdx_glibc["versionInfo"], upstream);
    assert!(spdx_glibc["externalRefs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["referenceLocator"] == glibc["purl"]));

    // inspect shows the version and the Debian package it came from.
    let text = ctx.ok(&["inspect", l]).stdout();
    assert!(
        text.contains(&format!("glibc {upstream} (Debian {deb_version})")),
        "{text}"
    );
    // hello fixes no CVE: no VEX document, and `sbom` says why.
    let vex = ctx.run(&["sbom", l, "--format", "openvex"]);
    assert_eq!(vex.code(), 1, "{}", vex.describe());
    assert!(
        vex.stderr().contains("no OpenVEX document"),
        "{}",
        vex.describe()
    );
}

/// CVE ids (upper-cased) in `text`: `CVE-`, four digits, `-`, four or more digits.
fn cve_ids(text: &str) -> std::collections::BTreeSet<String> {
    let upper = text.to_ascii_uppercase();
    let b = upper.as_bytes();
    let mut out = std::collections::BTreeSet::new();
    let mut i = 0;
    while let Some(at) = upper[i..].find("CVE-") {
        let start = i + at;
        let mut j = start + 4;
        let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        let year = digits(j);
        if year == 4 && b.get(j + 4) == Some(&b'-') {
            j += 5;
            let seq = digits(j);
            if seq >= 4 {
                out.insert(upper[start..j + seq].to_string());
            }
        }
        i = start + 4;
    }
    out
}

/// The files under `debian/` of a Debian source's Debian part, by path from
/// `debian/` on: members of a `*.debian.tar.*` (format 3.0) read with `tar`,
/// or the files a `*.diff.gz` (format 1.0) creates, read with `gzip`.
fn debian_files(artifact: &Path) -> std::collections::BTreeMap<String, String> {
    let a = artifact.to_str().unwrap();
    let mut files = std::collections::BTreeMap::new();
    if a.ends_with(".diff.gz") {
        let text = String::from_utf8_lossy(&sh("gzip", &["-dc", a]).stdout).into_owned();
        for (path, body) in files_created_by_diff(&text) {
            if let Some(i) = path.find("debian/") {
                files.insert(path[i..].to_string(), body);
            }
        }
        return files;
    }
    let listing = String::from_utf8(sh("tar", &["-tf", a]).stdout).unwrap();
    for member in listing.lines().filter(|m| !m.ends_with('/')) {
        let rel = member.trim_start_matches("./");
        if rel.starts_with("debian/patches/") {
            let body =
                String::from_utf8_lossy(&sh("tar", &["-xOf", a, member]).stdout).into_owned();
            files.insert(rel.to_string(), body);
        }
    }
    files
}

/// The files a unified diff creates or changes, with the lines it gives them
/// (`+` and context lines of each hunk), by the path after `+++ `.
fn files_created_by_diff(diff: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut lines = diff.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(path) = line.strip_prefix("+++ ") {
            let path = path.split('\t').next().unwrap().trim().to_string();
            out.push((path, String::new()));
            continue;
        }
        // `@@ -a,b +c,d @@`: then b old and d new lines, `-`, `+` or ` `.
        let Some(ranges) = line.strip_prefix("@@ -") else {
            continue;
        };
        let count = |r: &str| -> usize { r.split(',').nth(1).map_or(1, |n| n.parse().unwrap()) };
        let mut parts = ranges.split_whitespace();
        let (mut old, mut new) = (
            count(parts.next().unwrap()),
            count(parts.next().unwrap().trim_start_matches('+')),
        );
        let body = &mut out.last_mut().expect("a hunk after a +++ line").1;
        while old > 0 || new > 0 {
            let Some(l) = lines.next() else { break };
            match l.as_bytes().first() {
                Some(b'+') => {
                    new -= 1;
                    body.push_str(&l[1..]);
                    body.push('\n');
                }
                Some(b'-') => old -= 1,
                Some(b'\\') => {}
                _ => {
                    old = old.saturating_sub(1);
                    new = new.saturating_sub(1);
                    body.push_str(l.get(1..).unwrap_or(""));
                    body.push('\n');
                }
            }
        }
    }
    out
}

/// The CVEs the Debian source's own `debian/patches` name: for each patch in
/// `series`, those in its file name and its DEP-3 header (the lines before
/// the first `---`, `diff` or `Index:` line). Read with `tar` or `gzip`, not
/// with armorred's selection code. No `series`, no patches.
fn cves_in_debian_tarball(artifact: &Path) -> std::collections::BTreeSet<String> {
    let files = debian_files(artifact);
    let mut cves = std::collections::BTreeSet::new();
    let Some(series) = files.get("debian/patches/series") else {
        return cves;
    };
    for line in series.lines() {
        // `name [-pN]`; `#` starts a comment.
        let Some(name) = line.split('#').next().unwrap().split_whitespace().next() else {
            continue;
        };
        let text = files
            .get(&format!("debian/patches/{name}"))
            .unwrap_or_else(|| {
                panic!(
                    "{}: series names {name}, which it lacks",
                    artifact.display()
                )
            });
        let header: Vec<&str> = text
            .lines()
            .take_while(|l| {
                !(l.starts_with("---") || l.starts_with("diff") || l.starts_with("Index:"))
            })
            .collect();
        cves.extend(cve_ids(name));
        cves.extend(cve_ids(&header.join("\n")));
    }
    cves
}

#[test]
fn a_format_1_diff_is_read_for_the_files_it_creates() {
    let diff = [
        "--- pcre2-10.46.orig/debian/patches/series",
        "+++ pcre2-10.46/debian/patches/series",
        "@@ -0,0 +1,2 @@",
        "+fix-CVE-2025-0001.patch",
        "+other.patch",
        "--- pcre2-10.46.orig/src/x.c",
        "+++ pcre2-10.46/src/x.c",
        "@@ -1,3 +1,3 @@",
        " a",
        "-b",
        "+c",
        " d",
    ]
    .join("\n");
    let files = files_created_by_diff(&diff);
    assert_eq!(
        files[0],
        (
            "pcre2-10.46/debian/patches/series".to_string(),
            "fix-CVE-2025-0001.patch\nother.patch\n".to_string()
        )
    );
    assert_eq!(files[1].1, "a\nc\nd\n");
}

#[test]
fn cve_ids_are_found_in_names_and_headers() {
    assert_eq!(
        cve_ids("CVE-2023-44487.patch cve-2024-7347 CVE-24-1 CVE-2025-123 (CVE-2025-23419)"),
        ["CVE-2023-44487", "CVE-2024-7347", "CVE-2025-23419"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

/// For every component of both nginx tiers and both redis tiers built from a
/// Debian source, the CVEs the SBOM says its patches resolve, and those the
/// VEX states fixed for it, are exactly the CVEs the Debian tarball's patches
/// name.
#[test]
fn sbom_and_vex_cves_are_the_debian_tarballs() {
    let sources = sources_dir();
    let b = nginx();
    let r = redis();
    let mut checked = 0;
    let mut redis_checked = false;
    for layout in [&b.hardened, &b.locked, &r.hardened, &r.locked] {
        let l = layout.to_str().unwrap();
        let cdx = b.ctx.ok(&["sbom", l, "--format", "cyclonedx"]).json();
        let vex = b.ctx.run(&["sbom", l, "--format", "openvex"]);
        let vex: Option<Value> = vex.out.status.success().then(|| vex.json());
        for c in cdx["components"].as_array().unwrap() {
            let store_path = c["properties"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "nix:store_path")
                .and_then(|p| p["value"].as_str())
                .unwrap();
            let patches_file = Path::new(store_path).join("nix-support/armorred-patches.json");
            let Ok(bytes) = fs::read(&patches_file) else {
                continue;
            };
            let recorded: Value = serde_json::from_slice(&bytes).unwrap();
            let tarball = sources.join(recorded["debianTarball"]["file"].as_str().unwrap());
            let want = cves_in_debian_tarball(&tarball);

            let in_sbom: std::collections::BTreeSet<String> = c["pedigree"]["patches"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|p| p["resolves"].as_array().into_iter().flatten())
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(
                in_sbom,
                want,
                "{store_path}: CycloneDX resolves vs {}",
                tarball.display()
            );

            let in_vex: std::collections::BTreeSet<String> = vex
                .iter()
                .flat_map(|v| v["statements"].as_array().unwrap())
                .filter(|s| {
                    s["status"] == "fixed"
                        && s["products"].as_array().unwrap().iter().any(|p| {
                            p["subcomponents"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|sc| sc["identifiers"]["purl"] == c["purl"])
                        })
                })
                .map(|s| s["vulnerability"]["name"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(
                in_vex,
                want,
                "{store_path}: OpenVEX vs {}",
                tarball.display()
            );
            checked += 1;
            redis_checked |= store_path.contains("-redis-");
        }
    }
    assert!(
        checked >= 2 && redis_checked,
        "no nginx or redis component records armorred-patches.json: are the Debian-source builds in?"
    );
}

/// A package whose output records applied Debian patches (the `patched`
/// fixture): the build attaches a VEX document beside the SBOMs, all three
/// validate, and `inspect` counts the fixes.
#[test]
fn recorded_debian_patches_become_pedigree_vex_and_inspect_lines() {
    let ctx = TestContext::new();
    let layout = build_fixture(&ctx, "patched", "hardened", &[], &[]);
    let l = layout.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (format, file) in [
        ("spdx", "s.spdx.json"),
        ("cyclonedx", "c.cdx.json"),
        ("openvex", "v.openvex.json"),
    ] {
        let f = dir.path().join(file);
        ctx.ok(&["sbom", l, "--format", format, "-o", f.to_str().unwrap()]);
        files.push(f);
    }
    let out = Command::new(python())
        .arg(repo().join("tests/validate_sbom.py"))
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let record: Value = serde_json::from_slice(
        &fs::read(repo().join("tests/fixtures/recipes/patched.armorred-patches.json")).unwrap(),
    )
    .unwrap();
    let want: std::collections::BTreeSet<String> = record["patches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["cves"].as_array().unwrap())
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(want.len(), 3);

    let cdx: Value = serde_json::from_slice(&fs::read(&files[1]).unwrap()).unwrap();
    let vex: Value = serde_json::from_slice(&fs::read(&files[2]).unwrap()).unwrap();
    let patched = named(&cdx["components"], "patched");
    let resolved: std::collections::BTreeSet<String> = patched["pedigree"]["patches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["resolves"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(resolved, want);
    let image_purl = &cdx["metadata"]["component"]["purl"];
    let stated: std::collections::BTreeSet<String> = vex["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "fixed");
            assert_eq!(&s["products"][0]["identifiers"]["purl"], image_purl);
            assert!(image_purl
                .as_str()
                .unwrap()
                .starts_with(s["products"][0]["@id"].as_str().unwrap()));
            assert_eq!(
                s["products"][0]["subcomponents"][0]["identifiers"]["purl"],
                patched["purl"]
            );
            assert_eq!(
                s["products"][0]["subcomponents"][0]["@id"],
                "pkg:nix/patched@1.0"
            );
            s["vulnerability"]["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(stated, want);
    // The VEX document is attached like the SBOMs, with the image as subject.
    let inspect = ctx.ok(&["inspect", l, "--json"]).json();
    let vex_attachments = inspect["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["artifact_type"] == "application/vnd.openvex+json")
        .count();
    assert_eq!(vex_attachments, 1, "{inspect}");
    let shown = named(&inspect["components"], "patched");
    assert_eq!(shown["security_fixes"], 2);
    assert_eq!(shown["debian_version"], "1.0-1+deb13u1");
    let text = ctx.ok(&["inspect", l]).stdout();
    assert!(
        text.contains("patched 1.0 (+2 Debian security fixes, 1.0-1+deb13u1)"),
        "{text}"
    );
}

/// `build hello --tier hardened --sign-key k.key`: the layout, the key pair.
fn signed_hello(ctx: &TestContext) -> (PathBuf, PathBuf, PathBuf) {
    let (key, public) = keypair(ctx, "k");
    let layout = build_fixture(
        ctx,
        "hello",
        "hardened",
        &["--sign-key", key.to_str().unwrap()],
        &[("COSIGN_PASSWORD", PASS)],
    );
    (layout, key, public)
}

/// `verify --attestations` on a layout fails closed, exit 1 each time: a
/// layout only signed (`sign`) has none; another key; an attestation by
/// another key appended; one by the right key about another image.
#[test]
fn verify_attestations_on_a_layout_fails_closed() {
    use armorred::sign::{dsse, keys, layout::attest_digest};
    let ctx = TestContext::new();
    let (layout, key, public) = signed_hello(&ctx);
    let attest = |layout: &Path, public: &Path| {
        ctx.run(&[
            "verify",
            layout.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
            "--attestations",
        ])
    };
    let ok = attest(&layout, &public);
    assert!(ok.out.status.success(), "{}", ok.describe());
    assert!(
        ok.stdout().contains("https://slsa.dev/provenance/v1"),
        "{}",
        ok.stdout()
    );
    let digest = index(&layout)["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let fails = |layout: &Path, public: &Path, why: &str| {
        let r = attest(layout, public);
        assert_eq!(r.code(), 1, "{}", r.describe());
        assert!(r.stderr().contains(why), "{why}: {}", r.describe());
    };

    let (_, other_public) = keypair(&ctx, "other");
    fails(&layout, &other_public, "does not verify");

    let plain = ctx.path().join("plain");
    ctx.ok(&[
        "build",
        "hello",
        "--tier",
        "hardened",
        "--recipes",
        repo().join("tests/fixtures/recipes").to_str().unwrap(),
        "--out",
        plain.to_str().unwrap(),
    ]);
    let plain = plain.join("hello-hardened");
    assert!(sign(&ctx, &plain, &key).out.status.success());
    fails(&plain, &public, "no attestations");
    fails(&plain, &public, "hint: `build --sign-key` attests");

    let stranger = copy_layout(&ctx, &layout, "stranger");
    let statement = |subject: &str| {
        serde_json::to_vec(&dsse::Statement::about_image(
            "hello",
            subject,
            "https://spdx.dev/Document",
            serde_json::json!({}),
        ))
        .unwrap()
    };
    attest_digest(
        &stranger,
        &digest,
        &[("https://spdx.dev/Document", statement(&digest))],
        &keys::generate(),
    )
    .unwrap();
    fails(&stranger, &public, "does not verify");

    let elsewhere = copy_layout(&ctx, &layout, "elsewhere");
    let other_image = format!("sha256:{}", "ab".repeat(32));
    let own_key =
        keys::decrypt_private_key(&fs::read_to_string(&key).unwrap(), PASS.as_bytes()).unwrap();
    attest_digest(
        &elsewhere,
        &digest,
        &[("https://spdx.dev/Document", statement(&other_image))],
        &own_key,
    )
    .unwrap();
    fails(&elsewhere, &public, "not image");
}

/// `build hello --sign-key` leaves a layout whose index.json lists the image
/// only, so the real syft reads it in place (as a path and as `oci-dir:`)
/// while the signature and both SBOMs stay attached. skopeo, umoci, podman
/// and oras read it too; a second signature appends; fsck finds nothing to
/// report and gc keeps every attachment.
#[test]
fn syft_and_the_other_tools_read_a_signed_layout_in_place() {
    let ctx = TestContext::new();
    let (layout, key, public) = signed_hello(&ctx);
    let l = layout.to_str().unwrap();
    let idx = index(&layout);
    let entries = idx["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{idx}");
    assert_eq!(
        entries[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let digest = entries[0]["digest"].as_str().unwrap().to_string();
    let sig_tag = format!("sha256-{}.sig", &digest[7..]);
    let kinds = |layout: &Path| {
        let mut k: Vec<String> = attachments(layout)
            .iter()
            .map(|d| {
                let subject = &d["annotations"]["org.armorred.subject"];
                match d["annotations"]["org.opencontainers.image.ref.name"].as_str() {
                    Some(tag) => tag.to_string(),
                    None if subject == digest.as_str() => d["artifactType"].to_string(),
                    None => format!("{d} (another subject)"),
                }
            })
            .collect();
        k.sort();
        k
    };
    // build --sign-key also attests: cosign's `.att` manifest sorts before `.sig`.
    let attached = vec![
        "\"application/spdx+json\"".to_string(),
        "\"application/vnd.cyclonedx+json\"".to_string(),
        format!("sha256-{}.att", &digest[7..]),
        sig_tag.clone(),
    ];
    assert_eq!(kinds(&layout), attached);
    assert_eq!(
        attachments_index(&layout)["artifactType"],
        "application/vnd.armorred.attachments.v1+json"
    );

    // The store paths in the image, as umoci unpacks it.
    let bundle = ctx.path().join("bundle");
    sh(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{l}:1.0-hardened"),
            bundle.to_str().unwrap(),
        ],
    );
    let in_image: std::collections::BTreeSet<String> =
        fs::read_dir(bundle.join("rootfs/nix/store"))
            .unwrap()
            .map(|e| format!("/nix/store/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
    assert!(
        in_image.iter().any(|p| p.ends_with("-hello-1.0")),
        "{in_image:?}"
    );
    // syft reads the layout as build left it, both ways users name it, and
    // lists every store path of the image as a package.
    for source in [l.to_string(), format!("oci-dir:{l}")] {
        let catalog = syft_json(&source);
        assert_eq!(
            catalog["source"]["metadata"]["manifestDigest"],
            digest.as_str()
        );
        assert_syft_lists_store_paths(&catalog, &in_image);
    }

    // skopeo, podman and oras read the image by its reference.
    let v: Value = serde_json::from_slice(
        &sh("skopeo", &["inspect", &format!("oci:{l}:1.0-hardened")]).stdout,
    )
    .unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    let podman = Podman::new();
    let id = podman.load_layout(&layout, "1.0-hardened");
    let mut args = vec!["run", "--rm"];
    args.extend(PODMAN_LIMITS);
    args.push(&id);
    assert_eq!(
        String::from_utf8_lossy(&podman.run(&args).stdout),
        "hello 63\n"
    );
    drop(podman);
    let fetched = sh(
        "oras",
        &[
            "manifest",
            "fetch",
            "--oci-layout",
            &format!("{l}:1.0-hardened"),
        ],
    )
    .stdout;
    assert_eq!(fetched, blob(&layout, &digest));
    let copy = ctx.path().join("oras-copy");
    sh(
        "oras",
        &[
            "copy",
            "--from-oci-layout",
            &format!("{l}:1.0-hardened"),
            "--to-oci-layout",
            &format!("{}:x", copy.display()),
        ],
    );
    assert_eq!(index(&copy)["manifests"][0]["digest"], digest.as_str());

    // verify passes; a second signature (another payload) is appended to the
    // same signature manifest, and the SBOMs stay.
    let v = verify(&ctx, &layout, &public);
    assert!(v.out.status.success(), "{}", v.describe());
    let s2 = ctx.run_env(
        &[
            "sign",
            l,
            "--key",
            key.to_str().unwrap(),
            "-a",
            "run=2",
            "--json",
        ],
        &[("COSIGN_PASSWORD", PASS)],
    );
    assert_eq!(s2.json()["signatures"], 2, "{}", s2.describe());
    assert_eq!(index(&layout)["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(kinds(&layout), attached);
    let (_, sig) = sig_entry(&layout);
    let m: Value = serde_json::from_slice(&blob(&layout, sig["digest"].as_str().unwrap())).unwrap();
    assert_eq!(m["layers"].as_array().unwrap().len(), 2, "{m}");
    assert!(verify(&ctx, &layout, &public).out.status.success());
    let spdx: Value =
        serde_json::from_str(&ctx.ok(&["sbom", l, "--format", "spdx"]).stdout()).unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    let inspect = ctx.ok(&["inspect", l, "--json"]).json();
    assert_eq!(
        inspect["attachments"].as_array().unwrap().len(),
        4,
        "{inspect}"
    );
    // fsck: every blob reached, none stray (gc after each write kept the
    // attachments and removed the first signature manifest).
    let f = ctx.ok(&["fsck", l, "--json"]).json();
    assert_eq!(f["problems"], serde_json::json!([]), "{f}");
    assert_eq!(f["unreferenced"], 0, "{f}");
    assert_syft_lists_store_paths(&syft_json(l), &in_image);
}

/// A layout of the earlier shape (attachments listed beside the image in
/// index.json) still verifies and shows its SBOMs; the next `sign` moves its
/// attachments into an attachments index, after which syft reads it.
#[test]
fn a_layout_with_attachments_in_index_json_is_read_then_moved() {
    let ctx = TestContext::new();
    let (layout, key, public) = signed_hello(&ctx);
    let l = layout.to_str().unwrap();
    // Rewrite it as an earlier armorred wrote it.
    let mut idx = index(&layout);
    let listed = attachments(&layout);
    idx["manifests"][0]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("org.armorred.attachments");
    idx["manifests"].as_array_mut().unwrap().extend(listed);
    fs::write(layout.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    // The image, both SBOMs, the `.sig` and the `.att` manifests.
    assert_eq!(index(&layout)["manifests"].as_array().unwrap().len(), 5);
    // The shape syft refuses, which is why attachments moved out of index.json
    // (given the bare path, syft falls back to scanning it as a directory and
    // finds no package).
    let refused = Command::new(venv_tool("syft"))
        .arg(format!("oci-dir:{l}"))
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .unwrap();
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr)
                .contains("unexpected number of OCI directory manifests"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    assert!(verify(&ctx, &layout, &public).out.status.success());
    ctx.ok(&[
        "verify",
        l,
        "--key",
        public.to_str().unwrap(),
        "--attestations",
    ]);
    ctx.ok(&["sbom", l, "--format", "cyclonedx"]);
    assert_eq!(
        ctx.ok(&["inspect", l, "--json"]).json()["attachments"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let f = ctx.ok(&["fsck", l, "--json"]).json();
    assert_eq!(f["problems"], serde_json::json!([]), "{f}");

    let s = sign(&ctx, &layout, &key);
    assert_eq!(s.json()["signatures"], 1, "{}", s.describe());
    assert_eq!(index(&layout)["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(attachments(&layout).len(), 4);
    assert!(verify(&ctx, &layout, &public).out.status.success());
    syft_json(l);
}

/// The Debian source tarballs the provenance of a signed nginx build lists
/// in `resolvedDependencies` are exactly the fixed-output fetches in the
/// build graph of the package's derivation, as Nix records them: each
/// fetch's file name (its URL's) and the sha256 of the file in the store,
/// which is the `outputHash` Nix checked. The derivation named is the
/// package's deriver, with the sha256 of the `.drv` file.
#[test]
fn provenance_tarballs_are_the_fetches_nix_built_nginx_from() {
    use std::collections::BTreeSet;
    let ctx = TestContext::new();
    let (key, _) = keypair(&ctx, "k");
    ctx.ok_env(
        &[
            "build",
            "nginx",
            "--tier",
            "hardened",
            "--out",
            "out",
            "--sign-key",
            key.to_str().unwrap(),
        ],
        &[("COSIGN_PASSWORD", PASS)],
    );
    let layout = ctx.path().join("out/nginx-hardened");
    let statement: Value = serde_json::from_slice(&attested_provenance(&layout)).unwrap();
    let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();

    // The package's store path, as the image's config names it, and its
    // derivation as Nix knows it.
    let config = armorred::oci::layout::Layout::open(&layout)
        .unwrap()
        .load_image(None)
        .unwrap()
        .config;
    let package = config["config"]["Labels"]["org.armorred.nix.package"]
        .as_str()
        .unwrap()
        .to_string();
    let text = |program: &str, args: &[&str]| {
        String::from_utf8(sh(program, args).stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    let drv = text("nix-store", &["--query", "--deriver", &package]);
    let drv_sha256 = hex::encode(Sha256::digest(fs::read(&drv).unwrap()));
    assert!(
        deps.iter()
            .any(|d| d["uri"] == drv.as_str() && d["digest"]["sha256"] == drv_sha256.as_str()),
        "{drv} (sha256 {drv_sha256}) is not in {deps:#?}"
    );

    // Every fixed-output fetch of a Debian source file the build graph holds
    // (`nix show-derivation` of each requisite .drv: `outputHash` set, the
    // output's name an upstream or Debian tarball or a format 1 diff).
    let tarball =
        regex::Regex::new(r"\.(orig\.tar\.[a-z0-9]+|debian\.tar\.[a-z0-9]+|diff\.gz)$").unwrap();
    let fetches: Vec<String> = text("nix-store", &["--query", "--requisites", &drv])
        .lines()
        .filter(|p| {
            p.strip_suffix(".drv")
                .is_some_and(|name| tarball.is_match(name))
        })
        .map(str::to_string)
        .collect();
    let mut args = vec![
        "--extra-experimental-features",
        "nix-command",
        "show-derivation",
    ];
    args.extend(fetches.iter().map(String::as_str));
    let shown: Value = serde_json::from_str(&text("nix", &args)).unwrap();
    let mut from_nix = BTreeSet::new();
    for (path, d) in shown.as_object().unwrap() {
        let env = &d["env"];
        let Some(hash) = env["outputHash"].as_str() else {
            panic!("{path} is not a fixed-output derivation: {d}")
        };
        let url = env["url"].as_str().unwrap();
        let file = url.rsplit('/').next().unwrap().to_string();
        let out = d["outputs"]["out"]["path"].as_str().unwrap();
        let read = hex::encode(Sha256::digest(fs::read(out).unwrap()));
        assert_eq!(read, hash, "{out}, fetched from {url}");
        from_nix.insert((file, read));
    }
    assert!(from_nix.len() >= 20, "{from_nix:#?}");

    let attested: BTreeSet<(String, String)> = deps
        .iter()
        .filter(|d| d["uri"].as_str().unwrap().contains("?arch=source"))
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["digest"]["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(attested, from_nix, "provenance tarballs vs Nix's fetches");
}

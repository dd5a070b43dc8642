//! Registry push, sign and fetch against the real `docker-registry`
//! (distribution 2.8) on loopback, plus tiny fake servers for the failures a
//! real registry will not produce on demand (500s, dropped connections,
//! bearer tokens). skopeo reads what we pushed, signatures included.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{free_port, http_status, nginx, sh, TestContext};
use armorred::oci::layout::{Descriptor, Layout, Manifest};
use armorred::oci::{
    Digest, ANNOTATION_REF_NAME, MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_MANIFEST,
};
use armorred::registry::{self, ImageRef, PushReport, RegistryError, RegistryOptions};
use armorred::sign::keys::{self, SigningKey};
use armorred::sign::{self, payload, SignatureLayer};
use base64::Engine as _;

const SPDX: &str = "application/spdx+json";

// ---------------------------------------------------------------- registry

/// `docker-registry serve` on a loopback port, storage in a temp dir,
/// optionally behind htpasswd auth. Killed on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        Registry::start_inner(None)
    }

    fn start_with_htpasswd(user: &str, pass: &str) -> Registry {
        Registry::start_inner(Some((user, pass)))
    }

    fn start_inner(auth: Option<(&str, &str)>) -> Registry {
        // free_port() releases the port before the registry binds it, so
        // another test may take it first: then this registry exits with
        // "address already in use", and we try another port.
        for _ in 0..5 {
            if let Some(reg) = Registry::try_start(auth) {
                return reg;
            }
        }
        panic!("docker-registry did not start on any of 5 ports");
    }

    fn try_start(auth: Option<(&str, &str)>) -> Option<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("armorred-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: armorred-test-secret\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = auth {
            let line = sh("htpasswd", &["-Bbn", user, pass]).stdout;
            std::fs::write(dir.path().join("htpasswd"), line).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: armorred-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry (scripts/setup-system.sh installs it)");
        let mut reg = Registry { child, port, dir };
        // Ours is up when it says it listens and is still running.
        let listening = format!("listening on 127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !reg.log().contains(&listening) {
            if reg.child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
                eprintln!("docker-registry on {port} did not start:\n{}", reg.log());
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        match http_status(port, "/v2/", Duration::from_secs(20)) {
            Some(200) | Some(401) if reg.child.try_wait().unwrap().is_none() => Some(reg),
            other => {
                eprintln!(
                    "docker-registry on {port} does not answer ({other:?}):\n{}",
                    reg.log()
                );
                None
            }
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn image(&self, repo_tag: &str) -> ImageRef {
        ImageRef::parse(&format!("{}/{repo_tag}", self.host())).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Access-log lines for `method` requests whose path contains `path`.
    fn requests(&self, method: &str, path: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(&format!("\"{method} ")) && l.contains(path))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn opts() -> RegistryOptions {
    RegistryOptions {
        insecure: true,
        retries: 2,
        ..RegistryOptions::default()
    }
}

/// A Docker config.json with `user:pass` for `host`.
fn auth_file(dir: &Path, host: &str, user: &str, pass: &str) -> PathBuf {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let path = dir.join(format!("auth-{user}-{pass}.json"));
    let json = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    path
}

// ---------------------------------------------------------------- layouts

/// A small synthetic image written with armorred's own layout code.
struct Tiny {
    _dir: tempfile::TempDir,
    path: PathBuf,
    digest: Digest,
    manifest: Descriptor,
    layers: Vec<Vec<u8>>,
}

const TINY_TAG: &str = "1.0-test";

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
}

fn tiny_layout(layer_sizes: &[usize], seed: u64) -> Tiny {
    let dir = tempfile::Builder::new()
        .prefix("armorred-tiny-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("layout");
    let layout = Layout::create(&path).unwrap();
    let layers: Vec<Vec<u8>> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, n)| noise(*n, seed * 1000 + i as u64))
        .collect();
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| {
            layout.blobs().put(l).unwrap();
            descriptor(MEDIA_TYPE_LAYER_TAR, l)
        })
        .collect();
    let config = armorred::base::json::canonical(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"seed": seed.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": layer_descs.iter().map(|d| d.digest.to_string()).collect::<Vec<_>>()},
    }));
    layout.blobs().put(&config).unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.into()),
        artifact_type: None,
        config: descriptor(MEDIA_TYPE_CONFIG, &config),
        layers: layer_descs,
        subject: None,
        annotations: BTreeMap::new(),
    };
    let bytes = armorred::base::json::canonical(&manifest);
    layout.blobs().put(&bytes).unwrap();
    let mut desc = descriptor(MEDIA_TYPE_MANIFEST, &bytes);
    let manifest_desc = desc.clone();
    desc.annotations
        .insert(ANNOTATION_REF_NAME.into(), TINY_TAG.into());
    let mut index = layout.read_index().unwrap();
    index.manifests.push(desc);
    layout.write_index(&index).unwrap();
    Tiny {
        digest: manifest_desc.digest.clone(),
        manifest: manifest_desc,
        _dir: dir,
        path,
        layers,
    }
}

fn signature_layer(key: &SigningKey, reference: &str, digest: &Digest) -> SignatureLayer {
    let payload = payload::new_payload(reference, digest.as_str(), BTreeMap::new());
    SignatureLayer {
        signature_b64: sign::sign_payload(key, &payload),
        payload,
        annotations: BTreeMap::new(),
    }
}

/// Adds a cosign signature manifest for the image to the layout's index.
fn add_signature(tiny: &Tiny, key: &SigningKey, reference: &str) {
    let layout = Layout::open(&tiny.path).unwrap();
    let layer = signature_layer(key, reference, &tiny.digest);
    let (manifest, config) = sign::signature_manifest(std::slice::from_ref(&layer));
    for b in [&layer.payload, &config, &manifest] {
        std::fs::write(layout.blobs().path(&Digest::of(b)), b).unwrap();
    }
    let mut d = descriptor(MEDIA_TYPE_MANIFEST, &manifest);
    d.annotations.insert(
        ANNOTATION_REF_NAME.into(),
        sign::signature_tag(tiny.digest.as_str()),
    );
    let mut index = layout.read_index().unwrap();
    index.manifests.push(d);
    layout.write_index(&index).unwrap();
}

/// Adds an SPDX SBOM artifact whose subject is the image; returns its
/// manifest digest and the SBOM bytes.
fn add_sbom(tiny: &Tiny, name: &str) -> (Digest, Vec<u8>) {
    let layout = Layout::open(&tiny.path).unwrap();
    let sbom = armorred::base::json::canonical(
        &serde_json::json!({"spdxVersion": "SPDX-2.3", "name": name}),
    );
    let empty = b"{}".to_vec();
    for b in [&sbom, &empty] {
        std::fs::write(layout.blobs().path(&Digest::of(b)), b).unwrap();
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.into()),
        artifact_type: Some(SPDX.into()),
        config: descriptor("application/vnd.oci.empty.v1+json", &empty),
        layers: vec![descriptor(SPDX, &sbom)],
        subject: Some(tiny.manifest.clone()),
        annotations: BTreeMap::from([(
            "org.opencontainers.image.created".into(),
            "1970-01-01T00:00:00Z".into(),
        )]),
    };
    let bytes = armorred::base::json::canonical(&manifest);
    std::fs::write(layout.blobs().path(&Digest::of(&bytes)), &bytes).unwrap();
    let mut d = descriptor(MEDIA_TYPE_MANIFEST, &bytes);
    d.artifact_type = Some(SPDX.into());
    d.annotations
        .insert("org.armorred.subject".into(), tiny.digest.to_string());
    let mut index = layout.read_index().unwrap();
    index.manifests.push(d);
    layout.write_index(&index).unwrap();
    (Digest::of(&bytes), sbom)
}

fn push(
    tiny: &Tiny,
    target: &ImageRef,
    opts: &RegistryOptions,
) -> Result<PushReport, RegistryError> {
    let layout = Layout::open(&tiny.path).unwrap();
    registry::push_layout(&layout, None, target, opts)
}

// ---------------------------------------------------------------- tests

#[test]
fn push_then_push_again_skips_every_blob_and_attachments_travel() {
    let reg = Registry::start();
    let tiny = tiny_layout(&[1500, 70_000], 1);
    let key = keys::generate();
    let target = reg.image("armorred/tiny:v1");
    add_signature(&tiny, &key, &target.repository_name());
    let (sbom_digest, sbom) = add_sbom(&tiny, "tiny");

    let first = push(&tiny, &target, &opts()).unwrap();
    assert_eq!(first.manifest_digest, tiny.digest);
    assert_eq!(
        first.reference,
        format!("{}/armorred/tiny:v1@{}", reg.host(), tiny.digest)
    );
    // config + 2 layers, signature payload + config, SBOM + empty config.
    assert_eq!(
        (first.blobs_uploaded, first.blobs_skipped),
        (7, 0),
        "{first:#?}"
    );
    let layer_bytes: u64 = tiny.layers.iter().map(|l| l.len() as u64).sum();
    assert!(first.bytes_uploaded > layer_bytes, "{first:#?}");

    // The registry serves the exact manifest under the tag and the digest.
    let (bytes, media_type, digest) = registry::fetch_manifest(&target, &opts()).unwrap();
    assert_eq!(
        (media_type.as_str(), &digest),
        (MEDIA_TYPE_MANIFEST, &tiny.digest)
    );
    assert_eq!(
        bytes,
        Layout::open(&tiny.path)
            .unwrap()
            .load_image(None)
            .unwrap()
            .manifest_bytes
    );
    registry::fetch_manifest(&target.with_digest(&tiny.digest), &opts()).unwrap();
    let layer0 = Digest::of(&tiny.layers[0]);
    assert_eq!(
        registry::fetch_blob(&target, &layer0, &opts()).unwrap(),
        tiny.layers[0]
    );

    // The signature travelled and verifies.
    let (signed, layers) = registry::signatures_remote(&target, &opts()).unwrap();
    assert_eq!(signed, tiny.digest);
    assert_eq!(layers.len(), 1);
    sign::verify_image(&key.verifying_key(), tiny.digest.as_str(), &layers).unwrap();

    // The SBOM is there by digest, and distribution 2.8 has no referrers
    // API, so the referrers tag schema index at sha256-<hex> lists it.
    let (sbom_manifest, _, _) =
        registry::fetch_manifest(&target.with_digest(&sbom_digest), &opts()).unwrap();
    let m: Manifest = serde_json::from_slice(&sbom_manifest).unwrap();
    assert_eq!(m.subject.unwrap().digest, tiny.digest);
    assert_eq!(
        registry::fetch_blob(&target, &m.layers[0].digest, &opts()).unwrap(),
        sbom
    );
    let fallback = target.with_tag(&format!("sha256-{}", tiny.digest.hex()));
    let (index, index_type, _) = registry::fetch_manifest(&fallback, &opts()).unwrap();
    assert_eq!(index_type, "application/vnd.oci.image.index.v1+json");
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    assert_eq!(index["manifests"][0]["digest"], sbom_digest.as_str());
    assert_eq!(index["manifests"][0]["artifactType"], SPDX);
    assert!(
        first.attachments.iter().any(|a| a.contains(".sig")),
        "{:?}",
        first.attachments
    );
    assert!(
        first
            .attachments
            .iter()
            .any(|a| a.contains(sbom_digest.as_str())),
        "{:?}",
        first.attachments
    );

    // Second push: nothing is uploaded, the registry said it had it all.
    let patches_before =
        reg.requests("PATCH", "/blobs/uploads/") + reg.requests("PUT", "/blobs/uploads/");
    let second = push(&tiny, &target, &opts()).unwrap();
    assert_eq!(
        (second.blobs_uploaded, second.bytes_uploaded),
        (0, 0),
        "{second:#?}"
    );
    assert_eq!(second.blobs_skipped, 5, "{second:#?}"); // the signature blobs are not re-sent: nothing new to append
    assert_eq!(
        reg.requests("PATCH", "/blobs/uploads/") + reg.requests("PUT", "/blobs/uploads/"),
        patches_before
    );
    let (_, layers) = registry::signatures_remote(&target, &opts()).unwrap();
    assert_eq!(
        layers.len(),
        1,
        "pushing again must not duplicate a signature"
    );
    let (index, _, _) = registry::fetch_manifest(&fallback, &opts()).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn large_layers_go_up_in_chunks() {
    let reg = Registry::start();
    let tiny = tiny_layout(&[300_000, 100], 2);
    let target = reg.image("armorred/chunked:v1");
    let opts = RegistryOptions {
        chunk_size: 64 << 10,
        ..opts()
    };
    let report = push(&tiny, &target, &opts).unwrap();
    assert_eq!(report.blobs_uploaded, 3);
    // 300 000 bytes in 64 KiB chunks: 5 PATCHes; the small blobs go in one PUT each.
    assert_eq!(
        reg.requests("PATCH", "/v2/armorred/chunked/blobs/uploads/"),
        5,
        "{}",
        reg.log()
    );
    let big = Digest::of(&tiny.layers[0]);
    assert_eq!(
        registry::fetch_blob(&target, &big, &opts).unwrap(),
        tiny.layers[0]
    );
    assert_eq!(
        registry::fetch_manifest(&target, &opts).unwrap().2,
        tiny.digest
    );
}

#[test]
fn htpasswd_auth_right_and_wrong_password() {
    let reg = Registry::start_with_htpasswd("pusher", "s3cret");
    let tiny = tiny_layout(&[2000], 3);
    let target = reg.image("armorred/private:v1");
    let files = tempfile::tempdir().unwrap();

    let good = RegistryOptions {
        auth_file: Some(auth_file(files.path(), &reg.host(), "pusher", "s3cret")),
        ..opts()
    };
    let report = push(&tiny, &target, &good).unwrap();
    assert_eq!(report.blobs_uploaded, 2);
    assert_eq!(
        registry::fetch_manifest(&target, &good).unwrap().2,
        tiny.digest
    );

    let bad_file = auth_file(files.path(), &reg.host(), "pusher", "wrong");
    let bad = RegistryOptions {
        auth_file: Some(bad_file.clone()),
        ..opts()
    };
    let err = push(&tiny_layout(&[10], 4), &target, &bad).unwrap_err();
    match &err {
        RegistryError::Unauthorized {
            registry,
            auth_file,
            ..
        } => {
            assert_eq!(registry, &reg.host());
            assert_eq!(auth_file.as_deref(), Some(bad_file.as_path()));
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&reg.host()) && msg.contains(&bad_file.display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains("401") && msg.contains("pusher") && msg.contains("refused"),
        "{msg}"
    );

    // No entry for this registry at all: a different message, same kind.
    let other = RegistryOptions {
        auth_file: Some(auth_file(files.path(), "elsewhere.example", "a", "b")),
        ..opts()
    };
    let err = registry::fetch_manifest(&target, &other).unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("no credentials"), "{err}");
}

/// `REGISTRY_AUTH_FILE` is read when no file is given. The environment is
/// process-wide, so this runs in a child test process that has it set.
#[test]
fn auth_from_registry_auth_file_env() {
    let reg = Registry::start_with_htpasswd("envuser", "envpass");
    let files = tempfile::tempdir().unwrap();
    let file = auth_file(files.path(), &reg.host(), "envuser", "envpass");
    // libtest names a test by its path below the crate root.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let child = format!("{module}::auth_from_registry_auth_file_env_child");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &child,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("REGISTRY_AUTH_FILE", &file)
        .env("ARMORRED_TEST_REGISTRY", reg.host())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    assert_eq!(
        reg.requests("PUT", "/v2/armorred/env/manifests/v1"),
        1,
        "{}",
        reg.log()
    );
}

#[test]
#[ignore = "run by auth_from_registry_auth_file_env in a child process"]
fn auth_from_registry_auth_file_env_child() {
    let Ok(host) = std::env::var("ARMORRED_TEST_REGISTRY") else {
        return;
    };
    let target = ImageRef::parse(&format!("{host}/armorred/env:v1")).unwrap();
    let tiny = tiny_layout(&[100], 5);
    let report = push(&tiny, &target, &opts()).unwrap();
    assert_eq!(report.manifest_digest, tiny.digest);
    // And without the variable's file, the registry refuses.
    let none = RegistryOptions {
        auth_file: Some(auth_file(
            tiny.path.parent().unwrap(),
            "elsewhere.example",
            "a",
            "b",
        )),
        ..opts()
    };
    assert!(matches!(
        registry::fetch_manifest(&target, &none),
        Err(RegistryError::Unauthorized { .. })
    ));
}

#[test]
fn sign_remote_appends_and_push_never_overwrites_signatures() {
    let reg = Registry::start();
    let tiny = tiny_layout(&[500], 6);
    let target = reg.image("armorred/signed:v1");
    push(&tiny, &target, &opts()).unwrap();

    let (digest, none) = registry::signatures_remote(&target, &opts()).unwrap();
    assert!(none.is_empty());
    let k1 = keys::generate();
    let k2 = keys::generate();
    assert_eq!(
        registry::sign_remote(&target, &k1, &opts(), &BTreeMap::new()).unwrap(),
        digest
    );
    let claims = BTreeMap::from([("build".to_string(), serde_json::Value::from("ci-42"))]);
    registry::sign_remote(&target, &k2, &opts(), &claims).unwrap();

    let sig_tag = target.with_tag(&sign::signature_tag(digest.as_str()));
    let (sig_manifest, _, _) = registry::fetch_manifest(&sig_tag, &opts()).unwrap();
    let m: Manifest = serde_json::from_slice(&sig_manifest).unwrap();
    assert_eq!(
        m.layers.len(),
        2,
        "second signature appended, not replacing the first"
    );

    let (d, layers) = registry::signatures_remote(&target, &opts()).unwrap();
    assert_eq!(d, tiny.digest);
    let v1 = sign::verify_image(&k1.verifying_key(), d.as_str(), &layers).unwrap();
    let v2 = sign::verify_image(&k2.verifying_key(), d.as_str(), &layers).unwrap();
    assert_eq!((v1.layer_index, v2.layer_index), (0, 1));
    assert_eq!(v2.payload.optional["build"], "ci-42");
    assert_eq!(
        v1.payload.critical.identity.docker_reference,
        target.repository_name()
    );
    assert!(sign::verify_image(&keys::generate().verifying_key(), d.as_str(), &layers).is_err());

    // The same key and claims again: the payload and the RFC 6979 signature
    // repeat, so nothing is added.
    registry::sign_remote(&target, &k1, &opts(), &BTreeMap::new()).unwrap();
    assert_eq!(
        registry::signatures_remote(&target, &opts())
            .unwrap()
            .1
            .len(),
        2
    );

    // A layout signed by a third key: pushing merges, the two remote
    // signatures stay first.
    let k3 = keys::generate();
    add_signature(&tiny, &k3, &target.repository_name());
    let report = push(&tiny, &target, &opts()).unwrap();
    assert!(
        report
            .attachments
            .iter()
            .any(|a| a.contains("1 added, 3 in total")),
        "{:?}",
        report.attachments
    );
    let (_, layers) = registry::signatures_remote(&target, &opts()).unwrap();
    assert_eq!(layers.len(), 3);
    for (i, k) in [&k1, &k2, &k3].iter().enumerate() {
        assert_eq!(
            sign::verify_image(&k.verifying_key(), d.as_str(), &layers)
                .unwrap()
                .layer_index,
            i
        );
    }

    // Signing by digest works too, and a wrong digest is refused.
    registry::sign_remote(&target.with_digest(&digest), &k1, &opts(), &BTreeMap::new()).unwrap();
    let wrong = target.with_digest(&Digest::of(b"not the manifest"));
    assert!(matches!(
        registry::sign_remote(&wrong, &k1, &opts(), &BTreeMap::new()),
        Err(RegistryError::NotFound { .. })
    ));
}

#[test]
fn a_corrupted_layout_blob_is_never_published() {
    let reg = Registry::start();
    let tiny = tiny_layout(&[3000, 200_000], 10);
    let target = reg.image("armorred/corrupt:v1");
    let layout = Layout::open(&tiny.path).unwrap();
    for (i, layer) in tiny.layers.iter().enumerate() {
        let mut bad = layer.clone();
        bad[7] ^= 0xff;
        std::fs::write(layout.blobs().path(&Digest::of(layer)), &bad).unwrap();
        // The small layer fails before upload, the large one (chunked) at its end.
        let opts = RegistryOptions {
            chunk_size: 64 << 10,
            ..opts()
        };
        let err = push(&tiny, &target, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::Layout(armorred::oci::layout::LayoutError::DigestMismatch { .. })
            ),
            "layer {i}: {err:?}"
        );
        std::fs::write(layout.blobs().path(&Digest::of(layer)), layer).unwrap();
    }
    assert!(matches!(
        registry::fetch_manifest(&target, &opts()),
        Err(RegistryError::NotFound { .. })
    ));
    assert_eq!(reg.requests("PUT", "/v2/armorred/corrupt/manifests/"), 0);
    // The chunked session of the bad layer was cancelled, not left behind.
    assert_eq!(
        reg.requests("DELETE", "/v2/armorred/corrupt/blobs/uploads/"),
        1,
        "{}",
        reg.log()
    );
}

#[test]
fn closed_port_is_unreachable() {
    // Port 1 (tcpmux) is privileged and unused here: nothing listens, and
    // unlike a freed ephemeral port no other test can take it meanwhile.
    let port = 1;
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    let target = ImageRef::parse(&format!("127.0.0.1:{port}/armorred/none:v1")).unwrap();
    let tiny = tiny_layout(&[10], 7);
    let opts = RegistryOptions {
        retries: 1,
        ..opts()
    };
    let err = push(&tiny, &target, &opts).unwrap_err();
    match &err {
        RegistryError::Unreachable {
            registry, attempts, ..
        } => {
            assert_eq!(registry, &format!("127.0.0.1:{port}"));
            assert_eq!(*attempts, 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("unreachable"), "{err}");
}

#[test]
fn https_to_a_plain_http_registry_hints_insecure() {
    let reg = Registry::start();
    let target = reg.image("armorred/tls:v1");
    let secure = RegistryOptions {
        insecure: false,
        ..opts()
    };
    let err = registry::fetch_manifest(&target, &secure).unwrap_err();
    // A TLS failure is not transient: no retries.
    assert!(
        matches!(err, RegistryError::Unreachable { attempts: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--insecure"), "{err}");
}

// ---------------------------------------------------------------- fake servers

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum Answer {
    /// Status, headers, body.
    Full(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Headers promise `declared` bytes; `body` is sent, then the socket closes.
    CutBody { declared: usize, body: Vec<u8> },
    /// Read this much of the request body, then close without answering.
    CloseWhileReading(usize),
}

/// A one-connection-at-a-time HTTP/1.1 server on loopback that records every
/// request and answers as `handler` says. Stops on drop.
struct FakeServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    fn start(handler: impl Fn(&Seen, u16) -> Answer + Send + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = serve_one(conn, &handler, port, &seen2);
            }
        });
        FakeServer { port, seen, stop }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path.starts_with(path_prefix))
            .count()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_one(
    conn: TcpStream,
    handler: &impl Fn(&Seen, u16) -> Answer,
    port: u16,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    if method.is_empty() {
        return Ok(());
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let req = Seen {
        method,
        path,
        headers,
    };
    seen.lock().unwrap().push(req.clone());
    let content_length: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut conn = conn;
    match handler(&req, port) {
        Answer::CloseWhileReading(n) => {
            let mut buf = vec![0u8; n.min(content_length)];
            let _ = reader.read_exact(&mut buf);
            drop(reader);
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        Answer::Full(status, extra, body) => {
            let mut rest = vec![0u8; content_length];
            reader.read_exact(&mut rest)?;
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            conn.write_all(head.as_bytes())?;
            if req.method != "HEAD" {
                conn.write_all(&body)?;
            }
            conn.flush()?;
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        Answer::CutBody { declared, body } => {
            let mut rest = vec![0u8; content_length];
            reader.read_exact(&mut rest)?;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {MEDIA_TYPE_MANIFEST}\r\nContent-Length: {declared}\r\n\r\n"
            );
            conn.write_all(head.as_bytes())?;
            conn.write_all(&body)?;
            conn.flush()?;
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
    Ok(())
}

fn fake_target(server: &FakeServer, repo_tag: &str) -> ImageRef {
    ImageRef::parse(&format!("127.0.0.1:{}/{repo_tag}", server.port)).unwrap()
}

#[test]
fn server_errors_are_retried_then_reported() {
    let server = FakeServer::start(|_, _| {
        Answer::Full(
            500,
            vec![],
            br#"{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}"#.to_vec(),
        )
    });
    let target = fake_target(&server, "app:v1");
    let err = registry::fetch_manifest(&target, &opts()).unwrap_err();
    match &err {
        RegistryError::Server {
            status,
            attempts,
            message,
            ..
        } => {
            assert_eq!((*status, *attempts), (500, 3));
            assert_eq!(message.as_deref(), Some("UNKNOWN: disk on fire"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server.count("GET", "/v2/app/manifests/v1"),
        3,
        "first try + 2 retries"
    );
    assert!(err.to_string().contains("after 3 attempts"), "{err}");

    // A 4xx is our fault: no retry.
    let server = FakeServer::start(|_, _| Answer::Full(400, vec![], b"bad".to_vec()));
    let err = registry::fetch_manifest(&fake_target(&server, "app:v1"), &opts()).unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Server {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn a_connection_dropped_mid_body_is_retried_then_reported() {
    let server = FakeServer::start(|_, _| Answer::CutBody {
        declared: 1000,
        body: b"{\"schemaVersion\":2,".to_vec(),
    });
    let err = registry::fetch_manifest(&fake_target(&server, "app:v1"), &opts()).unwrap_err();
    assert!(
        matches!(err, RegistryError::ConnectionDropped { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(server.count("GET", "/v2/app/manifests/v1"), 3);
    assert!(
        err.to_string().contains("GET /v2/app/manifests/v1"),
        "{err}"
    );
}

#[test]
fn a_connection_dropped_mid_upload_restarts_the_upload_then_fails_clearly() {
    let server = FakeServer::start(|req, port| match (req.method.as_str(), req.path.as_str()) {
        ("HEAD", _) => Answer::Full(404, vec![], vec![]),
        ("POST", p) if p.ends_with("/blobs/uploads/") => Answer::Full(
            202,
            vec![(
                "Location",
                format!("http://127.0.0.1:{port}/v2/app/blobs/uploads/u1?_state=x"),
            )],
            vec![],
        ),
        // The small config goes up in one PUT, which succeeds.
        ("PUT", _) => Answer::Full(201, vec![], vec![]),
        // The large layer's first chunk: the connection drops while it is sent.
        _ => Answer::CloseWhileReading(100),
    });
    let tiny = tiny_layout(&[200_000], 8);
    let opts = RegistryOptions {
        chunk_size: 64 << 10,
        ..opts()
    };
    let started = std::time::Instant::now();
    let err = push(&tiny, &fake_target(&server, "app:v1"), &opts).unwrap_err();
    assert!(
        matches!(&err, RegistryError::ConnectionDropped { attempts: 3, method, .. } if method == "PATCH"),
        "{err:?}"
    );
    assert!(err.to_string().contains("dropped"), "{err}");
    // Each attempt is a fresh upload session: one for the config, three for the layer.
    assert_eq!(server.count("PUT", "/v2/app/blobs/uploads/"), 1);
    assert_eq!(server.count("POST", "/v2/app/blobs/uploads/"), 4);
    assert_eq!(server.count("PATCH", "/v2/app/blobs/uploads/"), 3);
    assert!(started.elapsed() < Duration::from_secs(30), "no hang");
}

#[test]
fn bearer_token_challenge_is_answered() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec();
    let served = manifest.clone();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("robot:t0ken-pass")
    );
    let server = FakeServer::start(move |req, port| {
        if req.path.starts_with("/token") {
            return if req.header("authorization") == Some(basic.as_str()) {
                Answer::Full(
                    200,
                    vec![("Content-Type", "application/json".into())],
                    br#"{"token":"tok-123"}"#.to_vec(),
                )
            } else {
                Answer::Full(401, vec![], vec![])
            };
        }
        if req.header("authorization") == Some("Bearer tok-123") {
            Answer::Full(
                200,
                vec![("Content-Type", MEDIA_TYPE_MANIFEST.into())],
                served.clone(),
            )
        } else {
            Answer::Full(
                401,
                vec![(
                    "WWW-Authenticate",
                    format!(
                        r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake.registry",scope="repository:team/app:pull""#
                    ),
                )],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                    .to_vec(),
            )
        }
    });
    let files = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", server.port);
    let good = RegistryOptions {
        auth_file: Some(auth_file(files.path(), &host, "robot", "t0ken-pass")),
        ..opts()
    };
    let target = fake_target(&server, "team/app:v1");
    let (bytes, media_type, digest) = registry::fetch_manifest(&target, &good).unwrap();
    assert_eq!(
        (bytes, media_type, digest),
        (
            manifest.clone(),
            MEDIA_TYPE_MANIFEST.to_string(),
            Digest::of(&manifest)
        )
    );
    let seen = server.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v2/team/app/manifests/v1",
            "/token?service=fake.registry&scope=repository%3Ateam%2Fapp%3Apull",
            "/v2/team/app/manifests/v1"
        ]
    );

    let bad = RegistryOptions {
        auth_file: Some(auth_file(files.path(), &host, "robot", "nope")),
        ..opts()
    };
    let err = registry::fetch_manifest(&target, &bad).unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("token server refused"), "{err}");
}

// ---------------------------------------------------------------- skopeo

/// skopeo (containers/image) reads our push: the image, and with
/// `use-sigstore-attachments` the cosign signature from the `.sig` tag.
#[test]
fn skopeo_copies_the_image_and_its_signature() {
    let reg = Registry::start();
    let tiny = tiny_layout(&[4000, 9000], 9);
    let key = keys::generate();
    let target = reg.image("armorred/skopeo:v1");
    add_signature(&tiny, &key, &target.repository_name());
    push(&tiny, &target, &opts()).unwrap();

    let work = tempfile::tempdir().unwrap();
    let regd = work.path().join("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(
        regd.join("armorred-test.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            reg.host()
        ),
    )
    .unwrap();
    let dest = work.path().join("copy");
    skopeo_copy_from(
        work.path(),
        &["--registries.d", regd.to_str().unwrap()],
        &target.to_string(),
        &format!("dir:{}", dest.display()),
    );
    let manifest = std::fs::read(dest.join("manifest.json")).unwrap();
    assert_eq!(
        Digest::of(&manifest),
        tiny.digest,
        "skopeo copied the exact manifest"
    );
    for l in &tiny.layers {
        assert_eq!(&std::fs::read(dest.join(Digest::of(l).hex())).unwrap(), l);
    }
    // dir: keeps the sigstore signature it fetched: our payload and signature.
    let sig = std::fs::read(dest.join("signature-1")).unwrap_or_else(|e| {
        panic!(
            "no signature-1 in {}: {e}; files: {:?}",
            dest.display(),
            std::fs::read_dir(&dest)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect::<Vec<_>>()
        )
    });
    // containers/image's format: "\0sigstore-json\n" then
    // {"mimeType", "payload" (base64), "annotations"}.
    let json = sig
        .strip_prefix(b"\0sigstore-json\n")
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&sig)));
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    assert_eq!(
        v["mimeType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let (_, layers) = registry::signatures_remote(&target, &opts()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(v["payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(payload, layers[0].payload);
    assert_eq!(
        v["annotations"]["dev.cosignproject.cosign/signature"],
        layers[0].signature_b64.as_str()
    );
    sign::verify_image(&key.verifying_key(), tiny.digest.as_str(), &layers).unwrap();
}

// ---------------------------------------------------------------- real image

/// The real nginx image armorred builds (both tiers via Nix; cached after
/// the first run): pushed, read back by skopeo byte for byte, pushed again
/// with nothing to send.
#[test]
fn real_nginx_layout_pushes_and_skopeo_reads_it() {
    let build = common::nginx();
    let reg = Registry::start();
    let layout = Layout::open(&build.locked).unwrap();
    let image = layout.load_image(None).unwrap();
    let target = reg.image("armorred/nginx:1.26.3-locked");
    let opts = RegistryOptions {
        chunk_size: 4 << 20,
        ..opts()
    };
    let report = registry::push_layout(&layout, None, &target, &opts).unwrap();
    assert_eq!(report.manifest_digest, image.descriptor.digest);
    assert_eq!(
        report.blobs_uploaded,
        image.manifest.layers.len() + 1 + count_attachment_blobs(&layout, &image.descriptor.digest)
    );
    let dest = tempfile::tempdir().unwrap();
    let out_dir = dest.path().join("oci");
    skopeo_copy_from(
        dest.path(),
        &[],
        &target.to_string(),
        &format!("oci:{}:copy", out_dir.display()),
    );
    let copied = Layout::open(&out_dir)
        .unwrap()
        .load_image(Some("copy"))
        .unwrap();
    assert_eq!(copied.descriptor.digest, image.descriptor.digest);
    assert_eq!(copied.manifest_bytes, image.manifest_bytes);
    let again = registry::push_layout(&layout, None, &target, &opts).unwrap();
    assert_eq!(again.blobs_uploaded, 0, "{again:#?}");

    // The SBOMs `build` attached (artifacts whose subject is the image) are
    // in the registry, listed by the referrers fallback index, byte for byte.
    let referrers: Vec<_> = layout
        .attachments_of(&image.descriptor.digest)
        .unwrap()
        .into_iter()
        .filter(|d| d.annotations.contains_key("org.armorred.subject"))
        .collect();
    let fallback = target.with_tag(&format!("sha256-{}", image.descriptor.digest.hex()));
    if referrers.is_empty() {
        assert!(registry::fetch_manifest(&fallback, &opts).is_err());
    } else {
        let (index, _, _) = registry::fetch_manifest(&fallback, &opts).unwrap();
        let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
        let listed: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        for d in &referrers {
            assert!(listed.contains(&d.digest.as_str()), "{index}");
            let (remote, _, _) =
                registry::fetch_manifest(&target.with_digest(&d.digest), &opts).unwrap();
            let m: Manifest = serde_json::from_slice(&remote).unwrap();
            let local = layout.read_blob(&m.layers[0], 64 << 20).unwrap();
            assert_eq!(
                registry::fetch_blob(&target, &m.layers[0].digest, &opts).unwrap(),
                local
            );
        }
    }

    // Sign it in the registry and verify.
    let key = keys::generate();
    let signed = registry::sign_remote(&target, &key, &opts, &BTreeMap::new()).unwrap();
    assert_eq!(signed, image.descriptor.digest);
    let (d, layers) = registry::signatures_remote(&target, &opts).unwrap();
    sign::verify_image(&key.verifying_key(), d.as_str(), &layers).unwrap();
}

/// `skopeo copy` from the test registry (plain HTTP) to `dest`, under a
/// policy that accepts anything (written into `work`): what is checked is
/// the bytes skopeo receives, not its trust policy. `global` goes before
/// `copy` (e.g. `--registries.d`).
fn skopeo_copy_from(work: &Path, global: &[&str], target: &str, dest: &str) {
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let mut args = vec!["--policy", policy.to_str().unwrap()];
    args.extend_from_slice(global);
    let src = format!("docker://{target}");
    args.extend(["copy", "--src-tls-verify=false", &src, dest]);
    sh("skopeo", &args);
}

/// Blobs of the layout's attachments to this image that are not image blobs.
fn count_attachment_blobs(layout: &Layout, digest: &Digest) -> usize {
    let image = layout.load_image(None).unwrap();
    let mut image_blobs: std::collections::BTreeSet<Digest> = image
        .manifest
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .collect();
    image_blobs.insert(image.manifest.config.digest.clone());
    let mut extra = std::collections::BTreeSet::new();
    for d in layout.attachments().unwrap() {
        let ours = d
            .annotations
            .get(ANNOTATION_REF_NAME)
            .is_some_and(|r| r.starts_with(&format!("sha256-{}.", digest.hex())));
        if d.media_type != MEDIA_TYPE_MANIFEST {
            continue;
        }
        let m: Manifest = serde_json::from_slice(&layout.read_blob(&d, 1 << 20).unwrap()).unwrap();
        if !(ours || m.subject.as_ref().is_some_and(|s| &s.digest == digest)) {
            continue;
        }
        for b in std::iter::once(&m.config).chain(&m.layers) {
            if !image_blobs.contains(&b.digest) {
                extra.insert(b.digest.clone());
            }
        }
    }
    extra.len()
}

// ------------------------------------------------------------- the CLI

/// The whole user path through the real binary: build (nginx, both tiers)
/// → sign → push → verify from the registry, and `build --push`.
#[test]
fn cli_build_sign_push_verify_from_the_registry() {
    let reg = Registry::start();
    let b = nginx();
    let ctx = TestContext::new();
    let pass = [("COSIGN_PASSWORD", "pw")];
    let r = ctx.run_env(&["generate-key-pair"], &pass);
    assert!(r.out.status.success(), "{}", r.describe());
    let layout = ctx.path().join("locked");
    sh(
        "cp",
        &["-a", b.locked.to_str().unwrap(), layout.to_str().unwrap()],
    );
    let r = ctx.run_env(
        &["sign", layout.to_str().unwrap(), "--key", "cosign.key"],
        &pass,
    );
    assert!(r.out.status.success(), "{}", r.describe());

    let target = format!("127.0.0.1:{}/armorred/nginx:1.26.3-locked", reg.port);
    let push = ctx.run(&[
        "push",
        layout.to_str().unwrap(),
        &target,
        "--insecure",
        "--json",
    ]);
    assert!(push.out.status.success(), "{}", push.describe());
    let report = push.json();
    assert!(report["blobs_uploaded"].as_u64().unwrap() >= 7, "{report}");
    let again = ctx
        .run(&[
            "push",
            layout.to_str().unwrap(),
            &target,
            "--insecure",
            "--json",
        ])
        .json();
    assert_eq!(
        again["blobs_uploaded"], 0,
        "second push sent blobs again: {again}"
    );

    let v = ctx.run(&["verify", &target, "--key", "cosign.pub", "--insecure"]);
    assert!(v.out.status.success(), "{}", v.describe());
    assert!(v.stdout().contains("tier: locked"), "{}", v.stdout());
    assert!(v
        .stdout()
        .contains(report["manifest_digest"].as_str().unwrap()));

    // A different key does not verify the pushed image.
    let other = TestContext::new();
    assert!(other
        .run_env(&["generate-key-pair"], &pass)
        .out
        .status
        .success());
    let pubkey = other.path().join("cosign.pub");
    let v = ctx.run(&[
        "verify",
        &target,
        "--key",
        pubkey.to_str().unwrap(),
        "--insecure",
    ]);
    assert_eq!(v.code(), 1, "{}", v.describe());

    // build --sign-key --push: signed and pushed in one go.
    let repo = format!("127.0.0.1:{}/armorred/nginx", reg.port);
    let key = ctx.path().join("cosign.key");
    let r = ctx.run_env(
        &[
            "build",
            "nginx",
            "--tier",
            "hardened",
            "--out",
            "out",
            "--sign-key",
            key.to_str().unwrap(),
            "--push",
            &repo,
            "--insecure",
            "-vv",
        ],
        &pass,
    );
    assert!(r.out.status.success(), "{}", r.describe());
    // Each blob pushed is a progress step (a bar's message; debug in logs).
    let steps = r
        .stderr()
        .lines()
        .filter(|l| l.contains(&format!("pushing to {repo}: ")) && l.contains(" MiB sent"))
        .count();
    assert!(steps >= 7, "{}", r.stderr());
    let v = ctx.run(&[
        "verify",
        &format!("{repo}:1.26.3-hardened"),
        "--key",
        "cosign.pub",
        "--insecure",
    ]);
    assert!(
        v.out.status.success() && v.stdout().contains("tier: hardened"),
        "{}",
        v.describe()
    );

    // The real cosign verifies the pushed nginx: its signature, and an
    // attestation of each of the four types, each about the pushed manifest.
    let (_, _, digest) =
        registry::fetch_manifest(&reg.image("armorred/nginx:1.26.3-hardened"), &opts()).unwrap();
    let remote = format!("{repo}@{digest}");
    let out = cosign(
        ctx.path(),
        &[
            "verify",
            "--key",
            "cosign.pub",
            "--insecure-ignore-tlog=true",
            "--allow-http-registry=true",
            &remote,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cosign verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let payloads: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(
        payloads
            .iter()
            .any(|p| p["critical"]["image"]["docker-manifest-digest"] == digest.as_str()),
        "{text}"
    );
    for (kind, predicate_type) in [
        ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
        ("cyclonedx", "https://cyclonedx.org/bom"),
        ("spdxjson", "https://spdx.dev/Document"),
        ("openvex", "https://openvex.dev/ns"),
    ] {
        let out = verify_attestation(ctx.path(), "cosign.pub", kind, &remote);
        let statements = cosign_statements(&out);
        assert!(
            !statements.is_empty(),
            "cosign verify-attestation --type {kind} printed no statement"
        );
        for s in &statements {
            assert_eq!(s["predicateType"], predicate_type, "--type {kind}: {s}");
            assert_eq!(s["subject"][0]["digest"]["sha256"], digest.hex(), "{s}");
        }
        if kind == "openvex" {
            // nginx's Debian patches fix CVEs: the VEX says so, about this image.
            let statements = statements[0]["predicate"]["statements"].as_array().unwrap();
            assert!(
                statements.iter().all(|v| v["status"] == "fixed")
                    && statements
                        .iter()
                        .any(|v| v["vulnerability"]["name"].as_str().is_some()),
                "{statements:?}"
            );
        }
    }

    // oras finds the SBOMs and the VEX document as referrers of the pushed
    // manifest (through the referrers tag, distribution 2.8 having no
    // referrers API), by artifact type, each the manifest the layout holds.
    let out = sh("oras", &["discover", "--plain-http", &remote]);
    let tree = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = tree.lines();
    assert_eq!(
        lines.next(),
        Some(remote.as_str()),
        "oras discover:\n{tree}"
    );
    let names: Vec<&str> = lines
        .map(|l| l.trim_start_matches(['├', '└', '│', '─', ' ']))
        .collect();
    let mut discovered: Vec<(String, String)> = names
        .chunks(2)
        .map(|pair| (pair[0].to_string(), pair.get(1).unwrap_or(&"").to_string()))
        .collect();
    discovered.sort();
    let layout = Layout::open(&ctx.path().join("out/nginx-hardened")).unwrap();
    let mut attached: Vec<(String, String)> = layout
        .attachments_of(&digest)
        .unwrap()
        .into_iter()
        .filter_map(|d| Some((d.artifact_type?, d.digest.to_string())))
        .collect();
    attached.sort();
    let types: Vec<&str> = attached.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "application/spdx+json",
            "application/vnd.cyclonedx+json",
            "application/vnd.openvex+json"
        ],
        "oras discover:\n{tree}"
    );
    assert_eq!(discovered, attached, "oras discover:\n{tree}");
}

/// The statements `cosign verify-attestation` printed (one DSSE envelope a
/// line on stdout, its payload base64), asserting that it succeeded.
fn cosign_statements(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "cosign verify-attestation failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let envelope: sign::dsse::Envelope = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("cosign printed no DSSE envelope ({e}): {l}"));
            let statement = base64::engine::general_purpose::STANDARD
                .decode(envelope.payload)
                .unwrap();
            serde_json::from_slice(&statement).unwrap()
        })
        .collect()
}

/// Registry failures through the CLI: each exits 1, names the
/// registry, and leaves the local image untouched.
#[test]
fn cli_push_failures_exit_1_and_name_the_registry() {
    let b = nginx();
    let ctx = TestContext::new();
    let layout = ctx.path().join("img");
    sh(
        "cp",
        &["-a", b.hardened.to_str().unwrap(), layout.to_str().unwrap()],
    );
    let before = std::fs::read(layout.join("index.json")).unwrap();
    let check = |r: &common::Run, needles: &[&str]| {
        assert_eq!(r.code(), 1, "{}", r.describe());
        for n in needles {
            assert!(r.stderr().contains(n), "missing `{n}`: {}", r.stderr());
        }
        assert!(!r.stderr().contains("panicked"));
        assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), before);
    };
    let push = |target: &str, extra: &[&str]| {
        let mut a = vec!["push", layout.to_str().unwrap(), target, "--insecure"];
        a.extend(extra);
        ctx.run(&a)
    };

    // Unreachable.
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    check(
        &push(&format!("{host}/a/nginx:t"), &[]),
        &[&host, "unreachable"],
    );

    // 401 with a wrong password.
    let reg = Registry::start_with_htpasswd("ci", "right");
    let host = format!("127.0.0.1:{}", reg.port);
    let auth = auth_file(ctx.path(), &host, "ci", "wrong");
    check(
        &push(
            &format!("{host}/a/nginx:t"),
            &["--auth-file", auth.to_str().unwrap()],
        ),
        &[&host, "401 Unauthorized", auth.to_str().unwrap()],
    );

    // 500 from the registry.
    let server = FakeServer::start(|_, _| {
        Answer::Full(
            500,
            vec![],
            br#"{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}"#.to_vec(),
        )
    });
    let host = format!("127.0.0.1:{}", server.port);
    check(
        &push(&format!("{host}/a/nginx:t"), &[]),
        &[&host, "answered 500", "after 5 attempts"],
    );
    drop(server);

    // The connection drops in the middle of an upload.
    let server = FakeServer::start(|seen, port| match seen.method.as_str() {
        "HEAD" => Answer::Full(404, vec![], vec![]),
        "POST" => Answer::Full(
            202,
            vec![(
                "Location",
                format!("http://127.0.0.1:{port}/v2/a/nginx/blobs/uploads/u1"),
            )],
            vec![],
        ),
        _ => Answer::CloseWhileReading(1024),
    });
    let host = format!("127.0.0.1:{}", server.port);
    check(
        &push(&format!("{host}/a/nginx:t"), &[]),
        &[&host, "dropped"],
    );
}

/// A new key pair (`cosign.key`, `cosign.pub`) and the fixture `image`'s
/// hardened tier built and signed (so attested) with it, in a new context.
fn signed_fixture(image: &str) -> (TestContext, PathBuf) {
    let ctx = TestContext::new();
    ctx.generate_key_pair();
    let layout = common::build_fixture(
        &ctx,
        image,
        "hardened",
        &["--sign-key", "cosign.key"],
        &[common::COSIGN_TEST_PASSWORD],
    );
    (ctx, layout)
}

/// `build hello --sign-key`, then `push`: the signature and SBOMs, kept in
/// the layout's attachments index, travel: the signature under cosign's
/// `.sig` tag (the real cosign verifies it), the SBOMs by digest with their
/// `subject`, listed by the referrers fallback tag.
#[test]
fn cli_push_carries_the_attachments_of_a_signed_build() {
    let reg = Registry::start();
    let (ctx, layout_dir) = signed_fixture("hello");
    assert_eq!(
        common::index_json(&layout_dir)["manifests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let layout = Layout::open(&layout_dir).unwrap();
    let image = layout.load_image(None).unwrap();
    let digest = image.descriptor.digest.clone();
    let sboms: Vec<Descriptor> = layout
        .attachments_of(&digest)
        .unwrap()
        .into_iter()
        .filter(|d| d.artifact_type.is_some())
        .collect();
    assert_eq!(sboms.len(), 2, "{sboms:?}");

    let target = reg.image("armorred/hello:1.0-hardened");
    let push = ctx.ok(&[
        "push",
        "out/hello-hardened",
        &target.to_string(),
        "--insecure",
        "--json",
    ]);
    assert_eq!(push.json()["manifest_digest"], digest.as_str());
    let (signed, layers) = registry::signatures_remote(&target, &opts()).unwrap();
    assert_eq!((signed, layers.len()), (digest.clone(), 1));
    let v = ctx.ok(&[
        "verify",
        &target.to_string(),
        "--key",
        "cosign.pub",
        "--insecure",
    ]);
    assert!(v.stdout().contains("tier: hardened"), "{}", v.stdout());
    let fallback = target.with_tag(&format!("sha256-{}", digest.hex()));
    let (index, _, _) = registry::fetch_manifest(&fallback, &opts()).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let mut listed: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap().to_string(),
                m["artifactType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    let mut local: Vec<(String, String)> = sboms
        .iter()
        .map(|d| (d.digest.to_string(), d.artifact_type.clone().unwrap()))
        .collect();
    local.sort();
    assert_eq!(listed, local, "{index}");
    for d in &sboms {
        let (remote, _, _) =
            registry::fetch_manifest(&target.with_digest(&d.digest), &opts()).unwrap();
        let m: Manifest = serde_json::from_slice(&remote).unwrap();
        assert_eq!(m.subject.unwrap().digest, digest);
    }
    // The real cosign verifies what was pushed (no Rekor here).
    cosign_ok(
        ctx.path(),
        &[
            "verify",
            "--key",
            "cosign.pub",
            "--insecure-ignore-tlog=true",
            "--allow-http-registry=true",
            &format!("{}/armorred/hello@{digest}", reg.host()),
        ],
    );
}

/// `cosign <args>` in `dir`, with the test key pairs' passphrase.
fn cosign(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("cosign")
        .args(args)
        .current_dir(dir)
        .env(
            common::COSIGN_TEST_PASSWORD.0,
            common::COSIGN_TEST_PASSWORD.1,
        )
        .output()
        .expect("run cosign (scripts/setup-tools.sh installs it)")
}

/// [`cosign`], asserting success; its stdout.
fn cosign_ok(dir: &Path, args: &[&str]) -> String {
    let out = cosign(dir, args);
    assert!(
        out.status.success(),
        "cosign {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cosign verify-attestation --key <key> --type <kind> <image>`, no Rekor.
fn verify_attestation(dir: &Path, key: &str, kind: &str, image: &str) -> std::process::Output {
    cosign(
        dir,
        &[
            "verify-attestation",
            "--key",
            key,
            "--type",
            kind,
            "--insecure-ignore-tlog=true",
            "--allow-http-registry=true",
            image,
        ],
    )
}

/// [`verify_attestation`], asserting that cosign accepts.
fn assert_attestation_verifies(dir: &Path, key: &str, kind: &str, image: &str) {
    let out = verify_attestation(dir, key, kind, image);
    assert!(
        out.status.success(),
        "cosign verify-attestation --type {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `build hello --sign-key` attests SLSA provenance and both SBOMs in
/// cosign's `.att` manifest; `push` carries it; the real cosign verifies each
/// predicate type with the key and refuses another key; `verify
/// --attestations` agrees, in the layout and the registry; a second build
/// attests byte-identical provenance; `cosign tree` lists `.sig` and `.att`.
#[test]
fn cli_build_attests_and_cosign_verifies_the_attestations() {
    let reg = Registry::start();
    let (ctx, layout_dir) = signed_fixture("hello");
    let digest = Layout::open(&layout_dir)
        .unwrap()
        .load_image(None)
        .unwrap()
        .descriptor
        .digest;
    let provenance = common::attested_provenance(&layout_dir);
    let statement: serde_json::Value = serde_json::from_slice(&provenance).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.hex());
    let params = &statement["predicate"]["buildDefinition"]["externalParameters"];
    assert_eq!(params["recipe"]["name"], "hello");
    assert_eq!(params["tier"], "hardened");
    assert_eq!(params["platform"], "linux/amd64");

    let local = ctx.ok(&[
        "verify",
        "out/hello-hardened",
        "--key",
        "cosign.pub",
        "--attestations",
        "--json",
    ]);
    let v = local.json();
    assert_eq!(v["manifest_digest"], digest.as_str());
    let mut types: Vec<&str> = v["predicate_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "https://cyclonedx.org/bom",
            "https://slsa.dev/provenance/v1",
            "https://spdx.dev/Document"
        ],
        "{v}"
    );
    assert_eq!(
        v["provenance"]["build_type"],
        armorred::slsa::BUILD_TYPE,
        "{v}"
    );
    assert_eq!(v["provenance"]["external_parameters"]["tier"], "hardened");

    let target = reg.image("armorred/hello:1.0-hardened");
    ctx.ok(&[
        "push",
        "out/hello-hardened",
        &target.to_string(),
        "--insecure",
    ]);
    let remote = format!("{}/armorred/hello@{digest}", reg.host());
    for kind in ["slsaprovenance1", "cyclonedx", "spdxjson"] {
        assert_attestation_verifies(ctx.path(), "cosign.pub", kind, &remote);
    }
    // cosign filters by predicate type: hello fixes no CVE, so has no VEX.
    let out = verify_attestation(ctx.path(), "cosign.pub", "openvex", &remote);
    assert!(!out.status.success(), "cosign found a VEX attestation");
    // Another key: cosign refuses, and so does armorred.
    let other = TestContext::new();
    other.generate_key_pair();
    let wrong = other.path().join("cosign.pub");
    let out = verify_attestation(
        ctx.path(),
        wrong.to_str().unwrap(),
        "slsaprovenance1",
        &remote,
    );
    assert!(!out.status.success(), "cosign accepted another key");
    let r = ctx.run(&[
        "verify",
        &remote,
        "--key",
        wrong.to_str().unwrap(),
        "--attestations",
        "--insecure",
    ]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(r.stderr().contains("does not verify"), "{}", r.describe());
    let r = ctx.ok(&[
        "verify",
        &remote,
        "--key",
        "cosign.pub",
        "--attestations",
        "--insecure",
    ]);
    assert!(
        r.stdout().contains("verified 3 attestation(s)"),
        "{}",
        r.stdout()
    );

    let out = cosign(ctx.path(), &["tree", "--allow-http-registry=true", &remote]);
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tree.contains(&format!("sha256-{}.sig", digest.hex()))
            && tree.contains(&format!("sha256-{}.att", digest.hex())),
        "{tree}"
    );

    // Another build of the same inputs, with another key: the same provenance bytes.
    let again = common::build_fixture(
        &other,
        "hello",
        "hardened",
        &["--sign-key", "cosign.key"],
        &[common::COSIGN_TEST_PASSWORD],
    );
    assert_eq!(common::attested_provenance(&again), provenance);

    // Pushed to the same repository, its attestations are appended to the
    // `.att` manifest: cosign finds each key's. armorred's check demands every
    // attestation be by the key it is given, so it now fails closed.
    let p = other.ok(&[
        "push",
        again.to_str().unwrap(),
        &target.to_string(),
        "--insecure",
        "--json",
    ]);
    assert!(
        p.stdout()
            .contains("cosign attestations: 3 added, 6 in total"),
        "{}",
        p.stdout()
    );
    let (_, layers) = registry::attestations_remote(&target, &opts()).unwrap();
    assert_eq!(layers.len(), 6);
    for key in [ctx.path().join("cosign.pub"), wrong.clone()] {
        assert_attestation_verifies(
            ctx.path(),
            key.to_str().unwrap(),
            "slsaprovenance1",
            &remote,
        );
    }
    let r = ctx.run(&[
        "verify",
        &remote,
        "--key",
        "cosign.pub",
        "--attestations",
        "--insecure",
    ]);
    assert_eq!(r.code(), 1, "{}", r.describe());
}

/// Replaces the `.att` manifest of `digest` in `repo` (`host:port/name`) with
/// one holding exactly `layers`: blobs by a monolithic upload, then the
/// manifest by tag. armorred's own push only ever appends attestations, so
/// the test writes the distribution API's three requests itself.
fn replace_attestations(repo: &str, digest: &Digest, layers: &[sign::AttestationLayer]) {
    let (manifest, config) = sign::attestation_manifest(layers);
    let (host, name) = repo.split_once('/').unwrap();
    let base = format!("http://{host}/v2/{name}");
    for blob in std::iter::once(&config).chain(layers.iter().map(|l| &l.envelope)) {
        let started = ureq::post(&format!("{base}/blobs/uploads/"))
            .send_empty()
            .unwrap();
        let location = started.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("http://{host}{location}")
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        ureq::put(&format!("{location}{sep}digest={}", Digest::of(blob)))
            .header("content-type", "application/octet-stream")
            .send(&blob[..])
            .unwrap();
    }
    ureq::put(&format!(
        "{base}/manifests/{}",
        sign::attestation_tag(digest.as_str())
    ))
    .header("content-type", armorred::oci::MEDIA_TYPE_MANIFEST)
    .send(&manifest[..])
    .unwrap();
}

/// Three ways an attestation can be wrong, each refused by the real cosign
/// and by `verify --attestations` alike, on a pushed image whose `.att`
/// manifest is rewritten in the registry; restoring the original makes both
/// accept it again, so the refusals come from the change alone.
#[test]
fn tampered_attestations_fail_cosign_and_armorred_alike() {
    use sign::dsse::{self, Envelope};
    let b64 = base64::engine::general_purpose::STANDARD;
    let reg = Registry::start();
    let (ctx, layout_dir) = signed_fixture("hello");
    let target = reg.image("armorred/hello:1.0-hardened");
    ctx.ok(&[
        "push",
        layout_dir.to_str().unwrap(),
        &target.to_string(),
        "--insecure",
    ]);
    let repo = format!("{}/armorred/hello", reg.host());
    let (digest, original) = registry::attestations_remote(&target, &opts()).unwrap();
    let remote = format!("{repo}@{digest}");
    let provenance = original
        .iter()
        .find(|l| l.predicate_type == "https://slsa.dev/provenance/v1")
        .unwrap()
        .clone();
    let key = keys::decrypt_private_key(
        &std::fs::read_to_string(ctx.path().join("cosign.key")).unwrap(),
        b"pw",
    )
    .unwrap();

    // Both verdicts for the provenance, with `key` (a path in ctx).
    let verdicts = |key: &str| {
        let cosign = verify_attestation(ctx.path(), key, "slsaprovenance1", &remote);
        let armorred = ctx.run(&[
            "verify",
            &remote,
            "--key",
            key,
            "--attestations",
            "--insecure",
        ]);
        (cosign, armorred)
    };
    let refused = |case: &str, key: &str, armorred_says: &[&str]| {
        let (cosign, armorred) = verdicts(key);
        let cosign_err = String::from_utf8_lossy(&cosign.stderr).into_owned();
        assert!(!cosign.status.success(), "{case}: cosign accepted it");
        assert_eq!(armorred.code(), 1, "{case}: {}", armorred.describe());
        for needle in armorred_says {
            assert!(
                armorred.stderr().contains(needle),
                "{case}: `{needle}` missing: {}",
                armorred.describe()
            );
        }
        cosign_err
    };
    let (cosign, armorred) = verdicts("cosign.pub");
    cosign_statements(&cosign);
    assert_eq!(armorred.code(), 0, "{}", armorred.describe());

    // (a) Another key. cosign decodes each DSSE envelope of the `.att`
    // manifest and checks its signatures over the pre-authentication encoding
    // with the given key, needing one to verify (its DSSE "threshold" of 1);
    // none does, so no attestation is left to match `--type`.
    let other = TestContext::new();
    other.generate_key_pair();
    let wrong = other.path().join("cosign.pub");
    let err = refused("another key", wrong.to_str().unwrap(), &["does not verify"]);
    assert!(
        err.contains(
            "no matching attestations: accepted signatures do not match threshold, Found: 0"
        ),
        "{err}"
    );

    // (b) A statement about another image, signed with the right key, as the
    // only attestation. Its signature verifies; then cosign's in-toto claim
    // verifier decodes the payload and requires a subject whose sha256 is the
    // image's digest ("no matching subject digest found").
    let mut statement: serde_json::Value = serde_json::from_slice(
        &b64.decode(
            serde_json::from_slice::<Envelope>(&provenance.envelope)
                .unwrap()
                .payload,
        )
        .unwrap(),
    )
    .unwrap();
    let elsewhere = Digest::of(b"another image");
    statement["subject"][0]["digest"]["sha256"] = elsewhere.hex().into();
    let about_another = sign::AttestationLayer {
        envelope: dsse::sign_statement(&key, &serde_json::to_vec(&statement).unwrap()),
        predicate_type: provenance.predicate_type.clone(),
    };
    // Appended beside the image's own, it fails only armorred, which demands
    // that every attestation name the image; cosign accepts the image as
    // soon as one attestation of the type verifies.
    let mut appended = original.clone();
    appended.push(about_another.clone());
    replace_attestations(&repo, &digest, &appended);
    let (cosign, armorred) = verdicts("cosign.pub");
    let shown = cosign_statements(&cosign);
    assert!(
        shown
            .iter()
            .all(|s| s["subject"][0]["digest"]["sha256"] == digest.hex()),
        "cosign printed a statement about another image: {shown:?}"
    );
    assert_eq!(armorred.code(), 1, "{}", armorred.describe());
    assert!(
        armorred.stderr().contains(&format!("not image {digest}")),
        "{}",
        armorred.describe()
    );
    replace_attestations(&repo, &digest, &[about_another]);
    let err = refused(
        "another subject",
        "cosign.pub",
        &[elsewhere.hex(), &format!("not image {digest}")],
    );
    assert!(
        err.contains("no matching attestations: no matching subject digest found"),
        "{err}"
    );

    // (c) The provenance with one byte of its predicate changed after
    // signing (still valid JSON: the tier's last letter). The envelope is
    // well formed and the layer's digest matches its blob (cosign checks
    // that first), but the signature over the pre-authentication encoding of
    // the new payload does not verify: the threshold check of (a) fails.
    let mut envelope: Envelope = serde_json::from_slice(&provenance.envelope).unwrap();
    let payload = String::from_utf8(b64.decode(&envelope.payload).unwrap()).unwrap();
    assert!(payload.contains(r#""tier":"hardened""#), "{payload}");
    envelope.payload = b64.encode(payload.replace(r#""tier":"hardened""#, r#""tier":"hardenee""#));
    let edited = sign::AttestationLayer {
        envelope: serde_json::to_vec(&envelope).unwrap(),
        predicate_type: provenance.predicate_type.clone(),
    };
    replace_attestations(&repo, &digest, &[edited]);
    let err = refused("edited predicate", "cosign.pub", &["does not verify"]);
    assert!(
        err.contains(
            "no matching attestations: accepted signatures do not match threshold, Found: 0"
        ),
        "{err}"
    );

    // The original attestations written back by the same helper verify again.
    replace_attestations(&repo, &digest, &original);
    let (cosign, armorred) = verdicts("cosign.pub");
    cosign_statements(&cosign);
    assert_eq!(armorred.code(), 0, "{}", armorred.describe());
}

/// An image built from a recorded Debian source (the `patched` fixture):
/// its provenance lists both tarballs with their sha256, as the record gives
/// them, and its OpenVEX document is attested too; cosign verifies it by
/// `--type openvex` once pushed.
#[test]
fn provenance_lists_the_debian_tarballs_and_vex_is_attested() {
    let reg = Registry::start();
    let (ctx, layout_dir) = signed_fixture("patched");
    let v = ctx
        .ok(&[
            "verify",
            layout_dir.to_str().unwrap(),
            "--key",
            "cosign.pub",
            "--attestations",
            "--json",
        ])
        .json();
    assert!(
        v["predicate_types"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("https://openvex.dev/ns")),
        "{v}"
    );
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(common::repo().join("tests/fixtures/recipes/patched.armorred-patches.json"))
            .unwrap(),
    )
    .unwrap();
    let deps = v["provenance"]["resolved_dependencies"].as_array().unwrap();
    for tarball in ["origTarball", "debianTarball"] {
        let want = &record[tarball];
        assert!(
            deps.iter().any(|d| d["name"] == want["file"]
                && d["digest"]["sha256"] == want["sha256"]
                && d["uri"]
                    .as_str()
                    .unwrap()
                    .starts_with("pkg:deb/debian/patched@1.0-1%2Bdeb13u1?arch=source")),
            "{tarball} missing from {deps:?}"
        );
    }

    let digest = v["manifest_digest"].as_str().unwrap().to_string();
    let target = reg.image("armorred/patched:1.0-hardened");
    ctx.ok(&[
        "push",
        layout_dir.to_str().unwrap(),
        &target.to_string(),
        "--insecure",
    ]);
    assert_attestation_verifies(
        ctx.path(),
        "cosign.pub",
        "openvex",
        &format!("{}/armorred/patched@{digest}", reg.host()),
    );
}

/// A multi-platform image (the `multiarch` fixture: an index with
/// a linux/amd64 child) pushed with no destination on the command line goes
/// to armorred.toml's `registry`: the children first, then the index under
/// the tag, each with its signature, the SBOMs as referrers of the child.
/// skopeo reads the index back; `verify` checks the index and its child.
/// A bare `build --push` uses the same default.
#[test]
fn multiarch_index_pushes_to_the_registry_from_armorred_toml() {
    let reg = Registry::start();
    let ctx = TestContext::new();
    std::fs::write(
        ctx.path().join("armorred.toml"),
        format!("registry = \"{}/team\"\n", reg.host()),
    )
    .unwrap();
    let recipes = common::repo().join("tests/fixtures/recipes");
    let recipes = recipes.to_str().unwrap();
    ctx.generate_key_pair();
    let r = ctx.run_env(
        &[
            "build",
            "multiarch",
            "--tier",
            "hardened",
            "--recipes",
            recipes,
            "--out",
            "out",
            "--sign-key",
            "cosign.key",
            "--json",
        ],
        &[common::COSIGN_TEST_PASSWORD],
    );
    assert!(r.out.status.success(), "{}", r.describe());
    let built = r.json();
    let index_digest = built["images"][0]["manifest_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let child = built["images"][0]["platforms"][0]["manifest_digest"]
        .as_str()
        .unwrap()
        .to_string();

    // No target: `<registry>/<image>`, tagged with the image's reference.
    let push = ctx.run(&["push", "out/multiarch-hardened", "--insecure", "--json"]);
    assert!(push.out.status.success(), "{}", push.describe());
    let report = push.json();
    let tagged = format!("{}/team/multiarch:1.0-hardened", reg.host());
    assert_eq!(report["reference"], format!("{tagged}@{index_digest}"));
    assert_eq!(report["manifest_digest"], index_digest.as_str());
    let notes = report["attachments"].to_string();
    assert!(
        notes.contains(&format!("sha256-{}.sig", &child[7..]))
            && notes.contains(&format!("sha256-{}.sig", &index_digest[7..])),
        "{notes}"
    );
    assert!(notes.contains("application/spdx+json"), "{notes}");

    // skopeo sees the index at the tag, and the child by digest.
    let raw = sh(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{tagged}"),
        ],
    );
    assert_eq!(Digest::of(&raw.stdout).as_str(), index_digest);
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"][0]["digest"], child.as_str());
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
    let cfg = sh(
        "skopeo",
        &[
            "inspect",
            "--config",
            "--tls-verify=false",
            &format!("docker://{tagged}"),
        ],
    );
    let cfg: serde_json::Value = serde_json::from_slice(&cfg.stdout).unwrap();
    assert_eq!(cfg["architecture"], "amd64");
    // The SBOMs are referrers of the child (the fallback tag of distribution 2.8).
    let referrers = sh(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!(
                "docker://{}/team/multiarch:sha256-{}",
                reg.host(),
                &child[7..]
            ),
        ],
    );
    let referrers: serde_json::Value = serde_json::from_slice(&referrers.stdout).unwrap();
    assert_eq!(referrers["manifests"].as_array().unwrap().len(), 2);

    // verify from the registry: the index and its child are signed.
    let v = ctx.run(&["verify", &tagged, "--key", "cosign.pub", "--insecure"]);
    assert!(v.out.status.success(), "{}", v.describe());
    assert!(v.stdout().contains(&index_digest) && v.stdout().contains("tier: hardened"));
    // The child is attested (its provenance names its platform), in the
    // layout and in the registry.
    assert!(
        notes.contains(&format!("sha256-{}.att", &child[7..])),
        "{notes}"
    );
    let a = ctx
        .ok(&[
            "verify",
            "out/multiarch-hardened",
            "--ref",
            &child,
            "--key",
            "cosign.pub",
            "--attestations",
            "--json",
        ])
        .json();
    assert_eq!(a["manifest_digest"], child.as_str(), "{a}");
    assert_eq!(
        a["provenance"]["external_parameters"]["platform"], "linux/amd64",
        "{a}"
    );
    assert_attestation_verifies(
        ctx.path(),
        "cosign.pub",
        "slsaprovenance1",
        &format!("{}/team/multiarch@{child}", reg.host()),
    );
    // The index by its tag: armorred checks the attestations of each child.
    let a = ctx
        .ok(&[
            "verify",
            &tagged,
            "--key",
            "cosign.pub",
            "--attestations",
            "--insecure",
            "--json",
        ])
        .json();
    assert_eq!(a["manifest_digest"], index_digest.as_str(), "{a}");
    assert_eq!(a["children"][0]["manifest_digest"], child.as_str(), "{a}");
    assert_eq!(a["children"].as_array().unwrap().len(), 1, "{a}");

    // A flag wins over the file.
    let elsewhere = format!("{}/other/multiarch:x", reg.host());
    let r = ctx.run(&[
        "push",
        "out/multiarch-hardened",
        &elsewhere,
        "--insecure",
        "-v",
    ]);
    assert!(r.out.status.success(), "{}", r.describe());
    assert!(r.stdout().starts_with(&elsewhere), "{}", r.stdout());
    // The standalone push reports its progress like `build --push` (a bar
    // on a terminal, a line per blob in logs).
    let steps = r
        .stderr()
        .lines()
        .filter(|l| l.contains(&format!("pushing to {elsewhere}: ")) && l.contains(" MiB sent"))
        .count();
    assert!(steps >= 3, "{}", r.stderr());

    // A bare `build --push` goes to the file's registry too.
    let r = ctx.run(&[
        "build",
        "multiarch",
        "--tier",
        "locked",
        "--recipes",
        recipes,
        "--out",
        "out",
        "--push",
        "--insecure",
    ]);
    assert!(r.out.status.success(), "{}", r.describe());
    sh(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/team/multiarch:1.0-locked", reg.host()),
        ],
    );

    // Without the file's registry and without a target: an input error saying
    // what to do, before anything is built.
    std::fs::remove_file(ctx.path().join("armorred.toml")).unwrap();
    let r = ctx.run(&["push", "out/multiarch-hardened", "--insecure"]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(
        r.stderr().contains("set `registry` in armorred.toml"),
        "{}",
        r.describe()
    );
    let r = ctx.run(&[
        "build",
        "multiarch",
        "--recipes",
        recipes,
        "--out",
        "unbuilt",
        "--push",
    ]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(
        r.stderr()
            .contains("pass --push REPOSITORY, or set `registry`"),
        "{}",
        r.describe()
    );
    assert!(!ctx.path().join("unbuilt").exists());
}

/// The real cosign and armorred, both ways: a key pair cosign generates signs
/// armorred's build and cosign verifies it; cosign signs with a key pair
/// armorred generated and armorred verifies that signature; and each
/// verifies the other's signature with the other's key.
#[test]
fn cosign_and_armorred_keys_and_signatures_work_both_ways() {
    let reg = Registry::start();
    let ctx = TestContext::new();
    let pass = [common::COSIGN_TEST_PASSWORD];
    // cosign's key pair, in cosign's own encrypted format
    std::fs::create_dir(ctx.path().join("c")).unwrap();
    cosign_ok(&ctx.path().join("c"), &["generate-key-pair"]);
    // armorred's key pair
    ctx.ok_env(&["generate-key-pair", "--output-key-prefix", "a"], &pass);

    // armorred builds and signs with cosign's private key
    let layout = common::build_fixture(
        &ctx,
        "hello",
        "hardened",
        &["--sign-key", "c/cosign.key"],
        &pass,
    );
    let target = reg.image("armorred/hello:1.0-hardened");
    let push = ctx.ok(&[
        "push",
        layout.to_str().unwrap(),
        &target.to_string(),
        "--insecure",
        "--json",
    ]);
    let digest = push.json()["manifest_digest"].as_str().unwrap().to_string();
    let by_digest = format!("{}/armorred/hello@{digest}", reg.host());
    let no_tlog = ["--insecure-ignore-tlog=true", "--allow-http-registry=true"];

    // cosign verifies armorred's signature made with cosign's key
    let mut args = vec!["verify", "--key", "c/cosign.pub"];
    args.extend(no_tlog);
    args.push(&by_digest);
    let out = cosign_ok(ctx.path(), &args);
    assert!(out.contains(&digest), "{out}");

    // cosign signs the same image with armorred's private key (appended to
    // the `.sig` manifest); armorred and cosign both verify it with a.pub
    let mut args = vec!["sign", "--key", "a.key", "--tlog-upload=false", "-y"];
    args.extend(["--allow-http-registry=true"]);
    args.push(&by_digest);
    cosign_ok(ctx.path(), &args);
    let mut args = vec!["verify", "--key", "a.pub"];
    args.extend(no_tlog);
    args.push(&by_digest);
    cosign_ok(ctx.path(), &args);
    let v = ctx.ok(&[
        "verify",
        &target.to_string(),
        "--key",
        "a.pub",
        "--insecure",
    ]);
    assert!(v.stdout().contains("tier: hardened"), "{}", v.stdout());
    // and armorred still verifies its own signature with cosign's public key
    ctx.ok(&[
        "verify",
        &target.to_string(),
        "--key",
        "c/cosign.pub",
        "--insecure",
    ]);

    // a key that signed nothing here is refused by both
    ctx.ok_env(
        &["generate-key-pair", "--output-key-prefix", "other"],
        &pass,
    );
    let refused = ctx.run(&[
        "verify",
        &target.to_string(),
        "--key",
        "other.pub",
        "--insecure",
    ]);
    assert_eq!(refused.code(), 1, "{}", refused.describe());
    let mut args = vec!["verify", "--key", "other.pub"];
    args.extend(no_tlog);
    args.push(&by_digest);
    assert!(
        !cosign(ctx.path(), &args).status.success(),
        "cosign accepted a key that signed nothing"
    );
}

//! Cross-implementation checks for `armorred::sign`: what armorred writes must
//! be read by other cosign implementations and the other way round.
//!
//! Three independent counterparts, as the cosign binary cannot be installed here:
//! - the `sigstore` crate (sigstore-rs), the Rust library of the sigstore project;
//! - `tests/cosign_check.py`, written from the specs on Python's `cryptography`
//!   and `PyNaCl` (skipped loudly when those are missing, unless
//!   `ARMORRED_REQUIRE_COSIGN_CHECK=1`, which turns the skip into a failure);
//! - fixtures made by cosign itself (`tests/fixtures/sign/README.md`).

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use armorred::sign::{self, keys, payload, SignError, SignatureLayer, VerifyError};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};

const DIGEST: &str = "sha256:4c1c50d0ffc614f90b93b07d778028dc765548e823f676fb027f61d281ac380d";
const OTHER_DIGEST: &str =
    "sha256:97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36";
const P256: SigningScheme = SigningScheme::ECDSA_P256_SHA256_ASN1;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sign")
        .join(name)
}

fn image_payload(digest: &str) -> Vec<u8> {
    payload::new_payload("registry.example/armorred/app", digest, BTreeMap::new())
}

// ---------------------------------------------------------------- sigstore crate

#[test]
fn armorred_key_files_load_in_sigstore() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, pub_path) =
        keys::write_key_pair(&dir.path().join("cosign"), b"hunter2").unwrap();
    let key_pem = fs::read(&key_path).unwrap();
    let pub_pem = fs::read_to_string(&pub_path).unwrap();

    let theirs = SigStoreKeyPair::from_encrypted_pem(&key_pem, b"hunter2")
        .expect("sigstore must decrypt a key armorred wrote");
    assert!(
        SigStoreKeyPair::from_encrypted_pem(&key_pem, b"hunter3").is_err(),
        "sigstore must refuse the wrong passphrase too"
    );
    // Same key on both sides: sigstore's view of the public key is our .pub.
    let their_pub = keys::load_public_key(&theirs.public_key_to_pem().unwrap()).unwrap();
    assert_eq!(their_pub, keys::load_public_key(&pub_pem).unwrap());

    // And sigstore signs with it in a way we verify against our .pub.
    let signer = theirs.to_sigstore_signer(&P256).unwrap();
    let payload = image_payload(DIGEST);
    let signature_b64 = base64_encode(&signer.sign(&payload).unwrap());
    let layer = SignatureLayer {
        payload,
        signature_b64,
        annotations: BTreeMap::new(),
    };
    sign::verify_image(&their_pub, DIGEST, &[layer]).unwrap();
}

#[test]
fn sigstore_key_pairs_decrypt_with_armorred() {
    let signer = P256.create_signer().unwrap();
    let pair = signer.to_sigstore_keypair().unwrap();
    let key_pem = pair.private_key_to_encrypted_pem(b"s3cret").unwrap();
    let pub_pem = pair.public_key_to_pem().unwrap();

    let ours = keys::decrypt_private_key(&key_pem, b"s3cret")
        .expect("armorred must decrypt a key the sigstore crate wrote");
    assert_eq!(
        ours.verifying_key(),
        keys::load_public_key(&pub_pem).unwrap()
    );
    assert!(matches!(
        keys::decrypt_private_key(&key_pem, b"S3cret"),
        Err(SignError::WrongPassphrase)
    ));

    // A signature from the decrypted key verifies with sigstore's key.
    let payload = image_payload(DIGEST);
    let sig = sign::sign_payload(&ours, &payload);
    signer
        .to_verification_key()
        .unwrap()
        .verify_signature(Signature::Base64Encoded(sig.as_bytes()), &payload)
        .unwrap();
}

#[test]
fn armorred_signatures_verify_with_sigstore() {
    let key = keys::generate();
    let pub_pem = keys::public_key_pem(&key.verifying_key());
    let verifier = CosignVerificationKey::from_pem(pub_pem.as_bytes(), &P256).unwrap();

    let payload = image_payload(DIGEST);
    let sig = sign::sign_payload(&key, &payload);
    verifier
        .verify_signature(Signature::Base64Encoded(sig.as_bytes()), &payload)
        .expect("sigstore must verify an armorred signature");

    // The check is not vacuous: an edited payload fails there too.
    let edited = image_payload(OTHER_DIGEST);
    assert!(verifier
        .verify_signature(Signature::Base64Encoded(sig.as_bytes()), &edited)
        .is_err());
}

// ---------------------------------------------------------------- cosign fixtures

#[test]
fn cosign_generated_key_decrypts() {
    let key_pem = fs::read_to_string(fixture("cosign-generated-empty-password.key")).unwrap();
    let pub_pem = fs::read_to_string(fixture("cosign-generated-empty-password.pub")).unwrap();
    let key = keys::decrypt_private_key(&key_pem, b"").unwrap();
    assert_eq!(
        key.verifying_key(),
        keys::load_public_key(&pub_pem).unwrap()
    );
    assert!(matches!(
        keys::decrypt_private_key(&key_pem, b"not empty"),
        Err(SignError::WrongPassphrase)
    ));
}

#[derive(serde::Deserialize)]
struct CosignSignedPayload {
    public_key_pem: String,
    docker_reference: String,
    manifest_digest: String,
    signature_b64: String,
}

#[test]
fn cosign_made_signature_verifies_over_our_payload_bytes() {
    let f: CosignSignedPayload =
        serde_json::from_slice(&fs::read(fixture("cosign-signed-payload.json")).unwrap()).unwrap();
    let key = keys::load_public_key(&f.public_key_pem).unwrap();
    // cosign signed its own serialization; ours must be the same bytes.
    let payload = payload::new_payload(&f.docker_reference, &f.manifest_digest, BTreeMap::new());
    sign::verify_payload(&key, &payload, &f.signature_b64)
        .expect("a cosign signature must verify over armorred's payload bytes");

    let layers = [SignatureLayer {
        payload,
        signature_b64: f.signature_b64.clone(),
        annotations: BTreeMap::new(),
    }];
    let verified = sign::verify_image(&key, &f.manifest_digest, &layers).unwrap();
    assert_eq!(
        verified.payload.critical.identity.docker_reference,
        f.docker_reference
    );
    assert!(matches!(
        sign::verify_image(&key, DIGEST, &layers),
        Err(VerifyError::DigestMismatch { .. })
    ));
}

// ---------------------------------------------------------------- key files

#[test]
fn key_pair_files_have_the_right_modes_and_are_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("release");
    let (key_path, pub_path) = keys::write_key_pair(&prefix, b"pw").unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_path), 0o600, "private key must be owner-only");
    assert_eq!(
        mode(&pub_path) & !0o644,
        0,
        "public key must not be writable by others"
    );

    let before = fs::read(&key_path).unwrap();
    let err = keys::write_key_pair(&prefix, b"pw").unwrap_err();
    assert!(matches!(err, SignError::KeyFileExists(_)), "{err:?}");
    assert_eq!(fs::read(&key_path).unwrap(), before);
}

// ---------------------------------------------------------------- Python checker

/// The checker script, or None (with a loud message) if its modules are missing.
fn python_checker() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cosign_check.py");
    let why = match Command::new(common::python())
        .arg(&script)
        .arg("check-modules")
        .output()
    {
        Ok(out) if out.status.success() => return Some(script),
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        Err(e) => format!("{} could not be run: {e}", common::python().display()),
    };
    let required = std::env::var_os("ARMORRED_REQUIRE_COSIGN_CHECK").is_some_and(|v| !v.is_empty());
    assert!(
        !required,
        "ARMORRED_REQUIRE_COSIGN_CHECK is set but the checker cannot run: {why}"
    );
    // Straight to the stderr handle: libtest captures eprintln! of passing tests.
    let banner = format!(
        "\n!!!!!!!! SKIPPED: independent cosign check (tests/cosign_check.py) !!!!!!!!\n\
         !!!!!!!! {why}\n\
         !!!!!!!! hint: export ARMORRED_PYTHON=$(bash scripts/setup-python.sh)\n\n"
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), banner.as_bytes());
    None
}

fn run_py(script: &Path, args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(common::python());
    cmd.arg(script).args(args).env_remove("COSIGN_PASSWORD");
    if let Some(pw) = password {
        cmd.env("COSIGN_PASSWORD", pw);
    }
    cmd.output().expect("running the venv Python")
}

#[track_caller]
fn expect_py_ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: cosign_check.py failed ({})\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[track_caller]
fn expect_py_check_failed(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: expected the checker to reject it\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn python_decrypts_armorred_keys() {
    let Some(py) = python_checker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (key_path, pub_path) =
        keys::write_key_pair(&dir.path().join("cosign"), b"p@ss word").unwrap();
    let args = [
        "decrypt",
        "--key",
        path_str(&key_path),
        "--pub",
        path_str(&pub_path),
    ];
    let out = expect_py_ok(&run_py(&py, &args, Some("p@ss word")), "decrypting our key");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["label"], "ENCRYPTED SIGSTORE PRIVATE KEY");
    assert_eq!(report["scrypt"], serde_json::json!([32768, 8, 1]));
    assert_eq!(report["matches_pub"], true);
    expect_py_check_failed(&run_py(&py, &args, Some("p@ss w0rd")), "wrong passphrase");
}

#[test]
fn armorred_decrypts_python_keys() {
    let Some(py) = python_checker() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (i, (label, n)) in [
        ("ENCRYPTED SIGSTORE PRIVATE KEY", "32768"),
        ("ENCRYPTED COSIGN PRIVATE KEY", "32768"),
        ("ENCRYPTED SIGSTORE PRIVATE KEY", "65536"),
    ]
    .into_iter()
    .enumerate()
    {
        let prefix = dir.path().join(format!("py{i}"));
        let args = [
            "generate",
            "--prefix",
            path_str(&prefix),
            "--label",
            label,
            "--scrypt-n",
            n,
        ];
        expect_py_ok(&run_py(&py, &args, Some("from python")), "generating a key");
        let key_pem = fs::read_to_string(prefix.with_extension("key")).unwrap();
        let pub_pem = fs::read_to_string(prefix.with_extension("pub")).unwrap();
        let key = keys::decrypt_private_key(&key_pem, b"from python")
            .unwrap_or_else(|e| panic!("{label} N={n}: {e}"));
        assert_eq!(
            key.verifying_key(),
            keys::load_public_key(&pub_pem).unwrap()
        );
        assert!(matches!(
            keys::decrypt_private_key(&key_pem, b"from rust"),
            Err(SignError::WrongPassphrase)
        ));
    }
}

/// Lays out a signature image as files: manifest.json and blobs/<hex>.
fn write_signature_image(dir: &Path, layers: &[SignatureLayer]) -> PathBuf {
    let (manifest, config) = sign::signature_manifest(layers);
    let blobs = dir.join("blobs");
    fs::create_dir_all(&blobs).unwrap();
    for blob in layers.iter().map(|l| &l.payload).chain([&config]) {
        fs::write(blobs.join(sha256_hex(blob)), blob).unwrap();
    }
    let manifest_path = dir.join("manifest.json");
    fs::write(&manifest_path, &manifest).unwrap();
    // Our own reader agrees with what we wrote.
    let back = sign::parse_signature_manifest(&manifest, |d| {
        Ok(fs::read(blobs.join(d.trim_start_matches("sha256:"))).unwrap())
    })
    .unwrap();
    assert_eq!(back, layers);
    manifest_path
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn python_verifies_armorred_signature_images() {
    let Some(py) = python_checker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_, pub_path) = keys::write_key_pair(&dir.path().join("cosign"), b"pw").unwrap();
    let key = keys::decrypt_private_key(
        &fs::read_to_string(dir.path().join("cosign.key")).unwrap(),
        b"pw",
    )
    .unwrap();

    // Append semantics: an earlier signature by someone else, then ours.
    let stranger = keys::generate();
    let layer = |k: &keys::SigningKey, digest: &str| {
        let payload = payload::new_payload(
            "registry.example/armorred/app",
            digest,
            BTreeMap::from([("tier".to_string(), serde_json::json!("hardened"))]),
        );
        SignatureLayer {
            signature_b64: sign::sign_payload(k, &payload),
            payload,
            annotations: BTreeMap::new(),
        }
    };
    let layers = vec![layer(&stranger, DIGEST), layer(&key, DIGEST)];
    let image = dir.path().join("image");
    let manifest = write_signature_image(&image, &layers);
    let blobs = image.join("blobs");
    let verify = |pub_path: &Path, digest: &str| {
        let args = [
            "verify-image",
            "--pub",
            path_str(pub_path),
            "--manifest",
            path_str(&manifest),
            "--blobs",
            path_str(&blobs),
            "--digest",
            digest,
        ];
        run_py(&py, &args, None)
    };

    let out = expect_py_ok(&verify(&pub_path, DIGEST), "verifying our signature image");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["layer"], 1, "{out}");
    assert_eq!(report["layers"], 2, "{out}");

    // The checker rejects what it should, so its acceptance means something.
    expect_py_check_failed(&verify(&pub_path, OTHER_DIGEST), "another image's digest");
    let stranger_only = dir.path().join("other.pub");
    fs::write(
        &stranger_only,
        keys::public_key_pem(&keys::generate().verifying_key()),
    )
    .unwrap();
    expect_py_check_failed(&verify(&stranger_only, DIGEST), "an unrelated key");
    let ours = blobs.join(sha256_hex(&layers[1].payload));
    let mut edited = fs::read(&ours).unwrap();
    edited[10] ^= 1;
    fs::write(&ours, edited).unwrap();
    expect_py_check_failed(&verify(&pub_path, DIGEST), "an edited payload blob");
}

#[test]
fn armorred_verifies_python_signatures() {
    let Some(py) = python_checker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("py");
    expect_py_ok(
        &run_py(&py, &["generate", "--prefix", path_str(&prefix)], Some("")),
        "generating a key",
    );
    let public =
        keys::load_public_key(&fs::read_to_string(prefix.with_extension("pub")).unwrap()).unwrap();

    let payload = image_payload(DIGEST);
    let payload_path = dir.path().join("payload.json");
    fs::write(&payload_path, &payload).unwrap();
    let key_path = prefix.with_extension("key");
    let args = [
        "sign",
        "--key",
        path_str(&key_path),
        "--payload",
        path_str(&payload_path),
    ];
    let signature_b64 = expect_py_ok(&run_py(&py, &args, Some("")), "signing")
        .trim()
        .to_owned();

    // Python's own verifier agrees, and so do we.
    let pub_path = prefix.with_extension("pub");
    let verify_args = [
        "verify",
        "--pub",
        path_str(&pub_path),
        "--payload",
        path_str(&payload_path),
        "--signature",
        &signature_b64,
        "--digest",
        DIGEST,
    ];
    expect_py_ok(
        &run_py(&py, &verify_args, None),
        "python verifying its own signature",
    );
    let layers = [SignatureLayer {
        payload,
        signature_b64,
        annotations: BTreeMap::new(),
    }];
    let verified = sign::verify_image(&public, DIGEST, &layers).unwrap();
    assert_eq!(verified.layer_index, 0);
}

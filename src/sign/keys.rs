//! cosign-compatible ECDSA P-256 key pairs.
//!
//! A private key file is a PEM block labelled `ENCRYPTED SIGSTORE PRIVATE KEY`
//! (cosign's older `ENCRYPTED COSIGN PRIVATE KEY` is read too) whose body is
//! the passphrase-sealed box of [`super::encrypted`] around the key's PKCS#8
//! DER. The public key is a plain PEM `PUBLIC KEY` (SubjectPublicKeyInfo), so
//! `cosign verify --key cosign.pub` and `cosign sign --key cosign.key` work on
//! files we write, and we read the files `cosign generate-key-pair` writes.
//!
//! Private key material stays in zeroizing buffers and never reaches `Debug`.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Permissions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{encrypted, SignError};

/// PEM label cosign writes for new private keys.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of keys from cosign before v2; still read.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// The environment variable cosign reads the passphrase from.
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// An ECDSA P-256 private key. Zeroized on drop; `Debug` shows only the
/// public key's fingerprint.
#[derive(Clone)]
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
}

/// An ECDSA P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    inner: p256::ecdsa::VerifyingKey,
}

impl SigningKey {
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            inner: *self.inner.verifying_key(),
        }
    }

    /// ASN.1 DER ECDSA signature over SHA-256 of `message` (RFC 6979 nonce).
    pub(crate) fn sign_der(&self, message: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::Signature = self.inner.sign(message);
        signature.to_der().as_bytes().to_vec()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.verifying_key().fingerprint())
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// `sha256:<hex>` of the SubjectPublicKeyInfo DER: a short, stable name for
    /// the key in messages.
    pub fn fingerprint(&self) -> String {
        let der = self
            .inner
            .to_public_key_der()
            .expect("a P-256 public key always encodes");
        format!("sha256:{}", hex::encode(Sha256::digest(der.as_bytes())))
    }

    /// Checks a DER signature over `message`.
    pub(crate) fn verify_der(&self, message: &[u8], der: &[u8]) -> Result<(), SignError> {
        let signature = p256::ecdsa::Signature::from_der(der)
            .map_err(|e| SignError::MalformedSignature(e.to_string()))?;
        self.inner
            .verify(message, &signature)
            .map_err(|_| SignError::SignatureMismatch)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VerifyingKey")
            .field(&self.fingerprint())
            .finish()
    }
}

/// A fresh random key from the operating system's generator.
pub fn generate() -> SigningKey {
    SigningKey {
        inner: p256::ecdsa::SigningKey::random(&mut OsRng),
    }
}

/// The key as cosign writes it: PKCS#8 sealed under `passphrase` with scrypt
/// N=32768 r=8 p=1, in a PEM block labelled `ENCRYPTED SIGSTORE PRIVATE KEY`.
pub fn encrypt_private_key(key: &SigningKey, passphrase: &[u8]) -> Result<String, SignError> {
    let der = key
        .inner
        .to_pkcs8_der()
        .map_err(|e| SignError::UnsupportedKey(format!("encoding PKCS#8: {e}")))?;
    let sealed = encrypted::seal(der.as_bytes(), passphrase)?;
    Ok(
        pem_rfc7468::encode_string(SIGSTORE_PRIVATE_KEY_LABEL, LineEnding::LF, &sealed)
            .expect("PEM-encoding a short byte string cannot fail"),
    )
}

/// Reads a private key file as cosign writes it (either label, any scrypt
/// strength cosign writes). A wrong passphrase is [`SignError::WrongPassphrase`].
pub fn decrypt_private_key(pem: &str, passphrase: &[u8]) -> Result<SigningKey, SignError> {
    let (label, sealed) = decode_pem(pem).map_err(SignError::NotACosignKey)?;
    if label != SIGSTORE_PRIVATE_KEY_LABEL && label != COSIGN_PRIVATE_KEY_LABEL {
        return Err(SignError::NotACosignKey(format!(
            "its PEM type is `{label}`, expected `{SIGSTORE_PRIVATE_KEY_LABEL}` or `{COSIGN_PRIVATE_KEY_LABEL}`"
        )));
    }
    let sealed = Zeroizing::new(sealed);
    let der = encrypted::open(&sealed, passphrase)?;
    match p256::ecdsa::SigningKey::from_pkcs8_der(&der) {
        Ok(inner) => Ok(SigningKey { inner }),
        Err(e) => Err(SignError::UnsupportedKey(
            describe_pkcs8(&der).unwrap_or_else(|| e.to_string()),
        )),
    }
}

/// Names the algorithm of a PKCS#8 key we cannot use, for the error message.
fn describe_pkcs8(der: &[u8]) -> Option<String> {
    let info = p256::pkcs8::PrivateKeyInfo::try_from(der).ok()?;
    let what = match info.algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "an RSA key".to_owned(),
        "1.3.101.112" => "an Ed25519 key".to_owned(),
        "1.2.840.10045.2.1" => match info.algorithm.parameters_oid().ok()?.to_string().as_str() {
            "1.3.132.0.34" => "an ECDSA P-384 key".to_owned(),
            "1.3.132.0.35" => "an ECDSA P-521 key".to_owned(),
            other => format!("an EC key on curve {other}"),
        },
        other => format!("a key of algorithm {other}"),
    };
    Some(what)
}

/// PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as in `cosign.pub`.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.inner
        .to_public_key_pem(LineEnding::LF)
        .expect("a P-256 public key always encodes")
}

/// Reads a PEM `PUBLIC KEY` holding an ECDSA P-256 key.
pub fn load_public_key(pem: &str) -> Result<VerifyingKey, SignError> {
    let (label, der) = decode_pem(pem).map_err(SignError::BadPublicKey)?;
    if label != "PUBLIC KEY" {
        return Err(SignError::BadPublicKey(format!(
            "its PEM type is `{label}`"
        )));
    }
    p256::ecdsa::VerifyingKey::from_public_key_der(&der)
        .map(|inner| VerifyingKey { inner })
        .map_err(|e| SignError::BadPublicKey(e.to_string()))
}

/// Decodes the first PEM block, ignoring text around it as Go's `pem.Decode`
/// does (people paste keys with a trailing newline or a comment line above).
fn decode_pem(text: &str) -> Result<(String, Vec<u8>), String> {
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| "no PEM block found".to_owned())?;
    let block = &text[start..];
    let end_marker = block
        .find("-----END ")
        .and_then(|i| block[i + 9..].find("-----").map(|j| i + 9 + j + 5))
        .ok_or_else(|| "the PEM block has no END line".to_owned())?;
    let (label, bytes) = pem_rfc7468::decode_vec(&block.as_bytes()[..end_marker])
        .map_err(|e| format!("malformed PEM: {e}"))?;
    Ok((label.to_owned(), bytes))
}

/// Writes a new key pair as `<prefix>.key` (mode 0600) and `<prefix>.pub`
/// (mode 0644), refusing to replace either. Each file is written to a temp file
/// in the same directory, created with its final mode, synced and then renamed
/// into place without clobbering, so a crash never leaves a half-written key
/// and the private key is never readable by others, not even for a moment.
pub fn write_key_pair(prefix: &Path, passphrase: &[u8]) -> Result<(PathBuf, PathBuf), SignError> {
    write_key_pair_observed(prefix, passphrase, &mut |_| {})
}

/// [`write_key_pair`], calling `observe` with each temp file's path right
/// after it is created: the tests check its mode there.
pub(crate) fn write_key_pair_observed(
    prefix: &Path,
    passphrase: &[u8],
    observe: &mut dyn FnMut(&Path),
) -> Result<(PathBuf, PathBuf), SignError> {
    let key_path = with_suffix(prefix, ".key");
    let pub_path = with_suffix(prefix, ".pub");
    // Check both before writing either, so a refusal leaves nothing behind.
    for path in [&key_path, &pub_path] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(SignError::KeyFileExists(path.clone()));
        }
    }
    let key = generate();
    let private_pem = Zeroizing::new(encrypt_private_key(&key, passphrase)?);
    let public_pem = public_key_pem(&key.verifying_key());

    write_new_file(&key_path, private_pem.as_bytes(), 0o600, observe)?;
    if let Err(e) = write_new_file(&pub_path, public_pem.as_bytes(), 0o644, observe) {
        // We created the key file a moment ago; without its .pub it is useless.
        let _ = fs::remove_file(&key_path);
        return Err(e);
    }
    Ok((key_path, pub_path))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates `dest` with `contents` atomically; fails if it exists.
fn write_new_file(
    dest: &Path,
    contents: &[u8],
    mode: u32,
    observe: &mut dyn FnMut(&Path),
) -> Result<(), SignError> {
    let io_err = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| SignError::Io {
            action,
            path,
            source,
        }
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // The mode goes into open(2) itself, so the temp file never exists with
    // wider permissions (the umask can only narrow it).
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io_err("creating a temporary file in", dir))?;
    observe(temp.path());
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io_err("writing", temp.path()))?;
    temp.persist_noclobber(dest).map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            SignError::KeyFileExists(dest.to_owned())
        } else {
            io_err("moving the new file into place as", dest)(e.error)
        }
    })?;
    // Make the rename itself durable.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing directory", dir))?;
    Ok(())
}

/// The passphrase for a private key: `COSIGN_PASSWORD` if set (empty is a
/// valid passphrase), else a prompt on the terminal when stdin is one, else
/// [`SignError::NoPassphrase`]. With `confirm`, the prompt asks twice.
/// Never taken from the command line, where other users could read it.
pub fn passphrase_from_env_or_prompt(confirm: bool) -> Result<Zeroizing<Vec<u8>>, SignError> {
    resolve_passphrase(
        std::env::var_os(PASSWORD_ENV),
        io::stdin().is_terminal(),
        confirm,
        // rpassword reads from /dev/tty with echo off and writes the prompt there.
        &mut |prompt| rpassword::prompt_password(prompt).map(|s| Zeroizing::new(s.into_bytes())),
    )
}

fn resolve_passphrase(
    env: Option<OsString>,
    interactive: bool,
    confirm: bool,
    prompt: &mut dyn FnMut(&str) -> io::Result<Zeroizing<Vec<u8>>>,
) -> Result<Zeroizing<Vec<u8>>, SignError> {
    if let Some(value) = env {
        return Ok(Zeroizing::new(value.into_vec()));
    }
    if !interactive {
        return Err(SignError::NoPassphrase);
    }
    let first = prompt("Enter password for private key: ").map_err(SignError::Prompt)?;
    if confirm {
        let second = prompt("Enter password for private key again: ").map_err(SignError::Prompt)?;
        if *first != *second {
            return Err(SignError::PassphraseMismatch);
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::encrypted;

    #[test]
    fn encrypt_decrypt_round_trip() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"correct horse").unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"),
            "{pem}"
        );
        assert!(
            pem.ends_with("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"),
            "{pem}"
        );
        let back = decrypt_private_key(&pem, b"correct horse").unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        // The decrypted key signs what the original's public key accepts.
        let sig = back.sign_der(b"msg");
        key.verifying_key().verify_der(b"msg", &sig).unwrap();
    }

    #[test]
    fn empty_passphrase_is_a_passphrase() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"").unwrap();
        assert_eq!(
            decrypt_private_key(&pem, b"").unwrap().verifying_key(),
            key.verifying_key()
        );
        assert!(matches!(
            decrypt_private_key(&pem, b"x"),
            Err(SignError::WrongPassphrase)
        ));
    }

    #[test]
    fn wrong_passphrase_is_distinct() {
        let pem = encrypt_private_key(&generate(), b"right").unwrap();
        let err = decrypt_private_key(&pem, b"wrong").unwrap_err();
        assert!(matches!(err, SignError::WrongPassphrase), "{err:?}");
        assert!(err.to_string().contains("wrong passphrase"));
    }

    /// A key file with the given label and scrypt cost, built from parts.
    fn key_file(key: &SigningKey, label: &str, n: u32) -> String {
        let der = key.inner.to_pkcs8_der().unwrap();
        let sealed = encrypted::seal_with(der.as_bytes(), b"pw", &[7; 32], &[9; 24], n).unwrap();
        pem_rfc7468::encode_string(label, LineEnding::LF, &sealed).unwrap()
    }

    #[test]
    fn legacy_cosign_label_is_accepted() {
        let key = generate();
        let pem = key_file(&key, COSIGN_PRIVATE_KEY_LABEL, 32768);
        assert_eq!(
            decrypt_private_key(&pem, b"pw").unwrap().verifying_key(),
            key.verifying_key()
        );
    }

    #[test]
    fn scrypt_n_65536_is_accepted() {
        let key = generate();
        let pem = key_file(&key, SIGSTORE_PRIVATE_KEY_LABEL, 65536);
        assert_eq!(
            decrypt_private_key(&pem, b"pw").unwrap().verifying_key(),
            key.verifying_key()
        );
    }

    #[test]
    fn other_pem_types_are_refused_by_name() {
        let pem = key_file(&generate(), "PRIVATE KEY", 32768);
        let err = decrypt_private_key(&pem, b"pw").unwrap_err();
        assert!(matches!(err, SignError::NotACosignKey(_)));
        assert!(err.to_string().contains("`PRIVATE KEY`"), "{err}");
        assert!(matches!(
            decrypt_private_key("hello", b"pw"),
            Err(SignError::NotACosignKey(_))
        ));
    }

    #[test]
    fn text_around_the_pem_block_is_ignored() {
        let key = generate();
        let pem = format!(
            "# my key\n{}\n\n",
            encrypt_private_key(&key, b"pw").unwrap()
        );
        assert_eq!(
            decrypt_private_key(&pem, b"pw").unwrap().verifying_key(),
            key.verifying_key()
        );
        let public = format!("\n{}\n", public_key_pem(&key.verifying_key()));
        assert_eq!(load_public_key(&public).unwrap(), key.verifying_key());
    }

    #[test]
    fn non_p256_keys_are_named() {
        // A P-384 PKCS#8 key: right container, wrong curve.
        let p384 = "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBlW54Xo4CVehHMa56ySONHh6PedIhsz10IQdzAl7oxd8ZwEVvye07bY+5eqxT3bgmhZANiAAR1Q3rGniL3AfiMfWm9bMWZ5grI8qmOfqx/yuoYt4MTwG4d9HotN+TR6JSRHfepJ2UA0X6c8AK3GGpVVmTHZav5tnagIgMW3UwKd6zPjUOjLLjlLX5oJzIf1AqcC6NAtLk=";
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, p384).unwrap();
        let sealed = encrypted::seal_with(&der, b"pw", &[1; 32], &[2; 24], 32768).unwrap();
        let pem = pem_rfc7468::encode_string(SIGSTORE_PRIVATE_KEY_LABEL, LineEnding::LF, &sealed)
            .unwrap();
        let err = decrypt_private_key(&pem, b"pw").unwrap_err();
        assert!(err.to_string().contains("P-384"), "{err}");
    }

    #[test]
    fn public_key_pem_round_trip() {
        let vk = generate().verifying_key();
        let pem = public_key_pem(&vk);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(load_public_key(&pem).unwrap(), vk);
        let err = load_public_key(&encrypt_private_key(&generate(), b"").unwrap()).unwrap_err();
        assert!(matches!(err, SignError::BadPublicKey(_)), "{err:?}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = generate();
        let secret_hex = hex::encode(key.inner.to_bytes());
        let debug = format!("{key:?}");
        assert!(!debug.contains(&secret_hex), "{debug}");
        assert!(
            debug.contains(&key.verifying_key().fingerprint()),
            "{debug}"
        );
    }

    #[test]
    fn key_file_is_0600_from_creation_and_pub_is_0644() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("cosign");
        let mut seen = Vec::new();
        let (key_path, pub_path) = write_key_pair_observed(&prefix, b"pw", &mut |temp| {
            let mode = fs::metadata(temp).unwrap().permissions().mode() & 0o777;
            seen.push((temp.to_owned(), mode));
        })
        .unwrap();
        assert_eq!(key_path, dir.path().join("cosign.key"));
        assert_eq!(pub_path, dir.path().join("cosign.pub"));

        // The private key's temp file: already 0600 when it first exists, in
        // the destination's directory (so the rename is atomic).
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].1, 0o600, "temp file of the private key: {seen:?}");
        assert_eq!(seen[0].0.parent(), Some(dir.path()));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key_path), 0o600);
        // 0644 narrowed by whatever umask the test runs under.
        assert_eq!(mode(&pub_path) & !0o644, 0);
        assert_ne!(mode(&pub_path) & 0o400, 0);

        // No temp files are left behind.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["cosign.key", "cosign.pub"]);

        let key = decrypt_private_key(&fs::read_to_string(&key_path).unwrap(), b"pw").unwrap();
        let public = load_public_key(&fs::read_to_string(&pub_path).unwrap()).unwrap();
        assert_eq!(key.verifying_key(), public);
    }

    #[test]
    fn existing_files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("cosign");
        fs::write(dir.path().join("cosign.pub"), "keep me").unwrap();
        let err = write_key_pair(&prefix, b"pw").unwrap_err();
        assert!(
            matches!(&err, SignError::KeyFileExists(p) if p.ends_with("cosign.pub")),
            "{err:?}"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("cosign.pub")).unwrap(),
            "keep me"
        );
        assert!(
            !dir.path().join("cosign.key").exists(),
            "refusal must leave nothing behind"
        );

        // The no-clobber rename also holds if the file appears after the check.
        let dest = dir.path().join("late");
        fs::write(&dest, "first").unwrap();
        let err = write_new_file(&dest, b"second", 0o600, &mut |_| {}).unwrap_err();
        assert!(matches!(err, SignError::KeyFileExists(_)), "{err:?}");
        assert_eq!(fs::read_to_string(&dest).unwrap(), "first");
    }

    #[test]
    fn passphrase_sources() {
        let never = &mut |_: &str| -> io::Result<Zeroizing<Vec<u8>>> { panic!("must not prompt") };
        // The env var wins, even when empty, even on a terminal.
        let got = resolve_passphrase(Some("s3cret".into()), true, true, never).unwrap();
        assert_eq!(got.as_slice(), b"s3cret");
        let got = resolve_passphrase(Some("".into()), false, false, never).unwrap();
        assert!(got.is_empty());
        // No env var and no terminal: a clear error naming the variable.
        let err = resolve_passphrase(None, false, false, never).unwrap_err();
        assert!(matches!(err, SignError::NoPassphrase));
        assert!(err.to_string().contains("COSIGN_PASSWORD"));

        // On a terminal: prompt, once or twice.
        let mut answers = vec!["b", "a"];
        let mut prompt = |_: &str| Ok(Zeroizing::new(answers.pop().unwrap().as_bytes().to_vec()));
        let err = resolve_passphrase(None, true, true, &mut prompt).unwrap_err();
        assert!(matches!(err, SignError::PassphraseMismatch));
        let mut prompts = Vec::new();
        let mut prompt = |p: &str| {
            prompts.push(p.to_owned());
            Ok(Zeroizing::new(b"same".to_vec()))
        };
        let got = resolve_passphrase(None, true, true, &mut prompt).unwrap();
        assert_eq!(got.as_slice(), b"same");
        assert_eq!(prompts.len(), 2);
    }
}

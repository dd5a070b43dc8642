//! Errors of the sign module. Callers branch on these kinds: a wrong passphrase
//! re-prompts, an existing key file gets a hint, and a verification failure
//! says which of the four things went wrong.

use std::path::PathBuf;

/// Failures handling keys, payloads and signature manifests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("wrong passphrase for the private key (or the key file is corrupted)")]
    WrongPassphrase,

    #[error(
        "no passphrase for the private key: set COSIGN_PASSWORD (it may be empty), \
         or run in a terminal to be prompted"
    )]
    NoPassphrase,

    #[error("the two passphrases entered do not match")]
    PassphraseMismatch,

    #[error("could not read the passphrase from the terminal")]
    Prompt(#[source] std::io::Error),

    #[error("`{}` already exists; refusing to overwrite a key file", .0.display())]
    KeyFileExists(PathBuf),

    #[error("{action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("not a cosign private key: {0}")]
    NotACosignKey(String),

    #[error("the encrypted private key is malformed: {0}")]
    BadEncryptedKey(String),

    #[error(
        "the private key is encrypted with unsupported scrypt parameters N={n} r={r} p={p} \
         (cosign writes N=32768 or 65536 with r=8 p=1)"
    )]
    UnsupportedScryptParams { n: u32, r: u32, p: u32 },

    #[error("unsupported private key: {0} (armorred signs with ECDSA P-256 keys, as `cosign generate-key-pair` makes)")]
    UnsupportedKey(String),

    #[error("not a usable public key: {0} (expected a PEM `PUBLIC KEY` for ECDSA P-256)")]
    BadPublicKey(String),

    #[error("the signature is not valid base64 DER ECDSA: {0}")]
    MalformedSignature(String),

    #[error("the signature does not verify with this public key")]
    SignatureMismatch,

    #[error("not a cosign simple-signing payload: {0}")]
    BadPayload(String),

    #[error("not a cosign signature manifest: {0}")]
    BadManifest(String),

    #[error(
        "blob {expected} does not match its descriptor: it hashes to {actual} \
         ({actual_size} bytes, descriptor says {expected_size})"
    )]
    BlobMismatch {
        expected: String,
        actual: String,
        expected_size: u64,
        actual_size: u64,
    },

    #[error("could not fetch blob {digest}")]
    Fetch {
        digest: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// Why an image's signatures did not check out. Every variant names the image
/// digest, so the message stands on its own in a CI log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("image {digest} has no signatures (cosign keeps them under the tag `{tag}`)")]
    NoSignatures { digest: String, tag: String },

    #[error(
        "none of the {count} signature(s) of image {digest} verifies with this public key: \
         it was signed with a different key, or a payload or signature was altered"
    )]
    SignatureInvalid { digest: String, count: usize },

    #[error(
        "a signature verifies with this key, but it was made for image {signed_digest}, not {digest}: \
         the image changed after signing, or the signature was copied from another image"
    )]
    DigestMismatch {
        digest: String,
        signed_digest: String,
    },

    #[error("a signature of image {digest} verifies, but its payload is unusable: {reason}")]
    BadPayload { digest: String, reason: String },
}

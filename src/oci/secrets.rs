//! The secret scanner: what a layer's regular file gives away by its name
//! (`.env` files, SSH and cosign key files) and, when it is small enough to
//! read, by its content (private keys, cloud and registry tokens). The
//! image reader runs it on every file of every layer while it walks them
//! ([`super::facts`]), so the hits are part of the cached layer
//! facts; lint (CIS 4.10) and the gate decide what a hit means.

use std::sync::OnceLock;

use regex::bytes::Regex;
use serde::Serialize;

/// Files larger than this are not scanned for secrets (binaries and data).
pub const MAX_SCAN_BYTES: u64 = 16 << 20;

/// A secret-scan hit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretHit {
    pub layer: String,
    pub path: String,
    pub kind: String,
}

struct Patterns(Vec<(&'static str, Regex)>);

impl Patterns {
    fn new() -> Patterns {
        let p = |k, r: &str| (k, Regex::new(r).expect("static pattern"));
        Patterns(vec![
            // A header followed by a base64 body: a key, not the string constant
            // a TLS library carries for parsing.
            p(
                "private key",
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=:\-, \r\n]{0,200}[A-Za-z0-9+/=]{40,}",
            ),
            p("AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
            p("GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
            p("Slack token", r"\bxox[abprs]-[0-9A-Za-z-]{10,}"),
            p("npm token", r"_authToken\s*=\s*[^\s$]{8,}"),
            p(
                "registry credentials",
                r#""auths"\s*:\s*\{[^}]*"auth"\s*:\s*"[A-Za-z0-9+/=]{8,}""#,
            ),
        ])
    }
}

fn is_env_file(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    base == ".env" || base.starts_with(".env.") || (base.ends_with(".env") && base.len() > 4)
}

fn is_key_file(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    matches!(
        base,
        "id_rsa" | "id_dsa" | "id_ecdsa" | "id_ed25519" | "cosign.key"
    )
}

/// What a regular file of a layer gives away: by its name, and by its
/// content when it is small enough to scan (`content` is `None` above
/// [`MAX_SCAN_BYTES`]). Every layer's files count, whiteouts or not: the
/// lower layer still ships the file. [`crate::oci::facts`] calls this
/// once per file while it reads a layer.
pub fn secret_kinds(path: &str, content: Option<&[u8]>) -> Vec<&'static str> {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    let mut kinds = Vec::new();
    if is_env_file(path) {
        kinds.push(".env file");
    }
    if is_key_file(path) {
        kinds.push("private key file");
    }
    if let Some(data) = content {
        let patterns = PATTERNS.get_or_init(Patterns::new);
        kinds.extend(
            patterns
                .0
                .iter()
                .filter(|(_, re)| re.is_match(data))
                .map(|(kind, _)| *kind),
        );
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_find_real_secrets_not_parser_strings() {
        let p = Patterns::new();
        let hit = |data: &[u8]| {
            p.0.iter()
                .filter(|(_, r)| r.is_match(data))
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
        };
        let key = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n";
        assert_eq!(hit(key), ["private key"]);
        // What libcrypto carries as a constant is not a key.
        assert!(hit(b"-----BEGIN PRIVATE KEY-----\0-----END PRIVATE KEY-----").is_empty());
        assert_eq!(
            hit(b"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"),
            ["AWS access key id"]
        );
        assert_eq!(
            hit(b"token: ghp_0123456789abcdefghijABCDEFGHIJ0123456789"),
            ["GitHub token"]
        );
        assert_eq!(
            hit(b"//registry.npmjs.org/:_authToken=npm_abcdefgh1234"),
            ["npm token"]
        );
        assert_eq!(
            hit(br#"{"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNzd29yZA=="}}}"#),
            ["registry credentials"]
        );
        assert!(hit(b"plain configuration text").is_empty());
    }

    #[test]
    fn env_and_key_file_names() {
        assert!(
            is_env_file("/app/.env")
                && is_env_file("/app/.env.production")
                && is_env_file("/x/prod.env")
        );
        assert!(!is_env_file("/nix/store/x/lib/environment") && !is_env_file("/etc/.envrc-not"));
        assert!(is_key_file("/root/.ssh/id_ed25519"));
    }
}

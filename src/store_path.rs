//! Validated Nix store paths.
//!
//! A [`StorePath`] is `/nix/store/<32-char nix-base32 hash>-<name>`, the only
//! kind of path that may enter an image from the closure. Validating once at
//! the boundary (Nix output parsing) lets every later stage trust the value.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The store directory armorred works with. Non-default stores (`--store`)
/// still use this logical prefix inside images.
pub const STORE_DIR: &str = "/nix/store";

const HASH_LEN: usize = 32;
/// Nix's base32 alphabet: digits and lowercase letters without e, o, u, t.
const NIX_BASE32: &str = "0123456789abcdfghijklmnpqrsvwxyz";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StorePath(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StorePathError {
    #[error("`{0}` is not under {STORE_DIR}/")]
    NotInStore(String),
    #[error("`{0}` has no valid 32-character store hash")]
    BadHash(String),
    #[error("`{0}` has an invalid name after the hash")]
    BadName(String),
}

impl StorePath {
    pub fn parse(s: &str) -> Result<Self, StorePathError> {
        let rest = s
            .strip_prefix(STORE_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| StorePathError::NotInStore(s.to_string()))?;
        if rest.len() < HASH_LEN + 2 || rest.as_bytes()[HASH_LEN] != b'-' {
            return Err(StorePathError::BadHash(s.to_string()));
        }
        let (hash, name) = (&rest[..HASH_LEN], &rest[HASH_LEN + 1..]);
        if !hash.chars().all(|c| NIX_BASE32.contains(c)) {
            return Err(StorePathError::BadHash(s.to_string()));
        }
        // Nix's own name rule: no slash, no leading dot, a restricted charset.
        let name_ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c));
        if !name_ok {
            return Err(StorePathError::BadName(s.to_string()));
        }
        Ok(StorePath(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }

    /// The 32-character hash part, which identifies the path.
    pub fn hash_part(&self) -> &str {
        &self.0[STORE_DIR.len() + 1..STORE_DIR.len() + 1 + HASH_LEN]
    }

    /// `nginx-1.22.1` for `/nix/store/<hash>-nginx-1.22.1`.
    pub fn name(&self) -> &str {
        &self.0[STORE_DIR.len() + 2 + HASH_LEN..]
    }

    /// Splits the name into package name and version the way
    /// `builtins.parseDrvName` does: the version starts at the first dash
    /// that is followed by a digit.
    pub fn pname_version(&self) -> (&str, Option<&str>) {
        parse_drv_name(self.name())
    }

    /// The path relative to `/`, as it appears inside a layer tar.
    pub fn rel(&self) -> &str {
        &self.0[1..]
    }
}

/// A path with its store hash left out (`nginx-1.26.3/bin/nginx` for
/// `/nix/store/<hash>-nginx-1.26.3/bin/nginx`), for ordering by what a path
/// is rather than by its hash; a path outside the store is returned whole.
pub fn without_hash(path: &str) -> &str {
    path.strip_prefix(STORE_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| r.len() > HASH_LEN + 1 && r.as_bytes()[HASH_LEN] == b'-')
        .map(|r| &r[HASH_LEN + 1..])
        .unwrap_or(path)
}

/// `builtins.parseDrvName` semantics.
pub fn parse_drv_name(name: &str) -> (&str, Option<&str>) {
    let bytes = name.as_bytes();
    for i in 0..bytes.len().saturating_sub(1) {
        if bytes[i] == b'-' && !bytes[i + 1].is_ascii_alphabetic() {
            return (&name[..i], Some(&name[i + 1..]));
        }
    }
    (name, None)
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for StorePath {
    type Error = StorePathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        StorePath::parse(&s)
    }
}

impl From<StorePath> for String {
    fn from(p: StorePath) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/nix/store/0c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-nginx-1.22.1";

    #[test]
    fn parses_parts() {
        let p = StorePath::parse(P).unwrap();
        assert_eq!(p.hash_part(), "0c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0");
        assert_eq!(p.name(), "nginx-1.22.1");
        assert_eq!(p.pname_version(), ("nginx", Some("1.22.1")));
        assert_eq!(p.rel(), &P[1..]);
    }

    #[test]
    fn rejects_bad_paths() {
        assert!(matches!(
            StorePath::parse("/usr/lib/libc.so"),
            Err(StorePathError::NotInStore(_))
        ));
        assert!(matches!(
            StorePath::parse("/nix/store/short-x"),
            Err(StorePathError::BadHash(_))
        ));
        // 'e' is not in nix-base32
        assert!(StorePath::parse("/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x").is_err());
        assert!(matches!(
            StorePath::parse("/nix/store/0c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-../etc"),
            Err(StorePathError::BadName(_))
        ));
    }

    #[test]
    fn drv_name_rules() {
        assert_eq!(
            parse_drv_name("openssl-3.0.15"),
            ("openssl", Some("3.0.15"))
        );
        assert_eq!(
            parse_drv_name("glibc-host-2.36"),
            ("glibc-host", Some("2.36"))
        );
        assert_eq!(parse_drv_name("nginx.conf"), ("nginx.conf", None));
        assert_eq!(parse_drv_name("source"), ("source", None));
    }

    #[test]
    fn without_hash_orders_by_name() {
        let p = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nginx-1.26.3/bin/nginx";
        assert_eq!(without_hash(p), "nginx-1.26.3/bin/nginx");
        assert_eq!(without_hash("/usr/bin/env"), "/usr/bin/env");
        assert_eq!(without_hash("/nix/store/short"), "/nix/store/short");
    }
}

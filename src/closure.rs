//! The runtime closure of the built package: every store path the image
//! needs, with its references, NAR hash and size.
//!
//! Parsed from `nix-store --dump-db <paths>` (the "registration" format that
//! `nix-store --load-db` and `exportReferencesGraph` use), which is stable
//! across Nix 2.x and gives references and NAR hashes in one call.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::store_path::StorePath;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathInfo {
    /// `sha256:<hex>` or `sha256:<nix-base32>`, as Nix printed it.
    pub nar_hash: String,
    pub nar_size: u64,
    pub deriver: Option<String>,
    pub references: BTreeSet<StorePath>,
}

/// A closed set of store paths: every reference of a member is a member.
#[derive(Debug, Clone, Serialize)]
pub struct Closure {
    /// The paths the image was asked for (package, shell, …).
    pub roots: Vec<StorePath>,
    pub paths: BTreeMap<StorePath, PathInfo>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClosureError {
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("`{referrer}` references `{missing}`, which is not in the closure")]
    NotClosed {
        referrer: StorePath,
        missing: StorePath,
    },
    #[error("root `{0}` is not in the closure")]
    MissingRoot(StorePath),
}

impl Closure {
    /// Builds a closure from `nix-store --dump-db` output and checks it is closed.
    pub fn from_dump_db(roots: Vec<StorePath>, text: &str) -> Result<Closure, ClosureError> {
        let paths = parse_dump_db(text)?;
        let c = Closure { roots, paths };
        c.check_closed()?;
        Ok(c)
    }

    pub fn check_closed(&self) -> Result<(), ClosureError> {
        for r in &self.roots {
            if !self.paths.contains_key(r) {
                return Err(ClosureError::MissingRoot(r.clone()));
            }
        }
        for (p, info) in &self.paths {
            for r in &info.references {
                if !self.paths.contains_key(r) {
                    return Err(ClosureError::NotClosed {
                        referrer: p.clone(),
                        missing: r.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn total_nar_size(&self) -> u64 {
        self.paths.values().map(|i| i.nar_size).sum()
    }

    /// The paths that `p` reaches, itself included.
    pub fn reachable_from(&self, p: &StorePath) -> BTreeSet<StorePath> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![p.clone()];
        while let Some(q) = stack.pop() {
            if seen.insert(q.clone()) {
                if let Some(info) = self.paths.get(&q) {
                    stack.extend(info.references.iter().cloned());
                }
            }
        }
        seen
    }

    /// Finds the closure member whose name is `name` (e.g. `nginx-1.22.1`).
    pub fn find_by_name(&self, name: &str) -> Option<&StorePath> {
        self.paths.keys().find(|p| p.name() == name)
    }
}

/// Parses the registration format: for each path, its path, NAR hash, NAR
/// size, deriver (possibly empty), reference count, then the references.
pub fn parse_dump_db(text: &str) -> Result<BTreeMap<StorePath, PathInfo>, ClosureError> {
    let mut lines = text.lines().enumerate().peekable();
    let mut out = BTreeMap::new();
    let err = |line: usize, message: String| ClosureError::Parse {
        line: line + 1,
        message,
    };
    let mut next = |what: &str| -> Result<(usize, String), ClosureError> {
        lines
            .next()
            .map(|(i, l)| (i, l.to_string()))
            .ok_or_else(|| ClosureError::Parse {
                line: 0,
                message: format!("unexpected end of input, expected {what}"),
            })
    };
    while let Ok((i, path)) = next("a store path") {
        if path.is_empty() {
            continue;
        }
        let path = StorePath::parse(&path).map_err(|e| err(i, e.to_string()))?;
        let (i, nar_hash) = next("a NAR hash")?;
        let nar_hash = normalize_nar_hash(&nar_hash)
            .ok_or_else(|| err(i, format!("`{nar_hash}` is not a NAR hash")))?;
        let (i, size) = next("a NAR size")?;
        let nar_size = size
            .parse()
            .map_err(|_| err(i, format!("NAR size `{size}` is not a number")))?;
        let (_, deriver) = next("a deriver")?;
        let (i, count) = next("a reference count")?;
        let count: usize = count
            .parse()
            .map_err(|_| err(i, format!("reference count `{count}` is not a number")))?;
        let mut references = BTreeSet::new();
        for _ in 0..count {
            let (i, r) = next("a reference")?;
            references.insert(StorePath::parse(&r).map_err(|e| err(i, e.to_string()))?);
        }
        // Self-references are normal in Nix; they add nothing to the graph.
        references.remove(&path);
        out.insert(
            path,
            PathInfo {
                nar_hash,
                nar_size,
                deriver: (!deriver.is_empty()).then_some(deriver),
                references,
            },
        );
    }
    Ok(out)
}

/// Nix 2.8 prints bare base16 in `--dump-db`; other versions prefix the
/// algorithm. Both become `sha256:<hex or nix-base32>`.
fn normalize_nar_hash(h: &str) -> Option<String> {
    let h = h.trim();
    if let Some(rest) = h.strip_prefix("sha256:") {
        return (!rest.is_empty()).then(|| h.to_string());
    }
    (h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{h}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sp(name: &str) -> StorePath {
        // A valid hash derived from the name so fixtures stay readable.
        let alphabet = b"0123456789abcdfghijklmnpqrsvwxyz";
        let mut h = String::new();
        let mut seed: u32 = name
            .bytes()
            .fold(7, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
        for _ in 0..32 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            h.push(alphabet[(seed >> 16) as usize % 32] as char);
        }
        StorePath::parse(&format!("/nix/store/{h}-{name}")).unwrap()
    }

    /// Builds a closure from `(name, size, refs)` triples.
    pub(crate) fn closure(spec: &[(&str, u64, &[&str])]) -> Closure {
        let paths = spec
            .iter()
            .map(|(n, size, refs)| {
                (
                    sp(n),
                    PathInfo {
                        nar_hash: format!("sha256:{n}"),
                        nar_size: *size,
                        deriver: None,
                        references: refs.iter().map(|r| sp(r)).collect(),
                    },
                )
            })
            .collect();
        Closure {
            roots: vec![sp(spec[0].0)],
            paths,
        }
    }

    /// Captured from Debian's Nix 2.8.0: `nix-store --dump-db <paths>`.
    const FIXTURE: &str = include_str!("../tests/fixtures/nix-2.8-dump-db.txt");

    #[test]
    fn parses_captured_dump_db() {
        let paths = parse_dump_db(FIXTURE).unwrap();
        assert!(paths.len() >= 2, "{paths:?}");
        for (p, info) in &paths {
            assert!(info.nar_hash.starts_with("sha256:"), "{p}");
            assert!(info.nar_size > 0);
            assert!(!info.references.contains(p));
        }
        let roots = paths.keys().take(1).cloned().collect();
        let c = Closure { roots, paths };
        c.check_closed().unwrap();
    }

    #[test]
    fn detects_open_closure() {
        let text = format!(
            "{}\nsha256:{}\n10\n\n1\n{}\n",
            sp("a"),
            "a".repeat(64),
            sp("b")
        );
        let e = Closure::from_dump_db(vec![sp("a")], &text).unwrap_err();
        assert!(matches!(e, ClosureError::NotClosed { .. }));
    }

    #[test]
    fn truncated_input_is_an_error() {
        let text = format!("{}\n{}\n", sp("a"), "a".repeat(64));
        assert!(parse_dump_db(&text).is_err());
    }

    #[test]
    fn reachability() {
        let c = closure(&[
            ("app-1", 10, &["libfoo-1", "glibc-2.36"]),
            ("libfoo-1", 5, &["glibc-2.36"]),
            ("glibc-2.36", 50, &[]),
            ("shell-1", 5, &["glibc-2.36"]),
        ]);
        assert_eq!(c.reachable_from(&sp("libfoo-1")).len(), 2);
        assert_eq!(c.reachable_from(&sp("app-1")).len(), 3);
        assert_eq!(c.total_nar_size(), 70);
    }
}

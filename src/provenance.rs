//! Where each store path of a closure came from, as the package set recorded
//! it inside the path: `nix-support/armorred-origin.json` (a Debian binary
//! package copied in, such as the host's libc6) and
//! `nix-support/armorred-patches.json` (a Debian source package: which of
//! Debian's patches were applied on top of the upstream tarball).
//!
//! Contract: [`read_closure`] reads the two files of every closure path from
//! the host's store; a file that is absent means "not from Debian", a file
//! that is present but unreadable or malformed is an error naming it. The
//! parsers ([`DebianOrigin::parse`], [`DebianPatches::parse`]) are pure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::closure::Closure;
use crate::store_path::StorePath;

pub const ORIGIN_FILE: &str = "nix-support/armorred-origin.json";
pub const PATCHES_FILE: &str = "nix-support/armorred-patches.json";
pub const ORIGIN_SCHEMA: &str = "armorred.host-origin/v1";
pub const PATCHES_SCHEMA: &str = "armorred.debian-patches/v1";

#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid {schema} document", path.display())]
    Parse {
        path: PathBuf,
        schema: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// The host packages a store path's files were copied from
/// (`nix/offline/glibc.nix` writes it for the host glibc). Field names as in
/// the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebianOrigin {
    pub schema: String,
    /// The component's name and upstream version (`glibc`, `2.36`).
    pub name: String,
    pub version: String,
    /// `debian-12`: the build host's distribution, when os-release says.
    #[serde(default)]
    pub distro: Option<String>,
    /// The CPE 2.3 name the package set gives the component.
    #[serde(default)]
    pub cpe: Option<String>,
    /// The Debian binary packages the files come from, the component's own
    /// (libc6) first; the others (libcrypt1, libgcc-s1) ride along.
    pub packages: Vec<DebianBinary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebianBinary {
    pub package: String,
    /// The full Debian version (`2.36-9+deb12u13`).
    pub version: String,
    pub architecture: String,
    /// The source package (`glibc`).
    pub source: String,
}

impl DebianOrigin {
    /// The binary package the component itself is (libc6 for glibc).
    pub fn main_package(&self) -> &DebianBinary {
        &self.packages[0]
    }

    /// The packages that ride along.
    pub fn also_from(&self) -> &[DebianBinary] {
        &self.packages[1..]
    }
}

/// The Debian patches applied to a package built from a Debian source
/// package. Field names as in the file the package set writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DebianPatches {
    pub schema: String,
    /// The Debian source package (`nginx`).
    pub source: String,
    pub upstream_version: String,
    /// The Debian revision the patches come from (`1.26.3-3+deb13u9`).
    pub debian_version: String,
    /// `trixie-security`.
    pub suite: String,
    pub orig_tarball: Tarball,
    pub debian_tarball: Tarball,
    /// Revisions Debian indexes but that could not be fetched here.
    #[serde(default)]
    pub newer_unfetchable: Vec<String>,
    /// The selection rule, in one line.
    pub rule: String,
    pub patches: Vec<AppliedPatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tarball {
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedPatch {
    /// The file name under `debian/patches/`.
    pub name: String,
    pub sha256: String,
    /// Sorted, unique; may be empty (a prerequisite, or a security fix that
    /// cites only a Debian bug).
    #[serde(default)]
    pub cves: Vec<String>,
    pub security: bool,
    /// `name`, `header`, or `prerequisite of <patch>`.
    pub selected_by: String,
}

impl DebianPatches {
    /// Parses and checks a patches file; `path` names it in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<DebianPatches, ProvenanceError> {
        let p: DebianPatches =
            parse_versioned(path, bytes, PATCHES_SCHEMA, |p: &DebianPatches| &p.schema)?;
        let invalid = |message: String| invalid(path, message);
        for t in [&p.orig_tarball, &p.debian_tarball] {
            if !is_sha256_hex(&t.sha256) {
                return Err(invalid(format!("{}: sha256 is not 64 hex digits", t.file)));
            }
        }
        let mut names = BTreeSet::new();
        for patch in &p.patches {
            if !names.insert(&patch.name) {
                return Err(invalid(format!("patch {} is listed twice", patch.name)));
            }
            if !is_sha256_hex(&patch.sha256) {
                return Err(invalid(format!(
                    "patch {}: sha256 is not 64 hex digits",
                    patch.name
                )));
            }
            if let Some(bad) = patch.cves.iter().find(|c| !is_cve_id(c)) {
                return Err(invalid(format!(
                    "patch {}: `{bad}` is not a CVE id",
                    patch.name
                )));
            }
            if !patch.security && !patch.cves.is_empty() {
                return Err(invalid(format!(
                    "patch {} names CVEs but is not marked security",
                    patch.name
                )));
            }
        }
        Ok(p)
    }

    /// The patches that fix a security problem.
    pub fn security_fixes(&self) -> usize {
        self.patches.iter().filter(|p| p.security).count()
    }

    /// Every CVE some applied patch fixes, sorted.
    pub fn cves(&self) -> BTreeSet<&str> {
        self.patches
            .iter()
            .flat_map(|p| p.cves.iter().map(String::as_str))
            .collect()
    }

    /// The distribution the suite belongs to, as a purl `distro` qualifier
    /// (`trixie-security` → `trixie`).
    pub fn distro(&self) -> &str {
        self.suite
            .split_once('-')
            .map_or(self.suite.as_str(), |(codename, _)| codename)
    }
}

impl DebianOrigin {
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<DebianOrigin, ProvenanceError> {
        let o: DebianOrigin =
            parse_versioned(path, bytes, ORIGIN_SCHEMA, |o: &DebianOrigin| &o.schema)?;
        if o.packages.is_empty() {
            return Err(invalid(path, "names no Debian package".into()));
        }
        Ok(o)
    }
}

/// Parses a document and checks its `schema` field is `schema`: a file of
/// another version is refused rather than half-read.
fn parse_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    schema: &'static str,
    schema_of: impl Fn(&T) -> &str,
) -> Result<T, ProvenanceError> {
    let v: T = serde_json::from_slice(bytes).map_err(|source| ProvenanceError::Parse {
        path: path.to_path_buf(),
        schema,
        source,
    })?;
    if schema_of(&v) != schema {
        return Err(invalid(
            path,
            format!("schema is `{}`, expected `{schema}`", schema_of(&v)),
        ));
    }
    Ok(v)
}

fn invalid(path: &Path, message: String) -> ProvenanceError {
    ProvenanceError::Invalid {
        path: path.to_path_buf(),
        message,
    }
}

/// What one store path says about where it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathProvenance {
    pub origin: Option<DebianOrigin>,
    pub patches: Option<DebianPatches>,
}

/// Per store path; paths with neither file are left out.
pub type Provenance = BTreeMap<StorePath, PathProvenance>;

/// Reads both files of every closure path from the host's store.
pub fn read_closure(closure: &Closure) -> Result<Provenance, ProvenanceError> {
    let mut out = Provenance::new();
    for path in closure.paths.keys() {
        let p = read_path(path.as_path())?;
        if p != PathProvenance::default() {
            out.insert(path.clone(), p);
        }
    }
    Ok(out)
}

/// Reads both files under one store path (or any directory laid out like one).
pub fn read_path(dir: &Path) -> Result<PathProvenance, ProvenanceError> {
    Ok(PathProvenance {
        origin: read_optional(&dir.join(ORIGIN_FILE))?
            .map(|(p, b)| DebianOrigin::parse(&p, &b))
            .transpose()?,
        patches: read_optional(&dir.join(PATCHES_FILE))?
            .map(|(p, b)| DebianPatches::parse(&p, &b))
            .transpose()?,
    })
}

fn read_optional(path: &Path) -> Result<Option<(PathBuf, Vec<u8>)>, ProvenanceError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some((path.to_path_buf(), b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ProvenanceError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `CVE-YYYY-NNNN`, with four or more digits in the sequence number.
pub fn is_cve_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, seq)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && seq.len() >= 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && seq.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex(c: char) -> String {
        c.to_string().repeat(64)
    }

    /// A patches file shaped like the package set's for nginx.
    pub(crate) fn nginx_patches_json() -> serde_json::Value {
        serde_json::json!({
            "schema": PATCHES_SCHEMA,
            "source": "nginx",
            "upstreamVersion": "1.26.3",
            "debianVersion": "1.26.3-3+deb13u9",
            "suite": "trixie-security",
            "origTarball": { "file": "nginx_1.26.3.orig.tar.gz", "sha256": hex('a') },
            "debianTarball": { "file": "nginx_1.26.3-3+deb13u9.debian.tar.xz", "sha256": hex('b') },
            "newerUnfetchable": ["1.26.3-3+deb13u10", "1.26.3-3+deb13u11"],
            "rule": "every patch in debian/patches/series whose name or DEP-3 header cites a CVE or a Debian security bug, plus what it needs",
            "patches": [
                { "name": "CVE-2025-23419.patch", "sha256": hex('c'), "cves": ["CVE-2025-23419"], "security": true, "selectedBy": "name" },
                { "name": "some-prereq.patch", "sha256": hex('d'), "cves": [], "security": false, "selectedBy": "prerequisite of CVE-2025-23419.patch" },
                { "name": "mp4-overflow.patch", "sha256": hex('e'), "cves": ["CVE-2024-7347", "CVE-2024-7348"], "security": true, "selectedBy": "header" },
                { "name": "dsa-bug-only.patch", "sha256": hex('f'), "cves": [], "security": true, "selectedBy": "header" }
            ]
        })
    }

    pub(crate) fn nginx_patches() -> DebianPatches {
        let bytes = serde_json::to_vec(&nginx_patches_json()).unwrap();
        DebianPatches::parse(Path::new("p.json"), &bytes).unwrap()
    }

    pub(crate) fn glibc_origin() -> DebianOrigin {
        serde_json::from_value(serde_json::json!({
            "schema": ORIGIN_SCHEMA,
            "name": "glibc",
            "version": "2.36",
            "distro": "debian-12",
            "cpe": "cpe:2.3:a:gnu:glibc:2.36:*:*:*:*:*:*:*",
            "packages": [
                { "package": "libc6", "version": "2.36-9+deb12u13", "architecture": "amd64", "source": "glibc" },
                { "package": "libcrypt1", "version": "1:4.4.33-2", "architecture": "amd64", "source": "libxcrypt" }
            ]
        }))
        .unwrap()
    }

    #[test]
    fn patches_parse_and_count() {
        let p = nginx_patches();
        assert_eq!(p.security_fixes(), 3);
        assert_eq!(
            p.cves().into_iter().collect::<Vec<_>>(),
            ["CVE-2024-7347", "CVE-2024-7348", "CVE-2025-23419"]
        );
        assert_eq!(p.distro(), "trixie");
    }

    #[test]
    fn malformed_patches_name_the_file() {
        let path = Path::new("/nix/store/x-nginx/nix-support/armorred-patches.json");
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (
                serde_json::json!({ "schema": PATCHES_SCHEMA }),
                "not a valid",
            ),
            (
                {
                    let mut v = nginx_patches_json();
                    v["schema"] = "armorred.debian-patches/v9".into();
                    v
                },
                "expected `armorred.debian-patches/v1`",
            ),
            (
                {
                    let mut v = nginx_patches_json();
                    v["patches"][0]["cves"] = serde_json::json!(["CVE-25-1"]);
                    v
                },
                "is not a CVE id",
            ),
            (
                {
                    let mut v = nginx_patches_json();
                    v["patches"][1]["sha256"] = "zz".into();
                    v
                },
                "not 64 hex digits",
            ),
            (
                {
                    let mut v = nginx_patches_json();
                    v["patches"][1]["name"] = "CVE-2025-23419.patch".into();
                    v
                },
                "listed twice",
            ),
        ];
        for (v, want) in cases {
            let e = DebianPatches::parse(path, &serde_json::to_vec(&v).unwrap()).unwrap_err();
            let text = format!("{e:#}");
            assert!(
                text.contains(&path.display().to_string()) && text.contains(want),
                "{text}"
            );
        }
        let e = DebianPatches::parse(path, b"{").unwrap_err();
        assert!(e.to_string().contains("armorred-patches.json"), "{e}");
    }

    #[test]
    fn reads_files_from_a_store_path_and_absent_means_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_path(dir.path()).unwrap(), PathProvenance::default());
        std::fs::create_dir(dir.path().join("nix-support")).unwrap();
        std::fs::write(
            dir.path().join(PATCHES_FILE),
            serde_json::to_vec(&nginx_patches_json()).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(ORIGIN_FILE),
            serde_json::to_vec(&glibc_origin()).unwrap(),
        )
        .unwrap();
        let p = read_path(dir.path()).unwrap();
        assert_eq!(p.patches, Some(nginx_patches()));
        assert_eq!(p.origin, Some(glibc_origin()));
        std::fs::write(dir.path().join(ORIGIN_FILE), b"[]").unwrap();
        let e = read_path(dir.path()).unwrap_err();
        assert!(e.to_string().contains(ORIGIN_FILE), "{e}");
    }

    #[test]
    fn cve_ids() {
        for ok in ["CVE-2025-23419", "CVE-1999-0001", "CVE-2024-1234567"] {
            assert!(is_cve_id(ok), "{ok}");
        }
        for bad in [
            "CVE-2025-123",
            "cve-2025-1234",
            "CVE-25-1234",
            "CVE-2025-12a4",
            "",
        ] {
            assert!(!is_cve_id(bad), "{bad}");
        }
    }
}

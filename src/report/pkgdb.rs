//! Components of distribution-based images, counted from their package
//! databases the way SBOM tools count them, plus `os-release`.
//!
//! - Debian/Ubuntu: `var/lib/dpkg/status`, one stanza per package, and the
//!   distroless variant `var/lib/dpkg/status.d/<name>` (its `.md5sums`
//!   files are not packages). A stanza counts when its `Status` says
//!   `installed`, or when it has no `Status` (status.d files have none);
//!   `deinstall ok config-files` leftovers do not.
//! - Alpine: `lib/apk/db/installed`, stanzas of `P:` (name) / `V:` (version).
//!
//! The files are read straight from the layer blobs by the image reader's
//! walker ([`crate::oci::decode`]), whiteouts applied, so an upstream image
//! meets the same defences as any other image armorred reads.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::analyze::FileKind;
use crate::oci::blob::BlobStore;
use crate::oci::decode::{normalize_entry, walk_layer, Item, ViewError, Whiteout};
use crate::oci::layout::Descriptor;

pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";
pub const DPKG_STATUS_D: &str = "/var/lib/dpkg/status.d/";
pub const APK_INSTALLED: &str = "/lib/apk/db/installed";
const OS_RELEASE: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];
/// Package databases larger than this are refused (Debian's full status
/// file is a few MB).
const MAX_DB_BYTES: u64 = 64 << 20;

/// Where a component was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// A Nix store path (armorred's SBOM lists these).
    Nix,
    /// A dpkg package.
    Deb,
    /// An apk package.
    Apk,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Component {
    pub name: String,
    pub version: Option<String>,
    /// dpkg's `Architecture` when it is not the image's only one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub kind: ComponentKind,
    /// The Debian version an armorred component was built or copied from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debian_version: Option<String>,
    /// Debian security patches applied on top of `version` (armorred's SBOM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_fixes: Option<u32>,
}

impl Component {
    /// `nginx 1.26.3 (+19 Debian security fixes, 1.26.3-3+deb13u9)`, `libc6:amd64 2.36-9`.
    pub fn display(&self) -> String {
        crate::sbom::component_line(
            &self.name,
            self.arch.as_deref(),
            self.version.as_deref(),
            self.security_fixes,
            self.debian_version.as_deref(),
        )
    }
}

/// The distribution files found in an image.
#[derive(Debug, Default)]
pub struct DistroFiles {
    pub dpkg_status: Option<Vec<u8>>,
    /// `status.d/<name>` → content.
    pub dpkg_status_d: BTreeMap<String, Vec<u8>>,
    pub apk_installed: Option<Vec<u8>>,
    pub os_release: Option<Vec<u8>>,
}

impl DistroFiles {
    /// Every package the databases list, sorted and without duplicates.
    pub fn packages(&self) -> Vec<Component> {
        let mut out = BTreeSet::new();
        if let Some(s) = &self.dpkg_status {
            out.extend(parse_dpkg_status(&String::from_utf8_lossy(s)));
        }
        for (name, s) in &self.dpkg_status_d {
            if !name.ends_with(".md5sums") {
                out.extend(parse_dpkg_status(&String::from_utf8_lossy(s)));
            }
        }
        if let Some(s) = &self.apk_installed {
            out.extend(parse_apk_installed(&String::from_utf8_lossy(s)));
        }
        out.into_iter().collect()
    }

    /// Which databases were read, for the report.
    pub fn sources(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.dpkg_status.is_some() {
            v.push("dpkg status");
        }
        if !self.dpkg_status_d.is_empty() {
            v.push("dpkg status.d");
        }
        if self.apk_installed.is_some() {
            v.push("apk installed");
        }
        v
    }

    pub fn os_release(&self) -> Option<OsRelease> {
        self.os_release
            .as_ref()
            .map(|b| OsRelease::parse(&String::from_utf8_lossy(b)))
    }
}

/// The fields of `os-release(5)` the report shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    pub id: Option<String>,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}

impl OsRelease {
    pub fn parse(text: &str) -> OsRelease {
        let mut r = OsRelease::default();
        for line in text.lines() {
            let Some((k, v)) = line.trim().split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            match k.trim() {
                "ID" => r.id = Some(v),
                "VERSION_ID" => r.version_id = Some(v),
                "PRETTY_NAME" => r.pretty_name = Some(v),
                _ => {}
            }
        }
        r
    }

    /// `debian:12`, `alpine:3.19`: how the image names its base.
    pub fn base_name(&self) -> Option<String> {
        let id = self.id.as_deref()?;
        Some(match &self.version_id {
            Some(v) => format!("{id}:{v}"),
            None => id.to_string(),
        })
    }
}

/// Stanzas separated by blank lines; `Key: value` with continuation lines
/// that start with a space or tab.
fn stanzas(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            last = None;
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(k) = &last {
                if let Some(v) = cur.get_mut(k) {
                    v.push('\n');
                    v.push_str(line.trim());
                }
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.insert(k.trim().to_string(), v.trim().to_string());
            last = Some(k.trim().to_string());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Installed packages of a dpkg `status` file (or one `status.d` file).
pub fn parse_dpkg_status(text: &str) -> Vec<Component> {
    stanzas(text)
        .into_iter()
        .filter(|s| {
            s.get("Status")
                .is_none_or(|st| st.split_whitespace().nth(2) == Some("installed"))
        })
        .filter_map(|s| {
            let name = s.get("Package")?.clone();
            Some(Component {
                name,
                version: s.get("Version").cloned(),
                // Multi-arch installs list one package per architecture.
                arch: s
                    .get("Architecture")
                    .filter(|a| s.contains_key("Multi-Arch") && a.as_str() != "all")
                    .cloned(),
                kind: ComponentKind::Deb,
                debian_version: None,
                security_fixes: None,
            })
        })
        .collect()
}

/// Packages of Alpine's `lib/apk/db/installed`.
pub fn parse_apk_installed(text: &str) -> Vec<Component> {
    let mut out = Vec::new();
    let (mut name, mut version) = (None, None);
    let mut flush = |name: &mut Option<String>, version: &mut Option<String>| {
        if let Some(n) = name.take() {
            out.push(Component {
                name: n,
                version: version.take(),
                arch: None,
                kind: ComponentKind::Apk,
                debian_version: None,
                security_fixes: None,
            });
        }
        *version = None;
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut name, &mut version);
        } else if let Some(n) = line.strip_prefix("P:") {
            name = Some(n.trim().to_string());
        } else if let Some(v) = line.strip_prefix("V:") {
            version = Some(v.trim().to_string());
        }
    }
    flush(&mut name, &mut version);
    out
}

fn wanted(path: &str) -> bool {
    path == DPKG_STATUS
        || path.starts_with(DPKG_STATUS_D)
        || path == APK_INSTALLED
        || OS_RELEASE.contains(&path)
}

enum Found {
    Data(Vec<u8>),
    Link(String),
}

/// What one layer entry does to the files found so far.
enum Step {
    Hide(Whiteout, String),
    Put(String, Found),
    Remove(String),
    Skip,
}

/// Reads the package databases and `os-release` from `layers` (in order),
/// applying whiteouts. Symlinks among the wanted files are followed once
/// (`/etc/os-release` → `../usr/lib/os-release`).
pub fn read_distro_files(
    store: &BlobStore,
    layers: &[Descriptor],
) -> Result<DistroFiles, ViewError> {
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    for layer in layers {
        walk_layer(
            store,
            layer,
            |e| {
                let node = match &e.item {
                    Item::Whiteout(w) => return Ok(Step::Hide(*w, e.path.clone())),
                    Item::Root => return Ok(Step::Skip),
                    Item::Node(_) if !wanted(&e.path) => return Ok(Step::Skip),
                    Item::Node(n) => n.clone(),
                };
                Ok(match node.kind {
                    FileKind::File => {
                        let data = e.read_at_most(MAX_DB_BYTES, "package database")?;
                        Step::Put(e.path.clone(), Found::Data(data))
                    }
                    FileKind::Symlink { target } => Step::Put(e.path.clone(), Found::Link(target)),
                    _ => Step::Remove(e.path.clone()),
                })
            },
            |step| match step {
                Step::Hide(w, path) => w.hide(&path, &mut found),
                Step::Put(path, f) => {
                    found.insert(path, f);
                }
                Step::Remove(path) => {
                    found.remove(&path);
                }
                Step::Skip => {}
            },
        )?;
    }
    let resolve = |path: &str| -> Option<Vec<u8>> {
        match found.get(path)? {
            Found::Data(d) => Some(d.clone()),
            Found::Link(t) => {
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                let abs = if t.starts_with('/') {
                    t.clone()
                } else {
                    format!("{dir}/{t}")
                };
                let target = normalize_entry(&abs).ok()?;
                match found.get(&target)? {
                    Found::Data(d) => Some(d.clone()),
                    Found::Link(_) => None,
                }
            }
        }
    };
    let mut files = DistroFiles {
        dpkg_status: resolve(DPKG_STATUS),
        apk_installed: resolve(APK_INSTALLED),
        os_release: OS_RELEASE.iter().find_map(|p| resolve(p)),
        ..DistroFiles::default()
    };
    for (p, f) in &found {
        if let (Some(name), Found::Data(d)) = (p.strip_prefix(DPKG_STATUS_D), f) {
            if !name.is_empty() && !name.contains('/') {
                files.dpkg_status_d.insert(name.to_string(), d.clone());
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tarball::{write_layer, Compression, LayerContent, RootfsEntry};

    const STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9+deb12u4

Package: nginx
Status: install ok installed
Architecture: amd64
Version: 1.22.1-9
Depends: libc6 (>= 2.34), libssl3 (>= 3.0.0)

Package: old-thing
Status: deinstall ok config-files
Version: 1.0

";

    #[test]
    fn dpkg_counts_installed_packages_per_architecture() {
        let p = parse_dpkg_status(STATUS);
        let names: Vec<String> = p.iter().map(Component::display).collect();
        assert_eq!(
            names,
            [
                "libc6:amd64 2.36-9+deb12u4",
                "libc6:i386 2.36-9+deb12u4",
                "nginx 1.22.1-9"
            ]
        );
    }

    #[test]
    fn apk_installed() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nC:Q1def=\nP:busybox\nV:1.36.1-r15\n";
        let p = parse_apk_installed(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].display(), "busybox 1.36.1-r15");
        assert_eq!(p[0].kind, ComponentKind::Apk);
    }

    #[test]
    fn os_release_names_the_base() {
        let r = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(r.base_name().as_deref(), Some("debian:12"));
        assert_eq!(
            r.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn reads_databases_from_layers_with_whiteouts_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let lower = vec![
            RootfsEntry::File {
                path: DPKG_STATUS.into(),
                mode: 0o644,
                data: STATUS.as_bytes().to_vec(),
            },
            RootfsEntry::File {
                path: "/var/lib/dpkg/status.d/base".into(),
                mode: 0o644,
                data: b"Package: base-files\nVersion: 12.4\n".to_vec(),
            },
            RootfsEntry::File {
                path: "/var/lib/dpkg/status.d/base.md5sums".into(),
                mode: 0o644,
                data: b"abc  etc/x\n".to_vec(),
            },
            RootfsEntry::File {
                path: "/var/lib/dpkg/status.d/gone".into(),
                mode: 0o644,
                data: b"Package: gone\n".to_vec(),
            },
            RootfsEntry::File {
                path: "/usr/lib/os-release".into(),
                mode: 0o644,
                data: b"ID=debian\nVERSION_ID=12\n".to_vec(),
            },
            RootfsEntry::Symlink {
                path: "/etc/os-release".into(),
                target: "../usr/lib/os-release".into(),
            },
        ];
        let upper = vec![RootfsEntry::File {
            path: "/var/lib/dpkg/status.d/.wh.gone".into(),
            mode: 0o644,
            data: vec![],
        }];
        let mut descs = Vec::new();
        for (entries, c) in [
            (&lower, Compression::default()),
            (&upper, Compression::None),
        ] {
            let b = write_layer(&store, &LayerContent::Rootfs(entries), c, 1).unwrap();
            descs.push(Descriptor::new(b.media_type, b.digest, b.size));
        }
        let files = read_distro_files(&store, &descs).unwrap();
        let pkgs: Vec<String> = files.packages().iter().map(Component::display).collect();
        assert_eq!(pkgs.len(), 4, "{pkgs:?}");
        assert!(pkgs.contains(&"base-files 12.4".to_string()));
        assert!(!pkgs.iter().any(|p| p.starts_with("gone")));
        assert_eq!(
            files.os_release().unwrap().base_name().as_deref(),
            Some("debian:12")
        );
        assert_eq!(files.sources(), ["dpkg status", "dpkg status.d"]);
    }

    /// A layer blob in `store` (zstd, OCI media type) holding `tar`.
    fn zstd_layer(store: &BlobStore, blob: &[u8]) -> Descriptor {
        let b = store.put(blob).unwrap();
        Descriptor {
            media_type: crate::oci::MEDIA_TYPE_LAYER_ZSTD.into(),
            digest: b.digest,
            size: b.size,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        }
    }

    /// The package-database reader meets the image reader's defences
    /// itself, not only when an analysis of the same image ran first.
    #[test]
    fn hostile_layers_are_refused_by_the_package_reader_itself() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let tar_with = |name: &str, size: u64, data: &mut dyn Read| {
            let enc = zstd::Encoder::new(Vec::new(), 1).unwrap();
            let mut tar = tar::Builder::new(enc);
            let mut h = tar::Header::new_gnu();
            h.set_size(STATUS.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, "var/lib/dpkg/status", STATUS.as_bytes())
                .unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_size(size);
            h.set_mode(0o644);
            if name.contains("..") {
                h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
                h.set_cksum();
                tar.append(&h, data).unwrap();
            } else {
                tar.append_data(&mut h, name, data).unwrap();
            }
            tar.into_inner().unwrap().finish().unwrap()
        };
        let ok = zstd_layer(&store, &tar_with("etc/motd", 2, &mut &b"hi"[..]));
        assert_eq!(
            read_distro_files(&store, std::slice::from_ref(&ok))
                .unwrap()
                .packages()
                .len(),
            3
        );

        let up = zstd_layer(&store, &tar_with("../etc/motd", 2, &mut &b"hi"[..]));
        match read_distro_files(&store, &[up]) {
            Err(ViewError::Hostile { entry, .. }) => assert_eq!(entry, "../etc/motd"),
            other => panic!("expected `..` refused, got {other:?}"),
        }

        // Zeros past the floor under a path the reader skips: zstd packs
        // them far denser than any real layer.
        let zeros = crate::oci::decode::RATIO_FLOOR + (64 << 20);
        let bomb = tar_with(
            "usr/share/zeros",
            zeros,
            &mut std::io::repeat(0).take(zeros),
        );
        let bomb = zstd_layer(&store, &bomb);
        assert!(matches!(
            read_distro_files(&store, &[bomb]),
            Err(ViewError::TooLarge { limit, .. }) if limit == crate::oci::decode::RATIO_FLOOR
        ));

        let path = store.path(&ok.digest);
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            read_distro_files(&store, &[ok]),
            Err(ViewError::DigestMismatch { .. })
        ));
    }
}

//! OCI image layouts on disk: create, read (strictly, verifying every blob it
//! touches against its descriptor), replace the image atomically, fsck, GC.
//!
//! Replacement order: new blobs first (each one atomic), then `index.json`
//! through rename, then unreferenced blobs are removed. A crash at any point
//! leaves `index.json` naming either the old image or the new one, and every
//! blob it names present and complete. What `index.json` lists (the image
//! only) and where attachments live: see [`super::attachments`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::attachments::is_attachment;
use super::blob::{write_atomic, BlobStore, TEMP_PREFIX};
use super::digest::Digest;
use super::{ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};

/// JSON documents larger than this are refused when read from a layout, so
/// a hostile layout cannot make armorred allocate without bound.
pub const MAX_JSON_BLOB: u64 = 8 << 20;
const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

pub use crate::platform::Platform;

impl Descriptor {
    /// The one way to describe a blob: media type, digest and size, with no
    /// annotations, artifact type or platform until a `with_*` adds them.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }

    pub fn with_annotations(mut self, annotations: BTreeMap<String, String>) -> Descriptor {
        self.annotations = annotations;
        self
    }

    pub fn with_artifact_type(mut self, artifact_type: impl Into<String>) -> Descriptor {
        self.artifact_type = Some(artifact_type.into());
        self
    }

    pub fn with_platform(mut self, platform: Platform) -> Descriptor {
        self.platform = Some(platform);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.into()),
            artifact_type: None,
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{}: not an OCI image layout (no `oci-layout` file)", .0.display())]
    NotALayout(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: invalid JSON: {message}", path.display())]
    BadJson { path: PathBuf, message: String },
    #[error("{}: blob is missing", path.display())]
    MissingBlob { path: PathBuf },
    #[error("{}: content does not match its digest {expected} (actual {actual})", path.display())]
    DigestMismatch {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("{}: size {actual} does not match the descriptor's {expected}", path.display())]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{}: declared size {size} is larger than the {limit}-byte limit for a JSON document", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{}: no image in index.json{}", path.display(), refs_hint(available))]
    NoImage {
        path: PathBuf,
        available: Vec<String>,
    },
    #[error("{}: several images in index.json, choose one with a reference{}", path.display(), refs_hint(available))]
    Ambiguous {
        path: PathBuf,
        available: Vec<String>,
    },
    #[error("{}: unsupported media type `{media_type}`", path.display())]
    UnsupportedMediaType { path: PathBuf, media_type: String },
    #[error("{}: the image index has no child for this machine's platform {host}; choose one with --ref <digest> (children: {})", path.display(), children.join(", "))]
    NoPlatform {
        path: PathBuf,
        host: String,
        children: Vec<String>,
    },
    #[error("{}: attachment {attachment} names subject {subject}, which is not an image of this layout", path.display())]
    NoSubject {
        path: PathBuf,
        attachment: Digest,
        subject: String,
    },
}

fn refs_hint(refs: &[String]) -> String {
    if refs.is_empty() {
        String::new()
    } else {
        format!(" (references: {})", refs.join(", "))
    }
}

/// An image read from a layout: its manifest descriptor, manifest and raw config.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub descriptor: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    pub config_bytes: Vec<u8>,
    pub config: serde_json::Value,
    /// The multi-platform index this image is a child of, when index.json
    /// names an index: commands read one child (this machine's platform,
    /// or the one `--ref <digest>` names) and push/sign the whole index.
    pub index: Option<LoadedIndex>,
}

/// An image index from a layout: its descriptor in index.json, its exact
/// bytes and its children.
#[derive(Debug, Clone)]
pub struct LoadedIndex {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
    pub index: Index,
}

impl LoadedImage {
    /// The image's `ref.name` (an index child has the index's).
    pub fn ref_name(&self) -> Option<&str> {
        self.descriptor
            .annotations
            .get(ANNOTATION_REF_NAME)
            .or_else(|| {
                self.index
                    .as_ref()
                    .and_then(|i| i.descriptor.annotations.get(ANNOTATION_REF_NAME))
            })
            .map(String::as_str)
    }

    /// What index.json names: the index, else the image manifest.
    pub fn top(&self) -> &Descriptor {
        self.index
            .as_ref()
            .map_or(&self.descriptor, |i| &i.descriptor)
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config
            .pointer("/config/Labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct Layout {
    root: PathBuf,
    blobs: BlobStore,
    _lock: Option<File>,
    /// While staged, index.json writes land here instead of on disk, and gc
    /// waits: see [`Layout::stage`].
    staged: std::sync::Mutex<Option<Index>>,
}

impl Layout {
    /// Creates the layout if needed and takes an exclusive lock on it, so two
    /// builds never interleave writes to one layout. Leftover temp files of
    /// an interrupted run are removed.
    pub fn create(root: &Path) -> Result<Layout, LayoutError> {
        let io = |source| LayoutError::Io {
            path: root.to_path_buf(),
            source,
        };
        fs::create_dir_all(root).map_err(io)?;
        let lock = File::create(root.join(".armorred.lock")).map_err(io)?;
        lock.lock().map_err(io)?;
        let blobs = BlobStore::open(root).map_err(io)?;
        let removed = blobs.remove_leftovers().map_err(io)?;
        if removed > 0 {
            tracing::info!(
                "removed {removed} leftover temp file(s) in {}",
                root.display()
            );
        }
        for leftover in fs::read_dir(root).map_err(io)? {
            let e = leftover.map_err(io)?;
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                fs::remove_file(e.path()).map_err(io)?;
            }
        }
        let layout_file = root.join("oci-layout");
        if !layout_file.exists() {
            write_atomic(&layout_file, OCI_LAYOUT.as_bytes()).map_err(io)?;
        }
        Ok(Layout {
            root: root.to_path_buf(),
            blobs,
            _lock: Some(lock),
            staged: Default::default(),
        })
    }

    /// Opens an existing layout for reading.
    pub fn open(root: &Path) -> Result<Layout, LayoutError> {
        if !root.join("oci-layout").is_file() {
            return Err(LayoutError::NotALayout(root.to_path_buf()));
        }
        Ok(Layout {
            root: root.to_path_buf(),
            blobs: BlobStore::open_existing(root),
            _lock: None,
            staged: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// The layout's index.json (the staged one while staged). A missing
    /// file is an empty layout; an unreadable or malformed one is an error,
    /// never an empty index, so nothing it names is silently dropped.
    pub fn read_index(&self) -> Result<Index, LayoutError> {
        if let Some(staged) = self.staged_index().as_ref() {
            return Ok(staged.clone());
        }
        let path = self.index_path();
        if !path.exists() {
            return Ok(Index::default());
        }
        let bytes = read_limited(&path, MAX_JSON_BLOB)?;
        serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadJson {
            path,
            message: e.to_string(),
        })
    }

    pub fn write_index(&self, index: &Index) -> Result<(), LayoutError> {
        if let Some(staged) = self.staged_index().as_mut() {
            *staged = index.clone();
            return Ok(());
        }
        let path = self.index_path();
        write_atomic(&path, &crate::base::json::canonical(index))
            .map_err(|source| LayoutError::Io { path, source })
    }

    /// Starts a transaction: from now on index.json changes (a new image,
    /// its SBOMs, signatures and attestations) are kept in memory and
    /// blobs are not collected, until [`Layout::commit_staged`] writes
    /// index.json once. Dropping the layout instead leaves index.json, and
    /// so the image it names, exactly as it was.
    pub fn stage(&self) -> Result<(), LayoutError> {
        let current = self.read_index()?;
        *self.staged_index() = Some(current);
        Ok(())
    }

    /// Ends the transaction: index.json is replaced (last, atomically), then
    /// what it no longer reaches is removed.
    pub fn commit_staged(&self) -> Result<(), LayoutError> {
        let staged = self.staged_index().take();
        if let Some(index) = staged {
            self.write_index(&index)?;
            self.blobs.sync_dir().map_err(|source| LayoutError::Io {
                path: self.blobs.dir().to_path_buf(),
                source,
            })?;
            let removed = self.gc()?;
            tracing::debug!("removed {removed} unreferenced blob(s)");
        }
        Ok(())
    }

    /// Abandons the transaction and removes the blobs it wrote, so the
    /// layout is as it was before [`Layout::stage`].
    pub fn discard_staged(&self) -> Result<usize, LayoutError> {
        if self.staged_index().take().is_none() {
            return Ok(0);
        }
        self.gc()
    }

    fn staged_index(&self) -> std::sync::MutexGuard<'_, Option<Index>> {
        // A panic while holding the lock cannot leave a half-updated index:
        // each write replaces the whole value.
        self.staged.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads a blob, checking its size and digest against `d`.
    pub fn read_blob(&self, d: &Descriptor, limit: u64) -> Result<Vec<u8>, LayoutError> {
        let path = self.blobs.path(&d.digest);
        if d.size > limit {
            return Err(LayoutError::TooLarge {
                path,
                size: d.size,
                limit,
            });
        }
        if !path.is_file() {
            return Err(LayoutError::MissingBlob { path });
        }
        let bytes = read_limited(&path, limit)?;
        if bytes.len() as u64 != d.size {
            return Err(LayoutError::SizeMismatch {
                path,
                expected: d.size,
                actual: bytes.len() as u64,
            });
        }
        let actual = Digest::of(&bytes);
        if actual != d.digest {
            return Err(LayoutError::DigestMismatch {
                path,
                expected: d.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        d: &Descriptor,
    ) -> Result<(Vec<u8>, T), LayoutError> {
        let bytes = self.read_blob(d, MAX_JSON_BLOB)?;
        let v = serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadJson {
            path: self.blobs.path(&d.digest),
            message: e.to_string(),
        })?;
        Ok((bytes, v))
    }

    /// The image entries of index.json (attachments such as signatures excluded).
    pub fn images(&self) -> Result<Vec<Descriptor>, LayoutError> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter(|d| !is_attachment(d))
            .collect())
    }

    /// Reads an image index blob.
    pub fn read_image_index(&self, d: &Descriptor) -> Result<LoadedIndex, LayoutError> {
        let (bytes, index) = self.read_json(d)?;
        Ok(LoadedIndex {
            descriptor: d.clone(),
            bytes,
            index,
        })
    }

    /// Loads the image named `reference` (its ref.name or digest, or the
    /// digest of an index child), or the only image. An index resolves to
    /// the child for this machine's platform (or its only child).
    pub fn load_image(&self, reference: Option<&str>) -> Result<LoadedImage, LayoutError> {
        let images = self.images()?;
        let refs: Vec<String> = images
            .iter()
            .filter_map(|d| d.annotations.get(ANNOTATION_REF_NAME).cloned())
            .collect();
        let named = |d: &&Descriptor| {
            reference.is_some_and(|r| {
                d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(r)
                    || d.digest.as_str() == r
            })
        };
        if let Some(r) = reference.filter(|_| !images.iter().any(|d| named(&d))) {
            // A child of an index, named by digest.
            for top in images.iter().filter(|d| d.media_type == MEDIA_TYPE_INDEX) {
                let index = self.read_image_index(top)?;
                if let Some(child) = index
                    .index
                    .manifests
                    .iter()
                    .find(|c| c.digest.as_str() == r)
                {
                    let child = child.clone();
                    return self.load_manifest(child, Some(index));
                }
            }
        }
        let chosen = match reference {
            Some(_) => images.iter().find(named),
            None if images.len() > 1 => {
                return Err(LayoutError::Ambiguous {
                    path: self.index_path(),
                    available: refs,
                })
            }
            None => images.first(),
        };
        let descriptor = chosen.cloned().ok_or_else(|| LayoutError::NoImage {
            path: self.index_path(),
            available: refs,
        })?;
        if descriptor.media_type == MEDIA_TYPE_INDEX {
            let index = self.read_image_index(&descriptor)?;
            let host = crate::platform::System::host().map(|s| s.oci());
            let Some(child) =
                super::index::pick_child(&index.index.manifests, host.as_ref()).cloned()
            else {
                return Err(LayoutError::NoPlatform {
                    path: self.blobs.path(&descriptor.digest),
                    host: host.map_or("unknown".into(), |h| crate::platform::display(&h)),
                    children: index
                        .index
                        .manifests
                        .iter()
                        .map(|c| {
                            let p = c
                                .platform
                                .as_ref()
                                .map_or("?".into(), crate::platform::display);
                            format!("{p} {}", c.digest)
                        })
                        .collect(),
                });
            };
            return self.load_manifest(child, Some(index));
        }
        self.load_manifest(descriptor, None)
    }

    /// Reads an image manifest and its config.
    fn load_manifest(
        &self,
        descriptor: Descriptor,
        index: Option<LoadedIndex>,
    ) -> Result<LoadedImage, LayoutError> {
        if descriptor.media_type != MEDIA_TYPE_MANIFEST
            && descriptor.media_type != crate::oci::MEDIA_TYPE_DOCKER_MANIFEST
        {
            return Err(LayoutError::UnsupportedMediaType {
                path: self.index_path(),
                media_type: descriptor.media_type.clone(),
            });
        }
        let (manifest_bytes, manifest): (_, Manifest) = self.read_json(&descriptor)?;
        let (config_bytes, config) = self.read_json(&manifest.config)?;
        Ok(LoadedImage {
            descriptor,
            manifest_bytes,
            manifest,
            config_bytes,
            config,
            index,
        })
    }

    /// Every digest reachable from index.json.
    pub fn referenced(&self) -> Result<BTreeSet<Digest>, LayoutError> {
        Ok(self.referenced_sizes()?.into_keys().collect())
    }

    /// Every digest reachable from index.json, with the size the first
    /// descriptor naming it declares.
    fn referenced_sizes(&self) -> Result<BTreeMap<Digest, u64>, LayoutError> {
        self.walk_references(|_, e| Err(e))
    }

    /// Every descriptor index.json reaches, with its declared size.
    /// `on_unreadable` decides what an unreadable manifest or index does: gc
    /// must stop (it would delete what that manifest references), fsck notes
    /// it and keeps walking so the rest of the layout is still checked.
    fn walk_references(
        &self,
        mut on_unreadable: impl FnMut(&Descriptor, LayoutError) -> Result<(), LayoutError>,
    ) -> Result<BTreeMap<Digest, u64>, LayoutError> {
        let mut seen = BTreeMap::new();
        let mut stack: Vec<Descriptor> = self.read_index()?.manifests;
        // An image's attachments hang off its entry by annotation, not by a
        // descriptor, so they are followed here or gc would delete them.
        for entry in stack.clone() {
            match self.attachments_descriptor(&entry) {
                Ok(Some(d)) => stack.push(d),
                Ok(None) => {}
                Err(e) => on_unreadable(&entry, e)?,
            }
        }
        while let Some(d) = stack.pop() {
            if seen.contains_key(&d.digest) {
                continue;
            }
            seen.insert(d.digest.clone(), d.size);
            let is_manifest = d.media_type == MEDIA_TYPE_MANIFEST
                || d.media_type == crate::oci::MEDIA_TYPE_DOCKER_MANIFEST;
            if is_manifest {
                match self.read_json::<Manifest>(&d) {
                    Ok((_, m)) => {
                        stack.push(m.config);
                        stack.extend(m.layers);
                    }
                    Err(e) => on_unreadable(&d, e)?,
                }
            } else if d.media_type == MEDIA_TYPE_INDEX {
                match self.read_json::<Index>(&d) {
                    Ok((_, i)) => stack.extend(i.manifests),
                    Err(e) => on_unreadable(&d, e)?,
                }
            }
        }
        Ok(seen)
    }

    /// Re-hashes every blob and checks that everything index.json reaches exists.
    pub fn fsck(&self) -> Result<FsckReport, LayoutError> {
        let mut report = FsckReport::default();
        let mut unreadable = Vec::new();
        let referenced = match self.walk_references(|d, e| {
            // A missing blob is reported once below, as referenced but missing.
            if self.blobs.path(&d.digest).exists() {
                unreadable.push(e.to_string());
            }
            Ok(())
        }) {
            Ok(r) => r,
            Err(e) => {
                report.problems.push(e.to_string());
                BTreeMap::new()
            }
        };
        report.problems.extend(unreadable);
        let mut present = BTreeSet::new();
        if self.blobs.dir().is_dir() {
            for (name, e) in self.blob_files()? {
                // An interrupted write's temp file: harmless, removed by the next build.
                if name.starts_with(".tmp-") {
                    report.leftover_temp_files += 1;
                    continue;
                }
                let Ok(d) = Digest::parse(&format!("sha256:{name}")) else {
                    report
                        .problems
                        .push(format!("{}: not a blob name", e.path().display()));
                    continue;
                };
                report.blobs_checked += 1;
                match self.blobs.verify(&d) {
                    Ok(true) => {}
                    Ok(false) => report.problems.push(format!(
                        "{}: content does not match its digest",
                        e.path().display()
                    )),
                    Err(err) => report
                        .problems
                        .push(format!("{}: {err}", e.path().display())),
                }
                present.insert(d);
            }
        }
        for (d, &expected) in &referenced {
            let path = self.blobs.path(d);
            if !present.contains(d) {
                report
                    .problems
                    .push(format!("{}: referenced but missing", path.display()));
                continue;
            }
            // A blob that hashes right but is not the size its descriptor
            // declares is still a broken reference (a registry refuses it).
            match fs::metadata(&path) {
                Ok(m) if m.len() != expected => report.problems.push(
                    LayoutError::SizeMismatch {
                        path,
                        expected,
                        actual: m.len(),
                    }
                    .to_string(),
                ),
                Ok(_) => {}
                Err(err) => report.problems.push(format!("{}: {err}", path.display())),
            }
        }
        report.unreferenced = present
            .iter()
            .filter(|d| !referenced.contains_key(*d))
            .count();
        Ok(report)
    }

    /// The entries of `blobs/sha256`, with their names.
    fn blob_files(&self) -> Result<Vec<(String, fs::DirEntry)>, LayoutError> {
        let dir = self.blobs.dir();
        let io = |source| LayoutError::Io {
            path: dir.to_path_buf(),
            source,
        };
        fs::read_dir(dir)
            .map_err(io)?
            .map(|e| {
                let e = e.map_err(io)?;
                Ok((e.file_name().to_string_lossy().into_owned(), e))
            })
            .collect()
    }

    /// Removes blobs that index.json no longer reaches; waits while staged,
    /// since the staged index may reach blobs the one on disk does not.
    pub fn gc(&self) -> Result<usize, LayoutError> {
        if self.staged_index().is_some() {
            return Ok(0);
        }
        let keep = self.referenced()?;
        let mut removed = 0;
        for (name, e) in self.blob_files()? {
            if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                if !keep.contains(&d) {
                    fs::remove_file(e.path()).map_err(|source| LayoutError::Io {
                        path: e.path(),
                        source,
                    })?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

impl BlobStore {
    /// A store over an existing layout, without creating anything.
    pub fn open_existing(root: &Path) -> BlobStore {
        BlobStore::at(root.join("blobs").join("sha256"))
    }
}

#[derive(Debug, Default, Serialize)]
pub struct FsckReport {
    pub blobs_checked: usize,
    pub unreferenced: usize,
    pub leftover_temp_files: usize,
    pub problems: Vec<String>,
}

impl FsckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, LayoutError> {
    let io = |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(LayoutError::TooLarge {
            path: path.to_path_buf(),
            size: buf.len() as u64,
            limit,
        });
    }
    Ok(buf)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor::new(media_type, digest, size)
    }

    /// An image manifest with no layers and the config `digest`, `size`.
    pub(crate) fn layerless(digest: &Digest, size: u64) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.into()),
            artifact_type: None,
            config: descriptor(crate::oci::MEDIA_TYPE_CONFIG, digest.clone(), size),
            layers: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn an_index_resolves_to_the_host_child_or_the_digest_named() {
        use crate::platform::System;
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let config = layout.blobs().put(b"{}").unwrap();
        let child = |system: &str| {
            let m = Manifest {
                annotations: BTreeMap::from([("system".to_string(), system.to_string())]),
                ..layerless(&config.digest, config.size)
            };
            let b = layout
                .blobs()
                .put(&crate::base::json::canonical(&m))
                .unwrap();
            Descriptor {
                platform: Some(System::parse(system).unwrap().oci()),
                ..descriptor(MEDIA_TYPE_MANIFEST, b.digest, b.size)
            }
        };
        let commit = |children: &[Descriptor]| {
            let top = super::super::index::write_image_index(&layout, children, "1-x").unwrap();
            layout
                .write_index(&Index {
                    manifests: vec![top.clone()],
                    ..Index::default()
                })
                .unwrap();
            top
        };
        // Neither child is this machine's: an error naming each, pointing at --ref.
        let (arm, i386) = (child("aarch64-linux"), child("i686-linux"));
        let top = commit(&[arm.clone(), i386.clone()]);
        let e = layout.load_image(None).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, LayoutError::NoPlatform { .. }), "{msg}");
        assert!(
            msg.contains("linux/arm64") && msg.contains("linux/386") && msg.contains("--ref"),
            "{msg}"
        );
        // A child named by digest; it carries the index's ref.name.
        let img = layout.load_image(Some(i386.digest.as_str())).unwrap();
        assert_eq!(img.descriptor.digest, i386.digest);
        assert_eq!(img.top().digest, top.digest);
        assert_eq!(img.ref_name(), Some("1-x"));
        // With this machine's child present, it is the one read, by ref.name too.
        let host = child(System::host().unwrap().as_str());
        commit(&[arm, host.clone()]);
        let img = layout.load_image(Some("1-x")).unwrap();
        assert_eq!(img.descriptor.digest, host.digest);
        assert!(img.index.is_some());
        assert!(layout.fsck().unwrap().is_ok());
    }

    #[test]
    fn fsck_walks_past_a_missing_manifest_and_gc_refuses_to_guess() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        // Two images; the first one's manifest blob is gone, the second's
        // config is corrupt.
        let lost = layout.blobs().put(b"{\"lost\":1}").unwrap();
        let lost_manifest = layout
            .blobs()
            .put(&serde_json::to_vec(&layerless(&lost.digest, lost.size)).unwrap())
            .unwrap();
        let config = layout.blobs().put(b"{}").unwrap();
        let manifest = layout
            .blobs()
            .put(&serde_json::to_vec(&layerless(&config.digest, config.size)).unwrap())
            .unwrap();
        layout
            .write_index(&Index {
                manifests: vec![
                    descriptor(
                        MEDIA_TYPE_MANIFEST,
                        lost_manifest.digest.clone(),
                        lost_manifest.size,
                    ),
                    descriptor(MEDIA_TYPE_MANIFEST, manifest.digest, manifest.size),
                ],
                ..Index::default()
            })
            .unwrap();
        fs::remove_file(layout.blobs().path(&lost_manifest.digest)).unwrap();
        fs::write(layout.blobs().path(&config.digest), b"{ }").unwrap();
        let report = layout.fsck().unwrap();
        let all = report.problems.join("\n");
        // Named once, as referenced but missing.
        assert_eq!(all.matches(lost_manifest.digest.hex()).count(), 1, "{all}");
        assert!(all.contains("referenced but missing"), "{all}");
        assert!(all.contains("does not match its digest"), "{all}");
        // The walk went on: only the lost manifest's config is unreferenced,
        // not every blob of the layout.
        assert_eq!(report.unreferenced, 1, "{report:?}");
        // gc cannot know what the lost manifest referenced, so it deletes nothing.
        assert!(layout.gc().is_err());
        assert!(layout.blobs().path(&lost.digest).exists());
    }

    #[test]
    fn fsck_reports_a_blob_whose_size_differs_from_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let config = layout.blobs().put(b"{}").unwrap();
        let manifest = |config_size: u64| layerless(&config.digest, config_size);
        for (config_size, problems) in [(2, 0), (1 << 40, 1)] {
            let m = layout
                .blobs()
                .put(&serde_json::to_vec(&manifest(config_size)).unwrap())
                .unwrap();
            layout
                .write_index(&Index {
                    manifests: vec![descriptor(MEDIA_TYPE_MANIFEST, m.digest, m.size)],
                    ..Index::default()
                })
                .unwrap();
            let report = layout.fsck().unwrap();
            assert_eq!(report.problems.len(), problems, "{:?}", report.problems);
            if problems > 0 {
                assert!(report.problems[0]
                    .contains("size 2 does not match the descriptor's 1099511627776"));
            }
        }
    }
}

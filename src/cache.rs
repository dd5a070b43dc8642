//! The layer cache: finished layer blobs reused across builds.
//!
//! Nix store paths never change once built and are named by a hash of their
//! inputs (or content), so a layer's bytes are a pure function of its store
//! paths (in order), the compression settings, the mtime from
//! `SOURCE_DATE_EPOCH` and armorred's tar format. [`LayerKey`] hashes exactly
//! that, and a hit hands back the blob without reading the store path again.
//! The rootfs layer is cached too, keyed by its entries' full content, so a
//! rebuild with an unchanged closure writes no layer at all.
//!
//! On disk, under the cache directory:
//!
//! ```text
//! layers/<key>.json      entry: media type, digest, diff_id, size (and what was keyed)
//! blobs/sha256/<hex>     the blob
//! facts/<hex>.json       what the gate and lint need from blob <hex> (LayerFacts)
//! tmp/                   layers being written
//! ```
//!
//! A facts file is keyed by its layer's digest, so it holds whatever layer
//! made that digest. Its first line records the format (a hash of the code
//! that derives facts, so a changed analyzer misses) and the sha256 of the
//! rest; a facts file that fails either check, does not parse or names
//! another layer is removed and derived again from the blob, never used.
//!
//! An entry is written atomically and only after its blob is complete (hashed
//! while written, fsynced, renamed into place), so a crash never leaves an
//! entry naming a partial blob. Every hit re-hashes its blob: a corrupt entry
//! (bad JSON, missing blob, wrong size or digest) is logged, removed and
//! rebuilt, never used. Every write is a rename of a finished file, so two
//! builds sharing the cache at worst both write the same layer.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::oci::blob::{hash_file, write_atomic, BlobStore};
use crate::oci::decode::ViewError;
use crate::oci::facts::{scan_blob, write_layer_with_facts, FactsSource, LayerFacts};
use crate::oci::image::{LayerSource, ProducedLayer, Provenance};
use crate::oci::tarball::{Compression, LayerBlob, LayerContent, LayerError, RootfsEntry};
use crate::oci::Digest;

/// Bump whenever `oci::tarball` writes different bytes for the same input
/// (entry order, header fields, normalization): old entries then simply miss.
// 2: hard links are written as separate files.
pub const FORMAT_VERSION: u32 = 2;

/// Leftovers of interrupted builds older than this are swept when a cache is
/// opened. Younger ones may belong to a build that is still running.
const LEFTOVER_AGE: Duration = Duration::from_secs(24 * 60 * 60);

use crate::base::fs::TEMP_PREFIX;

/// sha256 over a canonical encoding of everything a layer's bytes depend on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LayerKey(String);

impl LayerKey {
    pub fn new(content: &LayerContent<'_>, compression: Compression, mtime: u64) -> LayerKey {
        let mut k = KeyEncoder(Sha256::new());
        k.bytes(b"armorred layer cache");
        k.num(u64::from(FORMAT_VERSION));
        k.bytes(compression.id().as_bytes());
        k.num(mtime);
        match content {
            // The path names the content: its hash part changes whenever the
            // bytes could. Order is kept because it is the tar's order.
            LayerContent::StorePaths(paths) => {
                k.bytes(b"store-paths");
                k.num(paths.len() as u64);
                for p in paths.iter() {
                    k.bytes(p.as_str().as_bytes());
                }
            }
            LayerContent::Rootfs(entries) => {
                k.bytes(b"rootfs");
                k.num(entries.len() as u64);
                for e in entries.iter() {
                    match e {
                        RootfsEntry::Dir {
                            path,
                            mode,
                            uid,
                            gid,
                        } => {
                            k.bytes(b"dir");
                            k.bytes(path.as_bytes());
                            k.num(u64::from(*mode));
                            k.num(*uid);
                            k.num(*gid);
                        }
                        RootfsEntry::File { path, mode, data } => {
                            k.bytes(b"file");
                            k.bytes(path.as_bytes());
                            k.num(u64::from(*mode));
                            k.bytes(data);
                        }
                        RootfsEntry::Symlink { path, target } => {
                            k.bytes(b"symlink");
                            k.bytes(path.as_bytes());
                            k.bytes(target.as_bytes());
                        }
                    }
                }
            }
        }
        LayerKey(hex::encode(k.0.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Length-prefixed fields, so no two different inputs encode alike.
struct KeyEncoder(Sha256);

impl KeyEncoder {
    fn bytes(&mut self, b: &[u8]) {
        self.num(b.len() as u64);
        self.0.update(b);
    }
    fn num(&mut self, n: u64) {
        self.0.update(n.to_le_bytes());
    }
}

/// `layers/<key>.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    format: u32,
    key: String,
    compression: String,
    mtime: u64,
    /// What the layer holds, for people looking at the cache.
    content: Vec<String>,
    #[serde(flatten)]
    blob: LayerBlob,
}

/// What the cache did during one command.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
    corrupt: AtomicU64,
    bytes_written: AtomicU64,
    bytes_reused: AtomicU64,
    facts_hits: AtomicU64,
    facts_misses: AtomicU64,
    facts_corrupt: AtomicU64,
}

/// A snapshot of [`CacheStats`], as `build --json` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheReport {
    /// Layers taken from the cache; no store path was read for them.
    pub hits: u64,
    /// Layers written (corrupt entries that were rebuilt included).
    pub misses: u64,
    /// Entries found corrupt, discarded and rebuilt.
    pub corrupt: u64,
    /// Compressed bytes of the layers written.
    pub bytes_written: u64,
    /// Compressed bytes of the layers reused.
    pub bytes_reused: u64,
    /// Layers whose facts (what the gate and lint check) came from the
    /// cache; their blobs were not read.
    pub facts_hits: u64,
    /// Layers read to derive their facts.
    pub facts_misses: u64,
    /// Facts files found corrupt, discarded and derived again.
    pub facts_corrupt: u64,
}

impl CacheStats {
    pub fn report(&self) -> CacheReport {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheReport {
            hits: get(&self.hits),
            misses: get(&self.misses),
            corrupt: get(&self.corrupt),
            bytes_written: get(&self.bytes_written),
            bytes_reused: get(&self.bytes_reused),
            facts_hits: get(&self.facts_hits),
            facts_misses: get(&self.facts_misses),
            facts_corrupt: get(&self.facts_corrupt),
        }
    }
}

/// What a lookup found.
enum Lookup {
    Hit(LayerBlob),
    Miss,
    Corrupt {
        reason: String,
        blob: Option<Digest>,
    },
}

/// A [`LayerSource`] that reuses layers built before.
pub struct LayerCache {
    dir: PathBuf,
    layers: PathBuf,
    facts: PathBuf,
    tmp: PathBuf,
    blobs: BlobStore,
    stats: CacheStats,
}

impl LayerCache {
    /// `$XDG_CACHE_HOME/armorred`, else `~/.cache/armorred`.
    pub fn default_dir() -> Option<PathBuf> {
        crate::base::dirs::cache_dir()
    }

    /// The cache `build` uses: `dir`, else [`LayerCache::default_dir`]; none
    /// when `disabled`. A cache that cannot be opened only costs speed, so
    /// the build goes on without one.
    pub fn for_build(dir: Option<&Path>, disabled: bool) -> Option<LayerCache> {
        if disabled {
            return None;
        }
        let dir = dir.map(Path::to_path_buf).or_else(Self::default_dir)?;
        match LayerCache::open(&dir) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    "layer cache {} cannot be used ({e}); writing every layer",
                    dir.display()
                );
                None
            }
        }
    }

    /// One log line for the end of a build.
    pub fn log_summary(&self) {
        let r = self.stats();
        tracing::info!(
            "layer cache {}: {} hit(s), {} miss(es), {} corrupt; {:.1} MiB written, {:.1} MiB reused",
            self.dir.display(),
            r.hits,
            r.misses,
            r.corrupt,
            r.bytes_written as f64 / (1 << 20) as f64,
            r.bytes_reused as f64 / (1 << 20) as f64
        );
    }

    /// Opens (creating if needed) the cache at `dir`.
    pub fn open(dir: &Path) -> io::Result<LayerCache> {
        let dir = std::path::absolute(dir)?;
        let layers = dir.join("layers");
        let facts = dir.join("facts");
        let tmp = dir.join("tmp");
        for d in [&layers, &facts, &tmp] {
            fs::create_dir_all(d)?;
        }
        let blobs = BlobStore::open(&dir)?;
        for d in [&layers, &facts, &tmp] {
            sweep_leftovers(d);
        }
        Ok(LayerCache {
            dir,
            layers,
            facts,
            tmp,
            blobs,
            stats: CacheStats::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> CacheReport {
        self.stats.report()
    }

    fn entry_path(&self, key: &LayerKey) -> PathBuf {
        self.layers.join(format!("{}.json", key.as_str()))
    }

    fn lookup(&self, key: &LayerKey, compression: Compression) -> Lookup {
        let path = self.entry_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => {
                return Lookup::Corrupt {
                    reason: format!("cannot read {}: {e}", path.display()),
                    blob: None,
                }
            }
        };
        let entry: Entry = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                return Lookup::Corrupt {
                    reason: format!("{} is not a cache entry: {e}", path.display()),
                    blob: None,
                }
            }
        };
        if entry.format != FORMAT_VERSION
            || entry.key != key.as_str()
            || entry.blob.media_type != compression.media_type()
        {
            return Lookup::Corrupt {
                reason: format!("{} does not match its key", path.display()),
                blob: None,
            };
        }
        let blob = entry.blob;
        let bad = |reason: String| Lookup::Corrupt {
            reason,
            blob: Some(blob.digest.clone()),
        };
        let blob_path = self.blobs.path(&blob.digest);
        match fs::metadata(&blob_path) {
            Ok(m) if m.len() == blob.size => {}
            Ok(m) => {
                return bad(format!(
                    "{} is {} bytes, the entry says {}",
                    blob_path.display(),
                    m.len(),
                    blob.size
                ))
            }
            Err(e) => return bad(format!("{}: {e}", blob_path.display())),
        }
        // The size check misses flipped bytes. Re-hashing is cheap next to
        // compressing: 0.35 CPU-s against ~25 for 630 MiB (README, Performance).
        match hash_file(&blob_path) {
            Ok(d) if d == blob.digest => Lookup::Hit(blob),
            Ok(d) => bad(format!("{} hashes to {d}", blob_path.display())),
            Err(e) => bad(format!("{}: {e}", blob_path.display())),
        }
    }

    /// Removes a corrupt entry and its blob, so the rebuild replaces both.
    fn discard(&self, key: &LayerKey, blob: Option<&Digest>) {
        let _ = fs::remove_file(self.entry_path(key));
        if let Some(d) = blob {
            let _ = fs::remove_file(self.blobs.path(d));
        }
    }

    /// Writes the layer into the cache, then links it into `store`.
    fn build(
        &self,
        store: &BlobStore,
        key: &LayerKey,
        content: &LayerContent<'_>,
        compression: Compression,
        mtime: u64,
    ) -> Result<(LayerBlob, Option<LayerFacts>), LayerError> {
        // Written into a fresh directory of its own, not into `store`: a blob
        // writer keeps any file already under the digest name, and that file
        // could be a hard link to a cache blob found corrupt. A fresh blob
        // then replaces both by rename.
        let staging = match tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir_in(&self.tmp)
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(
                    "layer cache {}: {e}; writing the layer without caching it",
                    self.tmp.display()
                );
                return write_layer_with_facts(store, content, compression, mtime);
            }
        };
        let staged = BlobStore::at(staging.path().to_path_buf());
        let (blob, facts) = write_layer_with_facts(&staged, content, compression, mtime)?;
        let src = staged.path(&blob.digest);
        let cached = self.blobs.path(&blob.digest);
        let in_cache = fs::rename(&src, &cached).and_then(|()| self.blobs.sync_dir());
        let from = if let Err(e) = &in_cache {
            tracing::warn!(
                "layer cache: cannot store {}: {e}; the layer is not cached",
                cached.display()
            );
            src
        } else {
            cached
        };
        link_into(&from, store, &blob.digest).map_err(|source| LayerError::Io {
            path: store.path(&blob.digest),
            source,
        })?;
        if in_cache.is_ok() {
            let entry = Entry {
                format: FORMAT_VERSION,
                key: key.as_str().to_string(),
                compression: compression.id(),
                mtime,
                content: describe(content),
                blob: blob.clone(),
            };
            let json = serde_json::to_vec_pretty(&entry).expect("entries serialize");
            // Last: only now is the blob complete, verified and in place.
            if let Err(e) = write_atomic(&self.entry_path(key), &json) {
                tracing::warn!(
                    "layer cache: cannot write the entry for {}: {e}",
                    blob.digest
                );
            }
        }
        self.stats
            .bytes_written
            .fetch_add(blob.size, Ordering::Relaxed);
        if let (Ok(()), Some(f)) = (&in_cache, &facts) {
            self.store_facts(f);
        }
        Ok((blob, facts))
    }
}

impl LayerSource for LayerCache {
    fn layer(
        &self,
        store: &BlobStore,
        content: &LayerContent<'_>,
        compression: Compression,
        mtime: u64,
    ) -> Result<ProducedLayer, LayerError> {
        let key = LayerKey::new(content, compression, mtime);
        match self.lookup(&key, compression) {
            Lookup::Hit(blob) => {
                link_into(&self.blobs.path(&blob.digest), store, &blob.digest).map_err(
                    |source| LayerError::Io {
                        path: store.path(&blob.digest),
                        source,
                    },
                )?;
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes_reused
                    .fetch_add(blob.size, Ordering::Relaxed);
                tracing::debug!("layer cache hit {} ({})", key.as_str(), blob.digest);
                return Ok(ProducedLayer {
                    blob,
                    provenance: Provenance::Cached,
                    facts: None,
                });
            }
            Lookup::Miss => {}
            Lookup::Corrupt { reason, blob } => {
                tracing::warn!("layer cache: discarding a corrupt entry and rebuilding: {reason}");
                self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                self.discard(&key, blob.as_ref());
            }
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let (blob, facts) = self.build(store, &key, content, compression, mtime)?;
        Ok(ProducedLayer {
            blob,
            provenance: Provenance::Built,
            facts,
        })
    }
}

/// The first line of a facts file: `<FACTS_MAGIC> <format> sha256:<hex of the rest>`.
const FACTS_MAGIC: &str = "armorred-layer-facts";
/// Names the code that derives facts (see build.rs).
const FACTS_VERSION: &str = env!("ARMORRED_FACTS_VERSION");

enum FactsLookup {
    Hit(LayerFacts),
    Miss,
    Corrupt(String),
}

impl LayerCache {
    fn facts_path(&self, digest: &Digest) -> PathBuf {
        self.facts.join(format!("{}.json", digest.hex()))
    }

    fn lookup_facts(&self, layer: &LayerBlob) -> FactsLookup {
        let path = self.facts_path(&layer.digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return FactsLookup::Miss,
            Err(e) => return FactsLookup::Corrupt(format!("cannot read {}: {e}", path.display())),
        };
        let bad = |what: &str| FactsLookup::Corrupt(format!("{}: {what}", path.display()));
        let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
            return bad("no header line");
        };
        let (header, body) = (&bytes[..nl], &bytes[nl + 1..]);
        let header = String::from_utf8_lossy(header);
        let mut fields = header.split(' ');
        let (Some(FACTS_MAGIC), Some(version), Some(sum), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return bad("not a facts file");
        };
        if version != FACTS_VERSION {
            // Made by another armorred: not damaged, only out of date.
            return FactsLookup::Miss;
        }
        if sum != Digest::of(body).as_str() {
            return bad("its content does not match the sha256 its header records");
        }
        let facts: LayerFacts = match serde_json::from_slice(body) {
            Ok(f) => f,
            Err(e) => return bad(&format!("not layer facts: {e}")),
        };
        if facts.digest != layer.digest || facts.diff_id != layer.diff_id {
            return bad(&format!(
                "describes layer {}, not {}",
                facts.digest, layer.digest
            ));
        }
        FactsLookup::Hit(facts)
    }

    fn store_facts(&self, facts: &LayerFacts) {
        let body = match serde_json::to_vec(facts) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(
                    "layer cache: cannot encode the facts of {}: {e}",
                    facts.digest
                );
                return;
            }
        };
        let mut bytes =
            format!("{FACTS_MAGIC} {FACTS_VERSION} {}\n", Digest::of(&body)).into_bytes();
        bytes.extend_from_slice(&body);
        let path = self.facts_path(&facts.digest);
        if let Err(e) = write_atomic(&path, &bytes) {
            tracing::warn!("layer cache: cannot write {}: {e}", path.display());
        }
    }
}

impl FactsSource for LayerCache {
    fn facts(
        &self,
        store: &BlobStore,
        layer: &LayerBlob,
    ) -> Result<(LayerFacts, Provenance), ViewError> {
        match self.lookup_facts(layer) {
            FactsLookup::Hit(f) => {
                self.stats.facts_hits.fetch_add(1, Ordering::Relaxed);
                return Ok((f, Provenance::Cached));
            }
            FactsLookup::Miss => {}
            FactsLookup::Corrupt(reason) => {
                tracing::warn!(
                    "layer cache: discarding corrupt facts and reading the layer again: {reason}"
                );
                self.stats.facts_corrupt.fetch_add(1, Ordering::Relaxed);
                let _ = fs::remove_file(self.facts_path(&layer.digest));
            }
        }
        self.stats.facts_misses.fetch_add(1, Ordering::Relaxed);
        let facts = scan_blob(store, layer)?;
        self.store_facts(&facts);
        Ok((facts, Provenance::Built))
    }
}

fn describe(content: &LayerContent<'_>) -> Vec<String> {
    match content {
        LayerContent::StorePaths(paths) => paths.iter().map(|p| p.to_string()).collect(),
        LayerContent::Rootfs(entries) => vec![format!("rootfs ({} entries)", entries.len())],
    }
}

/// Puts the blob at `src` into `store` under `digest`: a hard link when both
/// are on one file system, else a copy that is hashed on the way. Either way
/// it lands by rename, replacing whatever was under that name.
fn link_into(src: &Path, store: &BlobStore, digest: &Digest) -> io::Result<()> {
    let dest = store.path(digest);
    if let (Ok(a), Ok(b)) = (fs::metadata(src), fs::metadata(&dest)) {
        if (a.dev(), a.ino()) == (b.dev(), b.ino()) {
            return Ok(());
        }
    }
    let linked = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .make_in(store.dir(), |p| fs::hard_link(src, p));
    match linked {
        Ok(tmp) => {
            tmp.persist(&dest).map_err(|e| e.error)?;
            Ok(())
        }
        Err(e) => {
            tracing::debug!("hard link {} failed ({e}); copying", src.display());
            copy_verified(src, store, digest)
        }
    }
}

fn copy_verified(src: &Path, store: &BlobStore, digest: &Digest) -> io::Result<()> {
    let mut from = File::open(src)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(store.dir())?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        tmp.write_all(&buf[..n])?;
    }
    let got = Digest::from_sha256(h);
    if &got != digest {
        return Err(io::Error::other(format!(
            "{} changed while it was copied: it hashes to {got}, not {digest}",
            src.display()
        )));
    }
    tmp.as_file().sync_all()?;
    tmp.persist(store.path(digest)).map_err(|e| e.error)?;
    Ok(())
}

/// Removes `.tmp-*` files and directories older than [`LEFTOVER_AGE`].
fn sweep_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > LEFTOVER_AGE);
        if old {
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tarball::write_layer;
    use crate::store_path::StorePath;

    fn rootfs(n: u8) -> Vec<RootfsEntry> {
        vec![
            RootfsEntry::Dir {
                path: "/etc".into(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
            RootfsEntry::File {
                path: "/etc/data".into(),
                mode: 0o644,
                data: vec![n; 70_000],
            },
        ]
    }

    /// A valid store path that does not exist: writing it would fail.
    fn phantom() -> StorePath {
        StorePath::parse("/nix/store/0c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-does-not-exist-1.0").unwrap()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        cache: LayerCache,
        layout: BlobStore,
        root: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(&dir.path().join("cache")).unwrap();
        let layout = BlobStore::open(&dir.path().join("layout")).unwrap();
        Fixture {
            root: dir.path().to_path_buf(),
            _dir: dir,
            cache,
            layout,
        }
    }

    const GZ: Compression = Compression::Gzip { level: 6 };

    fn only_file(dir: &Path) -> PathBuf {
        let files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files.into_iter().next().unwrap()
    }

    #[test]
    fn key_changes_with_every_input() {
        let a = [phantom()];
        let b =
            [
                StorePath::parse("/nix/store/1c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-does-not-exist-1.0")
                    .unwrap(),
            ];
        let k = |c: &LayerContent<'_>, comp, mtime| LayerKey::new(c, comp, mtime);
        let base = k(&LayerContent::StorePaths(&a), GZ, 1);
        assert_eq!(base, k(&LayerContent::StorePaths(&a), GZ, 1));
        assert_eq!(base.as_str().len(), 64);
        for other in [
            k(&LayerContent::StorePaths(&b), GZ, 1),
            k(
                &LayerContent::StorePaths(&a),
                Compression::Gzip { level: 9 },
                1,
            ),
            k(
                &LayerContent::StorePaths(&a),
                Compression::Zstd { level: 6 },
                1,
            ),
            k(&LayerContent::StorePaths(&a), Compression::None, 1),
            k(&LayerContent::StorePaths(&a), GZ, 2),
            k(
                &LayerContent::StorePaths(&[a[0].clone(), b[0].clone()]),
                GZ,
                1,
            ),
        ] {
            assert_ne!(base, other);
        }
        // Order matters: it is the tar's order.
        assert_ne!(
            k(
                &LayerContent::StorePaths(&[a[0].clone(), b[0].clone()]),
                GZ,
                1
            ),
            k(
                &LayerContent::StorePaths(&[b[0].clone(), a[0].clone()]),
                GZ,
                1
            )
        );
        let (r1, r2) = (rootfs(1), rootfs(2));
        assert_ne!(
            k(&LayerContent::Rootfs(&r1), GZ, 1),
            k(&LayerContent::Rootfs(&r2), GZ, 1)
        );
    }

    #[test]
    fn miss_then_hit_gives_the_same_blob_without_writing() {
        let f = fixture();
        let entries = rootfs(1);
        let content = LayerContent::Rootfs(&entries);
        let direct = write_layer(
            &BlobStore::open(&f.root.join("direct")).unwrap(),
            &content,
            GZ,
            1,
        )
        .unwrap();

        let produced = f.cache.layer(&f.layout, &content, GZ, 1).unwrap();
        assert_eq!(produced.provenance, Provenance::Built);
        let cold = produced.blob;
        // Facts come with a written layer, derived from its stream: the same
        // as reading the blob back.
        assert_eq!(produced.facts, Some(scan_blob(&f.layout, &cold).unwrap()));
        assert_eq!(cold, direct, "a cached layer is the layer");
        let r = f.cache.stats();
        assert_eq!((r.hits, r.misses, r.corrupt), (0, 1, 0));
        assert_eq!(r.bytes_written, cold.size);
        assert!(f.layout.verify(&cold.digest).unwrap());
        let cached = f.cache.blobs.path(&cold.digest);
        assert_eq!(fs::metadata(&cached).unwrap().nlink(), 2, "hard-linked");

        // Into another layout: a hit, linked, no new data.
        let other = BlobStore::open(&f.root.join("other")).unwrap();
        let produced = f.cache.layer(&other, &content, GZ, 1).unwrap();
        assert_eq!(produced.provenance, Provenance::Cached);
        assert_eq!(produced.facts, None);
        let warm = produced.blob;
        assert_eq!(warm, cold);
        let r = f.cache.stats();
        assert_eq!((r.hits, r.misses, r.corrupt), (1, 1, 0));
        assert_eq!(r.bytes_reused, cold.size);
        assert_eq!(fs::metadata(&cached).unwrap().nlink(), 3);
        assert_eq!(
            fs::metadata(other.path(&cold.digest)).unwrap().ino(),
            fs::metadata(&cached).unwrap().ino()
        );
        // Same layout again: nothing to do.
        f.cache.layer(&f.layout, &content, GZ, 1).unwrap();
        assert_eq!(fs::metadata(&cached).unwrap().nlink(), 3);
        assert_eq!(
            fs::read_dir(f.layout.dir()).unwrap().count(),
            1,
            "no temp files left"
        );
        assert_eq!(fs::read_dir(&f.cache.tmp).unwrap().count(), 0);
    }

    #[test]
    fn a_hit_never_reads_the_store_path() {
        let f = fixture();
        let paths = [phantom()];
        let content = LayerContent::StorePaths(&paths);
        // Writing it fails: the path is not there.
        assert!(f.cache.layer(&f.layout, &content, GZ, 1).is_err());
        // Seed an entry for it, as an earlier build would have left.
        let entries = rootfs(3);
        let seeded = f
            .cache
            .layer(&f.layout, &LayerContent::Rootfs(&entries), GZ, 1)
            .unwrap()
            .blob;
        let key = LayerKey::new(&content, GZ, 1);
        let entry = Entry {
            format: FORMAT_VERSION,
            key: key.as_str().into(),
            compression: GZ.id(),
            mtime: 1,
            content: describe(&content),
            blob: seeded.clone(),
        };
        write_atomic(
            &f.cache.entry_path(&key),
            &serde_json::to_vec(&entry).unwrap(),
        )
        .unwrap();
        let other = BlobStore::open(&f.root.join("other")).unwrap();
        assert_eq!(f.cache.layer(&other, &content, GZ, 1).unwrap().blob, seeded);
        assert_eq!(f.cache.stats().hits, 1);
    }

    fn corrupted(damage: impl Fn(&Fixture, &LayerBlob, &Path)) {
        let f = fixture();
        let entries = rootfs(4);
        let content = LayerContent::Rootfs(&entries);
        let good = f.cache.layer(&f.layout, &content, GZ, 1).unwrap().blob;
        let entry = only_file(&f.cache.layers);
        damage(&f, &good, &entry);
        let again = f.cache.layer(&f.layout, &content, GZ, 1).unwrap().blob;
        assert_eq!(again, good, "rebuilt, same bytes");
        let r = f.cache.stats();
        assert_eq!((r.hits, r.misses, r.corrupt), (0, 2, 1));
        // Both copies are whole again, and the next build hits.
        assert!(f.layout.verify(&good.digest).unwrap());
        assert!(f.cache.blobs.verify(&good.digest).unwrap());
        let other = BlobStore::open(&f.root.join("other")).unwrap();
        f.cache.layer(&other, &content, GZ, 1).unwrap();
        assert_eq!(f.cache.stats().hits, 1);
    }

    #[test]
    fn flipped_byte_in_a_blob_is_detected_and_rebuilt() {
        // The layout's blob is the same inode, so it is damaged too.
        corrupted(|f, b, _| {
            let p = f.cache.blobs.path(&b.digest);
            let mut bytes = fs::read(&p).unwrap();
            bytes[100] ^= 0x55;
            fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .write_all(&bytes)
                .unwrap();
            assert!(!f.layout.verify(&b.digest).unwrap());
        });
    }

    #[test]
    fn truncated_blob_is_detected_and_rebuilt() {
        corrupted(|f, b, _| {
            fs::OpenOptions::new()
                .write(true)
                .open(f.cache.blobs.path(&b.digest))
                .unwrap()
                .set_len(b.size - 1)
                .unwrap();
        });
    }

    #[test]
    fn missing_blob_is_detected_and_rebuilt() {
        corrupted(|f, b, _| fs::remove_file(f.cache.blobs.path(&b.digest)).unwrap());
    }

    #[test]
    fn bad_entry_json_is_detected_and_rebuilt() {
        corrupted(|_, _, entry| fs::write(entry, b"{\"format\": 1, \"dig").unwrap());
    }

    #[test]
    fn entry_for_another_key_is_not_used() {
        corrupted(|f, _, entry| {
            let mut v: serde_json::Value =
                serde_json::from_slice(&fs::read(entry).unwrap()).unwrap();
            v["key"] = "0".repeat(64).into();
            fs::write(entry, serde_json::to_vec(&v).unwrap()).unwrap();
            let _ = f;
        });
    }

    #[test]
    fn layer_facts_are_kept_verified_and_derived_again_when_corrupt() {
        let f = fixture();
        let layer = |n| {
            let entries = rootfs(n);
            let content = LayerContent::Rootfs(&entries);
            f.cache.layer(&f.layout, &content, GZ, 1).unwrap().blob
        };
        let (blob, other) = (layer(1), layer(2));
        // Writing the layer stored its facts; without them, they are read.
        let file = f.cache.facts_path(&blob.digest);
        let good = fs::read(&file).unwrap();
        fs::remove_file(&file).unwrap();
        let (cold, made) = f.cache.facts(&f.layout, &blob).unwrap();
        assert_eq!(made, Provenance::Built);
        assert_eq!(cold, scan_blob(&f.layout, &blob).unwrap());
        assert_eq!(cold.entry_count(), 2);
        assert_eq!(fs::read(&file).unwrap(), good, "read or streamed: the same");
        assert!(good.starts_with(format!("{FACTS_MAGIC} {FACTS_VERSION} sha256:").as_bytes()));

        // A hit reads no layer: it works with the blob gone from both stores.
        fs::rename(f.layout.path(&blob.digest), f.root.join("aside")).unwrap();
        fs::remove_file(f.cache.blobs.path(&blob.digest)).unwrap();
        assert_eq!(
            f.cache.facts(&f.layout, &blob).unwrap(),
            (cold.clone(), Provenance::Cached)
        );
        fs::rename(f.root.join("aside"), f.layout.path(&blob.digest)).unwrap();
        let r = f.cache.stats();
        assert_eq!((r.facts_hits, r.facts_misses, r.facts_corrupt), (1, 1, 0));

        // Damaged in every way a file can be: each is detected, discarded and
        // derived again from the blob, never used.
        let others = fs::read(f.cache.facts_path(&other.digest)).unwrap();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let body = &good[good.iter().position(|b| *b == b'\n').unwrap() + 1..];
        let mut lying =
            format!("{FACTS_MAGIC} {FACTS_VERSION} {}\n", Digest::of(b"{}")).into_bytes();
        lying.extend_from_slice(b"{}");
        let damaged: Vec<(&str, Vec<u8>)> = vec![
            ("a flipped byte", flipped),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("no header", body.to_vec()),
            ("valid, but another layer's", others),
            ("hash matches, body is no facts", lying),
        ];
        for (i, (what, bytes)) in damaged.into_iter().enumerate() {
            fs::write(&file, bytes).unwrap();
            let (again, made) = f.cache.facts(&f.layout, &blob).unwrap();
            assert_eq!((again, made), (cold.clone(), Provenance::Built), "{what}");
            assert_eq!(f.cache.stats().facts_corrupt, i as u64 + 1, "{what}");
            assert_eq!(fs::read(&file).unwrap(), good, "{what}: rewritten");
        }
        // Facts from another armorred are out of date, not corrupt.
        let stale =
            String::from_utf8(good.clone())
                .unwrap()
                .replacen(FACTS_VERSION, "0000000000000000", 1);
        fs::write(&file, stale).unwrap();
        let before = f.cache.stats().facts_corrupt;
        assert_eq!(
            f.cache.facts(&f.layout, &blob).unwrap().1,
            Provenance::Built
        );
        assert_eq!(f.cache.stats().facts_corrupt, before);
        assert_eq!(fs::read(&file).unwrap(), good);
    }

    #[test]
    fn entries_are_written_after_their_blobs_and_leftovers_swept() {
        let f = fixture();
        let entries = rootfs(5);
        let b = f
            .cache
            .layer(
                &f.layout,
                &LayerContent::Rootfs(&entries),
                Compression::None,
                7,
            )
            .unwrap()
            .blob;
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(only_file(&f.cache.layers)).unwrap()).unwrap();
        assert_eq!(v["digest"], b.digest.as_str());
        assert_eq!(v["compression"], "none");
        assert_eq!(v["mtime"], 7);
        // A fresh leftover stays (a build may be using it), an old one goes.
        let fresh = f.cache.tmp.join(".tmp-fresh");
        let old = f.cache.tmp.join(".tmp-old");
        fs::create_dir(&fresh).unwrap();
        fs::create_dir(&old).unwrap();
        let day_ago = std::time::SystemTime::now() - LEFTOVER_AGE * 2;
        File::open(&old).unwrap().set_modified(day_ago).unwrap();
        LayerCache::open(f.cache.dir()).unwrap();
        assert!(fresh.exists());
        assert!(!old.exists());
    }
}

//! The one reader of layer blobs. Every caller that opens a layer an image
//! names comes through here: the layer facts ([`super::facts`]), the
//! package-database reader of `report`, and the docker-archive writer.
//!
//! Input may be hostile (`inspect`, `analyze` or `report --upstream` of
//! someone else's image), so the defences live here, once:
//!
//! - a blob is checked against its descriptor's size and digest before a
//!   byte of it is parsed ([`open_layer`]), so a tampered layer reads as
//!   tampered rather than as whatever the tar walker makes of it;
//! - the media types of the OCI spec and of Docker's schema 2 (tar, gzip
//!   and zstd of each) decode ([`decompressor`]); any other is refused;
//! - the uncompressed stream stops at [`Limits::max_bytes`], a decompression
//!   cap; an entry's pax and GNU long-name records (which the tar crate
//!   reads whole) stop at [`Limits::max_header_bytes`]; a layer's entries
//!   stop at [`Limits::max_entries`];
//! - entry names are normalized, and refused, naming the entry: `..`
//!   components, a hardlink whose target has one, a relative symlink that
//!   climbs above the image root (the rule the writer applies,
//!   [`symlink_escapes`]), and an entry whose declared size differs from
//!   what the layer holds (every entry is read to its end);
//! - whiteouts ([`Whiteout`]) hide lower layers' paths by one rule.
//!
//! A header's size is a claim: nothing here sizes a buffer from it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::ops::Bound;
use std::rc::Rc;

use super::blob::BlobStore;
use super::digest::{Digest, HashingReader};
use super::layout::Descriptor;
use super::media_types::{
    MEDIA_TYPE_DOCKER_LAYER_GZIP as DOCKER_LAYER_GZIP,
    MEDIA_TYPE_DOCKER_LAYER_TAR as DOCKER_LAYER_TAR,
    MEDIA_TYPE_DOCKER_LAYER_ZSTD as DOCKER_LAYER_ZSTD, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD,
};
use super::tarball::symlink_escapes;
use crate::analyze::FileKind;

/// The most one layer may decompress to, whatever its size. Memory stays
/// bounded regardless, but a bomb would otherwise keep a reader hashing
/// for hours.
pub const MAX_LAYER_BYTES: u64 = 64 << 30;
/// How many uncompressed bytes a layer may give per compressed byte once
/// it is past [`RATIO_FLOOR`]. Deflate cannot pass 1032:1, so no gzip layer
/// ever meets this; zstd can reach 30000:1 on runs of zeros, which is what
/// a bomb is made of. So the work a layer costs stays a bounded multiple of
/// the bytes it takes on disk, not 64 GiB for a few kilobytes.
pub const MAX_RATIO: u64 = 4096;
/// Below this many uncompressed bytes a layer may have any ratio: a real
/// layer that is mostly zeros (a preallocated file) still reads.
pub const RATIO_FLOOR: u64 = 1 << 30;
/// The most one entry's headers may take, pax and GNU long-name records
/// included (real ones hold a path or a few xattrs).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;
/// The most entries one layer may hold: callers keep a record per entry,
/// so this bounds their memory. Large real layers hold a few hundred
/// thousand.
pub const MAX_ENTRIES: u64 = 1 << 22;
/// The most a buffer reserves up front; it grows with the bytes read.
const PREALLOC: u64 = 1 << 20;

/// An image's layer could not be read, or was refused as hostile.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("layer {digest}: {source}")]
    Io {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("layer {digest}: entry `{entry}`: {reason}")]
    Hostile {
        digest: Digest,
        entry: String,
        reason: String,
    },
    #[error("layer {digest}: decompresses to more than {limit} bytes; refusing it as a decompression bomb")]
    TooLarge { digest: Digest, limit: u64 },
    #[error("layer {digest}: size {actual} does not match the descriptor's {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("layer {digest}: content does not match its digest (actual {actual})")]
    DigestMismatch { digest: Digest, actual: Digest },
    #[error("layer {digest}: unsupported media type `{media_type}`")]
    MediaType { digest: Digest, media_type: String },
    #[error("layer {digest}: uncompressed content hashes to {actual}, but the config's diff_id is {expected}")]
    DiffIdMismatch {
        digest: Digest,
        expected: Digest,
        actual: Digest,
    },
}

/// What one layer may cost a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed bytes.
    pub max_bytes: u64,
    /// Bytes of one entry's headers.
    pub max_header_bytes: u64,
    /// Entries in the layer.
    pub max_entries: u64,
}

impl Limits {
    /// For a layer blob of `compressed` bytes: [`MAX_LAYER_BYTES`], or less
    /// past [`RATIO_FLOOR`] where the blob is small (see [`MAX_RATIO`]).
    pub fn for_blob(compressed: u64) -> Limits {
        let by_ratio = compressed.saturating_mul(MAX_RATIO).max(RATIO_FLOOR);
        Limits {
            max_bytes: by_ratio.min(MAX_LAYER_BYTES),
            ..Limits::for_stream()
        }
    }

    /// For an uncompressed stream armorred itself is writing: no byte cap
    /// (it is the closure's size), the per-entry budgets still hold.
    pub fn for_stream() -> Limits {
        Limits {
            max_bytes: u64::MAX,
            max_header_bytes: MAX_HEADER_BYTES,
            max_entries: MAX_ENTRIES,
        }
    }
}

/// The decompressing reader for a layer of `media_type`; `None` when that
/// is not a layer media type.
pub fn decompressor<'a>(
    media_type: &str,
    r: impl Read + 'a,
) -> io::Result<Option<Box<dyn Read + 'a>>> {
    Ok(Some(match media_type {
        MEDIA_TYPE_LAYER_GZIP | DOCKER_LAYER_GZIP => Box::new(flate2::read::MultiGzDecoder::new(r)),
        MEDIA_TYPE_LAYER_ZSTD | DOCKER_LAYER_ZSTD => Box::new(zstd::stream::read::Decoder::new(r)?),
        MEDIA_TYPE_LAYER_TAR | DOCKER_LAYER_TAR => Box::new(r),
        _ => return Ok(None),
    }))
}

/// Opens `layer`'s blob in `store`, decompressing, once its size and
/// digest match the descriptor.
pub fn open_layer(store: &BlobStore, layer: &Descriptor) -> Result<Box<dyn Read>, ViewError> {
    let digest = &layer.digest;
    let io_err = |source| ViewError::Io {
        digest: digest.clone(),
        source,
    };
    let blob_path = store.path(digest);
    let actual_size = std::fs::metadata(&blob_path).map_err(io_err)?.len();
    if actual_size != layer.size {
        return Err(ViewError::SizeMismatch {
            digest: digest.clone(),
            expected: layer.size,
            actual: actual_size,
        });
    }
    let actual = super::blob::hash_file(&blob_path).map_err(io_err)?;
    if &actual != digest {
        return Err(ViewError::DigestMismatch {
            digest: digest.clone(),
            actual,
        });
    }
    let f = std::fs::File::open(&blob_path).map_err(io_err)?;
    let raw = io::BufReader::with_capacity(1 << 20, f);
    decompressor(&layer.media_type, raw)
        .map_err(io_err)?
        .ok_or_else(|| ViewError::MediaType {
            digest: digest.clone(),
            media_type: layer.media_type.clone(),
        })
}

/// Walks `layer`'s blob (checked first, see [`open_layer`]) under
/// [`Limits::for_blob`]; see [`walk_tar`].
pub fn walk_layer<T>(
    store: &BlobStore,
    layer: &Descriptor,
    visit: impl FnMut(&mut LayerEntry<'_>) -> Result<T, ViewError>,
    keep: impl FnMut(T),
) -> Result<(Digest, u64), ViewError> {
    let stream = open_layer(store, layer)?;
    walk_tar(
        stream,
        &layer.digest,
        Limits::for_blob(layer.size),
        visit,
        keep,
    )
}

/// Normalizes a tar entry name to an absolute image path, refusing `..`.
pub fn normalize_entry(name: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for seg in name.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err("`..` in an entry name".into()),
            s => parts.push(s),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A whiteout entry (OCI image spec, "Whiteouts"): it hides paths of the
/// layers below it and is itself no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteout {
    /// `<dir>/.wh..wh..opq`: hides everything under `<dir>` so far.
    Opaque,
    /// `<dir>/.wh.<name>`: hides `<dir>/<name>` and what lies beneath it.
    Named,
}

impl Whiteout {
    /// The whiteout the entry at `path` (normalized) is, if it is one.
    pub fn of(path: &str) -> Option<Whiteout> {
        let base = path.rsplit_once('/').map_or(path, |(_, b)| b);
        if base == ".wh..wh..opq" {
            Some(Whiteout::Opaque)
        } else if base.starts_with(".wh.") {
            Some(Whiteout::Named)
        } else {
            None
        }
    }

    /// Removes from `below` (keyed by normalized path) what this whiteout,
    /// found at `path`, hides.
    pub fn hide<V>(self, path: &str, below: &mut BTreeMap<String, V>) {
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
        match self {
            Whiteout::Opaque => remove_under(below, &format!("{dir}/")),
            Whiteout::Named => {
                let hidden = base.strip_prefix(".wh.").unwrap_or(base);
                let victim = format!("{dir}/{hidden}");
                below.remove(&victim);
                remove_under(below, &format!("{victim}/"));
            }
        }
    }
}

/// Removes every key that starts with `prefix`: they sort together.
fn remove_under<V>(map: &mut BTreeMap<String, V>, prefix: &str) {
    let doomed: Vec<String> = map
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .map(|(k, _)| k)
        .take_while(|k| k.starts_with(prefix))
        .cloned()
        .collect();
    for k in doomed {
        map.remove(&k);
    }
}

/// What a tar entry is, once its name and header are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Whiteout(Whiteout),
    /// The root directory itself.
    Root,
    Node(Node),
}

/// A file, directory, link or device entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: FileKind,
    /// A plain regular file (`0`), not a contiguous one: only these are
    /// scanned for secrets.
    pub regular: bool,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// The header's claim; the walker checks it against the bytes held.
    pub size: u64,
}

/// One entry of a layer, handed to [`walk_tar`]'s visitor. Reading it
/// reads the entry's data; whatever the visitor leaves is drained after.
pub struct LayerEntry<'e> {
    /// The name as the tar spells it; errors name the entry as written.
    pub name: String,
    /// Normalized, absolute.
    pub path: String,
    pub item: Item,
    digest: &'e Digest,
    data: &'e mut dyn Read,
    held: u64,
}

impl LayerEntry<'_> {
    /// The entry refused for `reason`.
    pub fn hostile(&self, reason: impl Into<String>) -> ViewError {
        ViewError::Hostile {
            digest: self.digest.clone(),
            entry: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// A read error of this entry's layer.
    pub fn io(&self, source: io::Error) -> ViewError {
        ViewError::Io {
            digest: self.digest.clone(),
            source,
        }
    }

    /// The rest of the entry's data, which must be at most `max` bytes by
    /// its header's claim (refused otherwise); the buffer grows with the
    /// bytes read, not with the claim.
    pub fn read_at_most(&mut self, max: u64, what: &str) -> Result<Vec<u8>, ViewError> {
        let size = match &self.item {
            Item::Node(n) => n.size,
            _ => 0,
        };
        if size > max {
            return Err(self.hostile(format!(
                "{size} bytes is more than the {max} a {what} may hold"
            )));
        }
        let mut data = Vec::with_capacity(size.min(PREALLOC) as usize);
        (&mut *self)
            .take(max)
            .read_to_end(&mut data)
            .map_err(|e| self.io(e))?;
        Ok(data)
    }
}

impl Read for LayerEntry<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.read(buf)?;
        self.held += n as u64;
        Ok(n)
    }
}

/// Walks an uncompressed layer stream: each entry, checked, goes to
/// `visit`, which may read its data; once the entry is read to its end
/// and holds what its header declares, what `visit` returned goes to
/// `keep`. So `keep` sees only whole, checked entries, in tar order.
/// `digest` names the layer in errors. Returns the diff_id and the
/// stream's length.
pub fn walk_tar<T>(
    stream: impl Read,
    digest: &Digest,
    limits: Limits,
    visit: impl FnMut(&mut LayerEntry<'_>) -> Result<T, ViewError>,
    keep: impl FnMut(T),
) -> Result<(Digest, u64), ViewError> {
    let over = Rc::new(Cell::new(false));
    let capped = Capped {
        inner: stream,
        left: limits.max_bytes,
        limit: limits.max_bytes,
        over: over.clone(),
    };
    walk_entries(capped, digest, limits, visit, keep).map_err(|e| {
        if over.get() {
            ViewError::TooLarge {
                digest: digest.clone(),
                limit: limits.max_bytes,
            }
        } else {
            e
        }
    })
}

fn walk_entries<T>(
    stream: impl Read,
    digest: &Digest,
    limits: Limits,
    mut visit: impl FnMut(&mut LayerEntry<'_>) -> Result<T, ViewError>,
    mut keep: impl FnMut(T),
) -> Result<(Digest, u64), ViewError> {
    let io_err = |source| ViewError::Io {
        digest: digest.clone(),
        source,
    };
    let mut hashed = HashingReader::new(stream);
    {
        let header_budget = Rc::new(Cell::new(0));
        let mut budgeted = HeaderBudget {
            inner: &mut hashed,
            left: header_budget.clone(),
            limit: limits.max_header_bytes,
        };
        let mut archive = tar::Archive::new(&mut budgeted);
        let mut entries = archive.entries().map_err(io_err)?;
        let mut count = 0u64;
        loop {
            // The tar crate buffers pax and GNU long-name records whole;
            // only what it reads inside `next()` counts against the
            // budget, since each entry's data is read to its end below.
            header_budget.set(limits.max_header_bytes);
            let Some(entry) = entries.next() else { break };
            header_budget.set(u64::MAX);
            let mut e = entry.map_err(io_err)?;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let hostile = |reason: String| ViewError::Hostile {
                digest: digest.clone(),
                entry: name.clone(),
                reason,
            };
            count += 1;
            if count > limits.max_entries {
                return Err(hostile(format!(
                    "the layer holds more than {} entries",
                    limits.max_entries
                )));
            }
            let path = normalize_entry(&name).map_err(hostile)?;
            let item = match Whiteout::of(&path) {
                Some(w) => Item::Whiteout(w),
                None if path == "/" => Item::Root,
                None => Item::Node(node(&e, &path).map_err(hostile)?),
            };
            let size = e.size();
            let mut entry = LayerEntry {
                name: name.clone(),
                path,
                item,
                digest,
                data: &mut e,
                held: 0,
            };
            let kept = visit(&mut entry)?;
            // Every entry is read to its end, so a size the layer does
            // not hold is caught here, naming the entry.
            io::copy(&mut entry, &mut io::sink()).map_err(io_err)?;
            if entry.held != size {
                return Err(hostile(format!(
                    "declares {size} bytes but the layer holds {}",
                    entry.held
                )));
            }
            keep(kept);
        }
    }
    // Drain any padding after the end-of-archive marker so the hash covers
    // the whole stream.
    io::copy(&mut hashed, &mut io::sink()).map_err(io_err)?;
    Ok(hashed.finish())
}

/// The checked header of a non-whiteout entry at `path`.
fn node<R: Read>(e: &tar::Entry<'_, R>, path: &str) -> Result<Node, String> {
    let h = e.header();
    let link = || {
        e.link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default()
    };
    let kind = match h.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => FileKind::File,
        tar::EntryType::Directory => FileKind::Dir,
        tar::EntryType::Symlink => FileKind::Symlink { target: link() },
        tar::EntryType::Link => FileKind::Hardlink {
            target: normalize_entry(&link())?,
        },
        _ => FileKind::Other,
    };
    if let FileKind::Symlink { target } = &kind {
        if symlink_escapes(path.trim_start_matches('/'), target) {
            return Err(format!(
                "symlink target `{target}` climbs above the image root"
            ));
        }
    }
    Ok(Node {
        kind,
        regular: h.entry_type() == tar::EntryType::Regular,
        mode: h.mode().map_err(|err| err.to_string())?,
        uid: h.uid().unwrap_or(0),
        gid: h.gid().unwrap_or(0),
        size: e.size(),
    })
}

/// Fails a read once more than `limit` bytes have been read; `over` tells
/// the caller that this, not the stream, ended the walk.
struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.over.set(true);
            return Err(io::Error::other(format!(
                "decompresses to more than {} bytes; refusing it as a decompression bomb",
                self.limit
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// `r`, failing once it has given more than `limit` bytes: for a copy of
/// a layer's uncompressed stream that is not walked as a tar.
pub fn capped<'a>(r: impl Read + 'a, limit: u64) -> impl Read + 'a {
    Capped {
        inner: r,
        left: limit,
        limit,
        over: Rc::default(),
    }
}

/// Fails a read once `left` bytes are used up: bounds what the tar crate
/// reads into memory for one entry's headers.
struct HeaderBudget<R> {
    inner: R,
    left: Rc<Cell<u64>>,
    limit: u64,
}

impl<R: Read> Read for HeaderBudget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left.get();
        if left == 0 {
            return Err(io::Error::other(format!(
                "an entry's tar headers (pax or GNU long-name records) exceed {} bytes",
                self.limit
            )));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left.set(left - n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(name, data)` regular files, made by the tar crate.
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, name, *data).unwrap();
        }
        tar.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, bytes).unwrap();
        gz.finish().unwrap()
    }

    /// Walks `stream`, returning the paths `keep` saw.
    fn paths(stream: impl Read, limits: Limits) -> (Result<(Digest, u64), ViewError>, Vec<String>) {
        let mut kept = Vec::new();
        let r = walk_tar(
            stream,
            &Digest::of(b"layer"),
            limits,
            |e| Ok(e.path.clone()),
            |p| kept.push(p),
        );
        (r, kept)
    }

    #[test]
    fn every_oci_and_docker_layer_media_type_decodes() {
        let tar = tar_of(&[("etc/os-release", b"ID=debian\n")]);
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        let gz = gzip(&tar);
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        for (media_type, blob) in [
            (MEDIA_TYPE_LAYER_TAR, &tar),
            (MEDIA_TYPE_LAYER_GZIP, &gz),
            (MEDIA_TYPE_LAYER_ZSTD, &zst),
            (DOCKER_LAYER_TAR, &tar),
            (DOCKER_LAYER_GZIP, &gz),
            (DOCKER_LAYER_ZSTD, &zst),
        ] {
            let b = store.put(blob).unwrap();
            let layer = Descriptor {
                media_type: media_type.into(),
                digest: b.digest,
                size: b.size,
                artifact_type: None,
                annotations: Default::default(),
                platform: None,
            };
            let mut kept = Vec::new();
            let (diff_id, len) =
                walk_layer(&store, &layer, |e| Ok(e.path.clone()), |p| kept.push(p))
                    .unwrap_or_else(|e| panic!("{media_type}: {e}"));
            assert_eq!(kept, ["/etc/os-release"], "{media_type}");
            assert_eq!((diff_id, len), (Digest::of(&tar), tar.len() as u64));
        }
        let b = store.put(&tar).unwrap();
        let foreign = Descriptor {
            media_type: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into(),
            digest: b.digest,
            size: b.size,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        };
        let err = walk_layer(&store, &foreign, |_| Ok(()), |()| {}).unwrap_err();
        assert!(matches!(err, ViewError::MediaType { .. }), "{err}");
    }

    #[test]
    fn the_decompression_cap_stops_the_walk() {
        let tar = tar_of(&[("big", &[0u8; 64 << 10])]);
        let tight = Limits {
            max_bytes: 16 << 10,
            ..Limits::for_stream()
        };
        let (r, kept) = paths(&tar[..], tight);
        let err = r.unwrap_err();
        assert!(
            matches!(err, ViewError::TooLarge { limit, .. } if limit == 16 << 10),
            "{err}"
        );
        assert!(err.to_string().contains("decompression bomb"), "{err}");
        assert!(kept.is_empty(), "{kept:?}");
        // Under the cap the same stream reads whole.
        let exact = Limits {
            max_bytes: tar.len() as u64,
            ..Limits::for_stream()
        };
        let (r, kept) = paths(&tar[..], exact);
        assert_eq!(r.unwrap(), (Digest::of(&tar), tar.len() as u64));
        assert_eq!(kept, ["/big"]);

        // The copy that is not walked stops at its cap too.
        let mut out = Vec::new();
        let err = io::copy(&mut capped(&tar[..], 1000), &mut out).unwrap_err();
        assert!(err.to_string().contains("more than 1000 bytes"), "{err}");
        assert!(out.len() <= 1000);
    }

    #[test]
    fn a_small_blob_may_not_decompress_past_the_ratio() {
        assert_eq!(Limits::for_blob(1).max_bytes, RATIO_FLOOR);
        assert_eq!(Limits::for_blob(1 << 20).max_bytes, (1 << 20) * MAX_RATIO);
        assert_eq!(Limits::for_blob(1 << 40).max_bytes, MAX_LAYER_BYTES);
        assert_eq!(Limits::for_blob(u64::MAX).max_bytes, MAX_LAYER_BYTES);
    }

    #[test]
    fn the_header_budgets_hold() {
        // Entries per layer: the first past the budget is named.
        let names = ["a", "b", "c", "d", "e"];
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (*n, &b"x"[..])).collect();
        let tar = tar_of(&files);
        let four = Limits {
            max_entries: 4,
            ..Limits::for_stream()
        };
        let (r, kept) = paths(&tar[..], four);
        match r {
            Err(ViewError::Hostile { entry, reason, .. }) => {
                assert_eq!(entry, "e");
                assert_eq!(reason, "the layer holds more than 4 entries");
            }
            other => panic!("expected the entry budget to hold, got {other:?}"),
        }
        assert_eq!(kept, ["/a", "/b", "/c", "/d"]);
        let five = Limits {
            max_entries: 5,
            ..Limits::for_stream()
        };
        assert!(paths(&tar[..], five).0.is_ok());

        // Bytes of one entry's headers: a GNU long name of 3000 bytes.
        let long = format!("nix/{}", "n".repeat(3000));
        let tar = tar_of(&[(long.as_str(), b"x")]);
        let small = Limits {
            max_header_bytes: 2048,
            ..Limits::for_stream()
        };
        let err = paths(&tar[..], small).0.unwrap_err();
        assert!(matches!(err, ViewError::Io { .. }), "{err}");
        assert!(err.to_string().contains("exceed 2048 bytes"), "{err}");
        let (r, kept) = paths(&tar[..], Limits::for_stream());
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(kept, [format!("/{long}")]);
    }

    #[test]
    fn an_entry_is_kept_only_once_it_holds_what_it_declares() {
        let mut tar = tar_of(&[("ok", b"x")]);
        tar.truncate(tar.len() - 1024);
        let mut h = tar::Header::new_gnu();
        h.set_path("short").unwrap();
        h.set_size(4096);
        h.set_mode(0o644);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(&[7; 512]);
        let (r, kept) = paths(&tar[..], Limits::for_stream());
        match r {
            Err(ViewError::Hostile { entry, reason, .. }) => {
                assert_eq!(entry, "short");
                assert_eq!(reason, "declares 4096 bytes but the layer holds 512");
            }
            other => panic!("expected a short entry to be refused, got {other:?}"),
        }
        assert_eq!(kept, ["/ok"]);
    }

    #[test]
    fn reading_an_entry_whole_is_bounded_by_the_callers_cap() {
        let tar = tar_of(&[("var/lib/dpkg/status", &[b'a'; 100])]);
        let walk = |max| {
            let mut got = Vec::new();
            let r = walk_tar(
                &tar[..],
                &Digest::of(b"layer"),
                Limits::for_stream(),
                |e| e.read_at_most(max, "package database"),
                |d| got.push(d),
            );
            r.map(|_| got)
        };
        assert_eq!(walk(100).unwrap(), [vec![b'a'; 100]]);
        match walk(99) {
            Err(ViewError::Hostile { entry, reason, .. }) => {
                assert_eq!(entry, "var/lib/dpkg/status");
                assert_eq!(
                    reason,
                    "100 bytes is more than the 99 a package database may hold"
                );
            }
            other => panic!("expected the cap to hold, got {other:?}"),
        }
    }

    #[test]
    fn entry_names_are_normalized_and_dotdot_refused() {
        assert_eq!(normalize_entry("./nix/store/x/").unwrap(), "/nix/store/x");
        assert_eq!(normalize_entry("etc//passwd").unwrap(), "/etc/passwd");
        assert_eq!(normalize_entry("/etc/passwd").unwrap(), "/etc/passwd");
        assert!(normalize_entry("nix/../../etc/shadow").is_err());
        assert!(normalize_entry("../x").is_err());
    }

    #[test]
    fn whiteouts_hide_what_the_spec_says_and_nothing_more() {
        assert_eq!(Whiteout::of("/a/.wh..wh..opq"), Some(Whiteout::Opaque));
        assert_eq!(Whiteout::of("/a/.wh.x"), Some(Whiteout::Named));
        assert_eq!(Whiteout::of("/a/x.wh.y"), None);
        assert_eq!(Whiteout::of("/"), None);
        let lower = || -> BTreeMap<String, ()> {
            ["/a", "/a/x", "/a/x/deep", "/a/xy", "/a/y", "/ab", "/b"]
                .into_iter()
                .map(|p| (p.to_string(), ()))
                .collect()
        };
        let left = |w: Whiteout, at: &str| {
            let mut m = lower();
            w.hide(at, &mut m);
            m.into_keys().collect::<Vec<_>>()
        };
        assert_eq!(
            left(Whiteout::Named, "/a/.wh.x"),
            ["/a", "/a/xy", "/a/y", "/ab", "/b"]
        );
        assert_eq!(
            left(Whiteout::Opaque, "/a/.wh..wh..opq"),
            ["/a", "/ab", "/b"]
        );
        assert_eq!(
            left(Whiteout::Opaque, "/.wh..wh..opq"),
            Vec::<String>::new()
        );
        assert_eq!(left(Whiteout::Named, "/.wh.a"), ["/ab", "/b"]);

        // In a walk, a whiteout is an item of its own, not a file.
        let tar = tar_of(&[("a/.wh.x", b""), ("a/.wh..wh..opq", b""), ("./", b"")]);
        let mut items = Vec::new();
        walk_tar(
            &tar[..],
            &Digest::of(b"layer"),
            Limits::for_stream(),
            |e| Ok(e.item.clone()),
            |i| items.push(i),
        )
        .unwrap();
        assert_eq!(
            items,
            [
                Item::Whiteout(Whiteout::Named),
                Item::Whiteout(Whiteout::Opaque),
                Item::Root
            ]
        );
    }
}

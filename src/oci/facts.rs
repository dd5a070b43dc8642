//! The facts of one layer ([`LayerFacts`]): what the gate, lint and the
//! rootfs view need from it, derived in one walk of its blob or of its
//! stream while it is written, and kept by the layer cache by digest. The
//! cached format is this file's types, so `build.rs` hashes it (with the
//! walker, the secret scanner and the ELF facts) into the format's version;
//! how facts merge into an image ([`super::rootfs_view`]) is not cached.
//! An ELF file's bytes are held to be analyzed, but no buffer is sized from
//! a header's claim beyond `ELF_PREALLOC`.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::blob::BlobStore;
use super::decode::{walk_layer, walk_tar, Item, LayerEntry, Limits, ViewError, Whiteout};
use super::digest::Digest;
use super::image::{layer_descriptors, Provenance};
use super::layout::Descriptor;
use super::secrets::{secret_kinds, MAX_SCAN_BYTES};
use super::tarball::{write_layer_tapped, Compression, LayerBlob, LayerContent, LayerError};
use crate::analyze::{ElfFacts, FileKind};

/// ELF files larger than this are listed but not analyzed.
pub const MAX_ELF_BYTES: u64 = 512 << 20;
/// The most an ELF buffer reserves up front; it grows with the bytes read.
const ELF_PREALLOC: u64 = 1 << 20;

/// What the gate and lint need from one layer, derived in one pass over its
/// blob: every entry in tar order, whiteouts included (so layers merge later
/// exactly as [`super::rootfs_view::read_rootfs`] merges them), facts about each ELF file
/// instead of its bytes, and the secret-pattern hits of its regular files.
/// A pure function of the blob, so the layer cache keeps it by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerFacts {
    pub digest: Digest,
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar stream.
    pub uncompressed_size: u64,
    pub(super) entries: Vec<EntryFact>,
    pub(super) secrets: Vec<LayerSecret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct EntryFact {
    /// Normalized, absolute.
    pub(super) path: String,
    /// The name as the tar spells it, when that is not `path` without its
    /// leading `/`; errors name the entry as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) raw: Option<String>,
    pub(super) action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Action {
    /// `.wh..wh..opq`: hides everything under the directory so far.
    Opaque,
    /// `.wh.<name>`: hides `<name>` and what lies beneath it.
    Whiteout,
    /// The root directory itself, which the view does not list.
    Root,
    Add {
        kind: FileKind,
        mode: u32,
        uid: u64,
        gid: u64,
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        elf: Option<Box<ElfFacts>>,
    },
}

/// A secret-pattern hit in one layer (see [`super::secrets`], CIS 4.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LayerSecret {
    pub(super) path: String,
    pub(super) kind: String,
}

impl LayerFacts {
    /// Entries in the layer (whiteouts included).
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }
}

/// Walks one layer blob (checked against its descriptor first) into
/// [`LayerFacts`].
pub fn scan_layer(store: &BlobStore, layer: &Descriptor) -> Result<LayerFacts, ViewError> {
    let mut walked = Walked::default();
    let (diff_id, uncompressed_size) = walk(store, layer, &mut walked)?;
    Ok(LayerFacts {
        digest: layer.digest.clone(),
        diff_id,
        uncompressed_size,
        entries: walked.entries,
        secrets: walked.secrets,
    })
}

/// What [`while_writing`] derived from a layer's stream; it becomes the
/// layer's [`LayerFacts`] once the blob is finished.
pub struct StreamFacts {
    walked: Walked,
    diff_id: Digest,
    uncompressed_size: u64,
}

impl StreamFacts {
    /// The facts of `blob`, if the stream read was the blob's (same diff_id).
    pub fn for_blob(self, blob: &LayerBlob) -> Option<LayerFacts> {
        (self.diff_id == blob.diff_id).then(|| LayerFacts {
            digest: blob.digest.clone(),
            diff_id: self.diff_id,
            uncompressed_size: self.uncompressed_size,
            entries: self.walked.entries,
            secrets: self.walked.secrets,
        })
    }
}

/// Runs `write` with a tap for the uncompressed tar stream it makes, and
/// walks that stream on another thread as it comes: the layer's facts cost
/// no second read and no decompression. The facts are `None` when the
/// stream could not be walked (they are then derived from the blob).
pub fn while_writing<T>(
    write: impl FnOnce(Option<&mut dyn Write>) -> T,
) -> (T, Option<StreamFacts>) {
    let Ok((mut reader, mut writer)) = io::pipe() else {
        return (write(None), None);
    };
    std::thread::scope(|s| {
        let walker = s.spawn(move || {
            let mut walked = Walked::default();
            // Errors name the layer by digest, unknown until the blob is done;
            // any error drops these facts, and the blob read names it.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                walk_stream(
                    &mut reader,
                    &Digest::of(b""),
                    Limits::for_stream(),
                    &mut walked,
                )
            }));
            // Drained whatever happens, so the writer never blocks on a full pipe.
            let _ = io::copy(&mut reader, &mut io::sink());
            let Ok(Ok((diff_id, uncompressed_size))) = r else {
                return None;
            };
            Some(StreamFacts {
                walked,
                diff_id,
                uncompressed_size,
            })
        });
        let out = write(Some(&mut writer));
        drop(writer);
        (out, walker.join().ok().flatten())
    })
}

/// [`write_layer_tapped`] with the layer's facts derived on the way.
pub fn write_layer_with_facts(
    store: &BlobStore,
    content: &LayerContent<'_>,
    compression: Compression,
    mtime: u64,
) -> Result<(LayerBlob, Option<LayerFacts>), LayerError> {
    let (blob, facts) =
        while_writing(|tap| write_layer_tapped(store, content, compression, mtime, tap));
    let blob = blob?;
    let facts = facts.and_then(|f| f.for_blob(&blob));
    Ok((blob, facts))
}

/// Produces the facts of a layer this build holds; the layer cache
/// implements it to keep them, so a cached layer is never read again.
pub trait FactsSource: Sync {
    fn facts(
        &self,
        store: &BlobStore,
        layer: &LayerBlob,
    ) -> Result<(LayerFacts, Provenance), ViewError>;
}

/// Reads every layer.
pub struct ScanLayers;

impl FactsSource for ScanLayers {
    fn facts(
        &self,
        store: &BlobStore,
        layer: &LayerBlob,
    ) -> Result<(LayerFacts, Provenance), ViewError> {
        Ok((scan_blob(store, layer)?, Provenance::Built))
    }
}

/// [`scan_layer`] for a layer blob, checked against its diff_id.
pub fn scan_blob(store: &BlobStore, layer: &LayerBlob) -> Result<LayerFacts, ViewError> {
    let facts = scan_layer(store, &layer_descriptors(std::slice::from_ref(layer))[0])?;
    if facts.diff_id != layer.diff_id {
        return Err(ViewError::DiffIdMismatch {
            digest: layer.digest.clone(),
            expected: layer.diff_id.clone(),
            actual: facts.diff_id,
        });
    }
    Ok(facts)
}

/// The facts of every layer, in order: `known[i]` where given (derived
/// while layer `i` was written), else from `source`, `jobs` layers at a
/// time. Also returns how many layer blobs `source` had to read.
pub fn layer_facts(
    store: &BlobStore,
    layers: &[LayerBlob],
    known: Vec<Option<LayerFacts>>,
    source: &dyn FactsSource,
    jobs: usize,
) -> Result<(Vec<LayerFacts>, usize), ViewError> {
    let mut known = known;
    let missing: Vec<usize> = (0..layers.len())
        .filter(|&i| known.get(i).is_none_or(Option::is_none))
        .collect();
    let found = crate::parallel::try_map(&missing, jobs, |&i| source.facts(store, &layers[i]))?;
    known.resize_with(layers.len(), || None);
    let mut read = 0;
    for (i, (f, p)) in missing.into_iter().zip(found) {
        read += usize::from(p == Provenance::Built);
        known[i] = Some(f);
    }
    // Every slot is filled: try_map returned a result for each missing one.
    Ok((known.into_iter().flatten().collect(), read))
}

/// What [`walk`] has read of a layer so far.
#[derive(Default)]
pub(super) struct Walked {
    pub(super) entries: Vec<EntryFact>,
    pub(super) secrets: Vec<LayerSecret>,
}

/// Reads one layer once: verifies the blob, then records every entry (and
/// what its bytes say) into `out`. Returns the diff_id and the length of the
/// uncompressed stream.
pub(super) fn walk(
    store: &BlobStore,
    layer: &Descriptor,
    out: &mut Walked,
) -> Result<(Digest, u64), ViewError> {
    let Walked { entries, secrets } = out;
    walk_layer(
        store,
        layer,
        |e| entry_fact(e, secrets),
        |f| entries.push(f),
    )
}

/// [`walk`] over an uncompressed layer stream; `digest` names the layer in
/// errors.
fn walk_stream(
    stream: impl Read,
    digest: &Digest,
    limits: Limits,
    out: &mut Walked,
) -> Result<(Digest, u64), ViewError> {
    let Walked { entries, secrets } = out;
    walk_tar(
        stream,
        digest,
        limits,
        |e| entry_fact(e, secrets),
        |f| entries.push(f),
    )
}

/// What the facts keep of one entry; its secret-pattern hits go to
/// `secrets`. Small regular files are read whole to be scanned, and ELF
/// files to be analyzed; the walker drains the rest.
fn entry_fact(
    e: &mut LayerEntry<'_>,
    secrets: &mut Vec<LayerSecret>,
) -> Result<EntryFact, ViewError> {
    let path = e.path.clone();
    let raw = (path.strip_prefix('/') != Some(e.name.as_str())).then(|| e.name.clone());
    let node = match &e.item {
        Item::Whiteout(Whiteout::Opaque) => Err(Action::Opaque),
        Item::Whiteout(Whiteout::Named) => Err(Action::Whiteout),
        Item::Root => Err(Action::Root),
        Item::Node(n) => Ok(n.clone()),
    };
    let node = match node {
        Ok(n) => n,
        Err(action) => return Ok(EntryFact { path, raw, action }),
    };
    let mut head = Vec::with_capacity(4);
    if node.kind == FileKind::File {
        let r = (&mut *e).take(4).read_to_end(&mut head);
        r.map_err(|err| e.io(err))?;
    }
    let size = node.size;
    let is_elf = head == b"\x7fELF" && size <= MAX_ELF_BYTES;
    // Small regular files are scanned for secrets, so they are held like
    // ELF files; the rest streams through.
    let scan = node.regular && size <= MAX_SCAN_BYTES;
    let hits = |content: Option<&[u8]>| {
        secret_kinds(&path, content)
            .into_iter()
            .map(|kind| LayerSecret {
                path: path.clone(),
                kind: kind.to_string(),
            })
            .collect::<Vec<_>>()
    };
    let elf = if is_elf || scan {
        let mut data = Vec::with_capacity(size.min(ELF_PREALLOC) as usize);
        data.extend_from_slice(&head);
        let r = e.read_to_end(&mut data);
        r.map_err(|err| e.io(err))?;
        // A short entry is refused by the walker; it is not scanned.
        if data.len() as u64 == size && node.regular {
            secrets.extend(hits(scan.then_some(data.as_slice())));
        }
        is_elf.then(|| Box::new(ElfFacts::from_bytes(&path, &data)))
    } else {
        if node.regular {
            secrets.extend(hits(None));
        }
        None
    };
    Ok(EntryFact {
        path,
        raw,
        action: Action::Add {
            kind: node.kind,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            size,
            elf,
        },
    })
}

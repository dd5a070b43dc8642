//! The merged root filesystem of an image: every entry's metadata with
//! whiteouts applied, the facts of every ELF file it holds, and the
//! secret-pattern hits of every layer. Each layer's facts come from one walk
//! of its blob ([`super::facts`]) or from the layer cache; here they merge,
//! in layer order, exactly the same either way.
//!
//! Input may be hostile (`inspect`/`analyze` of someone else's layout).
//! The walker ([`super::decode`]) holds the defences every layer reader
//! shares. What only a merged view can see is refused here: an entry
//! beneath a symlink a lower layer made (an extractor would write through
//! it).

use std::collections::{BTreeMap, BTreeSet};

use super::blob::BlobStore;
use super::decode::Whiteout;
use super::digest::Digest;
use super::facts::{walk, Action, EntryFact, LayerFacts, LayerSecret, Walked};
use super::layout::Descriptor;
use super::secrets::SecretHit;
use crate::analyze::{ElfFacts, FileKind, ImageFile};

use super::decode::ViewError;

#[derive(Debug, Default)]
pub struct RootfsView {
    pub files: Vec<ImageFile>,
    /// Facts of every ELF file the merged rootfs holds, by path.
    pub elfs: BTreeMap<String, ElfFacts>,
    /// Sum of the layers' uncompressed tar sizes.
    pub uncompressed_size: u64,
    /// Secret-pattern hits in every layer, sorted; a file a later layer
    /// deletes is still shipped, so whiteouts do not hide these.
    pub secrets: Vec<SecretHit>,
}

/// The outermost ancestor of `path` that the view holds as a symlink.
fn symlink_ancestor<'a>(files: &'a BTreeMap<String, ImageFile>, path: &str) -> Option<&'a str> {
    let mut end = 0;
    while let Some(i) = path[end + 1..].find('/') {
        end += 1 + i;
        if let Some(f) = files.get(&path[..end]) {
            if matches!(f.kind, FileKind::Symlink { .. }) {
                return Some(&f.path);
            }
        }
    }
    None
}

/// Reads `layers` (in order) from `store`. When `diff_ids` is given, each
/// layer's uncompressed stream is checked against it.
pub fn read_rootfs(
    store: &BlobStore,
    layers: &[Descriptor],
    diff_ids: Option<&[String]>,
) -> Result<RootfsView, ViewError> {
    let mut merged = Merge::default();
    for (i, layer) in layers.iter().enumerate() {
        let mut walked = Walked::default();
        let read = walk(store, layer, &mut walked);
        // What was read before a per-layer error merges first, so errors
        // come in the order one walk over the whole image meets them.
        merged.apply(&layer.digest, &walked.entries)?;
        let (diff_id, n) = read?;
        merged.add_secrets(&layer.digest, &walked.secrets);
        merged.layer_done(&layer.digest, &diff_id, n, diff_ids.and_then(|d| d.get(i)))?;
    }
    Ok(merged.finish())
}

/// Merges facts derived before (in layer order) into the image's rootfs,
/// exactly as [`read_rootfs`] would from the blobs.
pub fn merge_facts(
    layers: &[LayerFacts],
    diff_ids: Option<&[String]>,
) -> Result<RootfsView, ViewError> {
    let mut merged = Merge::default();
    for (i, f) in layers.iter().enumerate() {
        merged.apply(&f.digest, &f.entries)?;
        merged.add_secrets(&f.digest, &f.secrets);
        merged.layer_done(
            &f.digest,
            &f.diff_id,
            f.uncompressed_size,
            diff_ids.and_then(|d| d.get(i)),
        )?;
    }
    Ok(merged.finish())
}

#[derive(Default)]
struct Merge {
    files: BTreeMap<String, ImageFile>,
    elfs: BTreeMap<String, ElfFacts>,
    secrets: BTreeSet<SecretHit>,
    total: u64,
}

impl Merge {
    fn apply(&mut self, digest: &Digest, entries: &[EntryFact]) -> Result<(), ViewError> {
        let (files, elfs) = (&mut self.files, &mut self.elfs);
        for e in entries {
            let path = &e.path;
            if let Some(link) = symlink_ancestor(files, path) {
                return Err(ViewError::Hostile {
                    digest: digest.clone(),
                    entry: e
                        .raw
                        .clone()
                        .unwrap_or_else(|| path.strip_prefix('/').unwrap_or(path).to_string()),
                    reason: format!("lies beneath the symlink `{link}`"),
                });
            }
            // Whiteouts hide lower layers' content (OCI image spec).
            match &e.action {
                Action::Opaque | Action::Whiteout => {
                    let w = match e.action {
                        Action::Opaque => Whiteout::Opaque,
                        _ => Whiteout::Named,
                    };
                    w.hide(path, files);
                    w.hide(path, elfs);
                }
                Action::Root => {}
                Action::Add {
                    kind,
                    mode,
                    uid,
                    gid,
                    size,
                    elf,
                } => {
                    match elf {
                        Some(f) => elfs.insert(path.clone(), (**f).clone()),
                        None => elfs.remove(path),
                    };
                    files.insert(
                        path.clone(),
                        ImageFile {
                            path: path.clone(),
                            kind: kind.clone(),
                            mode: *mode,
                            uid: *uid,
                            gid: *gid,
                            size: *size,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    fn add_secrets(&mut self, digest: &Digest, secrets: &[LayerSecret]) {
        self.secrets.extend(secrets.iter().map(|s| SecretHit {
            layer: digest.to_string(),
            path: s.path.clone(),
            kind: s.kind.clone(),
        }));
    }

    fn layer_done(
        &mut self,
        digest: &Digest,
        diff_id: &Digest,
        size: u64,
        expected: Option<&String>,
    ) -> Result<(), ViewError> {
        self.total += size;
        match expected {
            Some(expected) if expected != diff_id.as_str() => Err(ViewError::DiffIdMismatch {
                digest: digest.clone(),
                expected: Digest::parse(expected)
                    .unwrap_or_else(|_| Digest::of(expected.as_bytes())),
                actual: diff_id.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn finish(self) -> RootfsView {
        RootfsView {
            files: self.files.into_values().collect(),
            elfs: self.elfs,
            uncompressed_size: self.total,
            secrets: self.secrets.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::facts::{scan_layer, write_layer_with_facts};
    use std::io::{self, Read};

    use crate::oci::image::layer_descriptors;
    use crate::oci::tarball::{write_layer, Compression, LayerContent, RootfsEntry};
    use crate::oci::{MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR};

    fn desc(b: &crate::oci::tarball::LayerBlob) -> Descriptor {
        Descriptor::new(b.media_type.clone(), b.digest.clone(), b.size)
    }

    #[test]
    fn merges_layers_and_applies_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let lower = vec![
            RootfsEntry::Dir {
                path: "/a".into(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
            RootfsEntry::File {
                path: "/a/x".into(),
                mode: 0o644,
                data: b"x".to_vec(),
            },
            RootfsEntry::File {
                path: "/a/elf".into(),
                mode: 0o755,
                data: b"\x7fELFjunk".to_vec(),
            },
            RootfsEntry::File {
                path: "/keep".into(),
                mode: 0o644,
                data: vec![],
            },
        ];
        let upper = vec![RootfsEntry::File {
            path: "/a/.wh.x".into(),
            mode: 0o644,
            data: vec![],
        }];
        let l1 = write_layer(
            &store,
            &LayerContent::Rootfs(&lower),
            Compression::default(),
            1,
        )
        .unwrap();
        let l2 = write_layer(
            &store,
            &LayerContent::Rootfs(&upper),
            Compression::Zstd { level: 3 },
            1,
        )
        .unwrap();
        let ids = vec![l1.diff_id.to_string(), l2.diff_id.to_string()];
        let v = read_rootfs(&store, &[desc(&l1), desc(&l2)], Some(&ids)).unwrap();
        let paths: Vec<&str> = v.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/a", "/a/elf", "/keep"]);
        assert!(v.elfs.contains_key("/a/elf"));
        // Facts derived layer by layer merge into the same view.
        let facts = [
            scan_layer(&store, &desc(&l1)).unwrap(),
            scan_layer(&store, &desc(&l2)).unwrap(),
        ];
        // Derived from the stream while writing: the same facts.
        let other = BlobStore::open(&dir.path().join("streamed")).unwrap();
        for (entries, f, comp) in [
            (&lower, &facts[0], Compression::default()),
            (&upper, &facts[1], Compression::Zstd { level: 3 }),
        ] {
            let (b, streamed) =
                write_layer_with_facts(&other, &LayerContent::Rootfs(entries), comp, 1).unwrap();
            assert_eq!(b.digest, f.digest);
            assert_eq!(streamed.as_ref(), Some(f));
        }
        let m = merge_facts(&facts, Some(&ids)).unwrap();
        assert_eq!(m.files, v.files);
        assert_eq!(m.elfs, v.elfs);
        assert_eq!(m.uncompressed_size, v.uncompressed_size);
        let wrong = vec![l2.diff_id.to_string(), l1.diff_id.to_string()];
        assert!(matches!(
            read_rootfs(&store, &[desc(&l1), desc(&l2)], Some(&wrong)),
            Err(ViewError::DiffIdMismatch { .. })
        ));
    }

    /// The gate and lint see the same image whether its layers are read from
    /// the blobs, derived while writing, or loaded back from a cache file.
    #[test]
    fn analysis_from_facts_equals_analysis_from_blobs() {
        use crate::analyze::{analyze_image, ImageAnalysis, ImageInput};
        let (Ok(ls), Ok(libc)) = (
            std::fs::read("/bin/ls"),
            std::fs::read("/lib/x86_64-linux-gnu/libc.so.6"),
        ) else {
            panic!("this test reads the host's /bin/ls and libc.so.6");
        };
        let app = "/nix/store/2c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-app-1.0";
        let file = |path: &str, mode, data: &[u8]| RootfsEntry::File {
            path: path.into(),
            mode,
            data: data.to_vec(),
        };
        let link = |path: &str, target: &str| RootfsEntry::Symlink {
            path: path.into(),
            target: target.into(),
        };
        let lower = vec![
            file(&format!("{app}/bin/ls"), 0o555, &ls),
            file(&format!("{app}/bin/gone"), 0o555, &ls),
            file("/lib/x86_64-linux-gnu/libc.so.6", 0o444, &libc),
            file("/etc/app/.env", 0o444, b"TOKEN=1"),
            file("/etc/app/id_rsa", 0o400, b"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7\n"),
            file("/tmp/scratch", 0o666, b"x"),
        ];
        let upper = vec![
            link("/bin/sh", &format!("{app}/bin/ls")),
            file(&format!("{app}/bin/.wh.gone"), 0o444, b""),
            RootfsEntry::Dir {
                path: "/var/cache".into(),
                mode: 0o777,
                uid: 65534,
                gid: 65534,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let (mut blobs, mut streamed) = (Vec::new(), Vec::new());
        for entries in [&lower, &upper] {
            let (b, f) = write_layer_with_facts(
                &store,
                &LayerContent::Rootfs(entries),
                Compression::default(),
                1,
            )
            .unwrap();
            blobs.push(b);
            // Through the cache's encoding and back.
            let json = serde_json::to_vec(&f.unwrap()).unwrap();
            streamed.push(serde_json::from_slice::<LayerFacts>(&json).unwrap());
        }
        let ids: Vec<String> = blobs.iter().map(|b| b.diff_id.to_string()).collect();
        let analyze = |v: &RootfsView| -> ImageAnalysis {
            analyze_image(&ImageInput {
                files: &v.files,
                elfs: &v.elfs,
                user: Some("65534".into()),
                labels: Default::default(),
                compressed_size: 1,
                uncompressed_size: v.uncompressed_size,
                layer_count: 2,
                writable: vec!["/tmp".into()],
            })
        };
        let read = read_rootfs(&store, &layer_descriptors(&blobs), Some(&ids)).unwrap();
        let merged = merge_facts(&streamed, Some(&ids)).unwrap();
        let (a, b) = (analyze(&read), analyze(&merged));
        assert_eq!(a, b);
        assert_eq!(read.secrets, merged.secrets);
        // The image is not trivial: each kind of finding is there.
        let paths: Vec<&str> = a.binaries.iter().map(|r| r.path.as_str()).collect();
        assert!(
            paths.contains(&format!("{app}/bin/ls").as_str()),
            "{paths:?}"
        );
        assert!(!paths.iter().any(|p| p.ends_with("/gone")), "{paths:?}");
        assert!(a.shell.present);
        assert_eq!(a.world_writable.len(), 1, "{:?}", a.world_writable);
        let kinds: Vec<&str> = read.secrets.iter().map(|h| h.kind.as_str()).collect();
        assert_eq!(kinds, [".env file", "private key", "private key file"]);
    }

    /// A raw tar entry: `declared` is the header's size, whatever follows.
    fn raw(name: &str, kind: tar::EntryType, declared: u64, link: &str, data: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
        h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(declared);
        h.set_cksum();
        let mut v = h.as_bytes().to_vec();
        v.extend_from_slice(data);
        v.resize(v.len().next_multiple_of(512), 0);
        v
    }

    fn tar_layer(store: &BlobStore, entries: &[Vec<u8>]) -> Descriptor {
        let mut bytes = entries.concat();
        bytes.extend_from_slice(&[0; 1024]);
        let b = store.put(&bytes).unwrap();
        Descriptor::new(MEDIA_TYPE_LAYER_TAR, b.digest, b.size)
    }

    fn hostile_reason(layers: &[Descriptor], store: &BlobStore) -> (String, String) {
        match read_rootfs(store, layers, None) {
            Err(ViewError::Hostile { entry, reason, .. }) => (entry, reason),
            other => panic!("expected a hostile-entry error, got {other:?}"),
        }
    }

    #[test]
    fn symlinks_climbing_out_and_entries_beneath_symlinks_are_refused() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let escape = tar_layer(
            &store,
            &[
                raw("a/", Directory, 0, "", b""),
                raw("a/b", Symlink, 0, "../../../../etc", b""),
            ],
        );
        let (entry, reason) = hostile_reason(&[escape], &store);
        assert_eq!(entry, "a/b");
        assert!(reason.contains("climbs above the image root"), "{reason}");

        let inside = tar_layer(
            &store,
            &[
                raw("a/", Directory, 0, "", b""),
                raw("a/up", Symlink, 0, "../etc", b""),
                raw("a/abs", Symlink, 0, "/../../etc", b""),
            ],
        );
        assert_eq!(read_rootfs(&store, &[inside], None).unwrap().files.len(), 3);

        let lower = tar_layer(&store, &[raw("x", Symlink, 0, "/etc", b"")]);
        let upper = tar_layer(&store, &[raw("x/shadow", Regular, 1, "", b"!")]);
        let (entry, reason) = hostile_reason(&[lower.clone(), upper], &store);
        assert_eq!(entry, "x/shadow");
        assert!(reason.contains("beneath the symlink `/x`"), "{reason}");

        // A later layer may replace the link with a directory first.
        let replaced = tar_layer(
            &store,
            &[
                raw("x/", Directory, 0, "", b""),
                raw("x/shadow", Regular, 1, "", b"!"),
            ],
        );
        assert!(read_rootfs(&store, &[lower, replaced], None).is_ok());
    }

    #[test]
    fn declared_sizes_the_layer_does_not_hold_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let huge = tar_layer(
            &store,
            &[raw(
                "big",
                tar::EntryType::Regular,
                1 << 40,
                "",
                b"ten bytes.",
            )],
        );
        let (entry, reason) = hostile_reason(&[huge], &store);
        assert_eq!(entry, "big");
        assert!(reason.starts_with("declares 1099511627776 bytes but the layer holds "));

        // An ELF under MAX_ELF_BYTES: the claim must not size the buffer
        // (it would reserve 400 MiB here); the error names the entry.
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(64, 0);
        let big_elf = tar_layer(
            &store,
            &[raw("bin/elf", tar::EntryType::Regular, 400 << 20, "", &elf)],
        );
        let (entry, reason) = hostile_reason(&[big_elf], &store);
        assert_eq!(entry, "bin/elf");
        assert!(reason.starts_with("declares 419430400 bytes"), "{reason}");
    }

    #[test]
    fn oversized_pax_records_are_refused_not_buffered() {
        // A gzip bomb in miniature: 64 MiB of pax record compress to ~64 KiB,
        // and the tar crate would read the record into memory whole.
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let record_len = 64u64 << 20;
        let mut pax = raw("PaxHeaders/f", tar::EntryType::XHeader, record_len, "", b"");
        pax.truncate(512);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &pax).unwrap();
        io::copy(&mut io::repeat(b'a').take(record_len), &mut gz).unwrap();
        for tail in [
            raw("f", tar::EntryType::Regular, 1, "", b"x"),
            vec![0; 1024],
        ] {
            io::Write::write_all(&mut gz, &tail).unwrap();
        }
        let b = store.put(&gz.finish().unwrap()).unwrap();
        let layer = Descriptor::new(MEDIA_TYPE_LAYER_GZIP, b.digest, b.size);
        let err = read_rootfs(&store, &[layer], None).unwrap_err();
        assert!(matches!(err, ViewError::Io { .. }), "{err}");
        assert!(err.to_string().contains("exceed 1048576 bytes"), "{err}");

        // A GNU long-name record of ordinary size passes.
        let name = format!("nix/{}", "n".repeat(300));
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        tar.append_data(&mut h, &name, &b"x"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let ok = store.put(&bytes).unwrap();
        let ok = Descriptor::new(MEDIA_TYPE_LAYER_TAR, ok.digest, ok.size);
        let v = read_rootfs(&store, &[ok], None).unwrap();
        assert_eq!(v.files[0].path, format!("/{name}"));
    }

    #[test]
    fn layer_blobs_are_checked_against_their_descriptor_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let good = tar_layer(&store, &[raw("f", tar::EntryType::Regular, 1, "", b"x")]);
        let mut wrong_size = good.clone();
        wrong_size.size = 1 << 40;
        assert!(matches!(
            read_rootfs(&store, &[wrong_size], None),
            Err(ViewError::SizeMismatch { .. })
        ));
        let path = store.path(&good.digest);
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = read_rootfs(&store, &[good], None).unwrap_err();
        assert!(matches!(err, ViewError::DigestMismatch { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("content does not match its digest"));
    }
}

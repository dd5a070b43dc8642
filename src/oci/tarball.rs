//! Deterministic layer tarballs.
//!
//! Entries are relative (`nix/store/…`), sorted by name, with mtime from
//! `SOURCE_DATE_EPOCH`, uid/gid 0 (except the writable paths armorred
//! creates), normalized permissions (store directories and executables 0555,
//! other files 0444), no SUID/SGID bits and no user or group names. Device
//! nodes, FIFOs and sockets are refused. Long names use PAX `path` /
//! `linkpath` records. Hard links are written as separate files, as NAR
//! (Nix's own serialization) has none: a store optimised with `nix-store
//! --optimise` hard-links identical files, and the layer must not depend on
//! whether that ran.
//!
//! A layer is written in one pass: tar → sha256 (diff_id) → compressor →
//! sha256 (digest) → blob file, so no layer is ever held in memory.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::blob::{BlobStore, WrittenBlob};
use super::digest::{Digest, HashingWriter};
use super::{MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD};
use crate::store_path::StorePath;

/// How layers are compressed. gzip is the default because every client reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "algorithm", rename_all = "lowercase")]
pub enum Compression {
    Gzip { level: u32 },
    Zstd { level: i32 },
    None,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip { level: 6 }
    }
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip { .. } => MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd { .. } => MEDIA_TYPE_LAYER_ZSTD,
            Compression::None => MEDIA_TYPE_LAYER_TAR,
        }
    }

    /// A stable identifier for cache keys, e.g. `gzip-6`.
    pub fn id(self) -> String {
        match self {
            Compression::Gzip { level } => format!("gzip-{level}"),
            Compression::Zstd { level } => format!("zstd-{level}"),
            Compression::None => "none".into(),
        }
    }
}

/// A finished layer blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LayerBlob {
    pub media_type: String,
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
}

/// A file, directory or link that armorred makes for the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsEntry {
    Dir {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl RootfsEntry {
    pub fn path(&self) -> &str {
        match self {
            RootfsEntry::Dir { path, .. }
            | RootfsEntry::File { path, .. }
            | RootfsEntry::Symlink { path, .. } => path,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {kind} is not allowed in an image layer", path.display())]
    Forbidden { path: PathBuf, kind: &'static str },
    #[error("{}: symlink target `{target}` escapes the image root", path.display())]
    SymlinkEscape { path: PathBuf, target: String },
    #[error("{}: file changed size while it was being read", path.display())]
    Changed { path: PathBuf },
    #[error("writing layer: {0}")]
    Write(#[source] io::Error),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
    move |source| LayerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Builds one layer's tar stream into `W`.
pub struct LayerTar<W: Write> {
    out: W,
    mtime: u64,
    dirs: BTreeSet<String>,
}

impl<W: Write> LayerTar<W> {
    pub fn new(out: W, mtime: u64) -> Self {
        LayerTar {
            out,
            mtime,
            dirs: BTreeSet::new(),
        }
    }

    /// Appends a store path, with `nix/` and `nix/store/` before it once.
    pub fn add_store_path(&mut self, p: &StorePath) -> Result<(), LayerError> {
        for d in ["nix", "nix/store"] {
            self.dir_once(d, 0o555, 0, 0)?;
        }
        self.add_tree(p.as_path(), p.rel())
    }

    pub fn add_rootfs_entry(&mut self, e: &RootfsEntry) -> Result<(), LayerError> {
        let rel = e.path().trim_start_matches('/');
        match e {
            RootfsEntry::Dir { mode, uid, gid, .. } => self.dir_once(rel, *mode, *uid, *gid),
            RootfsEntry::File { mode, data, .. } => {
                let h = self.header(
                    rel,
                    tar::EntryType::Regular,
                    mode & 0o777,
                    0,
                    0,
                    data.len() as u64,
                    None,
                )?;
                self.write_entry(&h, data.as_slice())
            }
            RootfsEntry::Symlink { target, .. } => {
                let h = self.header(rel, tar::EntryType::Symlink, 0o777, 0, 0, 0, Some(target))?;
                self.write_entry(&h, io::empty())
            }
        }
    }

    /// Ends the archive and returns the writer.
    pub fn finish(mut self) -> Result<W, LayerError> {
        self.out
            .write_all(&[0u8; 1024])
            .map_err(LayerError::Write)?;
        Ok(self.out)
    }

    fn dir_once(&mut self, rel: &str, mode: u32, uid: u64, gid: u64) -> Result<(), LayerError> {
        if self.dirs.insert(rel.to_string()) {
            let name = format!("{rel}/");
            let h = self.header(&name, tar::EntryType::Directory, mode, uid, gid, 0, None)?;
            self.write_entry(&h, io::empty())?;
        }
        Ok(())
    }

    fn add_tree(&mut self, fs_path: &Path, rel: &str) -> Result<(), LayerError> {
        let md = fs::symlink_metadata(fs_path).map_err(io_at(fs_path))?;
        let ft = md.file_type();
        if ft.is_dir() {
            self.dir_once(rel, 0o555, 0, 0)?;
            let mut children: Vec<_> = fs::read_dir(fs_path)
                .map_err(io_at(fs_path))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(io_at(fs_path))?;
            // Byte order, not locale order, so every machine sorts alike.
            children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for c in children {
                let name = c.to_str().ok_or_else(|| LayerError::Forbidden {
                    path: fs_path.join(&c),
                    kind: "a non-UTF-8 file name",
                })?;
                self.add_tree(&fs_path.join(&c), &format!("{rel}/{name}"))?;
            }
            Ok(())
        } else if ft.is_symlink() {
            let target = fs::read_link(fs_path).map_err(io_at(fs_path))?;
            let target = target.to_str().ok_or_else(|| LayerError::Forbidden {
                path: fs_path.to_path_buf(),
                kind: "a non-UTF-8 symlink target",
            })?;
            if symlink_escapes(rel, target) {
                return Err(LayerError::SymlinkEscape {
                    path: fs_path.to_path_buf(),
                    target: target.to_string(),
                });
            }
            let h = self.header(rel, tar::EntryType::Symlink, 0o777, 0, 0, 0, Some(target))?;
            self.write_entry(&h, io::empty())
        } else if ft.is_file() {
            // Store files are read-only; keep only "is executable".
            let mode = if md.permissions().mode() & 0o111 != 0 {
                0o555
            } else {
                0o444
            };
            let f = File::open(fs_path).map_err(io_at(fs_path))?;
            let h = self.header(rel, tar::EntryType::Regular, mode, 0, 0, md.len(), None)?;
            self.write_file(&h, f, md.len(), fs_path)
        } else {
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_block_device() || ft.is_char_device() {
                "a device node"
            } else if ft.is_fifo() {
                "a FIFO"
            } else {
                "a socket"
            };
            Err(LayerError::Forbidden {
                path: fs_path.to_path_buf(),
                kind,
            })
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        size: u64,
        link: Option<&str>,
    ) -> Result<tar::Header, LayerError> {
        let mut pax: Vec<(&str, &[u8])> = Vec::new();
        if name.len() > 100 {
            pax.push(("path", name.as_bytes()));
        }
        if let Some(l) = link {
            if l.len() > 100 {
                pax.push(("linkpath", l.as_bytes()));
            }
        }
        if !pax.is_empty() {
            self.write_pax(name, &pax)?;
        }
        let mut h = tar::Header::new_ustar();
        {
            let u = h.as_ustar_mut().expect("new_ustar is ustar");
            copy_truncated(&mut u.name, name.as_bytes());
            if let Some(l) = link {
                copy_truncated(&mut u.linkname, l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        // Normalizing never lets SUID, SGID or sticky through, except the
        // sticky bit on directories armorred itself makes (/tmp).
        let keep = if kind == tar::EntryType::Directory {
            0o1777
        } else {
            0o777
        };
        h.set_mode(mode & keep);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_cksum();
        Ok(h)
    }

    fn write_pax(&mut self, name: &str, records: &[(&str, &[u8])]) -> Result<(), LayerError> {
        let mut data = Vec::new();
        for (k, v) in records {
            // A record is "<len> <key>=<value>\n" where len counts itself.
            let rest = 3 + k.len() + v.len();
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut h = tar::Header::new_ustar();
        let short = format!(
            "PaxHeaders/{}",
            name.rsplit('/').find(|s| !s.is_empty()).unwrap_or("x")
        );
        copy_truncated(&mut h.as_ustar_mut().expect("ustar").name, short.as_bytes());
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(self.mtime);
        h.set_cksum();
        self.write_entry(&h, data.as_slice())
    }

    fn write_entry(&mut self, h: &tar::Header, mut data: impl Read) -> Result<(), LayerError> {
        self.out
            .write_all(h.as_bytes())
            .map_err(LayerError::Write)?;
        let n = io::copy(&mut data, &mut self.out).map_err(LayerError::Write)?;
        pad(&mut self.out, n)
    }

    fn write_file(
        &mut self,
        h: &tar::Header,
        f: File,
        size: u64,
        path: &Path,
    ) -> Result<(), LayerError> {
        self.out
            .write_all(h.as_bytes())
            .map_err(LayerError::Write)?;
        let n = io::copy(&mut f.take(size), &mut self.out).map_err(|e| {
            if e.kind() == io::ErrorKind::Other || e.raw_os_error().is_some() {
                LayerError::Write(e)
            } else {
                io_at(path)(e)
            }
        })?;
        if n != size {
            return Err(LayerError::Changed {
                path: path.to_path_buf(),
            });
        }
        pad(&mut self.out, n)
    }
}

fn pad(out: &mut impl Write, n: u64) -> Result<(), LayerError> {
    let rem = (n % 512) as usize;
    if rem != 0 {
        out.write_all(&[0u8; 512][..512 - rem])
            .map_err(LayerError::Write)?;
    }
    Ok(())
}

fn copy_truncated(field: &mut [u8], bytes: &[u8]) {
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

/// True when a relative symlink at `rel` (a path below the image root)
/// climbs above the root. Absolute targets resolve inside the container's
/// root and are allowed.
pub fn symlink_escapes(rel: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    // The link's directory depth, then walk the target's components.
    let mut depth: i64 = rel.trim_matches('/').split('/').count() as i64 - 1;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// What goes into one layer.
#[derive(Debug, Clone)]
pub enum LayerContent<'a> {
    StorePaths(&'a [StorePath]),
    Rootfs(&'a [RootfsEntry]),
}

/// Writes one layer blob in a single pass and returns its descriptor data.
pub fn write_layer(
    store: &BlobStore,
    content: &LayerContent<'_>,
    compression: Compression,
    mtime: u64,
) -> Result<LayerBlob, LayerError> {
    write_layer_tapped(store, content, compression, mtime, None)
}

/// [`write_layer`], also copying the uncompressed tar stream to `tap` as it
/// is made, so it can be read without decompressing the blob again. A tap
/// that fails is dropped; the layer is written regardless.
pub fn write_layer_tapped(
    store: &BlobStore,
    content: &LayerContent<'_>,
    compression: Compression,
    mtime: u64,
    tap: Option<&mut dyn Write>,
) -> Result<LayerBlob, LayerError> {
    let blob = store.writer().map_err(LayerError::Write)?;
    let (blob, diff_id) = match compression {
        Compression::Gzip { level } => {
            let gz = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(blob, flate2::Compression::new(level));
            let (gz, diff_id) = write_tar(gz, content, mtime, tap)?;
            (gz.finish().map_err(LayerError::Write)?, diff_id)
        }
        Compression::Zstd { level } => {
            let z = zstd::Encoder::new(blob, level).map_err(LayerError::Write)?;
            let (z, diff_id) = write_tar(z, content, mtime, tap)?;
            (z.finish().map_err(LayerError::Write)?, diff_id)
        }
        Compression::None => write_tar(blob, content, mtime, tap)?,
    };
    let WrittenBlob { digest, size } = blob.finish().map_err(LayerError::Write)?;
    Ok(LayerBlob {
        media_type: compression.media_type().to_string(),
        digest,
        diff_id,
        size,
    })
}

/// Writes to `inner`, and what `inner` took to `tap` as long as `tap` works.
struct Tee<'t, W> {
    inner: W,
    tap: Option<&'t mut dyn Write>,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(tap) = &mut self.tap {
            if tap.write_all(&buf[..n]).is_err() {
                self.tap = None;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_tar<W: Write>(
    w: W,
    content: &LayerContent<'_>,
    mtime: u64,
    tap: Option<&mut dyn Write>,
) -> Result<(W, Digest), LayerError> {
    let mut tar = LayerTar::new(HashingWriter::new(Tee { inner: w, tap }), mtime);
    match content {
        LayerContent::StorePaths(paths) => {
            for p in paths.iter() {
                tar.add_store_path(p)?;
            }
        }
        LayerContent::Rootfs(entries) => {
            for e in entries.iter() {
                tar.add_rootfs_entry(e)?;
            }
        }
    }
    let (w, diff_id, _) = tar.finish()?.finish();
    Ok((w.inner, diff_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, Option<String>)> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn rootfs_entries_are_normalized() {
        let mut t = LayerTar::new(Vec::new(), 1);
        for e in [
            RootfsEntry::Dir {
                path: "/etc".into(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
            RootfsEntry::File {
                path: "/etc/passwd".into(),
                mode: 0o4755,
                data: b"x".to_vec(),
            },
            RootfsEntry::Dir {
                path: "/tmp".into(),
                mode: 0o1777,
                uid: 0,
                gid: 0,
            },
            RootfsEntry::Symlink {
                path: "/bin/sh".into(),
                target: "/nix/store/x/bin/sh".into(),
            },
        ] {
            t.add_rootfs_entry(&e).unwrap();
        }
        let bytes = t.finish().unwrap();
        let es = entries(&bytes);
        assert_eq!(es[0].0, "etc/");
        assert_eq!(es[1].2, 0o755, "suid stripped from a file");
        assert_eq!(es[2].2, 0o1777, "sticky kept on /tmp");
        assert_eq!(es[3].1, tar::EntryType::Symlink);
        assert!(es.iter().all(|e| e.3 == 1));
    }

    #[test]
    fn long_names_use_pax() {
        let long = format!("/opt/{}/file", "d".repeat(150));
        let target = format!("/nix/store/{}", "t".repeat(120));
        let mut t = LayerTar::new(Vec::new(), 1);
        t.add_rootfs_entry(&RootfsEntry::Symlink {
            path: long.clone(),
            target: target.clone(),
        })
        .unwrap();
        let bytes = t.finish().unwrap();
        // The raw stream holds an 'x' header; the reader reassembles the names.
        assert_eq!(bytes[156], b'x');
        let es = entries(&bytes);
        assert_eq!(es.len(), 1);
        assert_eq!(es[0].0, &long[1..]);
        assert_eq!(es[0].4.as_deref(), Some(target.as_str()));
    }

    #[test]
    fn symlink_escape_rules() {
        assert!(!symlink_escapes("nix/store/x-a/lib/libz.so", "libz.so.1"));
        assert!(!symlink_escapes("nix/store/x-a/lib/l", "../../y-b/lib/l"));
        assert!(!symlink_escapes(
            "nix/store/x-a/lib/l",
            "../../../../etc/passwd"
        ));
        assert!(symlink_escapes(
            "nix/store/x-a/lib/l",
            "../../../../../etc/passwd"
        ));
        assert!(!symlink_escapes("bin/sh", "/nix/store/x/bin/busybox"));
    }

    #[test]
    fn hard_links_do_not_change_the_layer() {
        // The same tree, once with a hard-linked pair (what `nix-store
        // --optimise` leaves) and once with two copies: the same bytes.
        let layer = |linked: bool| {
            let root = tempfile::tempdir().unwrap();
            let top = root.path().join("pkg");
            fs::create_dir_all(&top).unwrap();
            fs::write(top.join("a"), b"same").unwrap();
            if linked {
                fs::hard_link(top.join("a"), top.join("b")).unwrap();
            } else {
                fs::write(top.join("b"), b"same").unwrap();
            }
            let mut t = LayerTar::new(Vec::new(), 7);
            t.add_tree(&top, "pkg").unwrap();
            t.finish().unwrap()
        };
        let linked = layer(true);
        assert_eq!(linked, layer(false));
        assert!(entries(&linked).iter().all(|e| e.1 != tar::EntryType::Link));
    }

    #[test]
    fn tree_walk_is_sorted_stripped_and_symlinks_kept() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("pkg");
        fs::create_dir_all(top.join("bin")).unwrap();
        fs::write(top.join("bin/b"), b"bb").unwrap();
        fs::write(top.join("bin/a"), b"aaa").unwrap();
        fs::set_permissions(top.join("bin/a"), fs::Permissions::from_mode(0o6755)).unwrap();
        fs::hard_link(top.join("bin/b"), top.join("bin/c")).unwrap();
        std::os::unix::fs::symlink("a", top.join("bin/link")).unwrap();
        let mut t = LayerTar::new(Vec::new(), 42);
        t.add_tree(&top, "pkg").unwrap();
        let es = entries(&t.finish().unwrap());
        let names: Vec<_> = es.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "pkg/",
                "pkg/bin/",
                "pkg/bin/a",
                "pkg/bin/b",
                "pkg/bin/c",
                "pkg/bin/link"
            ]
        );
        assert_eq!(es[2].2, 0o555, "setuid/setgid gone, executable kept");
        assert_eq!(es[3].2, 0o444);
        // the hard link to b is a file of its own
        assert_eq!(es[4].1, tar::EntryType::Regular);
        assert_eq!(es[4].2, 0o444);
    }

    #[test]
    fn fifos_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("f");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let mut t = LayerTar::new(Vec::new(), 1);
        let e = t.add_tree(&fifo, "f").unwrap_err();
        assert!(e.to_string().contains("a FIFO is not allowed"), "{e}");
    }

    #[test]
    fn layer_blobs_are_reproducible_and_hash_correctly() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let entries = vec![RootfsEntry::File {
            path: "/etc/x".into(),
            mode: 0o644,
            data: vec![7; 5000],
        }];
        for c in [
            Compression::default(),
            Compression::Zstd { level: 3 },
            Compression::None,
        ] {
            let a = write_layer(&store, &LayerContent::Rootfs(&entries), c, 1).unwrap();
            let b = write_layer(&store, &LayerContent::Rootfs(&entries), c, 1).unwrap();
            assert_eq!(a, b);
            let blob = store.read(&a.digest).unwrap();
            assert_eq!(Digest::of(&blob), a.digest);
            assert_eq!(blob.len() as u64, a.size);
            let tar = match c {
                Compression::Gzip { .. } => {
                    let mut v = Vec::new();
                    flate2::read::GzDecoder::new(&blob[..])
                        .read_to_end(&mut v)
                        .unwrap();
                    v
                }
                Compression::Zstd { .. } => zstd::decode_all(&blob[..]).unwrap(),
                Compression::None => blob.clone(),
            };
            assert_eq!(Digest::of(&tar), a.diff_id);
        }
    }
}

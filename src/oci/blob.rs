//! Content-addressed blob storage (`blobs/sha256/<hex>`) with writes that are
//! hashed on the fly and land atomically: temp file in the same directory,
//! fsync, rename. A crash leaves at most a `.tmp-*` file, which the next run
//! removes; a blob under its digest name is always complete.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::digest::{Digest, HashingWriter};

pub use crate::base::fs::{write_atomic, TEMP_PREFIX};

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

/// A blob that has been written: its digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBlob {
    pub digest: Digest,
    pub size: u64,
}

impl BlobStore {
    /// Opens (creating if needed) `<root>/blobs/sha256`.
    pub fn open(root: &Path) -> io::Result<BlobStore> {
        let dir = root.join("blobs").join("sha256");
        fs::create_dir_all(&dir)?;
        Ok(BlobStore { dir })
    }

    /// A store at `dir` (which need not exist yet).
    pub fn at(dir: PathBuf) -> BlobStore {
        BlobStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    pub fn writer(&self) -> io::Result<BlobWriter> {
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)?;
        Ok(BlobWriter {
            inner: HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp)),
            dir: self.dir.clone(),
        })
    }

    pub fn put(&self, bytes: &[u8]) -> io::Result<WrittenBlob> {
        let d = Digest::of(bytes);
        if self.contains(&d) {
            return Ok(WrittenBlob {
                digest: d,
                size: bytes.len() as u64,
            });
        }
        let mut w = self.writer()?;
        w.write_all(bytes)?;
        w.finish()
    }

    pub fn read(&self, d: &Digest) -> io::Result<Vec<u8>> {
        fs::read(self.path(d))
    }

    /// Removes temp files left by an interrupted run.
    pub fn remove_leftovers(&self) -> io::Result<usize> {
        let mut n = 0;
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Re-hashes a blob; `Ok(false)` on a mismatch.
    pub fn verify(&self, d: &Digest) -> io::Result<bool> {
        Ok(&hash_file(&self.path(d))? == d)
    }

    pub fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

pub fn hash_file(path: &Path) -> io::Result<Digest> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest::from_sha256(h))
}

/// Writes one blob; the digest is known only at [`BlobWriter::finish`].
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    dir: PathBuf,
}

impl BlobWriter {
    /// Flushes, fsyncs and renames the blob to its digest name.
    pub fn finish(self) -> io::Result<WrittenBlob> {
        let (buf, digest, size) = self.inner.finish();
        let tmp = buf.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        let dest = self.dir.join(digest.hex());
        // Blobs are content-addressed: an existing one with this name holds
        // the same bytes (fsck catches one that does not).
        if dest.is_file() {
            drop(tmp);
        } else {
            tmp.persist(&dest).map_err(|e| e.error)?;
        }
        Ok(WrittenBlob { digest, size })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_content_addressed_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let b = store.put(b"layer bytes").unwrap();
        assert_eq!(b.digest, Digest::of(b"layer bytes"));
        assert_eq!(store.read(&b.digest).unwrap(), b"layer bytes");
        assert!(store.verify(&b.digest).unwrap());
        fs::write(store.path(&b.digest), b"tampered").unwrap();
        assert!(!store.verify(&b.digest).unwrap());
    }

    #[test]
    fn leftovers_are_removed_and_unfinished_writes_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.writer().unwrap();
        w.write_all(b"half").unwrap();
        std::mem::forget(w); // as if killed: the temp file stays
        fs::write(store.dir().join(".tmp-crashed"), b"x").unwrap();
        assert!(store.remove_leftovers().unwrap() >= 1);
        assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 0);
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.json");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

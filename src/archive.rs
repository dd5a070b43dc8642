//! Output formats besides the OCI layout, and their readers.
//!
//! - `oci-archive`: a tar of an OCI image layout that holds the one image
//!   (`skopeo copy oci-archive:…`). SBOMs and signatures stay in the
//!   layout: an index with several entries needs a reference to be read.
//! - `docker-archive`: `docker save`'s format: `manifest.json` (Config,
//!   RepoTags, Layers), the config as `<hex>.json` and each layer as an
//!   uncompressed `<diff_id hex>/layer.tar`, for `docker load`/`podman load`.
//!   The recipe's healthcheck, which the OCI config cannot hold, goes into
//!   the config's Docker `Healthcheck` field.
//!
//! Archives are written from the layout's blobs in one pass, each blob
//! verified against its digest (and each layer against its diff_id) while
//! it is copied. They are deterministic: sorted entries, the mtime given
//! (`SOURCE_DATE_EPOCH`), uid/gid 0, no user names. They land atomically:
//! a temp file beside the destination, fsync, rename.
//!
//! The readers turn a docker archive or an OCI archive back into an OCI
//! layout, so `report` and `compat` read every upstream the same way.

use crate::oci::media_types::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::oci::blob::BlobStore;
use crate::oci::decode::{capped, decompressor, normalize_entry, Limits};
use crate::oci::digest::{Digest, HashingReader, HashingWriter};
use crate::oci::layout::{Descriptor, Index, Layout, LayoutError, Manifest, MAX_JSON_BLOB};
use crate::oci::{
    ANNOTATION_REF_NAME, MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD, MEDIA_TYPE_MANIFEST,
};

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// What `build --format` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// The OCI image layout directory `<out>/<image>-<tier>` (always written).
    #[default]
    Oci,
    /// Also `<out>/<image>-<tier>.oci.tar`, a tar of an OCI layout.
    OciArchive,
    /// Also `<out>/<image>-<tier>.docker.tar`, for `docker load` / `podman load`.
    DockerArchive,
}

impl OutputFormat {
    /// Where the archive of `layout_dir` goes; `None` for the layout itself.
    pub fn archive_path(self, layout_dir: &Path) -> Option<PathBuf> {
        let ext = match self {
            OutputFormat::Oci => return None,
            OutputFormat::OciArchive => "oci.tar",
            OutputFormat::DockerArchive => "docker.tar",
        };
        let name = layout_dir.file_name()?.to_string_lossy().into_owned();
        Some(layout_dir.with_file_name(format!("{name}.{ext}")))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WrittenArchive {
    pub format: OutputFormat,
    pub path: PathBuf,
    /// sha256 of the archive file.
    pub digest: Digest,
    pub size: u64,
    /// The tag a docker archive loads as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_tag: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("{}: not a {kind}: {message}", path.display())]
    NotAnArchive {
        path: PathBuf,
        kind: &'static str,
        message: String,
    },
    #[error("{}: entry `{entry}`: {reason}", path.display())]
    Unsafe {
        path: PathBuf,
        entry: String,
        reason: String,
    },
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the archive `format` asks for, of the image `reference` in
/// `layout_dir`, to `dest`. `repo_tag` names a docker archive's image.
pub fn write_archive(
    layout_dir: &Path,
    reference: Option<&str>,
    format: OutputFormat,
    dest: &Path,
    repo_tag: &str,
    mtime: u64,
) -> Result<Option<WrittenArchive>, ArchiveError> {
    let (digest, size) = match format {
        OutputFormat::Oci => return Ok(None),
        OutputFormat::OciArchive => {
            atomic_tar(dest, mtime, |t| oci_archive(t, layout_dir, reference))?
        }
        OutputFormat::DockerArchive => atomic_tar(dest, mtime, |t| {
            docker_archive(t, layout_dir, reference, repo_tag, dest)
        })?,
    };
    Ok(Some(WrittenArchive {
        format,
        path: dest.to_path_buf(),
        digest,
        size,
        repo_tag: (format == OutputFormat::DockerArchive).then(|| repo_tag.to_string()),
    }))
}

/// A deterministic tar stream that hashes what it writes.
struct TarOut<W: Write> {
    b: tar::Builder<HashingWriter<W>>,
    mtime: u64,
}

impl<W: Write> TarOut<W> {
    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_size(size);
        h
    }

    fn dir(&mut self, name: &str) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Directory, 0o755, 0);
        self.b.append_data(&mut h, name, io::empty())
    }

    fn bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.b.append_data(&mut h, name, data)
    }

    /// Appends `size` bytes of `data`; the caller checks what was read.
    fn stream(&mut self, name: &str, size: u64, data: impl Read) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Regular, 0o644, size);
        self.b.append_data(&mut h, name, data.take(size))
    }
}

/// Writes a tar to a temp file beside `dest` and renames it into place.
fn atomic_tar(
    dest: &Path,
    mtime: u64,
    body: impl FnOnce(&mut TarOut<io::BufWriter<&File>>) -> Result<(), ArchiveError>,
) -> Result<(Digest, u64), ArchiveError> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_at(dir))?;
    let (digest, size) = {
        let mut t = TarOut {
            b: tar::Builder::new(HashingWriter::new(io::BufWriter::new(tmp.as_file()))),
            mtime,
        };
        body(&mut t)?;
        let w = t.b.into_inner().map_err(io_at(dest))?;
        let (mut buf, digest, size) = w.finish();
        buf.flush().map_err(io_at(dest))?;
        (digest, size)
    };
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_at(dest))?;
    }
    tmp.as_file().sync_all().map_err(io_at(dest))?;
    tmp.persist(dest).map_err(|e| io_at(dest)(e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    Ok((digest, size))
}

fn check_copied(path: &Path, d: &Descriptor, got: (Digest, u64)) -> Result<(), ArchiveError> {
    if got.1 != d.size || got.0 != d.digest {
        return Err(ArchiveError::Corrupt {
            path: path.to_path_buf(),
            message: format!(
                "blob holds {} bytes hashing to {}, the descriptor says {} bytes, {}",
                got.1, got.0, d.size, d.digest
            ),
        });
    }
    Ok(())
}

fn oci_archive<W: Write>(
    t: &mut TarOut<W>,
    layout_dir: &Path,
    reference: Option<&str>,
) -> Result<(), ArchiveError> {
    let layout = Layout::open(layout_dir)?;
    let img = layout.load_image(reference)?;
    // A multi-platform image travels whole: the index and every child.
    let images = match &img.index {
        None => vec![img.clone()],
        Some(i) => i
            .index
            .manifests
            .iter()
            .map(|c| layout.load_image(Some(c.digest.as_str())))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let mut blobs: BTreeMap<String, Descriptor> = BTreeMap::new();
    for i in &images {
        for d in std::iter::once(&i.descriptor)
            .chain(std::iter::once(&i.manifest.config))
            .chain(&i.manifest.layers)
        {
            blobs.insert(d.digest.hex().to_string(), d.clone());
        }
    }
    // The archive holds the image only, so its entry names no attachments.
    let mut top = img.top().clone();
    top.annotations
        .remove(crate::oci::attachments::ANNOTATION_ATTACHMENTS);
    blobs.insert(top.digest.hex().to_string(), top.clone());
    let index = Index {
        manifests: vec![top],
        ..Index::default()
    };
    let w = |e| io_at(layout_dir)(e);
    t.dir("blobs/").map_err(w)?;
    t.dir("blobs/sha256/").map_err(w)?;
    for (hex, d) in &blobs {
        let path = layout.blobs().path(&d.digest);
        let f = File::open(&path).map_err(io_at(&path))?;
        let mut r = HashingReader::new(BufReader::with_capacity(1 << 20, f));
        t.stream(&format!("blobs/sha256/{hex}"), d.size, &mut r)
            .map_err(io_at(&path))?;
        check_copied(&path, d, r.finish())?;
    }
    t.bytes("index.json", &crate::base::json::canonical(&index))
        .map_err(w)?;
    t.bytes("oci-layout", OCI_LAYOUT).map_err(w)?;
    Ok(())
}

/// `manifest.json` of `docker save`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerManifestEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

fn docker_archive<W: Write>(
    t: &mut TarOut<W>,
    layout_dir: &Path,
    reference: Option<&str>,
    repo_tag: &str,
    dest: &Path,
) -> Result<(), ArchiveError> {
    let layout = Layout::open(layout_dir)?;
    // docker save's format holds one platform: of an index, this machine's.
    let img = layout.load_image(reference)?;
    if let Some(p) = img.index.as_ref().and(img.descriptor.platform.as_ref()) {
        tracing::info!(
            "{}: a docker archive holds one platform; writing {}",
            dest.display(),
            crate::platform::display(p)
        );
    }
    let config_path = layout.blobs().path(&img.manifest.config.digest);
    let diff_ids: Vec<Digest> = img
        .config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if diff_ids.len() != img.manifest.layers.len() {
        return Err(ArchiveError::Corrupt {
            path: config_path,
            message: format!(
                "the config lists {} diff_ids for {} layers",
                diff_ids.len(),
                img.manifest.layers.len()
            ),
        });
    }
    let config_bytes =
        docker_config(&img.config_bytes, &img.manifest.annotations).map_err(|message| {
            ArchiveError::Corrupt {
                path: config_path.clone(),
                message,
            }
        })?;
    let config_name = format!("{}.json", Digest::of(&config_bytes).hex());
    // Uncompressed layers land in temp files first: a tar entry needs its
    // size up front, and this is where each layer meets its diff_id.
    let tmp_dir = dest.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp_dir = tmp_dir.unwrap_or(Path::new("."));
    let mut layers: BTreeMap<String, (tempfile::NamedTempFile, u64)> = BTreeMap::new();
    let mut layer_names = Vec::new();
    for (d, diff_id) in img.manifest.layers.iter().zip(&diff_ids) {
        let name = format!("{}/layer.tar", diff_id.hex());
        layer_names.push(name.clone());
        if layers.contains_key(&name) {
            continue;
        }
        let path = layout.blobs().path(&d.digest);
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(tmp_dir)
            .map_err(io_at(tmp_dir))?;
        let f = File::open(&path).map_err(io_at(&path))?;
        let mut raw = HashingReader::new(BufReader::with_capacity(1 << 20, f));
        let (got, n) = {
            let dec = decompressor(&d.media_type, &mut raw)
                .map_err(io_at(&path))?
                .ok_or_else(|| ArchiveError::Corrupt {
                    path: path.clone(),
                    message: format!("unsupported layer media type `{}`", d.media_type),
                })?;
            let mut dec = capped(dec, Limits::for_blob(d.size).max_bytes);
            let mut w = HashingWriter::new(io::BufWriter::new(tmp.as_file_mut()));
            io::copy(&mut dec, &mut w).map_err(io_at(&path))?;
            let (mut buf, got, n) = w.finish();
            buf.flush().map_err(io_at(tmp_dir))?;
            (got, n)
        };
        io::copy(&mut raw, &mut io::sink()).map_err(io_at(&path))?;
        check_copied(&path, d, raw.finish())?;
        if &got != diff_id {
            return Err(ArchiveError::Corrupt {
                path,
                message: format!(
                    "uncompressed, the layer hashes to {got}, not its diff_id {diff_id}"
                ),
            });
        }
        tmp.as_file_mut().rewind().map_err(io_at(tmp_dir))?;
        layers.insert(name, (tmp, n));
    }
    let manifest = vec![DockerManifestEntry {
        config: config_name.clone(),
        repo_tags: Some(vec![repo_tag.to_string()]),
        layers: layer_names,
    }];
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
    // Sorted names: layer directories and the config (hex), then manifest.json.
    let mut entries: BTreeMap<String, Option<&mut (tempfile::NamedTempFile, u64)>> =
        BTreeMap::new();
    for (name, l) in layers.iter_mut() {
        if let Some((dir, _)) = name.split_once('/') {
            entries.insert(format!("{dir}/"), None);
        }
        entries.insert(name.clone(), Some(l));
    }
    entries.insert(config_name.clone(), None);
    entries.insert("manifest.json".into(), None);
    let w = |e| io_at(dest)(e);
    for (name, layer) in entries {
        match layer {
            Some((tmp, size)) => {
                let mut r = HashingReader::new(BufReader::new(tmp.as_file_mut()));
                t.stream(&name, *size, &mut r).map_err(w)?;
                if r.finish().1 != *size {
                    return Err(ArchiveError::Corrupt {
                        path: dest.to_path_buf(),
                        message: format!("{name} changed while it was archived"),
                    });
                }
            }
            None if name.ends_with('/') => t.dir(&name).map_err(w)?,
            None if name == config_name => t.bytes(&name, &config_bytes).map_err(w)?,
            None => t.bytes(&name, &manifest_bytes).map_err(w)?,
        }
    }
    Ok(())
}

/// The OCI config with the healthcheck annotation moved into Docker's
/// `config.Healthcheck` (durations in nanoseconds).
fn docker_config(config: &[u8], annotations: &BTreeMap<String, String>) -> Result<Vec<u8>, String> {
    let Some(h) = annotations.get(ANNOTATION_HEALTHCHECK) else {
        return Ok(config.to_vec());
    };
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Hc {
        test: Vec<String>,
        interval: Option<String>,
        timeout: Option<String>,
        start_period: Option<String>,
        retries: Option<u32>,
    }
    let hc: Hc = serde_json::from_str(h).map_err(|e| format!("{ANNOTATION_HEALTHCHECK}: {e}"))?;
    let mut v: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| format!("config: {e}"))?;
    let mut d = serde_json::Map::new();
    d.insert("Test".into(), serde_json::json!(hc.test));
    for (k, val) in [
        ("Interval", &hc.interval),
        ("Timeout", &hc.timeout),
        ("StartPeriod", &hc.start_period),
    ] {
        if let Some(s) = val {
            d.insert(k.into(), serde_json::json!(parse_duration_ns(s)?));
        }
    }
    if let Some(r) = hc.retries {
        d.insert("Retries".into(), serde_json::json!(r));
    }
    let cfg = v
        .as_object_mut()
        .ok_or("config is not an object")?
        .entry("config")
        .or_insert_with(|| serde_json::json!({}));
    cfg.as_object_mut()
        .ok_or("config.config is not an object")?
        .insert("Healthcheck".into(), serde_json::Value::Object(d));
    Ok(crate::base::json::canonical(&v))
}

/// Go's duration syntax (`30s`, `1m30s`, `500ms`) in nanoseconds.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a duration such as 30s, 1m30s or 500ms");
    let mut total: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let num: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = total.saturating_add((num * scale).round() as u64);
    }
    Ok(total)
}

/// What kind of archive a file is, from its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Oci,
    Docker,
}

/// Looks into a tar for `oci-layout` (an OCI archive) or `manifest.json`
/// (a docker archive; newer `docker save` writes both, and its
/// `manifest.json` is the one to read then).
pub fn sniff(path: &Path) -> Result<ArchiveKind, ArchiveError> {
    let f = File::open(path).map_err(io_at(path))?;
    let mut a = tar::Archive::new(BufReader::new(f));
    let not = |message: String| ArchiveError::NotAnArchive {
        path: path.to_path_buf(),
        kind: "docker or OCI archive",
        message,
    };
    let mut oci = false;
    for e in a.entries().map_err(|e| not(e.to_string()))? {
        let e = e.map_err(|e| not(e.to_string()))?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        match name.trim_start_matches("./") {
            "manifest.json" => return Ok(ArchiveKind::Docker),
            "oci-layout" => oci = true,
            _ => {}
        }
    }
    if oci {
        Ok(ArchiveKind::Oci)
    } else {
        Err(not("it has neither manifest.json nor oci-layout".into()))
    }
}

/// Safe relative name of an archive entry: no `..`, no absolute paths.
fn entry_name(path: &Path, raw: &[u8]) -> Result<String, ArchiveError> {
    let name = String::from_utf8_lossy(raw).into_owned();
    match normalize_entry(&name) {
        Ok(abs) => Ok(abs.trim_start_matches('/').to_string()),
        Err(reason) => Err(ArchiveError::Unsafe {
            path: path.to_path_buf(),
            entry: name,
            reason,
        }),
    }
}

/// Unpacks an OCI archive into `dest` (which must be empty or absent).
/// Only regular files and directories are taken; links are refused.
pub fn extract_oci_archive(path: &Path, dest: &Path) -> Result<(), ArchiveError> {
    let f = File::open(path).map_err(io_at(path))?;
    let mut a = tar::Archive::new(BufReader::new(f));
    fs::create_dir_all(dest).map_err(io_at(dest))?;
    for e in a.entries().map_err(io_at(path))? {
        let mut e = e.map_err(io_at(path))?;
        let name = entry_name(path, &e.path_bytes())?;
        if name.is_empty() {
            continue;
        }
        let target = dest.join(&name);
        match e.header().entry_type() {
            tar::EntryType::Directory => fs::create_dir_all(&target).map_err(io_at(&target))?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_at(parent))?;
                }
                let mut out = File::create(&target).map_err(io_at(&target))?;
                io::copy(&mut e, &mut out).map_err(io_at(&target))?;
            }
            tar::EntryType::XHeader | tar::EntryType::XGlobalHeader => {}
            other => {
                return Err(ArchiveError::Unsafe {
                    path: path.to_path_buf(),
                    entry: name,
                    reason: format!("{other:?} entries are not expected in an OCI archive"),
                })
            }
        }
    }
    if !dest.join("oci-layout").is_file() {
        return Err(ArchiveError::NotAnArchive {
            path: path.to_path_buf(),
            kind: "OCI archive",
            message: "no oci-layout file".into(),
        });
    }
    Ok(())
}

/// Imports a docker archive as an OCI layout at `dest`; returns the
/// reference (the first RepoTag's tag, else `latest`) it is stored under.
pub fn import_docker_archive(path: &Path, dest: &Path) -> Result<String, ArchiveError> {
    let not = |message: String| ArchiveError::NotAnArchive {
        path: path.to_path_buf(),
        kind: "docker archive",
        message,
    };
    // Pass 1: manifest.json, wherever it is in the tar.
    let entries: Vec<DockerManifestEntry> = {
        let f = File::open(path).map_err(io_at(path))?;
        let mut a = tar::Archive::new(BufReader::new(f));
        let mut found = None;
        for e in a.entries().map_err(|e| not(e.to_string()))? {
            let e = e.map_err(|e| not(e.to_string()))?;
            if entry_name(path, &e.path_bytes())? == "manifest.json" {
                let mut buf = Vec::new();
                e.take(MAX_JSON_BLOB + 1)
                    .read_to_end(&mut buf)
                    .map_err(io_at(path))?;
                if buf.len() as u64 > MAX_JSON_BLOB {
                    return Err(not("manifest.json is too large".into()));
                }
                found = Some(
                    serde_json::from_slice(&buf).map_err(|e| not(format!("manifest.json: {e}")))?,
                );
                break;
            }
        }
        found.ok_or_else(|| not("no manifest.json".into()))?
    };
    let entry = match entries.as_slice() {
        [one] => one.clone(),
        [] => return Err(not("manifest.json lists no image".into())),
        _ => {
            return Err(not(format!(
                "manifest.json lists {} images; save one image per archive",
                entries.len()
            )))
        }
    };
    let layout = Layout::create(dest)?;
    // Pass 2: copy the config and layers into the blob store, hashing as
    // they go, and note each one's compression from its first bytes.
    let wanted: BTreeSet<String> = std::iter::once(entry.config.clone())
        .chain(entry.layers.iter().cloned())
        .map(|n| n.trim_start_matches("./").to_string())
        .collect();
    let mut blobs: BTreeMap<String, (Digest, u64, &'static str)> = BTreeMap::new();
    {
        let f = File::open(path).map_err(io_at(path))?;
        let mut a = tar::Archive::new(BufReader::new(f));
        for e in a.entries().map_err(io_at(path))? {
            let mut e = e.map_err(io_at(path))?;
            let name = entry_name(path, &e.path_bytes())?;
            if !wanted.contains(&name) || blobs.contains_key(&name) {
                continue;
            }
            let (digest, size, media) = copy_blob(layout.blobs(), &mut e, dest)?;
            blobs.insert(name, (digest, size, media));
        }
    }
    let get = |name: &str| {
        blobs
            .get(name.trim_start_matches("./"))
            .cloned()
            .ok_or_else(|| {
                not(format!(
                    "manifest.json names `{name}`, which the archive lacks"
                ))
            })
    };
    let (cd, cs, _) = get(&entry.config)?;
    let config = Descriptor::new(MEDIA_TYPE_CONFIG, cd, cs);
    if cs > MAX_JSON_BLOB {
        return Err(not("the config is too large".into()));
    }
    let layers = entry
        .layers
        .iter()
        .map(|l| get(l).map(|(digest, size, media_type)| Descriptor::new(media_type, digest, size)))
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.into()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    };
    let m = layout
        .blobs()
        .put(&crate::base::json::canonical(&manifest))
        .map_err(io_at(dest))?;
    let reference = entry
        .repo_tags
        .as_ref()
        .and_then(|t| t.first())
        .and_then(|t| t.rsplit_once(':'))
        .map(|(_, tag)| tag.to_string())
        .filter(|t| !t.contains('/'))
        .unwrap_or_else(|| "latest".into());
    let index = Index {
        manifests: vec![
            Descriptor::new(MEDIA_TYPE_MANIFEST, m.digest, m.size).with_annotations(
                BTreeMap::from([(ANNOTATION_REF_NAME.to_string(), reference.clone())]),
            ),
        ],
        ..Index::default()
    };
    layout.blobs().sync_dir().map_err(io_at(dest))?;
    layout.write_index(&index)?;
    Ok(reference)
}

fn copy_blob(
    store: &BlobStore,
    r: &mut impl Read,
    dest: &Path,
) -> Result<(Digest, u64, &'static str), ArchiveError> {
    let mut w = store.writer().map_err(io_at(dest))?;
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        let n = r.read(&mut head[got..]).map_err(io_at(dest))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    w.write_all(&head[..got]).map_err(io_at(dest))?;
    io::copy(r, &mut w).map_err(io_at(dest))?;
    let b = w.finish().map_err(io_at(dest))?;
    let media = match &head[..got] {
        [0x1f, 0x8b, ..] => MEDIA_TYPE_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => MEDIA_TYPE_LAYER_ZSTD,
        _ => MEDIA_TYPE_LAYER_TAR,
    };
    Ok((b.digest, b.size, media))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tarball::{write_layer, Compression, LayerContent, RootfsEntry};

    /// A one-layer image in a fresh layout; returns the layout dir.
    fn image(dir: &Path, compression: Compression, healthcheck: bool) -> PathBuf {
        let root = dir.join("img");
        let layout = Layout::create(&root).unwrap();
        let entries = vec![RootfsEntry::File {
            path: "/etc/hello".into(),
            mode: 0o644,
            data: b"hello\n".repeat(100),
        }];
        let l = write_layer(
            layout.blobs(),
            &LayerContent::Rootfs(&entries),
            compression,
            1,
        )
        .unwrap();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"User": "65534"},
            "rootfs": {"type": "layers", "diff_ids": [l.diff_id.to_string()]},
        });
        let c = layout
            .blobs()
            .put(&crate::base::json::canonical(&config))
            .unwrap();
        let mut annotations = BTreeMap::new();
        if healthcheck {
            annotations.insert(
                ANNOTATION_HEALTHCHECK.to_string(),
                r#"{"interval":"1m30s","retries":3,"test":["CMD","/bin/probe"]}"#.to_string(),
            );
        }
        let m = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(MEDIA_TYPE_CONFIG, c.digest, c.size),
            layers: vec![Descriptor::new(
                l.media_type.clone(),
                l.digest.clone(),
                l.size,
            )],
            subject: None,
            annotations,
        };
        let mb = layout
            .blobs()
            .put(&crate::base::json::canonical(&m))
            .unwrap();
        layout
            .write_index(&Index {
                manifests: vec![Descriptor::new(MEDIA_TYPE_MANIFEST, mb.digest, mb.size)
                    .with_annotations(BTreeMap::from([(
                        ANNOTATION_REF_NAME.into(),
                        "1-x".into(),
                    )]))],
                ..Index::default()
            })
            .unwrap();
        root
    }

    fn names(tar_path: &Path) -> Vec<(String, u64, u64)> {
        let mut a = tar::Archive::new(File::open(tar_path).unwrap());
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mtime().unwrap(),
                    e.header().uid().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn oci_archive_is_deterministic_sorted_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let root = image(d.path(), Compression::default(), false);
        let a = d.path().join("a.oci.tar");
        let b = d.path().join("b.oci.tar");
        let wa = write_archive(&root, None, OutputFormat::OciArchive, &a, "x:y", 7)
            .unwrap()
            .unwrap();
        write_archive(&root, None, OutputFormat::OciArchive, &b, "x:y", 7).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
        assert_eq!(wa.digest, Digest::of(&fs::read(&a).unwrap()));
        let n = names(&a);
        let sorted: Vec<_> = {
            let mut s = n.clone();
            s.sort();
            s
        };
        assert_eq!(n, sorted);
        assert!(n.iter().all(|(_, m, u)| *m == 7 && *u == 0));
        assert_eq!(n.last().unwrap().0, "oci-layout");
        assert_eq!(sniff(&a).unwrap(), ArchiveKind::Oci);
        let out = d.path().join("x");
        extract_oci_archive(&a, &out).unwrap();
        let l = Layout::open(&out).unwrap();
        assert!(l.fsck().unwrap().is_ok());
        assert_eq!(l.load_image(Some("1-x")).unwrap().manifest.layers.len(), 1);
        // No temp file is left behind.
        assert!(fs::read_dir(d.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp-")));
    }

    #[test]
    fn docker_archive_has_uncompressed_layers_and_imports_back() {
        let d = tempfile::tempdir().unwrap();
        for c in [Compression::default(), Compression::Zstd { level: 3 }] {
            let root = image(d.path(), c, false);
            let a = d.path().join("i.docker.tar");
            write_archive(
                &root,
                None,
                OutputFormat::DockerArchive,
                &a,
                "localhost/armorred/t:1-x",
                1,
            )
            .unwrap();
            assert_eq!(sniff(&a).unwrap(), ArchiveKind::Docker);
            let n: Vec<String> = names(&a).into_iter().map(|x| x.0).collect();
            assert_eq!(n.last().unwrap(), "manifest.json");
            let src = Layout::open(&root).unwrap().load_image(None).unwrap();
            let diff = src.config["rootfs"]["diff_ids"][0].as_str().unwrap();
            assert!(n.contains(&format!("{}/layer.tar", &diff[7..])), "{n:?}");
            assert!(n.contains(&format!("{}.json", src.manifest.config.digest.hex())));
            let out = d.path().join("imported");
            let r = import_docker_archive(&a, &out).unwrap();
            assert_eq!(r, "1-x");
            let img = Layout::open(&out).unwrap().load_image(None).unwrap();
            assert_eq!(img.config_bytes, src.config_bytes);
            assert_eq!(img.manifest.layers[0].media_type, MEDIA_TYPE_LAYER_TAR);
            assert_eq!(img.manifest.layers[0].digest.as_str(), diff);
            fs::remove_dir_all(&out).unwrap();
            fs::remove_dir_all(&root).unwrap();
        }
    }

    #[test]
    fn docker_archive_carries_the_healthcheck() {
        let d = tempfile::tempdir().unwrap();
        let root = image(d.path(), Compression::None, true);
        let a = d.path().join("h.docker.tar");
        write_archive(&root, None, OutputFormat::DockerArchive, &a, "t:1", 1).unwrap();
        let out = d.path().join("imported");
        import_docker_archive(&a, &out).unwrap();
        let img = Layout::open(&out).unwrap().load_image(None).unwrap();
        let h = &img.config["config"]["Healthcheck"];
        assert_eq!(h["Test"], serde_json::json!(["CMD", "/bin/probe"]));
        assert_eq!(h["Interval"], 90_000_000_000u64);
        assert_eq!(h["Retries"], 3);
        assert_eq!(img.config["config"]["User"], "65534");
    }

    #[test]
    fn corrupt_blobs_fail_and_leave_nothing() {
        let d = tempfile::tempdir().unwrap();
        let root = image(d.path(), Compression::default(), false);
        let img = Layout::open(&root).unwrap().load_image(None).unwrap();
        let layer = Layout::open(&root)
            .unwrap()
            .blobs()
            .path(&img.manifest.layers[0].digest);
        let mut bytes = fs::read(&layer).unwrap();
        let last = bytes.len() - 12;
        bytes[last] ^= 0xff;
        fs::write(&layer, bytes).unwrap();
        for (f, name) in [
            (OutputFormat::OciArchive, "c.oci.tar"),
            (OutputFormat::DockerArchive, "c.docker.tar"),
        ] {
            let dest = d.path().join(name);
            assert!(write_archive(&root, None, f, &dest, "t:1", 1).is_err());
            assert!(!dest.exists());
        }
        assert!(fs::read_dir(d.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp-")));
    }

    #[test]
    fn hostile_archive_entries_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("evil.tar");
        {
            let mut b = tar::Builder::new(File::create(&p).unwrap());
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(0o644);
            // `append_data` refuses `..`, so write the name by hand.
            h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../oci-layout");
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
            b.finish().unwrap();
        }
        let e = extract_oci_archive(&p, &d.path().join("out")).unwrap_err();
        assert!(matches!(e, ArchiveError::Unsafe { .. }), "{e}");
        assert!(!d.path().join("oci-layout").exists());
    }

    #[test]
    fn durations_and_paths() {
        assert_eq!(parse_duration_ns("30s").unwrap(), 30_000_000_000);
        assert_eq!(parse_duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration_ns("500ms").unwrap(), 500_000_000);
        assert!(parse_duration_ns("10").is_err());
        assert!(parse_duration_ns("5d").is_err());
        assert_eq!(
            OutputFormat::DockerArchive
                .archive_path(Path::new("out/nginx-hardened"))
                .unwrap(),
            Path::new("out/nginx-hardened.docker.tar")
        );
        assert!(OutputFormat::Oci
            .archive_path(Path::new("out/nginx-hardened"))
            .is_none());
    }
}

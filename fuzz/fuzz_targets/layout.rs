//! Bytes → an OCI image layout on disk → `inspect`, `analyze` and `fsck`,
//! the commands that read layouts someone else made.
//!
//! The input is a tiny archive: sections separated by `\n%%\n`, in order
//! `index.json`, the manifest, the config, then one section per layer blob.
//! Random bytes would almost never carry a correct sha256, so the JSON
//! sections may use placeholders that the harness fills in:
//!
//! - index: `@MANIFEST@` (`sha256:…`) and `@MANIFEST_SIZE@`;
//! - manifest: `@CONFIG@`, `@CONFIG_SIZE@`, `@LAYER0@`, `@LAYER0_SIZE@`, …;
//! - config: `@DIFF_ID0@`, … (the digest of layer N's uncompressed bytes).
//!
//! A layer section starting with `gz:` or `zst:` is compressed by the
//! harness; otherwise it is stored as is. Tar header checksums are fixed up
//! before storing, so mutations reach the tar walker instead of dying at
//! the checksum. Any input may be refused with an error; none may panic,
//! hang or allocate without bound.
#![no_main]

use std::fs;
use std::io::Write;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const SEP: &[u8] = b"\n%%\n";
const MAX_LAYERS: usize = 4;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn split<'a>(mut data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = data.windows(sep.len()).position(|w| w == sep) {
        out.push(&data[..i]);
        data = &data[i + sep.len()..];
    }
    out.push(data);
    out
}

fn replace(haystack: &[u8], from: &str, to: &str) -> Vec<u8> {
    let from = from.as_bytes();
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to.as_bytes());
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Rewrites each tar header's checksum so the header parses; stops where
/// the walk loses track (a zero block, an unparsable size).
fn fix_tar_checksums(tar: &mut [u8]) {
    let mut off = 0usize;
    while off + 512 <= tar.len() {
        let block = &mut tar[off..off + 512];
        if block.iter().all(|&b| b == 0) {
            return;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let Ok(size) = tar::Header::from_byte_slice(block).entry_size() else {
            return;
        };
        let Some(next) = size
            .checked_next_multiple_of(512)
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| s.checked_add(off + 512))
        else {
            return;
        };
        off = next;
    }
}

/// `(stored blob, uncompressed bytes)` for one layer section.
fn layer_blob(section: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (kind, body) = if let Some(b) = section.strip_prefix(b"gz:") {
        ("gz", b)
    } else if let Some(b) = section.strip_prefix(b"zst:") {
        ("zst", b)
    } else {
        ("", section)
    };
    let mut tar = body.to_vec();
    fix_tar_checksums(&mut tar);
    let blob = match kind {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).expect("in memory");
            e.finish().expect("in memory")
        }
        "zst" => zstd::encode_all(&tar[..], 1).expect("in memory"),
        _ => tar.clone(),
    };
    (blob, tar)
}

fn put_blob(root: &Path, bytes: &[u8]) -> String {
    let d = digest(bytes);
    fs::write(root.join("blobs/sha256").join(&d[7..]), bytes).expect("temp dir is writable");
    d
}

fuzz_target!(|data: &[u8]| {
    let sections = split(data, SEP);
    let [index, manifest, config, layers @ ..] = &sections[..] else {
        return;
    };
    if layers.len() > MAX_LAYERS {
        return;
    }
    // tmpfs when there is one: each input is a fresh layout on disk.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    let root = dir.path();
    fs::create_dir_all(root.join("blobs/sha256")).expect("temp dir is writable");
    fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("temp dir is writable");

    let mut manifest = manifest.to_vec();
    let mut config = config.to_vec();
    for (i, section) in layers.iter().enumerate() {
        let (blob, tar) = layer_blob(section);
        let d = put_blob(root, &blob);
        manifest = replace(&manifest, &format!("@LAYER{i}@"), &d);
        manifest = replace(
            &manifest,
            &format!("@LAYER{i}_SIZE@"),
            &blob.len().to_string(),
        );
        config = replace(&config, &format!("@DIFF_ID{i}@"), &digest(&tar));
    }
    let config_digest = put_blob(root, &config);
    manifest = replace(&manifest, "@CONFIG@", &config_digest);
    manifest = replace(&manifest, "@CONFIG_SIZE@", &config.len().to_string());
    let manifest_digest = put_blob(root, &manifest);
    let index = replace(index, "@MANIFEST@", &manifest_digest);
    let index = replace(&index, "@MANIFEST_SIZE@", &manifest.len().to_string());
    fs::write(root.join("index.json"), &index).expect("temp dir is writable");

    // ARMORRED_FUZZ_DEBUG=1 shows what each reader made of an input, to
    // check that a seed gets as deep as it should.
    let debug = std::env::var_os("ARMORRED_FUZZ_DEBUG").is_some();
    match armorred::inspect::inspect(root, None) {
        Ok(r) => {
            let _ = armorred::inspect::render(&r);
        }
        Err(e) if debug => eprintln!("inspect: {e}"),
        Err(_) => {}
    }
    match armorred::layout_analysis::analyze_layout(root, None) {
        Ok(a) => {
            let text = armorred::layout_analysis::render(&a);
            if debug {
                eprintln!("analyze: ok\n{text}");
            }
        }
        Err(e) if debug => eprintln!("analyze: {e:#}"),
        Err(_) => {}
    }
    if let Ok(layout) = armorred::oci::layout::Layout::open(root) {
        let report = layout.fsck();
        if debug {
            eprintln!("fsck: {report:?}");
        }
    }
});

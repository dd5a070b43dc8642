//! Hostile upstream images given to the real binary's `report --upstream`,
//! as an OCI layout directory or an OCI archive, built here byte for byte.
//! Each is refused with exit 2 (bad input) by the one layer reader, with a
//! message naming the layer and the culprit: an entry that climbs with
//! `..`, a decompression bomb under a path the package-database reader
//! skips, and a layer whose bytes do not match its digest. A well-formed
//! upstream whose layers carry Docker's zstd media type is read, so the
//! refusals are the hostile parts' doing.
//!
//! `report` compares the upstream with the image's two tiers in `--out`;
//! here those are small hand-written layouts, so no Nix build is needed.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::common::{Run, TestContext};
use serde_json::json;
use sha2::{Digest as _, Sha256};

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const MT_DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// What the reader lets any layer decompress to, whatever its ratio
/// (`oci::decode::RATIO_FLOOR`); the bomb below goes past it.
const RATIO_FLOOR: u64 = 1 << 30;

const DPKG_STATUS: &[u8] = b"Package: base-files\nStatus: install ok installed\nVersion: 12.4\n\n\
Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A tar entry written by hand: the tar crate refuses the names needed here.
fn raw_entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut v = h.as_bytes().to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().next_multiple_of(512), 0);
    v
}

/// Appends a regular file to `tar`.
fn file<W: Write>(tar: &mut tar::Builder<W>, name: &str, size: u64, data: impl Read) {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    tar.append_data(&mut h, name, data).unwrap();
}

/// An upstream-like root filesystem: a dpkg database and os-release.
fn debian_like<W: Write>(tar: &mut tar::Builder<W>) {
    file(
        tar,
        "var/lib/dpkg/status",
        DPKG_STATUS.len() as u64,
        DPKG_STATUS,
    );
    let os = b"ID=debian\nVERSION_ID=12\n";
    file(tar, "etc/os-release", os.len() as u64, &os[..]);
}

fn debian_like_tar() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    debian_like(&mut tar);
    tar.into_inner().unwrap()
}

/// One layer: its media type, its blob and the diff_id the config lists.
struct Layer {
    media_type: &'static str,
    blob: Vec<u8>,
    diff_id: String,
}

impl Layer {
    fn tar(tar: Vec<u8>) -> Layer {
        Layer {
            media_type: MT_LAYER_TAR,
            diff_id: sha256(&tar),
            blob: tar,
        }
    }

    fn zstd(media_type: &'static str, tar: &[u8]) -> Layer {
        Layer {
            media_type,
            blob: zstd::encode_all(tar, 3).unwrap(),
            diff_id: sha256(tar),
        }
    }
}

/// Writes an OCI image layout holding one image of `layers` to `root`;
/// returns the layers' digests.
fn write_layout(root: &Path, layers: &[Layer]) -> Vec<String> {
    let blobs = root.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        fs::write(blobs.join(&d[7..]), bytes).unwrap();
        d
    };
    let digests: Vec<String> = layers.iter().map(|l| put(&l.blob)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "65534"},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>(),
        },
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": put(&config), "size": config.len()},
        "layers": layers.iter().zip(&digests).map(|(l, d)| json!({
            "mediaType": l.media_type, "digest": d, "size": l.blob.len(),
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": MT_MANIFEST, "digest": put(&manifest), "size": manifest.len()}],
    });
    fs::write(root.join("index.json"), index.to_string()).unwrap();
    digests
}

/// A test directory whose `out/` holds both tiers of the image `app`
/// (scratch-like: one file), ready for `report app --upstream …`.
fn with_tiers() -> TestContext {
    let ctx = TestContext::new();
    let mut tar = tar::Builder::new(Vec::new());
    let passwd = b"nobody:x:65534:65534::/:/sbin/nologin\n";
    file(&mut tar, "etc/passwd", passwd.len() as u64, &passwd[..]);
    let tar = tar.into_inner().unwrap();
    for tier in ["hardened", "locked"] {
        write_layout(
            &ctx.path().join(format!("out/app-{tier}")),
            &[Layer::tar(tar.clone())],
        );
    }
    ctx
}

fn report(ctx: &TestContext, upstream: &Path) -> Run {
    let upstream = upstream.to_str().unwrap();
    ctx.run(&[
        "report",
        "app",
        "--out",
        "out",
        "--upstream",
        upstream,
        "--format",
        "json",
    ])
}

/// Asserts exit 2 and that stderr holds every one of `needles`.
fn refused(r: &Run, needles: &[&str]) {
    assert_eq!(r.code(), 2, "{}", r.describe());
    for n in needles {
        assert!(
            r.stderr().contains(n),
            "stderr lacks `{n}`\n{}",
            r.describe()
        );
    }
}

/// A tar of the layout at `root`, as `skopeo copy oci-archive:` writes one.
fn oci_archive(root: &Path, dest: &Path) -> PathBuf {
    let mut tar = tar::Builder::new(fs::File::create(dest).unwrap());
    tar.append_dir_all(".", root).unwrap();
    tar.finish().unwrap();
    dest.to_path_buf()
}

#[test]
fn a_well_formed_upstream_with_docker_zstd_layers_is_read() {
    let ctx = with_tiers();
    let up = ctx.path().join("upstream");
    let tar = debian_like_tar();
    write_layout(&up, &[Layer::zstd(MT_DOCKER_LAYER_ZSTD, &tar)]);
    let r = report(&ctx, &up);
    assert_eq!(r.code(), 0, "{}", r.describe());
    let report = r.json();
    let u = &report["columns"][0];
    assert_eq!(u["role"], "upstream", "{report:#}");
    let names: Vec<&str> = u["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["base-files", "libc6"], "{report:#}");
    assert_eq!(u["base_image"], "debian:12");
    assert_eq!(u["uncompressed_size"], tar.len() as u64);
}

#[test]
fn an_entry_climbing_out_with_dotdot_is_refused() {
    let ctx = with_tiers();
    let up = ctx.path().join("upstream");
    let mut tar = debian_like_tar();
    // Before the end-of-archive marker the tar crate wrote.
    tar.truncate(tar.len() - 1024);
    tar.extend(raw_entry("../x", b"outside"));
    tar.extend_from_slice(&[0; 1024]);
    let layers = write_layout(&up, &[Layer::tar(tar)]);
    let needles = [layers[0].as_str(), "`../x`", "`..` in an entry name"];
    refused(&report(&ctx, &up), &needles);
    // The same image as an OCI archive.
    let archive = oci_archive(&up, &ctx.path().join("upstream.oci.tar"));
    refused(&report(&ctx, &archive), &needles);
}

/// Writes `tar` through a zstd encoder and a SHA-256 at once.
struct Tee<W: Write> {
    out: W,
    sha: Sha256,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[test]
fn a_decompression_bomb_under_a_skipped_path_is_refused() {
    let ctx = with_tiers();
    let up = ctx.path().join("upstream");
    // A quarter GiB past the floor, all zeros, under /usr/share: no path the
    // package-database reader keeps, so only the cap stops the read.
    let zeros = RATIO_FLOOR + (256 << 20);
    let enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
    let mut tar = tar::Builder::new(Tee {
        out: enc,
        sha: Sha256::new(),
    });
    debian_like(&mut tar);
    file(
        &mut tar,
        "usr/share/doc/zeros",
        zeros,
        io::repeat(0).take(zeros),
    );
    let tee = tar.into_inner().unwrap();
    let blob = tee.out.finish().unwrap();
    // Small enough that its ratio, not the absolute cap, is what the
    // reader refuses: a gzip stream could never be this dense.
    assert!(
        (blob.len() as u64) < RATIO_FLOOR / 4096,
        "{} bytes",
        blob.len()
    );
    let diff_id = format!("sha256:{}", hex::encode(tee.sha.finalize()));
    let layers = write_layout(
        &up,
        &[Layer {
            media_type: MT_LAYER_ZSTD,
            blob,
            diff_id,
        }],
    );
    refused(
        &report(&ctx, &up),
        &[
            layers[0].as_str(),
            &format!("decompresses to more than {RATIO_FLOOR} bytes"),
            "decompression bomb",
        ],
    );
}

#[test]
fn a_layer_whose_bytes_do_not_match_its_digest_is_refused() {
    let ctx = with_tiers();
    let up = ctx.path().join("upstream");
    let layers = write_layout(&up, &[Layer::tar(debian_like_tar())]);
    // Same size, other content: a digest that lies about its blob.
    let blob = up.join("blobs/sha256").join(&layers[0][7..]);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[600] ^= 0x20;
    fs::write(&blob, bytes).unwrap();
    let needles = [layers[0].as_str(), "content does not match its digest"];
    refused(&report(&ctx, &up), &needles);
    let archive = oci_archive(&up, &ctx.path().join("upstream.oci.tar"));
    refused(&report(&ctx, &archive), &needles);
}

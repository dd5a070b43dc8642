//! Hostile OCI layouts, written by hand byte for byte, fed to the real
//! binary's `inspect`, `analyze` and `fsck`. Each hostile input is refused
//! with an exit code other than 0 and a message that names the culprit:
//! an entry that climbs with `..`, a symlink that escapes the image root,
//! sizes that the bytes do not back, a blob that does not match its digest,
//! and a layout that is missing or not JSON.
//!
//! Exit codes (`commands::exit_code`): 0 ok, 1 check failed, 2 usage or
//! input error.

use crate::common;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Run, TestContext};
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest as _, Sha256};

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TIB: u64 = 1 << 40;

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

// ---- tar, by hand: tar::Builder refuses the names these tests need ----

/// One ustar header. `size` is what the header declares, whatever follows.
fn tar_header(name: &str, typeflag: u8, size: u64, link: &str) -> [u8; 512] {
    fn octal(field: &mut [u8], v: u64) {
        let s = format!("{v:0w$o}\0", w = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(
        &mut h[100..108],
        if typeflag == b'5' { 0o755 } else { 0o644 },
    );
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    if size < 8u64.pow(11) {
        octal(&mut h[124..136], size);
    } else {
        // GNU base-256: the high bit of the first byte, then big-endian.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    octal(&mut h[136..148], 1);
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn raw(mut self, name: &str, typeflag: u8, declared: u64, link: &str, data: &[u8]) -> Self {
        self.0
            .extend_from_slice(&tar_header(name, typeflag, declared, link));
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(512), 0);
        self
    }
    fn dir(self, name: &str) -> Self {
        self.raw(name, b'5', 0, "", b"")
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(name, b'0', data.len() as u64, "", data)
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(name, b'2', 0, target, b"")
    }
    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

// ---- layouts, by hand ----

/// A layout written into a test directory: one image whose layers are
/// uncompressed tars, every digest and size correct unless a test breaks it.
struct HandLayout {
    ctx: TestContext,
    root: PathBuf,
    manifest: String,
    config: String,
    layers: Vec<String>,
}

impl HandLayout {
    fn new(tars: &[Vec<u8>]) -> HandLayout {
        let layers: Vec<_> = tars
            .iter()
            .map(|t| (MT_LAYER_TAR, t.clone(), sha256(t)))
            .collect();
        HandLayout::with_blobs(&layers)
    }

    /// Layers given as (media type, blob, diff_id).
    fn with_blobs(layers: &[(&str, Vec<u8>, String)]) -> HandLayout {
        let ctx = TestContext::new();
        let root = ctx.path().join("layout");
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let mut l = HandLayout {
            ctx,
            root,
            manifest: String::new(),
            config: String::new(),
            layers: Vec::new(),
        };
        let layer_descs: Vec<_> = layers
            .iter()
            .map(|(media_type, blob, _)| {
                let d = l.put(blob);
                l.layers.push(d.clone());
                json!({"mediaType": media_type, "digest": d, "size": blob.len()})
            })
            .collect();
        let diff_ids: Vec<&String> = layers.iter().map(|(_, _, diff_id)| diff_id).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"User": "65534"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        l.config = l.put(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": l.config, "size": config.len()},
            "layers": layer_descs,
        }))
        .unwrap();
        l.manifest = l.put(&manifest);
        l.write_index(
            json!({"mediaType": MT_MANIFEST, "digest": l.manifest, "size": manifest.len()}),
        );
        l
    }

    fn put(&self, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        fs::write(self.blob_path(&d), bytes).unwrap();
        d
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(&digest[7..])
    }

    fn write_index(&self, manifest_descriptor: serde_json::Value) {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [manifest_descriptor],
        });
        fs::write(self.root.join("index.json"), index.to_string()).unwrap();
    }

    /// Rewrites the manifest (through `edit`) and points index.json at it.
    fn edit_manifest(&mut self, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut m: serde_json::Value =
            serde_json::from_slice(&fs::read(self.blob_path(&self.manifest)).unwrap()).unwrap();
        edit(&mut m);
        let bytes = serde_json::to_vec(&m).unwrap();
        self.manifest = self.put(&bytes);
        self.write_index(
            json!({"mediaType": MT_MANIFEST, "digest": self.manifest, "size": bytes.len()}),
        );
    }

    /// Flips the last byte of a blob: same size, other content.
    fn tamper(&self, digest: &str) {
        let p = self.blob_path(digest);
        let mut bytes = fs::read(&p).unwrap();
        *bytes.last_mut().unwrap() ^= 0x01;
        fs::write(&p, bytes).unwrap();
    }

    fn run(&self, cmd: &str) -> Run {
        self.ctx.run(&[cmd, self.root.to_str().unwrap()])
    }
}

/// Asserts exit `code` and that stderr holds every one of `needles`.
fn refused(r: &Run, code: i32, needles: &[&str]) {
    assert_eq!(r.code(), code, "{}", r.describe());
    for n in needles {
        assert!(
            r.stderr().contains(n),
            "stderr lacks `{n}`\n{}",
            r.describe()
        );
    }
}

fn ok(r: &Run) {
    assert_eq!(r.code(), 0, "{}", r.describe());
}

fn hello() -> Tar {
    Tar::default()
        .dir("etc/")
        .file("etc/passwd", b"nobody:x:65534:65534::/:/sbin/nologin\n")
}

#[test]
fn the_hand_written_layout_is_valid() {
    // The baseline every hostile variant departs from: all three commands
    // accept it, so a refusal below is caused by the variant.
    let l = HandLayout::new(&[hello().finish()]);
    ok(&l.run("fsck"));
    let r = l.run("inspect");
    ok(&r);
    assert!(r.stdout().contains(&l.manifest), "{}", r.describe());
    ok(&l.run("analyze"));
}

// ---- (a) `..` in a tar entry ----

#[test]
fn dotdot_entry_is_refused_by_name() {
    let l = HandLayout::new(&[hello().file("../../etc/passwd", b"pwned\n").finish()]);
    refused(
        &l.run("analyze"),
        2,
        &["`../../etc/passwd`", "`..` in an entry name", &l.layers[0]],
    );
    // The layout itself is intact: the refusal is about the content.
    ok(&l.run("fsck"));
}

#[test]
fn dotdot_hardlink_target_is_refused_by_name() {
    let l = HandLayout::new(&[hello()
        .raw("etc/shadow", b'1', 0, "../../etc/shadow", b"")
        .finish()]);
    refused(&l.run("analyze"), 2, &["`etc/shadow`", "`..`"]);
}

// ---- (b) symlink escapes ----

#[test]
fn symlink_climbing_out_of_the_root_is_refused() {
    let l = HandLayout::new(&[hello().dir("a/").symlink("a/b", "../../../../etc").finish()]);
    refused(
        &l.run("analyze"),
        2,
        &["`a/b`", "`../../../../etc`", "climbs above the image root"],
    );
}

#[test]
fn symlinks_that_stay_inside_are_accepted() {
    // `..` that stays below the root, and absolute targets (they resolve
    // inside the container's root), are ordinary.
    let l = HandLayout::new(&[hello()
        .dir("a/")
        .dir("a/b/")
        .symlink("a/b/up", "../../etc")
        .symlink("a/abs", "/etc/passwd")
        .finish()]);
    ok(&l.run("analyze"));
}

#[test]
fn entry_written_through_a_symlink_is_refused() {
    // The classic extraction escape: a link in one layer, a file "under" it
    // in the next. An extractor would write the file wherever the link points.
    let lower = hello().symlink("x", "/etc").finish();
    let upper = Tar::default()
        .file("x/shadow", b"root::0:0:::::\n")
        .finish();
    let l = HandLayout::new(&[lower, upper]);
    refused(
        &l.run("analyze"),
        2,
        &["`x/shadow`", "lies beneath the symlink `/x`", &l.layers[1]],
    );
}

// ---- (c) huge declared sizes ----

/// Runs `analyze` with its address space capped, so a buffer sized from a
/// header's claim fails the run instead of passing unnoticed.
fn analyze_capped(l: &HandLayout, max_virtual_kib: u64) -> Run {
    let bin = common::bin();
    let mut c = Command::new("sh");
    common::private_cache(&mut c)
        .arg("-c")
        .arg(format!(
            "ulimit -v {max_virtual_kib} && exec \"$0\" analyze \"$1\""
        ))
        .arg(&bin)
        .arg(&l.root)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    let out = c.output().expect("run armorred under ulimit");
    Run {
        cmd: format!(
            "ulimit -v {max_virtual_kib}; armorred analyze {}",
            l.root.display()
        ),
        out,
    }
}

#[test]
fn tar_entry_declaring_a_tebibyte_is_refused_quickly() {
    let layer = hello()
        .raw("bin/big", b'0', TIB, "", b"only ten b")
        .finish();
    let l = HandLayout::new(&[layer]);
    let start = Instant::now();
    let r = analyze_capped(&l, 512 << 10);
    refused(
        &r,
        2,
        &[
            "`bin/big`",
            &format!("declares {TIB} bytes but the layer holds"),
        ],
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn elf_entry_declaring_hundreds_of_mebibytes_allocates_nothing_of_the_sort() {
    // Below MAX_ELF_BYTES, so the reader keeps the bytes; the claim alone
    // must not size the buffer (the cap is below the claim).
    let declared = 400u64 << 20;
    let mut data = b"\x7fELF".to_vec();
    data.resize(64, 0);
    let layer = hello().raw("bin/elf", b'0', declared, "", &data).finish();
    let l = HandLayout::new(&[layer]);
    let r = analyze_capped(&l, 256 << 10);
    refused(
        &r,
        2,
        &[
            "`bin/elf`",
            &format!("declares {declared} bytes but the layer holds"),
        ],
    );
}

#[test]
fn gzip_bomb_in_a_pax_record_is_refused_without_buffering_it() {
    // 512 MiB of pax record compress to about half a MiB; the tar crate
    // reads such a record into memory whole unless the reader stops it.
    let record_mib = 512;
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut diff_id = Sha256::new();
    let mut both = |bytes: &[u8]| {
        gz.write_all(bytes).unwrap();
        diff_id.update(bytes);
    };
    both(&tar_header("PaxHeaders/f", b'x', record_mib << 20, ""));
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..record_mib {
        both(&chunk);
    }
    both(&Tar::default().file("f", b"x").finish());
    let diff_id = format!("sha256:{}", hex::encode(diff_id.finalize()));
    let l = HandLayout::with_blobs(&[(MT_LAYER_GZIP, gz.finish().unwrap(), diff_id)]);
    let r = analyze_capped(&l, 256 << 10);
    refused(
        &r,
        1,
        &[
            &l.layers[0],
            "pax or GNU long-name records) exceed 1048576 bytes",
        ],
    );
}

#[test]
fn json_descriptor_declaring_a_huge_size_is_refused_before_reading() {
    let mut l = HandLayout::new(&[hello().finish()]);
    l.edit_manifest(|m| m["config"]["size"] = json!(TIB));
    let config_path = l.blob_path(&l.config);
    let culprit = config_path.to_str().unwrap();
    let message = format!("declared size {TIB} is larger than the 8388608-byte limit");
    refused(&l.run("inspect"), 2, &[culprit, &message]);
    refused(&l.run("analyze"), 2, &[culprit, &message]);
    let fsck = l.run("fsck");
    assert_eq!(fsck.code(), 1, "{}", fsck.describe());
    let mismatch = format!("{culprit}: size ");
    assert!(fsck.stdout().contains(&mismatch), "{}", fsck.describe());
    assert!(
        fsck.stdout()
            .contains(&format!("does not match the descriptor's {TIB}")),
        "{}",
        fsck.describe()
    );
}

#[test]
fn index_entry_declaring_a_huge_manifest_is_refused() {
    let l = HandLayout::new(&[hello().finish()]);
    l.write_index(json!({"mediaType": MT_MANIFEST, "digest": l.manifest, "size": TIB}));
    let manifest_path = l.blob_path(&l.manifest);
    refused(
        &l.run("inspect"),
        2,
        &[manifest_path.to_str().unwrap(), "limit for a JSON document"],
    );
}

#[test]
fn layer_descriptor_size_that_the_blob_does_not_have_is_refused() {
    let mut l = HandLayout::new(&[hello().finish()]);
    l.edit_manifest(|m| m["layers"][0]["size"] = json!(TIB));
    refused(
        &l.run("analyze"),
        2,
        &[
            &l.layers[0],
            &format!("does not match the descriptor's {TIB}"),
        ],
    );
}

// ---- (d) digest mismatches ----

#[test]
fn tampered_config_is_refused_and_fsck_reports_it() {
    let l = HandLayout::new(&[hello().finish()]);
    l.tamper(&l.config);
    let path = l.blob_path(&l.config);
    let culprit = path.to_str().unwrap();
    refused(
        &l.run("inspect"),
        2,
        &[culprit, "content does not match its digest"],
    );
    refused(
        &l.run("analyze"),
        2,
        &[culprit, "content does not match its digest"],
    );
    let fsck = l.run("fsck");
    assert_eq!(fsck.code(), 1, "{}", fsck.describe());
    assert!(
        fsck.stdout()
            .contains(&format!("{culprit}: content does not match its digest")),
        "{}",
        fsck.describe()
    );
}

#[test]
fn tampered_manifest_is_refused() {
    let l = HandLayout::new(&[hello().finish()]);
    l.tamper(&l.manifest);
    let path = l.blob_path(&l.manifest);
    refused(
        &l.run("inspect"),
        2,
        &[path.to_str().unwrap(), "content does not match its digest"],
    );
    assert_eq!(l.run("fsck").code(), 1);
}

#[test]
fn tampered_layer_is_refused_and_fsck_reports_it() {
    // The last byte of an uncompressed tar is end-of-archive padding: the
    // tar still parses, so only the digest check can catch this.
    let l = HandLayout::new(&[hello().finish()]);
    l.tamper(&l.layers[0]);
    refused(
        &l.run("analyze"),
        2,
        &[&l.layers[0], "content does not match its digest"],
    );
    let fsck = l.run("fsck");
    assert_eq!(fsck.code(), 1, "{}", fsck.describe());
    let path = l.blob_path(&l.layers[0]);
    assert!(
        fsck.stdout().contains(&format!(
            "{}: content does not match its digest",
            path.display()
        )),
        "{}",
        fsck.describe()
    );
}

#[test]
fn missing_layer_blob_is_refused() {
    let l = HandLayout::new(&[hello().finish()]);
    fs::remove_file(l.blob_path(&l.layers[0])).unwrap();
    let r = l.run("analyze");
    assert_ne!(r.code(), 0, "{}", r.describe());
    assert!(r.stderr().contains(&l.layers[0]), "{}", r.describe());
    let fsck = l.run("fsck");
    assert_eq!(fsck.code(), 1, "{}", fsck.describe());
    assert!(
        fsck.stdout().contains("referenced but missing"),
        "{}",
        fsck.describe()
    );
}

// ---- (e) missing or malformed layouts ----

#[test]
fn missing_layout_is_an_input_error_naming_the_path() {
    let ctx = TestContext::new();
    let missing = ctx.path().join("no-such-layout");
    let p = missing.to_str().unwrap();
    for cmd in ["inspect", "analyze", "fsck"] {
        refused(&ctx.run(&[cmd, p]), 2, &[p, "not an OCI image layout"]);
    }
}

#[test]
fn missing_index_is_an_input_error_naming_the_path() {
    let l = HandLayout::new(&[hello().finish()]);
    let index = l.root.join("index.json");
    fs::remove_file(&index).unwrap();
    for cmd in ["inspect", "analyze"] {
        refused(
            &l.run(cmd),
            2,
            &[index.to_str().unwrap(), "no image in index.json"],
        );
    }
}

#[test]
fn corrupt_index_is_an_input_error_naming_the_path() {
    let l = HandLayout::new(&[hello().finish()]);
    let index = l.root.join("index.json");
    fs::write(&index, b"{\"schemaVersion\": 2, \"manifests\": [").unwrap();
    let p = index.to_str().unwrap();
    for cmd in ["inspect", "analyze"] {
        refused(&l.run(cmd), 2, &[p, "invalid JSON"]);
    }
    let fsck = l.run("fsck");
    assert_eq!(fsck.code(), 1, "{}", fsck.describe());
    assert!(fsck.stdout().contains(p), "{}", fsck.describe());
}

#[test]
fn corrupt_manifest_json_is_an_input_error_naming_the_blob() {
    // Not JSON, but stored under its true digest: the digest check passes
    // and the parser must refuse it.
    let l = HandLayout::new(&[hello().finish()]);
    let junk = b"{\"schemaVersion\": 2, \"config\": ";
    let d = l.put(junk);
    l.write_index(json!({"mediaType": MT_MANIFEST, "digest": d, "size": junk.len()}));
    let path = l.blob_path(&d);
    for cmd in ["inspect", "analyze"] {
        refused(&l.run(cmd), 2, &[path.to_str().unwrap(), "invalid JSON"]);
    }
}

#[test]
fn index_naming_a_blob_outside_the_layout_is_refused() {
    // A digest is 64 hex digits, so a descriptor cannot name `../` paths.
    let l = HandLayout::new(&[hello().finish()]);
    let index = l.root.join("index.json");
    fs::write(
        &index,
        json!({"schemaVersion": 2, "manifests": [{
            "mediaType": MT_MANIFEST, "digest": "sha256:../../../etc/passwd", "size": 10}]})
        .to_string(),
    )
    .unwrap();
    refused(
        &l.run("inspect"),
        2,
        &[index.to_str().unwrap(), "is not a sha256 digest"],
    );
}

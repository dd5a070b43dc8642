//! Bytes → the ELF hardening analyzer: `analyze_elf`, reading the bytes as
//! a libc's `_chk` table, and `analyze_image` over a tiny image holding the
//! bytes both as a binary and as its libc (so the libc lookup by runpath and
//! the shell/coreutils probes run too). Any input may be reported as
//! unreadable; none may panic.
#![no_main]

use std::collections::BTreeMap;

use armorred::analyze::{
    analyze_elf, analyze_image, ElfFacts, FileKind, FortifyTable, ImageFile, ImageInput,
};
use libfuzzer_sys::fuzz_target;

const BIN: &str = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-fuzz-1.0/bin/sh";
const LIBC: &str = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-glibc-2.40/lib/libc.so.6";

fn file(path: &str, kind: FileKind, mode: u32, size: u64) -> ImageFile {
    ImageFile {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        size,
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = analyze_elf("/bin/fuzz", data, &FortifyTable::host_default());
    if let Ok(table) = FortifyTable::from_libc(data) {
        let _ = analyze_elf("/bin/fuzz", data, &table.with_path(LIBC));
    }

    let size = data.len() as u64;
    let mut files = Vec::new();
    for dir in [
        "/nix",
        "/nix/store",
        "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-fuzz-1.0",
        "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-fuzz-1.0/bin",
        "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-glibc-2.40",
        "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-glibc-2.40/lib",
        "/bin",
    ] {
        files.push(file(dir, FileKind::Dir, 0o755, 0));
    }
    files.push(file(BIN, FileKind::File, 0o4755, size));
    files.push(file(LIBC, FileKind::File, 0o555, size));
    files.push(file(
        "/bin/sh",
        FileKind::Symlink { target: BIN.into() },
        0o777,
        0,
    ));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let elf_contents = BTreeMap::from([
        (BIN.to_string(), data.to_vec()),
        (LIBC.to_string(), data.to_vec()),
    ]);
    let a = analyze_image(&ImageInput {
        files: &files,
        elfs: &ElfFacts::of_all(&elf_contents),
        user: Some("65534".into()),
        labels: BTreeMap::new(),
        compressed_size: size,
        uncompressed_size: size,
        layer_count: 1,
        writable: vec!["/tmp".into()],
    });
    let _ = serde_json::to_vec(&a).expect("an analysis serializes");
    let _ = armorred::layout_analysis::render(&a);
});

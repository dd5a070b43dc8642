//! The ELF analyzer against real binaries: small C programs compiled with
//! clang 14 at test time, each judged by `armorred::analyze` and, as an
//! independent witness, by Debian's `checksec` 2.6 (`--output=json
//! --extended`). Needs `clang`, `lld`, `libclang-rt-14-dev`, `checksec` and
//! binutils (`readelf`, `strip`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use armorred::analyze::{
    analyze_elf, analyze_image, check_promise, ElfFacts, ElfReport, ElfType, FileKind,
    FortifyOrigin, FortifyStatus, FortifyTable, ImageFile, ImageInput, Promise, Property,
    PropertyStatus, Relro,
};

const HOST_LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

/// Copies into a local buffer through memcpy, strcpy, sprintf and read, so
/// both the stack protector and FORTIFY have work to do.
const BUFFERS_C: &str = r#"
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  char buf[64], copy[64], out[160];
  ssize_t n = read(0, buf, sizeof buf - 1);
  if (n < 0) n = 0;
  buf[n] = 0;
  memcpy(copy, buf, (size_t)n + 1);
  if (argc > 1) strcpy(copy, argv[1]);
  sprintf(out, "%s:%d", copy, argc);
  puts(out);
  return 0;
}
"#;

/// An indirect call through a function pointer, so CFI emits `*.cfi`
/// jump-table symbols, plus a local buffer for SafeStack to move.
const INDIRECT_C: &str = r#"
#include <stdio.h>
#include <string.h>
typedef int (*op_fn)(int, int);
static int add(int a, int b) { return a + b; }
static int mul(int a, int b) { return a * b; }
static op_fn pick(int k) { return k ? mul : add; }
int main(int argc, char **argv) {
  char buf[64];
  strncpy(buf, argc > 1 ? argv[1] : "x", sizeof buf - 1);
  buf[63] = 0;
  op_fn f = pick(argc & 1);
  printf("%s %d\n", buf, f(argc, 3));
  return 0;
}
"#;

const LIB_C: &str = r#"
#include <string.h>
int copy_name(char *dst, const char *src) { char tmp[32]; strcpy(tmp, src); strcpy(dst, tmp); return (int)strlen(dst); }
"#;

const HARDENED: &[&str] = &[
    "-O2",
    "-D_FORTIFY_SOURCE=3",
    "-fstack-protector-strong",
    "-fstack-clash-protection",
    "-fcf-protection=full",
    "-fPIE",
    "-pie",
    "-Wl,-z,relro,-z,now",
    "-Wl,-z,noexecstack",
    "-fuse-ld=lld",
];

const CFI_SAFESTACK: &[&str] = &[
    "-O2",
    "-D_FORTIFY_SOURCE=3",
    "-fstack-protector-strong",
    "-fstack-clash-protection",
    "-fPIE",
    "-pie",
    "-Wl,-z,relro,-z,now",
    "-Wl,-z,noexecstack",
    "-fuse-ld=lld",
    "-flto",
    "-fvisibility=hidden",
    "-fsanitize=cfi",
    "-fsanitize-cfi-icall-generalize-pointers",
    "-fsanitize=safe-stack",
];

const UNHARDENED: &[&str] = &[
    "-O0",
    "-U_FORTIFY_SOURCE",
    "-D_FORTIFY_SOURCE=0",
    "-fno-stack-protector",
    "-no-pie",
    "-fno-pie",
    "-Wl,-z,norelro",
    "-Wl,-z,lazy",
    "-z",
    "execstack",
];

/// All binaries are built once, in one temp dir, and shared by the tests.
struct Built {
    dir: tempfile::TempDir,
}

impl Built {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn prefix(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn clang(dir: &Path, src: &str, out: &str, flags: &[&str], extra: &[&str]) {
    let c = dir.join(format!("{out}.c"));
    std::fs::write(&c, src).unwrap();
    run(Command::new("clang")
        .args(flags)
        .args(extra)
        .arg(&c)
        .arg("-o")
        .arg(dir.join(out)));
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        clang(d, BUFFERS_C, "hardened", HARDENED, &[]);
        clang(d, INDIRECT_C, "cfi", CFI_SAFESTACK, &[]);
        clang(d, BUFFERS_C, "unhardened", UNHARDENED, &[]);
        // Debian 12's crt*.o carry no IBT/SHSTK note, so a normal link drops
        // CET; forcing it shows the analyzer reads the note when present.
        clang(
            d,
            BUFFERS_C,
            "cet",
            HARDENED,
            &["-Wl,-z,force-ibt", "-Wl,-z,shstk"],
        );
        clang(
            d,
            BUFFERS_C,
            "rpath",
            UNHARDENED,
            &["-Wl,-rpath,/usr/lib/evil", "-Wl,--disable-new-dtags"],
        );
        clang(
            d,
            BUFFERS_C,
            "runpath",
            HARDENED,
            &["-Wl,-rpath,$ORIGIN/../lib:/opt/x", "-Wl,--enable-new-dtags"],
        );
        clang(
            d,
            LIB_C,
            "libname.so",
            &[
                "-O2",
                "-D_FORTIFY_SOURCE=2",
                "-fstack-protector-strong",
                "-fPIC",
                "-shared",
            ],
            &["-Wl,-z,relro,-z,now", "-fuse-ld=lld"],
        );
        std::fs::copy(d.join("hardened"), d.join("stripped")).unwrap();
        run(Command::new("strip").arg(d.join("stripped")));
        Built { dir }
    })
}

fn libc_table() -> FortifyTable {
    let data = std::fs::read(HOST_LIBC).unwrap();
    FortifyTable::from_libc(&data).unwrap().with_path(HOST_LIBC)
}

fn analyze(name: &str) -> ElfReport {
    let path = built().path(name);
    let data = std::fs::read(&path).unwrap();
    analyze_elf(&path.to_string_lossy(), &data, &libc_table()).unwrap()
}

/// `checksec --file=<bin> --output=json --extended`, the file's object.
fn checksec(name: &str) -> BTreeMap<String, String> {
    let path = built().path(name);
    let out = run(Command::new("checksec")
        .arg(format!("--file={}", path.display()))
        .arg("--output=json")
        .arg("--extended"));
    let mut v: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("checksec printed unexpected JSON ({e}):\n{out}"));
    v.remove(&*path.to_string_lossy())
        .unwrap_or_else(|| panic!("checksec JSON has no entry for {}:\n{out}", path.display()))
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Every column checksec and we both compute must agree.
fn assert_agrees_with_checksec(name: &str, r: &ElfReport) {
    let cs = checksec(name);
    let relro = match r.relro {
        Relro::None => "no",
        Relro::Partial => "partial",
        Relro::Full => "full",
    };
    let pie = match (r.elf_type, r.pie) {
        (ElfType::Executable, true) => "yes",
        (ElfType::Executable, false) => "no",
        (ElfType::SharedLibrary, _) => "dso",
        (ElfType::Relocatable, _) => "rel",
        (ElfType::Other, _) => "not_elf",
    };
    let ours = [
        ("relro", relro.to_string()),
        ("canary", yes_no(r.canary).into()),
        ("nx", yes_no(r.nx).into()),
        ("pie", pie.into()),
        ("rpath", yes_no(!r.rpath.is_empty()).into()),
        ("runpath", yes_no(!r.runpath.is_empty()).into()),
        ("symbols", yes_no(!r.stripped).into()),
        (
            "fortify_source",
            yes_no(r.fortify.fortified_count > 0).into(),
        ),
        ("fortified", r.fortify.fortified_count.to_string()),
        (
            "fortify-able",
            (r.fortify.fortified_count + r.fortify.fortifiable_count).to_string(),
        ),
        ("clangcfi", yes_no(r.cfi.enabled).into()),
        ("safestack", yes_no(r.safestack).into()),
    ];
    for (column, value) in ours {
        assert_eq!(
            cs.get(column).map(String::as_str),
            Some(value.as_str()),
            "{name}: checksec and armorred disagree on `{column}`\nchecksec: {cs:?}\narmorred: {r:#?}"
        );
    }
}

/// What `readelf -n` says about x86 CET, as a second opinion on the note.
fn readelf_cet(name: &str) -> (bool, bool) {
    let out = run(Command::new("readelf").arg("-n").arg(built().path(name)));
    let line = out
        .lines()
        .find(|l| l.contains("x86 feature:"))
        .unwrap_or("");
    (line.contains("IBT"), line.contains("SHSTK"))
}

fn baseline() -> Promise {
    Promise {
        relro_full: true,
        bind_now: true,
        canary: true,
        nx: true,
        pie: true,
        fortify: true,
        ..Promise::default()
    }
}

#[test]
fn hardened_binary() {
    let r = analyze("hardened");
    assert_eq!(r.elf_type, ElfType::Executable);
    assert!(r.pie && r.nx && r.canary && r.bind_now && !r.textrel);
    assert_eq!(r.relro, Relro::Full);
    assert_eq!(r.fortify.status, FortifyStatus::Fortified);
    // FORTIFY=3 turns these into _chk calls; `read` stays plain because the
    // compiler proves the size fits.
    for f in ["__memcpy_chk", "__strcpy_chk", "__sprintf_chk"] {
        assert!(
            r.fortify.fortified.contains(&f.to_string()),
            "{f} in {:?}",
            r.fortify
        );
    }
    assert_eq!(r.fortify.fortifiable, ["read"]);
    assert_eq!(
        r.fortify.judged_against,
        FortifyOrigin::ImageLibc {
            paths: vec![HOST_LIBC.into()]
        }
    );
    assert!(!r.cfi.enabled && !r.safestack && !r.stripped);
    assert!(r.rpath.is_empty() && r.runpath.is_empty() && !r.rpath_outside_store);
    assert_eq!(r.needed, ["libc.so.6"]);
    assert_eq!(
        r.interpreter.as_deref(),
        Some("/lib64/ld-linux-x86-64.so.2")
    );
    assert_eq!((r.cet.ibt, r.cet.shstk), readelf_cet("hardened"));
    assert_agrees_with_checksec("hardened", &r);
}

#[test]
fn cfi_and_safestack_binary() {
    let r = analyze("cfi");
    assert!(r.cfi.enabled && r.cfi.symbols >= 2, "{:?}", r.cfi);
    assert!(!r.cfi.cross_dso);
    assert!(r.safestack);
    assert!(r.pie && r.nx && r.canary && r.relro == Relro::Full);
    assert_eq!(r.fortify.fortified, ["__printf_chk"]);
    assert_eq!(r.fortify.fortifiable, ["fprintf", "strncpy"]);
    assert_eq!((r.cet.ibt, r.cet.shstk), (false, false));
    assert_agrees_with_checksec("cfi", &r);

    let everything = Promise {
        cfi: true,
        safestack: true,
        ..baseline()
    };
    assert_eq!(check_promise(&[r], &built().prefix(), &everything, &[]), []);
}

#[test]
fn unhardened_binary() {
    let r = analyze("unhardened");
    assert_eq!(r.elf_type, ElfType::Executable);
    assert!(!r.pie && !r.nx && !r.canary && !r.bind_now);
    assert_eq!(r.relro, Relro::None);
    assert_eq!(r.fortify.status, FortifyStatus::Unfortified);
    assert_eq!(r.fortify.fortified_count, 0);
    assert_eq!(
        r.fortify.fortifiable,
        ["memcpy", "read", "sprintf", "strcpy"]
    );
    assert!(!r.cfi.enabled && !r.safestack);
    assert_agrees_with_checksec("unhardened", &r);
}

#[test]
fn cet_note_when_linked_in() {
    let r = analyze("cet");
    assert!(r.cet.ibt && r.cet.shstk, "{:?}", r.cet);
    assert_eq!((r.cet.ibt, r.cet.shstk), readelf_cet("cet"));
    assert_eq!(Property::Cet.check(&r), PropertyStatus::Holds);
    assert_eq!(
        Property::Cet.check(&analyze("hardened")),
        PropertyStatus::Missing
    );
}

#[test]
fn rpath_runpath_stripped_and_library() {
    let r = analyze("rpath");
    assert_eq!(r.rpath, ["/usr/lib/evil"]);
    assert!(r.runpath.is_empty() && r.rpath_outside_store);
    assert_agrees_with_checksec("rpath", &r);

    let r = analyze("runpath");
    assert_eq!(r.runpath, ["$ORIGIN/../lib", "/opt/x"]);
    assert!(r.rpath.is_empty() && r.rpath_outside_store);
    assert_agrees_with_checksec("runpath", &r);

    let r = analyze("stripped");
    assert!(r.stripped);
    assert_agrees_with_checksec("stripped", &r);

    let r = analyze("libname.so");
    assert_eq!(r.elf_type, ElfType::SharedLibrary);
    assert!(!r.pie && !r.textrel);
    assert_eq!(Property::Pie.check(&r), PropertyStatus::Holds);
    assert_agrees_with_checksec("libname.so", &r);
}

#[test]
fn promise_gate() {
    let prefix = built().prefix();
    let hardened = analyze("hardened");
    let unhardened = analyze("unhardened");
    assert_eq!(
        check_promise(std::slice::from_ref(&hardened), &prefix, &baseline(), &[]),
        []
    );

    let v = check_promise(
        &[hardened.clone(), unhardened.clone()],
        &prefix,
        &baseline(),
        &[],
    );
    let named: Vec<(&str, Property)> = v.iter().map(|v| (v.path.as_str(), v.property)).collect();
    let p = unhardened.path.as_str();
    assert_eq!(
        named,
        [
            (p, Property::RelroFull),
            (p, Property::BindNow),
            (p, Property::Canary),
            (p, Property::Nx),
            (p, Property::Pie),
            (p, Property::Fortify),
        ]
    );
    assert!(v[5].detail.contains("memcpy"), "{}", v[5]);

    // The CFI promise fails the plain hardened build; an exception excuses it.
    let cfi = Promise {
        cfi: true,
        ..baseline()
    };
    let v = check_promise(std::slice::from_ref(&hardened), &prefix, &cfi, &[]);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].property, Property::Cfi);
    let ex = [(
        "harden*".to_string(),
        "cfi".to_string(),
        "no indirect calls".to_string(),
    )];
    assert_eq!(check_promise(&[hardened], &prefix, &cfi, &ex), []);
    // Another package's prefix judges nothing.
    assert_eq!(
        check_promise(&[unhardened], "/nix/store/none", &baseline(), &[]),
        []
    );
}

#[test]
fn host_default_table_matches_debian_glibc() {
    let host = libc_table();
    let builtin = FortifyTable::host_default();
    assert_eq!(
        host.functions().collect::<Vec<_>>(),
        builtin.functions().collect::<Vec<_>>()
    );
}

/// The image analyzer over real binaries in a synthetic store layout.
#[test]
fn image_with_real_binaries() {
    let glibc = "/nix/store/0c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-glibc-2.36";
    let app = "/nix/store/1c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-demo-1.0";
    let mut elfs = BTreeMap::new();
    elfs.insert(
        format!("{glibc}/lib/libc.so.6"),
        std::fs::read(HOST_LIBC).unwrap(),
    );
    for name in ["hardened", "cfi", "unhardened"] {
        elfs.insert(
            format!("{app}/bin/{name}"),
            std::fs::read(built().path(name)).unwrap(),
        );
    }
    let files: Vec<ImageFile> = elfs
        .iter()
        .map(|(p, d)| ImageFile {
            path: p.clone(),
            kind: FileKind::File,
            mode: 0o555,
            uid: 0,
            gid: 0,
            size: d.len() as u64,
        })
        .collect();
    let a = analyze_image(&ImageInput {
        files: &files,
        elfs: &ElfFacts::of_all(&elfs),
        user: Some("65534".into()),
        labels: BTreeMap::new(),
        compressed_size: 1,
        uncompressed_size: 2,
        layer_count: 2,
        writable: vec![],
    });
    assert!(a.unreadable_elfs.is_empty(), "{:?}", a.unreadable_elfs);
    assert_eq!(a.components, [glibc, app]);
    assert!(!a.shell.present && !a.coreutils.present && !a.runs_as_root);
    let demo = a
        .hardening_by_component
        .iter()
        .find(|c| c.store_path.as_deref() == Some(app))
        .unwrap();
    assert_eq!(demo.binaries, 3);
    // The unhardened binary spoils every "all binaries" claim.
    assert_eq!(demo.holds_for_all, []);
    assert_eq!(demo.coverage[&Property::Nx].missing, 1);
    // No runpath: found the image's libc via the fallback, not the host's.
    let hardened = a
        .binaries
        .iter()
        .find(|b| b.path.ends_with("/hardened"))
        .unwrap();
    assert_eq!(
        hardened.fortify.judged_against,
        FortifyOrigin::ImageLibc {
            paths: vec![format!("{glibc}/lib/libc.so.6")]
        }
    );
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["binaries"].as_array().unwrap().len(), 4);
}

/// Mutated real binaries: any result is fine, a panic is not. Set
/// `ARMORRED_FUZZ_ITERS` for a longer run than the default 1500 per seed.
#[test]
fn survives_mutated_real_binaries() {
    let iters: usize = std::env::var("ARMORRED_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let table = libc_table();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for name in ["hardened", "cfi", "libname.so"] {
        let seed = std::fs::read(built().path(name)).unwrap();
        let word = |at: usize| u64::from_le_bytes(seed[at..at + 8].try_into().unwrap()) as usize;
        let shoff = word(40);
        let (phoff, phnum) = (word(32), u16::from_le_bytes([seed[56], seed[57]]) as usize);
        // The dynamic section's tags steer goblin through hash tables and
        // string tables, so it gets its own share of mutations.
        let (dyn_off, dyn_len) = (0..phnum)
            .map(|i| phoff + 56 * i)
            .find(|&ph| seed[ph..ph + 4] == 2u32.to_le_bytes())
            .map(|ph| (word(ph + 8), word(ph + 32)))
            .unwrap();
        for _ in 0..iters {
            let mut m = seed.clone();
            for _ in 0..1 + next() % 3 {
                // Headers are where a lie does harm: the ELF and program
                // headers, the section headers, `.dynamic`, and anywhere.
                let pos = match next() % 4 {
                    0 => (next() % (64 + 56 * 12)) as usize,
                    1 => shoff + (next() % (m.len() - shoff) as u64) as usize,
                    2 => dyn_off + (next() % dyn_len as u64) as usize,
                    _ => (next() % m.len() as u64) as usize,
                }
                .min(m.len() - 1);
                let v = [
                    0u64,
                    1,
                    0xff,
                    0x7fff_ffff,
                    u32::MAX as u64,
                    u64::MAX,
                    next(),
                ][(next() % 7) as usize]
                    .to_le_bytes();
                let n = (m.len() - pos).min([1, 2, 4, 8][(next() % 4) as usize]);
                m[pos..pos + n].copy_from_slice(&v[..n]);
            }
            if next() % 8 == 0 {
                let cut = (next() % m.len() as u64) as usize;
                m.truncate(cut);
            }
            let _ = analyze_elf("/fuzz", &m, &table);
            let _ = FortifyTable::from_libc(&m);
        }
    }
}

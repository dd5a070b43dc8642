//! The hardening analyzer: an image's merged rootfs → [`ImageAnalysis`].
//!
//! Pure: the caller unpacks the image and hands over the file listing and
//! the bytes of every ELF; nothing here touches the filesystem or runs a
//! tool, so `checksec` is only a cross-check in the tests. Per-file facts
//! come from [`analyze_elf`]; image-level facts (shells, coreutils,
//! suid/sgid, world-writable paths, store components) from the listing;
//! [`check_promise`] turns reports into the `build` gate's verdict.

mod elf;
mod facts;
mod fortify;
mod promise;
#[cfg(test)]
mod testelf;
mod view;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use elf::{analyze_elf, Cet, Cfi, ElfError, ElfReport, ElfType, Fortify, FortifyStatus, Relro};
pub use fortify::{FortifyOrigin, FortifyTable};
pub use promise::{
    check_promise, is_excused, Promise, Property, PropertyStatus, UnknownProperty, Violation,
};

use crate::store_path::{StorePath, STORE_DIR};
use facts::ElfParse;
pub use facts::{ElfFacts, FileKind};
use view::PathResolver;

/// One entry of the merged rootfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFile {
    /// Absolute and normalized, e.g. `/nix/store/…-nginx-1.22.1/bin/nginx`.
    pub path: String,
    pub kind: FileKind,
    /// Permission bits including suid (0o4000), sgid (0o2000), sticky (0o1000).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
}

/// What [`analyze_image`] reads: an image already unpacked and merged.
#[derive(Debug, Clone)]
pub struct ImageInput<'a> {
    /// Merged rootfs view (whiteouts already applied).
    pub files: &'a [ImageFile],
    /// What every regular file that starts with `\x7fELF` holds, by path.
    pub elfs: &'a BTreeMap<String, ElfFacts>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub layer_count: usize,
    /// Declared writable directories (from the recipe or labels).
    pub writable: Vec<String>,
}

/// `armorred analyze --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageAnalysis {
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub layer_count: usize,
    pub component_count: usize,
    /// Distinct top-level store paths, sorted.
    pub components: Vec<String>,
    /// One report per analyzable ELF, sorted by path.
    pub binaries: Vec<ElfReport>,
    /// Files that start like an ELF but could not be analyzed. A gate must
    /// treat these as failures: a damaged binary proves nothing.
    pub unreadable_elfs: Vec<UnreadableElf>,
    /// `DT_NEEDED` libraries the dynamic loader would not find inside the
    /// image. Such a binary either fails to start, or, run outside a
    /// container, loads a library from the host that no SBOM lists.
    pub unresolved_libraries: Vec<UnresolvedLibrary>,
    /// Per store path: which properties hold for all its binaries.
    pub hardening_by_component: Vec<ComponentHardening>,
    pub shell: ToolPresence,
    pub coreutils: ToolPresence,
    pub suid_sgid: Vec<SpecialFile>,
    /// World-writable entries outside the declared writable paths, plus
    /// non-sticky world-writable directories inside them.
    pub world_writable: Vec<SpecialFile>,
    /// The declared writable paths `world_writable` was judged against.
    pub writable: Vec<String>,
    pub user: Option<String>,
    /// No user, or user `root`/`0`, with or without a group.
    pub runs_as_root: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableElf {
    pub path: String,
    /// The error and its causes, `: `-joined.
    pub error: String,
}

/// A library an ELF file needs that no directory the loader searches holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnresolvedLibrary {
    pub path: String,
    pub needed: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentHardening {
    /// `None` for ELF files outside `/nix/store`.
    pub store_path: Option<String>,
    /// Executables and shared libraries judged (objects are not).
    pub binaries: usize,
    /// Properties missing in none and present in at least one binary. A
    /// property that applies to none (say fortify in a component that
    /// calls no fortifiable function) is not claimed.
    pub holds_for_all: Vec<Property>,
    pub coverage: BTreeMap<Property, Coverage>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub holds: usize,
    pub missing: usize,
    pub not_applicable: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ToolPresence {
    pub present: bool,
    pub found: Vec<ToolHit>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ToolHit {
    /// The well-known path, or the ELF's own path.
    pub path: String,
    /// The regular file it resolves to inside the image.
    pub resolves_to: String,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// A conventional path such as `/bin/sh` exists (after symlinks).
    WellKnownPath,
    /// An ELF file is named like the tool, wherever it lives.
    ElfName,
    /// An ELF file contains BusyBox's banner: a multi-call shell + coreutils.
    Busybox,
}

/// [`FileKind`] without its link target, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Other,
}

impl From<&FileKind> for EntryKind {
    fn from(k: &FileKind) -> Self {
        match k {
            FileKind::File => EntryKind::File,
            FileKind::Dir => EntryKind::Dir,
            FileKind::Symlink { .. } => EntryKind::Symlink,
            FileKind::Hardlink { .. } => EntryKind::Hardlink,
            FileKind::Other => EntryKind::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecialFile {
    pub path: String,
    pub kind: EntryKind,
    /// Octal, e.g. `4755`.
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
}

const SHELLS: &[&str] = &[
    "sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish",
];
const SHELL_PROVIDERS: &[&str] = &["busybox", "toybox"];
const COREUTILS_PROVIDERS: &[&str] = &["busybox", "toybox", "coreutils"];
const COREUTILS: &[&str] = &[
    "ls", "cat", "cp", "mv", "rm", "ln", "mkdir", "chmod", "chown", "env", "echo", "head", "tail",
    "touch", "id", "uname", "dd", "sleep", "wc", "sort", "tr", "cut",
];
const BIN_DIRS: &[&str] = &["/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin"];
const DEFAULT_LIB_DIRS: &[&str] = &[
    "/lib64",
    "/lib",
    "/usr/lib64",
    "/usr/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
];

pub fn analyze_image(input: &ImageInput) -> ImageAnalysis {
    let view = PathResolver::new(input.files);
    let components: BTreeSet<String> = input
        .files
        .iter()
        .filter_map(|f| store_component(&f.path))
        .collect();

    let mut libcs = LibcTables::new(&view, input.elfs);
    let mut binaries = Vec::new();
    let mut unreadable_elfs = Vec::new();
    for (path, facts) in input.elfs {
        match &facts.parsed {
            ElfParse::Inspected(inspected) => {
                let table = libcs.for_binary(inspected.report());
                binaries.push((**inspected).clone().judge(&table));
            }
            ElfParse::Unreadable(error) => unreadable_elfs.push(UnreadableElf {
                path: path.clone(),
                error: error.clone(),
            }),
        }
    }

    let hardening_by_component = summarize(&binaries);
    let unresolved_libraries = unresolved_libraries(&view, &binaries);
    let user = input.user.clone();
    ImageAnalysis {
        compressed_size: input.compressed_size,
        uncompressed_size: input.uncompressed_size,
        layer_count: input.layer_count,
        component_count: components.len(),
        components: components.into_iter().collect(),
        binaries,
        unreadable_elfs,
        unresolved_libraries,
        hardening_by_component,
        shell: find_tools(&view, input.elfs, SHELLS, SHELL_PROVIDERS),
        coreutils: find_tools(&view, input.elfs, COREUTILS, COREUTILS_PROVIDERS),
        suid_sgid: suid_sgid(input.files),
        world_writable: world_writable(input.files, &input.writable),
        writable: input.writable.iter().map(|w| view::normalize(w)).collect(),
        runs_as_root: runs_as_root(user.as_deref()),
        user,
        labels: input.labels.clone(),
    }
}

/// `/nix/store/<hash>-name` for any path at or below a valid store path.
fn store_component(path: &str) -> Option<String> {
    let rest = path.strip_prefix(STORE_DIR)?.strip_prefix('/')?;
    let top = rest.split('/').next()?;
    StorePath::parse(&format!("{STORE_DIR}/{top}"))
        .ok()
        .map(String::from)
}

/// The directories the dynamic loader searches for `r`'s libraries, in its
/// order: DT_RUNPATH (or DT_RPATH when there is no RUNPATH) with `$ORIGIN`
/// expanded, the interpreter's own directory, then the default directories.
fn library_search_dirs(view: &PathResolver, r: &ElfReport) -> Vec<String> {
    let dir = r.path.rsplit_once('/').map_or("", |(d, _)| d);
    let expand = |entry: &String| -> String {
        let e = entry.replace("${ORIGIN}", dir).replace("$ORIGIN", dir);
        view::normalize(&e)
    };
    // ld.so ignores DT_RPATH when DT_RUNPATH is present.
    let search = if r.runpath.is_empty() {
        &r.rpath
    } else {
        &r.runpath
    };
    // The loader's own directory, as named and after symlinks
    // (/lib64/ld-linux-x86-64.so.2 usually points into the libc's dir).
    let interp = r.interpreter.as_deref();
    let interp_dirs = interp
        .map(str::to_string)
        .into_iter()
        .chain(interp.and_then(|i| view.resolve_file(i)))
        .filter_map(|i| i.rsplit_once('/').map(|(d, _)| d.to_string()));
    search
        .iter()
        .filter(|e| !e.is_empty())
        .map(expand)
        .chain(interp_dirs)
        .chain(DEFAULT_LIB_DIRS.iter().map(|d| d.to_string()))
        .collect()
}

/// Every `DT_NEEDED` entry no search directory holds. A library without
/// RUNPATH or RPATH may also find its needs beside itself: that is how
/// glibc's own libraries (libm needing libc.so.6) are satisfied, since the
/// loader has already mapped the libc of that directory by its soname.
fn unresolved_libraries(view: &PathResolver, binaries: &[ElfReport]) -> Vec<UnresolvedLibrary> {
    let mut out = Vec::new();
    for r in binaries {
        let mut dirs = library_search_dirs(view, r);
        if r.runpath.is_empty() && r.rpath.is_empty() {
            if let Some((own, _)) = r.path.rsplit_once('/') {
                dirs.push(own.to_string());
            }
        }
        for needed in &r.needed {
            // A name with a slash is a path the loader opens as is.
            let found = if needed.contains('/') {
                view.resolve_file(needed).is_some()
            } else {
                dirs.iter()
                    .any(|d| view.resolve_file(&format!("{d}/{needed}")).is_some())
            };
            if !found {
                out.push(UnresolvedLibrary {
                    path: r.path.clone(),
                    needed: needed.clone(),
                });
            }
        }
    }
    out
}

/// Picks, per binary, the `_chk` table of the libc it will load: the first
/// `libc.so*` found along its rpath/runpath, its interpreter's directory
/// and the default directories. Nix closures can hold two glibcs (a
/// bootstrap one, say), so one global choice could judge against the wrong
/// one. Failing that: every libc in the image, then the built-in list.
struct LibcTables<'v, 'a> {
    view: &'v PathResolver<'a>,
    elfs: &'a BTreeMap<String, ElfFacts>,
    by_path: BTreeMap<String, Option<FortifyTable>>,
    fallback: Option<FortifyTable>,
}

impl<'v, 'a> LibcTables<'v, 'a> {
    fn new(view: &'v PathResolver<'a>, elfs: &'a BTreeMap<String, ElfFacts>) -> Self {
        LibcTables {
            view,
            elfs,
            by_path: BTreeMap::new(),
            fallback: None,
        }
    }

    fn load(&mut self, path: &str) -> Option<FortifyTable> {
        if let Some(t) = self.by_path.get(path) {
            return t.clone();
        }
        let table = self
            .elfs
            .get(path)
            .and_then(|facts| facts.libc_chk.clone())
            .map(|chk| FortifyTable::from_functions(chk).with_path(path));
        self.by_path.insert(path.to_string(), table.clone());
        table
    }

    fn for_binary(&mut self, r: &ElfReport) -> FortifyTable {
        let dirs = library_search_dirs(self.view, r);
        let mut names: Vec<&str> = r
            .needed
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("libc.so") || n.starts_with("libc.musl"))
            .collect();
        if names.is_empty() {
            names.push("libc.so.6");
        }
        for d in &dirs {
            for n in &names {
                if let Some(file) = self.view.resolve_file(&format!("{d}/{n}")) {
                    if let Some(t) = self.load(&file) {
                        return t;
                    }
                }
            }
        }
        self.fallback()
    }

    fn fallback(&mut self) -> FortifyTable {
        if let Some(t) = &self.fallback {
            return t.clone();
        }
        let candidates: Vec<String> = self
            .elfs
            .keys()
            .filter(|p| {
                let base = p.rsplit('/').next().unwrap_or(p);
                base.starts_with("libc.so") || (base.starts_with("libc-") && base.ends_with(".so"))
            })
            .cloned()
            .collect();
        let tables: Vec<FortifyTable> = candidates.iter().filter_map(|p| self.load(p)).collect();
        let table = if tables.is_empty() {
            FortifyTable::host_default()
        } else {
            FortifyTable::union(&tables)
        };
        self.fallback = Some(table.clone());
        table
    }
}

fn summarize(binaries: &[ElfReport]) -> Vec<ComponentHardening> {
    let mut by_component: BTreeMap<Option<String>, Vec<&ElfReport>> = BTreeMap::new();
    for r in binaries {
        if matches!(r.elf_type, ElfType::Executable | ElfType::SharedLibrary) {
            by_component
                .entry(store_component(&r.path))
                .or_default()
                .push(r);
        }
    }
    by_component
        .into_iter()
        .map(|(store_path, reports)| {
            let coverage: BTreeMap<Property, Coverage> = Property::ALL
                .into_iter()
                .map(|p| {
                    let mut c = Coverage::default();
                    for r in &reports {
                        match p.check(r) {
                            PropertyStatus::Holds => c.holds += 1,
                            PropertyStatus::Missing => c.missing += 1,
                            PropertyStatus::NotApplicable => c.not_applicable += 1,
                        }
                    }
                    (p, c)
                })
                .collect();
            ComponentHardening {
                store_path,
                binaries: reports.len(),
                holds_for_all: coverage
                    .iter()
                    .filter(|(_, c)| c.missing == 0 && c.holds > 0)
                    .map(|(p, _)| *p)
                    .collect(),
                coverage,
            }
        })
        .collect()
}

/// Finds `names` (or a multi-call `providers` binary) at the conventional
/// bin paths, ELF files so named anywhere (a shell in a store path is one
/// `exec` away), and BusyBox by its banner whatever its name.
fn find_tools(
    view: &PathResolver,
    elfs: &BTreeMap<String, ElfFacts>,
    names: &[&str],
    providers: &[&str],
) -> ToolPresence {
    let mut found = BTreeSet::new();
    for dir in BIN_DIRS {
        for name in names.iter().chain(providers) {
            let path = format!("{dir}/{name}");
            if let Some(resolves_to) = view.resolve_file(&path) {
                found.insert(ToolHit {
                    path,
                    resolves_to,
                    evidence: Evidence::WellKnownPath,
                });
            }
        }
    }
    for (path, facts) in elfs {
        let base = path.rsplit('/').next().unwrap_or(path);
        let mut hit = |evidence| {
            found.insert(ToolHit {
                path: path.clone(),
                resolves_to: path.clone(),
                evidence,
            })
        };
        if names.contains(&base) || providers.contains(&base) {
            hit(Evidence::ElfName);
        }
        if facts.busybox {
            hit(Evidence::Busybox);
        }
    }
    ToolPresence {
        present: !found.is_empty(),
        found: found.into_iter().collect(),
    }
}

fn special(f: &ImageFile) -> SpecialFile {
    SpecialFile {
        path: f.path.clone(),
        kind: EntryKind::from(&f.kind),
        mode: format!("{:o}", f.mode & 0o7777),
        uid: f.uid,
        gid: f.gid,
    }
}

/// Regular files (and hardlinks to them) with suid or sgid. An sgid
/// directory only sets the group of new files, so it is not listed.
fn suid_sgid(files: &[ImageFile]) -> Vec<SpecialFile> {
    let mut out: Vec<SpecialFile> = files
        .iter()
        .filter(|f| matches!(f.kind, FileKind::File | FileKind::Hardlink { .. }))
        .filter(|f| f.mode & 0o6000 != 0)
        .map(special)
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Symlink modes are always 0777 and mean nothing, so symlinks are skipped.
/// Under a declared writable path, world-writable files are the point; a
/// world-writable directory there must still be sticky (like /tmp) so users
/// cannot delete each other's files.
fn world_writable(files: &[ImageFile], writable: &[String]) -> Vec<SpecialFile> {
    let writable: Vec<String> = writable.iter().map(|w| view::normalize(w)).collect();
    let under_writable = |path: &str| {
        let p = view::normalize(path);
        writable.iter().any(|w| {
            w == "/"
                || p == *w
                || p.strip_prefix(w.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    };
    let mut out: Vec<SpecialFile> = files
        .iter()
        .filter(|f| f.mode & 0o002 != 0 && !matches!(f.kind, FileKind::Symlink { .. }))
        .filter(|f| {
            if !under_writable(&f.path) {
                return true;
            }
            matches!(f.kind, FileKind::Dir) && f.mode & 0o1000 == 0
        })
        .map(special)
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn runs_as_root(user: Option<&str>) -> bool {
    let Some(user) = user else { return true };
    let name = user.split(':').next().unwrap_or(user);
    matches!(name, "" | "0" | "root")
}

#[cfg(test)]
mod tests {
    use super::testelf::TestElf;
    use super::*;
    use goblin::elf::dynamic::{DF_1_NOW, DF_1_PIE, DT_FLAGS_1, DT_RUNPATH, DT_SONAME};

    const GLIBC: &str = "/nix/store/0c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-glibc-2.36";
    const GLIBC_OLD: &str = "/nix/store/1c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-glibc-2.30";
    const APP: &str = "/nix/store/2c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-app-1.0";
    const BB: &str = "/nix/store/3c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-busybox-1.36";

    fn file(path: &str, mode: u32) -> ImageFile {
        ImageFile {
            path: path.into(),
            kind: FileKind::File,
            mode,
            uid: 0,
            gid: 0,
            size: 1,
        }
    }
    fn dir(path: &str, mode: u32) -> ImageFile {
        ImageFile {
            kind: FileKind::Dir,
            ..file(path, mode)
        }
    }
    fn link(path: &str, target: &str) -> ImageFile {
        ImageFile {
            kind: FileKind::Symlink {
                target: target.into(),
            },
            ..file(path, 0o777)
        }
    }

    fn libc(chk: &[&str]) -> Vec<u8> {
        chk.iter()
            .fold(
                TestElf::shared_library().dyn_str(DT_SONAME, "libc.so.6"),
                |e, n| e.export_func(n),
            )
            .build()
    }

    fn app(runpath: &str) -> Vec<u8> {
        TestElf::pie_executable()
            .gnu_stack(6)
            .gnu_relro()
            .dyn_int(DT_FLAGS_1, DF_1_NOW | DF_1_PIE)
            .dyn_str(DT_RUNPATH, runpath)
            .needed("libc.so.6")
            .import("memcpy")
            .import("strlcpy")
            .import("__stack_chk_fail")
            .build()
    }

    struct Fixture {
        files: Vec<ImageFile>,
        elfs: BTreeMap<String, Vec<u8>>,
    }

    fn fixture() -> Fixture {
        let mut elfs = BTreeMap::new();
        // The new glibc knows __strlcpy_chk (2.38 did add it); the old one does not.
        elfs.insert(
            format!("{GLIBC}/lib/libc.so.6"),
            libc(&["__memcpy_chk", "__strlcpy_chk"]),
        );
        elfs.insert(
            format!("{GLIBC_OLD}/lib/libc-2.30.so"),
            libc(&["__memcpy_chk"]),
        );
        elfs.insert(format!("{APP}/bin/new"), app(&format!("{GLIBC}/lib")));
        elfs.insert(
            format!("{APP}/bin/old"),
            app(&format!("$ORIGIN/../../{}/lib", &GLIBC_OLD[11..])),
        );
        let mut bb = TestElf::exec().gnu_stack(6).build();
        bb.extend_from_slice(b"BusyBox v1.36.1 (2023)");
        elfs.insert(format!("{BB}/bin/busybox"), bb);
        elfs.insert("/opt/broken".into(), b"\x7fELF\x02\x01garbage".to_vec());
        // No runpath: found through /lib64/ld-linux-x86-64.so.2 → glibc's dir.
        let plain = TestElf::pie_executable().import("strlcpy").build();
        elfs.insert("/usr/bin/plain".into(), plain);

        let mut files: Vec<ImageFile> = elfs.keys().map(|p| file(p, 0o555)).collect();
        files.extend([
            link(&format!("{GLIBC_OLD}/lib/libc.so.6"), "libc-2.30.so"),
            file(&format!("{GLIBC}/lib/ld-linux-x86-64.so.2"), 0o555),
            link(
                "/lib64/ld-linux-x86-64.so.2",
                &format!("{GLIBC}/lib/ld-linux-x86-64.so.2"),
            ),
            dir("/bin", 0o755),
            link("/bin/sh", &format!("{BB}/bin/busybox")),
            link("/bin/ls", "/nope"),
            file("/usr/bin/env", 0o755),
            file(&format!("{APP}/bin/su"), 0o4755),
            file(&format!("{APP}/bin/wall"), 0o2755),
            dir(&format!("{APP}/share"), 0o2755),
            file("/etc/passwd", 0o666),
            dir("/tmp", 0o1777),
            dir("/var/cache", 0o777),
            file("/var/cache/x", 0o666),
            dir("/var/cache/app", 0o1777),
            dir("/nix/store/.links", 0o755),
        ]);
        Fixture { files, elfs }
    }

    fn analyze(fx: &Fixture, user: Option<&str>) -> ImageAnalysis {
        analyze_image(&ImageInput {
            files: &fx.files,
            elfs: &ElfFacts::of_all(&fx.elfs),
            user: user.map(str::to_string),
            labels: BTreeMap::from([("org.opencontainers.image.title".into(), "app".into())]),
            compressed_size: 10,
            uncompressed_size: 20,
            layer_count: 3,
            writable: vec!["/var/cache/".into()],
        })
    }

    #[test]
    fn libraries_the_image_lacks_are_named() {
        let mut elfs = BTreeMap::new();
        elfs.insert(format!("{GLIBC}/lib/libc.so.6"), libc(&["__memcpy_chk"]));
        // glibc's own libraries carry no RUNPATH and find libc beside them
        elfs.insert(
            format!("{GLIBC}/lib/libm.so.6"),
            TestElf::shared_library().needed("libc.so.6").build(),
        );
        let needs_cxx = TestElf::pie_executable()
            .dyn_str(DT_RUNPATH, &format!("{GLIBC}/lib"))
            .needed("libc.so.6")
            .needed("libm.so.6")
            .needed("libstdc++.so.6")
            .build();
        elfs.insert(format!("{APP}/bin/server"), needs_cxx);
        // no RUNPATH, outside glibc's directory: libz is nowhere it looks
        elfs.insert(
            "/usr/bin/tool".into(),
            TestElf::pie_executable().needed("libz.so.1").build(),
        );
        let files: Vec<ImageFile> = elfs.keys().map(|p| file(p, 0o555)).collect();
        let fx = Fixture { files, elfs };
        let a = analyze(&fx, None);
        let got: Vec<(&str, &str)> = a
            .unresolved_libraries
            .iter()
            .map(|u| (u.path.as_str(), u.needed.as_str()))
            .collect();
        let server = format!("{APP}/bin/server");
        assert_eq!(
            got,
            [
                (server.as_str(), "libstdc++.so.6"),
                ("/usr/bin/tool", "libz.so.1")
            ]
        );
    }

    #[test]
    fn judges_fortify_against_the_binarys_own_libc() {
        let a = analyze(&fixture(), None);
        let get = |p: &str| a.binaries.iter().find(|b| b.path == p).unwrap();
        let new = get(&format!("{APP}/bin/new"));
        assert_eq!(new.fortify.fortifiable, ["memcpy", "strlcpy"]);
        assert_eq!(
            new.fortify.judged_against,
            FortifyOrigin::ImageLibc {
                paths: vec![format!("{GLIBC}/lib/libc.so.6")]
            }
        );
        // $ORIGIN/../../<old glibc>/lib/libc.so.6 → symlink → libc-2.30.so.
        let old = get(&format!("{APP}/bin/old"));
        assert_eq!(old.fortify.fortifiable, ["memcpy"]);
        assert_eq!(
            old.fortify.judged_against,
            FortifyOrigin::ImageLibc {
                paths: vec![format!("{GLIBC_OLD}/lib/libc-2.30.so")]
            }
        );
        let plain = get("/usr/bin/plain");
        assert_eq!(plain.fortify.fortifiable, ["strlcpy"]);
        assert_eq!(new.fortify.judged_against, plain.fortify.judged_against);
        // Busybox resolves no libc: judged against both image libcs.
        let bb = get(&format!("{BB}/bin/busybox"));
        assert!(
            matches!(&bb.fortify.judged_against, FortifyOrigin::ImageLibc { paths } if paths.len() == 2)
        );
    }

    #[test]
    fn image_level_findings() {
        let a = analyze(&fixture(), Some("1000:1000"));
        assert_eq!(a.layer_count, 3);
        assert_eq!((a.compressed_size, a.uncompressed_size), (10, 20));
        assert_eq!(a.components, [GLIBC, GLIBC_OLD, APP, BB]);
        assert_eq!(a.component_count, 4);
        assert!(!a.runs_as_root);
        assert_eq!(a.labels["org.opencontainers.image.title"], "app");

        let paths: Vec<&str> = a.binaries.iter().map(|b| b.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert_eq!(a.unreadable_elfs.len(), 1);
        assert_eq!(a.unreadable_elfs[0].path, "/opt/broken");
        assert!(a.unreadable_elfs[0].error.starts_with("malformed ELF: "));

        let busybox = format!("{BB}/bin/busybox");
        assert!(a.shell.present);
        let shell: Vec<(&str, &str, Evidence)> = a
            .shell
            .found
            .iter()
            .map(|h| (h.path.as_str(), h.resolves_to.as_str(), h.evidence))
            .collect();
        assert_eq!(
            shell,
            [
                ("/bin/sh", busybox.as_str(), Evidence::WellKnownPath),
                (busybox.as_str(), busybox.as_str(), Evidence::ElfName),
                (busybox.as_str(), busybox.as_str(), Evidence::Busybox),
            ]
        );
        // /bin/ls dangles, so it does not count; /usr/bin/env and busybox do.
        assert!(a.coreutils.present);
        let core: Vec<(&str, Evidence)> = a
            .coreutils
            .found
            .iter()
            .map(|h| (h.path.as_str(), h.evidence))
            .collect();
        assert_eq!(
            core,
            [
                (busybox.as_str(), Evidence::ElfName),
                (&busybox, Evidence::Busybox),
                ("/usr/bin/env", Evidence::WellKnownPath),
            ]
        );

        let suid: Vec<(&str, &str)> = a
            .suid_sgid
            .iter()
            .map(|s| (s.path.as_str(), s.mode.as_str()))
            .collect();
        assert_eq!(
            suid,
            [
                (format!("{APP}/bin/su").as_str(), "4755"),
                (format!("{APP}/bin/wall").as_str(), "2755")
            ]
        );

        let ww: Vec<(&str, EntryKind)> = a
            .world_writable
            .iter()
            .map(|s| (s.path.as_str(), s.kind))
            .collect();
        assert_eq!(
            ww,
            [
                ("/etc/passwd", EntryKind::File),
                ("/tmp", EntryKind::Dir),
                ("/var/cache", EntryKind::Dir)
            ]
        );
        assert_eq!(a.writable, ["/var/cache"]);
    }

    #[test]
    fn component_summary() {
        let a = analyze(&fixture(), None);
        assert!(a.runs_as_root);
        let app = a
            .hardening_by_component
            .iter()
            .find(|c| c.store_path.as_deref() == Some(APP))
            .unwrap();
        assert_eq!(app.binaries, 2);
        assert_eq!(
            app.holds_for_all,
            [
                Property::RelroFull,
                Property::BindNow,
                Property::Canary,
                Property::Nx,
                Property::Pie
            ]
        );
        assert_eq!(
            app.coverage[&Property::Fortify],
            Coverage {
                holds: 0,
                missing: 2,
                not_applicable: 0
            }
        );
        let glibc = a
            .hardening_by_component
            .iter()
            .find(|c| c.store_path.as_deref() == Some(GLIBC))
            .unwrap();
        // Fortify applies to nothing in libc itself: not claimed.
        assert!(!glibc.holds_for_all.contains(&Property::Fortify));
        assert_eq!(glibc.coverage[&Property::Fortify].not_applicable, 1);
    }

    #[test]
    fn no_libc_uses_host_default_and_serializes() {
        let mut elfs = BTreeMap::new();
        elfs.insert("/app".to_string(), TestElf::exec().import("memcpy").build());
        let files = vec![file("/app", 0o755)];
        let a = analyze_image(&ImageInput {
            files: &files,
            elfs: &ElfFacts::of_all(&elfs),
            user: Some("root:root".into()),
            labels: BTreeMap::new(),
            compressed_size: 0,
            uncompressed_size: 0,
            layer_count: 1,
            writable: vec![],
        });
        assert!(a.runs_as_root && !a.shell.present && !a.coreutils.present);
        assert_eq!(a.components, Vec::<String>::new());
        assert_eq!(
            a.binaries[0].fortify.judged_against,
            FortifyOrigin::HostDefault
        );
        assert_eq!(a.hardening_by_component[0].store_path, None);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["binaries"][0]["elf_type"], "executable");
        assert_eq!(json["binaries"][0]["relro"], "none");
        assert_eq!(json["binaries"][0]["fortify"]["status"], "unfortified");
        assert_eq!(
            json["binaries"][0]["fortify"]["judged_against"]["kind"],
            "host-default"
        );
        assert_eq!(
            json["hardening_by_component"][0]["coverage"]["relro_full"]["missing"],
            1
        );
    }

    #[test]
    fn store_components() {
        assert_eq!(
            store_component(&format!("{APP}/bin/x")).as_deref(),
            Some(APP)
        );
        assert_eq!(store_component(APP).as_deref(), Some(APP));
        assert_eq!(store_component("/nix/store/.links/abc"), None);
        assert_eq!(store_component("/nix/store"), None);
        assert_eq!(store_component("/usr/bin/x"), None);
    }
}

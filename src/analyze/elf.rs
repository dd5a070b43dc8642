//! One ELF file → [`ElfReport`]: which hardening features it carries.
//!
//! Input is untrusted bytes (image layers, fuzzers). Every header field we
//! follow is bounds-checked before use, either by goblin or by
//! [`parse_checked`], and any inconsistency becomes an [`ElfError`]. Nothing
//! here panics on data-derived values.
//!
//! The column definitions follow Debian's `checksec` 2.6 (`/usr/bin/checksec`,
//! function `filecheck`) so the two agree on RELRO, canary, NX, PIE, RPATH,
//! RUNPATH, symbols and FORTIFY; where we are stricter or broader, the field's
//! doc comment says so.

use std::collections::BTreeSet;

use goblin::elf::dynamic::{DF_1_NOW, DF_1_PIE, DF_BIND_NOW, DT_BIND_NOW, DT_DEBUG};
use goblin::elf::header::{EM_386, EM_X86_64, ET_DYN, ET_EXEC, ET_REL};
use goblin::elf::program_header::{
    ProgramHeader, PF_X, PT_GNU_PROPERTY, PT_GNU_RELRO, PT_GNU_STACK, PT_INTERP, PT_NOTE,
};
use goblin::elf::section_header::{SHF_EXECINSTR, SHT_NOBITS, SHT_NOTE, SHT_SYMTAB};
use goblin::elf::sym::{Sym, STB_LOCAL};
use goblin::elf::Elf;
use serde::{Deserialize, Serialize};

use super::fortify::{FortifyOrigin, FortifyTable};
use crate::store_path::STORE_DIR;

/// Why an ELF file could not be analyzed.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    /// A header points outside the file or claims an impossible size:
    /// a truncated download, a damaged layer, or a deliberately lying header.
    #[error("truncated or inconsistent ELF: {0}")]
    Inconsistent(String),
    #[error("malformed ELF")]
    Parse(#[source] goblin::error::Error),
    /// [`FortifyTable::from_libc`] was given an ELF that exports nothing.
    #[error("not a shared C library: it has no dynamic symbol table")]
    NotALibrary,
}

/// What kind of object the file is, as far as hardening is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElfType {
    /// `ET_EXEC`, or an `ET_DYN` built as a PIE.
    Executable,
    SharedLibrary,
    /// An `.o` file: never loaded, so only CET/NX notes are meaningful.
    Relocatable,
    /// Core dumps and processor-specific types.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relro {
    None,
    Partial,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FortifyStatus {
    /// At least one `__*_chk` function is imported.
    Fortified,
    /// Fortifiable functions are imported, but none of their `_chk` forms.
    Unfortified,
    /// Nothing the libc could fortify is imported, so the flag cannot show.
    NotApplicable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fortify {
    pub status: FortifyStatus,
    /// Imported `__X_chk` functions, sorted.
    pub fortified: Vec<String>,
    /// Imported plain `X` for which the libc exports `__X_chk`, sorted.
    /// checksec's "fortify-able" column is `fortified_count + fortifiable_count`.
    pub fortifiable: Vec<String>,
    pub fortified_count: usize,
    pub fortifiable_count: usize,
    /// Which libc's `_chk` list `fortifiable` was judged against.
    pub judged_against: FortifyOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cfi {
    /// Clang CFI jump-table symbols seen or the cross-DSO runtime referenced.
    pub enabled: bool,
    /// Distinct symbols named `*.cfi` or `*.cfi_jt`. These live in `.symtab`,
    /// so a fully stripped binary shows 0 even if it was built with CFI.
    pub symbols: usize,
    /// `__cfi_check` or `__cfi_slowpath*` present (`-fsanitize-cfi-cross-dso`).
    pub cross_dso: bool,
}

/// x86 Control-flow Enforcement Technology markers from `.note.gnu.property`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cet {
    pub ibt: bool,
    pub shstk: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElfReport {
    pub path: String,
    pub elf_type: ElfType,
    /// `x86_64`, `i386`, `aarch64`, … (goblin's machine names, lowercased).
    pub machine: String,
    pub bits: u8,
    /// A position-independent *executable*. Shared libraries report false
    /// (checksec: "DSO"); they are position-independent unless `textrel`.
    pub pie: bool,
    /// `DT_TEXTREL`/`DF_TEXTREL`: the loader must write to code pages.
    pub textrel: bool,
    pub relro: Relro,
    /// `DT_BIND_NOW`, `DF_BIND_NOW` or `DF_1_NOW`.
    pub bind_now: bool,
    /// A `__stack_chk_fail`/`__stack_chk_guard` symbol (imported or defined)
    /// in `.dynsym` or `.symtab`, matched as checksec does (substring).
    pub canary: bool,
    /// `PT_GNU_STACK` without `PF_X`. A missing `PT_GNU_STACK` makes glibc's
    /// loader assume an executable stack, so it counts as no NX.
    pub nx: bool,
    pub fortify: Fortify,
    pub cfi: Cfi,
    /// `__safestack_init` defined or `__safestack_unsafe_stack_ptr` referenced.
    pub safestack: bool,
    pub cet: Cet,
    /// `DT_RPATH` entries, split on `:` (an empty entry means the cwd).
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    /// Some rpath/runpath entry resolves outside `/nix/store` (an
    /// `$ORIGIN`-relative entry is resolved against this file's directory).
    pub rpath_outside_store: bool,
    /// No `.symtab` section.
    pub stripped: bool,
    pub interpreter: Option<String>,
    pub soname: Option<String>,
    pub needed: Vec<String>,
}

/// Analyzes one ELF file. `fortify` is the `_chk` list of the libc the file
/// will run against (see [`FortifyTable`]).
pub fn analyze_elf(path: &str, data: &[u8], fortify: &FortifyTable) -> Result<ElfReport, ElfError> {
    let inspected = inspect(path, data)?;
    Ok(inspected.judge(fortify))
}

/// Everything about a file except its fortify verdict, which needs the
/// right libc; the image analyzer picks that libc from the runpath.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Inspected {
    report: ElfReport,
    imports: BTreeSet<String>,
}

impl Inspected {
    pub(crate) fn report(&self) -> &ElfReport {
        &self.report
    }

    pub(crate) fn judge(mut self, table: &FortifyTable) -> ElfReport {
        self.report.fortify = judge_fortify(&self.imports, table);
        self.report
    }
}

pub(crate) fn inspect(path: &str, data: &[u8]) -> Result<Inspected, ElfError> {
    let elf = parse_checked(data)?;
    let machine = elf.header.e_machine;
    let dyn_info = elf.dynamic.as_ref();
    let has_tag = |tag: u64| dyn_info.is_some_and(|d| d.dyns.iter().any(|e| e.d_tag == tag));
    let flags = dyn_info.map_or(0, |d| d.info.flags);
    let flags_1 = dyn_info.map_or(0, |d| d.info.flags_1);

    let elf_type = classify(&elf, has_tag(DT_DEBUG));
    let bind_now = has_tag(DT_BIND_NOW) || flags & DF_BIND_NOW != 0 || flags_1 & DF_1_NOW != 0;
    let has_relro = elf.program_headers.iter().any(|p| p.p_type == PT_GNU_RELRO);
    let relro = match (has_relro, bind_now) {
        (false, _) => Relro::None,
        (true, false) => Relro::Partial,
        (true, true) => Relro::Full,
    };

    let symbols = Symbols::collect(&elf);
    let canary = symbols.any_name(|n| {
        n.contains("__stack_chk_fail")
            || n.contains("__stack_chk_guard")
            || n.contains("__intel_security_cookie")
    });
    let cfi_symbols: BTreeSet<&str> = symbols
        .iter()
        .map(|s| s.name)
        .filter(|n| n.len() > 4 && (n.ends_with(".cfi") || n.ends_with(".cfi_jt")))
        .collect();
    let cross_dso = symbols.any_name(|n| n == "__cfi_check" || n.starts_with("__cfi_slowpath"));
    let safestack = symbols
        .iter()
        .any(|s| s.name == "__safestack_init" && s.defined)
        || symbols.any_name(|n| n == "__safestack_unsafe_stack_ptr");

    let split = |entries: &[&str]| -> Vec<String> {
        entries
            .iter()
            .flat_map(|e| e.split(':'))
            .map(str::to_string)
            .collect()
    };
    let rpath = split(&elf.rpaths);
    let runpath = split(&elf.runpaths);
    let rpath_outside_store = rpath
        .iter()
        .chain(&runpath)
        .any(|entry| !search_entry_in_store(path, entry));

    let report = ElfReport {
        path: path.to_string(),
        elf_type,
        machine: machine_name(machine),
        bits: if elf.is_64 { 64 } else { 32 },
        pie: elf_type == ElfType::Executable && elf.header.e_type == ET_DYN,
        textrel: dyn_info.is_some_and(|d| d.info.textrel),
        relro,
        bind_now,
        canary,
        nx: stack_not_executable(&elf),
        fortify: judge_fortify(&BTreeSet::new(), &FortifyTable::empty()),
        cfi: Cfi {
            enabled: !cfi_symbols.is_empty() || cross_dso,
            symbols: cfi_symbols.len(),
            cross_dso,
        },
        safestack,
        cet: if machine == EM_X86_64 || machine == EM_386 {
            x86_cet(&elf, data)
        } else {
            Cet::default()
        },
        rpath,
        runpath,
        rpath_outside_store,
        stripped: !elf.section_headers.iter().any(|s| s.sh_type == SHT_SYMTAB),
        interpreter: elf.interpreter.map(str::to_string),
        soname: elf.soname.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
    };
    let imports = symbols
        .iter()
        .filter(|s| s.dynamic && !s.defined && s.global)
        .map(|s| s.name.to_string())
        .collect();
    Ok(Inspected { report, imports })
}

fn machine_name(machine: u16) -> String {
    match machine {
        EM_386 => "i386".to_string(),
        m => goblin::elf::header::machine_to_str(m).to_ascii_lowercase(),
    }
}

/// Segments claiming more memory than this are lies: real ones are far
/// smaller, and the bound keeps goblin's address arithmetic (hash tables,
/// vm→offset) from overflowing, which panics in debug builds.
const MAX_SEGMENT_SPAN: u64 = 1 << 40;

/// goblin plus the consistency checks goblin leaves out: every segment and
/// every section that occupies file bytes must lie inside the file.
pub(crate) fn parse_checked(data: &[u8]) -> Result<Elf<'_>, ElfError> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let header = Elf::parse_header(data).map_err(ElfError::Parse)?;
    let container = header.container().map_err(ElfError::Parse)?;
    let endian = header.endianness().map_err(ElfError::Parse)?;
    let ctx = goblin::container::Ctx::new(container, endian);
    let phdrs = ProgramHeader::parse(data, header.e_phoff as usize, header.e_phnum as usize, ctx)
        .map_err(ElfError::Parse)?;
    let len = data.len() as u64;
    for (i, ph) in phdrs.iter().enumerate() {
        let end = ph.p_offset.checked_add(ph.p_filesz);
        if end.is_none_or(|end| end > len) {
            return Err(ElfError::Inconsistent(format!(
                "program header {i} covers bytes {:#x}+{:#x} of a {len}-byte file",
                ph.p_offset, ph.p_filesz
            )));
        }
        if ph.p_memsz > MAX_SEGMENT_SPAN || ph.p_vaddr.checked_add(ph.p_memsz).is_none() {
            return Err(ElfError::Inconsistent(format!(
                "program header {i} claims {:#x} bytes of memory at {:#x}",
                ph.p_memsz, ph.p_vaddr
            )));
        }
    }
    let elf = Elf::parse(data).map_err(ElfError::Parse)?;
    for (i, sh) in elf.section_headers.iter().enumerate() {
        if sh.sh_type == SHT_NOBITS || sh.sh_size == 0 {
            continue;
        }
        let end = sh.sh_offset.checked_add(sh.sh_size);
        if end.is_none_or(|end| end > len) {
            return Err(ElfError::Inconsistent(format!(
                "section {i} covers bytes {:#x}+{:#x} of a {len}-byte file",
                sh.sh_offset, sh.sh_size
            )));
        }
    }
    Ok(elf)
}

/// checksec calls an `ET_DYN` with `DT_DEBUG` a PIE. Newer linkers also set
/// `DF_1_PIE`; older ones leave only `PT_INTERP` without a soname to tell a
/// PIE from a library (libc.so.6 has `PT_INTERP` *and* a soname).
fn classify(elf: &Elf, has_debug: bool) -> ElfType {
    let flags_1 = elf.dynamic.as_ref().map_or(0, |d| d.info.flags_1);
    match elf.header.e_type {
        ET_EXEC => ElfType::Executable,
        ET_DYN => {
            let has_interp = elf.program_headers.iter().any(|p| p.p_type == PT_INTERP);
            if flags_1 & DF_1_PIE != 0 || has_debug || (has_interp && elf.soname.is_none()) {
                ElfType::Executable
            } else {
                ElfType::SharedLibrary
            }
        }
        ET_REL => ElfType::Relocatable,
        _ => ElfType::Other,
    }
}

fn stack_not_executable(elf: &Elf) -> bool {
    if elf.header.e_type == ET_REL {
        // Objects carry the request as an empty `.note.GNU-stack` section.
        return elf.section_headers.iter().any(|s| {
            elf.shdr_strtab.get_at(s.sh_name) == Some(".note.GNU-stack")
                && s.sh_flags & u64::from(SHF_EXECINSTR) == 0
        });
    }
    elf.program_headers
        .iter()
        .find(|p| p.p_type == PT_GNU_STACK)
        .is_some_and(|p| p.p_flags & PF_X == 0)
}

/// Whether a search-path entry keeps library lookup inside the store.
/// An empty entry means the current directory, which is never safe.
fn search_entry_in_store(file: &str, entry: &str) -> bool {
    let origin_rest = entry
        .strip_prefix("$ORIGIN")
        .or_else(|| entry.strip_prefix("${ORIGIN}"));
    let resolved = match origin_rest {
        Some(rest) => {
            let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
            // A file outside the store has no store to escape from.
            if !file.starts_with(&format!("{STORE_DIR}/")) {
                return true;
            }
            super::view::normalize(&format!("{dir}/{rest}"))
        }
        None if entry.starts_with('/') => super::view::normalize(entry),
        None => return false,
    };
    resolved
        .strip_prefix(STORE_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|r| !r.is_empty())
}

/// A symbol from `.dynsym` or `.symtab` with its name resolved.
struct SymbolRef<'a> {
    name: &'a str,
    defined: bool,
    global: bool,
    dynamic: bool,
}

struct Symbols<'a>(Vec<SymbolRef<'a>>);

impl<'a> Symbols<'a> {
    fn collect(elf: &Elf<'a>) -> Self {
        let from = |sym: Sym, name: Option<&'a str>, dynamic: bool| {
            name.filter(|n| !n.is_empty()).map(|name| SymbolRef {
                name,
                defined: sym.st_shndx != 0,
                global: sym.st_bind() != STB_LOCAL,
                dynamic,
            })
        };
        let dynsyms = elf
            .dynsyms
            .iter()
            .filter_map(|s| from(s, elf.dynstrtab.get_at(s.st_name), true));
        let syms = elf
            .syms
            .iter()
            .filter_map(|s| from(s, elf.strtab.get_at(s.st_name), false));
        Symbols(dynsyms.chain(syms).collect())
    }

    fn iter(&self) -> impl Iterator<Item = &SymbolRef<'a>> {
        self.0.iter()
    }

    fn any_name(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.0.iter().any(|s| pred(s.name))
    }
}

/// Fortified means an imported `__X_chk`; fortifiable means an imported `X`
/// whose `__X_chk` the libc exports. This is checksec's count restricted to
/// imports, which is what a fortified call site turns into.
fn judge_fortify(imports: &BTreeSet<String>, table: &FortifyTable) -> Fortify {
    let fortified: Vec<String> = imports
        .iter()
        .filter(|n| n.len() > 6 && n.starts_with("__") && n.ends_with("_chk"))
        .cloned()
        .collect();
    let fortifiable: Vec<String> = imports
        .iter()
        .filter(|n| table.contains(n))
        .cloned()
        .collect();
    let status = if !fortified.is_empty() {
        FortifyStatus::Fortified
    } else if !fortifiable.is_empty() {
        FortifyStatus::Unfortified
    } else {
        FortifyStatus::NotApplicable
    };
    Fortify {
        status,
        fortified_count: fortified.len(),
        fortifiable_count: fortifiable.len(),
        fortified,
        fortifiable,
        judged_against: table.origin().clone(),
    }
}

const NT_GNU_PROPERTY_TYPE_0: u32 = 5;
const GNU_PROPERTY_X86_FEATURE_1_AND: u32 = 0xc000_0002;
const GNU_PROPERTY_X86_FEATURE_1_IBT: u32 = 1;
const GNU_PROPERTY_X86_FEATURE_1_SHSTK: u32 = 2;

/// Reads the x86 feature bits from `.note.gnu.property`, or from the
/// segments that carry it when section headers were stripped away.
fn x86_cet(elf: &Elf, data: &[u8]) -> Cet {
    let mut blobs: Vec<(&[u8], u64)> = elf
        .section_headers
        .iter()
        .filter(|s| {
            s.sh_type == SHT_NOTE && elf.shdr_strtab.get_at(s.sh_name) == Some(".note.gnu.property")
        })
        .filter_map(|s| Some((file_range(data, s.sh_offset, s.sh_size)?, s.sh_addralign)))
        .collect();
    if blobs.is_empty() {
        let segments = |ty: u32| {
            elf.program_headers
                .iter()
                .filter(move |p| p.p_type == ty)
                .filter_map(|p| Some((file_range(data, p.p_offset, p.p_filesz)?, p.p_align)))
        };
        blobs = segments(PT_GNU_PROPERTY).collect();
        if blobs.is_empty() {
            blobs = segments(PT_NOTE).collect();
        }
    }
    let bits = blobs
        .iter()
        .find_map(|(blob, align)| x86_feature_1_and(blob, *align, elf.little_endian, elf.is_64))
        .unwrap_or(0);
    Cet {
        ibt: bits & GNU_PROPERTY_X86_FEATURE_1_IBT != 0,
        shstk: bits & GNU_PROPERTY_X86_FEATURE_1_SHSTK != 0,
    }
}

fn file_range(data: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    data.get(start..end)
}

fn read_u32(b: &[u8], off: usize, little_endian: bool) -> Option<u32> {
    let bytes: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(if little_endian {
        u32::from_le_bytes(bytes)
    } else {
        u32::from_be_bytes(bytes)
    })
}

fn align_up(v: usize, align: usize) -> Option<usize> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

/// Walks a note blob for a GNU `NT_GNU_PROPERTY_TYPE_0` note and returns its
/// `GNU_PROPERTY_X86_FEATURE_1_AND` word. `note_align` is the section's or
/// segment's alignment (8 for property notes in ELF64, per the x86-64 psABI).
pub(crate) fn x86_feature_1_and(
    blob: &[u8],
    note_align: u64,
    little_endian: bool,
    is_64: bool,
) -> Option<u32> {
    let align = if note_align == 8 { 8 } else { 4 };
    let prop_align = if is_64 { 8 } else { 4 };
    let mut off = 0usize;
    while off < blob.len() {
        let namesz = read_u32(blob, off, little_endian)? as usize;
        let descsz = read_u32(blob, off + 4, little_endian)? as usize;
        let ntype = read_u32(blob, off + 8, little_endian)?;
        let name_start = off.checked_add(12)?;
        let desc_start = align_up(name_start.checked_add(namesz)?, align)?;
        let desc_end = desc_start.checked_add(descsz)?;
        let name = blob.get(name_start..name_start.checked_add(namesz)?)?;
        let desc = blob.get(desc_start..desc_end)?;
        if ntype == NT_GNU_PROPERTY_TYPE_0 && name == b"GNU\0" {
            let mut p = 0usize;
            while p.checked_add(8)? <= desc.len() {
                let pr_type = read_u32(desc, p, little_endian)?;
                let pr_datasz = read_u32(desc, p + 4, little_endian)? as usize;
                let data_end = p.checked_add(8)?.checked_add(pr_datasz)?;
                if data_end > desc.len() {
                    return None;
                }
                if pr_type == GNU_PROPERTY_X86_FEATURE_1_AND && pr_datasz >= 4 {
                    return read_u32(desc, p + 8, little_endian);
                }
                p = align_up(data_end, prop_align)?;
            }
        }
        off = align_up(desc_end, align)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::testelf::{note_gnu_property, Sym as S, TestElf};
    use goblin::elf::dynamic::{DT_FLAGS, DT_FLAGS_1, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_TEXTREL};

    fn table() -> FortifyTable {
        FortifyTable::host_default()
    }

    fn hardened_exe() -> TestElf {
        TestElf::pie_executable()
            .gnu_stack(6)
            .gnu_relro()
            .dyn_int(DT_FLAGS, DF_BIND_NOW)
            .dyn_int(DT_FLAGS_1, DF_1_NOW | DF_1_PIE)
            .dyn_int(DT_DEBUG, 0)
            .needed("libc.so.6")
            .import("__stack_chk_fail")
            .import("__memcpy_chk")
            .import("read")
            .import("puts")
            .symtab(vec![S::local_func("main")])
    }

    #[test]
    fn hardened_executable() {
        let bytes = hardened_exe().build();
        let r = analyze_elf("/nix/store/x/bin/a", &bytes, &table()).unwrap();
        assert_eq!(r.elf_type, ElfType::Executable);
        assert!(r.pie && r.nx && r.canary && r.bind_now && !r.stripped && !r.textrel);
        assert_eq!(r.relro, Relro::Full);
        assert_eq!(r.fortify.status, FortifyStatus::Fortified);
        assert_eq!(r.fortify.fortified, ["__memcpy_chk"]);
        assert_eq!(r.fortify.fortifiable, ["read"]);
        assert_eq!(r.needed, ["libc.so.6"]);
        assert_eq!(
            r.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(r.machine, "x86_64");
        assert!(!r.cfi.enabled && !r.safestack && r.cet == Cet::default());
    }

    #[test]
    fn unhardened_executable() {
        let bytes = TestElf::exec()
            .gnu_stack(7)
            .import("memcpy")
            .import("strcpy")
            .build();
        let r = analyze_elf("/a", &bytes, &table()).unwrap();
        assert_eq!(r.elf_type, ElfType::Executable);
        assert!(!r.pie && !r.nx && !r.canary && !r.bind_now && r.stripped);
        assert_eq!(r.relro, Relro::None);
        assert_eq!(r.fortify.status, FortifyStatus::Unfortified);
        assert_eq!(r.fortify.fortifiable, ["memcpy", "strcpy"]);
    }

    #[test]
    fn partial_relro_and_missing_gnu_stack() {
        let bytes = TestElf::exec().gnu_relro().build();
        let r = analyze_elf("/a", &bytes, &table()).unwrap();
        assert_eq!(r.relro, Relro::Partial);
        // No PT_GNU_STACK: the loader's default is an executable stack.
        assert!(!r.nx);
        assert_eq!(r.fortify.status, FortifyStatus::NotApplicable);
    }

    #[test]
    fn bind_now_by_each_encoding() {
        for b in [
            TestElf::exec().dyn_int(DT_BIND_NOW, 0),
            TestElf::exec().dyn_int(DT_FLAGS, DF_BIND_NOW),
            TestElf::exec().dyn_int(DT_FLAGS_1, DF_1_NOW),
        ] {
            let r = analyze_elf("/a", &b.gnu_relro().build(), &table()).unwrap();
            assert!(r.bind_now);
            assert_eq!(r.relro, Relro::Full);
        }
    }

    #[test]
    fn shared_library_versus_pie() {
        let lib = TestElf::shared_library()
            .dyn_str(DT_SONAME, "libz.so.1")
            .dyn_int(DT_TEXTREL, 0)
            .build();
        let r = analyze_elf("/l", &lib, &table()).unwrap();
        assert_eq!(r.elf_type, ElfType::SharedLibrary);
        assert!(!r.pie && r.textrel);
        assert_eq!(r.soname.as_deref(), Some("libz.so.1"));

        // Old linkers: no DF_1_PIE and no DT_DEBUG, but an interpreter and no soname.
        let old_pie = TestElf::pie_executable().build();
        let r = analyze_elf("/p", &old_pie, &table()).unwrap();
        assert_eq!(r.elf_type, ElfType::Executable);
        assert!(r.pie);

        // libc.so.6 is runnable (PT_INTERP) yet a library (soname).
        let libc = TestElf::pie_executable()
            .dyn_str(DT_SONAME, "libc.so.6")
            .build();
        let r = analyze_elf("/libc.so.6", &libc, &table()).unwrap();
        assert_eq!(r.elf_type, ElfType::SharedLibrary);
    }

    #[test]
    fn cfi_safestack_canary_symbols() {
        let bytes = TestElf::pie_executable()
            .symtab(vec![
                S::local_func("add.cfi"),
                S::local_func("mul.cfi"),
                S::local_func("add.cfi"),
                S::local_func("f.cfi_jt"),
                S::global_func("__safestack_init"),
                S::local_func(".cfi"),
            ])
            .build();
        let r = analyze_elf("/a", &bytes, &table()).unwrap();
        assert!(r.cfi.enabled && !r.cfi.cross_dso);
        assert_eq!(r.cfi.symbols, 3);
        assert!(r.safestack);
        assert!(!r.canary);

        // An *undefined* __safestack_init is not the runtime; the TLS pointer
        // reference is what instrumented code in a library shows.
        let lib = TestElf::shared_library().import("__safestack_init").build();
        assert!(!analyze_elf("/l", &lib, &table()).unwrap().safestack);
        let lib = TestElf::shared_library()
            .import("__safestack_unsafe_stack_ptr")
            .import("__cfi_slowpath")
            .import("__stack_chk_guard")
            .build();
        let r = analyze_elf("/l", &lib, &table()).unwrap();
        assert!(r.safestack && r.cfi.enabled && r.cfi.cross_dso && r.canary);
    }

    #[test]
    fn cet_from_property_note() {
        let both = TestElf::pie_executable()
            .note_section(note_gnu_property(&[(GNU_PROPERTY_X86_FEATURE_1_AND, 3)]))
            .build();
        let r = analyze_elf("/a", &both, &table()).unwrap();
        assert_eq!(
            r.cet,
            Cet {
                ibt: true,
                shstk: true
            }
        );

        // An ISA-level property first, then IBT only.
        let ibt = TestElf::pie_executable()
            .note_section(note_gnu_property(&[
                (0xc000_8002, 1),
                (GNU_PROPERTY_X86_FEATURE_1_AND, 1),
            ]))
            .build();
        let r = analyze_elf("/a", &ibt, &table()).unwrap();
        assert_eq!(
            r.cet,
            Cet {
                ibt: true,
                shstk: false
            }
        );

        // The same bits on aarch64 mean BTI/PAC, not CET.
        let arm = TestElf::pie_executable()
            .machine(goblin::elf::header::EM_AARCH64)
            .note_section(note_gnu_property(&[(GNU_PROPERTY_X86_FEATURE_1_AND, 3)]))
            .build();
        assert_eq!(
            analyze_elf("/a", &arm, &table()).unwrap().cet,
            Cet::default()
        );
    }

    #[test]
    fn property_note_parser_is_bounded() {
        let note = note_gnu_property(&[(GNU_PROPERTY_X86_FEATURE_1_AND, 2)]);
        assert_eq!(x86_feature_1_and(&note, 8, true, true), Some(2));
        for cut in 0..note.len() {
            assert_eq!(
                x86_feature_1_and(&note[..cut], 8, true, true),
                None,
                "cut {cut}"
            );
        }
        let mut lying = note.clone();
        lying[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(x86_feature_1_and(&lying, 8, true, true), None);
        let mut lying = note;
        lying[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(x86_feature_1_and(&lying, 8, true, true), None);
    }

    #[test]
    fn rpath_and_runpath() {
        let bytes = TestElf::pie_executable()
            .dyn_str(DT_RUNPATH, "/nix/store/aaa-glibc/lib:$ORIGIN/../lib")
            .build();
        let r = analyze_elf("/nix/store/bbb-app/bin/app", &bytes, &table()).unwrap();
        assert_eq!(r.runpath, ["/nix/store/aaa-glibc/lib", "$ORIGIN/../lib"]);
        assert!(r.rpath.is_empty() && !r.rpath_outside_store);

        for (entry, bad) in [
            ("/usr/lib", true),
            ("", true),
            ("lib", true),
            ("/nix/store/../../etc", true),
            ("$ORIGIN/../../..", true),
            ("${ORIGIN}/../lib", false),
            ("/nix/store/ccc-zlib/lib", false),
        ] {
            let bytes = TestElf::pie_executable().dyn_str(DT_RPATH, entry).build();
            let r = analyze_elf("/nix/store/bbb-app/bin/app", &bytes, &table()).unwrap();
            assert_eq!(r.rpath, [entry]);
            assert_eq!(r.rpath_outside_store, bad, "{entry:?}");
        }
    }

    #[test]
    fn relocatable_object_notes() {
        let obj = TestElf::relocatable().gnu_stack_section(false).build();
        let r = analyze_elf("/a.o", &obj, &table()).unwrap();
        assert_eq!(r.elf_type, ElfType::Relocatable);
        assert!(r.nx);
        let obj = TestElf::relocatable().gnu_stack_section(true).build();
        assert!(!analyze_elf("/a.o", &obj, &table()).unwrap().nx);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let t = table();
        assert!(matches!(analyze_elf("/x", b"", &t), Err(ElfError::NotElf)));
        assert!(matches!(
            analyze_elf("/x", b"#!/bin/sh\n", &t),
            Err(ElfError::NotElf)
        ));
        assert!(matches!(
            analyze_elf("/x", b"\x7fELF", &t),
            Err(ElfError::Parse(_))
        ));
        let good = hardened_exe().build();
        // Cutting the file anywhere must yield an error, never a panic; cuts
        // past the last header byte must still be caught as inconsistent.
        for cut in 0..good.len() {
            assert!(analyze_elf("/x", &good[..cut], &t).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_lying_program_header() {
        let mut bytes = hardened_exe().build();
        // p_filesz of the first program header (PT_LOAD) → huge.
        let ph = 64 + 32;
        bytes[ph..ph + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            analyze_elf("/x", &bytes, &table()),
            Err(ElfError::Inconsistent(_))
        ));
    }

    /// A cheap, deterministic mutation fuzzer: the analyzer must return
    /// (Ok or Err) on every input, never panic or loop.
    #[test]
    fn survives_mutations() {
        let seeds = [
            hardened_exe().build(),
            TestElf::shared_library()
                .dyn_str(DT_RUNPATH, "$ORIGIN")
                .note_section(note_gnu_property(&[(GNU_PROPERTY_X86_FEATURE_1_AND, 3)]))
                .build(),
            TestElf::relocatable().gnu_stack_section(false).build(),
        ];
        let t = table();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut ok, mut err) = (0, 0);
        let interesting: [u64; 7] = [0, 1, 0x7f, 0xffff, 0x7fff_ffff, u32::MAX as u64, u64::MAX];
        for i in 0..6000 {
            let seed = &seeds[i % seeds.len()];
            let mut m = seed.clone();
            for _ in 0..1 + next() % 4 {
                let pos = (next() % m.len() as u64) as usize;
                match next() % 3 {
                    0 => m[pos] = next() as u8,
                    1 => {
                        let v = interesting[(next() % 7) as usize].to_le_bytes();
                        let n = (m.len() - pos).min(if next() % 2 == 0 { 4 } else { 8 });
                        m[pos..pos + n].copy_from_slice(&v[..n]);
                    }
                    _ => m.truncate(pos.max(1)),
                }
            }
            match analyze_elf("/fuzz", &m, &t) {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
            let _ = FortifyTable::from_libc(&m);
        }
        // Both outcomes must be common, or the mutations test nothing.
        assert!(ok > 500 && err > 500, "ok {ok}, err {err}");
    }
}

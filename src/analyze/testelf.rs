//! A tiny ELF64 little-endian writer for unit tests: just enough headers,
//! dynamic entries and symbols to exercise each hardening check without a
//! compiler. One `PT_LOAD` maps the whole file at address 0, so dynamic
//! addresses equal file offsets.

use goblin::elf::dynamic::{DT_HASH, DT_NEEDED, DT_STRSZ, DT_STRTAB, DT_SYMENT, DT_SYMTAB};
use goblin::elf::header::{EM_X86_64, ET_DYN, ET_EXEC, ET_REL};
use goblin::elf::program_header::{PT_DYNAMIC, PT_GNU_RELRO, PT_GNU_STACK, PT_INTERP, PT_LOAD};
use goblin::elf::section_header::{
    SHF_EXECINSTR, SHT_DYNAMIC, SHT_DYNSYM, SHT_HASH, SHT_NOTE, SHT_PROGBITS, SHT_STRTAB,
    SHT_SYMTAB,
};

#[derive(Clone)]
pub(crate) struct Sym {
    name: String,
    global: bool,
    defined: bool,
}

impl Sym {
    pub(crate) fn local_func(name: &str) -> Self {
        Sym {
            name: name.into(),
            global: false,
            defined: true,
        }
    }
    pub(crate) fn global_func(name: &str) -> Self {
        Sym {
            name: name.into(),
            global: true,
            defined: true,
        }
    }
    fn import(name: &str) -> Self {
        Sym {
            name: name.into(),
            global: true,
            defined: false,
        }
    }
}

enum DynVal {
    Int(u64),
    Str(String),
}

pub(crate) struct TestElf {
    e_type: u16,
    machine: u16,
    interp: Option<String>,
    force_dynamic: bool,
    dyn_entries: Vec<(u64, DynVal)>,
    dynsyms: Vec<Sym>,
    symtab: Option<Vec<Sym>>,
    gnu_stack: Option<u32>,
    gnu_relro: bool,
    note: Option<Vec<u8>>,
    gnu_stack_section: Option<bool>,
}

impl TestElf {
    fn new(e_type: u16) -> Self {
        TestElf {
            e_type,
            machine: EM_X86_64,
            interp: None,
            force_dynamic: false,
            dyn_entries: Vec::new(),
            dynsyms: Vec::new(),
            symtab: None,
            gnu_stack: None,
            gnu_relro: false,
            note: None,
            gnu_stack_section: None,
        }
    }

    /// `ET_EXEC`, static unless dynamic entries or symbols are added.
    pub(crate) fn exec() -> Self {
        Self::new(ET_EXEC)
    }

    /// `ET_DYN` with an interpreter and a dynamic section, no flags.
    pub(crate) fn pie_executable() -> Self {
        let mut e = Self::new(ET_DYN);
        e.interp = Some("/lib64/ld-linux-x86-64.so.2".into());
        e.force_dynamic = true;
        e
    }

    pub(crate) fn shared_library() -> Self {
        let mut e = Self::new(ET_DYN);
        e.force_dynamic = true;
        e
    }

    pub(crate) fn relocatable() -> Self {
        Self::new(ET_REL)
    }

    pub(crate) fn machine(mut self, m: u16) -> Self {
        self.machine = m;
        self
    }
    pub(crate) fn gnu_stack(mut self, flags: u32) -> Self {
        self.gnu_stack = Some(flags);
        self
    }
    pub(crate) fn gnu_relro(mut self) -> Self {
        self.gnu_relro = true;
        self
    }
    pub(crate) fn dyn_int(mut self, tag: u64, val: u64) -> Self {
        self.dyn_entries.push((tag, DynVal::Int(val)));
        self
    }
    pub(crate) fn dyn_str(mut self, tag: u64, s: &str) -> Self {
        self.dyn_entries.push((tag, DynVal::Str(s.into())));
        self
    }
    pub(crate) fn needed(self, lib: &str) -> Self {
        self.dyn_str(DT_NEEDED, lib)
    }
    pub(crate) fn import(mut self, name: &str) -> Self {
        self.dynsyms.push(Sym::import(name));
        self
    }
    pub(crate) fn export_func(mut self, name: &str) -> Self {
        self.dynsyms.push(Sym::global_func(name));
        self
    }
    pub(crate) fn symtab(mut self, syms: Vec<Sym>) -> Self {
        self.symtab = Some(syms);
        self
    }
    pub(crate) fn note_section(mut self, note: Vec<u8>) -> Self {
        self.note = Some(note);
        self
    }
    /// An object's `.note.GNU-stack` marker, executable or not.
    pub(crate) fn gnu_stack_section(mut self, exec: bool) -> Self {
        self.gnu_stack_section = Some(exec);
        self
    }

    pub(crate) fn build(self) -> Vec<u8> {
        let dynamic =
            self.force_dynamic || !self.dyn_entries.is_empty() || !self.dynsyms.is_empty();
        let loadable = self.e_type != ET_REL;
        let phnum = if loadable {
            1 + usize::from(self.interp.is_some())
                + usize::from(dynamic)
                + usize::from(self.gnu_stack.is_some())
                + usize::from(self.gnu_relro)
        } else {
            0
        };
        let mut out = vec![0u8; 64 + phnum * 56];
        let mut sections: Vec<Section> = Vec::new();
        let mut interp_range = None;
        let mut dynamic_range = None;

        if let Some(interp) = &self.interp {
            let mut b = interp.as_bytes().to_vec();
            b.push(0);
            let off = append(&mut out, &b, 1);
            interp_range = Some((off, b.len()));
            sections.push(Section::new(".interp", SHT_PROGBITS, off, b.len()));
        }
        if dynamic {
            let mut dynstr = StrTab::default();
            let entries: Vec<(u64, u64)> = self
                .dyn_entries
                .iter()
                .map(|(tag, v)| match v {
                    DynVal::Int(i) => (*tag, *i),
                    DynVal::Str(s) => (*tag, dynstr.add(s)),
                })
                .collect();
            let syms = sym_bytes(&self.dynsyms, &mut dynstr);
            let nsyms = self.dynsyms.len() as u32 + 1;
            let str_off = append(&mut out, &dynstr.bytes, 1);
            let str_idx = sections.len() as u32 + 1;
            sections.push(Section::new(
                ".dynstr",
                SHT_STRTAB,
                str_off,
                dynstr.bytes.len(),
            ));
            let sym_off = append(&mut out, &syms, 8);
            let sym_idx = sections.len() as u32 + 1;
            sections.push(Section {
                link: str_idx,
                entsize: 24,
                ..Section::new(".dynsym", SHT_DYNSYM, sym_off, syms.len())
            });
            // SysV hash: goblin only reads nchain to count the symbols.
            let mut hash = Vec::new();
            for w in [1u32, nsyms, 0].into_iter().chain((0..nsyms).map(|_| 0)) {
                hash.extend_from_slice(&w.to_le_bytes());
            }
            let hash_off = append(&mut out, &hash, 8);
            sections.push(Section {
                link: sym_idx,
                ..Section::new(".hash", SHT_HASH, hash_off, hash.len())
            });
            let mut dyns = Vec::new();
            let all = entries.into_iter().chain([
                (DT_HASH, hash_off as u64),
                (DT_STRTAB, str_off as u64),
                (DT_SYMTAB, sym_off as u64),
                (DT_STRSZ, dynstr.bytes.len() as u64),
                (DT_SYMENT, 24),
                (0, 0),
            ]);
            for (tag, val) in all {
                dyns.extend_from_slice(&tag.to_le_bytes());
                dyns.extend_from_slice(&val.to_le_bytes());
            }
            let dyn_off = append(&mut out, &dyns, 8);
            dynamic_range = Some((dyn_off, dyns.len()));
            sections.push(Section {
                link: str_idx,
                entsize: 16,
                ..Section::new(".dynamic", SHT_DYNAMIC, dyn_off, dyns.len())
            });
        }
        if let Some(note) = &self.note {
            let off = append(&mut out, note, 8);
            sections.push(Section {
                align: 8,
                ..Section::new(".note.gnu.property", SHT_NOTE, off, note.len())
            });
        }
        if let Some(syms) = &self.symtab {
            let mut strtab = StrTab::default();
            let bytes = sym_bytes(syms, &mut strtab);
            let str_off = append(&mut out, &strtab.bytes, 1);
            let str_idx = sections.len() as u32 + 1;
            sections.push(Section::new(
                ".strtab",
                SHT_STRTAB,
                str_off,
                strtab.bytes.len(),
            ));
            let off = append(&mut out, &bytes, 8);
            sections.push(Section {
                link: str_idx,
                entsize: 24,
                ..Section::new(".symtab", SHT_SYMTAB, off, bytes.len())
            });
        }
        if let Some(exec) = self.gnu_stack_section {
            sections.push(Section {
                flags: if exec { u64::from(SHF_EXECINSTR) } else { 0 },
                ..Section::new(".note.GNU-stack", SHT_PROGBITS, out.len(), 0)
            });
        }
        let mut shstr = StrTab::default();
        let names: Vec<u64> = sections.iter().map(|s| shstr.add(s.name)).collect();
        let shstr_name = shstr.add(".shstrtab");
        let shstr_off = append(&mut out, &shstr.bytes, 1);
        sections.push(Section::new(
            ".shstrtab",
            SHT_STRTAB,
            shstr_off,
            shstr.bytes.len(),
        ));

        let shoff = append(&mut out, &[], 8);
        out.extend_from_slice(&[0u8; 64]);
        let name_offsets = names.into_iter().chain([shstr_name]);
        for (s, name) in sections.iter().zip(name_offsets) {
            push_u32(&mut out, name as u32);
            push_u32(&mut out, s.sh_type);
            push_u64(&mut out, s.flags);
            push_u64(&mut out, s.offset as u64);
            push_u64(&mut out, s.offset as u64);
            push_u64(&mut out, s.size as u64);
            push_u32(&mut out, s.link);
            push_u32(&mut out, 0);
            push_u64(&mut out, s.align);
            push_u64(&mut out, s.entsize);
        }
        let total = out.len();

        // ELF header.
        out[..16].copy_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        put(&mut out, 16, &self.e_type.to_le_bytes());
        put(&mut out, 18, &self.machine.to_le_bytes());
        put(&mut out, 20, &1u32.to_le_bytes());
        put(
            &mut out,
            32,
            &(if phnum > 0 { 64u64 } else { 0 }).to_le_bytes(),
        );
        put(&mut out, 40, &(shoff as u64).to_le_bytes());
        put(&mut out, 52, &64u16.to_le_bytes());
        put(&mut out, 54, &56u16.to_le_bytes());
        put(&mut out, 56, &(phnum as u16).to_le_bytes());
        put(&mut out, 58, &64u16.to_le_bytes());
        put(&mut out, 60, &(sections.len() as u16 + 1).to_le_bytes());
        put(&mut out, 62, &(sections.len() as u16).to_le_bytes());

        if loadable {
            let mut phdrs: Vec<(u32, u32, usize, usize)> = vec![(PT_LOAD, 5, 0, total)];
            if let Some((off, len)) = interp_range {
                phdrs.push((PT_INTERP, 4, off, len));
            }
            if let Some((off, len)) = dynamic_range {
                phdrs.push((PT_DYNAMIC, 6, off, len));
            }
            if let Some(flags) = self.gnu_stack {
                phdrs.push((PT_GNU_STACK, flags, 0, 0));
            }
            if self.gnu_relro {
                let (off, len) = dynamic_range.unwrap_or((0, 0));
                phdrs.push((PT_GNU_RELRO, 4, off, len));
            }
            for (i, (ty, flags, off, len)) in phdrs.into_iter().enumerate() {
                let mut ph = Vec::with_capacity(56);
                push_u32(&mut ph, ty);
                push_u32(&mut ph, flags);
                for v in [off, off, off, len, len] {
                    push_u64(&mut ph, v as u64);
                }
                push_u64(&mut ph, if ty == PT_LOAD { 0x1000 } else { 8 });
                put(&mut out, 64 + i * 56, &ph);
            }
        }
        out
    }
}

/// A GNU property note (ELF64 layout) holding `(pr_type, u32 value)` pairs.
pub(crate) fn note_gnu_property(props: &[(u32, u32)]) -> Vec<u8> {
    let mut desc = Vec::new();
    for (ty, val) in props {
        push_u32(&mut desc, *ty);
        push_u32(&mut desc, 4);
        push_u32(&mut desc, *val);
        push_u32(&mut desc, 0);
    }
    let mut note = Vec::new();
    push_u32(&mut note, 4);
    push_u32(&mut note, desc.len() as u32);
    push_u32(&mut note, 5);
    note.extend_from_slice(b"GNU\0");
    note.extend_from_slice(&desc);
    note
}

struct Section {
    name: &'static str,
    sh_type: u32,
    flags: u64,
    offset: usize,
    size: usize,
    link: u32,
    entsize: u64,
    align: u64,
}

impl Section {
    fn new(name: &'static str, sh_type: u32, offset: usize, size: usize) -> Self {
        Section {
            name,
            sh_type,
            flags: 0,
            offset,
            size,
            link: 0,
            entsize: 0,
            align: 1,
        }
    }
}

#[derive(Default)]
struct StrTab {
    bytes: Vec<u8>,
}

impl StrTab {
    fn add(&mut self, s: &str) -> u64 {
        if self.bytes.is_empty() {
            self.bytes.push(0);
        }
        let off = self.bytes.len() as u64;
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
        off
    }
}

fn sym_bytes(syms: &[Sym], strtab: &mut StrTab) -> Vec<u8> {
    let mut out = vec![0u8; 24];
    for s in syms {
        let name = strtab.add(&s.name);
        push_u32(&mut out, name as u32);
        out.push((u8::from(s.global) << 4) | 2); // STT_FUNC
        out.push(0);
        out.extend_from_slice(&u16::from(s.defined).to_le_bytes());
        push_u64(&mut out, if s.defined { 0x1000 } else { 0 });
        push_u64(&mut out, 0);
    }
    if strtab.bytes.is_empty() {
        strtab.bytes.push(0);
    }
    out
}

fn append(out: &mut Vec<u8>, bytes: &[u8], align: usize) -> usize {
    while !out.len().is_multiple_of(align) {
        out.push(0);
    }
    let off = out.len();
    out.extend_from_slice(bytes);
    off
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn push_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

//! Which libc functions have a `_FORTIFY_SOURCE` (`__X_chk`) variant.
//!
//! Whether an imported `memcpy` *could* have been fortified depends on the
//! libc the binary runs against, not on the host's: musl exports no `_chk`
//! functions, and glibc versions add some (`__explicit_bzero_chk` in 2.25).
//! So the table is read from the image's own `libc.so.6`.

use std::collections::BTreeSet;

use goblin::elf::sym::{STB_LOCAL, STT_FUNC, STT_GNU_IFUNC};
use serde::{Deserialize, Serialize};

use super::elf::{parse_checked, ElfError};

/// Where a [`FortifyTable`] came from, recorded in each report so a reader
/// can tell an image-libc verdict from a fallback one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FortifyOrigin {
    /// The libc(s) at `paths` inside the image; empty when the caller did
    /// not say where the bytes came from.
    ImageLibc { paths: Vec<String> },
    /// The built-in glibc 2.36 list: the image carries no libc.
    HostDefault,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FortifyTable {
    /// Plain names `X` for every exported `__X_chk`.
    functions: BTreeSet<String>,
    origin: FortifyOrigin,
}

/// The `_chk` exports of Debian 12's glibc 2.36 (`readelf -W --dyn-syms
/// libc.so.6`), without the `__` prefix and `_chk` suffix.
const GLIBC_2_36_FORTIFIABLE: &[&str] = &[
    "asprintf",
    "confstr",
    "dprintf",
    "explicit_bzero",
    "fdelt",
    "fgets",
    "fgets_unlocked",
    "fgetws",
    "fgetws_unlocked",
    "fprintf",
    "fread",
    "fread_unlocked",
    "fwprintf",
    "getcwd",
    "getdomainname",
    "getgroups",
    "gethostname",
    "getlogin_r",
    "gets",
    "getwd",
    "longjmp",
    "mbsnrtowcs",
    "mbsrtowcs",
    "mbstowcs",
    "memcpy",
    "memmove",
    "mempcpy",
    "memset",
    "obstack_printf",
    "obstack_vprintf",
    "poll",
    "ppoll",
    "pread",
    "pread64",
    "printf",
    "ptsname_r",
    "read",
    "readlink",
    "readlinkat",
    "realpath",
    "recv",
    "recvfrom",
    "snprintf",
    "sprintf",
    "stpcpy",
    "stpncpy",
    "strcat",
    "strcpy",
    "strncat",
    "strncpy",
    "swprintf",
    "syslog",
    "ttyname_r",
    "vasprintf",
    "vdprintf",
    "vfprintf",
    "vfwprintf",
    "vprintf",
    "vsnprintf",
    "vsprintf",
    "vswprintf",
    "vsyslog",
    "vwprintf",
    "wcpcpy",
    "wcpncpy",
    "wcrtomb",
    "wcscat",
    "wcscpy",
    "wcsncat",
    "wcsncpy",
    "wcsnrtombs",
    "wcsrtombs",
    "wcstombs",
    "wctomb",
    "wmemcpy",
    "wmemmove",
    "wmempcpy",
    "wmemset",
    "wprintf",
];

impl FortifyTable {
    /// Reads a libc's dynamic symbol table: every defined, exported function
    /// `__X_chk` makes `X` fortifiable. A libc with no such export (musl)
    /// yields an empty table, so nothing counts as fortifiable against it.
    pub fn from_libc(data: &[u8]) -> Result<Self, ElfError> {
        let elf = parse_checked(data)?;
        if elf.dynamic.is_none() || elf.dynsyms.is_empty() {
            return Err(ElfError::NotALibrary);
        }
        let functions = elf
            .dynsyms
            .iter()
            .filter(|s| {
                s.st_shndx != 0
                    && s.st_bind() != STB_LOCAL
                    && matches!(s.st_type(), STT_FUNC | STT_GNU_IFUNC)
            })
            .filter_map(|s| elf.dynstrtab.get_at(s.st_name))
            .filter_map(|n| n.strip_prefix("__")?.strip_suffix("_chk"))
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect();
        Ok(FortifyTable {
            functions,
            origin: FortifyOrigin::ImageLibc { paths: Vec::new() },
        })
    }

    /// glibc 2.36's list, for images that carry no libc of their own (static
    /// binaries): their verdict is then only as good as this guess.
    pub fn host_default() -> Self {
        FortifyTable {
            functions: GLIBC_2_36_FORTIFIABLE
                .iter()
                .map(|s| s.to_string())
                .collect(),
            origin: FortifyOrigin::HostDefault,
        }
    }

    /// Records which file the table was read from.
    pub fn with_path(mut self, path: &str) -> Self {
        self.origin = FortifyOrigin::ImageLibc {
            paths: vec![path.to_string()],
        };
        self
    }

    /// Merges the tables of several libcs, for binaries whose libc we cannot
    /// pin down in an image that ships more than one.
    pub fn union<'a>(tables: impl IntoIterator<Item = &'a FortifyTable>) -> Self {
        let mut functions = BTreeSet::new();
        let mut paths = BTreeSet::new();
        for t in tables {
            functions.extend(t.functions.iter().cloned());
            if let FortifyOrigin::ImageLibc { paths: p } = &t.origin {
                paths.extend(p.iter().cloned());
            }
        }
        FortifyTable {
            functions,
            origin: FortifyOrigin::ImageLibc {
                paths: paths.into_iter().collect(),
            },
        }
    }

    /// A table of exactly `functions`, as [`FortifyTable::from_libc`] read
    /// them from a libc earlier (see [`super::ElfFacts`]).
    pub(crate) fn from_functions(functions: BTreeSet<String>) -> Self {
        FortifyTable {
            functions,
            origin: FortifyOrigin::ImageLibc { paths: Vec::new() },
        }
    }

    pub(crate) fn into_functions(self) -> BTreeSet<String> {
        self.functions
    }

    pub(crate) fn empty() -> Self {
        FortifyTable {
            functions: BTreeSet::new(),
            origin: FortifyOrigin::ImageLibc { paths: Vec::new() },
        }
    }

    /// Whether the libc exports `__{name}_chk`.
    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains(name)
    }

    /// The fortifiable names `X`, sorted.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    pub fn origin(&self) -> &FortifyOrigin {
        &self.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::testelf::TestElf;

    #[test]
    fn reads_chk_exports() {
        let libc = TestElf::shared_library()
            .export_func("__memcpy_chk")
            .export_func("__sprintf_chk")
            .export_func("memcpy")
            .export_func("__stack_chk_fail")
            .export_func("__chk")
            .import("__read_chk")
            .build();
        let t = FortifyTable::from_libc(&libc).unwrap();
        assert!(t.contains("memcpy") && t.contains("sprintf"));
        // Imports and non-_chk names are not exports of fortified forms.
        assert!(!t.contains("read") && !t.contains("stack_chk_fail"));
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.with_path("/lib/libc.so.6").origin(),
            &FortifyOrigin::ImageLibc {
                paths: vec!["/lib/libc.so.6".into()]
            }
        );
    }

    #[test]
    fn musl_like_libc_is_empty_and_garbage_errors() {
        let musl = TestElf::shared_library().export_func("memcpy").build();
        assert!(FortifyTable::from_libc(&musl).unwrap().is_empty());
        assert!(matches!(
            FortifyTable::from_libc(b"nope"),
            Err(ElfError::NotElf)
        ));
        let static_exe = TestElf::exec().build();
        assert!(matches!(
            FortifyTable::from_libc(&static_exe),
            Err(ElfError::NotALibrary)
        ));
    }

    #[test]
    fn host_default_and_union() {
        let h = FortifyTable::host_default();
        assert!(h.contains("memcpy") && h.contains("explicit_bzero") && !h.contains("puts"));
        assert_eq!(h.len(), GLIBC_2_36_FORTIFIABLE.len());
        let a = FortifyTable::from_libc(&TestElf::shared_library().export_func("__a_chk").build())
            .unwrap()
            .with_path("/a/libc.so.6");
        let b = FortifyTable::from_libc(&TestElf::shared_library().export_func("__b_chk").build())
            .unwrap()
            .with_path("/b/libc.so.6");
        let u = FortifyTable::union([&a, &b]);
        assert!(u.contains("a") && u.contains("b"));
        assert_eq!(
            u.origin(),
            &FortifyOrigin::ImageLibc {
                paths: vec!["/a/libc.so.6".into(), "/b/libc.so.6".into()]
            }
        );
    }
}

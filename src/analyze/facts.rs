//! What the image reader derives from a layer's files and the layer cache
//! keeps: each entry's [`FileKind`] and each ELF file's [`ElfFacts`]. Their
//! serialized form is the cached layer facts' format, so `build.rs` hashes
//! this file (with the ELF inspection it calls) into that format's version,
//! and not the verdicts [`super::analyze_image`] makes from them later.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::elf;
use super::fortify::FortifyTable;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink {
        target: String,
    },
    /// Tar hardlink; `target` names the entry holding the content.
    Hardlink {
        target: String,
    },
    /// Devices, fifos, sockets.
    Other,
}

/// All the analyzer needs from one ELF file's bytes, derived once. The
/// layer cache stores these per layer, so a cached layer is not read again;
/// the verdicts that need the whole image (which libc a binary loads) are
/// made later, in [`super::analyze_image`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElfFacts {
    pub(super) parsed: ElfParse,
    /// Contains BusyBox's banner: a multi-call shell and coreutils.
    pub(super) busybox: bool,
    /// The `_chk` functions it exports, when it can serve as a libc
    /// ([`FortifyTable::from_libc`]); `None` when it cannot.
    pub(super) libc_chk: Option<BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ElfParse {
    Inspected(Box<elf::Inspected>),
    /// The error and its causes, `: `-joined.
    Unreadable(String),
}

impl ElfFacts {
    /// `path` is where the file lives in the image (`$ORIGIN` resolves
    /// against it).
    pub fn from_bytes(path: &str, data: &[u8]) -> ElfFacts {
        ElfFacts {
            parsed: match elf::inspect(path, data) {
                Ok(i) => ElfParse::Inspected(Box::new(i)),
                Err(e) => ElfParse::Unreadable(error_chain(&e)),
            },
            busybox: is_busybox(data),
            libc_chk: FortifyTable::from_libc(data)
                .ok()
                .map(FortifyTable::into_functions),
        }
    }

    /// [`ElfFacts::from_bytes`] for every file of a path → bytes map.
    pub fn of_all(contents: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, ElfFacts> {
        contents
            .iter()
            .map(|(p, d)| (p.clone(), ElfFacts::from_bytes(p, d)))
            .collect()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

fn is_busybox(data: &[u8]) -> bool {
    const BANNER: &[u8] = b"BusyBox v";
    data.windows(BANNER.len()).any(|w| w == BANNER)
}

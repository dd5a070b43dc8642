//! The build gate: does every ELF of a package keep the hardening a tier
//! promises?
//!
//! [`Property::check`] is the single place that decides whether a property
//! holds, is missing, or cannot apply to a file. The gate and the image
//! summary both use it, so they cannot disagree. The applicability rules:
//!
//! - Only executables and shared libraries are judged; `.o` files and cores
//!   are never loaded as they are.
//! - `pie`: an executable must be a PIE. A shared library is
//!   position-independent by construction, so it passes unless it has text
//!   relocations (which also break PIE executables).
//! - `fortify`: not applicable when the file imports no function that its
//!   libc could fortify (checksec prints "No" there, which we find unhelpful).
//! - `canary`: `-fstack-protector-strong` only instruments functions with
//!   local arrays or address-taken locals, so a tiny program may have none.
//!   We can't see the source, so we use the fortify evidence as the proxy:
//!   a file that imports no fortifiable or fortified function hands no
//!   buffer to libc, and we call the canary not applicable there. Everything
//!   else must reference `__stack_chk_fail`/`__stack_chk_guard`.
//!   A static binary imports nothing, so both rules make canary and fortify
//!   not applicable there unless a canary symbol is linked in (static glibc
//!   always defines one); judging libc.a's internals would be guesswork.
//! - `cet`: x86 only; both IBT and SHSTK must be marked.
//! - `relro_full`, `bind_now`, `nx`, `cfi`, `safestack`: always apply.
//!   CFI and SafeStack leave no trace in a library without indirect calls or
//!   unsafe stack objects; such libraries need an exception.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::elf::{ElfReport, ElfType, FortifyStatus, Relro};

/// The hardening a tier promises for a package's binaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    pub relro_full: bool,
    pub bind_now: bool,
    pub canary: bool,
    pub nx: bool,
    pub pie: bool,
    pub fortify: bool,
    pub cfi: bool,
    pub safestack: bool,
    pub cet: bool,
}

impl Promise {
    /// The promised properties, in [`Property::ALL`] order.
    pub fn properties(&self) -> Vec<Property> {
        // Destructure so a new field cannot be forgotten here.
        let Promise {
            relro_full,
            bind_now,
            canary,
            nx,
            pie,
            fortify,
            cfi,
            safestack,
            cet,
        } = *self;
        [
            (relro_full, Property::RelroFull),
            (bind_now, Property::BindNow),
            (canary, Property::Canary),
            (nx, Property::Nx),
            (pie, Property::Pie),
            (fortify, Property::Fortify),
            (cfi, Property::Cfi),
            (safestack, Property::Safestack),
            (cet, Property::Cet),
        ]
        .into_iter()
        .filter_map(|(on, p)| on.then_some(p))
        .collect()
    }
}

/// One hardening property; its string form is the [`Promise`] field name,
/// which is also what exceptions name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Property {
    RelroFull,
    BindNow,
    Canary,
    Nx,
    Pie,
    Fortify,
    Cfi,
    Safestack,
    Cet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PropertyStatus {
    Holds,
    Missing,
    NotApplicable,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown hardening property `{0}` (expected one of: relro_full, bind_now, canary, nx, pie, fortify, cfi, safestack, cet)")]
pub struct UnknownProperty(pub String);

impl Property {
    pub const ALL: [Property; 9] = [
        Property::RelroFull,
        Property::BindNow,
        Property::Canary,
        Property::Nx,
        Property::Pie,
        Property::Fortify,
        Property::Cfi,
        Property::Safestack,
        Property::Cet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Property::RelroFull => "relro_full",
            Property::BindNow => "bind_now",
            Property::Canary => "canary",
            Property::Nx => "nx",
            Property::Pie => "pie",
            Property::Fortify => "fortify",
            Property::Cfi => "cfi",
            Property::Safestack => "safestack",
            Property::Cet => "cet",
        }
    }

    /// Whether `report` has this property; the rules are in the module docs.
    pub fn check(self, report: &ElfReport) -> PropertyStatus {
        use PropertyStatus::{Holds, Missing, NotApplicable};
        let judged = matches!(
            report.elf_type,
            ElfType::Executable | ElfType::SharedLibrary
        );
        if !judged {
            return NotApplicable;
        }
        let holds = |b: bool| if b { Holds } else { Missing };
        let imports_nothing_fortifiable = report.fortify.status == FortifyStatus::NotApplicable;
        match self {
            Property::RelroFull => holds(report.relro == Relro::Full),
            Property::BindNow => holds(report.bind_now),
            Property::Canary if report.canary => Holds,
            Property::Canary if imports_nothing_fortifiable => NotApplicable,
            Property::Canary => Missing,
            Property::Nx => holds(report.nx),
            Property::Pie => match report.elf_type {
                ElfType::Executable => holds(report.pie && !report.textrel),
                _ => holds(!report.textrel),
            },
            Property::Fortify => match report.fortify.status {
                FortifyStatus::Fortified => Holds,
                FortifyStatus::Unfortified => Missing,
                FortifyStatus::NotApplicable => NotApplicable,
            },
            Property::Cfi => holds(report.cfi.enabled),
            Property::Safestack => holds(report.safestack),
            Property::Cet if matches!(report.machine.as_str(), "x86_64" | "i386") => {
                holds(report.cet.ibt && report.cet.shstk)
            }
            Property::Cet => NotApplicable,
        }
    }

    /// Why the property is missing, in words for the gate's error.
    fn explain(self, r: &ElfReport) -> String {
        match self {
            Property::RelroFull => format!("RELRO is {:?}, not full", r.relro).to_lowercase(),
            Property::BindNow => "lazy binding (no BIND_NOW)".into(),
            Property::Canary => {
                let buffers: Vec<&str> = (r.fortify.fortified.iter())
                    .chain(&r.fortify.fortifiable)
                    .map(String::as_str)
                    .collect();
                format!("no stack protector, yet it imports {}", buffers.join(", "))
            }
            Property::Nx => "executable stack (PT_GNU_STACK has X, or is absent)".into(),
            Property::Pie if r.textrel => "text relocations (DT_TEXTREL)".into(),
            Property::Pie => "not a position-independent executable".into(),
            Property::Fortify => format!(
                "no __*_chk import; unfortified: {}",
                r.fortify.fortifiable.join(", ")
            ),
            Property::Cfi => "no Clang CFI symbols (*.cfi, *.cfi_jt, __cfi_check)".into(),
            Property::Safestack => "no SafeStack runtime or unsafe-stack pointer".into(),
            Property::Cet => format!(
                "CET markers incomplete (ibt: {}, shstk: {})",
                r.cet.ibt, r.cet.shstk
            ),
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Property {
    type Err = UnknownProperty;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Property::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProperty(s.to_string()))
    }
}

/// A promised property a file of the package does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub path: String,
    pub property: Property,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} missing: {}",
            self.path, self.property, self.detail
        )
    }
}

/// Checks every report under `package_prefix` against `promise`.
///
/// An exception is `(pattern, property, reason)`. `pattern` is an absolute
/// path or glob, or one relative to the package (`bin/*`), so recipes need
/// not know the store hash. In globs `*` and `?` stay within one path
/// component and `**` crosses them. `property` is a [`Property`] name or
/// `*`; a misspelt name excuses nothing, so a typo cannot hide a violation
/// (callers should validate names with [`Property::from_str`] up front).
pub fn check_promise(
    reports: &[ElfReport],
    package_prefix: &str,
    promise: &Promise,
    exceptions: &[(String, String, String)],
) -> Vec<Violation> {
    let prefix = package_prefix.trim_end_matches('/');
    let promised = promise.properties();
    let mut violations = Vec::new();
    for r in reports {
        let Some(rel) = r
            .path
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            continue;
        };
        for &property in &promised {
            if property.check(r) != PropertyStatus::Missing {
                continue;
            }
            if !is_excused(exceptions, property, &r.path, rel) {
                violations.push(Violation {
                    path: r.path.clone(),
                    property,
                    detail: property.explain(r),
                });
            }
        }
    }
    violations
}

/// Whether a recipe exception (`path` glob, absolute or relative to the
/// package as `rel` is; `property` name or `*`) covers `property` on a binary.
pub fn is_excused(
    exceptions: &[(String, String, String)],
    property: Property,
    path: &str,
    rel: &str,
) -> bool {
    exceptions.iter().any(|(pattern, prop, _reason)| {
        let prop_matches = prop == "*" || prop.parse::<Property>() == Ok(property);
        let path_matches = if pattern.starts_with('/') {
            glob_match(pattern, path)
        } else {
            glob_match(pattern, rel)
        };
        prop_matches && path_matches
    })
}

/// Glob matching with `*`, `?` (not crossing `/`) and `**` (crossing `/`),
/// by dynamic programming so hostile patterns cannot blow up.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy)]
    enum Tok {
        Lit(char),
        One,
        Star,
        DoubleStar,
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                Tok::DoubleStar
            }
            '*' => Tok::Star,
            '?' => Tok::One,
            c => Tok::Lit(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // m[j]: tokens so far match text[..j].
    let mut m = vec![false; text.len() + 1];
    m[0] = true;
    for tok in toks {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = match tok {
                Tok::Star => m[j] || (j > 0 && next[j - 1] && text[j - 1] != '/'),
                Tok::DoubleStar => m[j] || (j > 0 && next[j - 1]),
                Tok::One => j > 0 && m[j - 1] && text[j - 1] != '/',
                Tok::Lit(c) => j > 0 && m[j - 1] && text[j - 1] == c,
            };
        }
        m = next;
    }
    m[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::elf::{Cet, Cfi, Fortify};
    use crate::analyze::fortify::FortifyOrigin;

    const PKG: &str = "/nix/store/0c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-nginx-1.22.1";

    fn report(path: &str) -> ElfReport {
        ElfReport {
            path: path.to_string(),
            elf_type: ElfType::Executable,
            machine: "x86_64".into(),
            bits: 64,
            pie: true,
            textrel: false,
            relro: Relro::Full,
            bind_now: true,
            canary: true,
            nx: true,
            fortify: Fortify {
                status: FortifyStatus::Fortified,
                fortified: vec!["__memcpy_chk".into()],
                fortifiable: vec!["read".into()],
                fortified_count: 1,
                fortifiable_count: 1,
                judged_against: FortifyOrigin::HostDefault,
            },
            cfi: Cfi {
                enabled: true,
                symbols: 3,
                cross_dso: false,
            },
            safestack: true,
            cet: Cet {
                ibt: true,
                shstk: true,
            },
            rpath: vec![],
            runpath: vec![],
            rpath_outside_store: false,
            stripped: false,
            interpreter: None,
            soname: None,
            needed: vec![],
        }
    }

    fn all() -> Promise {
        Promise {
            relro_full: true,
            bind_now: true,
            canary: true,
            nx: true,
            pie: true,
            fortify: true,
            cfi: true,
            safestack: true,
            cet: true,
        }
    }

    fn names(v: &[Violation]) -> Vec<(&str, Property)> {
        v.iter().map(|v| (v.path.as_str(), v.property)).collect()
    }

    #[test]
    fn hardened_passes_and_unhardened_is_named() {
        let good = report(&format!("{PKG}/bin/nginx"));
        assert!(check_promise(std::slice::from_ref(&good), PKG, &all(), &[]).is_empty());

        let mut bad = report(&format!("{PKG}/bin/bad"));
        bad.pie = false;
        bad.relro = Relro::Partial;
        bad.bind_now = false;
        bad.canary = false;
        bad.nx = false;
        bad.fortify.status = FortifyStatus::Unfortified;
        bad.cfi.enabled = false;
        bad.safestack = false;
        bad.cet.shstk = false;
        let v = check_promise(&[good, bad.clone()], PKG, &all(), &[]);
        let path = bad.path.clone();
        let path = path.as_str();
        assert_eq!(
            names(&v),
            Property::ALL.iter().map(|&p| (path, p)).collect::<Vec<_>>()
        );
        assert!(v[0]
            .to_string()
            .contains("relro_full missing: relro is partial"));
        // Only promised properties are checked.
        let only_nx = Promise {
            nx: true,
            ..Promise::default()
        };
        assert_eq!(
            names(&check_promise(&[bad], PKG, &only_nx, &[])),
            [(path, Property::Nx)]
        );
    }

    #[test]
    fn only_files_of_the_package() {
        let mut other = report("/nix/store/1c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-zlib/lib/libz.so");
        other.nx = false;
        let mut sibling = report(&format!("{PKG}-doc/bin/x"));
        sibling.nx = false;
        assert!(check_promise(&[other, sibling], PKG, &all(), &[]).is_empty());
    }

    #[test]
    fn applicability_rules() {
        let mut lib = report(&format!("{PKG}/lib/libfoo.so"));
        lib.elf_type = ElfType::SharedLibrary;
        lib.pie = false;
        assert_eq!(Property::Pie.check(&lib), PropertyStatus::Holds);
        lib.textrel = true;
        assert_eq!(Property::Pie.check(&lib), PropertyStatus::Missing);

        let mut tiny = report(&format!("{PKG}/bin/true"));
        tiny.canary = false;
        tiny.fortify.status = FortifyStatus::NotApplicable;
        assert_eq!(Property::Canary.check(&tiny), PropertyStatus::NotApplicable);
        assert_eq!(
            Property::Fortify.check(&tiny),
            PropertyStatus::NotApplicable
        );
        tiny.fortify.status = FortifyStatus::Fortified;
        assert_eq!(Property::Canary.check(&tiny), PropertyStatus::Missing);

        let mut arm = report("/x");
        arm.machine = "aarch64".into();
        arm.cet = Cet::default();
        assert_eq!(Property::Cet.check(&arm), PropertyStatus::NotApplicable);

        let mut obj = report("/x.o");
        obj.elf_type = ElfType::Relocatable;
        obj.nx = false;
        assert!(Property::ALL
            .iter()
            .all(|p| p.check(&obj) == PropertyStatus::NotApplicable));
    }

    #[test]
    fn exceptions() {
        let mut a = report(&format!("{PKG}/bin/a"));
        a.cfi.enabled = false;
        a.nx = false;
        let mut b = report(&format!("{PKG}/lib/sub/libb.so"));
        b.cfi.enabled = false;
        let reports = [a, b];
        let ex = |p: &str, prop: &str| (p.to_string(), prop.to_string(), "why".to_string());

        let v = check_promise(&reports, PKG, &all(), &[ex("bin/*", "cfi")]);
        assert_eq!(
            names(&v),
            [
                (reports[0].path.as_str(), Property::Nx),
                (reports[1].path.as_str(), Property::Cfi)
            ]
        );
        let v = check_promise(
            &reports,
            PKG,
            &all(),
            &[ex("lib/**", "*"), ex(&reports[0].path, "*")],
        );
        assert!(v.is_empty());
        // `*` does not cross directories; a misspelt property excuses nothing.
        let v = check_promise(
            &reports,
            PKG,
            &all(),
            &[ex("lib/*", "cfi"), ex("bin/a", "CFI")],
        );
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn property_names_round_trip() {
        for p in Property::ALL {
            assert_eq!(p.as_str().parse::<Property>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        assert!("relro".parse::<Property>().is_err());
        assert_eq!(all().properties(), Property::ALL);
    }

    #[test]
    fn globs() {
        assert!(glob_match("bin/*", "bin/nginx"));
        assert!(!glob_match("bin/*", "bin/sub/nginx"));
        assert!(glob_match("**/*.so*", "lib/sub/libz.so.1"));
        assert!(glob_match("lib/lib?.so", "lib/libz.so"));
        assert!(!glob_match("lib/lib?.so", "lib/libzz.so"));
        assert!(glob_match(
            "/nix/store/*-nginx-*/bin/nginx",
            &format!("{PKG}/bin/nginx")
        ));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
        let hostile = "*a".repeat(50);
        assert!(!glob_match(&hostile, &"a".repeat(49)));
        assert!(glob_match(&hostile, &"a".repeat(60)));
    }
}

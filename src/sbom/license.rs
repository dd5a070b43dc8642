//! Package licenses, as the package set names them, turned into what each
//! SBOM format accepts.
//!
//! A known SPDX id is kept (in its canonical casing). Anything else — a
//! nixpkgs short name like `unfree`, an id newer than our list — must not
//! make the SBOM invalid: SPDX gets a `LicenseRef-` backed by an extracted
//! licensing info, CycloneDX a named license.

use sha2::{Digest, Sha256};

/// One id a line; `#` lines are comments. See the file's header.
const SPDX_LICENSE_IDS: &str = include_str!("spdx_license_ids.txt");

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum License {
    /// On the SPDX license list.
    Spdx(&'static str),
    /// Anything else, with the `LicenseRef-` id SPDX uses for it.
    Other { name: String, ref_id: String },
    /// A choice the licensor offers (`A OR B OR C`), as a package set states
    /// a dual or tri licence; each alternative resolved as above.
    AnyOf(Vec<License>),
}

impl License {
    pub(crate) fn from_id(id: &str) -> License {
        let id = id.trim();
        let inner = id
            .strip_prefix('(')
            .and_then(|i| i.strip_suffix(')'))
            .unwrap_or(id);
        let choices: Vec<&str> = inner.split(" OR ").map(str::trim).collect();
        if choices.len() > 1 && choices.iter().all(|c| !c.is_empty()) {
            return License::AnyOf(choices.into_iter().map(License::from_id).collect());
        }
        License::single(id)
    }

    fn single(id: &str) -> License {
        if let Some(known) = SPDX_LICENSE_IDS
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| l.eq_ignore_ascii_case(id))
        {
            return License::Spdx(known);
        }
        License::Other {
            name: id.to_string(),
            ref_id: license_ref(id),
        }
    }

    /// This licence in an SPDX license expression.
    pub(crate) fn spdx_id(&self) -> String {
        match self {
            License::Spdx(id) => id.to_string(),
            License::Other { ref_id, .. } => ref_id.clone(),
            License::AnyOf(choices) => choices
                .iter()
                .map(License::spdx_id)
                .collect::<Vec<_>>()
                .join(" OR "),
        }
    }

    /// The `LicenseRef-` licences within, with their names, for SPDX's
    /// extracted licensing infos.
    pub(crate) fn license_refs(&self) -> Vec<(&str, &str)> {
        match self {
            License::Spdx(_) => Vec::new(),
            License::Other { name, ref_id } => vec![(ref_id.as_str(), name.as_str())],
            License::AnyOf(choices) => choices.iter().flat_map(License::license_refs).collect(),
        }
    }
}

/// The package's licenses in the order given, without repeats.
pub(crate) fn resolve(ids: &[String]) -> Vec<License> {
    let mut out: Vec<License> = Vec::new();
    for id in ids.iter().filter(|i| !i.trim().is_empty()) {
        let l = License::from_id(id);
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// The SPDX expression for a package: nixpkgs lists every license that
/// applies, so they are joined with AND; none known is NOASSERTION.
pub(crate) fn spdx_expression(licenses: &[License]) -> String {
    if licenses.is_empty() {
        return "NOASSERTION".to_string();
    }
    licenses
        .iter()
        .map(|l| match l {
            License::AnyOf(_) if licenses.len() > 1 => format!("({})", l.spdx_id()),
            _ => l.spdx_id(),
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `LicenseRef-<name>`, kept as is when already a well-formed ref. When the
/// name needs characters replaced, a short hash of the original keeps two
/// names that sanitize alike (`a b`, `a-b`) apart.
fn license_ref(name: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    if let Some(rest) = name.strip_prefix("LicenseRef-") {
        if !rest.is_empty() && rest.chars().all(allowed) {
            return name.to_string();
        }
    }
    let clean: String = name
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .collect();
    if clean == name && !name.is_empty() {
        format!("LicenseRef-{clean}")
    } else {
        let h = hex::encode(&Sha256::digest(name.as_bytes())[..4]);
        format!("LicenseRef-{clean}-{h}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn known_ids_are_canonicalized() {
        assert_eq!(License::from_id("MIT"), License::Spdx("MIT"));
        assert_eq!(License::from_id("apache-2.0"), License::Spdx("Apache-2.0"));
        assert_eq!(
            License::from_id("GPL-2.0-or-later"),
            License::Spdx("GPL-2.0-or-later")
        );
    }

    #[test]
    fn unknown_names_become_license_refs() {
        assert_eq!(License::from_id("unfree").spdx_id(), "LicenseRef-unfree");
        assert_eq!(
            License::from_id("LicenseRef-acme-1").spdx_id(),
            "LicenseRef-acme-1"
        );
        let a = License::from_id("Foo License");
        let b = License::from_id("Foo-License");
        assert!(a.spdx_id().starts_with("LicenseRef-Foo-License-"));
        assert_ne!(a.spdx_id(), b.spdx_id());
        // An exception is not a license on its own.
        assert!(matches!(
            License::from_id("Classpath-exception-2.0"),
            License::Other { .. }
        ));
    }

    #[test]
    fn a_licence_choice_is_kept_as_one() {
        let tri = "LicenseRef-RSALv2 OR SSPL-1.0 OR agpl-3.0-only";
        let l = resolve(&ids(&[tri, "BSD-3-Clause"]));
        assert_eq!(
            spdx_expression(&l),
            "(LicenseRef-RSALv2 OR SSPL-1.0 OR AGPL-3.0-only) AND BSD-3-Clause"
        );
        assert_eq!(
            l[0].license_refs(),
            [("LicenseRef-RSALv2", "LicenseRef-RSALv2")]
        );
        // Alone, no parentheses; already parenthesised, the same choice.
        assert_eq!(
            spdx_expression(&resolve(&ids(&["MIT OR Apache-2.0"]))),
            "MIT OR Apache-2.0"
        );
        assert_eq!(
            License::from_id("(MIT OR Apache-2.0)"),
            License::from_id("MIT OR Apache-2.0")
        );
    }

    #[test]
    fn expressions() {
        assert_eq!(spdx_expression(&resolve(&[])), "NOASSERTION");
        assert_eq!(
            spdx_expression(&resolve(&ids(&["MIT", "unfree", "mit", " "]))),
            "MIT AND LicenseRef-unfree"
        );
    }
}

//! SBOMs for a built image: SPDX 2.3 and CycloneDX 1.5 JSON, from its closure.
//!
//! Contract: pure. The same [`SbomInput`] gives the same JSON, and
//! [`to_canonical_bytes`] makes it byte-identical (sorted keys, no wall
//! clock: `created` comes from the caller, the document ids from the image
//! digest).
//!
//! Every closure store path is exactly one SPDX package / CycloneDX component.
//! The image itself is the package the SPDX document DESCRIBES and the
//! CycloneDX `metadata.component`; it is not one of the CycloneDX
//! `components`, so `components.len() == closure.len()` and SPDX has
//! `closure.len() + 1` packages.
//!
//! Per store path: name and version as `builtins.parseDrvName` splits the
//! store name (a trailing output such as `-bin` moves to an `output`
//! qualifier/property), a `pkg:nix` purl, the CPE where the caller knows the
//! vendor and product, the NAR hash as SHA-256, the licenses where known,
//! and the store path itself. Dependencies are the Nix references.
//!
//! Where the package set recorded a Debian origin ([`crate::provenance`]):
//! a path copied from a Debian binary package (the host glibc) has that
//! package's `pkg:deb` purl as its identifier, the `pkg:nix` one beside it;
//! a path built from a Debian source package carries the Debian patches
//! applied on top (CycloneDX `pedigree`, SPDX `sourceInfo` and annotations),
//! and the CVEs they fix become the image's OpenVEX document ([`openvex`]).
//! A package without a version or a CPE says why in its entry.

mod cyclonedx_bom;
mod ids;
mod license;
mod model;
mod nar_hash;
mod spdx_doc;
mod summary;
mod vex;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::closure::Closure;
use crate::provenance::Provenance;

pub(crate) use ids::deb_purl;
pub use summary::{component_line, components as cyclonedx_components, ComponentSummary};

/// What the SBOMs are made from. All of it is known after the image is built.
#[derive(Debug, Clone, Copy)]
pub struct SbomInput<'a> {
    pub image_name: &'a str,
    pub image_version: &'a str,
    pub tier: &'a str,
    /// `sha256:<hex>` of the image manifest. Seeds the CycloneDX serial
    /// number and the SPDX document namespace, so both are reproducible.
    pub manifest_digest: &'a str,
    /// Where the image is published (`ghcr.io/org/app:tag`), if anywhere.
    pub image_reference: Option<&'a str>,
    /// `roots` are the packages asked for, main package first.
    pub closure: &'a Closure,
    /// Store-path name (`nginx-1.22.1`), `name-version`, or pname → SPDX
    /// license ids, where the package set knows them. Ids not on the SPDX
    /// list are kept as `LicenseRef-…` (SPDX) or named licenses (CycloneDX).
    pub licenses: &'a BTreeMap<String, Vec<String>>,
    /// pname → CPE 2.3 `vendor:product` (`nginx` → `f5:nginx`), where known.
    pub cpes: &'a BTreeMap<String, String>,
    /// What the package set recorded inside each store path about its
    /// Debian origin and patches; paths it says nothing about are absent.
    pub provenance: &'a Provenance,
    /// RFC 3339 from `SOURCE_DATE_EPOCH`, in UTC; SPDX requires the
    /// `YYYY-MM-DDThh:mm:ssZ` form, which [`timestamp_from_epoch`] gives
    /// (`+00:00` and fractional seconds are rewritten to it).
    pub created: &'a str,
    pub tool_version: &'a str,
}

/// The SPDX 2.3 JSON document.
pub fn spdx(input: &SbomInput) -> Value {
    spdx_doc::document(input)
}

/// The CycloneDX 1.5 JSON BOM.
pub fn cyclonedx(input: &SbomInput) -> Value {
    cyclonedx_bom::bom(input)
}

/// The OpenVEX 0.2.0 document: every CVE an applied Debian patch fixes,
/// `fixed` for the component it was applied to. `None` when no component
/// has one (OpenVEX requires at least one statement).
pub fn openvex(input: &SbomInput) -> Option<Value> {
    vex::document(input)
}

#[cfg(test)]
mod tests;

//! The image's OpenVEX 0.2.0 document: for every CVE that an applied Debian
//! patch fixes, one `fixed` statement per component it was applied to.
//!
//! Identification: the product is the image and the subcomponent is the
//! component's purl exactly as the SBOMs carry it. grype only matches
//! OpenVEX statements whose product names the scanned image and whose
//! subcomponent is the matched package's purl; trivy (since 0.52) matches
//! the same image + subcomponents shape. Component purls as bare products
//! would be read by trivy alone, and would claim the fix for every image
//! holding that store path. Both match purls through go-vex, where a purl
//! with fewer qualifiers matches a more specific one: so the product's `@id`
//! is `pkg:oci/<name>@<digest>` with no qualifier (matching whatever
//! repository or tag a scanner names the image by), and its `purl`
//! identifier is the SBOMs' image purl. Likewise each subcomponent's `@id` is
//! the component's purl without qualifiers (`pkg:nix/nginx@1.26.3`), which
//! matches both the SBOM's purl (its `purl` identifier) and the one syft
//! gives the store path when grype scans the image (`…?outputhash=…`); the
//! image digest in the product keeps the statement to this image.
//!
//! Deterministic: the timestamp is the SBOMs' (`SOURCE_DATE_EPOCH`), the
//! `@id` a name-based UUID of the image digest, statements sorted by CVE
//! then component.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::ids;
use super::model::{self, Package};
use super::SbomInput;

pub(crate) const CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";

pub(crate) fn document(input: &SbomInput) -> Option<Value> {
    let packages = model::packages(input);
    let image = model::image(input);
    // (CVE, component purl) → the component and the patches that fix it there.
    let mut fixed: BTreeMap<(&str, &str), (&Package, Vec<&str>)> = BTreeMap::new();
    for p in &packages {
        let Some(d) = p.patches else { continue };
        for patch in &d.patches {
            for cve in &patch.cves {
                fixed
                    .entry((cve.as_str(), p.purl.as_str()))
                    .or_insert_with(|| (p, Vec::new()))
                    .1
                    .push(&patch.name);
            }
        }
    }
    if fixed.is_empty() {
        return None;
    }
    let mut product = json!({
        "@id": ids::oci_purl(input.image_name, None, input.manifest_digest, ""),
        "identifiers": { "purl": image.purl },
    });
    if let Some(h) = &image.sha256 {
        product["hashes"] = json!({ "sha-256": h });
    }
    let statements: Vec<Value> = fixed
        .into_iter()
        .map(|((cve, purl), (p, patch_names))| {
            let d = p.patches.expect("only patched packages are collected");
            let mut product = product.clone();
            product["subcomponents"] = json!([{
                "@id": purl.split_once('?').map_or(purl, |(generic, _)| generic),
                "identifiers": { "purl": purl },
            }]);
            json!({
                "vulnerability": { "@id": model::nvd_url(cve), "name": cve },
                "products": [product],
                "status": "fixed",
                "status_notes": format!(
                    "{} {} was built with Debian's {} from {} {} ({}) applied",
                    p.name,
                    p.version.unwrap_or(&d.upstream_version),
                    patch_names.join(", "),
                    d.source,
                    d.debian_version,
                    d.suite
                ),
            })
        })
        .collect();
    Some(json!({
        "@context": CONTEXT,
        "@id": format!("urn:uuid:{}", ids::document_uuid("openvex", input.manifest_digest)),
        "author": "armorred",
        "tooling": format!("armorred {}", input.tool_version),
        "timestamp": model::utc_timestamp(input.created),
        "version": 1,
        "statements": statements,
    }))
}

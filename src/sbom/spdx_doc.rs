//! The SPDX 2.3 JSON document.
//!
//! Packages: `SPDXRef-Image` (the image, which the document DESCRIBES), then
//! one per store path. Relationships: the image DEPENDS_ON each root and
//! CONTAINS every path; each path DEPENDS_ON each of its Nix references.
//!
//! SPDX 2.3 has no field for applied patches, so a path built from a Debian
//! source names that source in `sourceInfo` and carries one `OTHER`
//! annotation per applied patch; a path copied from a Debian binary package
//! gets that package's purl as a second PACKAGE-MANAGER reference.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::ids;
use super::license::{self, License};
use super::model::{self, Package};
use super::SbomInput;

pub(crate) const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";
pub(crate) const IMAGE_ID: &str = "SPDXRef-Image";

pub(crate) fn document(input: &SbomInput) -> Value {
    let created = model::utc_timestamp(input.created);
    let tool = format!("Tool: armorred-{}", input.tool_version);
    let annotation = |comment: String| {
        json!({
            "annotationDate": created,
            "annotationType": "OTHER",
            "annotator": tool,
            "comment": comment,
        })
    };
    let packages = model::packages(input);
    let image = model::image(input);
    let id_of = |p: &Package| ids::spdx_id_for_path(p.path.hash_part(), p.path.name());

    let mut image_annotations = vec![
        annotation(format!("armorred:tier={}", input.tier)),
        annotation(format!("oci:manifest_digest={}", input.manifest_digest)),
    ];
    if let Some(r) = input.image_reference {
        image_annotations.push(annotation(format!("oci:reference={r}")));
    }
    let mut image_pkg = json!({
        "SPDXID": IMAGE_ID,
        "name": input.image_name,
        "primaryPackagePurpose": "CONTAINER",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "externalRefs": [purl_ref(&image.purl)],
        "annotations": image_annotations,
    });
    if !input.image_version.is_empty() {
        image_pkg["versionInfo"] = json!(input.image_version);
    }
    if let Some(h) = &image.sha256 {
        image_pkg["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": h }]);
    }

    let mut spdx_packages = vec![image_pkg];
    // Extracted licensing infos, keyed by LicenseRef so each appears once.
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();
    for p in &packages {
        let mut refs = vec![purl_ref(&p.purl)];
        if p.nix_purl != p.purl {
            refs.push(purl_ref(&p.nix_purl));
        }
        if let Some(cpe) = &p.cpe {
            refs.push(json!({
                "referenceCategory": "SECURITY",
                "referenceType": "cpe23Type",
                "referenceLocator": cpe,
            }));
        }
        let expression = license::spdx_expression(&p.licenses);
        for (ref_id, name) in p.licenses.iter().flat_map(License::license_refs) {
            extracted.insert(ref_id.to_string(), name.to_string());
        }
        let mut annotations = vec![annotation(format!("nix:store_path={}", p.path))];
        for g in &p.gaps {
            annotations.push(annotation(format!("{}={}", g.key(), g.reason)));
        }
        if let Some(o) = p.origin {
            for b in &o.packages {
                annotations.push(annotation(format!(
                    "debian:origin=binary package {} {} ({}) from source {}",
                    b.package, b.version, b.architecture, b.source
                )));
            }
        }
        if let Some(d) = p.patches {
            for patch in &d.patches {
                annotations.push(annotation(format!(
                    "debian:patch={} sha256={} security={} cves={} selectedBy={}",
                    patch.name,
                    patch.sha256,
                    patch.security,
                    if patch.cves.is_empty() {
                        "none".to_string()
                    } else {
                        patch.cves.join(",")
                    },
                    patch.selected_by
                )));
            }
        }
        let mut pkg = json!({
            "SPDXID": id_of(p),
            "name": p.name,
            "primaryPackagePurpose": if p.is_root { "APPLICATION" } else { "LIBRARY" },
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": expression,
            "licenseDeclared": expression,
            "copyrightText": "NOASSERTION",
            "externalRefs": refs,
            "annotations": annotations,
        });
        if let Some(d) = p.patches {
            pkg["sourceInfo"] = json!(model::debian_source_line(d));
        } else if let Some(o) = p.origin {
            let m = o.main_package();
            pkg["sourceInfo"] = json!(format!(
                "files copied from the build host's Debian binary package {} {} ({}), built by Debian from source package {}",
                m.package,
                m.version,
                o.distro.as_deref().unwrap_or("distribution unknown"),
                m.source
            ));
        }
        if let Some(v) = p.version {
            pkg["versionInfo"] = json!(v);
        }
        if let Some(h) = &p.sha256 {
            pkg["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": h }]);
        }
        spdx_packages.push(pkg);
    }

    let rel = |from: &str, kind: &str, to: &str| json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to });
    let mut relationships = vec![rel(DOCUMENT_ID, "DESCRIBES", IMAGE_ID)];
    for r in model::roots(input) {
        relationships.push(rel(
            IMAGE_ID,
            "DEPENDS_ON",
            &ids::spdx_id_for_path(r.hash_part(), r.name()),
        ));
    }
    for p in &packages {
        relationships.push(rel(IMAGE_ID, "CONTAINS", &id_of(p)));
    }
    for p in &packages {
        for r in &p.info.references {
            relationships.push(rel(
                &id_of(p),
                "DEPENDS_ON",
                &ids::spdx_id_for_path(r.hash_part(), r.name()),
            ));
        }
    }

    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": DOCUMENT_ID,
        "name": format!("{}-{}", input.image_name, input.image_version),
        "documentNamespace": namespace(input),
        "creationInfo": {
            "created": created,
            "creators": [tool],
        },
        "packages": spdx_packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = extracted
            .into_iter()
            .map(|(id, name)| {
                json!({
                    "licenseId": id,
                    "name": name,
                    "extractedText": format!(
                        "The package set names this license `{name}`, which has no SPDX license identifier."
                    ),
                })
            })
            .collect();
    }
    doc
}

/// `https://spdx.org/spdxdocs/armorred/<image>-<uuid>`, the shape SPDX
/// recommends, with the UUID derived from the image digest.
fn namespace(input: &SbomInput) -> String {
    format!(
        "https://spdx.org/spdxdocs/armorred/{}-{}",
        ids::percent_encode(input.image_name, b""),
        ids::document_uuid("spdx", input.manifest_digest)
    )
}

fn purl_ref(purl: &str) -> Value {
    json!({
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    })
}

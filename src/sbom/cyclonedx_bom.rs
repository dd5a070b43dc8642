//! The CycloneDX 1.5 JSON BOM.
//!
//! The image is `metadata.component` (type `container`), not one of
//! `components`; each store path is a component whose `bom-ref` is its store
//! path. `dependencies` lists the image (→ roots) and every path (→ its Nix
//! references, possibly none, which says "no dependencies" explicitly).
//!
//! A path copied from a Debian binary package has that package's `pkg:deb`
//! purl as `purl` (what scanners match on) and its `pkg:nix` purl as the
//! `nix:purl` property: CycloneDX allows one purl, and `evidence.identity`
//! is for evidence supporting *that* purl, not for a second name. A path
//! built from a Debian source has `pedigree`: the Debian source package as
//! its ancestor and each applied Debian patch as a `backport` with the CVEs
//! it resolves.

use serde_json::{json, Value};

use super::ids;
use super::license::{self, License};
use super::model::{self, Package};
use super::SbomInput;
use crate::provenance::DebianPatches;

pub(crate) const SCHEMA: &str = "http://cyclonedx.org/schema/bom-1.5.schema.json";

pub(crate) fn bom(input: &SbomInput) -> Value {
    let packages = model::packages(input);
    let image = model::image(input);

    let mut image_props = vec![
        prop("armorred:tier", input.tier),
        prop("oci:manifest_digest", input.manifest_digest),
    ];
    if let Some(r) = input.image_reference {
        image_props.push(prop("oci:reference", r));
    }
    let mut image_component = json!({
        "type": "container",
        "bom-ref": image.purl,
        "name": input.image_name,
        "purl": image.purl,
        "properties": image_props,
    });
    if !input.image_version.is_empty() {
        image_component["version"] = json!(input.image_version);
    }
    if let Some(h) = &image.sha256 {
        image_component["hashes"] = json!([{ "alg": "SHA-256", "content": h }]);
    }

    let mut dependencies = vec![json!({
        "ref": image.purl,
        "dependsOn": model::roots(input).iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    })];
    for p in &packages {
        dependencies.push(json!({
            "ref": p.path.as_str(),
            "dependsOn": p.info.references.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        }));
    }

    json!({
        "$schema": SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", ids::document_uuid("cyclonedx", input.manifest_digest)),
        "version": 1,
        "metadata": {
            "timestamp": model::utc_timestamp(input.created),
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "armorred",
                    "version": input.tool_version,
                }],
            },
            "component": image_component,
        },
        "components": packages.iter().map(component).collect::<Vec<_>>(),
        "dependencies": dependencies,
    })
}

fn component(p: &Package) -> Value {
    let mut c = json!({
        "type": if p.is_root { "application" } else { "library" },
        "bom-ref": p.path.as_str(),
        "name": p.name,
        "purl": p.purl,
    });
    if let Some(v) = p.version {
        c["version"] = json!(v);
    }
    if let Some(cpe) = &p.cpe {
        c["cpe"] = json!(cpe);
    }
    if let Some(h) = &p.sha256 {
        c["hashes"] = json!([{ "alg": "SHA-256", "content": h }]);
    }
    if p.licenses.iter().any(|l| matches!(l, License::AnyOf(_))) {
        // CycloneDX 1.5 takes either licences or one expression, not both.
        c["licenses"] = json!([{ "expression": license::spdx_expression(&p.licenses) }]);
    } else if !p.licenses.is_empty() {
        c["licenses"] = p
            .licenses
            .iter()
            .map(|l| match l {
                License::Spdx(id) => json!({ "license": { "id": id } }),
                License::Other { name, .. } => json!({ "license": { "name": name } }),
                // Not reached: a list with a choice is one expression above.
                License::AnyOf(_) => json!({ "expression": l.spdx_id() }),
            })
            .collect();
    }
    let mut props = vec![
        prop("nix:store_path", p.path.as_str()),
        prop("nix:nar_size", &p.info.nar_size.to_string()),
    ];
    if let Some(o) = p.output {
        props.push(prop("nix:output", o));
    }
    if let Some(d) = &p.info.deriver {
        props.push(prop("nix:deriver", d));
    }
    if p.purl != p.nix_purl {
        props.push(prop("nix:purl", &p.nix_purl));
    }
    for g in &p.gaps {
        props.push(prop(&g.key(), &g.reason));
    }
    if let Some(o) = p.origin {
        let m = o.main_package();
        props.push(prop("debian:package", &m.package));
        props.push(prop("debian:version", &m.version));
        props.push(prop("debian:source", &m.source));
        if let Some(d) = &o.distro {
            props.push(prop("debian:distro", d));
        }
        for a in o.also_from() {
            props.push(prop(
                "debian:also_from",
                &ids::deb_purl(&a.package, &a.version, &a.architecture, o.distro.as_deref()),
            ));
        }
    }
    if let Some(d) = p.patches {
        props.push(prop("debian:source", &d.source));
        props.push(prop("debian:version", &d.debian_version));
        props.push(prop("debian:suite", &d.suite));
        props.push(prop(SECURITY_FIXES, &d.security_fixes().to_string()));
        for v in &d.newer_unfetchable {
            props.push(prop("debian:newer_unfetchable", v));
        }
        c["pedigree"] = pedigree(d);
    }
    c["properties"] = json!(props);
    c
}

/// The property [`super::summary`] reads the count back from.
pub(crate) const SECURITY_FIXES: &str = "debian:security_fixes";

/// The Debian source package as ancestor, each applied patch as a backport.
fn pedigree(d: &DebianPatches) -> Value {
    let patches: Vec<Value> = d
        .patches
        .iter()
        .map(|patch| {
            let mut v = json!({
                "type": "backport",
                // Relative: the patch's place inside the Debian tarball named in `notes`.
                "diff": { "url": format!("debian/patches/{}", patch.name) },
            });
            if !patch.cves.is_empty() {
                v["resolves"] = patch
                    .cves
                    .iter()
                    .map(|cve| {
                        json!({
                            "type": "security",
                            "id": cve,
                            "source": { "name": "NVD", "url": model::nvd_url(cve) },
                        })
                    })
                    .collect();
            }
            v
        })
        .collect();
    let mut notes = model::debian_source_line(d);
    notes.push_str(&format!(". Selection rule: {}. Patches (sha256):", d.rule));
    for patch in &d.patches {
        notes.push_str(&format!(
            " {} {} [{}]",
            patch.name,
            patch.sha256,
            if patch.security {
                format!("security, by {}", patch.selected_by)
            } else {
                patch.selected_by.clone()
            }
        ));
    }
    let mut pedigree = json!({
        "ancestors": [{
            "type": "library",
            "name": d.source,
            "version": d.debian_version,
            "purl": ids::deb_purl(&d.source, &d.debian_version, "source", Some(d.distro())),
            "properties": [
                prop("debian:orig_tarball", &format!("{} sha256:{}", d.orig_tarball.file, d.orig_tarball.sha256)),
                prop("debian:debian_tarball", &format!("{} sha256:{}", d.debian_tarball.file, d.debian_tarball.sha256)),
            ],
        }],
        "notes": notes,
    });
    if !patches.is_empty() {
        pedigree["patches"] = json!(patches);
    }
    pedigree
}

fn prop(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

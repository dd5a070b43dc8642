//! The CycloneDX 1.5 JSON BOM.
//!
//! The image is `metadata.component` (type `container`), not one of
//! `components`; each store path is a component whose `bom-ref` is its store
//! path. `dependencies` lists the image (→ roots) and every path (→ its Nix
//! references, possibly none, which says "no dependencies" explicitly).

use serde_json::{json, Value};

use super::ids;
use super::license::License;
use super::model::{self, Package};
use super::SbomInput;

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
    if !p.licenses.is_empty() {
        c["licenses"] = p
            .licenses
            .iter()
            .map(|l| match l {
                License::Spdx(id) => json!({ "license": { "id": id } }),
                License::Other { name, .. } => json!({ "license": { "name": name } }),
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
    c["properties"] = json!(props);
    c
}

fn prop(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

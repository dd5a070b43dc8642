//! Unit tests over both documents, on a closure with the awkward cases:
//! several references, a path without a version, `+` and `.` in names, a
//! split output, two builds of one name-version, and every NAR hash form.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;
use crate::closure::tests::{closure, sp};
use crate::closure::{Closure, PathInfo};
use crate::provenance::tests::{glibc_origin, nginx_patches};
use crate::provenance::{DebianPatches, PathProvenance, Provenance};
use crate::store_path::StorePath;

const DIGEST: &str = "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270";
// nix-hash --type sha256 --to-base32 0648a30c…fdcde2
const NIX32: &str = "sha256:1qndzm4icybkba4kxpl85fxi8g7kyar8mm1pxwkd7p4sqq6a6j06";
const NIX32_HEX: &str = "0648a30cc69adcd326ef37d48ab2f2f33c14bb2b88de3e895a73791649fdcde2";

/// A second build of `openssl-3.0.20` under another hash.
fn openssl_variant() -> StorePath {
    StorePath::parse("/nix/store/11phlmipd4qdqcmwr1sk9qcgv2zzq2lz-openssl-3.0.20").unwrap()
}

fn rich_closure() -> Closure {
    let mut c = closure(&[
        (
            "app-2.1",
            10,
            &[
                "gtk+3-3.24.41",
                "openssl-3.0.20-bin",
                "app.conf",
                "glibc-2.39-52",
            ],
        ),
        ("gtk+3-3.24.41", 20, &["glibc-2.39-52", "openssl-3.0.20"]),
        (
            "openssl-3.0.20-bin",
            5,
            &["openssl-3.0.20", "glibc-2.39-52"],
        ),
        ("openssl-3.0.20", 30, &["glibc-2.39-52"]),
        ("app.conf", 1, &[]),
        ("glibc-2.39-52", 50, &[]),
        ("bash-interactive-5.2p26", 8, &["glibc-2.39-52"]),
    ]);
    c.roots.push(sp("bash-interactive-5.2p26"));
    c.paths.insert(
        openssl_variant(),
        PathInfo {
            nar_hash: NIX32.to_string(),
            nar_size: 31,
            deriver: Some("/nix/store/h1r0i23gs3268ajn2zjvli3c9x01brij-openssl-3.0.20.drv".into()),
            references: [sp("glibc-2.39-52")].into(),
        },
    );
    c.paths
        .get_mut(&sp("app-2.1"))
        .unwrap()
        .references
        .insert(openssl_variant());
    // Every NAR hash form Nix prints; the helper's `sha256:<name>` is none.
    for (i, info) in c.paths.values_mut().enumerate() {
        if info.nar_hash.len() != NIX32.len() {
            info.nar_hash = match i % 3 {
                0 => format!("sha256:{}", hex::encode([i as u8; 32])),
                1 => NIX32.to_string(),
                _ => "sha256-BkijDMaa3NMm7zfUirLy8zwUuyuI3j6JWnN5Fkn9zeI=".to_string(),
            };
        }
    }
    c.check_closed().unwrap();
    c
}

struct Fixture {
    closure: Closure,
    licenses: BTreeMap<String, Vec<String>>,
    cpes: BTreeMap<String, String>,
    provenance: Provenance,
}

impl Fixture {
    fn new() -> Fixture {
        let licenses = [
            ("app", vec!["MIT"]),
            ("gtk+3", vec!["lgpl-2.1-or-later"]),
            ("openssl-3.0.20", vec!["Apache-2.0"]),
            ("glibc", vec!["LGPL-2.1-or-later", "GPL-2.0-or-later"]),
            ("bash-interactive-5.2p26", vec!["unfree redistributable"]),
        ];
        let cpes = [
            ("openssl", "openssl:openssl"),
            ("glibc", "gnu:glibc"),
            ("gtk+3", "gnome:gtk+"),
        ];
        Fixture {
            closure: rich_closure(),
            licenses: licenses
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
                .collect(),
            cpes: cpes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            provenance: Provenance::new(),
        }
    }

    fn input(&self) -> SbomInput<'_> {
        SbomInput {
            image_name: "app",
            image_version: "2.1",
            tier: "hardened",
            manifest_digest: DIGEST,
            image_reference: Some("ghcr.io/armorred/app:2.1"),
            closure: &self.closure,
            licenses: &self.licenses,
            cpes: &self.cpes,
            provenance: &self.provenance,
            created: "2024-01-02T03:04:05Z",
            tool_version: "0.1.0",
        }
    }
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not an array in {v}"))
}

fn spdx_package<'a>(doc: &'a Value, store_path: &StorePath) -> &'a Value {
    let want = format!("nix:store_path={store_path}");
    arr(doc, "packages")
        .iter()
        .find(|p| {
            p["annotations"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["comment"] == want.as_str()))
        })
        .unwrap_or_else(|| panic!("no package for {store_path}"))
}

fn cdx_component<'a>(bom: &'a Value, store_path: &StorePath) -> &'a Value {
    arr(bom, "components")
        .iter()
        .find(|c| c["bom-ref"] == store_path.as_str())
        .unwrap_or_else(|| panic!("no component for {store_path}"))
}

fn prop<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    arr(c, "properties")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["value"].as_str())
}

#[test]
fn counts_one_entry_per_store_path_and_the_image_apart() {
    let f = Fixture::new();
    let (doc, bom) = (spdx(&f.input()), cyclonedx(&f.input()));
    let n = f.closure.len();
    assert_eq!(n, 8);

    assert_eq!(arr(&bom, "components").len(), n);
    assert_eq!(bom["metadata"]["component"]["type"], "container");
    let image_ref = &bom["metadata"]["component"]["bom-ref"];
    assert!(arr(&bom, "components")
        .iter()
        .all(|c| &c["bom-ref"] != image_ref));

    let packages = arr(&doc, "packages");
    assert_eq!(packages.len(), n + 1);
    assert_eq!(
        packages
            .iter()
            .filter(|p| p["primaryPackagePurpose"] == "CONTAINER")
            .count(),
        1
    );
    let describes: Vec<_> = arr(&doc, "relationships")
        .iter()
        .filter(|r| r["relationshipType"] == "DESCRIBES")
        .collect();
    assert_eq!(describes.len(), 1);
    assert_eq!(describes[0]["spdxElementId"], "SPDXRef-DOCUMENT");
    assert_eq!(describes[0]["relatedSpdxElement"], "SPDXRef-Image");
}

#[test]
fn spdx_ids_are_valid_unique_and_every_relationship_resolves() {
    let f = Fixture::new();
    let doc = spdx(&f.input());
    let ids: Vec<&str> = arr(&doc, "packages")
        .iter()
        .map(|p| p["SPDXID"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len());
    for id in &ids {
        let rest = id.strip_prefix("SPDXRef-").unwrap();
        assert!(
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "{id}"
        );
    }
    for r in arr(&doc, "relationships") {
        for end in ["spdxElementId", "relatedSpdxElement"] {
            let id = r[end].as_str().unwrap();
            assert!(id == "SPDXRef-DOCUMENT" || unique.contains(id), "{r}");
        }
    }
    let gtk = spdx_package(&doc, &sp("gtk+3-3.24.41"));
    assert_eq!(
        gtk["SPDXID"],
        format!(
            "SPDXRef-nix-{}-gtk-3-3.24.41",
            sp("gtk+3-3.24.41").hash_part()
        )
    );
}

#[test]
fn both_graphs_are_exactly_the_nix_references() {
    let f = Fixture::new();
    let (doc, bom) = (spdx(&f.input()), cyclonedx(&f.input()));
    let roots: BTreeSet<&str> = f.closure.roots.iter().map(StorePath::as_str).collect();
    let mut want: BTreeSet<(String, String)> = f
        .closure
        .paths
        .iter()
        .flat_map(|(p, i)| {
            i.references
                .iter()
                .map(move |r| (p.to_string(), r.to_string()))
        })
        .collect();
    let image = bom["metadata"]["component"]["bom-ref"]
        .as_str()
        .unwrap()
        .to_string();
    want.extend(roots.iter().map(|r| (image.clone(), r.to_string())));

    let mut got = BTreeSet::new();
    for d in arr(&bom, "dependencies") {
        for on in arr(d, "dependsOn") {
            got.insert((
                d["ref"].as_str().unwrap().to_string(),
                on.as_str().unwrap().to_string(),
            ));
        }
    }
    assert_eq!(got, want);
    // Every path has an entry, even with no references.
    assert_eq!(arr(&bom, "dependencies").len(), f.closure.len() + 1);

    // SPDX: map ids back to store paths and compare the same edge set.
    let mut path_of: BTreeMap<String, String> = BTreeMap::new();
    path_of.insert("SPDXRef-Image".into(), image.clone());
    for p in f.closure.paths.keys() {
        path_of.insert(
            spdx_package(&doc, p)["SPDXID"].as_str().unwrap().into(),
            p.to_string(),
        );
    }
    let mut got = BTreeSet::new();
    let mut contains = BTreeSet::new();
    for r in arr(&doc, "relationships") {
        let (from, to) = (
            r["spdxElementId"].as_str().unwrap(),
            r["relatedSpdxElement"].as_str().unwrap(),
        );
        match r["relationshipType"].as_str().unwrap() {
            "DEPENDS_ON" => assert!(got.insert((path_of[from].clone(), path_of[to].clone()))),
            "CONTAINS" => assert!(from == "SPDXRef-Image" && contains.insert(path_of[to].clone())),
            "DESCRIBES" => {}
            other => panic!("unexpected relationship {other}"),
        }
    }
    assert_eq!(got, want);
    assert_eq!(contains.len(), f.closure.len());
}

#[test]
fn components_carry_name_version_purl_hash_and_store_path() {
    let f = Fixture::new();
    let (doc, bom) = (spdx(&f.input()), cyclonedx(&f.input()));

    let gtk = cdx_component(&bom, &sp("gtk+3-3.24.41"));
    assert_eq!(gtk["name"], "gtk+3");
    assert_eq!(gtk["version"], "3.24.41");
    assert_eq!(gtk["type"], "library");
    assert_eq!(
        gtk["purl"],
        format!(
            "pkg:nix/gtk%2B3@3.24.41?store_path_hash={}",
            sp("gtk+3-3.24.41").hash_part()
        )
    );
    assert_eq!(gtk["cpe"], r"cpe:2.3:a:gnome:gtk\+:3.24.41:*:*:*:*:*:*:*");
    assert_eq!(
        prop(gtk, "nix:store_path"),
        Some(sp("gtk+3-3.24.41").as_str())
    );
    assert_eq!(prop(gtk, "nix:nar_size"), Some("20"));

    let app = cdx_component(&bom, &sp("app-2.1"));
    assert_eq!(app["type"], "application");
    assert_eq!(
        app["licenses"],
        serde_json::json!([{ "license": { "id": "MIT" } }])
    );

    // No version: no `version`, no CPE, a purl without `@`.
    let conf = cdx_component(&bom, &sp("app.conf"));
    assert_eq!(conf["name"], "app.conf");
    assert!(conf.get("version").is_none() && conf.get("cpe").is_none());
    assert!(!conf["purl"].as_str().unwrap().contains('@'));
    assert!(spdx_package(&doc, &sp("app.conf"))
        .get("versionInfo")
        .is_none());

    // A split output: the version scanners see is the package's.
    let bin = cdx_component(&bom, &sp("openssl-3.0.20-bin"));
    assert_eq!(
        (bin["name"].as_str(), bin["version"].as_str()),
        (Some("openssl"), Some("3.0.20"))
    );
    assert_eq!(prop(bin, "nix:output"), Some("bin"));
    assert!(bin["purl"]
        .as_str()
        .unwrap()
        .contains("?output=bin&store_path_hash="));

    // Two builds of one name-version stay apart.
    let a = cdx_component(&bom, &sp("openssl-3.0.20"));
    let b = cdx_component(&bom, &openssl_variant());
    assert_eq!((&a["name"], &a["version"]), (&b["name"], &b["version"]));
    assert_ne!(a["purl"], b["purl"]);
    assert_eq!(
        prop(b, "nix:deriver"),
        Some("/nix/store/h1r0i23gs3268ajn2zjvli3c9x01brij-openssl-3.0.20.drv")
    );
    // The NAR hash in nix-base32, as hex.
    assert_eq!(
        b["hashes"],
        serde_json::json!([{ "alg": "SHA-256", "content": NIX32_HEX }])
    );
    let spdx_b = spdx_package(&doc, &openssl_variant());
    assert_eq!(
        spdx_b["checksums"],
        serde_json::json!([{ "algorithm": "SHA256", "checksumValue": NIX32_HEX }])
    );
    assert_eq!(spdx_b["downloadLocation"], "NOASSERTION");
    assert_eq!(spdx_b["filesAnalyzed"], false);
    let refs = arr(spdx_b, "externalRefs");
    assert!(refs
        .iter()
        .any(|r| r["referenceType"] == "purl" && r["referenceLocator"] == b["purl"]));
    assert!(refs.iter().any(|r| r["referenceCategory"] == "SECURITY"
        && r["referenceLocator"] == "cpe:2.3:a:openssl:openssl:3.0.20:*:*:*:*:*:*:*"));
}

#[test]
fn every_path_gets_a_hash_whatever_form_nix_printed() {
    let f = Fixture::new();
    let bom = cyclonedx(&f.input());
    for p in f.closure.paths.keys() {
        let h = cdx_component(&bom, p)["hashes"][0]["content"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
            "{p}: {h}"
        );
    }
}

#[test]
fn an_unreadable_nar_hash_is_left_out_not_invented() {
    let f = Fixture::new();
    let mut c = f.closure.clone();
    c.paths.get_mut(&sp("app.conf")).unwrap().nar_hash = "sha256:app.conf".into();
    let input = SbomInput {
        closure: &c,
        ..f.input()
    };
    assert!(cdx_component(&cyclonedx(&input), &sp("app.conf"))
        .get("hashes")
        .is_none());
    assert!(spdx_package(&spdx(&input), &sp("app.conf"))
        .get("checksums")
        .is_none());
}

#[test]
fn licenses_known_and_unknown() {
    let f = Fixture::new();
    let (doc, bom) = (spdx(&f.input()), cyclonedx(&f.input()));
    let glibc = spdx_package(&doc, &sp("glibc-2.39-52"));
    assert_eq!(
        glibc["licenseDeclared"],
        "LGPL-2.1-or-later AND GPL-2.0-or-later"
    );
    assert_eq!(glibc["licenseConcluded"], glibc["licenseDeclared"]);
    // Matched on pname, canonical casing.
    assert_eq!(
        spdx_package(&doc, &sp("gtk+3-3.24.41"))["licenseDeclared"],
        "LGPL-2.1-or-later"
    );
    // Matched on the store name (both builds share it) and on name-version for `-bin`.
    for p in [
        sp("openssl-3.0.20"),
        openssl_variant(),
        sp("openssl-3.0.20-bin"),
    ] {
        assert_eq!(spdx_package(&doc, &p)["licenseDeclared"], "Apache-2.0");
    }
    assert_eq!(
        spdx_package(&doc, &sp("app.conf"))["licenseDeclared"],
        "NOASSERTION"
    );

    let bash = spdx_package(&doc, &sp("bash-interactive-5.2p26"));
    let lref = bash["licenseDeclared"].as_str().unwrap();
    assert!(
        lref.starts_with("LicenseRef-unfree-redistributable-"),
        "{lref}"
    );
    let extracted = arr(&doc, "hasExtractedLicensingInfos");
    assert_eq!(extracted.len(), 1);
    assert_eq!(extracted[0]["licenseId"], lref);
    assert_eq!(extracted[0]["name"], "unfree redistributable");
    assert_eq!(
        cdx_component(&bom, &sp("bash-interactive-5.2p26"))["licenses"],
        serde_json::json!([{ "license": { "name": "unfree redistributable" } }])
    );
}

#[test]
fn document_header_and_image() {
    let f = Fixture::new();
    let (doc, bom) = (spdx(&f.input()), cyclonedx(&f.input()));
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["dataLicense"], "CC0-1.0");
    assert_eq!(doc["creationInfo"]["created"], "2024-01-02T03:04:05Z");
    assert_eq!(
        doc["creationInfo"]["creators"],
        serde_json::json!(["Tool: armorred-0.1.0"])
    );
    let ns = doc["documentNamespace"].as_str().unwrap();
    assert!(
        ns.starts_with("https://spdx.org/spdxdocs/armorred/app-"),
        "{ns}"
    );

    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    assert_eq!(bom["version"], 1);
    assert_eq!(bom["metadata"]["timestamp"], "2024-01-02T03:04:05Z");
    let serial = bom["serialNumber"].as_str().unwrap();
    assert_eq!(serial.len(), "urn:uuid:".len() + 36);
    assert!(
        !ns.ends_with(&serial["urn:uuid:".len()..]),
        "SPDX and CycloneDX ids are distinct"
    );

    let image = &bom["metadata"]["component"];
    let digest_hex = &DIGEST["sha256:".len()..];
    assert_eq!(
        image["purl"],
        format!("pkg:oci/app@sha256:{digest_hex}?repository_url=ghcr.io/armorred/app&tag=2.1")
    );
    assert_eq!(image["hashes"][0]["content"], digest_hex);
    assert_eq!(prop(image, "armorred:tier"), Some("hardened"));
    let spdx_image = &arr(&doc, "packages")[0];
    assert_eq!(spdx_image["SPDXID"], "SPDXRef-Image");
    assert_eq!(spdx_image["checksums"][0]["checksumValue"], digest_hex);
    assert_eq!(
        spdx_image["externalRefs"][0]["referenceLocator"],
        image["purl"]
    );
}

#[test]
fn ids_follow_the_digest_and_nothing_else() {
    let f = Fixture::new();
    let other = "sha256:".to_string() + &"0".repeat(64);
    let a = f.input();
    let b = SbomInput {
        manifest_digest: &other,
        ..f.input()
    };
    let c = SbomInput {
        created: "2030-01-01T00:00:00Z",
        tier: "locked",
        ..f.input()
    };
    let serial = |i: &SbomInput| cyclonedx(i)["serialNumber"].clone();
    let ns = |i: &SbomInput| spdx(i)["documentNamespace"].clone();
    assert_ne!(serial(&a), serial(&b));
    assert_ne!(ns(&a), ns(&b));
    assert_eq!(serial(&a), serial(&c));
    assert_eq!(ns(&a), ns(&c));
}

#[test]
fn output_is_byte_identical_for_the_same_input() {
    let (f, g) = (Fixture::new(), Fixture::new());
    for make in [spdx, cyclonedx] {
        let a = crate::base::json::canonical_pretty(&make(&f.input()));
        let b = crate::base::json::canonical_pretty(&make(&g.input()));
        assert_eq!(a, b);
        assert_eq!(a.last(), Some(&b'\n'));
        let back: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(back, make(&f.input()));
    }
}

#[test]
fn canonical_bytes_sort_keys_at_every_depth() {
    let v = serde_json::json!({ "b": 1, "a": [{ "z": 1, "y": { "d": 0, "c": 0 } }] });
    let text = String::from_utf8(crate::base::json::canonical_pretty(&v)).unwrap();
    let order: Vec<usize> = ["\"a\"", "\"y\"", "\"c\"", "\"d\"", "\"z\"", "\"b\""]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.ends_with("}\n"));
}

#[test]
fn epoch_timestamps() {
    // date -u -d @N +%Y-%m-%dT%H:%M:%SZ
    assert_eq!(crate::base::time::rfc3339_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(
        crate::base::time::rfc3339_utc(951_782_400),
        "2000-02-29T00:00:00Z"
    );
    assert_eq!(
        crate::base::time::rfc3339_utc(1_704_164_645),
        "2024-01-02T03:04:05Z"
    );
    assert_eq!(
        crate::base::time::rfc3339_utc(4_102_444_799),
        "2099-12-31T23:59:59Z"
    );
}

/// An nginx image as the package set builds it from Debian sources: glibc
/// copied from libc6, nginx with security patches, zlib from a Debian source
/// with none, and a config path with no version.
fn debian_fixture() -> Fixture {
    let mut closure = closure(&[
        (
            "nginx-1.26.3",
            10,
            &["glibc-2.36", "zlib-1.3.1", "openssl-3.5.7", "nginx.conf"],
        ),
        ("openssl-3.5.7", 30, &["glibc-2.36", "zlib-1.3.1"]),
        ("zlib-1.3.1", 5, &["glibc-2.36"]),
        ("glibc-2.36", 50, &[]),
        ("nginx.conf", 1, &[]),
        ("hello-1.0", 2, &["glibc-2.36"]),
    ]);
    closure.roots.push(sp("hello-1.0"));
    for info in closure.paths.values_mut() {
        info.nar_hash = format!("sha256:{}", "0".repeat(64));
    }
    let mut zlib: DebianPatches = nginx_patches();
    zlib.source = "zlib".into();
    zlib.upstream_version = "1.3.1".into();
    zlib.debian_version = "1:1.3.dfsg+really1.3.1-1+b1".into();
    zlib.patches.clear();
    zlib.newer_unfetchable.clear();
    let provenance = Provenance::from([
        (
            sp("glibc-2.36"),
            PathProvenance {
                origin: Some(glibc_origin()),
                patches: None,
            },
        ),
        (
            sp("nginx-1.26.3"),
            PathProvenance {
                origin: None,
                patches: Some(nginx_patches()),
            },
        ),
        (
            sp("zlib-1.3.1"),
            PathProvenance {
                origin: None,
                patches: Some(zlib),
            },
        ),
    ]);
    let cpes = [
        ("nginx", "f5:nginx"),
        ("glibc", "gnu:glibc"),
        ("zlib", "zlib:zlib"),
        ("openssl", "openssl:openssl"),
    ];
    Fixture {
        closure,
        licenses: BTreeMap::new(),
        cpes: cpes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        provenance,
    }
}

#[test]
fn glibc_is_named_by_its_debian_origin() {
    let f = debian_fixture();
    let (doc, bom) = (spdx(&f.input()), cyclonedx(&f.input()));
    let glibc = cdx_component(&bom, &sp("glibc-2.36"));
    assert_eq!(glibc["name"], "glibc");
    assert_eq!(glibc["version"], "2.36");
    assert_eq!(glibc["cpe"], "cpe:2.3:a:gnu:glibc:2.36:*:*:*:*:*:*:*");
    assert_eq!(
        glibc["purl"],
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u13?arch=amd64&distro=debian-12"
    );
    let nix_purl = format!(
        "pkg:nix/glibc@2.36?store_path_hash={}",
        sp("glibc-2.36").hash_part()
    );
    assert_eq!(prop(glibc, "nix:purl"), Some(nix_purl.as_str()));
    assert_eq!(prop(glibc, "debian:version"), Some("2.36-9+deb12u13"));
    assert_eq!(
        prop(glibc, "debian:also_from"),
        Some("pkg:deb/debian/libcrypt1@1:4.4.33-2?arch=amd64&distro=debian-12")
    );
    assert!(glibc.get("pedigree").is_none());

    let spdx_glibc = spdx_package(&doc, &sp("glibc-2.36"));
    let purls: Vec<&Value> = arr(spdx_glibc, "externalRefs")
        .iter()
        .filter(|r| r["referenceType"] == "purl")
        .map(|r| &r["referenceLocator"])
        .collect();
    assert_eq!(purls, [&glibc["purl"], &Value::from(nix_purl)]);
    assert!(spdx_glibc["sourceInfo"]
        .as_str()
        .unwrap()
        .contains("libc6 2.36-9+deb12u13"));
}

#[test]
fn applied_debian_patches_are_pedigree_and_annotations() {
    let f = debian_fixture();
    let (doc, bom) = (spdx(&f.input()), cyclonedx(&f.input()));
    let nginx = cdx_component(&bom, &sp("nginx-1.26.3"));
    assert_eq!(prop(nginx, "debian:security_fixes"), Some("3"));
    assert_eq!(prop(nginx, "debian:version"), Some("1.26.3-3+deb13u9"));
    // The nix purl stays the identifier: this nginx was built here, not by Debian.
    assert!(nginx["purl"]
        .as_str()
        .unwrap()
        .starts_with("pkg:nix/nginx@1.26.3?"));
    let pedigree = &nginx["pedigree"];
    assert_eq!(
        pedigree["ancestors"][0]["purl"],
        "pkg:deb/debian/nginx@1.26.3-3%2Bdeb13u9?arch=source&distro=trixie"
    );
    let patches = arr(pedigree, "patches");
    assert_eq!(patches.len(), 4);
    assert!(patches.iter().all(|p| p["type"] == "backport"));
    assert_eq!(
        patches[0]["diff"]["url"],
        "debian/patches/CVE-2025-23419.patch"
    );
    let resolved: Vec<&str> = patches
        .iter()
        .flat_map(|p| p["resolves"].as_array().into_iter().flatten())
        .map(|r| {
            assert_eq!(r["type"], "security");
            assert_eq!(r["source"]["name"], "NVD");
            r["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        resolved,
        ["CVE-2025-23419", "CVE-2024-7347", "CVE-2024-7348"]
    );
    // The prerequisite resolves nothing itself.
    assert!(patches[1].get("resolves").is_none());
    let notes = pedigree["notes"].as_str().unwrap();
    assert!(notes.contains("1.26.3-3+deb13u10"), "{notes}");

    // zlib came from a Debian source with no security patch: an ancestor, no patches.
    let zlib = cdx_component(&bom, &sp("zlib-1.3.1"));
    assert_eq!(prop(zlib, "debian:security_fixes"), Some("0"));
    assert!(zlib["pedigree"].get("patches").is_none());

    let spdx_nginx = spdx_package(&doc, &sp("nginx-1.26.3"));
    assert!(spdx_nginx["sourceInfo"]
        .as_str()
        .unwrap()
        .starts_with("Debian source package nginx 1.26.3-3+deb13u9 (trixie-security)"));
    let patch_notes: Vec<&str> = arr(spdx_nginx, "annotations")
        .iter()
        .filter_map(|a| a["comment"].as_str())
        .filter(|c| c.starts_with("debian:patch="))
        .collect();
    assert_eq!(patch_notes.len(), 4);
    assert!(patch_notes[2].contains("cves=CVE-2024-7347,CVE-2024-7348"));
}

/// Every component has a version and a CPE, or its entry says why not.
#[test]
fn no_component_lacks_a_version_or_cpe_without_a_reason() {
    for f in [debian_fixture(), Fixture::new()] {
        let (doc, bom) = (spdx(&f.input()), cyclonedx(&f.input()));
        let mut reasons = 0;
        for p in f.closure.paths.keys() {
            let c = cdx_component(&bom, p);
            let s = spdx_package(&doc, p);
            let spdx_note = |key: &str| {
                arr(s, "annotations")
                    .iter()
                    .filter_map(|a| a["comment"].as_str())
                    .any(|a| a.starts_with(&format!("{key}=")))
            };
            if c.get("version").is_none() {
                assert!(prop(c, "armorred:no_version_reason").is_some(), "{c}");
                assert!(s.get("versionInfo").is_none());
                assert!(spdx_note("armorred:no_version_reason"), "{s}");
                reasons += 1;
            } else {
                assert!(prop(c, "armorred:no_version_reason").is_none(), "{c}");
            }
            let spdx_cpe = arr(s, "externalRefs")
                .iter()
                .any(|r| r["referenceType"] == "cpe23Type");
            if c.get("cpe").is_none() {
                assert!(prop(c, "armorred:no_cpe_reason").is_some(), "{c}");
                assert!(!spdx_cpe && spdx_note("armorred:no_cpe_reason"), "{s}");
                reasons += 1;
            } else {
                assert!(spdx_cpe && prop(c, "armorred:no_cpe_reason").is_none());
            }
        }
        assert!(reasons > 0, "the fixture exercises the reasons");
    }
    let f = debian_fixture();
    let bom = cyclonedx(&f.input());
    let conf = cdx_component(&bom, &sp("nginx.conf"));
    assert!(prop(conf, "armorred:no_version_reason")
        .unwrap()
        .contains("nginx.conf"));
    let hello = cdx_component(&bom, &sp("hello-1.0"));
    assert!(prop(hello, "armorred:no_cpe_reason")
        .unwrap()
        .contains("no CPE vendor:product is known for `hello`"));
}

#[test]
fn vex_states_each_fixed_cve_for_its_component_in_the_image() {
    let f = debian_fixture();
    let vex = openvex(&f.input()).expect("nginx has CVE fixes");
    let bom = cyclonedx(&f.input());
    assert_eq!(vex["@context"], "https://openvex.dev/ns/v0.2.0");
    assert_eq!(vex["timestamp"], "2024-01-02T03:04:05Z");
    assert_eq!(vex["version"], 1);
    let id = vex["@id"].as_str().unwrap();
    assert!(id.starts_with("urn:uuid:"), "{id}");
    let image_purl = &bom["metadata"]["component"]["purl"];
    let nginx_purl = &cdx_component(&bom, &sp("nginx-1.26.3"))["purl"];
    let statements = arr(&vex, "statements");
    let cves: Vec<&str> = statements
        .iter()
        .map(|s| s["vulnerability"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(cves, ["CVE-2024-7347", "CVE-2024-7348", "CVE-2025-23419"]);
    for s in statements {
        assert_eq!(s["status"], "fixed");
        let product = &arr(s, "products")[0];
        // The digest alone names the image; the SBOM's purl is the identifier.
        assert_eq!(product["@id"], format!("pkg:oci/app@{DIGEST}"));
        assert_eq!(&product["identifiers"]["purl"], image_purl);
        assert_eq!(product["subcomponents"][0]["@id"], "pkg:nix/nginx@1.26.3");
        assert_eq!(
            &product["subcomponents"][0]["identifiers"]["purl"],
            nginx_purl
        );
    }
    assert!(statements[2]["status_notes"]
        .as_str()
        .unwrap()
        .contains("CVE-2025-23419.patch"));

    // Same digest, same document; another digest, another @id.
    assert_eq!(
        crate::base::json::canonical_pretty(&vex),
        crate::base::json::canonical_pretty(&openvex(&f.input()).unwrap())
    );
    let other = format!("sha256:{}", "1".repeat(64));
    let moved = SbomInput {
        manifest_digest: &other,
        ..f.input()
    };
    assert_ne!(openvex(&moved).unwrap()["@id"], vex["@id"]);

    // Nothing fixed, no document (OpenVEX needs one statement at least).
    assert!(openvex(&Fixture::new().input()).is_none());
}

#[test]
fn components_read_back_with_their_debian_fixes() {
    let f = debian_fixture();
    let list = cyclonedx_components(&cyclonedx(&f.input())).unwrap();
    let shown: BTreeSet<String> = list.iter().map(ComponentSummary::display).collect();
    for want in [
        "nginx 1.26.3 (+3 Debian security fixes, 1.26.3-3+deb13u9)",
        "glibc 2.36 (Debian 2.36-9+deb12u13)",
        "zlib 1.3.1 (+0 Debian security fixes, 1:1.3.dfsg+really1.3.1-1+b1)",
        "openssl 3.5.7",
        "nginx.conf",
    ] {
        assert!(shown.contains(want), "{want} not in {shown:?}");
    }
}

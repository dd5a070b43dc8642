//! The SBOMs validate with the reference tools: spdx-tools for SPDX 2.3 and
//! cyclonedx-python-lib's JSON schema validator for CycloneDX 1.5, both run by
//! `tests/validate_sbom.py`. Negative controls show the validator rejects a
//! corrupted document of each kind, so a pass means something.
//!
//! Needs a Python with the validators (`scripts/setup-python.sh` makes one,
//! or `pip install spdx-tools 'cyclonedx-python-lib[json-validation]'`);
//! `ARMORRED_PYTHON` names it (default `python3`). Without them the tests
//! fail rather than skip: a validator that did not run proves nothing.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use armorred::closure::{Closure, PathInfo};
use armorred::provenance::{DebianOrigin, DebianPatches, PathProvenance, Provenance};
use armorred::sbom::{self, SbomInput};
use armorred::store_path::StorePath;
use serde_json::Value;

const NGINX: &str = "/nix/store/f74phqpz13xmr3lyw61jrv97z7sk0hp8-nginx-1.22.1";
const DIGEST: &str = "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270";

fn path(s: &str) -> StorePath {
    StorePath::parse(s).unwrap()
}

/// A real nginx closure (`nix-store --dump-db $(nix-store -qR nginx)`, Nix
/// 2.8, hex NAR hashes, a versionless `glibc-host`) plus synthetic paths for
/// what it lacks: nix-base32 and SRI hashes, `+`, `.`, `?` and `=` in names, a
/// split output, a second root, a path without a version and a deriver.
fn realistic_closure() -> Closure {
    let text = std::fs::read_to_string(fixture("nginx-1.22.1.dump-db.txt")).unwrap();
    let mut c = Closure::from_dump_db(vec![path(NGINX)], &text).unwrap();
    let glibc = c.find_by_name("glibc-host").unwrap().clone();
    let openssl = c.find_by_name("openssl-3.0.20").unwrap().clone();
    let extra: &[(&str, &str, &[&StorePath])] = &[
        (
            "/nix/store/2c6ydbjx6cd2qk1hm5zv4ml9gax83xw1-gtk+3-3.24.41",
            "sha256:1qndzm4icybkba4kxpl85fxi8g7kyar8mm1pxwkd7p4sqq6a6j06",
            &[&glibc, &openssl],
        ),
        (
            "/nix/store/3kxq8ih0f3xrl5n5vbr1l7ds5d4y5ghl-python3.11-requests-2.31.0",
            "sha256-BkijDMaa3NMm7zfUirLy8zwUuyuI3j6JWnN5Fkn9zeI=",
            &[&glibc],
        ),
        (
            "/nix/store/4mbdc0wf1kizx1b3k9bp7hbf5j4f0n9r-openssl-3.0.20-bin",
            "sha256:080z3qfiq6qs34c1f5hm2h9i448h1w70s30b184hh1q60l2060h1",
            &[&openssl, &glibc],
        ),
        (
            "/nix/store/5zw0vbn0ygd1jq9lxxf5v8m7z3dkh3w2-fetch-url?v=2-1.0",
            "sha256:0000000000000000000000000000000000000000000000000000",
            &[],
        ),
        (
            "/nix/store/6ai1wyr4ld0r3mwxh5bq1wdc0qjqg2d1-nginx.conf",
            "sha256:1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            &[],
        ),
    ];
    for (p, nar_hash, refs) in extra {
        c.paths.insert(
            path(p),
            PathInfo {
                nar_hash: nar_hash.to_string(),
                nar_size: 4096,
                deriver: Some(format!("{p}.drv")),
                references: refs.iter().map(|r| (*r).clone()).collect(),
            },
        );
    }
    // The shell is a second root, using everything synthetic.
    let shell = path("/nix/store/7b2hx8m4q6r0z5k9c1d3f5g7j9l1n3p5-shell-1.0");
    c.paths.insert(
        shell.clone(),
        PathInfo {
            nar_hash: "sha256:0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
                .into(),
            nar_size: 1,
            deriver: None,
            references: extra
                .iter()
                .map(|(p, _, _)| path(p))
                .chain([path(NGINX)])
                .collect(),
        },
    );
    c.roots.push(shell);
    c.check_closed().unwrap();
    c
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sbom")
        .join(name)
}

struct Sboms {
    spdx: Value,
    cyclonedx: Value,
    openvex: Value,
    closure_len: usize,
}

/// What the package set records in the store: glibc's origin (as
/// `nix/offline/glibc.nix` wrote it on a Debian 12 host), openssl's patch
/// record (as the Debian 13 build wrote it), and one for nginx with every
/// shape a record can take (prerequisite, header selection, several CVEs).
/// The records are attached to the closure's nginx and openssl paths only to
/// run the validators over them; their versions are not these paths'.
fn provenance(c: &Closure) -> Provenance {
    let origin = fixture("glibc.armorred-origin.json");
    let patches = fixture("nginx.armorred-patches.json");
    let openssl = fixture("openssl.armorred-patches.json");
    Provenance::from([
        (
            c.find_by_name("openssl-3.0.20").unwrap().clone(),
            PathProvenance {
                origin: None,
                patches: Some(
                    DebianPatches::parse(&openssl, &std::fs::read(&openssl).unwrap()).unwrap(),
                ),
            },
        ),
        (
            c.find_by_name("glibc-host").unwrap().clone(),
            PathProvenance {
                origin: Some(
                    DebianOrigin::parse(&origin, &std::fs::read(&origin).unwrap()).unwrap(),
                ),
                patches: None,
            },
        ),
        (
            path(NGINX),
            PathProvenance {
                origin: None,
                patches: Some(
                    DebianPatches::parse(&patches, &std::fs::read(&patches).unwrap()).unwrap(),
                ),
            },
        ),
    ])
}

fn make_sboms() -> Sboms {
    make_sboms_with(default_licenses())
}

fn default_licenses() -> BTreeMap<String, Vec<String>> {
    [
        ("nginx", vec!["BSD-2-Clause"]),
        ("openssl", vec!["Apache-2.0"]),
        ("pcre2", vec!["BSD-3-Clause"]),
        ("zlib-1.2.13", vec!["Zlib"]),
        ("gtk+3", vec!["LGPL-2.1-or-later"]),
        ("python3.11-requests", vec!["Apache-2.0"]),
        ("glibc-host", vec!["LGPL-2.1-or-later", "GPL-2.0-or-later"]),
        ("shell", vec!["unfree redistributable", "LicenseRef-acme-1"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect()
}

fn make_sboms_with(licenses: BTreeMap<String, Vec<String>>) -> Sboms {
    let closure = realistic_closure();
    let cpes: BTreeMap<String, String> = [
        ("nginx", "f5:nginx"),
        ("openssl", "openssl:openssl"),
        ("pcre2", "pcre:pcre2"),
        ("zlib", "zlib:zlib"),
        ("gtk+3", "gnome:gtk+"),
        ("fetch-url?v=2", "acme:fetch-url?v=2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let input = SbomInput {
        image_name: "nginx",
        image_version: "1.22.1",
        tier: "hardened",
        manifest_digest: DIGEST,
        image_reference: Some("localhost:5000/armorred/nginx:1.22.1"),
        closure: &closure,
        licenses: &licenses,
        cpes: &cpes,
        provenance: &provenance(&closure),
        created: &armorred::base::time::rfc3339_utc(1_700_000_000),
        tool_version: "0.1.0",
    };
    Sboms {
        spdx: sbom::spdx(&input),
        cyclonedx: sbom::cyclonedx(&input),
        openvex: sbom::openvex(&input).expect("nginx's patches fix CVEs"),
        closure_len: closure.len(),
    }
}

/// Writes both documents and runs the validator on them.
fn validate(dir: &Path, spdx: &Value, cyclonedx: &Value) -> Output {
    validate_all(dir, spdx, cyclonedx, None)
}

/// Writes the documents (the VEX one too, if given) and runs the validator.
fn validate_all(dir: &Path, spdx: &Value, cyclonedx: &Value, openvex: Option<&Value>) -> Output {
    let (s, c) = (dir.join("sbom.spdx.json"), dir.join("sbom.cdx.json"));
    std::fs::write(&s, armorred::base::json::canonical_pretty(spdx)).unwrap();
    std::fs::write(&c, armorred::base::json::canonical_pretty(cyclonedx)).unwrap();
    let python = common::python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_sbom.py");
    let mut cmd = Command::new(&python);
    cmd.arg(&script).arg(&s).arg(&c);
    if let Some(v) = openvex {
        let f = dir.join("image.openvex.json");
        std::fs::write(&f, armorred::base::json::canonical_pretty(v)).unwrap();
        cmd.arg(&f);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "could not start `{}` (set ARMORRED_PYTHON): {e}",
            python.display()
        )
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "`{}` lacks the validators; hint: export ARMORRED_PYTHON=$(bash scripts/setup-python.sh)\n{stderr}",
        python.display()
    );
    out
}

/// The CycloneDX component named `name`.
fn component<'a>(bom: &'a Value, name: &str) -> &'a Value {
    bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name}"))
}

fn report(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn sboms_validate_with_the_reference_tools() {
    let s = make_sboms();
    assert_eq!(
        s.cyclonedx["components"].as_array().unwrap().len(),
        s.closure_len
    );
    assert_eq!(
        s.spdx["packages"].as_array().unwrap().len(),
        s.closure_len + 1
    );
    let licenses_refs: BTreeSet<&str> = s.spdx["hasExtractedLicensingInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["licenseId"].as_str().unwrap())
        .collect();
    assert!(
        licenses_refs.contains("LicenseRef-acme-1"),
        "{licenses_refs:?}"
    );

    // The Debian pieces are in what gets validated.
    let nginx = component(&s.cyclonedx, "nginx");
    assert_eq!(
        nginx["pedigree"]["patches"].as_array().unwrap().len(),
        6,
        "{nginx}"
    );
    let glibc = component(&s.cyclonedx, "glibc-host");
    assert!(glibc["purl"]
        .as_str()
        .unwrap()
        .starts_with("pkg:deb/debian/libc6@2.36-9%2Bdeb12u"));

    let dir = tempfile::tempdir().unwrap();
    let out = validate_all(dir.path(), &s.spdx, &s.cyclonedx, Some(&s.openvex));
    assert!(
        out.status.success(),
        "validator rejected the SBOMs\n{}",
        report(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("SPDX") && stdout.contains("CycloneDX") && stdout.contains("OpenVEX"),
        "{}",
        report(&out)
    );
}

#[test]
fn vex_names_every_fixed_cve_once_per_component() {
    let s = make_sboms();
    let cves: BTreeSet<&str> = s.openvex["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["vulnerability"]["name"].as_str().unwrap())
        .collect();
    let mut want = BTreeSet::from([
        "CVE-2021-23017",
        "CVE-2023-44487",
        "CVE-2024-7347",
        "CVE-2025-23419",
    ]);
    // openssl's record (captured): 12 security patches for 9 CVEs.
    let openssl = component(&s.cyclonedx, "openssl");
    let openssl_cves: BTreeSet<&str> = openssl["pedigree"]["patches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["resolves"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(openssl_cves.len(), 9);
    want.extend(&openssl_cves);
    assert_eq!(cves, want);
    // CVE-2024-7347 is fixed by two nginx patches: one statement naming both.
    assert_eq!(s.openvex["statements"].as_array().unwrap().len(), 4 + 9);
}

#[test]
fn validator_rejects_a_broken_vex() {
    let dir = tempfile::tempdir().unwrap();
    for (pointer, bad) in [
        ("/statements/0/status", Value::from("patched")),
        ("/statements/0/vulnerability/name", Value::from("nginx bug")),
        (
            "/statements/0/products/0/subcomponents/0/identifiers/purl",
            Value::from("pkg:nix/Nginx Server@1"),
        ),
    ] {
        let mut s = make_sboms();
        *s.openvex.pointer_mut(pointer).unwrap() = bad;
        let out = validate_all(dir.path(), &s.spdx, &s.cyclonedx, Some(&s.openvex));
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("OpenVEX"),
            "{pointer}: a corrupt VEX passed\n{}",
            report(&out)
        );
    }
}

#[test]
fn validator_rejects_an_invalid_spdx_id() {
    let mut s = make_sboms();
    // `_` is not allowed in an SPDX id.
    s.spdx["packages"][1]["SPDXID"] = "SPDXRef-not_valid".into();
    let dir = tempfile::tempdir().unwrap();
    let out = validate(dir.path(), &s.spdx, &s.cyclonedx);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a corrupt SPDX passed\n{}",
        report(&out)
    );
    assert!(
        stderr.contains("SPDXRef-not_valid") && !stderr.contains("CycloneDX"),
        "{}",
        report(&out)
    );
}

#[test]
fn validator_rejects_a_broken_cyclonedx() {
    let mut s = make_sboms();
    // A SHA-256 must be 64 hex digits, and a dependency must name a bom-ref.
    s.cyclonedx["components"][0]["hashes"][0]["content"] = "not-a-hash".into();
    let dir = tempfile::tempdir().unwrap();
    let out = validate(dir.path(), &s.spdx, &s.cyclonedx);
    assert!(
        !out.status.success(),
        "a corrupt CycloneDX passed\n{}",
        report(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CycloneDX"),
        "{}",
        report(&out)
    );

    let mut s = make_sboms();
    s.cyclonedx["dependencies"][0]["dependsOn"][0] = "/nix/store/not-in-the-bom".into();
    let out = validate(dir.path(), &s.spdx, &s.cyclonedx);
    assert!(
        !out.status.success(),
        "a dangling dependency passed\n{}",
        report(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("undeclared bom-ref"),
        "{}",
        report(&out)
    );
}

/// Every id armorred treats as an SPDX license id must pass both validators
/// as one, or a package carrying it would make the SBOMs invalid.
#[test]
fn every_embedded_spdx_license_id_validates() {
    let list = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sbom/spdx_license_ids.txt"),
    )
    .unwrap();
    let ids: Vec<String> = list
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(String::from)
        .collect();
    assert!(ids.len() > 500, "{}", ids.len());
    let mut licenses = default_licenses();
    licenses.insert("nginx".into(), ids.clone());
    let s = make_sboms_with(licenses);
    // All of them went in as ids, none as LicenseRef-/named licenses.
    let nginx = component(&s.cyclonedx, "nginx");
    let as_ids: Vec<&str> = nginx["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["license"]["id"].as_str())
        .collect();
    assert_eq!(as_ids, ids);

    let dir = tempfile::tempdir().unwrap();
    let out = validate(dir.path(), &s.spdx, &s.cyclonedx);
    assert!(
        out.status.success(),
        "validator rejected an embedded id\n{}",
        report(&out)
    );
}

/// On the real nginx closure (plus the synthetic paths), every component has
/// a version and a CPE, or a property saying why not.
#[test]
fn every_component_has_version_and_cpe_or_says_why() {
    let s = make_sboms();
    let mut reasons = 0;
    for c in s.cyclonedx["components"].as_array().unwrap() {
        let reason = |field: &str| {
            c["properties"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == format!("armorred:no_{field}_reason").as_str())
        };
        for field in ["version", "cpe"] {
            if c.get(field).is_none() {
                assert!(reason(field), "{field} missing without a reason: {c}");
                reasons += 1;
            } else {
                assert!(!reason(field), "{c}");
            }
        }
    }
    assert!(reasons > 0);
    // glibc-host: the version comes from its recorded origin, the CPE too.
    let glibc = component(&s.cyclonedx, "glibc-host");
    assert_eq!(glibc["version"], "2.36");
    assert_eq!(glibc["cpe"], "cpe:2.3:a:gnu:glibc:2.36:*:*:*:*:*:*:*");
}

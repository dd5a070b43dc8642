//! SLSA v1.0 provenance of a built image, as an in-toto Statement.
//!
//! Contract: [`statement`] is pure and deterministic. The same inputs give
//! the same value, and [`to_bytes`] gives byte-identical canonical JSON, so
//! two builds of one image attest the same bytes. No wall-clock time is read:
//! the only time is `SOURCE_DATE_EPOCH`, an input.
//!
//! `resolvedDependencies` lists what the build read: each Debian source
//! tarball (upstream `orig` and Debian's) a closure path records in
//! `nix-support/armorred-patches.json`, the Nix derivation of the package,
//! the Debian binary packages a path was copied from
//! (`nix-support/armorred-origin.json`, glibc), and armorred's own source.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::provenance::Provenance;
use crate::sign::dsse::Statement;

/// `predicateType` of SLSA provenance v1.0.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What an armorred build is, for a verifier: see README "Attestations".
pub const BUILD_TYPE: &str = "https://github.com/armorred/armorred/buildtypes/nix/v1";
/// armorred's repository, the root of its builder id and source URI.
const REPOSITORY: &str = "https://github.com/armorred/armorred";

/// Everything the provenance says, gathered by the caller.
#[derive(Debug, Clone)]
pub struct ProvenanceInput<'a> {
    /// The subject's name: the image's reference (`hello:1.0-hardened`).
    pub image_ref: &'a str,
    /// `sha256:<hex>` of the image manifest.
    pub manifest_digest: &'a str,
    pub recipe_name: &'a str,
    /// sha256 (hex) of the recipe file's bytes.
    pub recipe_sha256: &'a str,
    pub tier: &'a str,
    pub package_set: &'a str,
    /// `linux/amd64`.
    pub platform: &'a str,
    /// `gzip-6`, `zstd-3`, `none`.
    pub compression: &'a str,
    pub source_date_epoch: i64,
    /// The package's `.drv` path and, when the file could be read, its sha256.
    pub package_drv: Option<(&'a str, Option<&'a str>)>,
    pub provenance: &'a Provenance,
    pub armorred_version: &'a str,
    /// The git commit armorred was built from, when known.
    pub armorred_commit: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Predicate {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    pub internal_parameters: InternalParameters,
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalParameters {
    pub recipe: Recipe,
    pub tier: String,
    pub package_set: String,
    pub platform: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipe {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InternalParameters {
    pub compression: String,
    #[serde(rename = "SOURCE_DATE_EPOCH")]
    pub source_date_epoch: i64,
}

/// SLSA's ResourceDescriptor, the fields armorred fills.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ResourceDescriptor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub uri: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetails {
    pub builder: Builder,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Builder {
    pub id: String,
    pub version: BTreeMap<String, String>,
}

/// The provenance Statement for one image.
pub fn statement(input: &ProvenanceInput<'_>) -> Statement<Predicate> {
    let predicate = Predicate {
        build_definition: BuildDefinition {
            build_type: BUILD_TYPE.into(),
            external_parameters: ExternalParameters {
                recipe: Recipe {
                    name: input.recipe_name.into(),
                    digest: sha256(input.recipe_sha256),
                },
                tier: input.tier.into(),
                package_set: input.package_set.into(),
                platform: input.platform.into(),
            },
            internal_parameters: InternalParameters {
                compression: input.compression.into(),
                source_date_epoch: input.source_date_epoch,
            },
            resolved_dependencies: resolved_dependencies(input),
        },
        run_details: RunDetails {
            builder: Builder {
                id: format!("{REPOSITORY}@v{}", input.armorred_version),
                version: BTreeMap::from([(
                    "armorred".to_string(),
                    input.armorred_version.to_string(),
                )]),
            },
        },
    };
    Statement::about_image(
        input.image_ref,
        input.manifest_digest,
        PREDICATE_TYPE,
        predicate,
    )
}

/// Canonical JSON of the statement: the bytes to sign.
pub fn to_bytes(statement: &Statement<Predicate>) -> Vec<u8> {
    crate::base::json::canonical(statement)
}

fn sha256(hex: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("sha256".to_string(), hex.to_string())])
}

/// Tarballs in closure order (the provenance map is sorted by store path),
/// then the derivation, the host packages, and armorred's source. A tarball
/// two paths read is listed once.
fn resolved_dependencies(input: &ProvenanceInput<'_>) -> Vec<ResourceDescriptor> {
    let mut out: Vec<ResourceDescriptor> = Vec::new();
    let mut push = |d: ResourceDescriptor| {
        if !out.contains(&d) {
            out.push(d);
        }
    };
    for p in input.provenance.values() {
        let Some(patches) = &p.patches else { continue };
        let source = crate::sbom::deb_purl(
            &patches.source,
            &patches.debian_version,
            "source",
            Some(&patches.suite),
        );
        for tarball in [&patches.orig_tarball, &patches.debian_tarball] {
            push(ResourceDescriptor {
                name: Some(tarball.file.clone()),
                uri: source.clone(),
                digest: sha256(&tarball.sha256),
            });
        }
    }
    if let Some((drv, digest)) = input.package_drv {
        push(ResourceDescriptor {
            name: None,
            uri: drv.to_string(),
            digest: digest.map(sha256).unwrap_or_default(),
        });
    }
    for p in input.provenance.values() {
        let Some(origin) = &p.origin else { continue };
        for b in &origin.packages {
            push(ResourceDescriptor {
                name: Some(b.package.clone()),
                uri: crate::sbom::deb_purl(
                    &b.package,
                    &b.version,
                    &b.architecture,
                    origin.distro.as_deref(),
                ),
                digest: BTreeMap::new(),
            });
        }
    }
    if let Some(commit) = input.armorred_commit {
        push(ResourceDescriptor {
            name: Some("armorred".into()),
            uri: format!("git+{REPOSITORY}@{commit}"),
            digest: BTreeMap::from([("gitCommit".to_string(), commit.to_string())]),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::{DebianBinary, DebianOrigin, DebianPatches, PathProvenance, Tarball};
    use crate::store_path::StorePath;

    const DIGEST: &str = "sha256:4c1c50d0ffc614f90b93b07d778028dc765548e823f676fb027f61d281ac380d";

    fn provenance() -> Provenance {
        let patches = DebianPatches {
            schema: "armorred.debian-patches/v1".into(),
            source: "nginx".into(),
            upstream_version: "1.26.3".into(),
            debian_version: "1.26.3-3+deb13u9".into(),
            suite: "trixie".into(),
            orig_tarball: Tarball {
                file: "nginx_1.26.3.orig.tar.gz".into(),
                sha256: "aa".repeat(32),
            },
            debian_tarball: Tarball {
                file: "nginx_1.26.3-3+deb13u9.debian.tar.xz".into(),
                sha256: "bb".repeat(32),
            },
            newer_unfetchable: vec![],
            rule: "all".into(),
            patches: vec![],
        };
        let origin = DebianOrigin {
            schema: "armorred.host-origin/v1".into(),
            name: "glibc".into(),
            version: "2.36".into(),
            distro: Some("debian-12".into()),
            cpe: None,
            packages: vec![DebianBinary {
                package: "libc6".into(),
                version: "2.36-9+deb12u13".into(),
                architecture: "amd64".into(),
                source: "glibc".into(),
            }],
        };
        let path = |s: &str| StorePath::parse(s).unwrap();
        Provenance::from([
            (
                path("/nix/store/0ih1s3lv5b6lp4ffx2gcm0bfm0yqp1q0-nginx-1.26.3"),
                PathProvenance {
                    origin: None,
                    patches: Some(patches),
                },
            ),
            (
                path("/nix/store/1ih1s3lv5b6lp4ffx2gcm0bfm0yqp1q0-glibc-2.36"),
                PathProvenance {
                    origin: Some(origin),
                    patches: None,
                },
            ),
        ])
    }

    fn input(p: &Provenance) -> ProvenanceInput<'_> {
        ProvenanceInput {
            image_ref: "nginx:1.26.3-hardened",
            manifest_digest: DIGEST,
            recipe_name: "nginx",
            recipe_sha256: "cc",
            tier: "hardened",
            package_set: "offline",
            platform: "linux/amd64",
            compression: "gzip-6",
            source_date_epoch: 1_700_000_000,
            package_drv: Some((
                "/nix/store/2ih1s3lv5b6lp4ffx2gcm0bfm0yqp1q0-nginx.drv",
                Some("dd"),
            )),
            provenance: p,
            armorred_version: "0.1.0",
            armorred_commit: Some("0123456789abcdef0123456789abcdef01234567"),
        }
    }

    #[test]
    fn statement_follows_slsa_v1() {
        let p = provenance();
        let v: serde_json::Value =
            serde_json::from_slice(&to_bytes(&statement(&input(&p)))).unwrap();
        assert_eq!(v["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(v["predicateType"], PREDICATE_TYPE);
        assert_eq!(v["subject"][0]["name"], "nginx:1.26.3-hardened");
        assert_eq!(
            v["subject"][0]["digest"]["sha256"],
            DIGEST.strip_prefix("sha256:").unwrap()
        );
        let bd = &v["predicate"]["buildDefinition"];
        assert_eq!(bd["buildType"], BUILD_TYPE);
        assert_eq!(bd["externalParameters"]["recipe"]["name"], "nginx");
        assert_eq!(bd["externalParameters"]["recipe"]["digest"]["sha256"], "cc");
        assert_eq!(bd["externalParameters"]["tier"], "hardened");
        assert_eq!(bd["externalParameters"]["packageSet"], "offline");
        assert_eq!(bd["externalParameters"]["platform"], "linux/amd64");
        assert_eq!(bd["internalParameters"]["compression"], "gzip-6");
        assert_eq!(bd["internalParameters"]["SOURCE_DATE_EPOCH"], 1_700_000_000);
        let deps = bd["resolvedDependencies"].as_array().unwrap();
        let uris: Vec<&str> = deps.iter().map(|d| d["uri"].as_str().unwrap()).collect();
        assert_eq!(
            uris,
            [
                "pkg:deb/debian/nginx@1.26.3-3%2Bdeb13u9?arch=source&distro=trixie",
                "pkg:deb/debian/nginx@1.26.3-3%2Bdeb13u9?arch=source&distro=trixie",
                "/nix/store/2ih1s3lv5b6lp4ffx2gcm0bfm0yqp1q0-nginx.drv",
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u13?arch=amd64&distro=debian-12",
                "git+https://github.com/armorred/armorred@0123456789abcdef0123456789abcdef01234567",
            ]
        );
        assert_eq!(deps[0]["name"], "nginx_1.26.3.orig.tar.gz");
        assert_eq!(deps[0]["digest"]["sha256"], "aa".repeat(32));
        assert_eq!(deps[1]["digest"]["sha256"], "bb".repeat(32));
        assert_eq!(deps[2]["digest"]["sha256"], "dd");
        assert!(deps[3].get("digest").is_none());
        let builder = &v["predicate"]["runDetails"]["builder"];
        assert_eq!(builder["id"], "https://github.com/armorred/armorred@v0.1.0");
        // No wall-clock time anywhere: only SOURCE_DATE_EPOCH is a time.
        let text = String::from_utf8(to_bytes(&statement(&input(&p)))).unwrap();
        assert!(
            !text.contains("startedOn") && !text.contains("finishedOn"),
            "{text}"
        );
    }

    #[test]
    fn same_inputs_same_bytes_and_inputs_show() {
        let p = provenance();
        let a = to_bytes(&statement(&input(&p)));
        assert_eq!(a, to_bytes(&statement(&input(&p))));
        let mut other = input(&p);
        other.tier = "locked";
        assert_ne!(a, to_bytes(&statement(&other)));
        // A tarball two paths record is one dependency.
        let mut twice = provenance();
        let nginx = twice.values().next().unwrap().clone();
        twice.insert(
            StorePath::parse("/nix/store/3ih1s3lv5b6lp4ffx2gcm0bfm0yqp1q0-nginx-doc").unwrap(),
            nginx,
        );
        let deps = statement(&input(&twice))
            .predicate
            .build_definition
            .resolved_dependencies;
        assert_eq!(deps.len(), 5);
    }
}

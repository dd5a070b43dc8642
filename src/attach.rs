//! SBOM attachments: SPDX 2.3 and CycloneDX 1.5 documents made from the
//! image's actual closure (and what its store paths record about their
//! Debian origin and patches), plus an OpenVEX document when an applied
//! Debian patch fixes a CVE, stored in the layout as OCI artifacts whose
//! `subject` is the image manifest, so they travel with the image on push.
//! [`attach_documents`] attaches any JSON document that way; the layout's
//! list of attachments belongs to [`crate::oci::attachments`].
//! [`attest_image`] then signs SLSA provenance and each attached document as
//! in-toto attestations in cosign's `.att` manifest.

use crate::oci::media_types::*;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use sha2::{Digest as _, Sha256};

use crate::closure::Closure;
use crate::oci::attachments::ANNOTATION_SUBJECT;
use crate::oci::image::WrittenImage;
use crate::oci::layout::{Descriptor, Layout, Manifest, MAX_JSON_BLOB};
use crate::oci::tarball::Compression;
use crate::oci::{Digest, MEDIA_TYPE_MANIFEST};
use crate::plan::BuildPlan;
use crate::provenance;
use crate::sbom::{self, SbomInput};
use crate::sign::dsse::Statement;
use crate::sign::keys::SigningKey;
use crate::slsa;

/// Licenses and CPEs the package set knows, by pname (`nix/offline/metadata.json`).
#[derive(Debug, Default, Deserialize)]
pub struct PackageMetadata(BTreeMap<String, MetadataEntry>);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataEntry {
    #[serde(default)]
    licenses: Vec<String>,
    #[serde(default)]
    cpe: Option<String>,
}

impl PackageMetadata {
    pub fn load(nix_dir: &Path) -> Result<PackageMetadata> {
        let p = nix_dir.join("offline").join("metadata.json");
        if !p.exists() {
            return Ok(PackageMetadata::default());
        }
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.5 JSON.
    Cyclonedx,
    /// OpenVEX 0.2.0: the CVEs applied Debian patches fix (for `grype --vex`, `trivy --vex`).
    Openvex,
}

impl SbomFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Spdx => MEDIA_TYPE_SPDX,
            SbomFormat::Cyclonedx => MEDIA_TYPE_CYCLONEDX,
            SbomFormat::Openvex => MEDIA_TYPE_OPENVEX,
        }
    }
}

/// Makes both SBOMs (and the VEX document, when there is a fixed CVE to
/// state) for a built image and attaches them to it.
pub fn attach_sboms(
    layout: &Layout,
    img: &WrittenImage,
    plan: &BuildPlan,
    closure: &Closure,
    meta: &PackageMetadata,
    package_licenses: &[String],
) -> Result<Vec<Descriptor>> {
    let mut licenses: BTreeMap<String, Vec<String>> = meta
        .0
        .iter()
        .filter(|(_, e)| !e.licenses.is_empty())
        .map(|(k, e)| (k.clone(), e.licenses.clone()))
        .collect();
    if let Some(root) = closure.roots.first() {
        if !package_licenses.is_empty() {
            licenses.insert(root.name().to_string(), package_licenses.to_vec());
        }
    }
    let cpes: BTreeMap<String, String> = meta
        .0
        .iter()
        .filter_map(|(k, e)| e.cpe.clone().map(|c| (k.clone(), c)))
        .collect();
    let created = crate::base::time::rfc3339_utc(plan.source_date_epoch);
    let digest = img.manifest.digest.to_string();
    let provenance = provenance::read_closure(closure)
        .context("reading the Debian origin and patches the store paths record")?;
    let input = SbomInput {
        image_name: &plan.image,
        image_version: &plan.version,
        tier: plan.tier.as_str(),
        manifest_digest: &digest,
        image_reference: None,
        closure,
        licenses: &licenses,
        cpes: &cpes,
        provenance: &provenance,
        created: &created,
        tool_version: env!("CARGO_PKG_VERSION"),
    };
    let mut docs = vec![
        (
            MEDIA_TYPE_SPDX,
            crate::base::json::canonical_pretty(&sbom::spdx(&input)),
        ),
        (
            MEDIA_TYPE_CYCLONEDX,
            crate::base::json::canonical_pretty(&sbom::cyclonedx(&input)),
        ),
    ];
    if let Some(vex) = sbom::openvex(&input) {
        docs.push((
            MEDIA_TYPE_OPENVEX,
            crate::base::json::canonical_pretty(&vex),
        ));
    }
    attach_documents(layout, &img.manifest, &docs, &created)
}

/// Attaches JSON documents to `subject` (an image manifest in the layout):
/// each is an OCI artifact of its media type, in its own manifest whose
/// `subject` is the image, so it travels as a referrer on push. A document
/// of the same type already attached to that subject is replaced; the
/// layout's other attachments (signatures first of all) stay.
pub fn attach_documents(
    layout: &Layout,
    subject: &Descriptor,
    docs: &[(&str, Vec<u8>)],
    created: &str,
) -> Result<Vec<Descriptor>> {
    let empty = layout.blobs().put(b"{}")?;
    let subject = Descriptor {
        annotations: BTreeMap::new(),
        platform: None,
        ..subject.clone()
    };
    let mut added = Vec::new();
    for (media_type, bytes) in docs {
        let blob = layout.blobs().put(bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.into()),
            artifact_type: Some(media_type.to_string()),
            config: Descriptor::new(MEDIA_TYPE_EMPTY, empty.digest.clone(), empty.size),
            layers: vec![Descriptor::new(*media_type, blob.digest, blob.size)],
            subject: Some(subject.clone()),
            annotations: BTreeMap::from([(
                "org.opencontainers.image.created".to_string(),
                created.to_string(),
            )]),
        };
        let m = layout
            .blobs()
            .put(&crate::base::json::canonical(&manifest))?;
        added.push(
            Descriptor::new(MEDIA_TYPE_MANIFEST, m.digest, m.size)
                .with_artifact_type(*media_type)
                .with_annotations(BTreeMap::from([(
                    ANNOTATION_SUBJECT.to_string(),
                    subject.digest.to_string(),
                )])),
        );
    }
    layout.blobs().sync_dir()?;
    layout.put_attachments(&added)?;
    Ok(added)
}

/// The attached SBOM of the layout's image, as stored.
pub fn read_sbom(dir: &Path, reference: Option<&str>, format: SbomFormat) -> Result<Vec<u8>> {
    read_sbom_in(&Layout::open(dir)?, reference, format)
}

/// [`read_sbom`] on an open (possibly staged) layout.
pub fn read_sbom_in(
    layout: &Layout,
    reference: Option<&str>,
    format: SbomFormat,
) -> Result<Vec<u8>> {
    let dir = layout.root();
    let img = layout.load_image(reference)?;
    let digest = img.descriptor.digest.to_string();
    match attached_document(layout, &img.descriptor.digest, format.media_type())? {
        Some(bytes) => Ok(bytes),
        None if format == SbomFormat::Openvex => bail!(
            "{}: no OpenVEX document is attached to image {digest} (one is made only when an applied Debian patch fixes a CVE)",
            dir.display()
        ),
        None => bail!(
            "{}: no {} SBOM is attached to image {digest}",
            dir.display(),
            format.media_type()
        ),
    }
}

/// The document of `media_type` attached to `subject`, as stored, if any.
pub fn attached_document(
    layout: &Layout,
    subject: &Digest,
    media_type: &str,
) -> Result<Option<Vec<u8>>> {
    let attached = layout.attachments_of(subject)?;
    let Some(d) = attached
        .iter()
        .find(|d| d.artifact_type.as_deref() == Some(media_type))
    else {
        return Ok(None);
    };
    let bytes = layout.read_blob(d, MAX_JSON_BLOB)?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing SBOM manifest {}", d.digest))?;
    if m.subject.as_ref().map(|s| &s.digest) != Some(subject) {
        bail!(
            "{}: SBOM manifest {} names another subject",
            layout.root().display(),
            d.digest
        );
    }
    let layer = m
        .layers
        .first()
        .with_context(|| format!("SBOM manifest {} has no layer", d.digest))?;
    Ok(Some(layout.read_blob(layer, 256 << 20)?))
}

/// What a build's attestations are made from.
pub struct AttestInput<'a> {
    pub image: &'a WrittenImage,
    pub plan: &'a BuildPlan,
    pub closure: &'a Closure,
    /// `linux/amd64`.
    pub platform: &'a str,
    pub compression: Compression,
}

/// The in-toto predicate type of each attached document cosign knows by a
/// `--type` name: `cyclonedx`, `spdxjson`, `openvex`.
const DOCUMENT_PREDICATES: [(&str, &str); 3] = [
    (MEDIA_TYPE_CYCLONEDX, "https://cyclonedx.org/bom"),
    (MEDIA_TYPE_SPDX, "https://spdx.dev/Document"),
    (MEDIA_TYPE_OPENVEX, "https://openvex.dev/ns"),
];

/// Attests a built image with `key`: SLSA provenance, and each attached SBOM
/// and VEX document as its own statement, appended to the image's
/// `sha256-<hex>.att` manifest in the layout.
pub fn attest_image(
    layout_dir: &Path,
    input: &AttestInput<'_>,
    key: &SigningKey,
) -> Result<crate::sign::layout::AttestOutcome> {
    attest_image_in(&Layout::open(layout_dir)?, input, key)
}

/// [`attest_image`] on an open (possibly staged) layout.
pub fn attest_image_in(
    layout: &Layout,
    input: &AttestInput<'_>,
    key: &SigningKey,
) -> Result<crate::sign::layout::AttestOutcome> {
    let plan = input.plan;
    let digest = input.image.manifest.digest.to_string();
    let name = format!("{}:{}", plan.image, input.image.ref_name);
    let recipe = std::fs::read(&plan.recipe_path)
        .with_context(|| format!("reading recipe {}", plan.recipe_path.display()))?;
    let recipe_sha256 = hex::encode(Sha256::digest(&recipe));
    let provenance = provenance::read_closure(input.closure)
        .context("reading the Debian origin and patches the store paths record")?;
    let package = input.closure.roots.first();
    let drv = package
        .and_then(|p| input.closure.paths.get(p))
        .and_then(|i| i.deriver.clone());
    // The derivation may have been garbage-collected: then it is named only.
    let drv_sha256 = drv
        .as_deref()
        .and_then(|d| std::fs::read(d).ok())
        .map(|b| hex::encode(Sha256::digest(&b)));
    let commit = env!("ARMORRED_GIT_COMMIT");
    let compression = input.compression.id();
    let statement = slsa::statement(&slsa::ProvenanceInput {
        image_ref: &name,
        manifest_digest: &digest,
        recipe_name: &plan.image,
        recipe_sha256: &recipe_sha256,
        tier: plan.tier.as_str(),
        package_set: plan.package_set.as_str(),
        platform: input.platform,
        compression: &compression,
        source_date_epoch: plan.source_date_epoch,
        package_drv: drv.as_deref().map(|d| (d, drv_sha256.as_deref())),
        provenance: &provenance,
        armorred_version: env!("CARGO_PKG_VERSION"),
        armorred_commit: (commit != "unknown").then_some(commit),
    });
    let mut statements = vec![(slsa::PREDICATE_TYPE, slsa::to_bytes(&statement))];
    for (media_type, predicate_type) in DOCUMENT_PREDICATES {
        let Some(doc) = attached_document(layout, &input.image.manifest.digest, media_type)? else {
            continue;
        };
        let predicate: serde_json::Value = serde_json::from_slice(&doc)
            .with_context(|| format!("parsing the attached {media_type} document"))?;
        let s = Statement::about_image(&name, &digest, predicate_type, predicate);
        statements.push((predicate_type, crate::base::json::canonical(&s)));
    }
    crate::sign::layout::attest_digest_in(layout, &digest, &statements, key)
        .with_context(|| format!("attesting image {digest} in {}", layout.root().display()))
}

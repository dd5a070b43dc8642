//! Signing and verifying images inside an OCI layout, in cosign's formats: a
//! signature manifest named `sha256-<hex>.sig` (its `ref.name`) among the
//! image's attachments ([`crate::oci::attachments`]), so `push` carries it to
//! a registry unchanged under that tag. A new signature is appended to the
//! manifest, never replacing the earlier ones.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::keys::{SigningKey, VerifyingKey};
use super::{
    new_payload_for, parse_signature_manifest, sign_payload, signature_manifest, signature_tag,
    verify_image, SignError, SignatureLayer, VerifyError,
};
use crate::oci::layout::{Descriptor, Index, Layout, LayoutError, MAX_JSON_BLOB};
use crate::oci::{Digest, ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};

#[derive(Debug, thiserror::Error)]
pub enum LayoutSignError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("writing the signature into the layout: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Serialize)]
pub struct SignOutcome {
    pub manifest_digest: String,
    pub signature_tag: String,
    pub signature_manifest: String,
    pub signatures: usize,
    pub docker_reference: String,
    /// Every digest signed: the image, or an index and each of its children.
    pub signed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct VerifyOutcome {
    pub manifest_digest: String,
    pub docker_reference: String,
    pub tier: Option<String>,
    pub key_fingerprint: String,
}

/// The repository a layout's image will be known as, for the payload's
/// `docker-reference`: the caller's choice, else `armorred/<title>`.
pub fn default_identity(labels: &BTreeMap<String, String>) -> String {
    let title = labels
        .get("org.opencontainers.image.title")
        .map(String::as_str)
        .unwrap_or("image");
    format!("armorred/{title}")
}

fn existing_signatures(layout: &Layout, tag: &str) -> Result<Vec<SignatureLayer>, LayoutSignError> {
    let Some(desc) = layout
        .attachments()?
        .into_iter()
        .find(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(tag))
    else {
        return Ok(Vec::new());
    };
    let bytes = layout.read_blob(&desc, MAX_JSON_BLOB)?;
    let layers = parse_signature_manifest(&bytes, |digest| {
        let d = Digest::parse(digest).map_err(|e| SignError::BadManifest(e.to_string()))?;
        layout.blobs().read(&d).map_err(|e| SignError::Fetch {
            digest: digest.to_string(),
            source: Box::new(e),
        })
    })?;
    Ok(layers)
}

/// Signs the exact manifest bytes of the layout's image, appending to an
/// existing signature manifest for the same digest. For a multi-platform
/// image index, the index and every child manifest are signed, as cosign
/// does with `--recursive`, so each platform verifies on its own.
pub fn sign_layout(
    dir: &Path,
    reference: Option<&str>,
    key: &SigningKey,
    identity: Option<&str>,
    optional: BTreeMap<String, serde_json::Value>,
) -> Result<SignOutcome, LayoutSignError> {
    let layout = Layout::create(dir)?;
    let target = image_descriptor(&layout, reference)?;
    let mut digests = vec![target.digest.to_string()];
    let identity = if target.media_type == MEDIA_TYPE_INDEX {
        let bytes = layout.read_blob(&target, MAX_JSON_BLOB)?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadJson {
            path: layout.blobs().path(&target.digest),
            message: e.to_string(),
        })?;
        digests.extend(index.manifests.iter().map(|m| m.digest.to_string()));
        // The children share the image's labels; name it from this platform's.
        let labels = layout
            .load_image(Some(target.digest.as_str()))
            .map(|i| i.labels())
            .unwrap_or_default();
        identity
            .map(str::to_string)
            .unwrap_or_else(|| default_identity(&labels))
    } else {
        let img = layout.load_image(reference)?;
        identity
            .map(str::to_string)
            .unwrap_or_else(|| default_identity(&img.labels()))
    };
    let mut first = None;
    for digest in &digests {
        let signed = sign_digest(&layout, digest, &identity, key, &optional)?;
        first.get_or_insert(signed);
    }
    let (tag, m, n) = first.expect("at least the target digest");
    Ok(SignOutcome {
        manifest_digest: digests[0].clone(),
        signature_tag: tag,
        signature_manifest: m.to_string(),
        signatures: n,
        docker_reference: identity,
        signed: digests,
    })
}

/// The index entry of the image `reference` names (or the only image).
fn image_descriptor(layout: &Layout, reference: Option<&str>) -> Result<Descriptor, LayoutError> {
    let images = layout.images()?;
    let named = |d: &&Descriptor| {
        reference.is_none_or(|r| {
            d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(r)
                || d.digest.as_str() == r
        })
    };
    let matching: Vec<&Descriptor> = images.iter().filter(named).collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        // Ambiguity and absence get load_image's messages.
        _ => layout.load_image(reference).map(|i| i.descriptor),
    }
}

/// Appends a signature for `digest` under `sha256-<hex>.sig`.
fn sign_digest(
    layout: &Layout,
    digest: &str,
    identity: &str,
    key: &SigningKey,
    optional: &BTreeMap<String, serde_json::Value>,
) -> Result<(String, Digest, usize), LayoutSignError> {
    let tag = signature_tag(digest);
    let payload = new_payload_for(identity, digest, optional.clone());
    let signature_b64 = sign_payload(key, &payload);
    let mut layers = existing_signatures(layout, &tag)?;
    let new = SignatureLayer {
        payload,
        signature_b64,
        annotations: BTreeMap::new(),
    };
    if !layers.contains(&new) {
        layers.push(new);
    }
    let (manifest, config) = signature_manifest(&layers);
    for l in &layers {
        layout.blobs().put(&l.payload)?;
    }
    layout.blobs().put(&config)?;
    let m = layout.blobs().put(&manifest)?;
    layout.blobs().sync_dir()?;
    // The new manifest carries the earlier signatures: it takes the tag's place.
    layout.put_attachments(&[Descriptor {
        media_type: MEDIA_TYPE_MANIFEST.into(),
        digest: m.digest.clone(),
        size: m.size,
        artifact_type: None,
        annotations: BTreeMap::from([(ANNOTATION_REF_NAME.to_string(), tag.clone())]),
        platform: None,
    }])?;
    Ok((tag, m.digest, layers.len()))
}

/// Checks that a signature made with `key` vouches for the layout's image.
pub fn verify_layout(
    dir: &Path,
    reference: Option<&str>,
    key: &VerifyingKey,
) -> Result<VerifyOutcome, LayoutSignError> {
    let layout = Layout::open(dir)?;
    let target = image_descriptor(&layout, reference)?;
    let digest = target.digest.to_string();
    let layers = existing_signatures(&layout, &signature_tag(&digest))?;
    let v = verify_image(key, &digest, &layers)?;
    let tier = if target.media_type == MEDIA_TYPE_INDEX {
        // A multi-platform index: every child must carry its own signature.
        let bytes = layout.read_blob(&target, MAX_JSON_BLOB)?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadJson {
            path: layout.blobs().path(&target.digest),
            message: e.to_string(),
        })?;
        let mut tier = None;
        for child in &index.manifests {
            let d = child.digest.to_string();
            verify_image(key, &d, &existing_signatures(&layout, &signature_tag(&d))?)?;
            if tier.is_none() {
                tier = child_tier(&layout, child);
            }
        }
        tier
    } else {
        layout
            .load_image(reference)?
            .labels()
            .get("org.armorred.tier")
            .cloned()
    };
    Ok(VerifyOutcome {
        manifest_digest: digest,
        docker_reference: v.payload.critical.identity.docker_reference.clone(),
        tier,
        key_fingerprint: key.fingerprint(),
    })
}

/// The `org.armorred.tier` label of an index child, if it can be read.
fn child_tier(layout: &Layout, child: &Descriptor) -> Option<String> {
    let m: crate::oci::layout::Manifest =
        serde_json::from_slice(&layout.read_blob(child, MAX_JSON_BLOB).ok()?).ok()?;
    let c: serde_json::Value =
        serde_json::from_slice(&layout.read_blob(&m.config, MAX_JSON_BLOB).ok()?).ok()?;
    c.pointer("/config/Labels/org.armorred.tier")?
        .as_str()
        .map(str::to_string)
}

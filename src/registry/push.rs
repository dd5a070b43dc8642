//! Push: plan from the layout (no network), then execute against a registry.

use crate::oci::media_types::*;
use std::collections::BTreeSet;

use serde_json::Value;

use super::client::{BlobSource, Client};
use super::reference::check_tag;
use super::signatures;
use super::{ImageRef, PushProgress, PushReport, RegistryError};
use crate::oci::attachments::ANNOTATION_SUBJECT;
use crate::oci::layout::{Descriptor, Layout, LayoutError, Manifest, MAX_JSON_BLOB};
use crate::oci::{Digest, ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use crate::sign::{
    attestation_tag, parse_attestation_manifest, parse_signature_manifest, signature_tag,
    AttestationLayer, SignError, SignatureLayer,
};

/// Everything to send, read and checked from the layout up front.
#[derive(Debug)]
pub(crate) struct PushPlan {
    /// What the tag names: the image manifest, or a multi-platform index.
    pub top: Subject,
    pub tag: Option<String>,
    /// An index's children, pushed by digest before the index.
    pub children: Vec<Subject>,
}

/// A manifest (or index) to push, with what is attached to it.
#[derive(Debug)]
pub(crate) struct Subject {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// The blobs an image manifest names; `None` for an index.
    pub manifest: Option<Manifest>,
    /// Signatures from the layout's `sha256-<hex>.sig` manifest.
    pub signatures: Vec<SignatureLayer>,
    /// Attestations from the layout's `sha256-<hex>.att` manifest.
    pub attestations: Vec<AttestationLayer>,
    pub attachments: Vec<Attachment>,
}

/// A manifest attached to the image.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub manifest: Manifest,
    /// A cosign attachment tag (`sha256-<hex>.sbom`) the layout gives it.
    pub tag: Option<String>,
    /// Whether its `subject` is the image (an OCI 1.1 referrer).
    pub referrer: bool,
}

impl Attachment {
    pub fn digest(&self) -> Digest {
        Digest::of(&self.bytes)
    }

    /// Its entry in a referrers index (OCI distribution spec 1.1).
    fn referrer_descriptor(&self) -> Value {
        let artifact_type = self
            .manifest
            .artifact_type
            .clone()
            .unwrap_or_else(|| self.manifest.config.media_type.clone());
        let mut d = serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest(),
            "size": self.bytes.len(),
            "artifactType": artifact_type,
        });
        if !self.manifest.annotations.is_empty() {
            d["annotations"] =
                serde_json::to_value(&self.manifest.annotations).expect("string maps serialize");
        }
        d
    }
}

/// Reads the image and its attachments from the layout. A multi-platform
/// index brings its children, each with its own signatures and SBOMs.
pub(crate) fn plan(
    layout: &Layout,
    image_ref_name: Option<&str>,
    target: &ImageRef,
) -> Result<PushPlan, RegistryError> {
    let image = layout.load_image(image_ref_name)?;
    let digest = &image.top().digest;
    if let Some(d) = &target.digest {
        if d != digest {
            return Err(RegistryError::BadReference {
                reference: target.to_string(),
                reason: format!("the layout's image is {digest}, not {d}"),
            });
        }
    }
    let tag = target.tag.clone().or_else(|| {
        image
            .ref_name()
            .filter(|r| check_tag(r).is_ok())
            .map(str::to_string)
    });
    let (top, children) = match &image.index {
        None => (
            subject(
                layout,
                &image.descriptor,
                image.manifest_bytes.clone(),
                Some(image.manifest.clone()),
            )?,
            Vec::new(),
        ),
        Some(index) => {
            let mut children = Vec::new();
            for c in &index.index.manifests {
                let child = layout.load_image(Some(c.digest.as_str()))?;
                children.push(subject(
                    layout,
                    &child.descriptor,
                    child.manifest_bytes,
                    Some(child.manifest),
                )?);
            }
            (
                subject(layout, &index.descriptor, index.bytes.clone(), None)?,
                children,
            )
        }
    };
    Ok(PushPlan { top, tag, children })
}

/// `d` with the signatures and attachments the layout holds for it.
fn subject(
    layout: &Layout,
    d: &Descriptor,
    bytes: Vec<u8>,
    manifest: Option<Manifest>,
) -> Result<Subject, RegistryError> {
    let digest = &d.digest;
    let sig_tag = signature_tag(digest.as_str());
    let att_tag = attestation_tag(digest.as_str());
    let tag_prefix = format!("sha256-{}.", digest.hex());
    let mut signatures = Vec::new();
    let mut attestations = Vec::new();
    let mut attachments = Vec::new();
    for d in layout.attachments()? {
        let ref_name = d.annotations.get(ANNOTATION_REF_NAME).cloned();
        if d.media_type != MEDIA_TYPE_MANIFEST && d.media_type != MEDIA_TYPE_DOCKER_MANIFEST {
            if ref_name
                .as_deref()
                .is_some_and(|r| r.starts_with(&tag_prefix))
            {
                tracing::warn!(
                    "not pushing attachment {} of media type {}",
                    d.digest,
                    d.media_type
                );
            }
            continue;
        }
        if ref_name.as_deref() == Some(sig_tag.as_str()) {
            let bytes = layout.read_blob(&d, MAX_JSON_BLOB)?;
            signatures.extend(local_signatures(layout, &bytes, |m, f| {
                parse_signature_manifest(m, f)
            })?);
            continue;
        }
        if ref_name.as_deref() == Some(att_tag.as_str()) {
            let bytes = layout.read_blob(&d, MAX_JSON_BLOB)?;
            attestations.extend(local_signatures(layout, &bytes, |m, f| {
                parse_attestation_manifest(m, f)
            })?);
            continue;
        }
        let bytes = layout.read_blob(&d, MAX_JSON_BLOB)?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadJson {
                path: layout.blobs().path(&d.digest),
                message: e.to_string(),
            })?;
        let referrer = manifest
            .subject
            .as_ref()
            .is_some_and(|s| &s.digest == digest);
        let tag = ref_name.filter(|r| r.starts_with(&tag_prefix) && check_tag(r).is_ok());
        let annotated =
            d.annotations.get(ANNOTATION_SUBJECT).map(String::as_str) == Some(digest.as_str());
        if referrer || tag.is_some() || annotated {
            attachments.push(Attachment {
                bytes,
                media_type: d.media_type.clone(),
                manifest,
                tag,
                referrer,
            });
        }
    }
    Ok(Subject {
        digest: digest.clone(),
        media_type: d.media_type.clone(),
        bytes,
        manifest,
        signatures,
        attestations,
        attachments,
    })
}

/// The layers of a cosign signature or attestation manifest in the layout,
/// read by `parse`.
fn local_signatures<L>(
    layout: &Layout,
    manifest: &[u8],
    parse: impl Fn(&[u8], &dyn Fn(&str) -> Result<Vec<u8>, SignError>) -> Result<Vec<L>, SignError>,
) -> Result<Vec<L>, RegistryError> {
    parse(manifest, &|d: &str| {
        let digest = Digest::parse(d).map_err(|e| SignError::BadManifest(e.to_string()))?;
        let path = layout.blobs().path(&digest);
        let too_big = std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_JSON_BLOB);
        if too_big {
            return Err(SignError::BadManifest(format!(
                "payload {d} is larger than {MAX_JSON_BLOB} bytes"
            )));
        }
        std::fs::read(&path).map_err(|source| SignError::Io {
            action: "reading signature payload",
            path,
            source,
        })
    })
    .map_err(|source| RegistryError::Signature {
        registry: layout.root().display().to_string(),
        source,
    })
}

/// Blob counters, and the blobs this push has already handled.
#[derive(Default)]
pub(crate) struct Counts<'p> {
    pub uploaded: usize,
    pub skipped: usize,
    pub bytes: u64,
    seen: BTreeSet<Digest>,
    /// Told about each blob handled.
    progress: Option<&'p dyn PushProgress>,
}

impl Counts<'_> {
    /// Sends an in-memory blob unless the registry has it.
    pub fn push_bytes(&mut self, client: &Client, bytes: &[u8]) -> Result<(), RegistryError> {
        let digest = Digest::of(bytes);
        self.push(
            client,
            &BlobSource::Bytes(bytes),
            &digest,
            bytes.len() as u64,
        )
    }

    /// Sends a blob unless the registry has it (or this push sent it).
    fn push(
        &mut self,
        client: &Client,
        source: &BlobSource<'_>,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        if !self.seen.insert(digest.clone()) {
            return Ok(());
        }
        if client.blob_exists(digest)? {
            self.skipped += 1;
            tracing::debug!("{digest}: already in the registry");
            if let Some(p) = self.progress {
                p.blob(size, false);
            }
            return Ok(());
        }
        self.bytes += client.upload_blob(source, digest, size)?;
        self.uploaded += 1;
        tracing::info!("{digest}: uploaded ({size} bytes)");
        if let Some(p) = self.progress {
            p.blob(size, true);
        }
        Ok(())
    }

    /// Sends a layout blob; the upload checks it against the descriptor.
    fn push_layout_blob(
        &mut self,
        client: &Client,
        layout: &Layout,
        d: &Descriptor,
    ) -> Result<(), RegistryError> {
        let path = layout.blobs().path(&d.digest);
        if !path.is_file() {
            return Err(LayoutError::MissingBlob { path }.into());
        }
        self.push(client, &BlobSource::File(path), &d.digest, d.size)
    }

    fn push_manifest_blobs(
        &mut self,
        client: &Client,
        layout: &Layout,
        m: &Manifest,
    ) -> Result<(), RegistryError> {
        self.push_layout_blob(client, layout, &m.config)?;
        for l in &m.layers {
            self.push_layout_blob(client, layout, l)?;
        }
        Ok(())
    }
}

pub(crate) fn execute(
    client: &Client,
    layout: &Layout,
    plan: &PushPlan,
    target: &ImageRef,
    progress: &dyn PushProgress,
) -> Result<PushReport, RegistryError> {
    let repo = format!("{}/{}", target.registry, target.repository);
    let mut counts = Counts {
        progress: Some(progress),
        ..Counts::default()
    };
    let mut notes = Vec::new();
    // Children first: a registry accepts an index only once it has them.
    for child in &plan.children {
        push_subject(client, layout, child, None, &repo, &mut counts, &mut notes)?;
    }
    push_subject(
        client,
        layout,
        &plan.top,
        plan.tag.as_deref(),
        &repo,
        &mut counts,
        &mut notes,
    )?;
    let digest = plan.top.digest.clone();
    let reference = match &plan.tag {
        Some(t) => format!("{repo}:{t}@{digest}"),
        None => format!("{repo}@{digest}"),
    };
    Ok(PushReport {
        reference,
        manifest_digest: digest,
        blobs_uploaded: counts.uploaded,
        blobs_skipped: counts.skipped,
        bytes_uploaded: counts.bytes,
        attachments: notes,
    })
}

/// Sends one manifest (its blobs first) under its digest and `tag`, then
/// its signatures and attachments.
fn push_subject(
    client: &Client,
    layout: &Layout,
    s: &Subject,
    tag: Option<&str>,
    repo: &str,
    counts: &mut Counts,
    notes: &mut Vec<String>,
) -> Result<(), RegistryError> {
    let digest = &s.digest;
    if let Some(m) = &s.manifest {
        counts.push_manifest_blobs(client, layout, m)?;
    }
    if let Some(tag) = tag {
        client.put_manifest(tag, &s.media_type, &s.bytes)?;
    }
    client.put_manifest(digest.as_str(), &s.media_type, &s.bytes)?;

    if !s.signatures.is_empty() {
        let a = signatures::append(client, digest, s.signatures.clone(), counts)?;
        notes.push(format!(
            "{repo}:{} (cosign signatures: {} added, {} in total)",
            a.tag, a.added, a.total
        ));
    }
    if !s.attestations.is_empty() {
        let a = signatures::append_attestations(client, digest, s.attestations.clone(), counts)?;
        notes.push(format!(
            "{repo}:{} (cosign attestations: {} added, {} in total)",
            a.tag, a.added, a.total
        ));
    }

    let mut referrers_via_api = false;
    let mut fallback = Vec::new();
    for a in &s.attachments {
        counts.push_manifest_blobs(client, layout, &a.manifest)?;
        let a_digest = a.digest();
        let kind = a
            .manifest
            .artifact_type
            .as_deref()
            .unwrap_or(&a.manifest.config.media_type);
        let subject_header = client.put_manifest(a_digest.as_str(), &a.media_type, &a.bytes)?;
        notes.push(format!("{repo}@{a_digest} ({kind})"));
        if a.referrer {
            referrers_via_api |= subject_header.as_deref() == Some(digest.as_str());
            fallback.push(a.referrer_descriptor());
        }
        if let Some(tag) = &a.tag {
            match client.get_manifest(tag)? {
                Some((remote, _)) if remote != a.bytes => {
                    tracing::warn!("{repo}:{tag} holds another manifest; not replacing it");
                    notes.push(format!(
                        "{repo}:{tag} (kept: the registry holds a different manifest there)"
                    ));
                }
                Some(_) => notes.push(format!("{repo}:{tag} ({kind}, already there)")),
                None => {
                    client.put_manifest(tag, &a.media_type, &a.bytes)?;
                    notes.push(format!("{repo}:{tag} ({kind})"));
                }
            }
        }
    }
    if !fallback.is_empty() && !referrers_via_api && !client.referrers_supported(digest)? {
        let tag = format!("sha256-{}", digest.hex());
        let existing = client.get_manifest(&tag)?;
        match merge_referrers_index(existing.as_ref().map(|(b, _)| b.as_slice()), &fallback) {
            Ok(Some(index)) => {
                client.put_manifest(&tag, MEDIA_TYPE_INDEX, &index)?;
                notes.push(format!("{repo}:{tag} (referrers tag schema index)"));
            }
            Ok(None) => notes.push(format!(
                "{repo}:{tag} (referrers tag schema index, up to date)"
            )),
            Err(message) => {
                return Err(RegistryError::Protocol {
                    registry: client.registry().to_string(),
                    message: format!("the referrers fallback tag `{tag}`: {message}"),
                })
            }
        }
    }
    Ok(())
}

/// The referrers index with `add` appended to `existing` (an image index at
/// the fallback tag). Existing entries, and any fields we do not know, are
/// kept. `Ok(None)` when every descriptor is already listed.
pub(crate) fn merge_referrers_index(
    existing: Option<&[u8]>,
    add: &[Value],
) -> Result<Option<Vec<u8>>, String> {
    let mut index = match existing {
        Some(bytes) => {
            let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
            if v.get("mediaType").and_then(Value::as_str) != Some(MEDIA_TYPE_INDEX) {
                return Err(
                    "it holds something other than an OCI image index; not replacing it".into(),
                );
            }
            v
        }
        None => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [],
        }),
    };
    let manifests = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or("the index has no `manifests` array")?;
    let mut changed = false;
    for d in add {
        if !manifests.iter().any(|m| m.get("digest") == d.get("digest")) {
            manifests.push(d.clone());
            changed = true;
        }
    }
    Ok(changed.then(|| crate::base::json::canonical(&index)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(d: &str) -> Value {
        serde_json::json!({"mediaType": MEDIA_TYPE_MANIFEST, "digest": d, "size": 1, "artifactType": "application/spdx+json"})
    }

    #[test]
    fn referrers_index_is_appended_to() {
        let a = Digest::of(b"a").to_string();
        let b = Digest::of(b"b").to_string();
        let first = merge_referrers_index(None, &[desc(&a)]).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(v["mediaType"], MEDIA_TYPE_INDEX);
        assert_eq!(
            merge_referrers_index(Some(&first), &[desc(&a)]).unwrap(),
            None
        );
        let mut with_extra: Value = v.clone();
        with_extra["manifests"][0]["x-unknown"] = Value::from(1);
        let second =
            merge_referrers_index(Some(&serde_json::to_vec(&with_extra).unwrap()), &[desc(&b)])
                .unwrap()
                .unwrap();
        let v: Value = serde_json::from_slice(&second).unwrap();
        let m = v["manifests"].as_array().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0]["x-unknown"], 1);
        assert_eq!(m[1]["digest"], b);
        let not_index =
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        assert!(merge_referrers_index(Some(not_index), &[desc(&b)]).is_err());
    }
}

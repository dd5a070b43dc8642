//! Signing and verifying images inside an OCI layout, in cosign's formats: a
//! signature manifest named `sha256-<hex>.sig` (its `ref.name`) among the
//! image's attachments ([`crate::oci::attachments`]), so `push` carries it to
//! a registry unchanged under that tag. A new signature is appended to the
//! manifest, never replacing the earlier ones. Attestations (DSSE envelopes
//! of in-toto Statements) go the same way under `sha256-<hex>.att`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::dsse::{self, Statement};
use super::keys::{SigningKey, VerifyingKey};
use super::{
    attestation_manifest, attestation_tag, new_payload_for, parse_attestation_manifest,
    parse_signature_manifest, sign_payload, signature_manifest, signature_tag, verify_image,
    AttestationLayer, SignError, SignatureLayer, VerifyError,
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
    #[error(transparent)]
    Attestation(#[from] AttestationError),
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
    tagged_layers(layout, tag, |m, f| parse_signature_manifest(m, f))
}

fn existing_attestations(
    layout: &Layout,
    tag: &str,
) -> Result<Vec<AttestationLayer>, LayoutSignError> {
    tagged_layers(layout, tag, |m, f| parse_attestation_manifest(m, f))
}

/// The layers of the attachment at cosign tag `tag`, read by `parse` with
/// blobs from the layout; none when there is no such attachment.
fn tagged_layers<L>(
    layout: &Layout,
    tag: &str,
    parse: impl Fn(&[u8], &dyn Fn(&str) -> Result<Vec<u8>, SignError>) -> Result<Vec<L>, SignError>,
) -> Result<Vec<L>, LayoutSignError> {
    let Some(desc) = layout
        .attachments()?
        .into_iter()
        .find(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(tag))
    else {
        return Ok(Vec::new());
    };
    let bytes = layout.read_blob(&desc, MAX_JSON_BLOB)?;
    let fetch = |digest: &str| {
        let d = Digest::parse(digest).map_err(|e| SignError::BadManifest(e.to_string()))?;
        layout.blobs().read(&d).map_err(|e| SignError::Fetch {
            digest: digest.to_string(),
            source: Box::new(e),
        })
    };
    Ok(parse(&bytes, &fetch)?)
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
    sign_in(&Layout::create(dir)?, reference, key, identity, optional)
}

/// [`sign_layout`] on an open layout, which a build signs while its image is
/// still staged (see [`Layout::stage`]).
pub fn sign_in(
    layout: &Layout,
    reference: Option<&str>,
    key: &SigningKey,
    identity: Option<&str>,
    optional: BTreeMap<String, serde_json::Value>,
) -> Result<SignOutcome, LayoutSignError> {
    let target = image_descriptor(layout, reference)?;
    let mut digests = vec![target.digest.to_string()];
    let identity = if target.media_type == MEDIA_TYPE_INDEX {
        let index = read_index(layout, &target)?;
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
        let signed = sign_digest(layout, digest, &identity, key, &optional)?;
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
    let blobs: Vec<&[u8]> = layers.iter().map(|l| l.payload.as_slice()).collect();
    let m = put_tagged(layout, &tag, &blobs, &config, &manifest)?;
    Ok((tag, m, layers.len()))
}

/// Writes a cosign image (its layer blobs, config and manifest) and makes it
/// the attachment at `tag`. The new manifest carries the earlier layers, so it
/// takes the tag's place.
fn put_tagged(
    layout: &Layout,
    tag: &str,
    blobs: &[&[u8]],
    config: &[u8],
    manifest: &[u8],
) -> Result<Digest, LayoutSignError> {
    for b in blobs {
        layout.blobs().put(b)?;
    }
    layout.blobs().put(config)?;
    let m = layout.blobs().put(manifest)?;
    layout.blobs().sync_dir()?;
    layout.put_attachments(&[
        Descriptor::new(MEDIA_TYPE_MANIFEST, m.digest.clone(), m.size).with_annotations(
            BTreeMap::from([(ANNOTATION_REF_NAME.to_string(), tag.to_string())]),
        ),
    ])?;
    Ok(m.digest)
}

/// What attesting did.
#[derive(Debug, Serialize)]
pub struct AttestOutcome {
    pub attestation_tag: String,
    pub attestation_manifest: String,
    pub added: usize,
    pub attestations: usize,
}

/// Signs each in-toto statement (bytes, with its predicate type) into a DSSE
/// envelope and appends it to the `sha256-<hex>.att` manifest of `digest`,
/// which must be an image (or a platform's manifest) in the layout. An
/// envelope already there is not added twice, and earlier ones stay.
pub fn attest_digest(
    dir: &Path,
    digest: &str,
    statements: &[(&str, Vec<u8>)],
    key: &SigningKey,
) -> Result<AttestOutcome, LayoutSignError> {
    attest_digest_in(&Layout::open(dir)?, digest, statements, key)
}

/// [`attest_digest`] on an open (possibly staged) layout.
pub fn attest_digest_in(
    layout: &Layout,
    digest: &str,
    statements: &[(&str, Vec<u8>)],
    key: &SigningKey,
) -> Result<AttestOutcome, LayoutSignError> {
    let tag = attestation_tag(digest);
    let mut layers = existing_attestations(layout, &tag)?;
    let before = layers.len();
    for (predicate_type, statement) in statements {
        // ECDSA signatures are randomized: an identical statement already
        // signed by this key is not signed again.
        let key_v = key.verifying_key();
        let signed_already = layers
            .iter()
            .any(|l| dsse::verify_envelope(&key_v, &l.envelope).is_ok_and(|s| &s == statement));
        if !signed_already {
            layers.push(AttestationLayer {
                envelope: dsse::sign_statement(key, statement),
                predicate_type: predicate_type.to_string(),
            });
        }
    }
    let added = layers.len() - before;
    let (manifest, config) = attestation_manifest(&layers);
    let blobs: Vec<&[u8]> = layers.iter().map(|l| l.envelope.as_slice()).collect();
    let m = put_tagged(layout, &tag, &blobs, &config, &manifest)?;
    Ok(AttestOutcome {
        attestation_tag: tag,
        attestation_manifest: m.to_string(),
        added,
        attestations: layers.len(),
    })
}

/// A verified attestation: its predicate type and statement.
#[derive(Debug, Serialize)]
pub struct VerifiedAttestation {
    pub predicate_type: String,
    #[serde(skip)]
    pub statement: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct AttestationsOutcome {
    pub manifest_digest: String,
    pub attestation_tag: String,
    pub key_fingerprint: String,
    /// Every predicate type found, in the manifest's order, repeats kept.
    pub predicate_types: Vec<String>,
    /// The verified statements, in the same order.
    #[serde(skip)]
    pub statements: Vec<serde_json::Value>,
}

/// Why attestations do not vouch for an image. Each case fails closed.
#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("no attestations for image {digest} (expected the `{tag}` manifest)")]
    Missing { digest: String, tag: String },
    #[error("attestation {index} ({predicate_type}) of image {digest}: {source}")]
    Invalid {
        digest: String,
        index: usize,
        predicate_type: String,
        #[source]
        source: SignError,
    },
    #[error("attestation {index} ({predicate_type}) is about {subjects}, not image {digest}")]
    SubjectMismatch {
        digest: String,
        index: usize,
        predicate_type: String,
        subjects: String,
    },
    #[error("no {predicate_type} attestation for image {digest}")]
    PredicateMissing {
        digest: String,
        predicate_type: String,
    },
}

/// Checks every attestation of `digest` (all must verify with `key` and name
/// the image as a subject), and returns their statements. Statements are
/// read from the signed payload, never from the layer annotation.
pub fn verify_attestation_layers(
    key: &VerifyingKey,
    digest: &str,
    layers: &[AttestationLayer],
) -> Result<Vec<VerifiedAttestation>, AttestationError> {
    if layers.is_empty() {
        return Err(AttestationError::Missing {
            digest: digest.to_string(),
            tag: attestation_tag(digest),
        });
    }
    let mut out = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let invalid = |source| AttestationError::Invalid {
            digest: digest.to_string(),
            index,
            predicate_type: layer.predicate_type.clone(),
            source,
        };
        let bytes = dsse::verify_envelope(key, &layer.envelope).map_err(invalid)?;
        let statement: Statement<serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|e| {
                invalid(SignError::BadPayload(format!(
                    "not an in-toto Statement: {e}"
                )))
            })?;
        if statement.kind != dsse::STATEMENT_TYPE_V1 {
            return Err(invalid(SignError::BadPayload(format!(
                "_type is {:?}, expected {:?}",
                statement.kind,
                dsse::STATEMENT_TYPE_V1
            ))));
        }
        if !statement.names_digest(digest) {
            return Err(AttestationError::SubjectMismatch {
                digest: digest.to_string(),
                index,
                predicate_type: statement.predicate_type,
                subjects: statement
                    .subject
                    .iter()
                    .map(|s| format!("{:?}", s.digest))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        out.push(VerifiedAttestation {
            predicate_type: statement.predicate_type.clone(),
            statement: serde_json::to_value(&statement).expect("JSON values serialize"),
        });
    }
    Ok(out)
}

/// What `verify --attestations` vouched for: an image, or a multi-platform
/// index through every one of its children (the index itself is signed, not
/// attested: its children are what run, and each has its own provenance).
#[derive(Debug)]
pub enum AttestedTarget {
    Image(AttestationsOutcome),
    Index {
        manifest_digest: String,
        children: Vec<AttestationsOutcome>,
    },
}

/// `verify --attestations` on a layout: every attestation of the image
/// verifies with `key` and names it, and one of predicate type `required`
/// is among them; for an index, that holds for each child.
pub fn verify_layout_attestations(
    dir: &Path,
    reference: Option<&str>,
    key: &VerifyingKey,
    required: &str,
) -> Result<AttestedTarget, LayoutSignError> {
    let layout = Layout::open(dir)?;
    let target = image_descriptor(&layout, reference)?;
    let attested = |digest: &str| existing_attestations(&layout, &attestation_tag(digest));
    let digest = target.digest.to_string();
    if target.media_type != MEDIA_TYPE_INDEX {
        let layers = attested(&digest)?;
        return Ok(AttestedTarget::Image(attestations_outcome(
            key, &digest, &layers, required,
        )?));
    }
    let children = read_index(&layout, &target)?
        .manifests
        .iter()
        .map(|child| {
            let d = child.digest.to_string();
            let layers = attested(&d)?;
            Ok((d, layers))
        })
        .collect::<Result<Vec<_>, LayoutSignError>>()?;
    Ok(index_attestations(key, &digest, &children, required)?)
}

/// [`attestations_outcome`] for each child (its digest and attestation
/// layers) of the index `digest`: every child must pass. An index without
/// children vouches for nothing, so it fails as unattested.
pub fn index_attestations(
    key: &VerifyingKey,
    digest: &str,
    children: &[(String, Vec<AttestationLayer>)],
    required: &str,
) -> Result<AttestedTarget, AttestationError> {
    if children.is_empty() {
        return Err(AttestationError::Missing {
            digest: digest.to_string(),
            tag: attestation_tag(digest),
        });
    }
    let children = children
        .iter()
        .map(|(d, layers)| attestations_outcome(key, d, layers, required))
        .collect::<Result<_, _>>()?;
    Ok(AttestedTarget::Index {
        manifest_digest: digest.to_string(),
        children,
    })
}

/// The outcome for `layers` of `digest`: all verify, and one has predicate
/// type `required`.
pub fn attestations_outcome(
    key: &VerifyingKey,
    digest: &str,
    layers: &[AttestationLayer],
    required: &str,
) -> Result<AttestationsOutcome, AttestationError> {
    let verified = verify_attestation_layers(key, digest, layers)?;
    if !verified.iter().any(|v| v.predicate_type == required) {
        return Err(AttestationError::PredicateMissing {
            digest: digest.to_string(),
            predicate_type: required.into(),
        });
    }
    let (predicate_types, statements) = verified
        .into_iter()
        .map(|v| (v.predicate_type, v.statement))
        .unzip();
    Ok(AttestationsOutcome {
        manifest_digest: digest.to_string(),
        attestation_tag: attestation_tag(digest),
        key_fingerprint: key.fingerprint(),
        predicate_types,
        statements,
    })
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
        let index = read_index(&layout, &target)?;
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

/// The image index `target` names in the layout.
fn read_index(layout: &Layout, target: &Descriptor) -> Result<Index, LayoutError> {
    let bytes = layout.read_blob(target, MAX_JSON_BLOB)?;
    serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadJson {
        path: layout.blobs().path(&target.digest),
        message: e.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys;

    const DIGEST: &str = "sha256:4c1c50d0ffc614f90b93b07d778028dc765548e823f676fb027f61d281ac380d";
    const OTHER: &str = "sha256:97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36";
    const PROVENANCE: &str = "https://slsa.dev/provenance/v1";

    fn attestation(key: &SigningKey, digest: &str, predicate_type: &str) -> AttestationLayer {
        let s = Statement::about_image("hello:1.0", digest, predicate_type, serde_json::json!({}));
        AttestationLayer {
            envelope: dsse::sign_statement(key, &serde_json::to_vec(&s).unwrap()),
            predicate_type: predicate_type.into(),
        }
    }

    #[test]
    fn an_index_needs_every_childs_attestations() {
        let key = keys::generate();
        let v = key.verifying_key();
        const INDEX: &str =
            "sha256:1c1c50d0ffc614f90b93b07d778028dc765548e823f676fb027f61d281ac380d";
        let both = [
            (
                DIGEST.to_string(),
                vec![attestation(&key, DIGEST, PROVENANCE)],
            ),
            (
                OTHER.to_string(),
                vec![attestation(&key, OTHER, PROVENANCE)],
            ),
        ];
        match index_attestations(&v, INDEX, &both, PROVENANCE).unwrap() {
            AttestedTarget::Index {
                manifest_digest,
                children,
            } => {
                assert_eq!(manifest_digest, INDEX);
                let digests: Vec<&str> = children
                    .iter()
                    .map(|c| c.manifest_digest.as_str())
                    .collect();
                assert_eq!(digests, [DIGEST, OTHER]);
            }
            other => panic!("{other:?}"),
        }
        // One child without its `.att`: the index fails, naming that child.
        let mut one_missing = both.clone();
        one_missing[1].1.clear();
        let err = index_attestations(&v, INDEX, &one_missing, PROVENANCE).unwrap_err();
        assert!(
            matches!(&err, AttestationError::Missing { digest, .. } if digest == OTHER),
            "{err}"
        );
        // A child attested about its sibling does not count for itself.
        let mut swapped = both.clone();
        swapped[1].1 = vec![attestation(&key, DIGEST, PROVENANCE)];
        let err = index_attestations(&v, INDEX, &swapped, PROVENANCE).unwrap_err();
        assert!(
            matches!(&err, AttestationError::SubjectMismatch { digest, .. } if digest == OTHER),
            "{err}"
        );
        // No children vouch for nothing.
        let err = index_attestations(&v, INDEX, &[], PROVENANCE).unwrap_err();
        assert!(
            matches!(&err, AttestationError::Missing { digest, .. } if digest == INDEX),
            "{err}"
        );
    }

    #[test]
    fn every_attestation_must_verify_and_name_the_image() {
        let key = keys::generate();
        let v = key.verifying_key();
        let good = vec![
            attestation(&key, DIGEST, PROVENANCE),
            attestation(&key, DIGEST, "https://cyclonedx.org/bom"),
        ];
        let o = attestations_outcome(&v, DIGEST, &good, PROVENANCE).unwrap();
        assert_eq!(o.predicate_types, [PROVENANCE, "https://cyclonedx.org/bom"]);
        assert_eq!(o.attestation_tag, attestation_tag(DIGEST));

        let err = attestations_outcome(&v, DIGEST, &[], PROVENANCE).unwrap_err();
        assert!(matches!(err, AttestationError::Missing { .. }), "{err}");

        let mut foreign = good.clone();
        foreign.push(attestation(
            &keys::generate(),
            DIGEST,
            "https://spdx.dev/Document",
        ));
        let err = attestations_outcome(&v, DIGEST, &foreign, PROVENANCE).unwrap_err();
        assert!(
            matches!(
                &err,
                AttestationError::Invalid {
                    index: 2,
                    source: SignError::SignatureMismatch,
                    ..
                }
            ),
            "{err}"
        );

        let mut elsewhere = good.clone();
        elsewhere.push(attestation(&key, OTHER, "https://spdx.dev/Document"));
        let err = attestations_outcome(&v, DIGEST, &elsewhere, PROVENANCE).unwrap_err();
        assert!(
            matches!(err, AttestationError::SubjectMismatch { index: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(DIGEST), "{err}");

        let err = attestations_outcome(&v, DIGEST, &good[1..], PROVENANCE).unwrap_err();
        assert!(
            matches!(err, AttestationError::PredicateMissing { .. }),
            "{err}"
        );
    }

    #[test]
    fn the_annotation_does_not_decide_the_predicate_type() {
        let key = keys::generate();
        let mut layer = attestation(&key, DIGEST, "https://cyclonedx.org/bom");
        layer.predicate_type = PROVENANCE.into();
        let err =
            attestations_outcome(&key.verifying_key(), DIGEST, &[layer], PROVENANCE).unwrap_err();
        assert!(
            matches!(err, AttestationError::PredicateMissing { .. }),
            "{err}"
        );
    }
}

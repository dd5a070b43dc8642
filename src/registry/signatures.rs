//! cosign signatures in a registry: the `sha256-<hex>.sig` manifest, read,
//! appended to (never replaced), and signed in place.

use crate::oci::media_types::*;
use std::collections::BTreeMap;

use super::client::Client;
use super::push::Counts;
use super::{ImageRef, RegistryError};
use crate::oci::layout::MAX_JSON_BLOB;
use crate::oci::Digest;
use crate::sign::keys::SigningKey;
use crate::sign::{
    attestation_manifest, attestation_tag, parse_attestation_manifest, parse_signature_manifest,
    payload, sign_payload, signature_manifest, signature_tag, AttestationLayer, SignError,
    SignatureLayer,
};

/// What appending did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Appended {
    pub tag: String,
    pub added: usize,
    pub total: usize,
}

pub(crate) fn fetch_manifest(
    client: &Client,
    target: &ImageRef,
) -> Result<(Vec<u8>, String, Digest), RegistryError> {
    let reference = target
        .manifest_reference()
        .ok_or_else(|| RegistryError::BadReference {
            reference: target.to_string(),
            reason: "it names neither a tag nor a digest".into(),
        })?;
    let (bytes, media_type) =
        client
            .get_manifest(&reference)?
            .ok_or_else(|| RegistryError::NotFound {
                registry: target.registry.clone(),
                reference: target.to_string(),
            })?;
    let digest = Digest::of(&bytes);
    if let Some(expected) = &target.digest {
        if *expected != digest {
            return Err(RegistryError::DigestMismatch {
                registry: target.registry.clone(),
                what: format!("the manifest of {target}"),
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    Ok((bytes, media_type, digest))
}

pub(crate) fn sign(
    client: &Client,
    target: &ImageRef,
    key: &SigningKey,
    optional: &BTreeMap<String, serde_json::Value>,
) -> Result<Digest, RegistryError> {
    let (_, _, digest) = fetch_manifest(client, target)?;
    let payload =
        payload::new_payload(&target.repository_name(), digest.as_str(), optional.clone());
    let layer = SignatureLayer {
        signature_b64: sign_payload(key, &payload),
        payload,
        annotations: BTreeMap::new(),
    };
    let mut counts = Counts::default();
    let appended = append(client, &digest, vec![layer], &mut counts)?;
    tracing::info!(
        "{}: {} signature(s) added, {} in total",
        appended.tag,
        appended.added,
        appended.total
    );
    Ok(digest)
}

pub(crate) fn read(
    client: &Client,
    target: &ImageRef,
) -> Result<(Digest, Vec<SignatureLayer>), RegistryError> {
    let (_, _, digest) = fetch_manifest(client, target)?;
    let layers = match client.get_manifest(&signature_tag(digest.as_str()))? {
        None => Vec::new(),
        Some((bytes, _)) => parse_remote(client, &bytes)?,
    };
    Ok((digest, layers))
}

pub(crate) fn read_attestations(
    client: &Client,
    target: &ImageRef,
) -> Result<(Digest, Vec<AttestationLayer>), RegistryError> {
    let (_, _, digest) = fetch_manifest(client, target)?;
    let layers = match client.get_manifest(&attestation_tag(digest.as_str()))? {
        None => Vec::new(),
        Some((bytes, _)) => parse_attestation_manifest(&bytes, |d| fetch_checked(client, d))
            .map_err(|source| RegistryError::Signature {
                registry: client.registry().to_string(),
                source,
            })?,
    };
    Ok((digest, layers))
}

/// The signatures in a remote `.sig` manifest, payloads fetched and checked.
fn parse_remote(client: &Client, manifest: &[u8]) -> Result<Vec<SignatureLayer>, RegistryError> {
    parse_signature_manifest(manifest, |d| fetch_checked(client, d)).map_err(|source| {
        RegistryError::Signature {
            registry: client.registry().to_string(),
            source,
        }
    })
}

/// A blob by digest (validated first), for the manifest parsers.
fn fetch_checked(client: &Client, d: &str) -> Result<Vec<u8>, SignError> {
    let digest = Digest::parse(d).map_err(|e| SignError::BadManifest(e.to_string()))?;
    client
        .get_blob(&digest, MAX_JSON_BLOB)
        .map_err(|e| SignError::Fetch {
            digest: d.to_string(),
            source: Box::new(e),
        })
}

/// Appends `new` to the `.sig` manifest of `image`: remote signatures stay,
/// in order, and ours that are not there yet follow. Nothing is written when
/// all of ours are already there.
pub(crate) fn append(
    client: &Client,
    image: &Digest,
    new: Vec<SignatureLayer>,
    counts: &mut Counts,
) -> Result<Appended, RegistryError> {
    append_layers(client, image, new, counts)
}

/// Appends `new` to the `.att` manifest of `image` as [`append`] does to the
/// `.sig` manifest: remote attestations stay, in order, ours follow.
pub(crate) fn append_attestations(
    client: &Client,
    image: &Digest,
    new: Vec<AttestationLayer>,
    counts: &mut Counts,
) -> Result<Appended, RegistryError> {
    append_layers(client, image, new, counts)
}

/// A kind of layer of a cosign image, as appending needs it.
trait CosignLayer: Clone + PartialEq + Sized {
    /// The manifest and what its layers are, for the refusal to drop others.
    const MANIFEST: &'static str;
    const WHAT: &'static str;
    fn tag(image: &Digest) -> String;
    fn parse(client: &Client, manifest: &[u8]) -> Result<Vec<Self>, RegistryError>;
    fn manifest(layers: &[Self]) -> (Vec<u8>, Vec<u8>);
    fn blob(&self) -> &[u8];
}

impl CosignLayer for SignatureLayer {
    const MANIFEST: &'static str = "signature";
    const WHAT: &'static str = "cosign simple-signing signatures";
    fn tag(image: &Digest) -> String {
        signature_tag(image.as_str())
    }
    fn parse(client: &Client, manifest: &[u8]) -> Result<Vec<Self>, RegistryError> {
        parse_remote(client, manifest)
    }
    fn manifest(layers: &[Self]) -> (Vec<u8>, Vec<u8>) {
        signature_manifest(layers)
    }
    fn blob(&self) -> &[u8] {
        &self.payload
    }
}

impl CosignLayer for AttestationLayer {
    const MANIFEST: &'static str = "attestation";
    const WHAT: &'static str = "DSSE envelopes";
    fn tag(image: &Digest) -> String {
        attestation_tag(image.as_str())
    }
    fn parse(client: &Client, manifest: &[u8]) -> Result<Vec<Self>, RegistryError> {
        parse_attestation_manifest(manifest, |d| fetch_checked(client, d)).map_err(|source| {
            RegistryError::Signature {
                registry: client.registry().to_string(),
                source,
            }
        })
    }
    fn manifest(layers: &[Self]) -> (Vec<u8>, Vec<u8>) {
        attestation_manifest(layers)
    }
    fn blob(&self) -> &[u8] {
        &self.envelope
    }
}

fn append_layers<L: CosignLayer>(
    client: &Client,
    image: &Digest,
    new: Vec<L>,
    counts: &mut Counts,
) -> Result<Appended, RegistryError> {
    let tag = L::tag(image);
    let existing = match client.get_manifest(&tag)? {
        None => Vec::new(),
        Some((bytes, _)) => {
            let layers = L::parse(client, &bytes)?;
            // The parsers skip layers they do not understand; rewriting the
            // manifest would drop them, so refuse.
            let raw = raw_layer_count(&bytes);
            if raw != layers.len() {
                return Err(RegistryError::Protocol {
                    registry: client.registry().to_string(),
                    message: format!(
                        "the {} manifest at `{tag}` has {} layer(s) that are not {}; not \
                         rewriting it, which would drop them",
                        L::MANIFEST,
                        raw - layers.len(),
                        L::WHAT
                    ),
                });
            }
            layers
        }
    };
    let merged = merge(&existing, new);
    let added = merged.len() - existing.len();
    if added > 0 {
        let (manifest, config) = L::manifest(&merged);
        for layer in &merged[existing.len()..] {
            counts.push_bytes(client, layer.blob())?;
        }
        counts.push_bytes(client, &config)?;
        client.put_manifest(&tag, MEDIA_TYPE_MANIFEST, &manifest)?;
    }
    Ok(Appended {
        tag,
        added,
        total: merged.len(),
    })
}

/// `existing`, then each of `new` not already among them.
pub(crate) fn merge<L: Clone + PartialEq>(existing: &[L], new: Vec<L>) -> Vec<L> {
    let mut out = existing.to_vec();
    for layer in new {
        if !out.contains(&layer) {
            out.push(layer);
        }
    }
    out
}

fn raw_layer_count(manifest: &[u8]) -> usize {
    serde_json::from_slice::<serde_json::Value>(manifest)
        .ok()
        .and_then(|v| v.get("layers")?.as_array().map(Vec::len))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(p: &str, s: &str) -> SignatureLayer {
        SignatureLayer {
            payload: p.as_bytes().to_vec(),
            signature_b64: s.into(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn merge_appends_and_never_drops() {
        let remote = vec![layer("a", "1"), layer("b", "2")];
        // Same payload, another key's signature: a distinct signature.
        let merged = merge(
            &remote,
            vec![layer("a", "1"), layer("a", "3"), layer("a", "3")],
        );
        assert_eq!(
            merged,
            vec![layer("a", "1"), layer("b", "2"), layer("a", "3")]
        );
        assert_eq!(merge(&remote, vec![]), remote);
    }

    #[test]
    fn counts_raw_layers() {
        assert_eq!(raw_layer_count(br#"{"layers":[{},{}]}"#), 2);
        assert_eq!(raw_layer_count(b"{}"), 0);
    }
}

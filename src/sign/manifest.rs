//! The cosign signature "image": an OCI manifest whose layers are payloads.
//!
//! cosign stores an image's signatures at the tag `sha256-<hex>.sig` as one
//! OCI image manifest. Each layer is a simple-signing payload blob (media type
//! `application/vnd.dev.cosign.simplesigning.v1+json`) carrying its base64
//! signature in the annotation `dev.cosignproject.cosign/signature`. The config
//! is what go-containerregistry writes for an empty image with those layers
//! appended: zero timestamps, empty architecture and OS, one history entry and
//! one diff_id per layer (a payload is stored uncompressed, so its diff_id is
//! its digest).
//!
//! Pure: blobs come in through a caller-supplied fetch function.

use crate::oci::media_types::*;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::dsse::PREDICATE_TYPE_ANNOTATION;
use super::SignError;

pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// One attestation: a DSSE envelope ([`super::dsse`]) and its predicate type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationLayer {
    pub envelope: Vec<u8>,
    pub predicate_type: String,
}

/// Go's zero `time.Time`, which is what cosign's signature images carry.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One signature: the payload blob, its signature, and any other layer
/// annotations (cosign's certificate, chain or bundle; kept as they are).
/// `annotations` never holds the signature itself: that is `signature_b64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    pub payload: Vec<u8>,
    pub signature_b64: String,
    pub annotations: BTreeMap<String, String>,
}

// Field order below is go-containerregistry's, so our manifests and configs
// read like cosign's.

#[derive(Serialize, Deserialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    size: u64,
    digest: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Config<'a> {
    architecture: &'static str,
    created: &'static str,
    history: Vec<History>,
    os: &'static str,
    rootfs: RootFs<'a>,
    config: Empty,
}

#[derive(Serialize)]
struct History {
    created: &'static str,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: &'a [String],
}

#[derive(Serialize)]
struct Empty {}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The manifest and config bytes of a signature image holding `layers`, in
/// order. To add a signature, pass the existing layers then the new one.
pub fn signature_manifest(layers: &[SignatureLayer]) -> (Vec<u8>, Vec<u8>) {
    let raw: Vec<RawLayer<'_>> = layers
        .iter()
        .map(|l| {
            let mut annotations = l.annotations.clone();
            annotations.insert(SIGNATURE_ANNOTATION.into(), l.signature_b64.clone());
            RawLayer {
                media_type: MEDIA_TYPE_COSIGN_SIMPLE_SIGNING,
                blob: &l.payload,
                annotations,
            }
        })
        .collect();
    cosign_image(&raw)
}

/// The manifest and config bytes of an attestation image (cosign's `.att`
/// tag) holding `layers`, in order: each a DSSE envelope with its predicate
/// type annotated and the empty signature annotation cosign writes (the
/// signature is inside the envelope).
pub fn attestation_manifest(layers: &[AttestationLayer]) -> (Vec<u8>, Vec<u8>) {
    let raw: Vec<RawLayer<'_>> = layers
        .iter()
        .map(|l| RawLayer {
            media_type: MEDIA_TYPE_DSSE,
            blob: &l.envelope,
            annotations: BTreeMap::from([
                (SIGNATURE_ANNOTATION.to_string(), String::new()),
                (
                    PREDICATE_TYPE_ANNOTATION.to_string(),
                    l.predicate_type.clone(),
                ),
            ]),
        })
        .collect();
    cosign_image(&raw)
}

struct RawLayer<'a> {
    media_type: &'static str,
    blob: &'a [u8],
    annotations: BTreeMap<String, String>,
}

/// go-containerregistry's empty image with `layers` appended, as cosign
/// writes signature and attestation images alike.
fn cosign_image(layers: &[RawLayer<'_>]) -> (Vec<u8>, Vec<u8>) {
    let digests: Vec<String> = layers.iter().map(|l| sha256_digest(l.blob)).collect();
    let config = serde_json::to_vec(&Config {
        architecture: "",
        created: ZERO_TIME,
        history: layers
            .iter()
            .map(|_| History { created: ZERO_TIME })
            .collect(),
        os: "",
        rootfs: RootFs {
            kind: "layers",
            diff_ids: &digests,
        },
        config: Empty {},
    })
    .expect("the config always serializes");

    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.into()),
        config: Descriptor {
            media_type: MEDIA_TYPE_CONFIG.into(),
            size: config.len() as u64,
            digest: sha256_digest(&config),
            annotations: BTreeMap::new(),
        },
        layers: layers
            .iter()
            .zip(digests)
            .map(|(layer, digest)| Descriptor {
                media_type: layer.media_type.into(),
                size: layer.blob.len() as u64,
                digest,
                annotations: layer.annotations.clone(),
            })
            .collect(),
    };
    let manifest = serde_json::to_vec(&manifest).expect("the manifest always serializes");
    (manifest, config)
}

/// Reads a signature manifest, fetching each payload with `fetch_blob` and
/// checking it against its descriptor's sha256 and size. Layers of other media
/// types are skipped, as cosign skips them. Digests are validated before
/// `fetch_blob` sees them, so it may safely turn them into paths.
pub fn parse_signature_manifest(
    manifest: &[u8],
    fetch_blob: impl Fn(&str) -> Result<Vec<u8>, SignError>,
) -> Result<Vec<SignatureLayer>, SignError> {
    parse_layers(manifest, MEDIA_TYPE_COSIGN_SIMPLE_SIGNING, fetch_blob)?
        .into_iter()
        .map(|(digest, payload, mut annotations)| {
            let signature_b64 = annotations.remove(SIGNATURE_ANNOTATION).ok_or_else(|| {
                SignError::BadManifest(format!(
                    "layer {digest} has no `{SIGNATURE_ANNOTATION}` annotation"
                ))
            })?;
            Ok(SignatureLayer {
                payload,
                signature_b64,
                annotations,
            })
        })
        .collect()
}

/// Reads an attestation manifest as [`parse_signature_manifest`] reads a
/// signature manifest: DSSE layers only, each blob checked. The predicate type
/// is the annotation's (empty when missing); a verifier reads the statement's.
pub fn parse_attestation_manifest(
    manifest: &[u8],
    fetch_blob: impl Fn(&str) -> Result<Vec<u8>, SignError>,
) -> Result<Vec<AttestationLayer>, SignError> {
    Ok(parse_layers(manifest, MEDIA_TYPE_DSSE, fetch_blob)?
        .into_iter()
        .map(|(_, envelope, annotations)| AttestationLayer {
            envelope,
            predicate_type: annotations
                .get(PREDICATE_TYPE_ANNOTATION)
                .cloned()
                .unwrap_or_default(),
        })
        .collect())
}

/// A layer read back: its digest, its checked blob and its annotations.
type ParsedLayer = (String, Vec<u8>, BTreeMap<String, String>);

/// The layers of `media_type`.
fn parse_layers(
    manifest: &[u8],
    media_type: &str,
    fetch_blob: impl Fn(&str) -> Result<Vec<u8>, SignError>,
) -> Result<Vec<ParsedLayer>, SignError> {
    let manifest: Manifest =
        serde_json::from_slice(manifest).map_err(|e| SignError::BadManifest(e.to_string()))?;
    if manifest.schema_version != 2 {
        return Err(SignError::BadManifest(format!(
            "schemaVersion is {}, expected 2",
            manifest.schema_version
        )));
    }
    match manifest.media_type.as_deref() {
        None | Some(MEDIA_TYPE_MANIFEST) | Some(MEDIA_TYPE_DOCKER_MANIFEST) => {}
        Some(other) => {
            return Err(SignError::BadManifest(format!(
                "media type is `{other}`, expected `{MEDIA_TYPE_MANIFEST}`"
            )))
        }
    }
    let mut out = Vec::new();
    for layer in manifest.layers {
        if layer.media_type != media_type {
            continue;
        }
        check_digest_syntax(&layer.digest)?;
        let blob = fetch_blob(&layer.digest)?;
        let actual = sha256_digest(&blob);
        if actual != layer.digest || blob.len() as u64 != layer.size {
            return Err(SignError::BlobMismatch {
                expected: layer.digest,
                actual,
                expected_size: layer.size,
                actual_size: blob.len() as u64,
            });
        }
        out.push((layer.digest, blob, layer.annotations));
    }
    Ok(out)
}

fn check_digest_syntax(digest: &str) -> Result<(), SignError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if hex.len() == 64 && hex.chars().all(lower_hex) {
        Ok(())
    } else {
        Err(SignError::BadManifest(format!(
            "layer digest {digest:?} is not sha256:<64 lowercase hex digits>"
        )))
    }
}

/// The tag cosign stores an image's signatures under: `sha256:abc` → `sha256-abc.sig`.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// The tag cosign stores an image's attestations under: `sha256-abc.att`.
pub fn attestation_tag(manifest_digest: &str) -> String {
    format!("{}.att", manifest_digest.replacen(':', "-", 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn layer(payload: &str, sig: &str) -> SignatureLayer {
        SignatureLayer {
            payload: payload.as_bytes().to_vec(),
            signature_b64: sig.into(),
            annotations: BTreeMap::new(),
        }
    }

    fn store(layers: &[SignatureLayer]) -> HashMap<String, Vec<u8>> {
        layers
            .iter()
            .map(|l| (sha256_digest(&l.payload), l.payload.clone()))
            .collect()
    }

    #[test]
    fn single_layer_matches_cosigns_layout() {
        let l = layer(r#"{"critical":{}}"#, "MEUCIQ==");
        let (manifest, config) = signature_manifest(std::slice::from_ref(&l));
        let d = sha256_digest(&l.payload);
        assert_eq!(
            String::from_utf8(config.clone()).unwrap(),
            format!(
                r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{d}"]}},"config":{{}}}}"#
            )
        );
        assert_eq!(
            String::from_utf8(manifest).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":{},"digest":"{d}","annotations":{{"dev.cosignproject.cosign/signature":"MEUCIQ=="}}}}]}}"#,
                config.len(),
                sha256_digest(&config),
                l.payload.len()
            )
        );
    }

    #[test]
    fn appended_layers_keep_order_and_round_trip() {
        let mut second = layer("second payload", "c2ln");
        second
            .annotations
            .insert("dev.sigstore.cosign/bundle".into(), "{}".into());
        let layers = vec![layer("first payload", "Zmlyc3Q="), second];
        let (manifest, config) = signature_manifest(&layers);
        let cfg: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
        assert_eq!(
            cfg["rootfs"]["diff_ids"][1],
            sha256_digest(b"second payload")
        );

        let blobs = store(&layers);
        let fetched = RefCell::new(Vec::new());
        let parsed = parse_signature_manifest(&manifest, |d| {
            fetched.borrow_mut().push(d.to_owned());
            Ok(blobs[d].clone())
        })
        .unwrap();
        assert_eq!(parsed, layers);
        assert_eq!(fetched.borrow().len(), 2);
    }

    #[test]
    fn tampered_blob_is_refused() {
        let layers = vec![layer("payload", "c2ln")];
        let (manifest, _) = signature_manifest(&layers);
        let err = parse_signature_manifest(&manifest, |_| Ok(b"pAyload".to_vec())).unwrap_err();
        assert!(matches!(err, SignError::BlobMismatch { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&sha256_digest(b"payload")),
            "{err}"
        );
    }

    #[test]
    fn hostile_digests_never_reach_the_fetcher() {
        let manifest = br#"{"schemaVersion":2,"config":{"mediaType":"x","size":0,"digest":"sha256:00"},
            "layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":1,
            "digest":"sha256:../../etc/passwd","annotations":{"dev.cosignproject.cosign/signature":"x"}}]}"#;
        let err = parse_signature_manifest(manifest, |d| panic!("fetched {d}")).unwrap_err();
        assert!(matches!(err, SignError::BadManifest(_)), "{err:?}");
    }

    #[test]
    fn other_layers_skipped_missing_signature_refused() {
        let payload = b"p".to_vec();
        let d = sha256_digest(&payload);
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","size":0,"digest":"{d}"}},"layers":[
            {{"mediaType":"application/vnd.in-toto+json","size":1,"digest":"{d}"}}]}}"#
        );
        assert!(parse_signature_manifest(manifest.as_bytes(), |_| panic!())
            .unwrap()
            .is_empty());
        let manifest = manifest.replace(
            "application/vnd.in-toto+json",
            MEDIA_TYPE_COSIGN_SIMPLE_SIGNING,
        );
        let err =
            parse_signature_manifest(manifest.as_bytes(), |_| Ok(payload.clone())).unwrap_err();
        assert!(err.to_string().contains(SIGNATURE_ANNOTATION), "{err}");
    }

    #[test]
    fn index_or_garbage_is_not_a_signature_manifest() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","config":{"mediaType":"x","size":0,"digest":"d"},"layers":[]}"#;
        assert!(matches!(
            parse_signature_manifest(index, |_| panic!()),
            Err(SignError::BadManifest(_))
        ));
        assert!(matches!(
            parse_signature_manifest(b"{}", |_| panic!()),
            Err(SignError::BadManifest(_))
        ));
    }

    #[test]
    fn attestation_layers_follow_cosigns_layout_and_round_trip() {
        let layers = vec![
            AttestationLayer {
                envelope: b"{\"payloadType\":\"a\"}".to_vec(),
                predicate_type: "https://slsa.dev/provenance/v1".into(),
            },
            AttestationLayer {
                envelope: b"{\"payloadType\":\"b\"}".to_vec(),
                predicate_type: "https://cyclonedx.org/bom".into(),
            },
        ];
        let (manifest, config) = attestation_manifest(&layers);
        let m: Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(m["layers"][0]["mediaType"], MEDIA_TYPE_DSSE);
        assert_eq!(m["layers"][0]["annotations"][SIGNATURE_ANNOTATION], "");
        assert_eq!(
            m["layers"][1]["annotations"]["predicateType"],
            "https://cyclonedx.org/bom"
        );
        let cfg: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        let blobs: HashMap<String, Vec<u8>> = layers
            .iter()
            .map(|l| (sha256_digest(&l.envelope), l.envelope.clone()))
            .collect();
        let parsed = parse_attestation_manifest(&manifest, |d| Ok(blobs[d].clone())).unwrap();
        assert_eq!(parsed, layers);
        // A signature manifest holds no attestations, and the other way round.
        assert!(parse_signature_manifest(&manifest, |_| panic!())
            .unwrap()
            .is_empty());
        assert_eq!(
            attestation_tag(
                "sha256:97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36"
            ),
            "sha256-97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36.att"
        );
    }

    #[test]
    fn tag_follows_the_spec() {
        assert_eq!(
            signature_tag(
                "sha256:97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36"
            ),
            "sha256-97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36.sig"
        );
    }
}

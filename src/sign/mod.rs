//! Signing images in cosign's formats, without cosign.
//!
//! Contract: everything here reads and writes exactly what cosign does, so an
//! image armorred signs verifies with `cosign verify --key`, and a key made by
//! `cosign generate-key-pair` signs with armorred.
//!
//! - [`keys`]: ECDSA P-256 key pairs in cosign's encrypted PEM files;
//! - [`payload`]: the simple-signing payload that names the image digest;
//! - [`sign_payload`] / [`verify_payload`]: base64 DER ECDSA-SHA256 signatures;
//! - [`signature_manifest`] / [`parse_signature_manifest`]: the OCI manifest at
//!   [`signature_tag`] that carries payloads and signatures;
//! - [`dsse`]: in-toto Statements in DSSE envelopes, and
//!   [`attestation_manifest`] at [`attestation_tag`] that carries them;
//! - [`verify_image`]: the check `cosign verify --key` makes, with an error
//!   that says which part failed.
//!
//! Pure apart from key files, the passphrase prompt and the OS random source.
//! Keyless (Fulcio/Rekor) signing is out of scope.

pub mod dsse;
mod encrypted;
mod error;
pub mod keys;
pub mod layout;
mod manifest;
pub mod payload;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

pub use error::{SignError, VerifyError};
pub use keys::{SigningKey, VerifyingKey};
pub use manifest::{
    attestation_manifest, attestation_tag, parse_attestation_manifest, parse_signature_manifest,
    signature_manifest, signature_tag, AttestationLayer, SignatureLayer, SIGNATURE_ANNOTATION,
};
pub use payload::{new_payload as new_payload_for, SimpleSigning};

/// Signs `payload`: base64 of the ASN.1 DER ECDSA P-256 signature over its
/// SHA-256, the value of the `dev.cosignproject.cosign/signature` annotation.
pub fn sign_payload(key: &SigningKey, payload: &[u8]) -> String {
    BASE64.encode(key.sign_der(payload))
}

/// Checks a base64 DER signature over `payload`.
pub fn verify_payload(
    key: &VerifyingKey,
    payload: &[u8],
    signature_b64: &str,
) -> Result<(), SignError> {
    let der = BASE64
        .decode(signature_b64.trim())
        .map_err(|e| SignError::MalformedSignature(format!("not base64: {e}")))?;
    key.verify_der(payload, &der)
}

/// The signature that vouches for an image.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedSignature {
    /// Index into the layers given to [`verify_image`].
    pub layer_index: usize,
    pub payload: SimpleSigning,
}

/// What `cosign verify --key` checks: some layer's signature verifies with
/// `key` over its payload, and that payload names `manifest_digest`.
/// The first layer that passes both wins.
pub fn verify_image(
    key: &VerifyingKey,
    manifest_digest: &str,
    layers: &[SignatureLayer],
) -> Result<VerifiedSignature, VerifyError> {
    if layers.is_empty() {
        return Err(VerifyError::NoSignatures {
            digest: manifest_digest.to_owned(),
            tag: signature_tag(manifest_digest),
        });
    }
    // When nothing passes, report the most specific failure among the layers
    // whose signature did verify: they are the ones this key vouched for.
    let mut wrong_digest = None;
    let mut bad_payload = None;
    for (layer_index, layer) in layers.iter().enumerate() {
        if verify_payload(key, &layer.payload, &layer.signature_b64).is_err() {
            continue;
        }
        match payload::parse_payload(&layer.payload) {
            Ok(payload) if payload.critical.image.docker_manifest_digest == manifest_digest => {
                return Ok(VerifiedSignature {
                    layer_index,
                    payload,
                });
            }
            Ok(payload) => {
                wrong_digest.get_or_insert(payload.critical.image.docker_manifest_digest);
            }
            Err(e) => {
                bad_payload.get_or_insert(e.to_string());
            }
        }
    }
    let digest = manifest_digest.to_owned();
    Err(if let Some(signed_digest) = wrong_digest {
        VerifyError::DigestMismatch {
            digest,
            signed_digest,
        }
    } else if let Some(reason) = bad_payload {
        VerifyError::BadPayload { digest, reason }
    } else {
        VerifyError::SignatureInvalid {
            digest,
            count: layers.len(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const DIGEST: &str = "sha256:4c1c50d0ffc614f90b93b07d778028dc765548e823f676fb027f61d281ac380d";
    const OTHER: &str = "sha256:97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36";

    fn signed(key: &SigningKey, payload: Vec<u8>) -> SignatureLayer {
        SignatureLayer {
            signature_b64: sign_payload(key, &payload),
            payload,
            annotations: BTreeMap::new(),
        }
    }

    fn payload_for(digest: &str) -> Vec<u8> {
        payload::new_payload("registry.example/app", digest, BTreeMap::new())
    }

    #[test]
    fn sign_then_verify() {
        let key = keys::generate();
        let p = payload_for(DIGEST);
        let sig = sign_payload(&key, &p);
        verify_payload(&key.verifying_key(), &p, &sig).unwrap();
        // base64 of DER: a SEQUENCE tag first.
        assert_eq!(BASE64.decode(&sig).unwrap()[0], 0x30);
    }

    #[test]
    fn verify_payload_failures() {
        let key = keys::generate();
        let p = payload_for(DIGEST);
        let sig = sign_payload(&key, &p);
        let mut edited = p.clone();
        edited[5] ^= 1;
        assert!(matches!(
            verify_payload(&key.verifying_key(), &edited, &sig),
            Err(SignError::SignatureMismatch)
        ));
        assert!(matches!(
            verify_payload(&keys::generate().verifying_key(), &p, &sig),
            Err(SignError::SignatureMismatch)
        ));
        assert!(matches!(
            verify_payload(&key.verifying_key(), &p, "not base64!"),
            Err(SignError::MalformedSignature(_))
        ));
        assert!(matches!(
            verify_payload(&key.verifying_key(), &p, "AAAA"),
            Err(SignError::MalformedSignature(_))
        ));
    }

    #[test]
    fn verify_image_accepts_a_good_signature_among_others() {
        let key = keys::generate();
        let stranger = keys::generate();
        let layers = vec![
            signed(&stranger, payload_for(DIGEST)),
            signed(&key, payload_for(DIGEST)),
        ];
        let ok = verify_image(&key.verifying_key(), DIGEST, &layers).unwrap();
        assert_eq!(ok.layer_index, 1);
        assert_eq!(ok.payload.critical.image.docker_manifest_digest, DIGEST);
    }

    #[test]
    fn no_signatures() {
        let err = verify_image(&keys::generate().verifying_key(), DIGEST, &[]).unwrap_err();
        assert!(matches!(err, VerifyError::NoSignatures { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains(DIGEST) && msg.contains(&signature_tag(DIGEST)),
            "{msg}"
        );
    }

    #[test]
    fn wrong_key() {
        let layers = vec![signed(&keys::generate(), payload_for(DIGEST))];
        let err = verify_image(&keys::generate().verifying_key(), DIGEST, &layers).unwrap_err();
        assert!(
            matches!(&err, VerifyError::SignatureInvalid { count: 1, digest } if digest == DIGEST),
            "{err:?}"
        );
        assert!(err.to_string().contains(DIGEST));
    }

    #[test]
    fn edited_payload_or_signature() {
        let key = keys::generate();
        let mut layer = signed(&key, payload_for(DIGEST));
        // Someone rewrites the payload to point at their image: the signature
        // no longer covers it.
        layer.payload = payload_for(OTHER);
        let err = verify_image(&key.verifying_key(), OTHER, &[layer]).unwrap_err();
        assert!(
            matches!(err, VerifyError::SignatureInvalid { .. }),
            "{err:?}"
        );

        let mut layer = signed(&key, payload_for(DIGEST));
        let mut der = BASE64.decode(&layer.signature_b64).unwrap();
        let last = der.len() - 1;
        der[last] ^= 1;
        layer.signature_b64 = BASE64.encode(der);
        let err = verify_image(&key.verifying_key(), DIGEST, &[layer]).unwrap_err();
        assert!(
            matches!(err, VerifyError::SignatureInvalid { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn signature_for_another_digest() {
        let key = keys::generate();
        let layers = vec![signed(&key, payload_for(OTHER))];
        let err = verify_image(&key.verifying_key(), DIGEST, &layers).unwrap_err();
        match &err {
            VerifyError::DigestMismatch {
                digest,
                signed_digest,
            } => {
                assert_eq!(digest, DIGEST);
                assert_eq!(signed_digest, OTHER);
            }
            other => panic!("{other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(DIGEST) && msg.contains(OTHER), "{msg}");
    }

    #[test]
    fn unparseable_payload() {
        let key = keys::generate();
        let layers = vec![signed(&key, b"{\"not\":\"a payload\"}".to_vec())];
        let err = verify_image(&key.verifying_key(), DIGEST, &layers).unwrap_err();
        assert!(
            matches!(&err, VerifyError::BadPayload { digest, .. } if digest == DIGEST),
            "{err:?}"
        );
    }

    #[test]
    fn a_wrong_digest_outranks_a_foreign_signature_in_the_report() {
        let key = keys::generate();
        let layers = vec![
            signed(&keys::generate(), payload_for(DIGEST)),
            signed(&key, payload_for(OTHER)),
        ];
        let err = verify_image(&key.verifying_key(), DIGEST, &layers).unwrap_err();
        assert!(matches!(err, VerifyError::DigestMismatch { .. }), "{err:?}");
    }
}

//! DSSE envelopes around in-toto Statements: the attestations cosign writes.
//!
//! An envelope is `{"payloadType", "payload" (base64), "signatures":
//! [{"keyid", "sig"}]}`; each `sig` is the base64 DER ECDSA P-256 signature
//! over the Pre-Authentication Encoding [`pae`] of the payload type and the
//! raw payload, never over the envelope or the base64 text, so a verifier
//! cannot be fooled by a payload type swapped after signing.
//!
//! Pure apart from the OS random source of signing.

use crate::oci::media_types::*;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::keys::{SigningKey, VerifyingKey};
use super::{sign_payload, verify_payload, SignError};

/// The media type of an attestation layer in a `.att` manifest.
/// `payloadType` of an envelope holding an in-toto Statement.
/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";
/// The layer annotation cosign gives an attestation: its predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";

/// DSSE's Pre-Authentication Encoding: `DSSEv1 <len> <type> <len> <body>`,
/// lengths in ASCII decimal bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the statement bytes.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// cosign leaves it empty for a key-pair signature; so do we.
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

/// One subject of a Statement: a name and its digests by algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: std::collections::BTreeMap<String, String>,
}

/// An in-toto Statement v1 with predicate `P`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement<P> {
    #[serde(rename = "_type")]
    pub kind: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: P,
}

impl<P> Statement<P> {
    /// A Statement about one image manifest (`sha256:<hex>`), named `name`.
    pub fn about_image(
        name: &str,
        manifest_digest: &str,
        predicate_type: &str,
        predicate: P,
    ) -> Self {
        let hex = manifest_digest
            .strip_prefix("sha256:")
            .unwrap_or(manifest_digest);
        Statement {
            kind: STATEMENT_TYPE_V1.into(),
            subject: vec![Subject {
                name: name.into(),
                digest: [("sha256".to_string(), hex.to_string())].into(),
            }],
            predicate_type: predicate_type.into(),
            predicate,
        }
    }

    /// Whether some subject has `manifest_digest` (`sha256:<hex>`).
    pub fn names_digest(&self, manifest_digest: &str) -> bool {
        let Some(hex) = manifest_digest.strip_prefix("sha256:") else {
            return false;
        };
        self.subject
            .iter()
            .any(|s| s.digest.get("sha256").map(String::as_str) == Some(hex))
    }
}

/// Signs `statement` (in-toto JSON bytes) into envelope bytes.
pub fn sign_statement(key: &SigningKey, statement: &[u8]) -> Vec<u8> {
    let envelope = Envelope {
        payload_type: PAYLOAD_TYPE_IN_TOTO.into(),
        payload: BASE64.encode(statement),
        signatures: vec![EnvelopeSignature {
            keyid: String::new(),
            sig: sign_payload(key, &pae(PAYLOAD_TYPE_IN_TOTO, statement)),
        }],
    };
    serde_json::to_vec(&envelope).expect("an envelope of strings serializes")
}

/// Checks that some signature of the envelope verifies with `key` and that it
/// holds an in-toto payload; returns the statement bytes.
pub fn verify_envelope(key: &VerifyingKey, envelope: &[u8]) -> Result<Vec<u8>, SignError> {
    let envelope: Envelope = serde_json::from_slice(envelope)
        .map_err(|e| SignError::BadPayload(format!("not a DSSE envelope: {e}")))?;
    if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO {
        return Err(SignError::BadPayload(format!(
            "payloadType is {:?}, expected {PAYLOAD_TYPE_IN_TOTO:?}",
            envelope.payload_type
        )));
    }
    let statement = BASE64
        .decode(envelope.payload.trim())
        .map_err(|e| SignError::BadPayload(format!("envelope payload is not base64: {e}")))?;
    let signed = pae(&envelope.payload_type, &statement);
    if envelope.signatures.is_empty() {
        return Err(SignError::SignatureMismatch);
    }
    if envelope
        .signatures
        .iter()
        .any(|s| verify_payload(key, &signed, &s.sig).is_ok())
    {
        Ok(statement)
    } else {
        Err(SignError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys;

    const DIGEST: &str = "sha256:4c1c50d0ffc614f90b93b07d778028dc765548e823f676fb027f61d281ac380d";

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // The worked example of DSSE's protocol.md.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn statement_shape_and_subject() {
        let s = Statement::about_image("armorred/hello:1.0", DIGEST, "https://x/p", 1);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["_type"], STATEMENT_TYPE_V1);
        assert_eq!(v["predicateType"], "https://x/p");
        assert_eq!(
            v["subject"][0]["digest"]["sha256"],
            DIGEST.strip_prefix("sha256:").unwrap()
        );
        assert!(s.names_digest(DIGEST));
        assert!(!s.names_digest(&DIGEST.replace('4', "5")));
    }

    #[test]
    fn sign_then_verify_and_failures() {
        let key = keys::generate();
        let statement = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
        let env = sign_statement(&key, statement);
        assert_eq!(
            verify_envelope(&key.verifying_key(), &env).unwrap(),
            statement
        );
        // The signature covers the PAE, not the bare payload.
        let parsed: Envelope = serde_json::from_slice(&env).unwrap();
        verify_payload(
            &key.verifying_key(),
            &pae(PAYLOAD_TYPE_IN_TOTO, statement),
            &parsed.signatures[0].sig,
        )
        .unwrap();
        assert!(matches!(
            verify_envelope(&keys::generate().verifying_key(), &env),
            Err(SignError::SignatureMismatch)
        ));
        let mut swapped = parsed.clone();
        swapped.payload = BASE64.encode(b"{}");
        assert!(matches!(
            verify_envelope(&key.verifying_key(), &serde_json::to_vec(&swapped).unwrap()),
            Err(SignError::SignatureMismatch)
        ));
        let mut retyped = parsed.clone();
        retyped.payload_type = "text/plain".into();
        assert!(matches!(
            verify_envelope(&key.verifying_key(), &serde_json::to_vec(&retyped).unwrap()),
            Err(SignError::BadPayload(_))
        ));
        let mut unsigned = parsed;
        unsigned.signatures.clear();
        assert!(matches!(
            verify_envelope(
                &key.verifying_key(),
                &serde_json::to_vec(&unsigned).unwrap()
            ),
            Err(SignError::SignatureMismatch)
        ));
    }
}

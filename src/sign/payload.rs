//! The cosign "simple signing" payload: the bytes a signature covers.
//!
//! Signatures are detached, so the payload names what they are about:
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"registry/repo"},
//!              "image":{"docker-manifest-digest":"sha256:…"},
//!              "type":"cosign container image signature"},
//!  "optional":null}
//! ```
//!
//! [`new_payload`] writes the bytes Go's `encoding/json` writes for sigstore's
//! `payload.Cosign`: compact, struct fields in declaration order, map keys
//! sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped, and `"optional":null`
//! when there are no annotations. Verifiers check the bytes they are given, so
//! this is not needed for interoperability, but it makes our payloads identical
//! to cosign's for the same input, which makes differences easy to spot.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::SignError;

/// `critical.type` of every cosign image signature.
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";

/// A parsed simple-signing payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    /// User claims (cosign's `-a key=value` annotations). Empty is written as
    /// `null`, as cosign does.
    #[serde(
        default,
        serialize_with = "optional_as_null_when_empty",
        deserialize_with = "null_as_empty"
    )]
    pub optional: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    /// Always [`COSIGN_SIGNATURE_TYPE`] for a cosign image signature.
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The repository the image was signed as. cosign does not check it.
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The digest of the signed image manifest, `sha256:<hex>`.
    // Go matches JSON keys case-insensitively, and cosign's own spec example
    // spells this one with a capital D, so accept that spelling too.
    #[serde(rename = "docker-manifest-digest", alias = "Docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    pub fn new(
        docker_reference: &str,
        manifest_digest: &str,
        optional: BTreeMap<String, Value>,
    ) -> SimpleSigning {
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: docker_reference.to_owned(),
                },
                image: Image {
                    docker_manifest_digest: manifest_digest.to_owned(),
                },
                kind: COSIGN_SIGNATURE_TYPE.to_owned(),
            },
            optional,
        }
    }

    /// The exact bytes to sign (see the module docs for the encoding).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, GoJsonFormatter);
        self.serialize(&mut ser)
            .expect("a payload of strings and JSON values always serializes");
        out
    }
}

/// The payload bytes for signing `manifest_digest` as `docker_reference`.
/// The same inputs always give the same bytes.
pub fn new_payload(
    docker_reference: &str,
    manifest_digest: &str,
    optional: BTreeMap<String, Value>,
) -> Vec<u8> {
    SimpleSigning::new(docker_reference, manifest_digest, optional).to_bytes()
}

/// Parses payload bytes, insisting on cosign's `critical.type` as cosign does.
pub fn parse_payload(bytes: &[u8]) -> Result<SimpleSigning, SignError> {
    let payload: SimpleSigning =
        serde_json::from_slice(bytes).map_err(|e| SignError::BadPayload(e.to_string()))?;
    if payload.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(SignError::BadPayload(format!(
            "critical.type is {:?}, expected {COSIGN_SIGNATURE_TYPE:?}",
            payload.critical.kind
        )));
    }
    Ok(payload)
}

fn optional_as_null_when_empty<S: serde::Serializer>(
    map: &BTreeMap<String, Value>,
    s: S,
) -> Result<S::Ok, S::Error> {
    if map.is_empty() {
        return s.serialize_none();
    }
    // Go sorts the keys of every nested map too.
    let sorted: BTreeMap<&String, Value> = map
        .iter()
        .map(|(k, v)| (k, crate::base::json::sorted(v)))
        .collect();
    sorted.serialize(s)
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Value>, D::Error> {
    Ok(Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default())
}

/// Compact JSON with Go's HTML-safe string escaping.
struct GoJsonFormatter;

impl serde_json::ser::Formatter for GoJsonFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "sha256:97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36";

    #[test]
    fn bytes_are_what_cosign_writes() {
        let bytes = new_payload("registry.example/app", DIGEST, BTreeMap::new());
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!(
                "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"registry.example/app\"}},\
                 \"image\":{{\"docker-manifest-digest\":\"{DIGEST}\"}},\
                 \"type\":\"cosign container image signature\"}},\"optional\":null}}"
            )
        );
    }

    #[test]
    fn field_names_are_cosigns() {
        let v: Value =
            serde_json::from_slice(&new_payload("r/a", DIGEST, BTreeMap::new())).unwrap();
        assert_eq!(v["critical"]["identity"]["docker-reference"], "r/a");
        assert_eq!(v["critical"]["image"]["docker-manifest-digest"], DIGEST);
        assert_eq!(v["critical"]["type"], COSIGN_SIGNATURE_TYPE);
        assert!(v["optional"].is_null());
    }

    #[test]
    fn deterministic_with_sorted_nested_annotations_and_go_escaping() {
        // Insertion order differs; the bytes must not.
        let a = BTreeMap::from([
            ("tier".to_string(), json!("hardened")),
            (
                "build".to_string(),
                json!({"z": 1, "a": [{"y": true, "b": null}]}),
            ),
        ]);
        let b: BTreeMap<String, Value> = serde_json::from_str(
            r#"{"build":{"a":[{"b":null,"y":true}],"z":1},"tier":"hardened"}"#,
        )
        .unwrap();
        let pa = new_payload("r/a", DIGEST, a);
        assert_eq!(pa, new_payload("r/a", DIGEST, b));
        let text = String::from_utf8(pa).unwrap();
        assert!(
            text.ends_with(
                r#""optional":{"build":{"a":[{"b":null,"y":true}],"z":1},"tier":"hardened"}}"#
            ),
            "{text}"
        );

        let html = BTreeMap::from([("note".to_string(), json!("a<b>&c\u{2028}"))]);
        let text = String::from_utf8(new_payload("r/a", DIGEST, html)).unwrap();
        assert!(
            text.contains(r#""note":"a\u003cb\u003e\u0026c\u2028""#),
            "{text}"
        );
    }

    #[test]
    fn parse_round_trips_and_accepts_cosign_variants() {
        let optional = BTreeMap::from([("creator".to_string(), json!("armorred"))]);
        let bytes = new_payload("r/a", DIGEST, optional.clone());
        let parsed = parse_payload(&bytes).unwrap();
        assert_eq!(parsed, SimpleSigning::new("r/a", DIGEST, optional));

        // The spec's example: capitalised digest key, numeric claim.
        let spec = br#"{"critical":{"identity":{"docker-reference":"testing/manifest"},
            "image":{"Docker-manifest-digest":"sha256:20be"},"type":"cosign container image signature"},
            "optional":{"creator":"atomic","timestamp":1458239713}}"#;
        let parsed = parse_payload(spec).unwrap();
        assert_eq!(parsed.critical.image.docker_manifest_digest, "sha256:20be");
        assert_eq!(parsed.optional["timestamp"], 1458239713);

        let no_optional = br#"{"critical":{"identity":{"docker-reference":"r"},
            "image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"}}"#;
        assert!(parse_payload(no_optional).unwrap().optional.is_empty());
    }

    #[test]
    fn parse_rejects_other_types_and_garbage() {
        let other = br#"{"critical":{"identity":{"docker-reference":"r"},
            "image":{"docker-manifest-digest":"sha256:00"},"type":"atomic container signature"},"optional":null}"#;
        let err = parse_payload(other).unwrap_err();
        assert!(
            err.to_string().contains("atomic container signature"),
            "{err}"
        );
        assert!(matches!(
            parse_payload(b"not json"),
            Err(SignError::BadPayload(_))
        ));
        let missing = br#"{"critical":{"identity":{"docker-reference":"r"},"type":"cosign container image signature"}}"#;
        assert!(matches!(
            parse_payload(missing),
            Err(SignError::BadPayload(_))
        ));
    }
}

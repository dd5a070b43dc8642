//! Canonical JSON: every object's keys in byte order at every depth, so
//! equal values give equal bytes and equal digests.
//!
//! Keys are sorted explicitly rather than trusting serde_json's map order:
//! its `preserve_order` feature (off in this crate today) is additive, and
//! any dependency that turns it on would silently change every digest.

use serde::Serialize;
use serde_json::Value;

/// Compact canonical bytes: manifests, configs, indexes and signed payloads.
pub fn canonical<T: Serialize>(v: &T) -> Vec<u8> {
    let value = serde_json::to_value(v).expect("armorred's documents always serialize");
    serde_json::to_vec(&sorted(&value)).expect("a JSON value always serializes")
}

/// Pretty canonical bytes with a trailing newline: documents people read,
/// such as SBOMs and VEX.
pub fn canonical_pretty(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(&sorted(v)).expect("a JSON value always serializes");
    out.push(b'\n');
    out
}

/// `v` with every object's keys in byte order.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Doc {
        zeta: u8,
        alpha: Inner,
        #[serde(rename = "Mid")]
        mid: Vec<Inner>,
    }
    #[derive(Serialize)]
    struct Inner {
        y: u8,
        b: u8,
    }

    #[test]
    fn key_order_is_byte_order_at_every_depth_whatever_the_field_order() {
        let d = Doc {
            zeta: 1,
            alpha: Inner { y: 2, b: 3 },
            mid: vec![Inner { y: 4, b: 5 }],
        };
        assert_eq!(
            String::from_utf8(canonical(&d)).unwrap(),
            r#"{"Mid":[{"b":5,"y":4}],"alpha":{"b":3,"y":2},"zeta":1}"#
        );
        let v: Value = serde_json::from_str(r#"{"b":{"d":1,"c":2},"a":[{"z":0,"e":1}]}"#).unwrap();
        assert_eq!(
            String::from_utf8(canonical_pretty(&v)).unwrap(),
            "{\n  \"a\": [\n    {\n      \"e\": 1,\n      \"z\": 0\n    }\n  ],\n  \"b\": {\n    \"c\": 2,\n    \"d\": 1\n  }\n}\n"
        );
    }
}

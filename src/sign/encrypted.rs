//! The passphrase-sealed box cosign keeps private keys in.
//!
//! cosign encrypts a key with go-securesystemslib's `encrypted` package: scrypt
//! derives a 32-byte key from the passphrase and a random 32-byte salt, and
//! NaCl secretbox (XSalsa20-Poly1305, tag first) seals the plaintext under a
//! random 24-byte nonce. The box is this JSON, byte strings in padded standard
//! base64 (how Go's `encoding/json` writes `[]byte`):
//!
//! ```json
//! {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"…"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"…"},"ciphertext":"…"}
//! ```
//!
//! Pure apart from drawing the salt and nonce from the OS.

use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::SignError;

pub(crate) const KDF_SCRYPT: &str = "scrypt";
pub(crate) const CIPHER_SECRETBOX: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// The scrypt cost cosign writes (go-securesystemslib's "legacy" strength).
/// The sigstore Rust crate only reads this one and 65536, so new keys use it.
pub(crate) const SCRYPT_N_WRITE: u32 = 32768;

/// The (N, r, p) triples go-securesystemslib decrypts: legacy, standard and
/// OWASP strength. Anything else is refused before running scrypt, so a
/// crafted file cannot make us burn gigabytes of memory.
const ACCEPTED_PARAMS: [(u32, u32, u32); 3] = [(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)];

#[derive(Serialize, Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u32,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

mod b64 {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Seals `plaintext` under `passphrase` with fresh random salt and nonce.
pub(crate) fn seal(plaintext: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, SignError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut salt)
        .and_then(|()| OsRng.try_fill_bytes(&mut nonce))
        .map_err(|e| SignError::Random(e.to_string()))?;
    seal_with(plaintext, passphrase, &salt, &nonce, SCRYPT_N_WRITE)
}

/// [`seal`] with the random inputs given, so tests can pin the output.
pub(crate) fn seal_with(
    plaintext: &[u8],
    passphrase: &[u8],
    salt: &[u8; SALT_LEN],
    nonce: &[u8; NONCE_LEN],
    n: u32,
) -> Result<Vec<u8>, SignError> {
    let params = ScryptParams { n, r: 8, p: 1 };
    let key = derive_key(passphrase, salt, params)?;
    let ciphertext = XSalsa20Poly1305::new(Key::from_slice(key.as_slice()))
        .encrypt(Nonce::from_slice(nonce), plaintext)
        .map_err(|_| SignError::BadEncryptedKey("secretbox refused to seal".into()))?;
    let sealed = Sealed {
        kdf: Kdf {
            name: KDF_SCRYPT.into(),
            params,
            salt: salt.to_vec(),
        },
        cipher: Cipher {
            name: CIPHER_SECRETBOX.into(),
            nonce: nonce.to_vec(),
        },
        ciphertext,
    };
    Ok(serde_json::to_vec(&sealed).expect("the sealed box always serializes"))
}

/// Opens a sealed box. A failed authentication means the passphrase is wrong
/// (or the file was altered: secretbox cannot tell the two apart).
pub(crate) fn open(sealed: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, SignError> {
    let sealed: Sealed = serde_json::from_slice(sealed).map_err(|e| {
        SignError::BadEncryptedKey(format!("its body is not the expected JSON: {e}"))
    })?;
    if sealed.kdf.name != KDF_SCRYPT {
        return Err(SignError::BadEncryptedKey(format!(
            "unknown key derivation `{}` (expected `{KDF_SCRYPT}`)",
            sealed.kdf.name
        )));
    }
    if sealed.cipher.name != CIPHER_SECRETBOX {
        return Err(SignError::BadEncryptedKey(format!(
            "unknown cipher `{}` (expected `{CIPHER_SECRETBOX}`)",
            sealed.cipher.name
        )));
    }
    let ScryptParams { n, r, p } = sealed.kdf.params;
    if !ACCEPTED_PARAMS.contains(&(n, r, p)) {
        return Err(SignError::UnsupportedScryptParams { n, r, p });
    }
    if sealed.cipher.nonce.len() != NONCE_LEN {
        return Err(SignError::BadEncryptedKey(format!(
            "the secretbox nonce is {} bytes (expected {NONCE_LEN})",
            sealed.cipher.nonce.len()
        )));
    }
    let key = derive_key(passphrase, &sealed.kdf.salt, sealed.kdf.params)?;
    XSalsa20Poly1305::new(Key::from_slice(key.as_slice()))
        .decrypt(
            Nonce::from_slice(&sealed.cipher.nonce),
            sealed.ciphertext.as_slice(),
        )
        .map(Zeroizing::new)
        .map_err(|_| SignError::WrongPassphrase)
}

fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    params: ScryptParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, SignError> {
    let bad = |e: &dyn std::fmt::Display| SignError::BadEncryptedKey(format!("scrypt: {e}"));
    if !params.n.is_power_of_two() {
        return Err(SignError::UnsupportedScryptParams {
            n: params.n,
            r: params.r,
            p: params.p,
        });
    }
    let log_n = params.n.trailing_zeros() as u8;
    let scrypt_params =
        scrypt::Params::new(log_n, params.r, params.p, KEY_LEN).map_err(|e| bad(&e))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    scrypt::scrypt(passphrase, salt, &scrypt_params, key.as_mut_slice()).map_err(|e| bad(&e))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;

    // Known-answer vectors from go-securesystemslib's own encrypted_test.go,
    // all under the passphrase "supersecret". Opening them proves our reading
    // of the format matches the Go code. GO_DECRYPT seals "reallyimportant"
    // directly; the other three come from its `Marshal`, which JSON-encodes
    // the value first (a Go []byte becomes a base64 JSON string).
    const GO_DECRYPT: &str = r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}"#;
    const MARSHALLED: &[u8] = br#""cmVhbGx5aW1wb3J0YW50""#;
    const GO_LEGACY: &str = r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"WO3mVvyTwJ9vwT5/Tk5OW5WPIBUofMjcpEfrLnfY4uA="},"cipher":{"name":"nacl/secretbox","nonce":"tCy7HcTFr4uxv4Nrg/DWmncuZ148U1MX"},"ciphertext":"08n43p5G5yviPEZpO7tPPF4aZQkWiWjkv4taFdhDBA0tamKH4nw="}"#;
    const GO_STANDARD: &str = r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"FhzPOt9/bJG4PTq6lQ6ecG6GzaOuOy/ynG5+yRiFlNs="},"cipher":{"name":"nacl/secretbox","nonce":"aw1ng1jHaDz/tQ7V2gR9O2+IGQ8xJEuE"},"ciphertext":"HycvuLZL4sYH0BrYTh4E/H20VtAW6u5zL5Pr+IBjYLYnCPzDkq8="}"#;
    const GO_OWASP: &str = r#"{"kdf":{"name":"scrypt","params":{"N":131072,"r":8,"p":1},"salt":"m38E3kouJTtiheLQN22NQ8DTito5hrjpUIskqcd375k="},"cipher":{"name":"nacl/secretbox","nonce":"Y6PM13yA+o44pE/W1ZBwczeGnTV/m9Zc"},"ciphertext":"6H8sqj1K6B6yDjtH5AQ6lbFigg/C2yDDJc4rYJ79w9aVPImFIPI="}"#;
    const GO_UNSUPPORTED: &str = r#"{"kdf":{"name":"scrypt","params":{"N":99,"r":99,"p":99},"salt":"cZFcQJdwPhPyhU1R4qkl0qVOIjZd4V/7LYYAavq166k="},"cipher":{"name":"nacl/secretbox","nonce":"7vhRS7j0hEPBWV05skAdgLj81AkGeE7U"},"ciphertext":"6WYU/YSXVbYzl/NzaeAzmjLyfFhOOjLc0d8/GFV0aBFdJvyCcXc="}"#;

    #[test]
    fn opens_boxes_sealed_by_go_securesystemslib() {
        let plain = open(GO_DECRYPT.as_bytes(), b"supersecret").unwrap();
        assert_eq!(plain.as_slice(), b"reallyimportant");
        for sealed in [GO_LEGACY, GO_STANDARD, GO_OWASP] {
            let plain = open(sealed.as_bytes(), b"supersecret").unwrap();
            assert_eq!(plain.as_slice(), MARSHALLED);
        }
    }

    #[test]
    fn wrong_passphrase_is_its_own_error() {
        let err = open(GO_LEGACY.as_bytes(), b"supersecreT").unwrap_err();
        assert!(matches!(err, SignError::WrongPassphrase), "{err:?}");
    }

    #[test]
    fn refuses_unknown_scrypt_costs_before_deriving() {
        let err = open(GO_UNSUPPORTED.as_bytes(), b"supersecret").unwrap_err();
        assert!(
            matches!(
                err,
                SignError::UnsupportedScryptParams {
                    n: 99,
                    r: 99,
                    p: 99
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn sealing_is_the_go_layout_byte_for_byte() {
        // Re-sealing with the Go vector's salt and nonce must give its bytes
        // exactly: same KDF, same cipher, same JSON field order and encodings.
        let salt: [u8; 32] = BASE64
            .decode("WO3mVvyTwJ9vwT5/Tk5OW5WPIBUofMjcpEfrLnfY4uA=")
            .unwrap()
            .try_into()
            .unwrap();
        let nonce: [u8; 24] = BASE64
            .decode("tCy7HcTFr4uxv4Nrg/DWmncuZ148U1MX")
            .unwrap()
            .try_into()
            .unwrap();
        let sealed = seal_with(MARSHALLED, b"supersecret", &salt, &nonce, 32768).unwrap();
        assert_eq!(String::from_utf8(sealed).unwrap(), GO_LEGACY);
    }

    #[test]
    fn round_trip_with_fresh_randomness() {
        let a = seal(b"payload", b"pw").unwrap();
        let b = seal(b"payload", b"pw").unwrap();
        assert_ne!(a, b, "salt and nonce must be fresh each time");
        assert_eq!(open(&a, b"pw").unwrap().as_slice(), b"payload");
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["kdf"]["params"]["N"], 32768);
        assert_eq!(v["kdf"]["params"]["r"], 8);
        assert_eq!(v["kdf"]["params"]["p"], 1);
    }

    #[test]
    fn tampered_ciphertext_does_not_open() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&seal(b"payload", b"pw").unwrap()).unwrap();
        let mut ct = BASE64.decode(v["ciphertext"].as_str().unwrap()).unwrap();
        ct[20] ^= 1;
        v["ciphertext"] = BASE64.encode(ct).into();
        let err = open(v.to_string().as_bytes(), b"pw").unwrap_err();
        assert!(matches!(err, SignError::WrongPassphrase), "{err:?}");
    }

    #[test]
    fn other_ciphers_and_kdfs_are_named_in_the_error() {
        let mut v: serde_json::Value = serde_json::from_str(GO_LEGACY).unwrap();
        v["cipher"]["name"] = "aes-gcm".into();
        let err = open(v.to_string().as_bytes(), b"supersecret").unwrap_err();
        assert!(err.to_string().contains("aes-gcm"), "{err}");
        let mut v: serde_json::Value = serde_json::from_str(GO_LEGACY).unwrap();
        v["kdf"]["name"] = "pbkdf2".into();
        let err = open(v.to_string().as_bytes(), b"supersecret").unwrap_err();
        assert!(err.to_string().contains("pbkdf2"), "{err}");
    }
}

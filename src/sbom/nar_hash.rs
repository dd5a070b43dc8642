//! NAR hashes as SBOMs want them: lowercase hex SHA-256.
//!
//! Nix prints a NAR hash as `sha256:<hex>` (Nix 2.8 `--dump-db`),
//! `sha256:<nix-base32>` (most other commands) or `sha256-<base64>` (SRI, as
//! `nix path-info --json` does since 2.4). All three decode to the same bytes.

const SHA256_LEN: usize = 32;
/// Nix's base32 alphabet: digits and lowercase letters without e, o, u, t.
const NIX_BASE32: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// The SHA-256 of a NAR as 64 lowercase hex digits, or `None` if `h` is not
/// a SHA-256 in a form Nix prints.
pub(crate) fn sha256_hex(h: &str) -> Option<String> {
    let h = h.trim();
    let bytes = if let Some(rest) = h.strip_prefix("sha256:") {
        match rest.len() {
            64 => hex::decode(rest).ok()?,
            52 => nix32_decode(rest, SHA256_LEN)?,
            _ => return None,
        }
    } else if let Some(rest) = h.strip_prefix("sha256-") {
        base64_decode(rest)?
    } else if h.len() == 64 {
        hex::decode(h).ok()?
    } else {
        return None;
    };
    (bytes.len() == SHA256_LEN).then(|| hex::encode(bytes))
}

/// Decodes Nix's base32 into `len` bytes.
///
/// Not RFC 4648: Nix writes the *last* 5-bit group first, and groups are
/// taken from the little end of the byte string (`libutil/hash.cc`), so
/// character `k` from the right holds bits `5k..5k+5` of the hash read as a
/// little-endian number.
pub(crate) fn nix32_decode(s: &str, len: usize) -> Option<Vec<u8>> {
    if len == 0 || s.len() != (len * 8 - 1) / 5 + 1 {
        return None;
    }
    let mut out = vec![0u8; len];
    for (n, c) in s.bytes().rev().enumerate() {
        let digit = NIX_BASE32.iter().position(|&a| a == c)? as u16;
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        let shifted = digit << j;
        out[i] |= shifted as u8;
        let carry = (shifted >> 8) as u8;
        if i + 1 < len {
            out[i + 1] |= carry;
        } else if carry != 0 {
            // Bits past the end of the hash: not a hash of this length.
            return None;
        }
    }
    Some(out)
}

/// Standard base64 with padding, as SRI hashes use.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding, or the text is not canonical.
    (acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pairs from `nix-hash --type sha256 --to-base32 <hex>` (Nix 2.8.0).
    const PAIRS: &[(&str, &str)] = &[
        (
            "0648a30cc69adcd326ef37d48ab2f2f33c14bb2b88de3e895a73791649fdcde2",
            "1qndzm4icybkba4kxpl85fxi8g7kyar8mm1pxwkd7p4sqq6a6j06",
        ),
        (
            "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
            "080z3qfiq6qs34c1f5hm2h9i448h1w70s30b184hh1q60l2060h1",
        ),
        (
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000",
        ),
    ];

    #[test]
    fn nix_base32_matches_nix_hash() {
        for (hex, b32) in PAIRS {
            assert_eq!(
                sha256_hex(&format!("sha256:{b32}")).as_deref(),
                Some(*hex),
                "{b32}"
            );
        }
    }

    #[test]
    fn nix_base32_rejects_overflow_and_bad_chars() {
        // The top character may only carry one bit for 32 bytes (256 = 51*5 + 1).
        assert_eq!(nix32_decode(&format!("2{}", "0".repeat(51)), 32), None);
        // 'e' is not in the alphabet; wrong lengths are not hashes.
        assert_eq!(nix32_decode(&format!("e{}", "0".repeat(51)), 32), None);
        assert_eq!(nix32_decode("000", 32), None);
    }

    #[test]
    fn hex_and_sri_forms() {
        let (hex, _) = PAIRS[0];
        assert_eq!(sha256_hex(&format!("sha256:{hex}")).as_deref(), Some(hex));
        assert_eq!(sha256_hex(hex).as_deref(), Some(hex));
        assert_eq!(
            sha256_hex(&format!("sha256:{}", hex.to_uppercase())).as_deref(),
            Some(hex)
        );
        // python3 -c 'import base64; print(base64.b64encode(bytes.fromhex(HEX)).decode())'
        assert_eq!(
            sha256_hex("sha256-BkijDMaa3NMm7zfUirLy8zwUuyuI3j6JWnN5Fkn9zeI=").as_deref(),
            Some(hex)
        );
    }

    #[test]
    fn rejects_what_is_not_a_sha256() {
        for bad in [
            "",
            "sha256:",
            "sha256:nginx-1.22.1",
            "sha512:0648a30cc69adcd326ef37d48ab2f2f33c14bb2b88de3e895a73791649fdcde2",
            "sha256-AAAA",
            "sha256-BkijDMaa3NMm7zfUirLy8zwUuyuI3j6JWnN5Fkn9ze*=",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
        ] {
            assert_eq!(sha256_hex(bad), None, "{bad}");
        }
    }
}

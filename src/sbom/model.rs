//! What both SBOM formats say about each store path and about the image,
//! derived once so the two documents cannot disagree.

use crate::closure::PathInfo;
use crate::store_path::StorePath;

use super::ids;
use super::license::{self, License};
use super::nar_hash;
use super::SbomInput;

/// Output names Nix appends to a store path name (`openssl-3.0.15-bin`).
/// Split off so the version scanners match on is `3.0.15`, not `3.0.15-bin`.
const OUTPUTS: &[&str] = &[
    "bin", "debug", "dev", "devdoc", "doc", "info", "lib", "libgcc", "man", "static",
];

/// One store path of the closure, as an SBOM package / component.
#[derive(Debug)]
pub(crate) struct Package<'a> {
    pub path: &'a StorePath,
    pub info: &'a PathInfo,
    pub name: &'a str,
    pub version: Option<&'a str>,
    /// A non-default output, when the store name carries one.
    pub output: Option<&'a str>,
    pub purl: String,
    pub cpe: Option<String>,
    pub sha256: Option<String>,
    pub licenses: Vec<License>,
    /// One of the closure roots: what the image was asked to contain.
    pub is_root: bool,
}

/// The image the SBOM describes.
#[derive(Debug)]
pub(crate) struct Image {
    pub purl: String,
    /// Hex SHA-256 of the manifest, when the digest is a well-formed sha256.
    pub sha256: Option<String>,
}

/// Name, version and output the way `builtins.parseDrvName` splits the store
/// name, with a trailing output name moved out of the version.
pub(crate) fn name_version_output(path: &StorePath) -> (&str, Option<&str>, Option<&str>) {
    let (name, version) = path.pname_version();
    if let Some(v) = version {
        if let Some((v, out)) = v.rsplit_once('-') {
            if !v.is_empty() && OUTPUTS.contains(&out) {
                return (name, Some(v), Some(out));
            }
        }
    }
    (name, version, None)
}

/// Every closure path, in store-path order.
pub(crate) fn packages<'a>(input: &SbomInput<'a>) -> Vec<Package<'a>> {
    let closure = input.closure;
    closure
        .paths
        .iter()
        .map(|(path, info)| {
            let (name, version, output) = name_version_output(path);
            // Most specific key first: the full store name, then name-version, then pname.
            let name_version = version.map(|v| format!("{name}-{v}"));
            let license_ids = [Some(path.name()), name_version.as_deref(), Some(name)]
                .into_iter()
                .flatten()
                .find_map(|k| input.licenses.get(k));
            Package {
                path,
                info,
                name,
                version,
                output,
                purl: ids::nix_purl(name, version, output, path.hash_part()),
                cpe: input.cpes.get(name).and_then(|vp| ids::cpe23(vp, version)),
                sha256: nar_hash::sha256_hex(&info.nar_hash),
                licenses: license_ids.map(|l| license::resolve(l)).unwrap_or_default(),
                is_root: closure.roots.contains(path),
            }
        })
        .collect()
}

pub(crate) fn image(input: &SbomInput) -> Image {
    let sha256 = input
        .manifest_digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|h| h.to_ascii_lowercase());
    Image {
        purl: ids::oci_purl(
            input.image_name,
            input.image_reference,
            input.manifest_digest,
            input.image_version,
        ),
        sha256,
    }
}

/// The roots in the order given, each once.
pub(crate) fn roots<'a>(input: &SbomInput<'a>) -> Vec<&'a StorePath> {
    let mut out: Vec<&StorePath> = Vec::new();
    for r in &input.closure.roots {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// The timestamp both documents carry. SPDX (and spdx-tools) accept only
/// `YYYY-MM-DDThh:mm:ssZ`, so RFC 3339 in UTC
/// written another way (`+00:00`, fractional seconds) is rewritten to that;
/// anything else is passed through for the validator to reject.
pub(crate) fn utc_timestamp(created: &str) -> String {
    let b = created.as_bytes();
    let shape_ok = b.len() >= 20
        && b[..19].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T' || *c == b't',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return created.to_string();
    }
    let mut rest = &created[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    if matches!(rest, "Z" | "z" | "+00:00" | "-00:00") {
        format!("{}T{}Z", &created[..10], &created[11..19])
    } else {
        created.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::tests::sp;

    #[test]
    fn outputs_leave_the_version() {
        let nvo = |n: &str| {
            let p = sp(n);
            let (a, b, c) = name_version_output(&p);
            (a.to_string(), b.map(String::from), c.map(String::from))
        };
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            nvo("openssl-3.0.15-bin"),
            ("openssl".into(), s("3.0.15"), s("bin"))
        );
        assert_eq!(
            nvo("glibc-2.39-52-lib"),
            ("glibc".into(), s("2.39-52"), s("lib"))
        );
        assert_eq!(nvo("glibc-2.39-52"), ("glibc".into(), s("2.39-52"), None));
        assert_eq!(nvo("glibc-host"), ("glibc-host".into(), None, None));
        assert_eq!(nvo("foo-bin"), ("foo-bin".into(), None, None));
        assert_eq!(
            nvo("python3.11-requests-2.31.0"),
            ("python3.11-requests".into(), s("2.31.0"), None)
        );
    }

    #[test]
    fn timestamps_normalize_to_spdx_form() {
        for t in [
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05+00:00",
            "2024-01-02T03:04:05.250Z",
            "2024-01-02t03:04:05z",
        ] {
            assert_eq!(utc_timestamp(t), "2024-01-02T03:04:05Z", "{t}");
        }
        assert_eq!(
            utc_timestamp("2024-01-02T03:04:05+02:00"),
            "2024-01-02T03:04:05+02:00"
        );
        assert_eq!(utc_timestamp("yesterday"), "yesterday");
    }
}

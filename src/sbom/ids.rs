//! Identifiers the SBOMs carry: package URLs, CPE 2.3 names, SPDX element
//! ids, and the name-based UUIDs that make serial numbers reproducible.

use uuid::Uuid;

/// Percent-encodes everything outside RFC 3986's unreserved set (and `keep`),
/// uppercase hex, as the purl spec asks for names, versions and qualifiers.
/// The spec leaves `:` plain in versions and qualifier values, and `/` in
/// qualifier values; packageurl-python's canonical form does the same.
pub(crate) fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:nix/<name>@<version>?output=<output>&store_path_hash=<hash>`.
///
/// `nix` is not yet a registered purl type (package-url/purl-spec#877 proposes
/// it, with an `output` qualifier). Name and version alone would make two
/// builds of one package identical, so the store path hash is a qualifier:
/// scanners that match on name@version still can, and each path stays unique.
pub(crate) fn nix_purl(
    name: &str,
    version: Option<&str>,
    output: Option<&str>,
    hash_part: &str,
) -> String {
    let mut purl = format!("pkg:nix/{}", percent_encode(name, b""));
    if let Some(v) = version {
        purl.push('@');
        purl.push_str(&percent_encode(v, b":"));
    }
    // Qualifiers in key order, as the purl canonical form requires.
    let mut sep = '?';
    if let Some(o) = output {
        purl.push_str(&format!("{sep}output={}", percent_encode(o, b":/")));
        sep = '&';
    }
    purl.push_str(&format!("{sep}store_path_hash={hash_part}"));
    purl
}

/// `pkg:deb/debian/<package>@<version>?arch=<arch>&distro=<distro>`, the
/// purl spec's `deb` type (no `distro` when it is unknown). `+` in a Debian
/// version is percent-encoded (the spec and packageurl-python's canonical
/// form both do), `:` of an epoch is not.
pub(crate) fn deb_purl(package: &str, version: &str, arch: &str, distro: Option<&str>) -> String {
    let mut purl = format!(
        "pkg:deb/debian/{}@{}?arch={}",
        percent_encode(package, b""),
        percent_encode(version, b":"),
        percent_encode(arch, b":/"),
    );
    if let Some(d) = distro {
        purl.push_str(&format!("&distro={}", percent_encode(d, b":/")));
    }
    purl
}

/// `pkg:oci/<name>@<digest>?repository_url=<repo>&tag=<tag>` for the image,
/// per the purl spec's `oci` type: the name is the last path segment of the
/// repository, lowercased; the digest is the version.
pub(crate) fn oci_purl(
    image_name: &str,
    reference: Option<&str>,
    digest: &str,
    tag: &str,
) -> String {
    let (repository, ref_tag) = match reference {
        Some(r) => split_reference(r),
        None => (image_name, None),
    };
    let name = repository
        .rsplit('/')
        .next()
        .unwrap_or(repository)
        .to_ascii_lowercase();
    let mut purl = format!(
        "pkg:oci/{}@{}",
        percent_encode(&name, b""),
        percent_encode(digest, b":")
    );
    let mut sep = '?';
    if reference.is_some() {
        purl.push_str(&format!(
            "{sep}repository_url={}",
            percent_encode(repository, b":/")
        ));
        sep = '&';
    }
    let tag = ref_tag.unwrap_or(tag);
    if !tag.is_empty() {
        purl.push_str(&format!("{sep}tag={}", percent_encode(tag, b":/")));
    }
    purl
}

/// Splits `registry:5000/org/app:tag@sha256:…` into the repository and tag.
fn split_reference(r: &str) -> (&str, Option<&str>) {
    let r = r.split_once('@').map_or(r, |(name, _)| name);
    // A colon before the last slash is a registry port, not a tag.
    let last_segment = r.rfind('/').map_or(0, |i| i + 1);
    match r[last_segment..].rfind(':') {
        Some(i) => (&r[..last_segment + i], Some(&r[last_segment + i + 1..])),
        None => (r, None),
    }
}

/// `cpe:2.3:a:<vendor>:<product>:<version>:*:*:*:*:*:*:*` from `vendor:product`.
///
/// `None` without a version: a `*` version would match every release and
/// flood scanners with false positives. Also `None` when `vendor_product` is
/// malformed or holds characters a CPE cannot carry.
pub(crate) fn cpe23(vendor_product: &str, version: Option<&str>) -> Option<String> {
    let (vendor, product) = vendor_product.split_once(':')?;
    Some(format!(
        "cpe:2.3:a:{}:{}:{}:*:*:*:*:*:*:*",
        cpe_escape(vendor)?,
        cpe_escape(product)?,
        cpe_escape(version?)?
    ))
}

/// CPE 2.3 formatted-string quoting: letters, digits, `-`, `.` and `_` stand
/// as they are; other printable ASCII is backslash-escaped (so `+` in a
/// version and a literal `*` or `?` do not read as wildcards).
fn cpe_escape(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "-._".contains(c) {
            out.push(c);
        } else if c.is_ascii_graphic() {
            out.push('\\');
            out.push(c);
        } else {
            return None;
        }
    }
    Some(out)
}

/// `SPDXRef-nix-<hash>-<name>`: the hash makes it unique (Nix names a path by
/// it), the name makes it readable. SPDX ids allow only letters, digits, `.`
/// and `-`, so other name characters (`+`, `_`, `?`, `=`) become `-`.
pub(crate) fn spdx_id_for_path(hash_part: &str, name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-nix-{hash_part}-{name}")
}

/// A UUIDv5 (name-based, SHA-1, RFC 4122) under the URL namespace, so the
/// same image digest always gives the same CycloneDX serial number or SPDX
/// namespace, and the two kinds never share one.
pub(crate) fn document_uuid(kind: &str, manifest_digest: &str) -> Uuid {
    let name = format!("https://github.com/armorred/armorred/sbom/{kind}/{manifest_digest}");
    Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0";

    #[test]
    fn nix_purls_encode_and_qualify() {
        assert_eq!(
            nix_purl("nginx", Some("1.22.1"), None, HASH),
            format!("pkg:nix/nginx@1.22.1?store_path_hash={HASH}")
        );
        assert_eq!(
            nix_purl("gtk+3", Some("3.24.41+git=1?"), Some("dev"), HASH),
            format!("pkg:nix/gtk%2B3@3.24.41%2Bgit%3D1%3F?output=dev&store_path_hash={HASH}")
        );
        assert_eq!(
            nix_purl("nginx.conf", None, None, HASH),
            format!("pkg:nix/nginx.conf?store_path_hash={HASH}")
        );
    }

    #[test]
    fn deb_purls_encode_the_plus() {
        assert_eq!(
            deb_purl("libc6", "2.36-9+deb12u13", "amd64", Some("debian-12")),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u13?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            deb_purl("libcrypt1", "1:4.4.33-2", "amd64", None),
            "pkg:deb/debian/libcrypt1@1:4.4.33-2?arch=amd64"
        );
    }

    #[test]
    fn oci_purls() {
        let d = "sha256:244fd47e07d10";
        assert_eq!(
            oci_purl("nginx", None, d, "1.22"),
            "pkg:oci/nginx@sha256:244fd47e07d10?tag=1.22"
        );
        assert_eq!(
            oci_purl(
                "x",
                Some("localhost:5000/Org/App:v1@sha256:abc"),
                d,
                "ignored"
            ),
            "pkg:oci/app@sha256:244fd47e07d10?repository_url=localhost:5000/Org/App&tag=v1"
        );
        assert_eq!(
            oci_purl("x", Some("ghcr.io/org/app"), d, "2"),
            "pkg:oci/app@sha256:244fd47e07d10?repository_url=ghcr.io/org/app&tag=2"
        );
    }

    #[test]
    fn cpes_escape_and_need_a_version() {
        assert_eq!(
            cpe23("f5:nginx", Some("1.22.1")).as_deref(),
            Some("cpe:2.3:a:f5:nginx:1.22.1:*:*:*:*:*:*:*")
        );
        assert_eq!(
            cpe23("gnome:gtk+", Some("3.24+git")).as_deref(),
            Some(r"cpe:2.3:a:gnome:gtk\+:3.24\+git:*:*:*:*:*:*:*")
        );
        assert_eq!(cpe23("f5:nginx", None), None);
        assert_eq!(cpe23("nginx", Some("1")), None);
        assert_eq!(cpe23(":nginx", Some("1")), None);
        assert_eq!(cpe23("f 5:nginx", Some("1")), None);
    }

    #[test]
    fn spdx_ids_use_only_allowed_characters() {
        let id = spdx_id_for_path(HASH, "gtk+3_x?=1.0-2");
        assert_eq!(id, format!("SPDXRef-nix-{HASH}-gtk-3-x--1.0-2"));
        assert!(id["SPDXRef-".len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'));
    }

    #[test]
    fn document_uuids_are_v5_and_stable() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let u = document_uuid("cyclonedx", &digest);
        assert_eq!(u.get_version_num(), 5);
        assert_eq!(u, document_uuid("cyclonedx", &digest));
        assert_ne!(u, document_uuid("spdx", &digest));
        // python3 -c 'import uuid; print(uuid.uuid5(uuid.NAMESPACE_URL,
        //   "https://github.com/armorred/armorred/sbom/cyclonedx/sha256:" + "ab"*32))'
        assert_eq!(u.to_string(), "38d60f3a-e3c3-5e2f-9f87-5b317c299594");
    }
}

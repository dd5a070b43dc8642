//! What both SBOM formats say about each store path and about the image,
//! derived once so the two documents cannot disagree.

use crate::closure::PathInfo;
use crate::provenance::{DebianOrigin, DebianPatches};
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
    /// The identifier scanners match on: the Debian binary package's purl
    /// for a path copied from one, else [`Package::nix_purl`].
    pub purl: String,
    /// `pkg:nix/…`: the store path itself.
    pub nix_purl: String,
    pub cpe: Option<String>,
    /// Why `version` or `cpe` is missing, one reason each; empty when both
    /// are there. Every SBOM entry without one says why.
    pub gaps: Vec<Gap>,
    /// The Debian binary package this path's files were copied from.
    pub origin: Option<&'a DebianOrigin>,
    /// The Debian patches applied on top of the upstream source.
    pub patches: Option<&'a DebianPatches>,
    pub sha256: Option<String>,
    pub licenses: Vec<License>,
    /// One of the closure roots: what the image was asked to contain.
    pub is_root: bool,
}

/// A field a package lacks, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gap {
    /// `version` or `cpe`.
    pub field: &'static str,
    pub reason: String,
}

impl Gap {
    /// The property / annotation name that carries the reason.
    pub(crate) fn key(&self) -> String {
        format!("armorred:no_{}_reason", self.field)
    }
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
            let (name, store_version, output) = name_version_output(path);
            let prov = input.provenance.get(path);
            let origin = prov.and_then(|p| p.origin.as_ref());
            let patches = prov.and_then(|p| p.patches.as_ref());
            // The store name is what scanners read; the recorded upstream
            // version only fills in when the name has none.
            let version = store_version
                .or(origin.map(|o| o.version.as_str()))
                .or(patches.map(|p| p.upstream_version.as_str()));
            // Most specific key first: the full store name, then name-version, then pname.
            let name_version = version.map(|v| format!("{name}-{v}"));
            let license_ids = [Some(path.name()), name_version.as_deref(), Some(name)]
                .into_iter()
                .flatten()
                .find_map(|k| input.licenses.get(k));
            let vendor_product = input.cpes.get(name);
            let cpe = vendor_product
                .and_then(|vp| ids::cpe23(vp, version))
                .or_else(|| origin.and_then(|o| o.cpe.clone()));
            let mut gaps = Vec::new();
            if version.is_none() {
                gaps.push(Gap {
                    field: "version",
                    reason: format!(
                        "the store path name `{}` carries no version and the package set recorded none",
                        path.name()
                    ),
                });
            }
            if cpe.is_none() {
                let reason = match (vendor_product, version) {
                    (None, _) => format!(
                        "no CPE vendor:product is known for `{name}` (nix/offline/metadata.json)"
                    ),
                    (Some(_), None) => {
                        "a CPE without a version would match every release".to_string()
                    }
                    (Some(vp), Some(v)) => {
                        format!("`{vp}` and version `{v}` do not form a valid CPE 2.3 name")
                    }
                };
                gaps.push(Gap {
                    field: "cpe",
                    reason,
                });
            }
            let nix_purl = ids::nix_purl(name, version, output, path.hash_part());
            Package {
                path,
                info,
                name,
                version,
                output,
                purl: origin.map_or_else(
                    || nix_purl.clone(),
                    |o| {
                        let m = o.main_package();
                        ids::deb_purl(&m.package, &m.version, &m.architecture, o.distro.as_deref())
                    },
                ),
                nix_purl,
                cpe,
                gaps,
                origin,
                patches,
                sha256: nar_hash::sha256_hex(&info.nar_hash),
                licenses: license_ids.map(|l| license::resolve(l)).unwrap_or_default(),
                is_root: closure.roots.contains(path),
            }
        })
        .collect()
}

/// `CVE-…` → its NVD page, the source CycloneDX `resolves` and the VEX name.
pub(crate) fn nvd_url(cve: &str) -> String {
    format!("https://nvd.nist.gov/vuln/detail/{cve}")
}

/// One line on the Debian source a package was built from.
pub(crate) fn debian_source_line(p: &DebianPatches) -> String {
    let mut s = format!(
        "Debian source package {} {} ({}): {} with {} applied from {} ({} Debian security fix(es))",
        p.source,
        p.debian_version,
        p.suite,
        p.orig_tarball.file,
        plural(p.patches.len(), "patch", "patches"),
        p.debian_tarball.file,
        p.security_fixes(),
    );
    if !p.newer_unfetchable.is_empty() {
        s.push_str(&format!(
            "; newer revisions indexed by Debian but not fetchable at build time: {}",
            p.newer_unfetchable.join(", ")
        ));
    }
    s
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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

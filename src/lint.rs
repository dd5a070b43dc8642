//! `armorred lint`: the image-level checks of the CIS Docker Benchmark,
//! section 4, each reported as pass, fail or n/a with its number.
//!
//! - 4.1 a non-root user;
//! - 4.6 a HEALTHCHECK when the recipe gives one (OCI configs have no
//!   healthcheck field, so armorred records it as the manifest annotation
//!   `org.armorred.healthcheck`);
//! - 4.8 no setuid/setgid files;
//! - 4.10 no secrets: private keys, `.env` files, tokens and known credential
//!   patterns, in any layer (a file deleted by a later layer is still shipped);
//! - 4.11 every input verified by hash: each component of the attached SBOM
//!   carries its NAR hash, and the SBOM covers every store path in the image.

use crate::oci::media_types::*;
use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::analyze::ImageAnalysis;
use crate::attach::{read_sbom_in, SbomFormat};
use crate::oci::layout::{Layout, LoadedImage};
use crate::oci::secrets::SecretHit;
use crate::recipe::SecretAllowance;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    NotApplicable,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub status: Status,
    pub details: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    pub image: String,
    pub checks: Vec<Check>,
    pub passed: bool,
}

/// What the recipe says that lint needs.
#[derive(Debug, Clone, Default)]
pub struct LintPolicy {
    /// The recipe declares a healthcheck, so the image must carry it.
    pub healthcheck_expected: bool,
    /// Paths allowed to match a secret pattern, each with a reason.
    pub allowed_secrets: Vec<SecretAllowance>,
}

fn allowed<'a>(hit: &SecretHit, allow: &'a [SecretAllowance]) -> Option<&'a SecretAllowance> {
    allow
        .iter()
        .find(|a| glob_match(a.path.as_bytes(), hit.path.as_bytes()))
}

/// `*` matches within one path segment, `**` across segments.
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    match pat {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob_match(rest, &s[i..])),
        [b'*', rest @ ..] => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != b'/')
            .any(|i| glob_match(rest, &s[i..])),
        [c, rest @ ..] => s.first() == Some(c) && glob_match(rest, &s[1..]),
    }
}

/// Runs the checks on an image already loaded and analyzed; `secrets` are
/// the secret-pattern hits of its layers ([`crate::oci::secrets`]).
pub fn lint_image(
    layout: &Layout,
    img: &LoadedImage,
    analysis: &ImageAnalysis,
    secrets: &[SecretHit],
    policy: &LintPolicy,
) -> Result<LintReport> {
    let mut checks = Vec::new();

    let user = img
        .config
        .pointer("/config/User")
        .and_then(|u| u.as_str())
        .unwrap_or("");
    let name = user.split(':').next().unwrap_or("");
    let root = name.is_empty() || name == "root" || name == "0";
    checks.push(Check {
        id: "4.1",
        title: "Create a user for the container (non-root)",
        status: if root { Status::Fail } else { Status::Pass },
        details: vec![if user.is_empty() {
            "no User: runs as root".into()
        } else {
            format!("User={user}")
        }],
    });

    let hc = img.manifest.annotations.get(ANNOTATION_HEALTHCHECK);
    checks.push(Check {
        id: "4.6",
        title: "Add HEALTHCHECK instruction to the container image",
        status: match (policy.healthcheck_expected, hc.is_some()) {
            (false, false) => Status::NotApplicable,
            (_, true) => Status::Pass,
            (true, false) => Status::Fail,
        },
        details: match hc {
            Some(h) => vec![format!("{ANNOTATION_HEALTHCHECK}={h}")],
            None if policy.healthcheck_expected => {
                vec!["the recipe declares a healthcheck but the image carries none".into()]
            }
            None => vec!["the recipe declares no healthcheck".into()],
        },
    });

    checks.push(Check {
        id: "4.8",
        title: "Remove setuid and setgid permissions",
        status: if analysis.suid_sgid.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        details: analysis
            .suid_sgid
            .iter()
            .map(|f| format!("{} {}", f.mode, f.path))
            .collect(),
    });

    let mut details = Vec::new();
    let mut failed = false;
    for h in secrets {
        match allowed(h, &policy.allowed_secrets) {
            Some(a) => details.push(format!("{} ({}) allowed: {}", h.path, h.kind, a.reason)),
            None => {
                failed = true;
                details.push(format!("{}: {} (layer {})", h.path, h.kind, h.layer));
            }
        }
    }
    checks.push(Check {
        id: "4.10",
        title: "Do not store secrets in the image",
        status: if failed { Status::Fail } else { Status::Pass },
        details,
    });

    checks.push(inputs_verified(layout, img, analysis));

    let passed = checks.iter().all(|c| c.status != Status::Fail);
    Ok(LintReport {
        image: img.descriptor.digest.to_string(),
        checks,
        passed,
    })
}

/// 4.11: the attached CycloneDX SBOM lists every store path of the image
/// with its SHA-256 NAR hash.
fn inputs_verified(layout: &Layout, img: &LoadedImage, analysis: &ImageAnalysis) -> Check {
    let mut c = Check {
        id: "4.11",
        title: "Install verified packages only (every input verified by hash)",
        status: Status::Fail,
        details: Vec::new(),
    };
    let sbom = match read_sbom_in(
        layout,
        Some(img.descriptor.digest.as_str()),
        SbomFormat::Cyclonedx,
    ) {
        Ok(b) => b,
        Err(e) => {
            c.details
                .push(format!("no hash record of the image's inputs: {e:#}"));
            return c;
        }
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&sbom) else {
        c.details
            .push("the attached CycloneDX SBOM is not JSON".into());
        return c;
    };
    let components = v["components"].as_array().cloned().unwrap_or_default();
    let hashed: BTreeSet<String> = components
        .iter()
        .filter(|comp| {
            comp["hashes"].as_array().is_some_and(|h| {
                h.iter().any(|x| {
                    x["alg"] == "SHA-256" && x["content"].as_str().is_some_and(|s| s.len() == 64)
                })
            })
        })
        .filter_map(|comp| comp["bom-ref"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<&String> = analysis
        .components
        .iter()
        .filter(|p| !hashed.contains(*p))
        .collect();
    if missing.is_empty() && !analysis.components.is_empty() {
        c.status = Status::Pass;
        c.details.push(format!(
            "{} store paths, each with its NAR sha256",
            hashed.len()
        ));
    } else {
        c.details
            .extend(missing.iter().map(|p| format!("{p}: no verified hash")));
    }
    c
}

/// The checks `build` runs before it commits an image: a root user (4.1),
/// SUID/SGID files (4.8) or an unallowed secret (4.10) stop the build while
/// the previous image is still in place.
pub fn pre_commit(
    analysis: &ImageAnalysis,
    secrets: &[SecretHit],
    policy: &LintPolicy,
) -> Result<()> {
    let mut problems = Vec::new();
    if analysis.runs_as_root {
        problems.push(format!(
            "CIS 4.1: the image runs as root (User={})",
            analysis.user.as_deref().unwrap_or("")
        ));
    }
    for f in &analysis.suid_sgid {
        problems.push(format!("CIS 4.8: {} has mode {}", f.path, f.mode));
    }
    for h in secrets {
        if allowed(h, &policy.allowed_secrets).is_none() {
            problems.push(format!(
                "CIS 4.10: {}: {} (allow it in the recipe's [[lint.allow_secrets]] with a reason if it is meant to ship)",
                h.path, h.kind
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("lint failed:\n  {}", problems.join("\n  "))
    }
}

/// Loads, analyzes and lints the image of a layout.
pub fn lint_layout(dir: &Path, reference: Option<&str>, policy: &LintPolicy) -> Result<LintReport> {
    let (analysis, secrets) = crate::layout_analysis::read_layout(dir, reference)?;
    let layout = Layout::open(dir)?;
    let img = layout.load_image(reference)?;
    lint_image(&layout, &img, &analysis, &secrets, policy)
}

pub fn render(r: &LintReport) -> String {
    let mut s = format!("CIS Docker Benchmark section 4 for {}\n", r.image);
    for c in &r.checks {
        let st = match c.status {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::NotApplicable => "n/a",
        };
        s.push_str(&format!("  {:<5} {:<4} {}\n", c.id, st, c.title));
        for d in &c.details {
            s.push_str(&format!("               {d}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowance_globs() {
        assert!(glob_match(
            b"/nix/store/*-app-1.0/etc/.env",
            b"/nix/store/abc-app-1.0/etc/.env"
        ));
        assert!(!glob_match(
            b"/nix/store/*-app-1.0/etc/.env",
            b"/nix/store/a/b-app-1.0/etc/.env"
        ));
        assert!(glob_match(b"/srv/**", b"/srv/a/b/c"));
        assert!(!glob_match(b"/srv/**", b"/etc/x"));
    }
}

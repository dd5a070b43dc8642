//! The hardening gate `build` runs after assembly: the image's own package
//! must show, in its binaries, every property its tier promises. It also
//! decides which hardening names the image's label may claim: only those the
//! binaries prove.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::analyze::{
    self, check_promise, is_excused, ElfReport, ImageAnalysis, ImageInput, Promise, Property,
    PropertyStatus, Violation,
};
use crate::oci::decode::ViewError;
use crate::oci::facts::LayerFacts;
use crate::oci::rootfs_view::merge_facts;
use crate::oci::secrets::SecretHit;
use crate::oci::tarball::LayerBlob;
use crate::plan::BuildPlan;
use crate::recipe::HardeningException;

#[derive(Debug, thiserror::Error)]
#[error("hardening gate: the {tier} tier promises properties that {count} binar{ies} of {package} lack:\n{list}",
    ies = if *count == 1 { "y" } else { "ies" })]
pub struct GateError {
    pub tier: String,
    pub package: String,
    pub count: usize,
    pub list: String,
    pub violations: Vec<Violation>,
}

/// An image whose binaries need libraries it does not contain.
#[derive(Debug, thiserror::Error)]
#[error("closure check: {} librar{} needed by the image's binaries {} not in the image (the closure is incomplete; run outside a container such a binary would load the build host's copy, which no SBOM lists):\n{list}",
    unresolved.len(), if unresolved.len() == 1 { "y" } else { "ies" }, if unresolved.len() == 1 { "is" } else { "are" })]
pub struct ClosureError {
    pub unresolved: Vec<analyze::UnresolvedLibrary>,
    pub list: String,
}

/// Fails when any ELF file in the image needs a library that no directory
/// the loader searches holds, inside the image.
pub fn check_libraries(analysis: &ImageAnalysis) -> Result<(), ClosureError> {
    if analysis.unresolved_libraries.is_empty() {
        return Ok(());
    }
    let list = analysis
        .unresolved_libraries
        .iter()
        .map(|u| format!("  {}: needs {}", u.path, u.needed))
        .collect::<Vec<_>>()
        .join("\n");
    Err(ClosureError {
        unresolved: analysis.unresolved_libraries.clone(),
        list,
    })
}

/// What the tier promises for the package's binaries. CET is not promised:
/// Debian 12's C start-up objects carry no CET property note, so no binary
/// linked against them can show it (see nix/offline/README.md); the analysis
/// still reports it.
pub fn promise_for(plan: &BuildPlan) -> Promise {
    Promise {
        relro_full: true,
        bind_now: true,
        canary: true,
        nx: true,
        pie: true,
        fortify: true,
        cfi: plan.hardening.cfi,
        safestack: plan.hardening.safestack,
        cet: false,
    }
}

/// Analyzes the image the layers will make, from their facts (in layer
/// order, see [`crate::oci::facts::LayerFacts`]); also returns the
/// layers' secret-pattern hits for lint.
pub fn analyze_layers(
    facts: &[LayerFacts],
    layers: &[LayerBlob],
    plan: &BuildPlan,
) -> Result<(ImageAnalysis, Vec<SecretHit>), ViewError> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let view = merge_facts(facts, Some(&diff_ids))?;
    let analysis = analyze::analyze_image(&ImageInput {
        files: &view.files,
        elfs: &view.elfs,
        user: Some(plan.runtime.user.clone()),
        labels: plan.labels.clone(),
        compressed_size: layers.iter().map(|l| l.size).sum(),
        uncompressed_size: view.uncompressed_size,
        layer_count: layers.len(),
        writable: plan.runtime.writable.clone(),
    });
    Ok((analysis, view.secrets))
}

fn exception_tuples(exceptions: &[HardeningException]) -> Vec<(String, String, String)> {
    exceptions
        .iter()
        .map(|e| (e.path.clone(), e.property.clone(), e.reason.clone()))
        .collect()
}

/// `path:property` for each excused binary property, for the label
/// `org.armorred.hardening.exceptions`; the reasons stay in the recipe.
pub fn exceptions_label(exceptions: &[HardeningException]) -> Option<String> {
    (!exceptions.is_empty()).then(|| {
        exceptions
            .iter()
            .map(|e| format!("{}:{}", e.path, e.property))
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn package_reports(analysis: &ImageAnalysis, package: &str) -> Vec<ElfReport> {
    let prefix = format!("{package}/");
    analysis
        .binaries
        .iter()
        .filter(|r| r.path.starts_with(&prefix))
        .cloned()
        .collect()
}

/// Fails when a binary of `package` misses a promised property, unless the
/// recipe excuses it.
pub fn check(
    analysis: &ImageAnalysis,
    plan: &BuildPlan,
    package: &str,
    exceptions: &[HardeningException],
) -> Result<(), GateError> {
    let reports = package_reports(analysis, package);
    let ex = exception_tuples(exceptions);
    let mut violations = check_promise(&reports, package, &promise_for(plan), &ex);
    let prefix = format!("{package}/");
    for u in analysis
        .unreadable_elfs
        .iter()
        .filter(|u| u.path.starts_with(&prefix))
    {
        violations.push(Violation {
            path: u.path.clone(),
            property: Property::Pie,
            detail: format!("unreadable ELF: {}", u.error),
        });
    }
    if violations.is_empty() {
        return Ok(());
    }
    let list = violations
        .iter()
        .map(|v| {
            format!(
                "  {}: missing {} ({})",
                v.path,
                v.property.as_str(),
                v.detail
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Err(GateError {
        tier: plan.tier.to_string(),
        package: package.to_string(),
        count: violations
            .iter()
            .map(|v| &v.path)
            .collect::<BTreeSet<_>>()
            .len(),
        list,
        violations,
    })
}

/// Hardening names the package's binaries prove, for `org.armorred.hardening`.
/// A property counts when every binary has it, or it does not apply, or the
/// recipe excuses it for that binary (the excuses are published in
/// `org.armorred.hardening.exceptions`, so the claim stays checkable), and
/// at least one binary has it.
pub fn verified_names(
    analysis: &ImageAnalysis,
    package: &str,
    exceptions: &[HardeningException],
) -> Vec<&'static str> {
    let reports = package_reports(analysis, package);
    let ex = exception_tuples(exceptions);
    let prefix = format!("{package}/");
    let label = |p: Property| match p {
        Property::RelroFull => "relro",
        Property::BindNow => "bindnow",
        Property::Canary => "stackprotector",
        Property::Nx => "nx",
        Property::Pie => "pie",
        Property::Fortify => "fortify3",
        Property::Cfi => "cfi",
        Property::Safestack => "safestack",
        Property::Cet => "cet",
    };
    let mut out = Vec::new();
    for p in Property::ALL {
        let st: Vec<PropertyStatus> = reports
            .iter()
            .map(|r| match p.check(r) {
                PropertyStatus::Missing
                    if is_excused(&ex, p, &r.path, r.path.strip_prefix(&prefix).unwrap_or("")) =>
                {
                    PropertyStatus::NotApplicable
                }
                st => st,
            })
            .collect();
        if !st.is_empty()
            && st.iter().all(|s| *s != PropertyStatus::Missing)
            && st.contains(&PropertyStatus::Holds)
        {
            out.push(label(p));
        }
    }
    // CFI cannot be built without LTO, so proven CFI proves LTO too.
    if out.contains(&"cfi") {
        out.push("lto");
    }
    out
}

/// The verified names the image may claim in `org.armorred.hardening`. The
/// nixpkgs set's glibc does not enforce CET (it would need
/// `enableCETRuntimeDefault`, which rebuilds every package), so a marked
/// binary there is CET-ready, not CET-protected: `cet` is not claimed.
pub fn claimable_names(
    verified: Vec<&'static str>,
    package_set: crate::plan::PackageSet,
) -> Vec<&'static str> {
    match package_set {
        crate::plan::PackageSet::Nixpkgs => verified.into_iter().filter(|n| *n != "cet").collect(),
        crate::plan::PackageSet::Offline => verified,
    }
}

/// Summary for `build --json` and logs.
#[derive(Debug, Serialize)]
pub struct GateSummary {
    pub binaries_checked: usize,
    pub verified: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PackageSet;

    #[test]
    fn nixpkgs_set_does_not_claim_unenforced_cet() {
        let v = vec!["relro", "cet", "safestack"];
        assert_eq!(
            claimable_names(v.clone(), PackageSet::Nixpkgs),
            ["relro", "safestack"]
        );
        assert_eq!(claimable_names(v.clone(), PackageSet::Offline), v);
    }
}

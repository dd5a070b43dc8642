//! `report` and `compat`: an image against its upstream.

use anyhow::{Context, Result};

use crate::cli::{CompatArgs, ReportArgs};
use armorred::config::ProjectConfig;
use armorred::error::InputError;
use armorred::tier::Tier;

use super::*;

/// An upstream named on the command line, opened as a layout.
pub(super) fn open_upstream(name: &str, insecure: bool) -> Result<armorred::report::OpenedImage> {
    let source = armorred::report::ImageSource::parse(name)
        .map_err(|e| InputError::Invalid(format!("upstream `{name}`: {e:#}")))?;
    source.open(insecure)
}

pub(super) fn report_cmd(a: &ReportArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    check_image_name(&a.image)?;
    let out = project.out_dir(a.out.as_deref());
    // Before the upstream is fetched: a missing tier is the likelier mistake.
    for tier in Tier::ALL {
        let path = armorred::tier::layout_dir(&out, &a.image, tier);
        if !path.join("oci-layout").is_file() {
            return Err(InputError::MissingLayout {
                image: a.image.clone(),
                tier,
                path,
            }
            .into());
        }
    }
    let upstream = a
        .upstream
        .as_deref()
        .map(|u| open_upstream(u, a.insecure))
        .transpose()?;
    let report = armorred::report::collect(&a.image, &out, upstream.as_ref())?;
    let text = armorred::report::render(&report, a.format);
    match &a.output {
        None => Ok(CommandOutput::ok(text)),
        Some(path) => {
            armorred::base::fs::write_readable(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(CommandOutput::ok(format!("{}\n", path.display())))
        }
    }
}

pub(super) fn compat_cmd(a: &CompatArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    use armorred::compat::{self, RuntimeContract};
    let recipe = load_recipe(&project.recipes_dir(a.recipes.as_deref()), &a.image)?;
    let out = project.out_dir(a.out.as_deref());
    let name = a.upstream.as_deref().unwrap_or(&recipe.image.upstream);
    let upstream = open_upstream(name, a.insecure)?;
    let theirs = RuntimeContract::of_image(&upstream).context("reading the upstream image")?;
    let mut reports = Vec::new();
    for tier in a.tier.tiers() {
        let dir = armorred::tier::layout_dir(&out, &a.image, tier);
        let ours = RuntimeContract::of_image(&armorred::report::OpenedImage::layout(&dir, None))
            .with_context(|| format!("reading `{}` tier `{tier}`", a.image))?;
        let diffs = compat::compare(&theirs, &ours);
        let r = compat::judge(
            &a.image,
            tier,
            &upstream.source,
            diffs,
            &recipe.compat.allowed,
        );
        if r.errors > 0 {
            tracing::error!(
                "{} ({tier}): {} difference(s) from upstream the recipe does not declare: {}",
                a.image,
                r.errors,
                r.fields(&compat::Verdict::Error)
            );
        }
        if r.warnings > 0 {
            tracing::warn!(
                "{} ({tier}): {} difference(s) from upstream: {}",
                a.image,
                r.warnings,
                r.fields(&compat::Verdict::Warning)
            );
        }
        reports.push(r);
    }
    let failed = reports.iter().any(|r| !r.passed());
    let stdout = if a.json {
        json(&reports)
    } else {
        compat::render(&reports)
    };
    Ok(CommandOutput { stdout, failed })
}

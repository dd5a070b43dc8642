//! `push`: an image layout to a registry.

use anyhow::{Context, Result};

use crate::cli::PushArgs;
use armorred::config::ProjectConfig;
use armorred::error::InputError;
use armorred::oci::layout::Layout;
use armorred::pipeline::Reporter;
use armorred::registry;
use armorred::tier::Tier;

use super::*;

pub(super) fn push(
    a: &PushArgs,
    project: &ProjectConfig,
    reporter: &dyn Reporter,
) -> Result<CommandOutput> {
    let layout = Layout::open(&a.layout)?;
    let labels = layout.load_image(a.reference.as_deref())?.labels().clone();
    let title = labels.get("org.opencontainers.image.title");
    let target = match &a.target {
        Some(t) => t.clone(),
        None => {
            let title = title.cloned().ok_or_else(|| {
                InputError::Invalid(format!(
                    "{}: the image has no `org.opencontainers.image.title` label to name \
                         its repository; give the target: armorred push {} <registry>/<repo>:<tag>",
                    a.layout.display(),
                    a.layout.display()
                ))
            })?;
            default_repository(project, &title, "a target")?
        }
    };
    let dest = image_ref(&target)?;
    let options = registry_options(&a.registry);
    // An armorred image gets a progress line like `build --push`; the
    // line is keyed by image and tier, so another image pushes quietly.
    let line = title.zip(
        labels
            .get("org.armorred.tier")
            .and_then(|t| t.parse::<Tier>().ok()),
    );
    let r = match line {
        Some((image, tier)) => {
            let progress = PushLine::new(reporter, image, tier, &target);
            let pushed = registry::push_layout_reporting(
                &layout,
                a.reference.as_deref(),
                &dest,
                &options,
                &progress,
            );
            match &pushed {
                Ok(r) => reporter.finished(image, tier, Ok(r.manifest_digest.as_str())),
                Err(e) => reporter.finished(image, tier, Err(&e.to_string())),
            }
            pushed
        }
        None => registry::push_layout(&layout, a.reference.as_deref(), &dest, &options),
    }
    .with_context(|| format!("pushing {} to {target}", a.layout.display()))?;
    Ok(CommandOutput::ok(if a.json {
        json(&r)
    } else {
        format!("{}\n", r.reference)
    }))
}

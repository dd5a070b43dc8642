//! `build`, `list` and `plan`: recipes into images, and what a build would do.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{BuildArgs, ListArgs, NixArgs, PlanArgs};
use armorred::batch;
use armorred::cache::{CacheReport, LayerCache};
use armorred::config::ProjectConfig;
use armorred::nix::{self, NixInvocation};
use armorred::oci::facts::ScanLayers;
use armorred::oci::image::DirectLayers;
use armorred::oci::layout::Layout;
use armorred::pipeline::{self, BuildContext, BuildOutcome, Reporter};
use armorred::plan::{BuildPlan, PlanOptions};
use armorred::registry;
use armorred::tier::Tier;

use super::*;

#[derive(Serialize)]
pub(super) struct BuildSummary<'a> {
    images: &'a [BuildOutcome],
    failures: &'a [batch::Failure],
    /// Absent with `--no-cache`.
    layer_cache: Option<CacheReport>,
    /// With `--format oci-archive|docker-archive`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    archives: Vec<armorred::archive::WrittenArchive>,
    /// Listed platforms this machine cannot build, each with how to build it.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    skipped_platforms: &'a [armorred::platform::SkippedPlatform],
}

pub(super) fn build(
    a: &BuildArgs,
    project: &ProjectConfig,
    reporter: &dyn Reporter,
) -> Result<CommandOutput> {
    let recipes_dir = project.recipes_dir(a.recipe.recipes.as_deref());
    let recipes = match &a.image {
        Some(image) => vec![load_recipe(&recipes_dir, image)?],
        None => all_recipes(&recipes_dir)?,
    };
    let cache_dir = project.cache_dir(a.cache_dir.as_deref());
    let cache = LayerCache::for_build(cache_dir.as_deref(), a.no_cache);
    // Decrypt once, before hours of building, so a wrong passphrase fails fast.
    let sign_key = a.sign_key.as_deref().map(load_signing_key).transpose()?;
    let ctx = BuildContext {
        plan_options: plan_options(&a.recipe, &recipes_dir)?,
        nix: nix_env(&a.recipe, &recipes_dir, &a.nix)?,
        out_dir: project.out_dir(a.out.as_deref()),
        compression: compression(a)?,
        layer_jobs: a.layer_jobs,
        layers: match &cache {
            Some(c) => c,
            None => &DirectLayers,
        },
        facts: match &cache {
            Some(c) => c,
            None => &ScanLayers,
        },
        reporter,
        sign_key: sign_key.as_ref(),
    };
    // Likewise a bare --push with nowhere to push to.
    if let (Some(None), Some(r)) = (&a.push, recipes.first()) {
        default_repository(project, &r.image.name, "--push REPOSITORY")?;
    }
    let plan = batch::BatchPlan::new(
        &recipes,
        &batch::BatchRequest {
            tiers: a.tier.tiers(),
            platforms: &a.platforms,
            jobs: usize::from(a.jobs),
            keep_going: a.all,
        },
        &ctx,
    )?;
    // After each build (signed and attested in the pipeline when asked):
    // push and archive it as asked.
    let ship = |o: &BuildOutcome| {
        let mut archives = Vec::new();
        if let Some(repo) = &a.push {
            // With --all, --push names the namespace; each image is a repository in it.
            // A bare --push uses armorred.toml's `registry` as that namespace.
            let repository = match repo {
                Some(repo) if !a.all => repo.clone(),
                Some(repo) => format!("{repo}/{}", o.image),
                None => default_repository(project, &o.image, "--push REPOSITORY")?,
            };
            let target = image_ref(&format!("{repository}:{}", o.reference))?;
            let progress = PushLine::new(reporter, &o.image, o.tier, &repository);
            let layout = Layout::open(&o.layout)?;
            let report = registry::push_layout_reporting(
                &layout,
                Some(&o.reference),
                &target,
                &registry_options(&a.registry),
                &progress,
            )
            .with_context(|| format!("pushing {} to {target}", o.layout.display()))?;
            tracing::info!("pushed {}", report.reference);
        }
        if let Some(dest) = a.format.archive_path(&o.layout) {
            let tag = format!("{}:{}", project.repository(&o.image), o.reference);
            let mtime = ctx.plan_options.source_date_epoch.max(0) as u64;
            let w = armorred::archive::write_archive(
                &o.layout,
                Some(&o.reference),
                a.format,
                &dest,
                &tag,
                mtime,
            )
            .with_context(|| format!("writing {}", dest.display()))?;
            archives.extend(w);
        }
        Ok(archives)
    };
    let done = batch::execute(plan, &ctx, ship)?;
    let outcomes: Vec<BuildOutcome> = done.built.iter().map(|(o, _)| o.clone()).collect();
    let archives: Vec<_> = done.built.iter().flat_map(|(_, w)| w.clone()).collect();
    let failures = &done.failures;
    if let Some(c) = &cache {
        c.log_summary();
    }
    let stdout = if a.json {
        json(&BuildSummary {
            images: &outcomes,
            failures,
            layer_cache: cache.as_ref().map(LayerCache::stats),
            archives: archives.clone(),
            skipped_platforms: &done.skipped_platforms,
        })
    } else {
        let mut s = String::new();
        for o in &outcomes {
            s.push_str(&format!("{} {}\n", o.manifest_digest, o.layout.display()));
        }
        for w in &archives {
            s.push_str(&format!("{} {}\n", w.digest, w.path.display()));
        }
        s
    };
    if !failures.is_empty() || a.all {
        let table = done.summary_table();
        if failures.is_empty() {
            tracing::info!("{table}");
        } else {
            tracing::error!("{table}");
        }
    }
    Ok(CommandOutput {
        stdout,
        failed: !failures.is_empty(),
    })
}

#[derive(Serialize)]
pub(super) struct ListEntry {
    image: String,
    version: String,
    description: String,
    upstream: String,
    /// Nix systems the recipe lists (one child per platform in the index).
    platforms: Vec<String>,
    tiers: Vec<TierSummary>,
}

#[derive(Serialize)]
pub(super) struct TierSummary {
    tier: Tier,
    hardening: Vec<&'static str>,
    dropped: Vec<String>,
    shell: bool,
    coreutils: bool,
}

pub(super) fn list(a: &ListArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    let recipes = all_recipes(&project.recipes_dir(a.recipes.as_deref()))?;
    let entries: Vec<ListEntry> = recipes
        .iter()
        .map(|r| ListEntry {
            image: r.image.name.clone(),
            // What the recipe expects; the image's label takes Nix's.
            version: r.image.version.clone().unwrap_or_else(|| "-".into()),
            description: r.image.description.clone().unwrap_or_default(),
            upstream: r.image.upstream.clone(),
            platforms: r.platforms(),
            tiers: Tier::ALL
                .iter()
                .map(|&t| {
                    let p = BuildPlan::new(r, t, &PlanOptions::default());
                    TierSummary {
                        tier: t,
                        hardening: p.hardening_names,
                        dropped: p.drop,
                        shell: p.shell,
                        coreutils: p.coreutils,
                    }
                })
                .collect(),
        })
        .collect();
    if a.json {
        return Ok(CommandOutput::ok(json(&entries)));
    }
    let mut s = String::new();
    for e in &entries {
        s.push_str(&format!(
            "{} {}  {}  [{}]\n",
            e.image,
            e.version,
            e.description,
            e.platforms.join(", ")
        ));
        for t in &e.tiers {
            s.push_str(&format!(
                "  {:<9} {}{}{}\n",
                t.tier.to_string(),
                t.hardening.join(","),
                if t.dropped.is_empty() {
                    String::new()
                } else {
                    format!("  drops: {}", t.dropped.join(","))
                },
                if t.shell { "  shell" } else { "" }
            ));
        }
    }
    Ok(CommandOutput::ok(s))
}

#[derive(Serialize)]
pub(super) struct PlanReport {
    plan: BuildPlan,
    /// Nix systems the recipe lists (see `build --platform`).
    platforms: Vec<String>,
    nix_command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_meta: Option<nix::PackageMeta>,
    /// With `--layers`: the built package and its layers, in image order.
    #[serde(skip_serializing_if = "Option::is_none")]
    package: Option<armorred::store_path::StorePath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<Vec<armorred::layers::PlannedLayer>>,
}

/// `plan --layers` as text: one line a layer, a line a path under merged ones.
pub(super) fn render_layers(s: &mut String, layers: &[armorred::layers::PlannedLayer]) {
    use armorred::layers::PlannedKind;
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    s.push_str(&format!(
        "  layers:    {} (lowest first; popularity = closure paths depending on it)\n",
        layers.len()
    ));
    for l in layers {
        match l.kind {
            PlannedKind::StorePath => {
                let p = &l.paths[0];
                s.push_str(&format!(
                    "    {:>3}  {}  ({:.1} MiB, popularity {})\n",
                    l.index,
                    p.path,
                    mib(p.nar_size),
                    p.popularity
                ));
            }
            PlannedKind::Merged => {
                let total: u64 = l.paths.iter().map(|p| p.nar_size).sum();
                s.push_str(&format!(
                    "    {:>3}  merged: {} paths past the layer cap ({:.1} MiB)\n",
                    l.index,
                    l.paths.len(),
                    mib(total)
                ));
                for p in &l.paths {
                    s.push_str(&format!(
                        "           {}  ({:.1} MiB, popularity {})\n",
                        p.path,
                        mib(p.nar_size),
                        p.popularity
                    ));
                }
            }
            PlannedKind::Rootfs => s.push_str(&format!(
                "    {:>3}  rootfs extras (passwd, group, writable dirs, links)\n",
                l.index
            )),
        }
    }
}

pub(super) fn plan(a: &PlanArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    let recipes_dir = project.recipes_dir(a.recipe.recipes.as_deref());
    let recipe = load_recipe(&recipes_dir, &a.image)?;
    let opts = plan_options(&a.recipe, &recipes_dir)?;
    let env = nix_env(&a.recipe, &recipes_dir, &NixArgs::default())?;
    let mut reports = Vec::new();
    for tier in a.tier.tiers() {
        let mut plan = BuildPlan::new(&recipe, tier, &opts);
        if let Some(m) = a.recipe.max_layers {
            plan.max_layers = m;
        }
        let inv = NixInvocation::new(&plan, &env);
        let package_meta = if a.eval {
            let m = nix::eval_meta(&inv)
                .with_context(|| format!("evaluating `{}` tier `{tier}`", a.image))?;
            plan.apply_package_facts(&m.facts())?;
            Some(m)
        } else {
            None
        };
        let resolved = if a.layers {
            Some(
                // The layer plan of this machine's platform; another
                // platform's closure needs a build for it.
                pipeline::resolve(
                    &plan,
                    &env,
                    &pipeline::Targets::host().systems[0],
                    |l| tracing::debug!(target: "armorred::nix", "{l}"),
                )
                .with_context(|| format!("planning the layers of `{}` tier `{tier}`", a.image))?,
            )
        } else {
            None
        };
        reports.push(PlanReport {
            platforms: recipe.platforms(),
            nix_command: inv.build_command().display(),
            package: resolved.as_ref().map(|r| r.built.package.clone()),
            layers: resolved.as_ref().map(|r| r.layer_plan.describe(&r.closure)),
            plan,
            package_meta,
        });
    }
    if a.json {
        return Ok(CommandOutput::ok(json(&reports)));
    }
    let mut s = String::new();
    for r in &reports {
        let p = &r.plan;
        // Without --eval the version is only the recipe's expectation, if any.
        let version = if p.facts_from_nix || !p.version.is_empty() {
            p.version.as_str()
        } else {
            "(version: --eval asks Nix)"
        };
        s.push_str(&format!(
            "{} {} ({} tier, {} package set)\n",
            p.image, version, p.tier, p.package_set
        ));
        s.push_str(&format!("  hardening: {}\n", p.hardening_names.join(",")));
        s.push_str(&format!(
            "  drops:     {}\n",
            if p.drop.is_empty() {
                "-".into()
            } else {
                p.drop.join(",")
            }
        ));
        s.push_str(&format!(
            "  shell:     {}  coreutils: {}\n",
            p.shell, p.coreutils
        ));
        s.push_str(&format!("  user:      {}\n", p.runtime.user));
        s.push_str(&format!("  platforms: {}\n", r.platforms.join(", ")));
        s.push_str(&format!("  max layers: {}\n", p.max_layers));
        if let Some(m) = &r.package_meta {
            s.push_str(&format!(
                "  cflags:    {}\n  ldflags:   {}\n",
                m.cflags, m.ldflags
            ));
        }
        s.push_str(&format!("  nix:       {}\n", r.nix_command));
        match &r.layers {
            Some(layers) => render_layers(&mut s, layers),
            None => s.push_str(&format!(
                "  layers:    `armorred plan {} --tier {} --layers` (builds with Nix first if needed)\n",
                p.image, p.tier
            )),
        }
    }
    Ok(CommandOutput::ok(s))
}

//! Runs the stages for one image and tier: plan → Nix build → closure →
//! layer plan → rootfs extras → OCI layout. Each stage is its own module;
//! this one only sequences them and attaches context to errors. With
//! several platforms ([`Targets`]), the Nix-to-image stages run once per
//! system and an OCI image index names the platform images.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::analyze::ImageAnalysis;
use crate::closure::Closure;
use crate::gate;
use crate::layers::LayerPlan;
use crate::nix::{self, BuiltOutputs, NixEnv, NixInvocation};
use crate::oci::facts::{layer_facts, FactsSource, LayerFacts};
use crate::oci::image::{self, ImageInputs, LayerProgress, LayerSource, Provenance, WrittenImage};
use crate::oci::layout::{Descriptor, Layout};
use crate::oci::tarball::{Compression, LayerBlob};
use crate::plan::{BuildPlan, PackageSet, PlanOptions};
use crate::platform::System;
use crate::recipe::Recipe;
use crate::rootfs;
use crate::store_path::StorePath;
use crate::tier::{layout_dir, Tier};
use crate::upstream_tests;

/// Where progress goes. The CLI decides between bars and plain log lines;
/// the pipeline only reports events.
pub trait Reporter: Sync {
    fn stage(&self, image: &str, tier: Tier, message: &str);
    fn nix_log(&self, image: &str, tier: Tier, line: &str);
    fn layer_written(&self, image: &str, tier: Tier, done: usize, total: usize, blob: &LayerBlob);
    /// The image is done: `Ok` with its manifest digest, or `Err` with why.
    fn finished(&self, _image: &str, _tier: Tier, _outcome: Result<&str, &str>) {}
    /// A step within a stage (say, a blob pushed): a bar shows it; a log
    /// keeps it at debug level, so plain output stays one line per stage.
    fn detail(&self, image: &str, tier: Tier, message: &str) {
        tracing::debug!("{image} ({tier}): {message}");
    }
}

/// Reports through `tracing` only.
pub struct LogReporter;

impl Reporter for LogReporter {
    fn stage(&self, image: &str, tier: Tier, message: &str) {
        tracing::info!("{image} ({tier}): {message}");
    }
    fn nix_log(&self, image: &str, tier: Tier, line: &str) {
        tracing::debug!(target: "armorred::nix", "{image} ({tier}): {line}");
    }
    fn layer_written(&self, image: &str, tier: Tier, done: usize, total: usize, blob: &LayerBlob) {
        tracing::debug!(
            "{image} ({tier}): layer {done}/{total} {} ({} bytes)",
            blob.digest,
            blob.size
        );
    }
}

/// Everything a build needs besides the recipe and tier.
pub struct BuildContext<'a> {
    pub plan_options: PlanOptions,
    pub nix: NixEnv,
    pub out_dir: PathBuf,
    pub compression: Compression,
    pub layer_jobs: usize,
    pub layers: &'a dyn LayerSource,
    /// Where the gate and lint get the facts of layers that did not bring
    /// their own (written layers do): the layer cache, or a read of the blob.
    pub facts: &'a dyn FactsSource,
    pub reporter: &'a dyn Reporter,
    /// Signs and attests each image before it is committed.
    pub sign_key: Option<&'a crate::sign::keys::SigningKey>,
}

/// The result of building one tier.
#[derive(Debug, Clone, Serialize)]
pub struct BuildOutcome {
    pub image: String,
    pub tier: Tier,
    pub layout: PathBuf,
    pub reference: String,
    /// What index.json names: the image manifest, or the multi-platform
    /// image index (then `platforms` lists its children).
    pub manifest_digest: String,
    pub config_digest: String,
    pub package: StorePath,
    pub closure_paths: usize,
    pub layers: usize,
    pub compressed_size: u64,
    /// Layer blobs this build wrote (not taken from the cache), over all
    /// platforms.
    pub layers_written: usize,
    /// Layer blobs this build read back to derive what the gate and lint
    /// check: written layers bring their facts and cached ones have them
    /// in the cache, so only a missing or damaged facts file costs a read.
    pub layers_read: usize,
    /// Hardening the package's binaries prove (also the image label).
    pub verified_hardening: Vec<&'static str>,
    /// The children of a multi-platform index, in the recipe's order; the
    /// fields above describe the first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformOutcome>,
    /// Every platform's image with its closure, in the recipe's order.
    #[serde(skip)]
    pub images: Vec<BuiltImage>,
    #[serde(skip)]
    pub closure: Closure,
    #[serde(skip)]
    pub plan: BuildPlan,
    #[serde(skip)]
    pub written: WrittenImage,
}

/// One child of a multi-platform index.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformOutcome {
    /// The Nix system, e.g. `x86_64-linux`.
    pub system: System,
    /// The OCI platform, e.g. `linux/amd64`.
    pub platform: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub package: StorePath,
    pub layers: usize,
    pub compressed_size: u64,
}

/// One platform's image as written, with the closure it holds.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub system: System,
    pub written: WrittenImage,
    pub closure: Closure,
}

/// The Nix systems to build one tier for, and whether their images go into
/// an OCI image index (see [`crate::platform::PlatformSelection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    pub systems: Vec<System>,
    pub index: bool,
}

impl Targets {
    /// One image manifest for this machine's system.
    pub fn host() -> Targets {
        Targets {
            systems: vec![System::host().unwrap_or(System::X86_64_LINUX)],
            index: false,
        }
    }
}

/// One platform's Nix outputs, ready to become an image.
struct PlatformBuild {
    system: System,
    built: BuiltOutputs,
    closure: Closure,
    layer_plan: LayerPlan,
    rootfs: Vec<crate::oci::tarball::RootfsEntry>,
}

/// One platform's image, written but not yet named in index.json.
struct PlatformImage {
    written: WrittenImage,
    verified: Vec<&'static str>,
    /// The gate's analysis and secret hits, reused by the lint after commit.
    analysis: ImageAnalysis,
    secrets: Vec<crate::oci::secrets::SecretHit>,
    layers_written: usize,
    layers_read: usize,
}

pub fn build_one(
    ctx: &BuildContext<'_>,
    recipe: &Recipe,
    tier: Tier,
    targets: &Targets,
) -> Result<BuildOutcome> {
    let mut plan = BuildPlan::new(recipe, tier, &ctx.plan_options);
    let (img, r) = (plan.image.clone(), ctx.reporter);
    package_facts(&mut plan, &ctx.nix, &targets.systems[0])?;
    let mut parts = Vec::new();
    for system in &targets.systems {
        // Logs and errors name the system when it is not simply this machine's.
        let name_system = targets.index || System::host().as_ref() != Some(system);
        parts.push(nix_stage(ctx, &plan, system, name_system)?);
    }
    let out = layout_dir(&ctx.out_dir, &img, tier);
    r.stage(
        &img,
        tier,
        &format!(
            "writing {} layers to {}",
            parts
                .iter()
                .map(|p| p.layer_plan.layers.len())
                .sum::<usize>(),
            out.display()
        ),
    );
    let existed = out.join("index.json").exists();
    let layout =
        Layout::create(&out).with_context(|| format!("opening output layout {}", out.display()))?;
    // Everything that can fail happens while the layout is staged: the
    // image, its SBOMs and VEX, the gate and the lint, signatures and
    // attestations. Only then is index.json replaced, once.
    let result = layout
        .stage()
        .map_err(anyhow::Error::from)
        .and_then(|()| assemble(ctx, recipe, &plan, &parts, targets.index, &layout))
        .and_then(|(top, images)| {
            if let Some(key) = ctx.sign_key {
                sign_and_attest(ctx, &plan, &parts, &images, &top, &layout, key)?;
            }
            layout
                .commit_staged()
                .with_context(|| format!("updating {}", layout.index_path().display()))?;
            Ok((top, images))
        });
    if result.is_err() {
        // Leave the previous image exactly as it was: drop this attempt's
        // blobs, and the directory itself if it held no image before.
        let _ = layout.discard_staged();
        if !existed {
            drop(layout);
            let _ = std::fs::remove_dir_all(&out);
        }
    }
    let (top, images) = result?;
    r.stage(&img, tier, &format!("wrote {}", top.digest));
    let compressed =
        |w: &WrittenImage| w.layers.iter().map(|l| l.size).sum::<u64>() + w.config.size;
    let platforms = if targets.index {
        parts
            .iter()
            .zip(&images)
            .map(|(p, i)| PlatformOutcome {
                system: p.system.clone(),
                platform: crate::platform::display(&p.system.oci()),
                manifest_digest: i.written.manifest.digest.to_string(),
                config_digest: i.written.config.digest.to_string(),
                package: p.built.package.clone(),
                layers: i.written.layers.len(),
                compressed_size: compressed(&i.written),
            })
            .collect()
    } else {
        Vec::new()
    };
    let built = parts
        .iter()
        .zip(&images)
        .map(|(p, i)| BuiltImage {
            system: p.system.clone(),
            written: i.written.clone(),
            closure: p.closure.clone(),
        })
        .collect();
    let layers_written = images.iter().map(|i| i.layers_written).sum();
    let layers_read = images.iter().map(|i| i.layers_read).sum();
    let first = parts.into_iter().next().expect("at least one platform");
    let PlatformImage {
        written, verified, ..
    } = images.into_iter().next().expect("one per platform");
    Ok(BuildOutcome {
        image: img,
        tier,
        layout: out,
        reference: written.ref_name.clone(),
        manifest_digest: top.digest.to_string(),
        config_digest: written.config.digest.to_string(),
        package: first.built.package.clone(),
        closure_paths: first.closure.len(),
        layers: written.layers.len(),
        compressed_size: compressed(&written),
        layers_written,
        layers_read,
        verified_hardening: verified,
        platforms,
        images: built,
        closure: first.closure,
        plan,
        written,
    })
}

/// Nix build → closure → entrypoint check → layer plan and rootfs extras,
/// for one system.
fn nix_stage(
    ctx: &BuildContext<'_>,
    plan: &BuildPlan,
    system: &System,
    name_system: bool,
) -> Result<PlatformBuild> {
    let (img, tier, r) = (plan.image.as_str(), plan.tier, ctx.reporter);
    let what = if name_system {
        format!(" for {system}")
    } else {
        String::new()
    };
    r.stage(img, tier, &format!("building with Nix{what}"));
    let Resolved {
        built,
        closure,
        layer_plan,
    } = resolve(plan, &ctx.nix, system, |l| r.nix_log(img, tier, l))?;
    r.stage(img, tier, &format!("built {}", built.package));
    check_entrypoint(plan, &built, &closure)
        .with_context(|| format!("checking the entrypoint of `{img}` tier `{tier}`{what}"))?;
    // Runs on the built output, not on any Nix expression, so it holds for
    // both package sets alike.
    rootfs::check_links(plan, built.package.as_path(), |p| {
        closure.paths.keys().any(|c| p.starts_with(c.as_path()))
    })?;
    check_upstream_tests(ctx, plan, &closure).with_context(|| {
        format!("checking the upstream test suites of `{img}` tier `{tier}`{what}")
    })?;
    let applets = match (&built.shell, plan.coreutils) {
        (Some(shell), true) => list_dir(&shell.as_path().join("bin"))?,
        _ => Vec::new(),
    };
    let rootfs = rootfs::rootfs_entries(plan, &built, &applets)?;
    Ok(PlatformBuild {
        system: system.clone(),
        built,
        closure,
        layer_plan,
        rootfs,
    })
}

/// Takes the image's version, licences and description from the package
/// set's `meta` for what it builds (one evaluation, before any build, so a
/// recipe that expects another version fails fast), and checks the recipe.
pub fn package_facts(plan: &mut BuildPlan, env: &NixEnv, system: &System) -> Result<()> {
    let (img, tier) = (plan.image.clone(), plan.tier);
    let inv = NixInvocation::new(plan, env).for_system(system);
    let meta = nix::eval_meta(&inv)
        .with_context(|| format!("evaluating the package of `{img}` tier `{tier}` for {system}"))?;
    plan.apply_package_facts(&meta.facts())
        .with_context(|| format!("checking `{img}` tier `{tier}` against what Nix builds"))?;
    Ok(())
}

/// What Nix gives a plan: the built outputs, their runtime closure, and
/// the layers that closure makes.
pub struct Resolved {
    pub built: BuiltOutputs,
    pub closure: Closure,
    pub layer_plan: LayerPlan,
}

/// Nix build for `system` (a no-op when the outputs are in the store) →
/// closure → layer plan; shared by `build` and `plan --layers`.
pub fn resolve(
    plan: &BuildPlan,
    env: &NixEnv,
    system: &System,
    on_log: impl FnMut(&str),
) -> Result<Resolved> {
    let (img, tier) = (&plan.image, plan.tier);
    let inv = NixInvocation::new(plan, env).for_system(system);
    let built = nix::build(&inv, on_log).with_context(|| {
        format!(
            "building `{img}` tier `{tier}` for {system} with `{}`",
            inv.build_command().display()
        )
    })?;
    let closure = nix::closure(&built.roots(), &env.options)
        .with_context(|| format!("computing the runtime closure of {}", built.package))?;
    let layer_plan = LayerPlan::new(&closure, plan.max_layers)?;
    Ok(Resolved {
        built,
        closure,
        layer_plan,
    })
}

/// Each platform's image (layers → analysis and hardening gate → config
/// and manifest), then the image index if asked, SBOMs per platform image,
/// and the lint of each, all in the staged layout.
fn assemble(
    ctx: &BuildContext<'_>,
    recipe: &Recipe,
    plan: &BuildPlan,
    parts: &[PlatformBuild],
    index: bool,
    layout: &Layout,
) -> Result<(Descriptor, Vec<PlatformImage>)> {
    let (img, tier) = (plan.image.as_str(), plan.tier);
    let out = layout.root().display();
    let images = parts
        .iter()
        .map(|p| platform_image(ctx, recipe, plan, p, layout))
        .collect::<Result<Vec<_>>>()?;
    let children: Vec<Descriptor> = images.iter().map(|i| i.written.manifest.clone()).collect();
    let top = if index {
        crate::oci::index::write_image_index(layout, &children, &image::ref_name(plan))
            .with_context(|| format!("writing the image index to {out}"))?
    } else {
        children[0].clone()
    };
    layout
        .replace_image(&top)
        .with_context(|| format!("naming the image in {}", layout.index_path().display()))?;
    let meta = crate::attach::PackageMetadata::load(&ctx.nix.nix_dir)?;
    let policy = lint_policy(recipe);
    for (p, i) in parts.iter().zip(&images) {
        // Each platform's SBOM describes its own closure, so it attaches to
        // that platform's manifest (as buildx attaches per-platform attestations).
        crate::attach::attach_sboms(layout, &i.written, plan, &p.closure, &meta, &plan.licenses)
            .with_context(|| format!("attaching SBOMs to {out}"))?;
    }
    for (p, i) in parts.iter().zip(&images) {
        let img_ref = layout.load_image(Some(i.written.manifest.digest.as_str()))?;
        let report = crate::lint::lint_image(layout, &img_ref, &i.analysis, &i.secrets, &policy)?;
        for c in &report.checks {
            tracing::info!(
                "{img} ({tier}, {}): CIS {} {:?}: {}",
                p.system,
                c.id,
                c.status,
                c.title
            );
        }
        if !report.passed {
            anyhow::bail!(
                "lint failed; {out} keeps its previous image:\n{}",
                crate::lint::render(&report)
            );
        }
    }
    Ok((top, images))
}

/// Signs the image (and, for an index, each platform's manifest, as cosign
/// `--recursive` does) and attests each platform's manifest with its SLSA
/// provenance and SBOMs, in the staged layout.
fn sign_and_attest(
    ctx: &BuildContext<'_>,
    plan: &BuildPlan,
    parts: &[PlatformBuild],
    images: &[PlatformImage],
    top: &Descriptor,
    layout: &Layout,
    key: &crate::sign::keys::SigningKey,
) -> Result<()> {
    let out = layout.root().display();
    crate::sign::layout::sign_in(
        layout,
        Some(top.digest.as_str()),
        key,
        None,
        Default::default(),
    )
    .with_context(|| format!("signing {out}"))?;
    for (p, i) in parts.iter().zip(images) {
        crate::attach::attest_image_in(
            layout,
            &crate::attach::AttestInput {
                image: &i.written,
                plan,
                closure: &p.closure,
                platform: &crate::platform::display(&p.system.oci()),
                compression: ctx.compression,
            },
            key,
        )?;
    }
    Ok(())
}

/// Layers → analysis and hardening gate → config and manifest, for one
/// platform. Nothing is named in index.json yet.
fn platform_image(
    ctx: &BuildContext<'_>,
    recipe: &Recipe,
    plan: &BuildPlan,
    part: &PlatformBuild,
    layout: &Layout,
) -> Result<PlatformImage> {
    let (img, tier, r) = (plan.image.as_str(), plan.tier, ctx.reporter);
    let out = layout.root().display();
    let built = &part.built;
    let mut extra_labels = BTreeMap::new();
    extra_labels.insert(
        "org.armorred.nix.package".to_string(),
        built.package.to_string(),
    );
    let mut inputs = ImageInputs {
        plan,
        layer_plan: &part.layer_plan,
        rootfs: &part.rootfs,
        compression: ctx.compression,
        extra_labels,
        jobs: ctx.layer_jobs,
        platform: part.system.oci(),
    };
    let progress = ProgressAdapter {
        r,
        image: img,
        tier,
    };
    let layers = image::write_image_layers(layout, &inputs, ctx.layers, &progress)
        .with_context(|| format!("writing the layers to {out}"))?;
    let layers_written = layers
        .iter()
        .filter(|l| l.provenance == Provenance::Built)
        .count();
    let (layers, known): (Vec<LayerBlob>, Vec<Option<LayerFacts>>) =
        layers.into_iter().map(|l| (l.blob, l.facts)).unzip();
    r.stage(img, tier, "analyzing the image's binaries");
    let (facts, layers_read) =
        layer_facts(layout.blobs(), &layers, known, ctx.facts, ctx.layer_jobs)
            .with_context(|| format!("reading back the layers of `{img}` tier `{tier}`"))?;
    let (analysis, secrets) = gate::analyze_layers(&facts, &layers, plan)
        .with_context(|| format!("analyzing the layers of `{img}` tier `{tier}`"))?;
    gate::check(
        &analysis,
        plan,
        built.package.as_str(),
        &recipe.tier(tier).exceptions,
    )?;
    // The entrypoint compatibility program runs first in every container,
    // so it must keep the tier's promise as the package does, with no
    // exceptions.
    if let Some(programs) = &built.entrypoint {
        gate::check(&analysis, plan, programs.as_str(), &[])?;
    }
    gate::check_libraries(&analysis)?;
    crate::lint::pre_commit(&analysis, &secrets, &lint_policy(recipe))
        .with_context(|| format!("linting `{img}` tier `{tier}`"))?;
    let exceptions = &recipe.tier(tier).exceptions;
    let verified = gate::claimable_names(
        gate::verified_names(&analysis, built.package.as_str(), exceptions),
        plan.package_set,
    );
    inputs
        .extra_labels
        .insert("org.armorred.hardening".to_string(), verified.join(","));
    if let Some(excused) = gate::exceptions_label(exceptions) {
        inputs
            .extra_labels
            .insert("org.armorred.hardening.exceptions".to_string(), excused);
    }
    let written = image::finish_image(layout, &inputs, layers)
        .with_context(|| format!("writing the image to {out}"))?;
    Ok(PlatformImage {
        written,
        verified,
        analysis,
        secrets,
        layers_written,
        layers_read,
    })
}

pub fn lint_policy(recipe: &Recipe) -> crate::lint::LintPolicy {
    crate::lint::LintPolicy {
        healthcheck_expected: recipe.runtime.healthcheck.is_some(),
        allowed_secrets: recipe.lint.allow_secrets.clone(),
    }
}

struct ProgressAdapter<'a> {
    r: &'a dyn Reporter,
    image: &'a str,
    tier: Tier,
}

impl LayerProgress for ProgressAdapter<'_> {
    fn layer_done(&self, index: usize, total: usize, blob: &LayerBlob) {
        self.r
            .layer_written(self.image, self.tier, index, total, blob);
    }
}

fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
        .collect();
    v.sort();
    Ok(v)
}

/// The recipe's `[[tests.upstream]]` against the records the builds left in
/// the closure; each recorded suite's counts go to the reporter.
fn check_upstream_tests(ctx: &BuildContext<'_>, plan: &BuildPlan, closure: &Closure) -> Result<()> {
    let (img, tier, r) = (plan.image.as_str(), plan.tier, ctx.reporter);
    if plan.upstream_tests.required.is_empty() {
        return Ok(());
    }
    if plan.package_set != PackageSet::Offline {
        r.stage(
            img,
            tier,
            "upstream test records: not checked, the nixpkgs set runs its packages' own checks (doCheck) and leaves no records",
        );
        return Ok(());
    }
    let mode = ctx.nix.upstream_tests.unwrap_or(plan.upstream_tests.mode);
    let records = upstream_tests::read_records(closure)?;
    for line in upstream_tests::summary(&records) {
        r.stage(img, tier, &format!("upstream tests: {line}"));
    }
    upstream_tests::check(&records, &plan.upstream_tests.required, mode)?;
    Ok(())
}

/// The entrypoint must exist in the image: a recipe link into the package,
/// the tier's shell or coreutils, or a file inside a closure path.
pub fn check_entrypoint(plan: &BuildPlan, built: &BuiltOutputs, closure: &Closure) -> Result<()> {
    let Some(program) = plan.runtime.entrypoint.first() else {
        bail!("the entrypoint is empty");
    };
    let compat = plan
        .entrypoint_compat
        .as_ref()
        .filter(|ec| ec.is_named_by(program));
    let target: PathBuf = if let (Some(ec), Some(programs)) = (compat, &built.entrypoint) {
        programs.as_path().join(ec.binary())
    } else if let Some(t) = plan.runtime.links.get(program) {
        built.package.as_path().join(t)
    } else if program == "/bin/sh" && plan.shell {
        return Ok(());
    } else if let (Some(shell), true, Some(name)) =
        (&built.shell, plan.coreutils, program.strip_prefix("/bin/"))
    {
        shell.as_path().join("bin").join(name)
    } else {
        PathBuf::from(program)
    };
    let in_closure = closure
        .paths
        .keys()
        .any(|p| target.starts_with(p.as_path()));
    if !in_closure || !target.exists() {
        // A recipe mistake, so an input error (exit 2).
        return Err(crate::error::InputError::Invalid(format!(
            "entrypoint `{program}` is not in the closure (it resolves to `{}`); \
             add a `runtime.links` entry that points into the package, or fix `runtime.entrypoint`",
            target.display()
        ))
        .into());
    }
    Ok(())
}

//! The subcommands: each turns parsed arguments into library calls and
//! returns what belongs on stdout. Nothing here prints or exits; `main` does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cache::{CacheReport, LayerCache};
use crate::cli::{
    BuildArgs, Cli, Command, CompressionArg, FsckArgs, GenerateKeyPairArgs, InspectArgs, ListArgs,
    NixArgs, PlanArgs, PushArgs, RecipeArgs, RegistryArgs, SignArgs, VerifyArgs,
};
use crate::cli::{CompatArgs, ManArgs, ReportArgs};
use crate::config::ProjectConfig;
use crate::nix::{self, NixEnv, NixInvocation, NixOptions};
use crate::oci::image::DirectLayers;
use crate::oci::layout::Layout;
use crate::oci::rootfs_view::ScanLayers;
use crate::oci::tarball::Compression;
use crate::pipeline::{self, BuildContext, BuildOutcome, Reporter};
use crate::plan::{BuildPlan, PlanOptions};
use crate::recipe::{self, Recipe, RecipeLoadError};
use crate::registry;
use crate::sign::{self, keys};
use crate::tier::Tier;
use crate::{inspect, process};

/// What a command produced: text for stdout and whether it succeeded.
#[derive(Debug, Default)]
pub struct CommandOutput {
    pub stdout: String,
    /// A check or build failed (exit 1) although the command itself ran.
    pub failed: bool,
}

impl CommandOutput {
    fn ok(stdout: String) -> Self {
        CommandOutput {
            stdout,
            failed: false,
        }
    }
}

/// Input problems: exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("unknown image `{image}`: no recipe {}", path.display())]
    UnknownImage { image: String, path: PathBuf },
    #[error("recipes directory {} cannot be read", .0.display())]
    RecipesDir(PathBuf, #[source] std::io::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("no image `{image}` tier `{tier}`: {} is not an OCI image layout", path.display())]
    MissingLayout {
        image: String,
        tier: Tier,
        path: PathBuf,
    },
}

pub fn run(cli: &Cli, reporter: &dyn Reporter) -> Result<CommandOutput> {
    // Flags (and their env vars) override armorred.toml, which overrides built-in defaults.
    let project = ProjectConfig::load_from(Path::new("."))?;
    match &cli.command {
        Command::Build(a) => build(a, &project, reporter),
        Command::List(a) => list(a, &project),
        Command::Plan(a) => plan(a, &project),
        Command::Inspect(a) => inspect_cmd(a),
        Command::Fsck(a) => fsck(a),
        Command::Lint(a) => {
            let policy = match &a.recipe {
                Some(p) => pipeline::lint_policy(&Recipe::load(p)?),
                None => Default::default(),
            };
            let r = crate::lint::lint_layout(&a.layout, a.reference.as_deref(), &policy)?;
            let stdout = if a.json {
                json(&r)
            } else {
                crate::lint::render(&r)
            };
            Ok(CommandOutput {
                stdout,
                failed: !r.passed,
            })
        }
        Command::Sbom(a) => {
            let bytes = crate::attach::read_sbom(&a.layout, a.reference.as_deref(), a.format)?;
            match &a.output {
                None => Ok(CommandOutput::ok(
                    String::from_utf8_lossy(&bytes).into_owned(),
                )),
                Some(path) => {
                    crate::archive::write_file_atomic(path, &bytes)
                        .with_context(|| format!("writing {}", path.display()))?;
                    Ok(CommandOutput::ok(format!("{}\n", path.display())))
                }
            }
        }
        Command::Analyze(a) => {
            let r = crate::analysis::analyze_layout(&a.layout, a.reference.as_deref())?;
            Ok(CommandOutput::ok(if a.json {
                json(&r)
            } else {
                crate::analysis::render(&r)
            }))
        }
        Command::GenerateKeyPair(a) => generate_key_pair(a),
        Command::Sign(a) => sign(a, &project),
        Command::Verify(a) => verify(a, &project),
        Command::Report(a) => report_cmd(a, &project),
        Command::Compat(a) => compat_cmd(a, &project),
        Command::Completions(a) => Ok(CommandOutput::ok(crate::cli::completion_script(a.shell))),
        Command::Man(a) => man_cmd(a),
        Command::Push(a) => push(a, &project, reporter),
    }
}

fn json<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("reports serialize");
    s.push('\n');
    s
}

pub fn load_recipe(dir: &Path, image: &str) -> Result<Recipe> {
    if image.contains('/') || image.starts_with('.') || image.is_empty() {
        return Err(InputError::Invalid(format!("`{image}` is not an image name")).into());
    }
    let path = dir.join(format!("{image}.toml"));
    if !path.exists() {
        return Err(InputError::UnknownImage {
            image: image.into(),
            path,
        }
        .into());
    }
    Ok(Recipe::load(&path)?)
}

fn all_recipes(dir: &Path) -> Result<Vec<Recipe>> {
    let files =
        recipe::list_recipe_files(dir).map_err(|e| InputError::RecipesDir(dir.to_path_buf(), e))?;
    files
        .iter()
        .map(|f| Recipe::load(f).map_err(Into::into))
        .collect()
}

fn nix_options(a: &NixArgs) -> NixOptions {
    let NixArgs {
        builders,
        store,
        max_jobs,
        substituters,
        nix_option,
    } = a;
    NixOptions {
        builders: builders.clone(),
        store: store.clone(),
        max_jobs: max_jobs.clone(),
        substituters: substituters.clone(),
        extra: nix_option.clone(),
    }
}

/// Finds `nix/`: the flag or env, else beside the recipes, else the source tree.
pub fn resolve_nix_dir(explicit: Option<&Path>, recipes: &Path) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let beside = recipes.parent().unwrap_or(Path::new(".")).join("nix");
    if beside.join("build.nix").is_file() {
        return std::path::absolute(&beside).unwrap_or(beside);
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/nix"))
}

pub fn default_sources_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    cache.join("armorred").join("sources")
}

fn nix_env(r: &RecipeArgs, recipes: &Path, nix: &NixArgs) -> NixEnv {
    let sources = r.sources.clone().unwrap_or_else(default_sources_dir);
    NixEnv {
        nix_dir: resolve_nix_dir(r.nix_dir.as_deref(), recipes),
        source_dir: std::path::absolute(&sources).unwrap_or(sources),
        toolchain_id: nix::detect_toolchain_id(),
        options: nix_options(nix),
        upstream_tests: upstream_tests_override(),
    }
}

/// `ARMORRED_UPSTREAM_TESTS=full` runs every upstream suite whole for this
/// build, whatever the recipe says. An unknown value is ignored with a
/// warning rather than failing a build that did not ask for tests.
fn upstream_tests_override() -> Option<crate::upstream_tests::UpstreamTestMode> {
    let v = std::env::var("ARMORRED_UPSTREAM_TESTS").ok()?;
    match v.trim().parse() {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!("ARMORRED_UPSTREAM_TESTS: {e}; using the recipe's mode");
            None
        }
    }
}

/// `SOURCE_DATE_EPOCH` (default 1), validated.
pub fn source_date_epoch() -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<i64>().map_err(|_| {
            InputError::Invalid(format!(
                "SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"
            ))
            .into()
        }),
        _ => Ok(1),
    }
}

/// The git revision of the recipes, for `org.opencontainers.image.revision`.
fn recipes_revision(dir: &Path) -> Option<String> {
    process::Cmd::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stdout_string()
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() == 40)
}

fn plan_options(r: &RecipeArgs, recipes: &Path) -> Result<PlanOptions> {
    Ok(PlanOptions {
        package_set: r.package_set,
        source_date_epoch: source_date_epoch()?,
        max_layers: r.max_layers,
        revision: recipes_revision(recipes),
    })
}

fn compression(a: &BuildArgs) -> Result<Compression> {
    Ok(match a.compression {
        CompressionArg::Gzip => {
            let level = a.compression_level.unwrap_or(6);
            if !(0..=9).contains(&level) {
                return Err(InputError::Invalid(format!(
                    "--compression-level {level}: gzip takes 0-9"
                ))
                .into());
            }
            Compression::Gzip {
                level: level as u32,
            }
        }
        CompressionArg::Zstd => {
            let level = a.compression_level.unwrap_or(3);
            if !(1..=19).contains(&level) {
                return Err(InputError::Invalid(format!(
                    "--compression-level {level}: zstd takes 1-19"
                ))
                .into());
            }
            Compression::Zstd { level }
        }
        CompressionArg::None => Compression::None,
    })
}

/// A push's progress as the image's stage line: blobs handled, bytes sent.
struct PushLine<'a> {
    reporter: &'a dyn Reporter,
    image: &'a str,
    tier: Tier,
    repo: &'a str,
    blobs: std::sync::atomic::AtomicUsize,
    sent: std::sync::atomic::AtomicU64,
}

impl<'a> PushLine<'a> {
    fn new(reporter: &'a dyn Reporter, image: &'a str, tier: Tier, repo: &'a str) -> Self {
        reporter.stage(image, tier, &format!("pushing to {repo}"));
        PushLine {
            reporter,
            image,
            tier,
            repo,
            blobs: Default::default(),
            sent: Default::default(),
        }
    }
}

impl registry::PushProgress for PushLine<'_> {
    fn blob(&self, size: u64, uploaded: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let blobs = self.blobs.fetch_add(1, Relaxed) + 1;
        let sent = self
            .sent
            .fetch_add(if uploaded { size } else { 0 }, Relaxed)
            + if uploaded { size } else { 0 };
        self.reporter.stage(
            self.image,
            self.tier,
            &format!(
                "pushing to {}: {blobs} blob(s), {:.1} MiB sent",
                self.repo,
                sent as f64 / f64::from(1 << 20)
            ),
        );
    }
}

#[derive(Serialize)]
struct BuildSummary<'a> {
    images: &'a [BuildOutcome],
    failures: &'a [Failure],
    /// Absent with `--no-cache`.
    layer_cache: Option<CacheReport>,
    /// With `--format oci-archive|docker-archive`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    archives: Vec<crate::archive::WrittenArchive>,
    /// Listed platforms this machine cannot build, each with how to build it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped_platforms: Vec<crate::platform::SkippedPlatform>,
}

/// Which of `r`'s platforms to build here. Nix is asked what it can build
/// only when a platform other than this machine's is wanted.
fn platform_selection(
    r: &Recipe,
    wanted: &[String],
    ctx: &BuildContext<'_>,
) -> Result<crate::platform::PlatformSelection> {
    use crate::platform::{self, NixCapabilities, System};
    let listed = r.platforms();
    let chosen = platform::selected(&r.image.name, &listed, wanted).map_err(InputError::Invalid)?;
    let host = System::host().unwrap_or(System::X86_64_LINUX);
    let nix = if chosen.iter().all(|p| p == host.as_str()) {
        NixCapabilities::local(&host)
    } else {
        nix::capabilities(&ctx.nix.options).context("asking Nix which platforms it can build")?
    };
    let package_set = ctx.plan_options.package_set;
    Ok(
        platform::select(&r.image.name, &listed, wanted, &nix, package_set)
            .map_err(InputError::Invalid)?,
    )
}

#[derive(Serialize)]
struct Failure {
    image: String,
    tier: Tier,
    error: String,
}

fn build(a: &BuildArgs, project: &ProjectConfig, reporter: &dyn Reporter) -> Result<CommandOutput> {
    let recipes_dir = project.recipes_dir(a.recipe.recipes.as_deref());
    let recipes = match &a.image {
        Some(image) => vec![load_recipe(&recipes_dir, image)?],
        None => all_recipes(&recipes_dir)?,
    };
    let cache_dir = project.cache_dir(a.cache_dir.as_deref());
    let cache = LayerCache::for_build(cache_dir.as_deref(), a.no_cache);
    let ctx = BuildContext {
        plan_options: plan_options(&a.recipe, &recipes_dir)?,
        nix: nix_env(&a.recipe, &recipes_dir, &a.nix),
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
    };
    // Decrypt once, before hours of building, so a wrong passphrase fails fast.
    let sign_key = a.sign_key.as_deref().map(load_signing_key).transpose()?;
    // Likewise a bare --push with nowhere to push to.
    if let (Some(None), Some(r)) = (&a.push, recipes.first()) {
        default_repository(project, &r.image.name, "--push REPOSITORY")?;
    }
    let mut failures = Vec::new();
    let mut skipped_platforms = Vec::new();
    // The images to build: recipe × tier, each for the platforms this machine
    // can build.
    let mut images = Vec::new();
    for r in &recipes {
        match platform_selection(r, &a.platforms, &ctx) {
            Ok(s) => {
                for p in &s.skipped {
                    tracing::warn!("{p}");
                }
                skipped_platforms.extend(s.skipped);
                let targets = pipeline::Targets {
                    systems: s.build,
                    index: s.index,
                };
                for tier in a.tier.tiers() {
                    images.push((r, tier, targets.clone()));
                }
            }
            Err(e) if !a.all => return Err(e),
            Err(e) => {
                tracing::error!("{e:#}");
                for tier in a.tier.tiers() {
                    failures.push(Failure {
                        image: r.image.name.clone(),
                        tier,
                        error: format!("{e:#}"),
                    });
                }
            }
        }
    }
    // One image: build, then sign, push and archive it as asked.
    let build_and_ship = |r: &Recipe, tier: Tier, targets: &pipeline::Targets| {
        let o = pipeline::build_one(&ctx, r, tier, targets)?;
        let mut archives = Vec::new();
        if let Some(key) = &sign_key {
            sign::layout::sign_layout(&o.layout, Some(&o.reference), key, None, Default::default())
                .with_context(|| format!("signing {}", o.layout.display()))?;
            // Each platform's manifest, as its SBOMs: its own closure and provenance.
            for i in &o.images {
                let platform = crate::platform::display(&i.system.oci());
                crate::attach::attest_image(
                    &o.layout,
                    &crate::attach::AttestInput {
                        image: &i.written,
                        plan: &o.plan,
                        closure: &i.closure,
                        platform: &platform,
                        compression: ctx.compression,
                    },
                    key,
                )?;
            }
        }
        if let Some(repo) = &a.push {
            // With --all, --push names the namespace; each image is a repository in it.
            // A bare --push uses armorred.toml's `registry` as that namespace.
            let repository = match repo {
                Some(repo) if !a.all => repo.clone(),
                Some(repo) => format!("{repo}/{}", o.image),
                None => default_repository(project, &o.image, "--push REPOSITORY")?,
            };
            let target = image_ref(&format!("{repository}:{}", o.reference))?;
            let progress = PushLine::new(reporter, &o.image, tier, &repository);
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
            let w = crate::archive::write_archive(
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
        Ok::<_, anyhow::Error>((o, archives))
    };
    // `--jobs` images at once (each a Nix build, then its layers); with
    // --all a failure stops nothing, otherwise it stops what has not started.
    let results = crate::parallel::map_until(
        &images,
        usize::from(a.jobs),
        |(r, tier, targets)| {
            let shipped = build_and_ship(r, *tier, targets);
            let name = &r.image.name;
            match &shipped {
                Ok((o, _)) => reporter.finished(name, *tier, Ok(&o.manifest_digest)),
                Err(e) => reporter.finished(name, *tier, Err(&e.to_string())),
            }
            shipped
        },
        |res| !a.all && res.is_err(),
    );
    let mut outcomes = Vec::new();
    let mut archives = Vec::new();
    for ((r, tier, _), res) in images.iter().zip(results) {
        match res {
            Some(Ok((o, w))) => {
                outcomes.push(o);
                archives.extend(w);
            }
            // A single image's failure is the command's failure.
            Some(Err(e)) if !a.all => return Err(e),
            Some(Err(e)) => {
                tracing::error!("{} ({tier}) failed: {e:#}", r.image.name);
                failures.push(Failure {
                    image: r.image.name.clone(),
                    tier: *tier,
                    error: format!("{e:#}"),
                });
            }
            // Not started: an earlier image failed, and its error returned.
            None => {}
        }
    }
    if let Some(c) = &cache {
        c.log_summary();
    }
    let stdout = if a.json {
        json(&BuildSummary {
            images: &outcomes,
            failures: &failures,
            layer_cache: cache.as_ref().map(LayerCache::stats),
            archives,
            skipped_platforms,
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
        let mut table = String::from("build summary:\n");
        for o in &outcomes {
            table.push_str(&format!(
                "  ok      {:<20} {:<9} {}\n",
                o.image, o.tier, o.manifest_digest
            ));
        }
        for f in &failures {
            table.push_str(&format!(
                "  FAILED  {:<20} {:<9} {}\n",
                f.image,
                f.tier,
                f.error.lines().next().unwrap_or("")
            ));
        }
        table.push_str(&format!(
            "  {} built, {} failed\n",
            outcomes.len(),
            failures.len()
        ));
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
struct ListEntry {
    image: String,
    version: String,
    description: String,
    upstream: String,
    /// Nix systems the recipe lists (one child per platform in the index).
    platforms: Vec<String>,
    tiers: Vec<TierSummary>,
}

#[derive(Serialize)]
struct TierSummary {
    tier: Tier,
    hardening: Vec<&'static str>,
    dropped: Vec<String>,
    shell: bool,
    coreutils: bool,
}

fn list(a: &ListArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    let recipes = all_recipes(&project.recipes_dir(a.recipes.as_deref()))?;
    let entries: Vec<ListEntry> = recipes
        .iter()
        .map(|r| ListEntry {
            image: r.image.name.clone(),
            version: r.image.version.clone(),
            description: r.image.description.clone(),
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
struct PlanReport {
    plan: BuildPlan,
    /// Nix systems the recipe lists (see `build --platform`).
    platforms: Vec<String>,
    nix_command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_meta: Option<nix::PackageMeta>,
    /// With `--layers`: the built package and its layers, in image order.
    #[serde(skip_serializing_if = "Option::is_none")]
    package: Option<crate::store_path::StorePath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<Vec<crate::layers::PlannedLayer>>,
}

/// `plan --layers` as text: one line a layer, a line a path under merged ones.
fn render_layers(s: &mut String, layers: &[crate::layers::PlannedLayer]) {
    use crate::layers::PlannedKind;
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

fn plan(a: &PlanArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    let recipes_dir = project.recipes_dir(a.recipe.recipes.as_deref());
    let recipe = load_recipe(&recipes_dir, &a.image)?;
    let opts = plan_options(&a.recipe, &recipes_dir)?;
    let env = nix_env(&a.recipe, &recipes_dir, &NixArgs::default());
    let mut reports = Vec::new();
    for tier in a.tier.tiers() {
        let mut plan = BuildPlan::new(&recipe, tier, &opts);
        if let Some(m) = a.recipe.max_layers {
            plan.max_layers = m;
        }
        let inv = NixInvocation::new(&plan, &env);
        let package_meta = if a.eval {
            Some(
                nix::eval_meta(&inv)
                    .with_context(|| format!("evaluating `{}` tier `{tier}`", a.image))?,
            )
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
        s.push_str(&format!(
            "{} {} ({} tier, {} package set)\n",
            p.image, p.version, p.tier, p.package_set
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

fn inspect_cmd(a: &InspectArgs) -> Result<CommandOutput> {
    let r = inspect::inspect(&a.layout, a.reference.as_deref())?;
    Ok(CommandOutput::ok(if a.json {
        json(&r)
    } else {
        inspect::render(&r)
    }))
}

fn fsck(a: &FsckArgs) -> Result<CommandOutput> {
    let layout = Layout::open(&a.layout)?;
    let report = layout.fsck()?;
    let failed = !report.is_ok();
    let stdout = if a.json {
        json(&report)
    } else {
        let mut s = format!(
            "{}: {} blobs checked, {} unreferenced, {} problem(s)\n",
            a.layout.display(),
            report.blobs_checked,
            report.unreferenced,
            report.problems.len()
        );
        for p in &report.problems {
            s.push_str(&format!("  {p}\n"));
        }
        s
    };
    Ok(CommandOutput { stdout, failed })
}

/// Exit code 2 for usage and input errors, 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    use crate::oci::layout::LayoutError;
    for cause in err.chain() {
        if cause.is::<InputError>()
            || cause.is::<crate::config::ConfigError>()
            || cause.is::<recipe::RecipeError>()
            || cause.is::<RecipeLoadError>()
        {
            return 2;
        }
        // Hostile or damaged image content is bad input, like a bad layout.
        if let Some(v) = cause.downcast_ref::<crate::oci::rootfs_view::ViewError>() {
            use crate::oci::rootfs_view::ViewError as V;
            if matches!(
                v,
                V::Hostile { .. }
                    | V::TooLarge { .. }
                    | V::SizeMismatch { .. }
                    | V::DigestMismatch { .. }
            ) {
                return 2;
            }
        }
        if let Some(l) = cause.downcast_ref::<LayoutError>() {
            return match l {
                LayoutError::Io { .. } => 1,
                _ => 2,
            };
        }
    }
    1
}

/// A next step for the user, where one is obvious.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    for cause in err.chain() {
        if let Some(n) = cause.downcast_ref::<nix::NixError>() {
            return n.hint().map(str::to_string);
        }
        if let Some(InputError::UnknownImage { .. }) = cause.downcast_ref::<InputError>() {
            return Some(
                "`armorred list` shows the recipes; --recipes DIR picks another directory".into(),
            );
        }
        if let Some(InputError::MissingLayout { image, tier, .. }) =
            cause.downcast_ref::<InputError>()
        {
            return Some(format!(
                "build it first: armorred build {image} --tier {tier} (or pass the --out it was built into)"
            ));
        }
        let missing = |e: Option<&sign::layout::AttestationError>| {
            matches!(e, Some(sign::layout::AttestationError::Missing { .. }))
        };
        let in_layout = match cause.downcast_ref::<sign::layout::LayoutSignError>() {
            Some(sign::layout::LayoutSignError::Attestation(e)) => Some(e),
            _ => None,
        };
        if missing(cause.downcast_ref()) || missing(in_layout) {
            return Some(
                "`build --sign-key` attests the image, or each platform's manifest of a \
                 multi-platform index; `sign` alone does not attest"
                    .into(),
            );
        }
    }
    None
}

fn generate_key_pair(a: &GenerateKeyPairArgs) -> Result<CommandOutput> {
    let pass = keys::passphrase_from_env_or_prompt(true)?;
    let (key, public) = keys::write_key_pair(&a.output_key_prefix, &pass).with_context(|| {
        format!(
            "writing the key pair {}.key/.pub",
            a.output_key_prefix.display()
        )
    })?;
    tracing::info!("private key written to {} (mode 0600)", key.display());
    Ok(CommandOutput::ok(format!(
        "{}\n{}\n",
        key.display(),
        public.display()
    )))
}

fn load_signing_key(path: &Path) -> Result<keys::SigningKey> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| InputError::Invalid(format!("cannot read key {}: {e}", path.display())))?;
    let pass = keys::passphrase_from_env_or_prompt(false)?;
    keys::decrypt_private_key(&pem, &pass).with_context(|| format!("decrypting {}", path.display()))
}

fn load_verifying_key(path: &Path) -> Result<keys::VerifyingKey> {
    let pem = std::fs::read_to_string(path).map_err(|e| {
        InputError::Invalid(format!("cannot read public key {}: {e}", path.display()))
    })?;
    keys::load_public_key(&pem).with_context(|| format!("reading public key {}", path.display()))
}

fn is_layout(target: &str) -> bool {
    Path::new(target).is_dir() || target.starts_with('.') || target.starts_with('/')
}

fn registry_options(a: &RegistryArgs) -> registry::RegistryOptions {
    let RegistryArgs {
        insecure,
        auth_file,
        chunk_size,
    } = a;
    registry::RegistryOptions {
        insecure: *insecure,
        auth_file: auth_file.clone(),
        chunk_size: chunk_size.unwrap_or(0),
        ..Default::default()
    }
}

fn image_ref(s: &str) -> Result<registry::ImageRef> {
    Ok(registry::ImageRef::parse(s)?)
}

fn sign(a: &SignArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    let key_path = project.signing_key(a.key.as_deref()).ok_or_else(|| {
        InputError::Invalid("no signing key: pass --key or set `key` in armorred.toml".into())
    })?;
    let key = load_signing_key(&key_path)?;
    let optional: std::collections::BTreeMap<String, serde_json::Value> = a
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    if !is_layout(&a.target) {
        let target = image_ref(&a.target)?;
        let opts = registry_options(&a.registry);
        let digest = registry::sign_remote(&target, &key, &opts, &optional)
            .with_context(|| format!("signing {}", a.target))?;
        // A multi-platform index: sign every child too, as `cosign sign --recursive`.
        let (bytes, media_type, _) = registry::fetch_manifest(&target.with_digest(&digest), &opts)?;
        if media_type == crate::oci::MEDIA_TYPE_INDEX {
            let index: crate::oci::layout::Index =
                serde_json::from_slice(&bytes).context("parsing the image index")?;
            for child in &index.manifests {
                registry::sign_remote(&target.with_digest(&child.digest), &key, &opts, &optional)
                    .with_context(|| format!("signing {} of {}", child.digest, a.target))?;
            }
        }
        let tag = sign::signature_tag(digest.as_str());
        return Ok(CommandOutput::ok(if a.json {
            json(&serde_json::json!({"manifest_digest": digest, "signature_tag": tag}))
        } else {
            format!("{digest} {tag}\n")
        }));
    }
    let o = sign::layout::sign_layout(
        Path::new(&a.target),
        a.reference.as_deref(),
        &key,
        a.identity.as_deref(),
        optional,
    )
    .with_context(|| format!("signing {}", a.target))?;
    Ok(CommandOutput::ok(if a.json {
        json(&o)
    } else {
        format!(
            "{} {} ({} signature(s))\n",
            o.manifest_digest, o.signature_tag, o.signatures
        )
    }))
}

fn verify(a: &VerifyArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    let key_path = project.public_key(a.key.as_deref()).ok_or_else(|| {
        InputError::Invalid("no public key: pass --key or set `key` in armorred.toml".into())
    })?;
    let key = load_verifying_key(&key_path)?;
    if a.attestations {
        return verify_attestations(a, &key);
    }
    let o = if is_layout(&a.target) {
        sign::layout::verify_layout(Path::new(&a.target), a.reference.as_deref(), &key)
            .with_context(|| format!("verifying {}", a.target))?
    } else {
        verify_remote(&a.target, &key, &registry_options(&a.registry))
            .with_context(|| format!("verifying {}", a.target))?
    };
    Ok(CommandOutput::ok(if a.json {
        json(&o)
    } else {
        format!(
            "verified {} signed as {} (tier: {})\n",
            o.manifest_digest,
            o.docker_reference,
            o.tier.as_deref().unwrap_or("unknown")
        )
    }))
}

/// `verify --attestations`: in a layout or a registry, every attestation of
/// the image verifies and names it, and SLSA provenance is among them; for a
/// multi-platform index, of every child.
fn verify_attestations(a: &VerifyArgs, key: &keys::VerifyingKey) -> Result<CommandOutput> {
    use sign::layout::AttestedTarget;
    let required = crate::slsa::PREDICATE_TYPE;
    let attested = if is_layout(&a.target) {
        sign::layout::verify_layout_attestations(
            Path::new(&a.target),
            a.reference.as_deref(),
            key,
            required,
        )
        .map_err(anyhow::Error::from)
    } else {
        remote_attestations(&a.target, key, &registry_options(&a.registry), required)
    }
    .with_context(|| format!("verifying the attestations of {}", a.target))?;
    Ok(CommandOutput::ok(match (&attested, a.json) {
        (AttestedTarget::Image(o), true) => json(&attestations_json(o, required)),
        (AttestedTarget::Image(o), false) => attestations_text(o),
        (
            AttestedTarget::Index {
                manifest_digest,
                children,
            },
            true,
        ) => json(&serde_json::json!({
            "manifest_digest": manifest_digest,
            "children": children
                .iter()
                .map(|o| attestations_json(o, required))
                .collect::<Vec<_>>(),
        })),
        (
            AttestedTarget::Index {
                manifest_digest,
                children,
            },
            false,
        ) => {
            let mut s = format!(
                "verified the attestations of the {} platform manifest(s) of index {manifest_digest}\n",
                children.len()
            );
            for o in children {
                s.push_str(&attestations_text(o));
            }
            s
        }
    }))
}

/// The attestations of a registry image, or of each child of an index.
fn remote_attestations(
    target: &str,
    key: &keys::VerifyingKey,
    opts: &registry::RegistryOptions,
    required: &str,
) -> Result<sign::layout::AttestedTarget> {
    let target = image_ref(target)?;
    let (manifest, media_type, digest) = registry::fetch_manifest(&target, opts)?;
    if media_type != crate::oci::MEDIA_TYPE_INDEX {
        let (digest, layers) = registry::attestations_remote(&target.with_digest(&digest), opts)?;
        return Ok(sign::layout::AttestedTarget::Image(
            sign::layout::attestations_outcome(key, digest.as_str(), &layers, required)?,
        ));
    }
    let index: crate::oci::layout::Index =
        serde_json::from_slice(&manifest).context("parsing the image index")?;
    let children = index
        .manifests
        .iter()
        .map(|child| {
            let (d, layers) =
                registry::attestations_remote(&target.with_digest(&child.digest), opts)?;
            Ok((d.to_string(), layers))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(sign::layout::index_attestations(
        key,
        digest.as_str(),
        &children,
        required,
    )?)
}

/// `verify --attestations --json` of one image.
fn attestations_json(o: &sign::layout::AttestationsOutcome, required: &str) -> serde_json::Value {
    let provenance = o
        .predicate_types
        .iter()
        .position(|t| t == required)
        .map(|i| o.statements[i]["predicate"].clone())
        .unwrap_or_default();
    serde_json::json!({
        "manifest_digest": o.manifest_digest,
        "attestation_tag": o.attestation_tag,
        "key_fingerprint": o.key_fingerprint,
        "predicate_types": o.predicate_types,
        "provenance": {
            "build_type": provenance.pointer("/buildDefinition/buildType"),
            "builder_id": provenance.pointer("/runDetails/builder/id"),
            "external_parameters": provenance.pointer("/buildDefinition/externalParameters"),
            "internal_parameters": provenance.pointer("/buildDefinition/internalParameters"),
            "resolved_dependencies": provenance.pointer("/buildDefinition/resolvedDependencies"),
        },
    })
}

/// `verify --attestations` of one image, as text.
fn attestations_text(o: &sign::layout::AttestationsOutcome) -> String {
    let mut s = format!(
        "verified {} attestation(s) of {}\n",
        o.predicate_types.len(),
        o.manifest_digest
    );
    for t in &o.predicate_types {
        s.push_str(&format!("  {t}\n"));
    }
    s
}

/// Verifies a registry image: its signature (cosign's `.sig` tag) and its tier label.
fn verify_remote(
    target: &str,
    key: &keys::VerifyingKey,
    opts: &registry::RegistryOptions,
) -> Result<sign::layout::VerifyOutcome> {
    let target = image_ref(target)?;
    let (digest, layers) = registry::signatures_remote(&target, opts)?;
    let v = sign::verify_image(key, digest.as_str(), &layers)?;
    let (mut manifest, media_type, _) =
        registry::fetch_manifest(&target.with_digest(&digest), opts)?;
    if media_type == crate::oci::MEDIA_TYPE_INDEX {
        // A multi-platform index: every child must carry its own signature,
        // as `verify` of a layout demands; the tier comes from the first.
        let index: crate::oci::layout::Index =
            serde_json::from_slice(&manifest).context("parsing the image index")?;
        for child in &index.manifests {
            let at = target.with_digest(&child.digest);
            let (_, layers) = registry::signatures_remote(&at, opts)?;
            sign::verify_image(key, child.digest.as_str(), &layers)
                .with_context(|| format!("verifying index child {}", child.digest))?;
        }
        let first = index
            .manifests
            .first()
            .context("the image index has no children")?;
        manifest = registry::fetch_manifest(&target.with_digest(&first.digest), opts)?.0;
    }
    let m: crate::oci::layout::Manifest =
        serde_json::from_slice(&manifest).context("parsing the image manifest")?;
    let config = registry::fetch_blob(&target, &m.config.digest, opts)?;
    let config: serde_json::Value =
        serde_json::from_slice(&config).context("parsing the image config")?;
    Ok(sign::layout::VerifyOutcome {
        manifest_digest: digest.to_string(),
        docker_reference: v.payload.critical.identity.docker_reference.clone(),
        tier: config
            .pointer("/config/Labels/org.armorred.tier")
            .and_then(|t| t.as_str())
            .map(str::to_string),
        key_fingerprint: key.fingerprint(),
    })
}

fn push(a: &PushArgs, project: &ProjectConfig, reporter: &dyn Reporter) -> Result<CommandOutput> {
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

/// `<registry>/<image>` with `registry` from armorred.toml: where `push` and
/// `build --push` send an image when the command line names no destination.
fn default_repository(project: &ProjectConfig, image: &str, flag: &str) -> Result<String> {
    match &project.registry {
        Some(r) => Ok(format!("{r}/{image}")),
        None => Err(InputError::Invalid(format!(
            "no destination for `{image}`: pass {flag}, or set `registry` in armorred.toml"
        ))
        .into()),
    }
}

/// An upstream named on the command line, opened as a layout.
fn open_upstream(name: &str, insecure: bool) -> Result<crate::report::OpenedImage> {
    let source = crate::report::ImageSource::parse(name)
        .map_err(|e| InputError::Invalid(format!("upstream `{name}`: {e:#}")))?;
    source.open(insecure)
}

fn report_cmd(a: &ReportArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    check_image_name(&a.image)?;
    let out = project.out_dir(a.out.as_deref());
    // Before the upstream is fetched: a missing tier is the likelier mistake.
    for tier in Tier::ALL {
        let path = pipeline::layout_dir(&out, &a.image, tier);
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
    let report = crate::report::collect(&a.image, &out, upstream.as_ref())?;
    let text = crate::report::render(&report, a.format);
    match &a.output {
        None => Ok(CommandOutput::ok(text)),
        Some(path) => {
            crate::archive::write_file_atomic(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(CommandOutput::ok(format!("{}\n", path.display())))
        }
    }
}

fn check_image_name(image: &str) -> Result<()> {
    if image.contains('/') || image.starts_with('.') || image.is_empty() {
        return Err(InputError::Invalid(format!("`{image}` is not an image name")).into());
    }
    Ok(())
}

fn compat_cmd(a: &CompatArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    use crate::compat::{self, RuntimeContract};
    let recipe = load_recipe(&project.recipes_dir(a.recipes.as_deref()), &a.image)?;
    let out = project.out_dir(a.out.as_deref());
    let name = a.upstream.as_deref().unwrap_or(&recipe.image.upstream);
    let upstream = open_upstream(name, a.insecure)?;
    let theirs = RuntimeContract::of_image(&upstream).context("reading the upstream image")?;
    let mut reports = Vec::new();
    for tier in a.tier.tiers() {
        let dir = pipeline::layout_dir(&out, &a.image, tier);
        let ours = RuntimeContract::of_image(&crate::report::OpenedImage::layout(&dir, None))
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

fn man_cmd(a: &ManArgs) -> Result<CommandOutput> {
    let pages = crate::cli::man_pages().context("rendering the man pages")?;
    let Some(dir) = &a.dir else {
        return Ok(CommandOutput::ok(
            String::from_utf8_lossy(&pages[0].1).into_owned(),
        ));
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut s = String::new();
    for (name, roff) in &pages {
        let path = dir.join(name);
        crate::archive::write_file_atomic(&path, roff)
            .with_context(|| format!("writing {}", path.display()))?;
        s.push_str(&format!("{}\n", path.display()));
    }
    Ok(CommandOutput::ok(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::rootfs_view::ViewError;
    use crate::oci::Digest;

    #[test]
    fn hostile_layer_content_is_an_input_error() {
        let digest = Digest::of(b"layer");
        let bomb = anyhow::Error::new(ViewError::TooLarge {
            digest: digest.clone(),
            limit: 1,
        })
        .context("analyzing out/x");
        assert_eq!(exit_code(&bomb), 2);
        let io = anyhow::Error::new(ViewError::Io {
            digest,
            source: std::io::Error::other("disk"),
        });
        assert_eq!(exit_code(&io), 1);
    }
}

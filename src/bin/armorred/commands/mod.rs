//! The subcommands: each turns parsed arguments into library calls and
//! returns what belongs on stdout. Nothing here prints or exits; `main` does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::ManArgs;
use crate::cli::{BuildArgs, Cli, Command, CompressionArg, NixArgs, RecipeArgs, RegistryArgs};
use armorred::config::ProjectConfig;
use armorred::error::InputError;
use armorred::nix::{self, NixEnv, NixOptions};
use armorred::oci::tarball::Compression;
use armorred::pipeline::{self, Reporter};
use armorred::plan::PlanOptions;
use armorred::process;
use armorred::recipe::{self, Recipe};
use armorred::registry;
use armorred::sign::keys;
use armorred::tier::Tier;

mod build;
mod image;
mod push;
mod report;
mod signing;

use build::{build, list, plan};
use image::{fsck, inspect_cmd};
use push::push;
use report::{compat_cmd, report_cmd};
use signing::{generate_key_pair, sign, verify};

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
            let r = armorred::lint::lint_layout(&a.layout, a.reference.as_deref(), &policy)?;
            let stdout = if a.json {
                json(&r)
            } else {
                armorred::lint::render(&r)
            };
            Ok(CommandOutput {
                stdout,
                failed: !r.passed,
            })
        }
        Command::Sbom(a) => {
            let bytes = armorred::attach::read_sbom(&a.layout, a.reference.as_deref(), a.format)?;
            match &a.output {
                None => Ok(CommandOutput::ok(
                    String::from_utf8_lossy(&bytes).into_owned(),
                )),
                Some(path) => {
                    armorred::base::fs::write_readable(path, &bytes)
                        .with_context(|| format!("writing {}", path.display()))?;
                    Ok(CommandOutput::ok(format!("{}\n", path.display())))
                }
            }
        }
        Command::Analyze(a) => {
            let r = armorred::layout_analysis::analyze_layout(&a.layout, a.reference.as_deref())?;
            Ok(CommandOutput::ok(if a.json {
                json(&r)
            } else {
                armorred::layout_analysis::render(&r)
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
    armorred::base::dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from("/var/cache/armorred"))
        .join("sources")
}

fn nix_env(r: &RecipeArgs, recipes: &Path, nix: &NixArgs) -> Result<NixEnv> {
    let sources = r.sources.clone().unwrap_or_else(default_sources_dir);
    Ok(NixEnv {
        nix_dir: resolve_nix_dir(r.nix_dir.as_deref(), recipes),
        source_dir: std::path::absolute(&sources).unwrap_or(sources),
        toolchain_id: nix::detect_toolchain_id(),
        options: nix_options(nix),
        upstream_tests: upstream_tests_override()?,
    })
}

/// `ARMORRED_UPSTREAM_TESTS=full` runs every upstream suite whole for this
/// build, whatever the recipe says. An unknown value is refused: a typo of
/// `full` would otherwise build with the CI subset and look like a full run.
fn upstream_tests_override() -> Result<Option<armorred::upstream_tests::UpstreamTestMode>> {
    match std::env::var("ARMORRED_UPSTREAM_TESTS") {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map(Some).map_err(|e| {
                InputError::Invalid(format!("ARMORRED_UPSTREAM_TESTS=`{v}`: {e}")).into()
            })
        }
        _ => Ok(None),
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

fn check_image_name(image: &str) -> Result<()> {
    if image.contains('/') || image.starts_with('.') || image.is_empty() {
        return Err(InputError::Invalid(format!("`{image}` is not an image name")).into());
    }
    Ok(())
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
        armorred::base::fs::write_readable(&path, roff)
            .with_context(|| format!("writing {}", path.display()))?;
        s.push_str(&format!("{}\n", path.display()));
    }
    Ok(CommandOutput::ok(s))
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

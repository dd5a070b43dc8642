//! Command-line definitions (clap derive). Parsing only validates; the
//! commands run in [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use armorred::plan::PackageSet;
use armorred::tier::TierSelection;

pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("ARMORRED_GIT_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "armorred",
    version = VERSION,
    about = "Build hardened FROM-scratch OCI images with Nix, in two tiers: hardened and locked",
    after_help = "Exit codes: 0 ok, 1 build or check failed, 2 usage or input error."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Plain log lines instead of progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image (or every recipe with --all) in one tier or both.
    Build(BuildArgs),
    /// List the recipes and their tiers.
    List(ListArgs),
    /// Show the resolved build plan without building anything.
    Plan(PlanArgs),
    /// Show what an OCI image layout holds.
    Inspect(InspectArgs),
    /// Re-hash every blob of a layout and report mismatches.
    Fsck(FsckArgs),
    /// CIS Docker Benchmark section 4 checks (4.1, 4.6, 4.8, 4.10, 4.11): pass, fail or n/a.
    Lint(LintArgs),
    /// Print the SBOM attached to an image (SPDX 2.3 or CycloneDX 1.5 JSON), or its OpenVEX document (`--format openvex`).
    Sbom(SbomArgs),
    /// Hardening of every ELF file (RELRO, canary, NX, PIE, FORTIFY, CFI, SafeStack, CET) and image facts.
    Analyze(InspectArgs),
    /// Compare the hardened and locked images (and an upstream image) side by side: sizes, components, hardening, labels.
    Report(ReportArgs),
    /// Compare an image's runtime contract (entrypoint, cmd, ports, env, volumes, workdir, stop signal, user) with its upstream's.
    Compat(CompatArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per subcommand with --dir.
    Man(ManArgs),
    /// Write a cosign key pair: <prefix>.key (encrypted, mode 0600) and <prefix>.pub.
    GenerateKeyPair(GenerateKeyPairArgs),
    /// Sign an image in cosign's format (passphrase from COSIGN_PASSWORD or a prompt).
    Sign(SignArgs),
    /// Verify an image's cosign signature with a public key, and show its tier.
    Verify(VerifyArgs),
    /// Push a layout's image, its signatures and SBOMs to a registry (OCI distribution API).
    Push(PushArgs),
}

/// How to reach a registry.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// Allow plain HTTP (loopback registries).
    #[arg(long)]
    pub insecure: bool,
    /// Docker-style auth file (default: REGISTRY_AUTH_FILE, else ~/.docker/config.json).
    #[arg(long)]
    pub auth_file: Option<PathBuf>,
    /// Upload blobs larger than this in chunks of this size (bytes).
    #[arg(long)]
    pub chunk_size: Option<usize>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The OCI layout to push.
    pub layout: PathBuf,
    /// Target, e.g. `registry.example:5000/armorred/nginx:1.22.1-locked`.
    /// Default: `<registry>/<image>` from armorred.toml, tagged with the image's
    /// reference (`<version>-<tier>`).
    pub target: Option<String>,
    /// The image's ref name when the layout holds several, or a child's manifest digest in a multi-platform index.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenerateKeyPairArgs {
    /// Writes <prefix>.key and <prefix>.pub.
    #[arg(long, default_value = "cosign")]
    pub output_key_prefix: PathBuf,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// An OCI layout directory or a registry reference.
    pub target: String,
    /// The encrypted private key (cosign.key; default: `key` in armorred.toml).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The image's ref name when the layout holds several, or a child's manifest digest in a multi-platform index.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// The repository named in the signature (`critical.identity.docker-reference`); default `armorred/<title>` for layouts.
    #[arg(long)]
    pub identity: Option<String>,
    /// Extra `optional` claims, KEY=VALUE (repeatable).
    #[arg(short = 'a', long = "annotation", value_parser = parse_key_value)]
    pub annotations: Vec<(String, String)>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An OCI layout directory or a registry reference.
    pub target: String,
    /// The public key (cosign.pub; default: armorred.toml's `key` with `.pub`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The image's ref name when the layout holds several, or a child's manifest digest in a multi-platform index.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// Check the attestations instead of the signature: every one verifies with the key and
    /// names the image, and SLSA provenance is among them; lists their predicate types. For a
    /// multi-platform index, this holds for every child.
    #[arg(long)]
    pub attestations: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct RecipeArgs {
    /// Directory of recipes (`<image>.toml`; default: armorred.toml's `recipes`, else `recipes`).
    #[arg(long, env = "ARMORRED_RECIPES")]
    pub recipes: Option<PathBuf>,
    /// Package set to build from.
    #[arg(long, value_parser = parse_package_set, default_value = "offline")]
    pub package_set: PackageSet,
    /// Directory with `build.nix` (default: the `nix/` beside the recipes, else the one armorred was built from).
    #[arg(long, env = "ARMORRED_NIX_DIR")]
    pub nix_dir: Option<PathBuf>,
    /// Source tarball cache for the offline set (filled by scripts/fetch-sources.sh).
    #[arg(long, env = "ARMORRED_SOURCES")]
    pub sources: Option<PathBuf>,
    /// Cap on the number of layers (default 100, or the recipe's `layers.max_layers`).
    #[arg(long)]
    pub max_layers: Option<usize>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct NixArgs {
    /// Passed to Nix: remote builders (`--builders`).
    #[arg(long)]
    pub builders: Option<String>,
    /// Passed to Nix: the store to use (`--store`).
    #[arg(long)]
    pub store: Option<String>,
    /// Passed to Nix: parallel derivation builds (`--max-jobs`).
    #[arg(long)]
    pub max_jobs: Option<String>,
    /// Passed to Nix: binary caches (`--option substituters`).
    #[arg(long)]
    pub substituters: Option<String>,
    /// Passed to Nix as `--option NAME VALUE` (repeatable, NAME=VALUE).
    #[arg(long = "nix-option", value_parser = parse_key_value)]
    pub nix_option: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CompressionArg {
    Gzip,
    Zstd,
    None,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The image to build (a recipe name). Omit with --all.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub image: Option<String>,
    /// Every recipe, every tier.
    #[arg(long)]
    pub all: bool,
    /// Images (recipe × tier) built at once, each its own Nix build.
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// hardened, locked or all.
    #[arg(long, value_parser = parse_tier_selection, default_value = "all")]
    pub tier: TierSelection,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    #[command(flatten)]
    pub nix: NixArgs,
    /// Output directory; each tier becomes the OCI layout `<out>/<image>-<tier>` (default: armorred.toml's `out`, else `out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write an archive beside each layout: `oci-archive` (`<out>/<image>-<tier>.oci.tar`) or `docker-archive` (`.docker.tar`).
    #[arg(long, value_enum, default_value = "oci")]
    pub format: armorred::archive::OutputFormat,
    /// Build only this platform of the recipe's `image.platforms` (repeatable).
    #[arg(long = "platform")]
    pub platforms: Vec<String>,
    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
    /// Compression level (gzip 1-9, default 6; zstd 1-19, default 3).
    #[arg(long)]
    pub compression_level: Option<i32>,
    /// Parallel layer writers (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub layer_jobs: usize,
    /// Layer cache directory (default `$XDG_CACHE_HOME/armorred`, else `~/.cache/armorred`).
    #[arg(long, env = "ARMORRED_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Write every layer afresh, without reading or filling the layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Sign each built image with this cosign key (passphrase from COSIGN_PASSWORD or a prompt),
    /// and attest its SLSA provenance, SBOMs and VEX document (cosign's `.att`).
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
    /// Push each built image to this repository, tagged `<version>-<tier>`
    /// (e.g. `registry.example:5000/armorred/nginx`); with --all, to `<this>/<image>`.
    /// Without a value: to `<registry>/<image>`, `registry` from armorred.toml.
    #[arg(long, num_args = 0..=1, value_name = "REPOSITORY")]
    pub push: Option<Option<String>>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Machine-readable output on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, env = "ARMORRED_RECIPES")]
    pub recipes: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    pub image: String,
    #[arg(long, value_parser = parse_tier_selection, default_value = "all")]
    pub tier: TierSelection,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Also evaluate the package with Nix (no build) to show the exact compiler flags.
    #[arg(long)]
    pub eval: bool,
    /// Also show the layer plan (store path → layer, merged layers marked).
    /// It needs the runtime closure, so Nix builds the package first when
    /// it is not in the store yet.
    #[arg(long)]
    pub layers: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An OCI image layout directory.
    pub layout: PathBuf,
    /// The image's ref name when the layout holds several, or a child's manifest digest in a multi-platform index.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    pub layout: PathBuf,
    /// The image's ref name when the layout holds several, or a child's manifest digest in a multi-platform index.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// The image's recipe, for its healthcheck and allowed secrets.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SbomArgs {
    pub layout: PathBuf,
    /// Which document of the image.
    #[arg(long, value_enum, default_value = "spdx")]
    pub format: armorred::attach::SbomFormat,
    /// The image's ref name when the layout holds several, or a child's manifest digest in a multi-platform index.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// Write the document to this file (atomically) instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    pub layout: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The image (recipe name); reads `<out>/<image>-hardened` and `<out>/<image>-locked`.
    pub image: String,
    /// Directory holding the layouts (default: armorred.toml's `out`, else `out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The upstream image: an OCI layout (`oci:DIR[:REF]` or DIR), `oci-archive:FILE`, `docker-archive:FILE` or a registry reference.
    #[arg(long)]
    pub upstream: Option<String>,
    #[arg(long, value_enum, default_value = "md")]
    pub format: armorred::report::ReportFormat,
    /// Write the report to this file (atomically) instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Plain HTTP or unverified TLS for a registry upstream.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct CompatArgs {
    /// The image (recipe name); its recipe's `[[compat.allowed]]` declares the intended differences.
    pub image: String,
    /// The upstream image (as for `report`; default: the recipe's `image.upstream`).
    #[arg(long)]
    pub upstream: Option<String>,
    /// hardened (differences are errors), locked (warnings) or all.
    #[arg(long, value_parser = parse_tier_selection, default_value = "all")]
    pub tier: TierSelection,
    /// Directory holding the layouts (default: armorred.toml's `out`, else `out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Directory of recipes (default: armorred.toml's `recipes`, else `recipes`).
    #[arg(long, env = "ARMORRED_RECIPES")]
    pub recipes: Option<PathBuf>,
    /// Plain HTTP or unverified TLS for a registry upstream.
    #[arg(long)]
    pub insecure: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `armorred.1` and `armorred-<command>.1` for every subcommand into this directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The completion script for `shell`, generated from these definitions.
pub fn completion_script(shell: clap_complete::Shell) -> String {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "armorred", &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Man pages (file name, roff): `armorred.1`, then one per subcommand.
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut pages = Vec::new();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    pages.push(("armorred.1".to_string(), buf));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("armorred-{}", sub.get_name());
        let mut buf = Vec::new();
        let page = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("armorred {}", sub.get_name()));
        clap_mangen::Man::new(page).render(&mut buf)?;
        pages.push((format!("{name}.1"), buf));
    }
    Ok(pages)
}

fn parse_tier_selection(s: &str) -> Result<TierSelection, String> {
    s.parse()
}

fn parse_package_set(s: &str) -> Result<PackageSet, String> {
    s.parse()
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_tier_is_a_usage_error() {
        let e =
            Cli::try_parse_from(["armorred", "build", "nginx", "--tier", "strict"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("unknown tier `strict`"), "{e}");
    }

    #[test]
    fn build_all_conflicts_with_an_image() {
        assert!(Cli::try_parse_from(["armorred", "build", "nginx", "--all"]).is_err());
        assert!(Cli::try_parse_from(["armorred", "build", "--all"]).is_ok());
        assert!(Cli::try_parse_from(["armorred", "build"]).is_err());
    }
}

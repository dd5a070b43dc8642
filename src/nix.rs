//! Stage 3: [`BuildPlan`] → built store paths + [`Closure`], through the real
//! `nix-build` / `nix-store`.
//!
//! Command construction is pure ([`NixInvocation`]) and unit-tested; running
//! goes through [`crate::process`]. Only portable Nix commands are used
//! (`nix-build`, `nix-instantiate`, `nix-store --query --requisites`,
//! `nix-store --dump-db`), so Debian's Nix 2.8 and current Nix 2.18+ both work
//! without experimental features.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::closure::Closure;
use crate::plan::{BuildPlan, PackageSet};
use crate::platform::{parse_machines, NixCapabilities, ShowConfig, System};
use crate::process::{Cmd, ProcessError};
use crate::recipe::PackageSource;
use crate::store_path::StorePath;
use crate::upstream_tests::UpstreamTestMode;

/// Where and how Nix runs; everything here comes from the environment or
/// flags, not from the recipe.
#[derive(Debug, Clone, Default)]
pub struct NixEnv {
    /// The directory holding `build.nix`, `offline/` and the nixpkgs overlay.
    pub nix_dir: PathBuf,
    /// The local source-tarball cache for the offline set.
    pub source_dir: PathBuf,
    /// Identifies the host compiler so a new compiler gives new store paths.
    pub toolchain_id: String,
    /// Options passed through to every Nix command.
    pub options: NixOptions,
    /// Overrides the recipe's upstream test mode (`ARMORRED_UPSTREAM_TESTS`).
    pub upstream_tests: Option<UpstreamTestMode>,
}

/// Nix options armorred passes through untouched, so users scale out with
/// Nix's own remote builders and binary caches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NixOptions {
    pub builders: Option<String>,
    pub store: Option<String>,
    pub max_jobs: Option<String>,
    pub substituters: Option<String>,
    /// Further `--option NAME VALUE` pairs.
    pub extra: Vec<(String, String)>,
}

impl NixOptions {
    fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(b) = &self.builders {
            a.extend(["--builders".into(), b.clone()]);
        }
        if let Some(s) = &self.store {
            a.extend(["--store".into(), s.clone()]);
        }
        if let Some(j) = &self.max_jobs {
            a.extend(["--max-jobs".into(), j.clone()]);
        }
        if let Some(s) = &self.substituters {
            a.extend(["--option".into(), "substituters".into(), s.clone()]);
        }
        for (k, v) in &self.extra {
            a.extend(["--option".into(), k.clone(), v.clone()]);
        }
        a
    }

    fn store_args(&self) -> Vec<String> {
        self.store
            .iter()
            .flat_map(|s| ["--store".to_string(), s.clone()])
            .collect()
    }
}

/// The JSON handed to `nix/build.nix` as `--argstr specJson`. Field names are
/// the Nix side's; see `nix/build.nix` for the contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NixSpec {
    pub package_set: PackageSet,
    pub source_dir: PathBuf,
    pub toolchain_id: String,
    pub package: NixPackageRef,
    pub hardening: NixHardening,
    pub drop: Vec<String>,
    pub shell: bool,
    pub coreutils: bool,
    /// Build the entrypoint compatibility programs (`-A entrypoint`); left
    /// out of the JSON when false, so other specs stay as they were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub entrypoint: bool,
    pub nixpkgs_override: std::collections::BTreeMap<String, serde_json::Value>,
    /// Which upstream test suites the offline set's builds run (`ci`, `full`).
    pub upstream_tests: UpstreamTestMode,
    /// The Nix system to build for (`aarch64-linux`); absent means Nix's own.
    /// The nixpkgs set imports nixpkgs for it; the offline set refuses any
    /// other than the host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NixPackageRef {
    #[serde(rename = "attr")]
    Attr(String),
    #[serde(rename = "file")]
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NixHardening {
    pub cfi: bool,
    pub lto: bool,
    pub safestack: bool,
}

/// What `nix/build.nix`'s `meta` attribute evaluates to.
/// Source: `nix-instantiate --eval --strict --json nix/build.nix -A meta` (Nix 2.8).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageMeta {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub hardening: Vec<String>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub enabled_features: Vec<String>,
    #[serde(default)]
    pub dropped_features: Vec<String>,
    #[serde(default)]
    pub cflags: String,
    #[serde(default)]
    pub ldflags: String,
    #[serde(default)]
    pub licenses: Vec<String>,
}

impl PackageMeta {
    /// The facts the image's labels take from the derivation.
    pub fn facts(&self) -> crate::plan::PackageFacts {
        crate::plan::PackageFacts {
            name: self.name.clone(),
            version: self.version.clone(),
            licenses: self.licenses.clone(),
        }
    }
}

/// The commands for one plan, built without running anything.
#[derive(Debug, Clone)]
pub struct NixInvocation {
    pub spec: NixSpec,
    pub entry: PathBuf,
    pub options: NixOptions,
    /// The attributes to build: `package`, plus `shell` when the tier wants
    /// one and `entrypoint` when it ships the entrypoint compatibility program.
    pub attrs: Vec<&'static str>,
}

impl NixInvocation {
    pub fn new(plan: &BuildPlan, env: &NixEnv) -> NixInvocation {
        let package = match &plan.package {
            PackageSource::Attr(a) => NixPackageRef::Attr(a.clone()),
            PackageSource::File(f) => NixPackageRef::File(absolute(f)),
        };
        let spec = NixSpec {
            package_set: plan.package_set,
            source_dir: env.source_dir.clone(),
            toolchain_id: env.toolchain_id.clone(),
            package,
            hardening: NixHardening {
                cfi: plan.hardening.cfi,
                lto: plan.hardening.lto,
                safestack: plan.hardening.safestack,
            },
            drop: plan.drop.clone(),
            shell: plan.shell,
            coreutils: plan.coreutils,
            entrypoint: plan.entrypoint_compat.is_some(),
            nixpkgs_override: plan.nixpkgs_override.clone(),
            upstream_tests: env.upstream_tests.unwrap_or(plan.upstream_tests.mode),
            system: None,
        };
        let mut attrs = vec!["package"];
        if plan.shell || plan.coreutils {
            attrs.push("shell");
        }
        if plan.entrypoint_compat.is_some() {
            attrs.push("entrypoint");
        }
        NixInvocation {
            spec,
            entry: env.nix_dir.join("build.nix"),
            options: env.options.clone(),
            attrs,
        }
    }

    /// The same build for another Nix system (see [`NixSpec::system`]).
    pub fn for_system(mut self, system: &System) -> NixInvocation {
        self.spec.system = Some(system.to_string());
        self
    }

    pub fn spec_json(&self) -> String {
        serde_json::to_string(&self.spec).expect("NixSpec always serializes")
    }

    /// `nix-build <nix>/build.nix --argstr specJson … --no-out-link -A package [-A shell]`
    pub fn build_command(&self) -> Cmd {
        let mut c = Cmd::new("nix-build")
            .arg(&self.entry)
            .args(["--argstr", "specJson"])
            .arg(self.spec_json())
            .arg("--no-out-link");
        for a in &self.attrs {
            c = c.args(["-A", a]);
        }
        c.args(self.options.args())
    }

    /// Evaluates the package's metadata (flags, features) without building.
    pub fn meta_command(&self) -> Cmd {
        Cmd::new("nix-instantiate")
            .args(["--eval", "--strict", "--json"])
            .arg(&self.entry)
            .args(["--argstr", "specJson"])
            .arg(self.spec_json())
            .args(["-A", "meta"])
            .args(self.options.store_args())
    }

    /// Instantiates without building: the `.drv` paths, one per attribute.
    pub fn instantiate_command(&self) -> Cmd {
        let mut c = Cmd::new("nix-instantiate")
            .arg(&self.entry)
            .args(["--argstr", "specJson"])
            .arg(self.spec_json());
        for a in &self.attrs {
            c = c.args(["-A", a]);
        }
        c.args(self.options.store_args())
    }
}

/// `nix-store --query --requisites <roots>`: the runtime closure.
pub fn requisites_command(roots: &[StorePath], options: &NixOptions) -> Cmd {
    Cmd::new("nix-store")
        .args(options.store_args())
        .args(["--query", "--requisites"])
        .args(roots.iter().map(StorePath::as_str))
}

/// `nix-store --dump-db <paths>`: references, NAR hash and size of each path.
pub fn dump_db_command(paths: &[StorePath], options: &NixOptions) -> Cmd {
    Cmd::new("nix-store")
        .args(options.store_args())
        .arg("--dump-db")
        .args(paths.iter().map(StorePath::as_str))
}

/// `nix show-config --json` with our options applied, so `--builders` and
/// `--nix-option extra-platforms=…` count as Nix itself would count them.
pub fn show_config_command(options: &NixOptions) -> Cmd {
    Cmd::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "show-config",
            "--json",
        ])
        .args(options.args())
}

/// `nix-instantiate --eval -E builtins.currentSystem`: the fallback when the
/// `nix` command is missing or too old for `show-config`.
pub fn current_system_command() -> Cmd {
    Cmd::new("nix-instantiate").args(["--eval", "--json", "-E", "builtins.currentSystem"])
}

/// What this Nix can build: its `system`, `extra-platforms` and the systems
/// of its remote builders (`builders`, with `@file` read).
pub fn capabilities(options: &NixOptions) -> Result<NixCapabilities, NixError> {
    let (system, extra_platforms, builders) =
        match show_config_command(options).json::<ShowConfig>() {
            Ok(c) => c.into_parts(),
            Err(e) => {
                tracing::debug!("nix show-config failed, asking nix-instantiate: {e}");
                let system: String = current_system_command()
                    .json()
                    .map_err(|e| NixError::classify(e, NixError::Eval))?;
                (
                    system,
                    Vec::new(),
                    options.builders.clone().unwrap_or_default(),
                )
            }
        };
    let spec = match builders.trim().strip_prefix('@') {
        // A missing machines file means no remote builders, as in Nix.
        Some(file) => std::fs::read_to_string(file).unwrap_or_default(),
        None => builders,
    };
    Ok(NixCapabilities {
        builders: parse_machines(&spec, &system),
        system,
        extra_platforms,
    })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[derive(Debug, thiserror::Error)]
pub enum NixError {
    #[error("Nix is not installed (no `{program}` on PATH)")]
    NotInstalled { program: String },
    #[error("Nix evaluation failed")]
    Eval(#[source] ProcessError),
    #[error("Nix build failed")]
    Build(#[source] ProcessError),
    #[error("querying the Nix store failed")]
    Query(#[source] ProcessError),
    #[error("`{command}` printed `{line}`, which is not a store path")]
    BadStorePath { command: String, line: String },
}

impl NixError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            NixError::NotInstalled { .. } => {
                Some("install Nix with `scripts/setup-system.sh` (Debian: apt-get install nix-bin)")
            }
            NixError::Build(_) => Some(
                "the lines above are the end of the build log; `nix log <drv>` shows all of it",
            ),
            NixError::Eval(_) => {
                Some("check the recipe's package attribute, file and `drop` names")
            }
            _ => None,
        }
    }

    fn classify(e: ProcessError, wrap: fn(ProcessError) -> NixError) -> NixError {
        if e.is_not_found() {
            if let ProcessError::Spawn { program, .. } = &e {
                return NixError::NotInstalled {
                    program: program.clone(),
                };
            }
        }
        // nix-build reports evaluation errors before any build starts.
        if let ProcessError::Failed { stderr_tail, .. } = &e {
            let evaluated =
                stderr_tail.contains("building '") || stderr_tail.contains("builder for");
            if !evaluated && stderr_tail.contains("error:") {
                return NixError::Eval(e);
            }
        }
        wrap(e)
    }
}

/// The store paths `nix-build` produced, one per requested attribute.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltOutputs {
    pub package: StorePath,
    pub shell: Option<StorePath>,
    /// The entrypoint compatibility programs, when the tier ships one.
    pub entrypoint: Option<StorePath>,
}

impl BuiltOutputs {
    pub fn roots(&self) -> Vec<StorePath> {
        std::iter::once(self.package.clone())
            .chain(self.shell.clone())
            .chain(self.entrypoint.clone())
            .collect()
    }
}

fn parse_store_paths(cmd: &Cmd, stdout: &str) -> Result<Vec<StorePath>, NixError> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            StorePath::parse(l.trim()).map_err(|_| NixError::BadStorePath {
                command: cmd.display(),
                line: l.to_string(),
            })
        })
        .collect()
}

/// Builds the plan's attributes; `on_log` receives Nix's log lines.
pub fn build(inv: &NixInvocation, on_log: impl FnMut(&str)) -> Result<BuiltOutputs, NixError> {
    let cmd = inv.build_command();
    let out = cmd
        .run_with(on_log)
        .map_err(|e| NixError::classify(e, NixError::Build))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let paths = parse_store_paths(&cmd, &stdout)?;
    if paths.len() != inv.attrs.len() {
        return Err(NixError::Build(cmd.bad_output(format!(
            "expected {} store paths, got {}",
            inv.attrs.len(),
            paths.len()
        ))));
    }
    // nix-build prints one path per `-A`, in the order asked.
    let mut by_attr: std::collections::BTreeMap<&str, StorePath> =
        inv.attrs.iter().copied().zip(paths).collect();
    Ok(BuiltOutputs {
        package: by_attr.remove("package").expect("length checked"),
        shell: by_attr.remove("shell"),
        entrypoint: by_attr.remove("entrypoint"),
    })
}

pub fn eval_meta(inv: &NixInvocation) -> Result<PackageMeta, NixError> {
    inv.meta_command()
        .json()
        .map_err(|e| NixError::classify(e, NixError::Eval))
}

/// The runtime closure of `roots`, with the reference graph and NAR hashes.
pub fn closure(roots: &[StorePath], options: &NixOptions) -> Result<Closure, NixError> {
    let cmd = requisites_command(roots, options);
    let text = cmd
        .stdout_string()
        .map_err(|e| NixError::classify(e, NixError::Query))?;
    let paths = parse_store_paths(&cmd, &text)?;
    let cmd = dump_db_command(&paths, options);
    let db = cmd
        .stdout_string()
        .map_err(|e| NixError::classify(e, NixError::Query))?;
    Closure::from_dump_db(roots.to_vec(), &db).map_err(|e| NixError::Query(cmd.bad_output(e)))
}

/// `clang-14.0.6` from `clang --version`, or `unknown` if there is no clang.
pub fn detect_toolchain_id() -> String {
    Cmd::new("clang")
        .arg("--version")
        .stdout_string()
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| {
                    l.split_whitespace()
                        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
                })
                .map(|v| format!("clang-{}", v.split(['-', '~', '+']).next().unwrap_or(v)))
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanOptions;
    use crate::recipe::Recipe;
    use crate::tier::Tier;

    fn env() -> NixEnv {
        NixEnv {
            nix_dir: "/src/armorred/nix".into(),
            source_dir: "/cache/sources".into(),
            toolchain_id: "clang-14.0.6".into(),
            options: NixOptions::default(),
            upstream_tests: None,
        }
    }

    fn plan(tier: Tier) -> BuildPlan {
        let r = Recipe::parse(
            crate::recipe::tests_support::NGINX,
            Path::new("recipes/nginx.toml"),
        )
        .unwrap();
        BuildPlan::new(&r, tier, &PlanOptions::default())
    }

    fn args(c: &Cmd) -> Vec<String> {
        c.get_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn build_command_for_locked_nginx() {
        let inv = NixInvocation::new(&plan(Tier::Locked), &env());
        let c = inv.build_command();
        assert_eq!(c.program(), "nix-build");
        let a = args(&c);
        assert_eq!(a[0], "/src/armorred/nix/build.nix");
        assert_eq!(a[1..3], ["--argstr", "specJson"]);
        let spec: serde_json::Value = serde_json::from_str(&a[3]).unwrap();
        assert_eq!(spec["packageSet"], "offline");
        assert_eq!(spec["package"]["attr"], "nginx");
        assert_eq!(spec["hardening"]["cfi"], true);
        assert_eq!(spec["hardening"]["safestack"], true);
        assert_eq!(spec["drop"], serde_json::json!(["mail", "stream"]));
        assert_eq!(spec["sourceDir"], "/cache/sources");
        assert_eq!(spec["toolchainId"], "clang-14.0.6");
        assert_eq!(a[4..], ["--no-out-link", "-A", "package", "-A", "shell"]);
    }

    #[test]
    fn the_spec_names_the_system_only_when_asked() {
        let inv = NixInvocation::new(&plan(Tier::Hardened), &env());
        let spec: serde_json::Value = serde_json::from_str(&inv.spec_json()).unwrap();
        assert!(spec.get("system").is_none());
        let arm = System::parse("aarch64-linux").unwrap();
        let spec: serde_json::Value =
            serde_json::from_str(&inv.for_system(&arm).spec_json()).unwrap();
        assert_eq!(spec["system"], "aarch64-linux");
        let c = show_config_command(&NixOptions {
            builders: Some("ssh://arm aarch64-linux".into()),
            ..NixOptions::default()
        });
        assert_eq!(
            args(&c),
            [
                "--extra-experimental-features",
                "nix-command",
                "show-config",
                "--json",
                "--builders",
                "ssh://arm aarch64-linux"
            ]
        );
    }

    #[test]
    fn hardened_nginx_builds_no_shell() {
        let inv = NixInvocation::new(&plan(Tier::Hardened), &env());
        let a = args(&inv.build_command());
        assert!(a.ends_with(&["-A".to_string(), "package".to_string()]));
        assert!(!a.contains(&"shell".to_string()));
        let spec: serde_json::Value = serde_json::from_str(&a[3]).unwrap();
        assert_eq!(spec["hardening"]["cfi"], false);
        assert_eq!(spec["drop"], serde_json::json!([]));
    }

    #[test]
    fn options_pass_through() {
        let mut e = env();
        e.options = NixOptions {
            builders: Some("ssh://b1 x86_64-linux".into()),
            store: Some("/tmp/store".into()),
            max_jobs: Some("4".into()),
            substituters: Some("https://cache.example".into()),
            extra: vec![("cores".into(), "2".into())],
        };
        let inv = NixInvocation::new(&plan(Tier::Hardened), &e);
        let a = args(&inv.build_command());
        let tail: Vec<&str> = a.iter().map(String::as_str).skip(7).collect();
        assert_eq!(
            tail,
            [
                "--builders",
                "ssh://b1 x86_64-linux",
                "--store",
                "/tmp/store",
                "--max-jobs",
                "4",
                "--option",
                "substituters",
                "https://cache.example",
                "--option",
                "cores",
                "2"
            ]
        );
        let q = args(&requisites_command(&[], &e.options));
        assert_eq!(q[..2], ["--store", "/tmp/store"]);
    }

    #[test]
    fn meta_and_store_queries() {
        let inv = NixInvocation::new(&plan(Tier::Locked), &env());
        let m = inv.meta_command();
        assert_eq!(m.program(), "nix-instantiate");
        assert!(args(&m).ends_with(&["-A".into(), "meta".into()]));
        let p =
            StorePath::parse("/nix/store/0c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-nginx-1.22.1").unwrap();
        assert_eq!(
            requisites_command(std::slice::from_ref(&p), &NixOptions::default()).display(),
            format!("nix-store --query --requisites {p}")
        );
        assert_eq!(
            dump_db_command(std::slice::from_ref(&p), &NixOptions::default()).display(),
            format!("nix-store --dump-db {p}")
        );
    }

    #[test]
    fn meta_parses() {
        let m: PackageMeta = serde_json::from_str(
            r#"{"name":"nginx","version":"1.22.1","hardening":["fortify3"],"cflags":"-O2","ldflags":"-pie","features":["mail"],"enabledFeatures":[],"droppedFeatures":["mail"]}"#,
        )
        .unwrap();
        assert_eq!(m.dropped_features, ["mail"]);
    }
}

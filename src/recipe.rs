//! Stage 1: recipe file (TOML) → [`Recipe`].
//!
//! Contract: a recipe either parses into a fully validated [`Recipe`] or
//! yields a [`RecipeError`] naming the file, the line and the dotted key.
//! Parsing is strict: unknown keys, wrong types and missing fields are errors.
//! Nothing here touches Nix; checks that need the built closure (such as
//! "the entrypoint exists") happen after the build.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::tier::Tier;
use crate::upstream_tests::{RequiredSuite, UpstreamTestMode};

/// The default runtime user: `nobody`, as the product promises.
pub const DEFAULT_USER: &str = "65534";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub image: ImageMeta,
    pub package: PackageSpec,
    pub runtime: RuntimeSpec,
    pub tiers: Tiers,
    #[serde(default)]
    pub layers: LayerSettings,
    #[serde(default)]
    pub lint: LintSettings,
    #[serde(default)]
    pub compat: CompatSettings,
    /// The official image's entrypoint behaviour, for the tiers that set
    /// `entrypoint_compat = true`.
    #[serde(default)]
    pub entrypoint_compat: Option<EntrypointCompat>,
    #[serde(default)]
    pub tests: TestSettings,
    /// Where the recipe was read from; set by [`Recipe::load`].
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageMeta {
    pub name: String,
    /// The version the recipe expects Nix to build. Optional: the image's
    /// version label always comes from the built derivation, and a value
    /// given here only makes `build` fail when Nix builds another version.
    #[serde(default)]
    pub version: Option<String>,
    /// Optional: without it, the description is made from the package name
    /// and version Nix reports.
    #[serde(default)]
    pub description: Option<String>,
    /// The upstream image this one replaces, e.g. `docker.io/library/nginx:1.22.1`.
    pub upstream: String,
    /// `org.opencontainers.image.source`.
    #[serde(default)]
    pub source: Option<String>,
    /// Optional SPDX expressions the recipe expects the package set to
    /// report (ANDed). The licence label and SBOM always use the package
    /// set's own `meta` licences; a list given here that disagrees fails the
    /// build, so a relicensing upstream (Redis 7 → 8) cannot hide behind it.
    #[serde(default)]
    pub licenses: Vec<String>,
    /// Nix systems to build for (`x86_64-linux`, `aarch64-linux`); default
    /// `["x86_64-linux"]`. See [`crate::platform::System`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    /// Attribute of the chosen package set.
    #[serde(default)]
    pub attr: Option<Spanned<String>>,
    /// A Nix file next to the recipe that evaluates to a derivation.
    #[serde(default)]
    pub file: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSpec {
    pub entrypoint: Spanned<Vec<String>>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<Spanned<String>>,
    #[serde(default)]
    pub workdir: Option<String>,
    /// Directories that must stay writable under a read-only root.
    #[serde(default)]
    pub writable: Vec<Spanned<String>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// Image path → path inside the package output, e.g.
    /// `"/usr/sbin/nginx" = "bin/nginx"`, so the entrypoint sits on a normal path.
    #[serde(default)]
    pub links: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    pub hardened: TierSpec,
    pub locked: TierSpec,
}

/// What one tier turns on and compiles out.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    pub cfi: bool,
    pub lto: bool,
    pub safestack: bool,
    pub shell: bool,
    pub coreutils: bool,
    /// Package features compiled out (names the package expression knows).
    #[serde(default)]
    pub drop: Vec<String>,
    /// `.override` arguments for the nixpkgs package set.
    #[serde(default)]
    pub nixpkgs_override: BTreeMap<String, toml::Value>,
    /// Known exceptions to the hardening gate, each with a reason.
    #[serde(default)]
    pub exceptions: Vec<HardeningException>,
    /// Ship the recipe's `[entrypoint_compat]` program and use its
    /// entrypoint and cmd; a tier that leaves it out keeps `runtime`'s.
    #[serde(default)]
    pub entrypoint_compat: bool,
    /// What the tier knowingly gives up for its hardening, by name, each
    /// with a reason (e.g. `crash-report-symbols`). The names go into the
    /// `org.armorred.tradeoffs` label so a scanner or admission policy sees
    /// them; the reasons stay in the recipe.
    #[serde(default)]
    pub tradeoffs: BTreeMap<String, String>,
}

/// The entrypoint compatibility programs the package set builds
/// (`nix/offline/entrypoint`, `bin/<name>-entrypoint`).
pub const ENTRYPOINT_PROGRAMS: &[&str] = &["nginx", "redis"];

/// An entrypoint compatibility program: a small hardened program that does
/// what the official image's entrypoint script does, so an image without a
/// shell keeps its environment variables and argument handling.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EntrypointCompat {
    /// Which program, one of [`ENTRYPOINT_PROGRAMS`].
    pub program: String,
    /// Where the image puts it, e.g. `/docker-entrypoint.sh`.
    pub path: String,
    /// The image's entrypoint in the tiers that ship it (the official image's).
    pub entrypoint: Vec<String>,
    /// The image's cmd in those tiers.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Where the image links the program's built-in step markers (the
    /// official script directory, e.g. `/docker-entrypoint.d`), for the
    /// programs in [`ENTRYPOINT_STEP_PROGRAMS`].
    #[serde(default)]
    pub steps: Option<String>,
    /// Directories the program writes to, writable (as `runtime.writable`)
    /// only in the tiers that ship it.
    #[serde(default)]
    pub writable: Vec<String>,
}

/// The programs whose output has a directory of built-in step markers
/// (`share/<name>-entrypoint.d`).
pub const ENTRYPOINT_STEP_PROGRAMS: &[&str] = &["nginx"];

impl EntrypointCompat {
    /// The program's path inside its store output.
    pub fn binary(&self) -> String {
        format!("bin/{}-entrypoint", self.program)
    }

    /// The step markers' directory inside the program's store output.
    pub fn steps_dir(&self) -> String {
        format!("share/{}-entrypoint.d", self.program)
    }

    /// Does the entrypoint's first word name this program (its path, or its
    /// file name found on `PATH`)?
    pub fn is_named_by(&self, program: &str) -> bool {
        program == self.path
            || (!program.contains('/')
                && Path::new(&self.path).file_name().and_then(|n| n.to_str()) == Some(program))
    }
}

/// A binary allowed to miss one promised property, e.g. a library with no
/// indirect calls shows no CFI trace.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HardeningException {
    /// Absolute path, or relative to the package output; `*` and `**` globs.
    pub path: String,
    /// A property name (`cfi`, `safestack`, `canary`, …) or `*`.
    pub property: String,
    pub reason: String,
}

/// A path the secret scan (CIS 4.10) may match, with the reason it is fine.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretAllowance {
    /// An absolute image path, or a directory ending in `/**`.
    pub path: String,
    pub reason: String,
}

/// Lint settings of a recipe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintSettings {
    #[serde(default)]
    pub allow_secrets: Vec<SecretAllowance>,
}

/// Runtime-contract differences from the upstream image that the recipe
/// declares on purpose (`armorred compat`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatSettings {
    #[serde(default)]
    pub allowed: Vec<CompatAllowance>,
}

/// One declared difference: a field, optionally the value the image has
/// (or, for ports/env/volumes, the item that differs), and why.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatAllowance {
    pub field: Spanned<CompatField>,
    #[serde(default)]
    pub value: Option<Spanned<CompatValue>>,
    pub reason: Spanned<String>,
}

/// The runtime-contract fields `compat` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompatField {
    Entrypoint,
    Cmd,
    Ports,
    Env,
    Volumes,
    Workdir,
    StopSignal,
    User,
}

impl CompatField {
    pub fn as_str(self) -> &'static str {
        match self {
            CompatField::Entrypoint => "entrypoint",
            CompatField::Cmd => "cmd",
            CompatField::Ports => "ports",
            CompatField::Env => "env",
            CompatField::Volumes => "volumes",
            CompatField::Workdir => "workdir",
            CompatField::StopSignal => "stop_signal",
            CompatField::User => "user",
        }
    }

    /// Entrypoint and cmd take a list value; the others one string.
    pub fn takes_list(self) -> bool {
        matches!(self, CompatField::Entrypoint | CompatField::Cmd)
    }
}

impl fmt::Display for CompatField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum CompatValue {
    One(String),
    Many(Vec<String>),
}

/// Upstream test suites the image's packages must have passed inside their
/// own Nix builds (`[tests]`). The suites and their CI subsets are defined by
/// the package expressions (nix/offline/pkgs/*.nix); a recipe selects the
/// mode and names the suites the build must show, checked against the
/// records in the closure after the build.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSettings {
    /// `ci` (default): each package's CI subset; `full`: every suite whole.
    /// `ARMORRED_UPSTREAM_TESTS` overrides it for one build.
    #[serde(default)]
    pub mode: UpstreamTestMode,
    #[serde(default)]
    pub upstream: Vec<UpstreamSuiteSpec>,
}

/// `[[tests.upstream]]`: one suite a package of the closure must have run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSuiteSpec {
    /// The package's name (`pname`) in the closure, e.g. `zlib`.
    pub package: String,
    /// The suite as the package records it, e.g. `make test`, `runtest`.
    pub suite: String,
    /// The tiers whose closure holds the package (default: both).
    #[serde(default)]
    pub tiers: Option<Vec<Tier>>,
    /// Per tier, the tags the suite leaves out and why: exactly what the
    /// build records, so a tier cannot skip more than it says.
    #[serde(default)]
    pub skip: TierSkips,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSkips {
    #[serde(default)]
    pub hardened: BTreeMap<String, String>,
    #[serde(default)]
    pub locked: BTreeMap<String, String>,
}

impl UpstreamSuiteSpec {
    /// What `tier` must show, or `None` when the package is not in its closure.
    pub fn for_tier(&self, tier: Tier) -> Option<RequiredSuite> {
        if self.tiers.as_ref().is_some_and(|t| !t.contains(&tier)) {
            return None;
        }
        let skip = match tier {
            Tier::Hardened => &self.skip.hardened,
            Tier::Locked => &self.skip.locked,
        };
        Some(RequiredSuite {
            package: self.package.clone(),
            suite: self.suite.clone(),
            skip_tags: skip.clone(),
        })
    }
}

/// A container healthcheck, as Docker's HEALTHCHECK defines it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// `["CMD", "/usr/bin/probe", "…"]` or `["CMD-SHELL", "…"]`.
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSettings {
    #[serde(default)]
    pub max_layers: Option<usize>,
}

/// Where a package comes from, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageSource {
    Attr(String),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub number: u16,
    pub proto: String,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.proto)
    }
}

/// A recipe problem, located in its file.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {key}{message}", key = key_prefix(.key))]
pub struct RecipeError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted key path such as `tiers.locked.cfi`, when known.
    pub key: Option<String>,
    pub message: String,
}

fn key_prefix(key: &Option<String>) -> String {
    key.as_ref()
        .map(|k| format!("key `{k}`: "))
        .unwrap_or_default()
}

impl Recipe {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Recipe, RecipeLoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeLoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Recipe::parse(&text, path)?)
    }

    /// Parses recipe text; `path` is used for messages and to resolve `package.file`.
    pub fn parse(text: &str, path: &Path) -> Result<Recipe, RecipeError> {
        let mut recipe: Recipe = parse_strict(text).map_err(|p| RecipeError {
            file: path.to_path_buf(),
            line: p.line,
            column: p.column,
            key: p.key,
            message: p.message,
        })?;
        recipe.path = path.to_path_buf();
        recipe.validate(text)?;
        Ok(recipe)
    }

    fn err_at(
        &self,
        text: &str,
        span: std::ops::Range<usize>,
        key: &str,
        msg: String,
    ) -> RecipeError {
        let (line, column) = line_col(text, span.start);
        RecipeError {
            file: self.path.clone(),
            line,
            column,
            key: Some(key.to_string()),
            message: msg,
        }
    }

    fn validate(&self, text: &str) -> Result<(), RecipeError> {
        // The file name is the image name users type on the command line.
        if let Some(stem) = self.path.file_stem().and_then(|s| s.to_str()) {
            if stem != self.image.name && self.path.extension().is_some_and(|e| e == "toml") {
                let span = find_key_span(text, "name");
                return Err(self.err_at(
                    text,
                    span,
                    "image.name",
                    format!(
                        "image name `{}` differs from the file name `{stem}.toml`",
                        self.image.name
                    ),
                ));
            }
        }
        match (&self.package.attr, &self.package.file) {
            (Some(_), Some(f)) => {
                return Err(self.err_at(
                    text,
                    f.span(),
                    "package.file",
                    "set either `package.attr` or `package.file`, not both".into(),
                ))
            }
            (None, None) => {
                return Err(self.err_at(
                    text,
                    find_key_span(text, "[package]"),
                    "package",
                    "missing `attr` or `file`".into(),
                ))
            }
            _ => {}
        }
        if self.runtime.entrypoint.get_ref().is_empty() {
            return Err(self.err_at(
                text,
                self.runtime.entrypoint.span(),
                "runtime.entrypoint",
                "must name at least the program".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for p in &self.runtime.ports {
            let port = parse_port(p.get_ref())
                .map_err(|m| self.err_at(text, p.span(), "runtime.ports", m))?;
            if !seen.insert(port.to_string()) {
                return Err(self.err_at(
                    text,
                    p.span(),
                    "runtime.ports",
                    format!("port `{port}` is listed twice"),
                ));
            }
        }
        for w in &self.runtime.writable {
            check_image_path(w.get_ref())
                .map_err(|m| self.err_at(text, w.span(), "runtime.writable", m))?;
        }
        for (dest, target) in &self.runtime.links {
            check_image_path(dest).map_err(|m| {
                self.err_at(text, target.span(), &format!("runtime.links.\"{dest}\""), m)
            })?;
            let t = Path::new(target.get_ref());
            if t.is_absolute() || t.components().any(|c| !matches!(c, Component::Normal(_))) {
                return Err(self.err_at(
                    text,
                    target.span(),
                    &format!("runtime.links.\"{dest}\""),
                    format!(
                        "link target `{}` must be a relative path inside the package output, without `..`",
                        target.get_ref()
                    ),
                ));
            }
        }
        if let Some(f) = &self.package.file {
            let p = Path::new(f.get_ref());
            if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(self.err_at(
                    text,
                    f.span(),
                    "package.file",
                    "must be a relative path next to the recipe, without `..`".into(),
                ));
            }
        }
        for (tier, spec) in [
            ("hardened", &self.tiers.hardened),
            ("locked", &self.tiers.locked),
        ] {
            for ex in &spec.exceptions {
                let key = format!("tiers.{tier}.exceptions");
                if ex.property != "*" {
                    if let Err(e) = ex.property.parse::<crate::analyze::Property>() {
                        return Err(self.err_at(
                            text,
                            find_key_span(text, "property"),
                            &key,
                            e.to_string(),
                        ));
                    }
                }
                if ex.reason.trim().is_empty() {
                    return Err(self.err_at(
                        text,
                        find_key_span(text, "reason"),
                        &key,
                        "an exception needs a reason".into(),
                    ));
                }
            }
        }
        for (i, a) in self.compat.allowed.iter().enumerate() {
            let key = format!("compat.allowed[{i}]");
            let field = *a.field.get_ref();
            if a.reason.get_ref().trim().is_empty() {
                return Err(self.err_at(
                    text,
                    a.reason.span(),
                    &key,
                    "a declared difference needs a reason".into(),
                ));
            }
            if let Some(v) = &a.value {
                let msg = match (v.get_ref(), field.takes_list()) {
                    (CompatValue::One(_), true) => Some(format!(
                        "`{field}` takes a list value, e.g. [\"/usr/sbin/nginx\"]"
                    )),
                    (CompatValue::Many(_), false) => {
                        Some(format!("`{field}` takes one string value"))
                    }
                    (CompatValue::One(p), false) if field == CompatField::Ports => {
                        parse_port(p).err()
                    }
                    (CompatValue::One(p), false) if p.trim().is_empty() => {
                        Some("the value must not be empty".into())
                    }
                    _ => None,
                };
                if let Some(m) = msg {
                    return Err(self.err_at(text, v.span(), &key, m));
                }
            }
        }
        if let Some(ec) = &self.entrypoint_compat {
            let span = find_key_span(text, "[entrypoint_compat]");
            if !ENTRYPOINT_PROGRAMS.contains(&ec.program.as_str()) {
                return Err(self.err_at(
                    text,
                    span,
                    "entrypoint_compat.program",
                    format!(
                        "unknown program `{}` (known: {})",
                        ec.program,
                        ENTRYPOINT_PROGRAMS.join(", ")
                    ),
                ));
            }
            check_image_path(&ec.path)
                .map_err(|m| self.err_at(text, span.clone(), "entrypoint_compat.path", m))?;
            if let Some(steps) = &ec.steps {
                check_image_path(steps)
                    .map_err(|m| self.err_at(text, span.clone(), "entrypoint_compat.steps", m))?;
                if !ENTRYPOINT_STEP_PROGRAMS.contains(&ec.program.as_str()) {
                    return Err(self.err_at(
                        text,
                        span,
                        "entrypoint_compat.steps",
                        format!("program `{}` has no built-in steps to link", ec.program),
                    ));
                }
            }
            for w in &ec.writable {
                check_image_path(w).map_err(|m| {
                    self.err_at(text, span.clone(), "entrypoint_compat.writable", m)
                })?;
            }
            if !ec.entrypoint.first().is_some_and(|p| ec.is_named_by(p)) {
                return Err(self.err_at(
                    text,
                    span,
                    "entrypoint_compat.entrypoint",
                    format!(
                        "must start with the program's path `{}` (or its file name, found on PATH)",
                        ec.path
                    ),
                ));
            }
        }
        for (tier, spec) in [
            ("hardened", &self.tiers.hardened),
            ("locked", &self.tiers.locked),
        ] {
            for (name, reason) in &spec.tradeoffs {
                let key = format!("tiers.{tier}.tradeoffs.{name}");
                let valid = name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
                // `name =` so a name that begins another key's line (`tls`,
                // `drop`) is not located there
                let mut span = find_key_span(text, &format!("{name} ="));
                if span.is_empty() {
                    span = find_key_span(text, &format!("\"{name}\""));
                }
                if !valid {
                    return Err(self.err_at(
                        text,
                        span.clone(),
                        &key,
                        "a trade-off's name is lowercase letters, digits and `-`, starting with a letter (it goes into a comma-separated label)".into(),
                    ));
                }
                if reason.trim().is_empty() {
                    return Err(self.err_at(text, span, &key, "a trade-off needs a reason".into()));
                }
            }
            if spec.entrypoint_compat && self.entrypoint_compat.is_none() {
                return Err(self.err_at(
                    text,
                    find_key_span(text, "entrypoint_compat"),
                    &format!("tiers.{tier}.entrypoint_compat"),
                    "the tier asks for the entrypoint compatibility program, but the recipe has no `[entrypoint_compat]` section".into(),
                ));
            }
        }
        let mut platforms = BTreeSet::new();
        for p in &self.image.platforms {
            let span = find_key_span(text, "platforms");
            if let Err(m) = crate::platform::System::parse(p) {
                return Err(self.err_at(text, span, "image.platforms", m));
            }
            if !platforms.insert(p) {
                return Err(self.err_at(
                    text,
                    span,
                    "image.platforms",
                    format!("platform `{p}` is listed twice"),
                ));
            }
        }
        if let Some(0) = self.layers.max_layers {
            return Err(self.err_at(
                text,
                find_key_span(text, "max_layers"),
                "layers.max_layers",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn tier(&self, tier: Tier) -> &TierSpec {
        match tier {
            Tier::Hardened => &self.tiers.hardened,
            Tier::Locked => &self.tiers.locked,
        }
    }

    pub fn package_source(&self) -> PackageSource {
        match (&self.package.attr, &self.package.file) {
            (Some(a), _) => PackageSource::Attr(a.get_ref().clone()),
            (None, Some(f)) => {
                let dir = self.path.parent().unwrap_or(Path::new("."));
                PackageSource::File(dir.join(f.get_ref()))
            }
            (None, None) => unreachable!("validated: one of attr/file is set"),
        }
    }

    pub fn ports(&self) -> Vec<Port> {
        self.runtime
            .ports
            .iter()
            .map(|p| parse_port(p.get_ref()).expect("validated in Recipe::parse"))
            .collect()
    }

    pub fn writable(&self) -> Vec<String> {
        self.runtime
            .writable
            .iter()
            .map(|w| w.get_ref().clone())
            .collect()
    }

    pub fn user(&self) -> &str {
        self.runtime.user.as_deref().unwrap_or(DEFAULT_USER)
    }

    /// The platforms to build: `image.platforms`, else `x86_64-linux`.
    pub fn platforms(&self) -> Vec<String> {
        if self.image.platforms.is_empty() {
            vec![crate::platform::System::X86_64_LINUX.to_string()]
        } else {
            self.image.platforms.clone()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeLoadError {
    #[error("cannot read recipe {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] RecipeError),
}

/// `8080`, `8080/tcp` or `53/udp`.
pub fn parse_port(s: &str) -> Result<Port, String> {
    let (num, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let number: u16 = num.parse().ok().filter(|n| *n != 0).ok_or_else(|| {
        format!("`{s}` is not a port: expected 1-65535 with an optional /tcp or /udp")
    })?;
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(format!("`{s}`: protocol must be tcp, udp or sctp"));
    }
    Ok(Port {
        number,
        proto: proto.to_string(),
    })
}

/// An absolute, normalized path inside the image (no `..`, no `.`, no `//`).
pub fn check_image_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("`{p}` must be an absolute path inside the image"));
    }
    // Split by hand: `Path::components` silently drops `.` segments.
    if p[1..].split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(format!("`{p}` must not contain `..` or `.`"));
    }
    if p.contains("//") || p == "/" || p.ends_with('/') {
        return Err(format!("`{p}` is not a normalized path below `/`"));
    }
    Ok(())
}

/// Where and why strict TOML parsing failed.
#[derive(Debug)]
pub struct TomlProblem {
    pub line: usize,
    pub column: usize,
    /// Dotted key path such as `tiers.locked.cfi`, when known.
    pub key: Option<String>,
    pub message: String,
}

/// Deserializes TOML into `T`, locating any error by line, column and key.
/// Strictness (unknown keys) comes from `T`'s `deny_unknown_fields`.
pub fn parse_strict<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlProblem> {
    let located = |span: Option<std::ops::Range<usize>>, key: Option<String>, message| {
        let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        TomlProblem {
            line,
            column,
            key,
            message,
        }
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| located(e.span(), None, e.message().to_string()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let key = (key != "." && !key.is_empty()).then_some(key);
        located(inner.span(), key, inner.message().to_string())
    })
}

pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

/// Best-effort location of a key for errors that serde did not locate.
fn find_key_span(text: &str, key: &str) -> std::ops::Range<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with(key) {
            let start = offset + (line.len() - line.trim_start().len());
            return start..start + key.len();
        }
        offset += line.len();
    }
    0..0
}

/// Lists the recipes (`*.toml`) of a directory, sorted by name.
pub fn list_recipe_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) const NGINX: &str = r#"
[image]
name = "nginx"
version = "1.22.1"
description = "Hardened nginx"
upstream = "docker.io/library/nginx:1.22.1"

[package]
attr = "nginx"

[runtime]
entrypoint = ["/usr/sbin/nginx"]
cmd = ["-g", "daemon off;"]
ports = ["8080/tcp"]
writable = ["/tmp", "/var/cache/nginx"]
stop_signal = "SIGQUIT"
links = { "/usr/sbin/nginx" = "bin/nginx" }

[tiers.hardened]
cfi = false
lto = true
safestack = true
shell = false
coreutils = false

[tiers.locked]
cfi = true
lto = true
safestack = true
shell = true
coreutils = true
drop = ["mail", "stream"]
"#;
}

#[cfg(test)]
mod tests {
    use super::tests_support::NGINX;
    use super::*;

    fn parse(text: &str) -> Result<Recipe, RecipeError> {
        Recipe::parse(text, Path::new("recipes/nginx.toml"))
    }

    #[test]
    fn parses_a_full_recipe() {
        let r = parse(NGINX).unwrap();
        assert_eq!(r.image.name, "nginx");
        assert_eq!(r.package_source(), PackageSource::Attr("nginx".into()));
        assert_eq!(r.ports()[0].to_string(), "8080/tcp");
        assert_eq!(r.user(), "65534");
        assert!(r.tier(Tier::Locked).cfi);
        assert!(!r.tier(Tier::Hardened).cfi);
        assert_eq!(r.tier(Tier::Locked).drop, vec!["mail", "stream"]);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = NGINX.replace("cfi = true", "cfi = true\nlua = false");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.file, Path::new("recipes/nginx.toml"));
        assert_eq!(e.line, 28, "{e}");
        assert!(e.message.contains("unknown field `lua`"), "{e}");
        assert_eq!(e.key.as_deref(), Some("tiers.locked.lua"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let text = NGINX.replace("cfi = false", "cfi = \"no\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("tiers.hardened.cfi"));
        assert_eq!(e.line, 20);
        assert!(e.to_string().starts_with("recipes/nginx.toml:20:"), "{e}");
    }

    #[test]
    fn missing_field_is_an_error() {
        let text = NGINX.replace("upstream = \"docker.io/library/nginx:1.22.1\"\n", "");
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("missing field `upstream`"), "{e}");
        assert_eq!(e.key.as_deref(), Some("image"));
    }

    #[test]
    fn a_tradeoff_needs_a_label_safe_name_and_a_reason() {
        let with = |body: &str| {
            NGINX.replacen(
                "drop = [\"mail\", \"stream\"]\n",
                &format!("drop = [\"mail\", \"stream\"]\n\n[tiers.locked.tradeoffs]\n{body}\n"),
                1,
            )
        };
        let r = parse(&with("crash-report-symbols = \"CFI hides symbol names\"")).unwrap();
        assert_eq!(
            r.tier(Tier::Locked).tradeoffs["crash-report-symbols"],
            "CFI hides symbol names"
        );
        assert!(r.tier(Tier::Hardened).tradeoffs.is_empty());

        let e = parse(&with("\"Crash,Symbols\" = \"x\"")).unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("tiers.locked.tradeoffs.Crash,Symbols"),
            "{e}"
        );
        assert_eq!(e.line, 35, "{e}");
        assert!(e.message.contains("lowercase"), "{e}");

        let e = parse(&with("crash-report-symbols = \" \"")).unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("tiers.locked.tradeoffs.crash-report-symbols"),
            "{e}"
        );
        assert!(e.message.contains("needs a reason"), "{e}");
    }

    #[test]
    fn malformed_toml_is_located() {
        let e = parse("[image\nname = 1").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.key.is_none());
    }

    #[test]
    fn bad_writable_paths() {
        for bad in ["tmp", "/var/../etc", "/var/./x"] {
            let text = NGINX.replace("\"/var/cache/nginx\"", &format!("\"{bad}\""));
            let e = parse(&text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("runtime.writable"), "{bad}: {e}");
            assert_eq!(e.line, 15);
        }
    }

    #[test]
    fn bad_and_duplicate_ports() {
        let e = parse(&NGINX.replace("[\"8080/tcp\"]", "[\"8080/tcp\", \"8080\"]")).unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
        for bad in ["0", "70000", "80/icmp", "http"] {
            let e = parse(&NGINX.replace("\"8080/tcp\"", &format!("\"{bad}\""))).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("runtime.ports"), "{bad}");
        }
    }

    #[test]
    fn package_needs_exactly_one_source() {
        let both = NGINX.replace("attr = \"nginx\"", "attr = \"nginx\"\nfile = \"x.nix\"");
        assert!(parse(&both).unwrap_err().message.contains("not both"));
        let none = NGINX.replace("attr = \"nginx\"", "");
        assert!(parse(&none).unwrap_err().message.contains("missing"));
        let up = NGINX.replace("attr = \"nginx\"", "file = \"../x.nix\"");
        assert_eq!(parse(&up).unwrap_err().key.as_deref(), Some("package.file"));
    }

    #[test]
    fn name_must_match_file() {
        let e = Recipe::parse(NGINX, Path::new("recipes/redis.toml")).unwrap_err();
        assert!(e.message.contains("differs from the file name"));
    }

    #[test]
    fn link_targets_stay_inside_the_package() {
        let text = NGINX.replace("\"bin/nginx\"", "\"../../etc/shadow\"");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn compat_allowances_parse_strictly() {
        let ok = format!(
            "{NGINX}\n[[compat.allowed]]\nfield = \"entrypoint\"\nvalue = [\"/usr/sbin/nginx\"]\nreason = \"no shell\"\n\n[[compat.allowed]]\nfield = \"stop_signal\"\nreason = \"x\"\n"
        );
        let r = parse(&ok).unwrap();
        assert_eq!(r.compat.allowed.len(), 2);
        assert_eq!(
            *r.compat.allowed[1].field.get_ref(),
            CompatField::StopSignal
        );
        for (bad, key, what) in [
            (
                "field = \"volume\"\nreason = \"x\"",
                "compat.allowed",
                "unknown variant `volume`",
            ),
            (
                "field = \"user\"\nreason = \" \"",
                "compat.allowed[0]",
                "needs a reason",
            ),
            (
                "field = \"user\"\nvalue = [\"1\"]\nreason = \"x\"",
                "compat.allowed[0]",
                "one string",
            ),
            (
                "field = \"cmd\"\nvalue = \"-g\"\nreason = \"x\"",
                "compat.allowed[0]",
                "list value",
            ),
            (
                "field = \"ports\"\nvalue = \"http\"\nreason = \"x\"",
                "compat.allowed[0]",
                "not a port",
            ),
            (
                "field = \"user\"\nreason = \"x\"\nwhy = 1",
                "compat.allowed",
                "unknown field `why`",
            ),
        ] {
            let text = format!("{NGINX}\n[[compat.allowed]]\n{bad}\n");
            let e = parse(&text).unwrap_err();
            assert!(e.message.contains(what), "{bad}: {e}");
            assert!(
                e.key.as_deref().unwrap_or("").starts_with(key),
                "{bad}: {e}"
            );
            assert!(e.line > 30, "{bad}: located at {e}");
        }
    }

    #[test]
    fn entrypoint_compat_is_validated() {
        let section = "\n[entrypoint_compat]\nprogram = \"nginx\"\npath = \"/docker-entrypoint.sh\"\nentrypoint = [\"/docker-entrypoint.sh\"]\ncmd = [\"nginx\", \"-g\", \"daemon off;\"]\n";
        let on = NGINX.replacen(
            "coreutils = false\n",
            "coreutils = false\nentrypoint_compat = true\n",
            1,
        );
        let r = parse(&format!("{on}{section}")).unwrap();
        assert!(r.tier(Tier::Hardened).entrypoint_compat);
        assert!(!r.tier(Tier::Locked).entrypoint_compat);
        let ec = r.entrypoint_compat.as_ref().unwrap();
        assert_eq!(ec.binary(), "bin/nginx-entrypoint");
        assert!(ec.is_named_by("/docker-entrypoint.sh") && ec.is_named_by("docker-entrypoint.sh"));
        assert!(!ec.is_named_by("/usr/sbin/nginx"));

        // a tier asking for it without the section
        let e = parse(&on).unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("tiers.hardened.entrypoint_compat"),
            "{e}"
        );
        for (bad, key) in [
            ("program = \"nginx\"", "program = \"apache\""),
            (
                "path = \"/docker-entrypoint.sh\"",
                "path = \"docker-entrypoint.sh\"",
            ),
            (
                "entrypoint = [\"/docker-entrypoint.sh\"]",
                "entrypoint = [\"/usr/sbin/nginx\"]",
            ),
            ("cmd = [", "steps = \"docker-entrypoint.d\"\ncmd = ["),
            ("cmd = [", "writable = [\"/etc/../x\"]\ncmd = ["),
        ] {
            let text = format!("{on}{}", section.replace(bad, key));
            let e = parse(&text).unwrap_err();
            assert!(
                e.key
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("entrypoint_compat."),
                "{key}: {e}"
            );
        }
        let e = parse(&format!("{on}{section}\nshell = true\n")).unwrap_err();
        assert!(e.message.contains("unknown field `shell`"), "{e}");
        // only a program with built-in step markers can link them
        let redis = section
            .replace("program = \"nginx\"", "program = \"redis\"")
            .replace("cmd = [", "steps = \"/docker-entrypoint.d\"\ncmd = [");
        let e = parse(&format!("{on}{redis}")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("entrypoint_compat.steps"), "{e}");
    }

    #[test]
    fn platforms_are_validated() {
        assert_eq!(parse(NGINX).unwrap().platforms(), ["x86_64-linux"]);
        let two = NGINX.replace(
            "upstream = \"docker.io/library/nginx:1.22.1\"",
            "upstream = \"docker.io/library/nginx:1.22.1\"\nplatforms = [\"x86_64-linux\", \"aarch64-linux\"]",
        );
        assert_eq!(parse(&two).unwrap().platforms().len(), 2);
        for bad in ["[\"arm64\"]", "[\"x86_64-linux\", \"x86_64-linux\"]"] {
            let text = NGINX.replace(
                "upstream = \"docker.io/library/nginx:1.22.1\"",
                &format!("upstream = \"docker.io/library/nginx:1.22.1\"\nplatforms = {bad}"),
            );
            let e = parse(&text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("image.platforms"), "{e}");
            assert_eq!(e.line, 7, "{e}");
        }
    }
}

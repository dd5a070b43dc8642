//! Stage 2: [`Recipe`] + [`Tier`] + options → [`BuildPlan`]. Pure: no I/O.
//!
//! The plan is everything later stages need, resolved once: which package to
//! build from which package set, with which hardening switches and dropped
//! features, and the runtime config and labels of the image. `armorred plan`
//! prints it without building anything.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;

use crate::recipe::{PackageSource, Port, Recipe};
use crate::tier::Tier;
use crate::upstream_tests::{RequiredSuite, UpstreamTestMode};

/// The default cap on the number of layers (one per store path below it).
pub const DEFAULT_MAX_LAYERS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageSet {
    /// `nix/offline`: pinned upstream tarballs, host clang, no network.
    Offline,
    /// `nix/` overlay over the nixpkgs pinned in `flake.lock` (Nix ≥ 2.18).
    Nixpkgs,
}

impl PackageSet {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageSet::Offline => "offline",
            PackageSet::Nixpkgs => "nixpkgs",
        }
    }
}

impl fmt::Display for PackageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PackageSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "offline" => Ok(PackageSet::Offline),
            "nixpkgs" => Ok(PackageSet::Nixpkgs),
            o => Err(format!(
                "unknown package set `{o}`: expected `offline` or `nixpkgs`"
            )),
        }
    }
}

/// The compiler hardening switches of one tier. The always-on base set
/// (FORTIFY_SOURCE=3, stack protector, stack-clash, PIE, RELRO, BIND_NOW,
/// NX) is not switchable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hardening {
    pub cfi: bool,
    pub lto: bool,
    pub safestack: bool,
}

impl Hardening {
    /// Control-flow enforcement (`-fcf-protection=full`) is used only where
    /// CFI is off: clang 14 emits `int3` jump-table entries when both are on,
    /// which killed nginx at start-up (see ENVIRONMENT.md).
    pub fn cet(self) -> bool {
        !self.cfi
    }

    /// The names recorded in `org.armorred.hardening`, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        let mut v = vec![
            "fortify3",
            "stackprotector",
            "stackclash",
            "pie",
            "relro",
            "bindnow",
            "nx",
        ];
        if self.cet() {
            v.push("cet");
        }
        if self.cfi {
            v.push("cfi");
        }
        // CFI needs LTO, so asking for CFI implies it.
        if self.lto || self.cfi {
            v.push("lto");
        }
        if self.safestack {
            v.push("safestack");
        }
        v
    }
}

/// Options that come from the command line or the environment, not the recipe.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub package_set: PackageSet,
    pub source_date_epoch: i64,
    pub max_layers: Option<usize>,
    /// VCS revision of the recipes, for `org.opencontainers.image.revision`.
    pub revision: Option<String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            package_set: PackageSet::Offline,
            source_date_epoch: 1,
            max_layers: None,
            revision: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimePlan {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<String>,
    pub workdir: Option<String>,
    pub writable: Vec<String>,
    pub stop_signal: Option<String>,
    pub user: String,
    /// Image path → path relative to the package output.
    pub links: BTreeMap<String, String>,
    pub healthcheck: Option<crate::recipe::Healthcheck>,
}

/// The recipe's `[tests]` for one tier.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpstreamTestsPlan {
    pub mode: UpstreamTestMode,
    pub required: Vec<RequiredSuite>,
}

/// Everything needed to build one tier of one image.
#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    pub image: String,
    pub version: String,
    pub tier: Tier,
    pub description: String,
    pub upstream: String,
    pub package_set: PackageSet,
    pub package: PackageSource,
    pub hardening: Hardening,
    pub hardening_names: Vec<&'static str>,
    pub drop: Vec<String>,
    pub nixpkgs_override: BTreeMap<String, serde_json::Value>,
    pub shell: bool,
    pub coreutils: bool,
    pub runtime: RuntimePlan,
    /// The upstream test suites the build must show (recipe `[tests]`).
    pub upstream_tests: UpstreamTestsPlan,
    pub max_layers: usize,
    pub source_date_epoch: i64,
    pub labels: BTreeMap<String, String>,
    #[serde(skip)]
    pub recipe_path: PathBuf,
}

impl BuildPlan {
    pub fn new(recipe: &Recipe, tier: Tier, opts: &PlanOptions) -> BuildPlan {
        let spec = recipe.tier(tier);
        let hardening = Hardening {
            cfi: spec.cfi,
            lto: spec.lto || spec.cfi,
            safestack: spec.safestack,
        };
        let runtime = RuntimePlan {
            entrypoint: recipe.runtime.entrypoint.get_ref().clone(),
            cmd: recipe.runtime.cmd.clone(),
            env: recipe.runtime.env.clone(),
            ports: recipe.ports().iter().map(Port::to_string).collect(),
            workdir: recipe.runtime.workdir.clone(),
            writable: recipe.writable(),
            stop_signal: recipe.runtime.stop_signal.clone(),
            user: recipe.user().to_string(),
            links: recipe
                .runtime
                .links
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                .collect(),
            healthcheck: recipe.runtime.healthcheck.clone(),
        };
        let mut plan = BuildPlan {
            image: recipe.image.name.clone(),
            version: recipe.image.version.clone(),
            tier,
            description: recipe.image.description.clone(),
            upstream: recipe.image.upstream.clone(),
            package_set: opts.package_set,
            package: recipe.package_source(),
            hardening,
            hardening_names: hardening.names(),
            drop: spec.drop.clone(),
            nixpkgs_override: spec
                .nixpkgs_override
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
            shell: spec.shell,
            coreutils: spec.coreutils,
            runtime,
            upstream_tests: UpstreamTestsPlan {
                mode: recipe.tests.mode,
                required: recipe
                    .tests
                    .upstream
                    .iter()
                    .filter_map(|u| u.for_tier(tier))
                    .collect(),
            },
            max_layers: opts
                .max_layers
                .or(recipe.layers.max_layers)
                .unwrap_or(DEFAULT_MAX_LAYERS),
            source_date_epoch: opts.source_date_epoch,
            labels: BTreeMap::new(),
            recipe_path: recipe.path.clone(),
        };
        plan.labels = plan.base_labels(recipe, opts);
        plan
    }

    fn base_labels(&self, recipe: &Recipe, opts: &PlanOptions) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            l.insert(k.to_string(), v);
        };
        put("org.armorred.base", "scratch".into());
        put("org.armorred.tier", self.tier.to_string());
        // What was asked of the compiler; `org.armorred.hardening` (set after
        // the build) holds only what the binaries prove.
        put(
            "org.armorred.hardening.flags",
            self.hardening_names.join(","),
        );
        if !self.runtime.writable.is_empty() {
            put("org.armorred.writable", self.runtime.writable.join(","));
        }
        put("org.armorred.package-set", self.package_set.to_string());
        put("org.armorred.upstream", self.upstream.clone());
        if !self.drop.is_empty() {
            put("org.armorred.dropped-features", self.drop.join(","));
        }
        put("org.opencontainers.image.title", self.image.clone());
        put("org.opencontainers.image.version", self.version.clone());
        put(
            "org.opencontainers.image.description",
            format!("{} ({} tier)", self.description, self.tier),
        );
        put(
            "org.opencontainers.image.created",
            rfc3339_utc(self.source_date_epoch),
        );
        if let Some(rev) = &opts.revision {
            put("org.opencontainers.image.revision", rev.clone());
        }
        if let Some(src) = &recipe.image.source {
            put("org.opencontainers.image.source", src.clone());
        }
        if !recipe.image.licenses.is_empty() {
            put(
                "org.opencontainers.image.licenses",
                recipe.image.licenses.join(" AND "),
            );
        }
        l
    }
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Formats seconds since the epoch as RFC 3339 UTC without any clock access,
/// so `created` depends only on `SOURCE_DATE_EPOCH`.
pub fn rfc3339_utc(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Recipe;
    use std::path::Path;

    fn recipe() -> Recipe {
        Recipe::parse(
            crate::recipe::tests_support::NGINX,
            Path::new("recipes/nginx.toml"),
        )
        .unwrap()
    }

    #[test]
    fn epoch_formatting() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1), "1970-01-01T00:00:01Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn tiers_differ_in_switches_and_labels() {
        let r = recipe();
        let opts = PlanOptions::default();
        let h = BuildPlan::new(&r, Tier::Hardened, &opts);
        let l = BuildPlan::new(&r, Tier::Locked, &opts);
        assert!(h.hardening.cet() && !h.hardening.cfi);
        assert!(l.hardening.cfi && !l.hardening.cet());
        assert!(h.hardening_names.contains(&"cet"));
        assert!(l.hardening_names.contains(&"cfi"));
        assert!(!l.hardening_names.contains(&"cet"));
        assert_eq!(h.labels["org.armorred.tier"], "hardened");
        assert_eq!(l.labels["org.armorred.tier"], "locked");
        assert_eq!(l.labels["org.armorred.dropped-features"], "mail,stream");
        assert!(!h.labels.contains_key("org.armorred.dropped-features"));
        assert_eq!(h.labels["org.armorred.base"], "scratch");
        assert_eq!(
            h.labels["org.opencontainers.image.created"],
            "1970-01-01T00:00:01Z"
        );
        assert_eq!(
            l.labels["org.opencontainers.image.description"],
            "Hardened nginx (locked tier)"
        );
        assert!(!l.shell || l.coreutils);
        assert_eq!(h.runtime.user, "65534");
    }

    #[test]
    fn max_layers_precedence() {
        let r = recipe();
        let mut opts = PlanOptions::default();
        assert_eq!(BuildPlan::new(&r, Tier::Locked, &opts).max_layers, 100);
        opts.max_layers = Some(7);
        assert_eq!(BuildPlan::new(&r, Tier::Locked, &opts).max_layers, 7);
    }

    #[test]
    fn cfi_implies_lto() {
        let h = Hardening {
            cfi: true,
            lto: false,
            safestack: false,
        };
        assert!(h.names().contains(&"lto"));
    }
}

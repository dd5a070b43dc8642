//! Stage 2: [`Recipe`] + [`Tier`] + options → [`BuildPlan`]. Pure: no I/O.
//!
//! The plan is everything later stages need, resolved once: which package to
//! build from which package set, with which hardening switches and dropped
//! features, and the runtime config and labels of the image. `armorred plan`
//! prints it without building anything. The facts of the package itself
//! (version, licences) are Nix's: the caller evaluates them once and
//! [`BuildPlan::apply_package_facts`] checks the recipe against them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::recipe::{EntrypointCompat, PackageSource, Port, Recipe};
use crate::tier::Tier;
use crate::upstream_tests::{RequiredSuite, UpstreamTestMode};

/// The default cap on the number of layers (one per store path below it).
pub const DEFAULT_MAX_LAYERS: usize = 100;

pub use crate::package_set::PackageSet;

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
///
/// The version, description and licences are what Nix reports for the
/// package (see [`BuildPlan::apply_package_facts`]); until then `version`
/// holds the recipe's expectation, or nothing.
#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    pub image: String,
    pub version: String,
    pub tier: Tier,
    pub description: String,
    /// SPDX expressions from the package set's `meta` (ANDed in the label).
    pub licenses: Vec<String>,
    /// Whether version and licences are Nix's (`apply_package_facts` ran).
    pub facts_from_nix: bool,
    /// What the recipe says it expects, checked against Nix's facts.
    #[serde(skip)]
    pub expected: RecipeExpectations,
    pub upstream: String,
    pub package_set: PackageSet,
    pub package: PackageSource,
    pub hardening: Hardening,
    pub hardening_names: Vec<&'static str>,
    pub drop: Vec<String>,
    pub nixpkgs_override: BTreeMap<String, serde_json::Value>,
    pub shell: bool,
    pub coreutils: bool,
    /// The entrypoint compatibility program this tier ships, if any; its
    /// entrypoint and cmd are then `runtime`'s.
    pub entrypoint_compat: Option<EntrypointCompat>,
    /// What the tier knowingly gives up, name → reason (the recipe's
    /// `tradeoffs`); the names are labelled.
    pub tradeoffs: BTreeMap<String, String>,
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
        let entrypoint_compat = recipe
            .entrypoint_compat
            .clone()
            .filter(|_| spec.entrypoint_compat);
        let (entrypoint, cmd) = match &entrypoint_compat {
            Some(ec) => (ec.entrypoint.clone(), ec.cmd.clone()),
            None => (
                recipe.runtime.entrypoint.get_ref().clone(),
                recipe.runtime.cmd.clone(),
            ),
        };
        let runtime = RuntimePlan {
            entrypoint,
            cmd,
            env: recipe.runtime.env.clone(),
            ports: recipe.ports().iter().map(Port::to_string).collect(),
            workdir: recipe.runtime.workdir.clone(),
            writable: recipe
                .writable()
                .into_iter()
                .chain(entrypoint_compat.iter().flat_map(|ec| ec.writable.clone()))
                .collect(),
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
            version: recipe.image.version.clone().unwrap_or_default(),
            tier,
            description: recipe.image.description.clone().unwrap_or_default(),
            licenses: Vec::new(),
            facts_from_nix: false,
            expected: RecipeExpectations {
                version: recipe.image.version.clone(),
                description: recipe.image.description.clone(),
                licenses: recipe.image.licenses.clone(),
            },
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
            entrypoint_compat,
            tradeoffs: spec.tradeoffs.clone(),
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
        if let Some(ec) = &self.entrypoint_compat {
            put("org.armorred.entrypoint-compat", ec.program.clone());
        }
        if !self.tradeoffs.is_empty() {
            let names: Vec<&str> = self.tradeoffs.keys().map(String::as_str).collect();
            put("org.armorred.tradeoffs", names.join(","));
        }
        put("org.opencontainers.image.title", self.image.clone());
        put(
            "org.opencontainers.image.created",
            crate::base::time::rfc3339_utc(self.source_date_epoch),
        );
        if let Some(rev) = &opts.revision {
            put("org.opencontainers.image.revision", rev.clone());
        }
        if let Some(src) = &recipe.image.source {
            put("org.opencontainers.image.source", src.clone());
        }
        l
    }

    /// Takes the version, licences and (unless the recipe gives one) the
    /// description from what the package set reports for the derivation it
    /// builds, and checks them against what the recipe expects. Pure: the
    /// caller evaluates `meta` once (`nix::eval_meta`, `PackageMeta::facts`).
    pub fn apply_package_facts(&mut self, meta: &PackageFacts) -> Result<(), FactsError> {
        let recipe = self.recipe_path.display().to_string();
        if meta.version.is_empty() {
            return Err(FactsError::NoVersion {
                recipe,
                package: meta.name.clone(),
            });
        }
        if let Some(want) = &self.expected.version {
            if want != &meta.version {
                return Err(FactsError::VersionMismatch {
                    recipe,
                    expected: want.clone(),
                    built: meta.version.clone(),
                    package: meta.name.clone(),
                });
            }
        }
        let want = license_expression(&self.expected.licenses);
        let have = license_expression(&meta.licenses);
        if !self.expected.licenses.is_empty() && want != have {
            return Err(FactsError::LicenseMismatch {
                recipe,
                expected: want,
                built: if have.is_empty() { "none".into() } else { have },
                package: meta.name.clone(),
            });
        }
        self.version = meta.version.clone();
        self.licenses = meta.licenses.clone();
        self.description = match &self.expected.description {
            Some(d) => d.clone(),
            None => format!("Hardened {} {}", meta.name, meta.version),
        };
        self.facts_from_nix = true;
        let mut put = |k: &str, v: String| {
            self.labels.insert(k.to_string(), v);
        };
        put("org.opencontainers.image.version", self.version.clone());
        put(
            "org.opencontainers.image.description",
            format!("{} ({} tier)", self.description, self.tier),
        );
        if !self.licenses.is_empty() {
            put(
                "org.opencontainers.image.licenses",
                license_expression(&self.licenses),
            );
        }
        Ok(())
    }
}

/// What the package set reports about the derivation it builds: `pname`,
/// `version` and `meta.license` as SPDX expressions (`nix/build.nix`'s `meta`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageFacts {
    pub name: String,
    pub version: String,
    pub licenses: Vec<String>,
}

/// What a recipe states about the package, to be checked against Nix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipeExpectations {
    pub version: Option<String>,
    pub description: Option<String>,
    pub licenses: Vec<String>,
}

/// The recipe and what Nix builds disagree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FactsError {
    #[error(
        "{recipe}: `image.version` is \"{expected}\", but the package set builds \
         {package} \"{built}\""
    )]
    VersionMismatch {
        recipe: String,
        expected: String,
        built: String,
        package: String,
    },
    #[error(
        "{recipe}: `image.licenses` says \"{expected}\", but the package set's meta for \
         {package} says \"{built}\""
    )]
    LicenseMismatch {
        recipe: String,
        expected: String,
        built: String,
        package: String,
    },
    #[error("{recipe}: the package set reports no version for {package}")]
    NoVersion { recipe: String, package: String },
}

impl FactsError {
    pub fn hint(&self) -> &'static str {
        match self {
            FactsError::VersionMismatch { .. } => {
                "update or remove `version` in the recipe's [image] table; the label always carries the version Nix built"
            }
            FactsError::LicenseMismatch { .. } => {
                "remove `licenses` from the recipe (the label takes the package set's licences), or fix the package's meta"
            }
            FactsError::NoVersion { .. } => "give the package a `version` attribute",
        }
    }
}

/// Several SPDX expressions that all apply, as one: each compound one is
/// parenthesised, then all are joined with AND.
pub fn license_expression(licenses: &[String]) -> String {
    let parts: Vec<String> = licenses
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            if licenses.len() > 1 && l.contains(' ') && !(l.starts_with('(') && l.ends_with(')')) {
                format!("({l})")
            } else {
                l.to_string()
            }
        })
        .collect();
    parts.join(" AND ")
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
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
        assert_eq!(crate::base::time::rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(crate::base::time::rfc3339_utc(1), "1970-01-01T00:00:01Z");
        assert_eq!(
            crate::base::time::rfc3339_utc(1_700_000_000),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            crate::base::time::rfc3339_utc(951_782_400),
            "2000-02-29T00:00:00Z"
        );
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
        // Version, description and licences wait for Nix's facts.
        assert!(!l.labels.contains_key("org.opencontainers.image.version"));
        assert!(!l
            .labels
            .contains_key("org.opencontainers.image.description"));
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

    fn facts(version: &str, licenses: &[&str]) -> PackageFacts {
        PackageFacts {
            name: "nginx".into(),
            version: version.into(),
            licenses: licenses.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn labels_take_the_version_and_licences_nix_reports() {
        let r = recipe();
        let mut p = BuildPlan::new(&r, Tier::Locked, &PlanOptions::default());
        p.apply_package_facts(&facts("1.22.1", &["BSD-2-Clause"]))
            .unwrap();
        assert!(p.facts_from_nix);
        assert_eq!(p.labels["org.opencontainers.image.version"], "1.22.1");
        assert_eq!(
            p.labels["org.opencontainers.image.licenses"],
            "BSD-2-Clause"
        );
        // The recipe's description wins over the generated one.
        assert_eq!(
            p.labels["org.opencontainers.image.description"],
            "Hardened nginx (locked tier)"
        );
    }

    #[test]
    fn without_recipe_version_and_description_nix_fills_them() {
        let text = crate::recipe::tests_support::NGINX
            .replace("version = \"1.22.1\"\n", "")
            .replace("description = \"Hardened nginx\"\n", "");
        let r = Recipe::parse(&text, Path::new("recipes/nginx.toml")).unwrap();
        let mut p = BuildPlan::new(&r, Tier::Hardened, &PlanOptions::default());
        assert_eq!(p.version, "");
        let compound = "LicenseRef-RSALv2 OR SSPL-1.0 OR AGPL-3.0-only";
        p.apply_package_facts(&facts("1.28.0", &[compound, "MIT"]))
            .unwrap();
        assert_eq!(p.version, "1.28.0");
        assert_eq!(
            p.labels["org.opencontainers.image.description"],
            "Hardened nginx 1.28.0 (hardened tier)"
        );
        assert_eq!(
            p.labels["org.opencontainers.image.licenses"],
            format!("({compound}) AND MIT")
        );
    }

    #[test]
    fn a_recipe_version_nix_does_not_build_fails_naming_both() {
        let r = recipe();
        let mut p = BuildPlan::new(&r, Tier::Hardened, &PlanOptions::default());
        let e = p
            .apply_package_facts(&facts("1.28.0", &["BSD-2-Clause"]))
            .unwrap_err();
        assert!(matches!(e, FactsError::VersionMismatch { .. }));
        let msg = e.to_string();
        for needle in [
            "recipes/nginx.toml",
            "image.version",
            "\"1.22.1\"",
            "\"1.28.0\"",
        ] {
            assert!(msg.contains(needle), "`{needle}` not in: {msg}");
        }
        assert!(!p.facts_from_nix);
        assert!(!p.labels.contains_key("org.opencontainers.image.version"));
    }

    #[test]
    fn recipe_licences_are_checked_not_used() {
        let text = crate::recipe::tests_support::NGINX
            .replace("upstream = ", "licenses = [\"BSD-3-Clause\"]\nupstream = ");
        let r = Recipe::parse(&text, Path::new("recipes/nginx.toml")).unwrap();
        let mut p = BuildPlan::new(&r, Tier::Hardened, &PlanOptions::default());
        let e = p
            .apply_package_facts(&facts("1.22.1", &["BSD-2-Clause"]))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("image.licenses") && msg.contains("BSD-3-Clause"),
            "{msg}"
        );
        assert!(msg.contains("BSD-2-Clause"), "{msg}");
        let mut p = BuildPlan::new(&r, Tier::Hardened, &PlanOptions::default());
        p.apply_package_facts(&facts("1.22.1", &["BSD-3-Clause"]))
            .unwrap();
        // A package with no version is refused rather than labelled "".
        let mut p = BuildPlan::new(&r, Tier::Hardened, &PlanOptions::default());
        assert!(matches!(
            p.apply_package_facts(&facts("", &[])),
            Err(FactsError::NoVersion { .. })
        ));
    }

    #[test]
    fn the_entrypoint_compat_tier_takes_its_entrypoint_and_cmd() {
        let text = crate::recipe::tests_support::NGINX.replacen(
            "coreutils = false\n",
            "coreutils = false\nentrypoint_compat = true\n",
            1,
        ) + "\n[entrypoint_compat]\nprogram = \"nginx\"\npath = \"/docker-entrypoint.sh\"\nentrypoint = [\"/docker-entrypoint.sh\"]\ncmd = [\"nginx\", \"-g\", \"daemon off;\"]\n";
        let r = Recipe::parse(&text, Path::new("recipes/nginx.toml")).unwrap();
        let opts = PlanOptions::default();
        let h = BuildPlan::new(&r, Tier::Hardened, &opts);
        assert_eq!(h.runtime.entrypoint, ["/docker-entrypoint.sh"]);
        assert_eq!(h.runtime.cmd, ["nginx", "-g", "daemon off;"]);
        assert_eq!(h.labels["org.armorred.entrypoint-compat"], "nginx");
        // the locked tier leaves it out and keeps `runtime`'s
        let l = BuildPlan::new(&r, Tier::Locked, &opts);
        assert!(l.entrypoint_compat.is_none());
        assert_eq!(l.runtime.entrypoint, ["/usr/sbin/nginx"]);
        assert!(!l.labels.contains_key("org.armorred.entrypoint-compat"));
    }

    #[test]
    fn a_tiers_tradeoffs_are_labelled_by_name() {
        let text = crate::recipe::tests_support::NGINX.to_string()
            + "\n[tiers.locked.tradeoffs]\nunsymbolized-crash-reports = \"CFI needs hidden visibility\"\nno-entrypoint = \"no shell\"\n";
        let r = Recipe::parse(&text, Path::new("recipes/nginx.toml")).unwrap();
        let opts = PlanOptions::default();
        let l = BuildPlan::new(&r, Tier::Locked, &opts);
        assert_eq!(
            l.labels["org.armorred.tradeoffs"],
            "no-entrypoint,unsymbolized-crash-reports"
        );
        let h = BuildPlan::new(&r, Tier::Hardened, &opts);
        assert!(!h.labels.contains_key("org.armorred.tradeoffs"));
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

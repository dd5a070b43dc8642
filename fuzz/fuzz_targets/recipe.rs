//! Recipe text → `Recipe::parse`, then the pure stages that read a recipe:
//! its accessors, `BuildPlan::new` for both tiers and the Nix spec JSON.
//! Any input may be refused with an error; none may panic.
#![no_main]

use std::path::{Path, PathBuf};

use armorred::nix::{NixEnv, NixInvocation, NixOptions};
use armorred::plan::{BuildPlan, PlanOptions};
use armorred::recipe::Recipe;
use armorred::tier::Tier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(recipe) = Recipe::parse(text, Path::new("recipes/fuzz.toml")) else {
        return;
    };
    let _ = (
        recipe.package_source(),
        recipe.ports(),
        recipe.writable(),
        recipe.user(),
    );
    let env = NixEnv {
        nix_dir: PathBuf::from("/nonexistent/nix"),
        source_dir: PathBuf::from("/nonexistent/sources"),
        toolchain_id: "fuzz".into(),
        options: NixOptions::default(),
        upstream_tests: None,
    };
    for tier in [Tier::Hardened, Tier::Locked] {
        let plan = BuildPlan::new(&recipe, tier, &PlanOptions::default());
        let _ = serde_json::to_vec(&plan).expect("a plan serializes");
        let _ = NixInvocation::new(&plan, &env).spec_json();
    }
});

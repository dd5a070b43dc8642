//! The image's facts come from what Nix builds, in both package sets:
//!
//! * offline set, real builds of the fast `hello` fixture: the version and
//!   licence labels equal the derivation's `version` and `licenses` (a
//!   per-run version, so nothing cached can pass), a recipe `version` that
//!   Nix does not build fails before any build, and a runtime link whose
//!   target the package lacks fails `build` naming the link;
//! * offline set, evaluation only: `plan --eval` labels nginx and redis with
//!   their derivations' versions and licences, and redis' licences say what
//!   the LICENSE.txt of its pinned tarball says;
//! * nixpkgs set, evaluation against the stand-in (`nix/tests/fake-nixpkgs`):
//!   `nix/build.nix`'s `meta` carries the derivation's `version` and
//!   `meta.license`, and armorred's labels take them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use armorred::nix::{NixEnv, NixInvocation, PackageMeta};
use armorred::plan::{BuildPlan, PackageSet, PlanOptions};
use armorred::recipe::Recipe;
use armorred::tier::Tier;
use serde_json::Value;

/// A nonce unique to this run, so a derivation carrying it must be built.
fn nonce() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}{}", std::process::id(), nanos % 1_000_000_000)
}

/// `nix-instantiate --eval --strict --json ARGS` in the repository.
fn nix_eval(args: &[&str]) -> Value {
    let out = Command::new("nix-instantiate")
        .current_dir(repo())
        .args(["--eval", "--strict", "--json"])
        .args(args)
        .env_remove("NIX_PATH")
        .output()
        .expect("nix-instantiate is installed");
    assert!(
        out.status.success(),
        "nix-instantiate {} failed\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nix-instantiate printed JSON")
}

/// The spec armorred hands `nix/build.nix` for a recipe and tier.
fn spec(recipe: &str, tier: Tier, set: PackageSet) -> (BuildPlan, String) {
    let r = Recipe::load(&repo().join("recipes").join(format!("{recipe}.toml"))).unwrap();
    let opts = PlanOptions {
        package_set: set,
        ..PlanOptions::default()
    };
    let plan = BuildPlan::new(&r, tier, &opts);
    let env = NixEnv {
        nix_dir: repo().join("nix"),
        source_dir: sources_dir(),
        toolchain_id: "clang-14.0.6".into(),
        ..NixEnv::default()
    };
    let json = NixInvocation::new(&plan, &env).spec_json();
    (plan, json)
}

/// The image config of the one image in an OCI layout, read by skopeo.
fn labels(layout: &Path) -> serde_json::Map<String, Value> {
    let out = sh(
        "skopeo",
        &["inspect", "--config", &format!("oci:{}", layout.display())],
    );
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    config["config"]["Labels"]
        .as_object()
        .cloned()
        .unwrap_or_else(|| panic!("no labels in {config}"))
}

/// A copy of the `hello` fixture whose derivation has a per-run version
/// and two licences; returns the recipes dir and that version.
fn nonce_hello(ctx: &TestContext) -> (PathBuf, String) {
    let src = repo().join("tests/fixtures/recipes");
    let dir = ctx.path().join("recipes");
    fs::create_dir_all(&dir).unwrap();
    for f in ["hello.toml", "hello.c"] {
        fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let version = format!("1.0.{}", nonce());
    let nix = fs::read_to_string(src.join("hello.nix")).unwrap();
    let edited = nix
        .replace(
            "version = \"1.0\";",
            &format!(
                "version = \"{version}\";\n  licenses = [ \"MIT OR Apache-2.0\" \"LicenseRef-hello-test\" ];"
            ),
        )
        .replace("name = \"hello-src\"", "name = \"hello-src-facts\"");
    assert_ne!(edited, nix);
    fs::write(dir.join("hello.nix"), edited).unwrap();
    (dir, version)
}

fn build_args<'a>(recipes: &'a str, image: &'a str) -> Vec<&'a str> {
    vec![
        "build",
        image,
        "--tier",
        "hardened",
        "--recipes",
        recipes,
        "--out",
        "out",
    ]
}

#[test]
fn offline_labels_are_the_built_derivations_version_and_licences() {
    let ctx = TestContext::new();
    let (recipes, version) = nonce_hello(&ctx);
    let dir = recipes.to_str().unwrap();
    let toml = recipes.join("hello.toml");
    let text = fs::read_to_string(&toml).unwrap();

    // The recipe still says 1.0: refused before anything is built, with both
    // versions, the recipe file and its key named.
    let r = ctx.run(&build_args(dir, "hello"));
    assert_eq!(r.code(), 2, "{}", r.describe());
    let err = r.stderr();
    for needle in [
        "hello.toml",
        "image.version",
        "\"1.0\"",
        &format!("\"{version}\""),
    ] {
        assert!(err.contains(needle), "`{needle}` missing from:\n{err}");
    }
    assert!(err.contains("hint: "), "{err}");
    assert!(!err.contains(&format!("hello-{version}.drv")), "{err}");
    assert!(!ctx.path().join("out/hello-hardened").exists());

    // Without `version` the recipe accepts what Nix builds, and the labels say it.
    fs::write(&toml, text.replace("version = \"1.0\"\n", "")).unwrap();
    let r = ctx.run(&build_args(dir, "hello"));
    assert!(r.out.status.success(), "{}", r.describe());
    let l = labels(&ctx.path().join("out/hello-hardened"));
    let package = l["org.armorred.nix.package"].as_str().unwrap();
    // The store path Nix built is named pname-version.
    assert!(
        package.ends_with(&format!("-hello-{version}")),
        "{package} is not hello {version}"
    );
    assert_eq!(l["org.opencontainers.image.version"], version.as_str());
    assert_eq!(
        l["org.opencontainers.image.licenses"],
        "(MIT OR Apache-2.0) AND LicenseRef-hello-test"
    );
    assert_eq!(
        l["org.opencontainers.image.description"],
        "package.file test fixture (hardened tier)"
    );
    // The OCI ref name follows the built version too.
    let layout = ctx.path().join("out/hello-hardened");
    let index = index_json(&layout);
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        format!("{version}-hardened").as_str()
    );

    // The SBOMs state the same licences for the package, the choice kept as
    // one, and the reference validators accept them.
    let mut docs = Vec::new();
    for (format, file) in [("spdx", "sbom.spdx.json"), ("cyclonedx", "sbom.cdx.json")] {
        let f = ctx.path().join(file);
        ctx.ok(&[
            "sbom",
            layout.to_str().unwrap(),
            "--format",
            format,
            "-o",
            f.to_str().unwrap(),
        ]);
        docs.push(f);
    }
    let expression = "(MIT OR Apache-2.0) AND LicenseRef-hello-test";
    let spdx: Value = serde_json::from_slice(&fs::read(&docs[0]).unwrap()).unwrap();
    let root = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["primaryPackagePurpose"] == "APPLICATION" && p["licenseDeclared"] != "NOASSERTION"
        })
        .unwrap_or_else(|| panic!("no licensed application package in {spdx}"));
    assert_eq!(root["licenseDeclared"], expression, "{root}");
    let cdx: Value = serde_json::from_slice(&fs::read(&docs[1]).unwrap()).unwrap();
    let component = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "hello")
        .unwrap_or_else(|| panic!("no hello component in {cdx}"));
    assert_eq!(
        component["licenses"],
        serde_json::json!([{ "expression": expression }])
    );
    let out = Command::new(python())
        .arg(repo().join("tests/validate_sbom.py"))
        .args(&docs)
        .output()
        .expect("run validate_sbom.py");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_runtime_link_without_a_target_fails_the_build() {
    let ctx = TestContext::new();
    let recipes = repo().join("tests/fixtures/recipes");
    let r = ctx.run(&build_args(recipes.to_str().unwrap(), "dangling"));
    assert_eq!(r.code(), 2, "{}", r.describe());
    let err = r.stderr();
    for needle in [
        "dangling.toml",
        "`/etc/hello/hello.conf`",
        "`etc/hello.conf`",
        "tier `hardened`",
        "is missing from the package",
    ] {
        assert!(err.contains(needle), "`{needle}` missing from:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(!ctx.path().join("out/dangling-hardened").exists());
}

#[test]
fn offline_plan_eval_labels_nginx_and_redis_from_their_derivations() {
    for image in ["nginx", "redis"] {
        let (_, spec) = spec(image, Tier::Hardened, PackageSet::Offline);
        let version = nix_eval(&[
            "nix/build.nix",
            "--argstr",
            "specJson",
            &spec,
            "-A",
            "package.version",
        ]);
        let licenses = nix_eval(&[
            "nix/build.nix",
            "--argstr",
            "specJson",
            &spec,
            "-A",
            "package.licenses",
        ]);
        let ctx = TestContext::new();
        let r = ctx.ok(&["plan", image, "--tier", "hardened", "--eval", "--json"]);
        let plan = &r.json()[0]["plan"];
        assert_eq!(plan["labels"]["org.opencontainers.image.version"], version);
        assert_eq!(plan["licenses"], licenses);
        assert_eq!(plan["facts_from_nix"], true);
        let label = plan["labels"]["org.opencontainers.image.licenses"]
            .as_str()
            .unwrap();
        match image {
            "nginx" => assert_eq!(label, "BSD-2-Clause"),
            _ => assert!(
                label.starts_with("(LicenseRef-RSALv2 OR SSPL-1.0 OR AGPL-3.0-only) AND "),
                "{label}"
            ),
        }
    }
}

/// Redis 8 is offered under a choice of three licences; the offline meta
/// must say so, as the pinned tarball's LICENSE.txt does.
#[test]
fn offline_redis_licences_match_its_license_txt() {
    let sources: Value =
        serde_json::from_slice(&fs::read(repo().join("nix/offline/sources.json")).unwrap())
            .unwrap();
    let redis = &sources["redis"];
    let tarball = sources_dir().join(redis["file"].as_str().unwrap());
    let member = format!("redis-{}/LICENSE.txt", redis["version"].as_str().unwrap());
    let text = String::from_utf8(
        sh(
            "tar",
            &["-xzOf", tarball.to_str().unwrap(), member.as_str()],
        )
        .stdout,
    )
    .unwrap();
    let head: String = text.lines().take(8).collect::<Vec<_>>().join(" ");
    for phrase in [
        "your choice of",
        "Redis Source Available License v2",
        "Server Side Public License v1",
        "GNU Affero General Public License v3",
    ] {
        assert!(
            head.contains(phrase),
            "`{phrase}` not in LICENSE.txt: {head}"
        );
    }
    let (_, spec) = spec("redis", Tier::Hardened, PackageSet::Offline);
    let meta: PackageMeta = serde_json::from_value(nix_eval(&[
        "nix/build.nix",
        "--argstr",
        "specJson",
        &spec,
        "-A",
        "meta",
    ]))
    .unwrap();
    let choice: Vec<&str> = meta.licenses[0].split(" OR ").collect();
    assert_eq!(
        choice,
        ["LicenseRef-RSALv2", "SSPL-1.0", "AGPL-3.0-only"],
        "{:?}",
        meta.licenses
    );
    // Redis 7.2 and earlier code stays BSD-3-Clause (REDISCONTRIBUTIONS.txt).
    assert!(meta.licenses.iter().any(|l| l == "BSD-3-Clause"));
}

/// SPDX ids of a nixpkgs `meta.license` value (one licence or a list).
fn spdx_ids(license: &Value) -> Vec<String> {
    let list = match license {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    // Each licence once, in first-seen order: nixpkgs' nginx lists its own
    // licence again for every third-party module, and the meta names each
    // licence once.
    let mut ids: Vec<String> = Vec::new();
    for l in &list {
        let id = l["spdxId"].as_str().expect("an spdxId").to_string();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

#[test]
fn nixpkgs_meta_carries_the_derivations_version_and_licences() {
    for image in ["nginx", "redis"] {
        for tier in Tier::ALL {
            let (mut plan, spec) = spec(image, tier, PackageSet::Nixpkgs);
            let attr = |a: &str| {
                nix_eval(&[
                    "--store",
                    "dummy://",
                    "nix/build.nix",
                    "--argstr",
                    "specJson",
                    &spec,
                    "--arg",
                    "nixpkgs",
                    "./nix/tests/fake-nixpkgs",
                    "-A",
                    a,
                ])
            };
            let version = attr("package.version");
            let licenses = spdx_ids(&attr("package.meta.license"));
            let meta: PackageMeta = serde_json::from_value(attr("meta")).unwrap();
            assert_eq!(meta.version, version.as_str().unwrap(), "{image} {tier}");
            assert_eq!(meta.licenses, licenses, "{image} {tier}");
            assert_eq!(meta.name, image);
            // The shipped recipe states no version or licence of its own, so
            // the nixpkgs build is labelled with what nixpkgs builds.
            plan.apply_package_facts(&meta.facts())
                .unwrap_or_else(|e| panic!("{image} {tier}: {e}"));
            assert_eq!(
                plan.labels["org.opencontainers.image.version"],
                meta.version
            );
            assert_eq!(
                plan.labels["org.opencontainers.image.licenses"],
                licenses.join(" AND ")
            );
            assert_eq!(
                plan.labels["org.opencontainers.image.description"],
                format!("Hardened {image} {} ({tier} tier)", meta.version)
            );
        }
    }
}

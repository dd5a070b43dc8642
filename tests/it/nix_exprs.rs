//! The Nix expressions of the nixpkgs package set and the flake,
//! checked with `nix-instantiate` only: nixpkgs itself cannot be
//! downloaded here and Debian's Nix 2.8 could not evaluate it anyway.
//!
//! * every `*.nix` file in the repository parses;
//! * `nix/nixpkgs/overlay.nix` evaluated against a stand-in `prev`
//!   (`nix/tests/fake-nixpkgs`) for every tier of the real recipes: hardening
//!   names, compiler flags, the clang+lld stdenv, the recipe's
//!   `nixpkgs_override` and `drop`, hardened runtime inputs, the shell layer;
//! * `nix/build.nix` with `packageSet = "nixpkgs"` on the same stand-in;
//! * `flake.nix` (its outputs, on a stand-in input) and the pin: flake.nix,
//!   flake.lock and the fetchTarball of nix/build.nix name the same revision.
//!
//! `nix-instantiate` must be installed: the tests fail (they do not skip)
//! without it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `nix-instantiate --version`, once; a missing Nix is a test failure.
fn nix_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let out = Command::new("nix-instantiate")
            .arg("--version")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "nix-instantiate is not installed ({e}). These tests evaluate the Nix \
                     expressions; install Nix first (Debian: apt-get install -y nix-bin)."
                )
            });
        assert!(out.status.success(), "nix-instantiate --version failed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// Runs nix-instantiate in the repository with a store that never builds or
/// copies anything (evaluation and parsing only).
fn nix(args: &[&str]) -> Output {
    nix_version();
    Command::new("nix-instantiate")
        .current_dir(root())
        .args(["--store", "dummy://"])
        .args(args)
        .env_remove("NIX_PATH")
        .output()
        .expect("run nix-instantiate")
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "nix-instantiate {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn eval_json(args: &[&str]) -> Value {
    let mut all = vec!["--eval", "--strict", "--json"];
    all.extend_from_slice(args);
    let out = nix(&all);
    assert!(out.status.success(), "{}", describe(&all, &out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON: {e}\n{}", describe(&all, &out)))
}

/// `nix/build.nix`'s attribute `attr` for the spec JSON `spec`, evaluated
/// against the stand-in nixpkgs `fake`.
fn build_nix_attr(spec: &str, fake: &str, attr: &str) -> Value {
    eval_json(&[
        "nix/build.nix",
        "--argstr",
        "specJson",
        spec,
        "--arg",
        "nixpkgs",
        fake,
        "-A",
        attr,
    ])
}

/// Evaluation that must fail; returns stderr.
fn eval_err(args: &[&str]) -> String {
    let mut all = vec!["--eval", "--strict", "--json"];
    all.extend_from_slice(args);
    let out = nix(&all);
    assert!(
        !out.status.success(),
        "expected an error\n{}",
        describe(&all, &out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("not a string: {x}"))
                .to_string()
        })
        .collect()
}

fn set(v: &Value) -> BTreeSet<String> {
    strs(v).into_iter().collect()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------
// recipes -> overlay cases

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// The overlay arguments nix/nixpkgs/build.nix passes for a recipe tier.
fn recipe_case(image: &str, tier: &str) -> Value {
    let text = std::fs::read_to_string(root().join("recipes").join(format!("{image}.toml")))
        .expect("read recipe");
    let r: toml::Value = toml::from_str(&text).expect("recipe TOML");
    let t = &r["tiers"][tier];
    let b = |k: &str| t.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    json!({
        "package": { "attr": r["package"]["attr"].as_str().unwrap() },
        "hardening": { "cfi": b("cfi"), "lto": b("lto"), "safestack": b("safestack") },
        "drop": t.get("drop").map(toml_to_json).unwrap_or(json!([])),
        "overrideArgs": t.get("nixpkgs_override").map(toml_to_json).unwrap_or(json!({})),
    })
}

const TIERS: [(&str, &str); 4] = [
    ("nginx", "hardened"),
    ("nginx", "locked"),
    ("redis", "hardened"),
    ("redis", "locked"),
];

/// The overlay on the stand-in for all four recipe tiers, evaluated once.
fn standin() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| {
        let mut cases = serde_json::Map::new();
        for (image, tier) in TIERS {
            cases.insert(format!("{image}-{tier}"), recipe_case(image, tier));
        }
        let cases = Value::Object(cases).to_string();
        eval_json(&[
            "nix/tests/overlay-standin.nix",
            "--argstr",
            "casesJson",
            &cases,
        ])
    })
}

fn case(image: &str, tier: &str) -> &'static Value {
    let v = &standin()[format!("{image}-{tier}")];
    assert!(v.is_object(), "no case {image}-{tier}");
    v
}

fn tier_hardening(image: &str, tier: &str) -> (bool, bool, bool) {
    let h = &recipe_case(image, tier)["hardening"];
    let cfi = h["cfi"].as_bool().unwrap();
    (
        cfi,
        h["lto"].as_bool().unwrap() || cfi,
        h["safestack"].as_bool().unwrap(),
    )
}

/// Every derivation summary below `v` (the package, its inputs, recursively).
fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    if let Some(inputs) = v["inputs"].as_array() {
        for i in inputs {
            walk(i, out);
        }
    }
}

fn inputs_of(pkg: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for i in pkg["inputs"].as_array().unwrap() {
        walk(i, &mut all);
    }
    all
}

fn cflags(v: &Value) -> String {
    format!("{} {}", s(v, "NIX_CFLAGS_COMPILE"), s(v, "NIX_CFLAGS_LINK"))
}

const MAX_NAMES: [&str; 13] = [
    "fortify3",
    "stackprotector",
    "stackclashprotection",
    "strictoverflow",
    "format",
    "pic",
    "relro",
    "bindnow",
    "zerocallusedregs",
    "trivialautovarinit",
    "nostrictaliasing",
    "strictflexarrays1",
    "glibcxxassertions",
];

// ---------------------------------------------------------------------------

#[test]
fn every_nix_file_parses() {
    fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                let skip = [".git", "target", ".venv", "node_modules", "out"];
                if !skip.contains(&name.as_str()) && !name.starts_with("result") {
                    collect(&p, out);
                }
            } else if name.ends_with(".nix") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    collect(&root(), &mut files);
    let rel: BTreeSet<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for must in [
        "flake.nix",
        "nix/build.nix",
        "nix/nixpkgs/overlay.nix",
        "nix/nixpkgs/build.nix",
        "nix/nixpkgs/pin.nix",
        "nix/tests/overlay-standin.nix",
        "nix/offline/default.nix",
    ] {
        assert!(rel.contains(must), "{must} not found among {rel:?}");
    }
    let mut failed = Vec::new();
    for f in &files {
        let f = f.to_string_lossy();
        let out = nix(&["--parse", &f]);
        if !out.status.success() {
            failed.push(describe(&["--parse", &f], &out));
        }
    }
    assert!(
        failed.is_empty(),
        "{} file(s) do not parse:\n{}",
        failed.len(),
        failed.join("\n")
    );
    eprintln!("{} .nix files parse with {}", files.len(), nix_version());
}

#[test]
fn pin_is_the_same_in_flake_nix_flake_lock_and_build_nix() {
    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("flake.lock")).unwrap()).unwrap();
    assert_eq!(lock["version"], 7);
    let input = lock["nodes"]["root"]["inputs"]["nixpkgs"].as_str().unwrap();
    let node = &lock["nodes"][input];
    let locked = &node["locked"];
    let rev = s(locked, "rev");
    let nar = s(locked, "narHash");
    assert_eq!(
        (s(locked, "type"), s(locked, "owner"), s(locked, "repo")),
        ("github", "NixOS", "nixpkgs")
    );
    assert!(
        rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()),
        "rev {rev}"
    );
    assert!(
        nar.starts_with("sha256-") && nar.len() == 51 && nar.ends_with('='),
        "narHash {nar}"
    );
    assert!(locked["lastModified"].as_u64().unwrap() > 1_700_000_000);
    // flake.nix pins the same revision (and the lock records it as the original)
    assert_eq!(s(&node["original"], "rev"), rev);
    let url = eval_json(&["-E", "(import ./flake.nix).inputs.nixpkgs.url"]);
    assert_eq!(url, json!(format!("github:NixOS/nixpkgs/{rev}")));
    // what nix/build.nix fetches: the same revision, checked against narHash
    let pin = eval_json(&[
        "-E",
        "let p = import ./nix/nixpkgs/pin.nix { }; in { inherit (p) rev narHash fetchArgs; }",
    ]);
    assert_eq!(s(&pin, "rev"), rev);
    assert_eq!(s(&pin, "narHash"), nar);
    assert_eq!(
        pin["fetchArgs"],
        json!({
            "url": format!("https://github.com/NixOS/nixpkgs/archive/{rev}.tar.gz"),
            "sha256": nar,
            "name": "source",
        })
    );
    // and nix/build.nix really goes through pin.nix for packageSet nixpkgs
    let build = std::fs::read_to_string(root().join("nix/nixpkgs/build.nix")).unwrap();
    assert!(build.contains("import ./pin.nix"));
    assert!(build.contains("pin.src"));
}

#[test]
fn flake_outputs_on_a_stand_in_input() {
    let f = eval_json(&["nix/tests/flake-standin.nix"]);
    assert_eq!(
        set(&f["outputs"]),
        ["apps", "devShells", "lib", "overlays", "packages"]
            .map(String::from)
            .into()
    );
    for sys in ["x86_64-linux", "aarch64-linux"] {
        assert!(strs(&f["packageSystems"]).contains(&sys.to_string()));
    }
    assert_eq!(
        set(&f["packages"]),
        ["armorred", "default"].map(String::from).into()
    );
    assert_eq!(f["apps"], json!({ "armorred": "app", "default": "app" }));
    assert_eq!(strs(&f["devShells"]), ["default"]);
    assert_eq!(f["overlayIsFunction"], true);
    // overlays.default: the base tier, default stdenv
    assert_eq!(f["overlayNginx"]["stdenv"], "default");
    // lib.hardenedPackages: the locked nginx with the recipe's overrides
    let l = &f["hardenedPackagesLocked"];
    assert_eq!(l["stdenvName"], "stdenv-clang-wrapper");
    assert_eq!(l["standinArgs"]["withPerl"], false);
    assert!(strs(&l["names"]).contains(&"cfi".to_string()));
    // packages.armorred: buildRustPackage of this repository
    let p = &f["armorredPackage"];
    let cargo: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    assert_eq!(p["pname"], "armorred");
    assert_eq!(
        s(p, "version"),
        cargo["package"]["version"].as_str().unwrap()
    );
    assert_eq!(p["lockFile"], "Cargo.lock");
    assert_eq!(p["lockFileExists"], true);
    assert_eq!(p["srcIsRepo"], true);
    assert_eq!(p["mainProgram"], "armorred");
    assert!(s(p, "postInstall").contains("ARMORRED_NIX_DIR"));
    assert!(
        s(p, "postInstall").contains("flake.lock"),
        "the pin must travel with nix/"
    );
    let shell = set(&f["devShellPackages"]);
    for tool in [
        "cargo", "rustc", "clippy", "rustfmt", "nix", "skopeo", "umoci", "podman", "clang", "lld",
    ] {
        assert!(shell.contains(tool), "{tool} missing from the dev shell");
    }
}

#[test]
fn main_package_gets_the_maximum_nixpkgs_hardening_names() {
    for (image, tier) in TIERS {
        let c = case(image, tier);
        let known = set(&c["knownHardeningFlags"]);
        let p = &c["package"];
        let enable = set(&p["hardeningEnable"]);
        for n in MAX_NAMES {
            assert!(
                enable.contains(n),
                "{image}/{tier}: {n} not in hardeningEnable {enable:?}"
            );
        }
        for n in enable.iter().chain(set(&p["hardeningDisable"]).iter()) {
            assert!(
                known.contains(n),
                "{image}/{tier}: {n} is not a nixpkgs hardening flag"
            );
        }
        // "pie" was removed from nixpkgs' hardening flags (25.11); PIE is the default
        assert!(!enable.contains("pie"));
        // the metadata says what was asked, in the same words
        assert_eq!(set(&c["info"]["hardeningEnable"]), enable);
    }
}

/// The last `_FORTIFY_SOURCE` a compiler command line defines (an `-U`
/// undefines it again), as the preprocessor would see it.
fn fortify_level(cmd: &[String]) -> Option<u32> {
    let mut level = None;
    for f in cmd {
        if f == "-U_FORTIFY_SOURCE" {
            level = None;
        } else if let Some(n) = f.strip_prefix("-D_FORTIFY_SOURCE=") {
            level = n.parse().ok();
        }
    }
    level
}

/// The stand-in cc-wrapper's command line (`compile` or `link`) for a
/// derivation summary.
fn command(d: &Value, which: &str) -> Vec<String> {
    strs(&d["ccCommand"][which])
}

/// The stand-in reproduces nixpkgs' fallback: its clang lists `fortify3` as
/// unsupported, so a clang build that asks for fortify3 by name gets
/// `-D_FORTIFY_SOURCE=2`, and gcc gets 3.
/// Mirrors pkgs/development/compilers/llvm/common/clang/default.nix
/// (passthru.hardeningUnsupportedFlagsByTargetPlatform = [ "fortify3" ] ++ …),
/// pkgs/build-support/cc-wrapper/add-hardening.sh ("Remove unsupported
/// flags", then fortify3 makes fortify and fortify3 exclusive; fortify emits
/// -D_FORTIFY_SOURCE=2 into hardeningCFlagsAfter), cc-wrapper.sh (extraAfter
/// = hardeningCFlagsAfter then NIX_CFLAGS_COMPILE) and
/// pkgs/build-support/bintools-wrapper/default.nix (defaultHardeningFlags
/// holds both fortify and fortify3).
#[test]
fn stand_in_clang_wrapper_falls_back_to_fortify_2() {
    let level = |stdenv: &str| {
        let e = format!(
            "let p = import ./nix/tests/fake-nixpkgs {{ }}; \
             s = {stdenv}; \
             in (s.mkDerivation {{ pname = \"x\"; version = \"1\"; hardeningEnable = [ \"fortify3\" ]; }}).ccCommand.compile"
        );
        fortify_level(&strs(&eval_json(&["-E", &e])))
    };
    assert_eq!(
        level("p.stdenvAdapters.overrideCC p.stdenv p.llvmPackages.clang"),
        Some(2)
    );
    assert_eq!(level("p.stdenv"), Some(3));
}

/// FORTIFY_SOURCE=3 is the last define on every compile and link of every
/// tier's main package, of every hardened dependency and of the shell layer,
/// although every tier compiles its package with clang (whose wrapper would
/// fall back to 2, see the test above).
#[test]
fn fortify_3_reaches_every_compile_in_every_tier() {
    for (image, tier) in TIERS {
        let c = case(image, tier);
        assert_eq!(
            s(&c["package"], "cc"),
            "clang-wrapper",
            "{image}/{tier}: the case this guards"
        );
        let mut all = vec![&c["package"]];
        for d in inputs_of(&c["package"]) {
            if d["armorredHardening"] == "base" {
                all.push(d);
            }
        }
        for sh in c["shells"].as_object().unwrap().values() {
            all.push(sh);
        }
        assert!(all.len() > 5, "{image}/{tier}: too few derivations");
        for d in all {
            for which in ["compile", "link"] {
                let cmd = command(d, which);
                assert_eq!(
                    fortify_level(&cmd),
                    Some(3),
                    "{image}/{tier}: {} {which}: {cmd:?}",
                    s(d, "name")
                );
            }
        }
    }
}

/// Every hardening name the metadata (and so the labels) gives for the
/// nixpkgs set shows in what the derivation's compiler and linker get, read
/// by evaluation through the stand-in cc-wrapper. `pie` and `noexecstack`
/// are the toolchain's defaults (nixpkgs 25.11 dropped the `pie` name, its
/// compilers build PIE; lld and GNU ld mark the stack non-executable), so
/// they have no flag: the image analyzer checks them on the binaries.
#[test]
fn every_hardening_name_is_visible_in_the_derivation_environment() {
    const TOOLCHAIN_DEFAULTS: [&str; 2] = ["pie", "noexecstack"];
    for (image, tier) in TIERS {
        let c = case(image, tier);
        let p = &c["package"];
        let compile = command(p, "compile");
        let link = command(p, "link");
        let has = |cmd: &[String], f: &str| cmd.iter().any(|x| x == f);
        let names = strs(&c["info"]["names"]);
        let ctx = format!("{image}/{tier}");
        for n in &names {
            let shown = match n.as_str() {
                "fortify3" => fortify_level(&compile) == Some(3),
                "stackprotector" => has(&compile, "-fstack-protector-strong"),
                "stackclash" => has(&compile, "-fstack-clash-protection"),
                "relro" => has(&link, "-Wl,-z,relro"),
                "bindnow" => has(&link, "-Wl,-z,now"),
                "cfi" => has(&compile, "-fsanitize=cfi") && has(&link, "-fsanitize=cfi"),
                "lto" => has(&compile, "-flto") && has(&link, "-flto"),
                "safestack" => {
                    has(&compile, "-fsanitize=safe-stack") && has(&link, "-fsanitize=safe-stack")
                }
                d if TOOLCHAIN_DEFAULTS.contains(&d) => true,
                other => panic!("{ctx}: no check for the hardening name {other}; add one"),
            };
            assert!(
                shown,
                "{ctx}: {n} is named but not in {compile:?} / {link:?}"
            );
        }
        // CET: the code is marked where CFI is off, but not claimed
        let (cfi, _, _) = tier_hardening(image, tier);
        assert_eq!(has(&compile, "-fcf-protection=full"), !cfi, "{ctx}");
        assert!(!names.iter().any(|n| n == "cet"), "{ctx}: {names:?}");
    }
}

#[test]
fn cfi_cet_lto_safestack_flags_follow_the_tier() {
    for (image, tier) in TIERS {
        let (cfi, lto, safestack) = tier_hardening(image, tier);
        let c = case(image, tier);
        let p = &c["package"];
        let f = s(p, "NIX_CFLAGS_COMPILE");
        let link = s(p, "NIX_CFLAGS_LINK");
        let ctx = format!("{image}/{tier}: {f}");
        for flag in [
            "-fsanitize=cfi",
            "-fsanitize-cfi-icall-generalize-pointers",
            "-fvisibility=default",
        ] {
            assert_eq!(f.contains(flag), cfi, "{ctx}: {flag}");
            assert_eq!(link.contains(flag), cfi, "{image}/{tier} link: {flag}");
        }
        // NIX_CFLAGS_COMPILE reaches the package's shared libraries too; hidden
        // visibility would leave them exporting nothing
        assert!(!f.contains("-fvisibility=hidden"), "{ctx}");
        // clang 14: CFI + -fcf-protection gives int3 jump tables; CET only without CFI
        assert_eq!(f.contains("-fcf-protection=full"), !cfi, "{ctx}");
        let enable = set(&p["hardeningEnable"]);
        let disable = set(&p["hardeningDisable"]);
        assert_eq!(
            enable.contains("shadowstack"),
            !cfi,
            "{ctx}: shadowstack name"
        );
        assert_eq!(
            disable.contains("shadowstack"),
            cfi,
            "{ctx}: shadowstack disabled"
        );
        assert_eq!(f.contains("-flto"), lto, "{ctx}");
        assert_eq!(f.contains("-fsanitize=safe-stack"), safestack, "{ctx}");
        // the package's own flags are kept (nginx: the libxml2 include dir)
        if image == "nginx" {
            assert!(f.starts_with("-I/nix/store/"), "{ctx}");
        }
        let names = set(&c["info"]["names"]);
        assert_eq!(names.contains("cfi"), cfi);
        assert!(!names.contains("cet"), "{ctx}: CET is marked, not enforced");
        assert_eq!(c["info"]["cetMarkedNotEnforced"]["main"], !cfi);
        assert_eq!(names.contains("lto"), lto);
        assert_eq!(names.contains("safestack"), safestack);
        assert_eq!(c["info"]["tier"]["cfi"], cfi);
        // nothing tier-specific reaches the dependencies or the shell layer
        for d in inputs_of(p) {
            let df = cflags(d);
            for flag in ["-fsanitize", "-flto", "-fvisibility"] {
                assert!(
                    !df.contains(flag),
                    "{image}/{tier}: dependency {} has {df}",
                    s(d, "name")
                );
            }
        }
    }
}

#[test]
fn clang_with_lld_for_cfi_lto_safestack_default_stdenv_otherwise() {
    for (image, tier) in TIERS {
        let (cfi, lto, safestack) = tier_hardening(image, tier);
        let c = case(image, tier);
        let p = &c["package"];
        assert!(cfi || lto || safestack, "the recipes' tiers all use clang");
        assert_eq!(s(p, "stdenv"), "stdenv-clang-wrapper", "{image}/{tier}");
        assert_eq!(s(p, "cc"), "clang-wrapper");
        assert_eq!(
            s(p, "bintools"),
            "llvm-binutils-wrapper",
            "{image}/{tier}: lld/llvm-ar for LTO"
        );
        assert_eq!(c["info"]["stdenv"], "clang+lld");
        for d in inputs_of(p) {
            assert_eq!(
                s(d, "stdenv"),
                "stdenv-gcc-wrapper",
                "{image}/{tier}: {}",
                s(d, "name")
            );
        }
    }
    // without cfi/lto/safestack the package keeps the default stdenv
    let cases = json!({ "plain": { "package": { "attr": "nginx" }, "hardening": {} } }).to_string();
    let v = eval_json(&[
        "nix/tests/overlay-standin.nix",
        "--argstr",
        "casesJson",
        &cases,
    ]);
    let p = &v["plain"]["package"];
    assert_eq!(s(p, "stdenv"), "stdenv-gcc-wrapper");
    assert_eq!(s(p, "bintools"), "binutils-wrapper");
    assert!(s(p, "NIX_CFLAGS_COMPILE").contains("-fcf-protection=full"));
    assert!(set(&p["hardeningEnable"]).contains("shadowstack"));
}

#[test]
fn recipe_overrides_reach_the_package_in_locked_only() {
    let hard = &case("nginx", "hardened")["package"]["args"];
    let locked = &case("nginx", "locked")["package"]["args"];
    assert_eq!(locked["withPerl"], false);
    assert_eq!(locked["withMail"], false);
    assert_eq!(locked["withStream"], false);
    // generic.nix' defaults (the stand-in's nginx sets none of them)
    assert_eq!(hard["withPerl"], true);
    assert_eq!(hard["withStream"], true);
    let lflags = strs(&case("nginx", "locked")["package"]["configureFlags"]);
    assert!(!lflags
        .iter()
        .any(|f| f.starts_with("--with-stream") || f.starts_with("--with-http_perl")));
    let hflags = strs(&case("nginx", "hardened")["package"]["configureFlags"]);
    assert!(hflags.contains(&"--with-stream".to_string()));

    let rh = &case("redis", "hardened")["package"];
    let rl = &case("redis", "locked")["package"];
    assert_eq!(rl["args"]["tlsSupport"], false);
    assert_eq!(rh["args"]["tlsSupport"], true);
    assert!(strs(&rh["makeFlags"]).contains(&"BUILD_TLS=yes".to_string()));
    assert!(!strs(&rl["makeFlags"]).contains(&"BUILD_TLS=yes".to_string()));
    // the overlay's image default: no systemd in a container image
    for p in [rh, rl] {
        assert_eq!(p["args"]["withSystemd"], false);
        assert!(!inputs_of(p).iter().any(|d| s(d, "pname") == "systemd"));
    }
    assert!(inputs_of(rh).iter().any(|d| s(d, "pname") == "openssl"));
    assert!(!inputs_of(rl).iter().any(|d| s(d, "pname") == "openssl"));
}

#[test]
fn drop_lists_are_honoured_and_reported() {
    let c = case("nginx", "locked");
    let drop = set(&recipe_case("nginx", "locked")["drop"]);
    let info = &c["info"];
    let enabled = set(&info["enabledFeatures"]);
    let dropped = set(&info["droppedFeatures"]);
    let flags = strs(&c["package"]["configureFlags"]);
    for d in &drop {
        assert!(!enabled.contains(d), "{d} still enabled");
    }
    // built by default in the stand-in's nginx, so really removed
    for d in [
        "stream",
        "http_dav",
        "http_flv",
        "http_mp4",
        "http_random_index",
        "http_secure_link",
        "http_ssi",
        "http_memcached",
        "http_uwsgi",
        "http_scgi",
        "http_grpc",
        "http_mirror",
        "http_empty_gif",
        "http_browser",
        "http_split_clients",
        "http_userid",
    ] {
        assert!(drop.contains(d), "recipe changed: {d}");
        assert!(
            dropped.contains(d),
            "{d} not in droppedFeatures {dropped:?}"
        );
    }
    assert!(flags.contains(&"--without-http_ssi_module".to_string()));
    assert!(!flags.contains(&"--with-http_dav_module".to_string()));
    assert!(enabled.contains("http_ssl") && enabled.contains("http_v2"));
    assert_eq!(strs(&info["unavailableFeatures"]), ["njs"]);
    // the hardened tier drops nothing of nginx
    assert!(strs(&case("nginx", "hardened")["info"]["droppedFeatures"]).is_empty());
    let rl = &case("redis", "locked")["info"];
    assert!(set(&rl["droppedFeatures"]).contains("tls"));
    assert!(!set(&rl["enabledFeatures"]).contains("tls"));
    assert!(set(&case("redis", "hardened")["info"]["enabledFeatures"]).contains("tls"));
}

#[test]
fn runtime_dependencies_are_rebuilt_with_the_base_hardening() {
    for (image, tier) in TIERS {
        let c = case(image, tier);
        let deps = inputs_of(&c["package"]);
        let names: BTreeSet<&str> = deps.iter().map(|d| s(d, "pname")).collect();
        let want: &[&str] = match (image, tier) {
            ("nginx", _) => &[
                "openssl", "zlib-ng", "pcre2", "libxml2", "libxslt", "zlib", "xz",
            ],
            ("redis", "hardened") => &["openssl", "lua", "jemalloc"],
            _ => &["lua", "jemalloc"],
        };
        for w in want {
            assert!(names.contains(w), "{image}/{tier}: {w} not among {names:?}");
        }
        // generic.nix keeps perl in buildInputs with withPerl = false, where
        // it is only a configure-time tool: neither it nor its inputs are rebuilt
        let build_only =
            |d: &Value| image == "nginx" && tier == "locked" && s(d, "pname") == "perl";
        let mut deps = Vec::new();
        for i in c["package"]["inputs"].as_array().unwrap() {
            if build_only(i) {
                assert_eq!(i["armorredHardening"], Value::Null, "{image}/{tier}: perl");
            } else {
                walk(i, &mut deps);
            }
        }
        for d in &deps {
            let ctx = format!("{image}/{tier}: {}", s(d, "name"));
            assert_eq!(d["armorredHardening"], "base", "{ctx}");
            let e = set(&d["hardeningEnable"]);
            for n in MAX_NAMES {
                assert!(e.contains(n), "{ctx}: {n}");
            }
            assert!(e.contains("shadowstack"), "{ctx}");
            assert!(
                s(d, "NIX_CFLAGS_COMPILE").contains("-fcf-protection=full"),
                "{ctx}"
            );
            assert_eq!(s(d, "stdenv"), "stdenv-gcc-wrapper", "{ctx}");
        }
        // the metadata lists the same hardened inputs
        for d in c["info"]["dependencies"].as_array().unwrap() {
            assert_eq!(d["armorredHardening"], "base");
        }
    }
    // details: a selected output stays selected, a top-level NIX_CFLAGS_COMPILE
    // stays top-level (mkDerivation rejects it in env as well), and the
    // dependencies are the same derivations in both tiers
    let nginx = case("nginx", "locked");
    let deps = inputs_of(&nginx["package"]);
    let xslt = deps.iter().find(|d| s(d, "pname") == "libxslt").unwrap();
    let xml_dev = xslt["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| s(d, "pname") == "libxml2")
        .unwrap();
    assert_eq!(xml_dev["outputName"], "dev");
    assert_eq!(xml_dev["armorredHardening"], "base");
    let pcre2 = deps.iter().find(|d| s(d, "pname") == "pcre2").unwrap();
    assert_eq!(pcre2["cflagsTopLevel"], true);
    assert_eq!(pcre2["cflagsInEnv"], false);
    assert_eq!(
        s(pcre2, "NIX_CFLAGS_COMPILE"),
        "-DSTANDIN_TOPLEVEL -fcf-protection=full"
    );
    // Every dependency locked keeps is the same derivation in hardened;
    // hardened only adds the libraries of the modules it turns on and
    // nixpkgs' nginxStable leaves off (perl, image_filter's gd, geoip).
    let by_name = |tier: &str| -> BTreeMap<String, Value> {
        case("nginx", tier)["info"]["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (s(d, "name").to_string(), d.clone()))
            .collect()
    };
    let (hardened, locked) = (by_name("hardened"), by_name("locked"));
    for (name, d) in &locked {
        assert_eq!(
            hardened.get(name),
            Some(d),
            "{name} differs between the tiers"
        );
    }
    let extra: BTreeSet<&str> = hardened
        .iter()
        .filter(|(n, _)| !locked.contains_key(*n))
        .map(|(_, d)| s(d, "pname"))
        .collect();
    assert_eq!(extra, BTreeSet::from(["gd", "geoip", "perl"]), "{extra:?}");
}

#[test]
fn shell_layer_is_busybox_with_base_hardening() {
    for (image, tier) in TIERS {
        let sh = &case(image, tier)["shells"];
        assert_eq!(s(&sh["busybox"], "pname"), "busybox");
        assert_eq!(s(&sh["busybox-sh"], "pname"), "busybox-sh");
        assert_eq!(s(&sh["busybox-coreutils"], "pname"), "busybox-coreutils");
        assert_eq!(sh["busybox-sh"]["args"]["enableMinimal"], true);
        assert!(s(&sh["busybox-sh"]["args"], "extraConfig").contains("CONFIG_ASH y"));
        assert!(s(&sh["busybox-coreutils"]["args"], "extraConfig").contains("CONFIG_SH_IS_NONE y"));
        for v in sh.as_object().unwrap().values() {
            assert_eq!(v["armorredHardening"], "base");
            assert_eq!(s(v, "stdenv"), "stdenv-gcc-wrapper");
            // busybox' own hardeningDisable = [ "format" ] is kept
            assert!(set(&v["hardeningDisable"]).contains("format"));
            assert!(!cflags(v).contains("-fsanitize"));
        }
    }
}

#[test]
fn redis_cfi_gets_the_prototype_fix() {
    assert!(s(&case("redis", "locked")["package"], "postPatch").contains("(void)"));
    assert!(!s(&case("redis", "hardened")["package"], "postPatch").contains("(void)"));
    assert!(s(&case("redis", "locked")["package"], "postPatch").starts_with("echo standin"));
}

#[test]
fn overlay_rejects_what_it_cannot_honour() {
    let cases = |v: Value| json!({ "x": v }).to_string();
    let err = |v: Value| {
        let c = cases(v);
        eval_err(&["nix/tests/overlay-standin.nix", "--argstr", "casesJson", &c])
    };
    let e = err(json!({ "package": { "attr": "nginx" }, "drop": ["mial"] }));
    assert!(
        e.contains("unknown feature(s) in drop") && e.contains("mial"),
        "{e}"
    );
    let e = err(json!({ "package": { "attr": "hello" }, "drop": ["tls"] }));
    assert!(
        e.contains("hello: unknown feature(s) in drop") && e.contains("known: none"),
        "{e}"
    );
    let e = err(json!({ "package": { "attr": "nginx" }, "hardening": { "cif": true } }));
    assert!(e.contains("unknown hardening key(s) cif"), "{e}");
    let e = err(json!({ "package": { "attr": "nginx" }, "hardening": { "cfi": "yes" } }));
    assert!(e.contains("must be true or false"), "{e}");
    let e = err(json!({ "package": { "attr": "nginx" }, "hardeningExtra": ["pie"] }));
    assert!(e.contains("unknown nixpkgs hardening flag(s) pie"), "{e}");
    let e = err(json!({ "package": { "attr": "busybox" }, "hardening": { "lto": true } }));
    assert!(e.contains("busybox cannot be built"), "{e}");
    let e = err(json!({ "package": { "file": "relative/pkg.nix" } }));
    assert!(e.contains("must be an absolute path"), "{e}");
    let e = err(json!({ "package": { "attr": "nosuchpackage" } }));
    assert!(
        e.contains("nixpkgs has no attribute 'nosuchpackage'"),
        "{e}"
    );
    // a wrong override argument is Nix' own error (redis takes no withPerl)
    let e = err(json!({ "package": { "attr": "redis" }, "overrideArgs": { "withPerl": false } }));
    assert!(e.contains("withPerl"), "{e}");
}

#[test]
fn package_file_is_called_and_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pkg.nix");
    std::fs::write(
        &file,
        "{ stdenv, openssl }: stdenv.mkDerivation { pname = \"hello-file\"; version = \"1.0\"; buildInputs = [ openssl ]; }\n",
    )
    .unwrap();
    let cases = json!({ "f": {
        "package": { "file": file.to_str().unwrap() },
        "hardening": { "cfi": true, "lto": true, "safestack": true },
    } })
    .to_string();
    let v = eval_json(&[
        "nix/tests/overlay-standin.nix",
        "--argstr",
        "casesJson",
        &cases,
    ]);
    let p = &v["f"]["package"];
    assert_eq!(s(p, "pname"), "hello-file");
    assert_eq!(s(p, "stdenv"), "stdenv-clang-wrapper");
    assert!(s(p, "NIX_CFLAGS_COMPILE").contains("-fsanitize=cfi"));
    assert_eq!(p["inputs"][0]["armorredHardening"], "base");
}

fn spec(image: &str, tier: &str, shell: bool, coreutils: bool) -> String {
    let c = recipe_case(image, tier);
    json!({
        "packageSet": "nixpkgs",
        "sourceDir": "/nonexistent",
        "toolchainId": "clang-14.0.6",
        "package": c["package"],
        "hardening": c["hardening"],
        "drop": c["drop"],
        "shell": shell,
        "coreutils": coreutils,
        "nixpkgsOverride": c["overrideArgs"],
    })
    .to_string()
}

/// `spec.system` reaches nixpkgs (so a remote builder of that system builds
/// it); the offline set, compiled with the host's clang and glibc, refuses
/// any system but the host's.
#[test]
fn spec_system_selects_the_nixpkgs_platform_and_offline_refuses_it() {
    let fake = "./nix/tests/fake-nixpkgs";
    let with_system = |sp: &str, system: &str| {
        let mut v: Value = serde_json::from_str(sp).unwrap();
        v["system"] = json!(system);
        v.to_string()
    };
    let sp = spec("nginx", "locked", false, false);
    for system in ["aarch64-linux", "x86_64-linux"] {
        let m = build_nix_attr(&with_system(&sp, system), fake, "meta");
        assert_eq!(m["system"], system);
    }
    let offline = with_system(&sp.replace("\"nixpkgs\"", "\"offline\""), "aarch64-linux");
    assert!(offline.contains("\"packageSet\":\"offline\""), "{offline}");
    let err = eval_err(&[
        "nix/build.nix",
        "--argstr",
        "specJson",
        &offline,
        "-A",
        "meta",
    ]);
    assert!(
        err.contains("offline package set") && err.contains("not aarch64-linux"),
        "{err}"
    );
}

#[test]
fn build_nix_nixpkgs_branch_on_the_stand_in() {
    let fake = "./nix/tests/fake-nixpkgs";
    for (image, tier) in TIERS {
        let (cfi, _, _) = tier_hardening(image, tier);
        let sp = spec(image, tier, false, false);
        let m = build_nix_attr(&sp, fake, "meta");
        assert_eq!(s(&m, "name"), image);
        assert_eq!(m["packageSet"], "nixpkgs");
        assert_eq!(m["shell"], Value::Null);
        let names = set(&m["hardening"]);
        assert_eq!(names.contains("cfi"), cfi);
        // marked with -fcf-protection=full, not enforced by nixpkgs' glibc
        assert!(!names.contains("cet"), "{names:?}");
        assert_eq!(m["nixpkgsHardening"]["cetMarkedNotEnforced"], !cfi);
        assert!(names.contains("fortify3") && names.contains("relro") && names.contains("bindnow"));
        // every tier compiles with clang, whose wrapper drops fortify3
        assert!(s(&m, "cflags").contains("-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3"));
        assert_eq!(s(&m, "cflags").contains("-fsanitize=cfi"), cfi);
        assert_eq!(m["nixpkgsHardening"]["stdenv"], "clang+lld");
        assert!(s(&m, "toolchainId").starts_with("clang"));
        let deps: BTreeSet<String> = m["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| s(d, "name").to_string())
            .collect();
        assert!(deps.contains("glibc"), "{deps:?}");
        assert!(!m["licenses"].as_array().unwrap().is_empty());
        // the stand-in is not the pin: no revision is claimed
        assert_eq!(m["nixpkgs"]["rev"], Value::Null);
        // result attributes: like the offline set, `shell` only when asked
        let attrs = eval_json(&[
            "-E",
            &format!(
                "builtins.attrNames (import ./nix/build.nix {{ specJson = builtins.fromJSON ''\"{}\"''; nixpkgs = {fake}; }})",
                sp.replace('\\', "\\\\").replace('"', "\\\"")
            ),
        ]);
        assert_eq!(strs(&attrs), ["meta", "package"], "{image}/{tier}");
    }
    for (shell, coreutils, name) in [
        (true, true, "busybox"),
        (true, false, "busybox-sh"),
        (false, true, "busybox-coreutils"),
    ] {
        let sp = spec("nginx", "locked", shell, coreutils);
        let m = build_nix_attr(&sp, fake, "meta.shell");
        assert_eq!(m, json!(name));
        let p = build_nix_attr(&sp, fake, "shell.pname");
        assert_eq!(p, json!(name));
    }
    let p = build_nix_attr(
        &spec("redis", "locked", false, false),
        fake,
        "package.pname",
    );
    assert_eq!(p, json!("redis"));
}

/// `nix/build.nix`'s `meta` for nginx/locked with `packageSet = "nixpkgs"`
/// and no stand-in `nixpkgs` argument, so the version gate of
/// `nix/nixpkgs/build.nix` decides. Both files are imported with
/// `scopedImport`, which can replace `builtins.nixVersion` (`version`; `None`
/// keeps this Nix's own), and the pin keeps its revision but gets the
/// stand-in as its source: passing the gate evaluates offline instead of
/// downloading nixpkgs, so either side of the gate can be checked on any Nix.
fn nixpkgs_meta_as_nix(version: Option<&str>) -> Output {
    let builtins = version
        .map(|v| format!("builtins = builtins // {{ nixVersion = \"{v}\"; }};"))
        .unwrap_or_default();
    let expr = format!(
        r#"{{ specJson }}:
let
  realImport = import;
  scope = {{
    {builtins}
    import = p:
      if p == ./nix/nixpkgs/pin.nix
      then (args: realImport p args // {{ src = ./nix/tests/fake-nixpkgs; }})
      else if p == ./nix/nixpkgs/build.nix then scopedImport scope p
      else realImport p;
  }};
in (scopedImport scope ./nix/build.nix {{ inherit specJson; }}).meta"#
    );
    let spec = spec("nginx", "locked", false, false);
    nix(&[
        "--eval", "--strict", "--json", "-E", &expr, "--argstr", "specJson", &spec,
    ])
}

/// Below 2.18 the nixpkgs set is refused naming both versions; from 2.18 on
/// it evaluates, from the flake.lock pin.
fn assert_nixpkgs_gate(version: &str, out: &Output) {
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if parts.as_slice() < [2, 18].as_slice() {
        assert!(
            !out.status.success(),
            "Nix {version} evaluated the nixpkgs set"
        );
        assert!(
            stderr.contains("package set nixpkgs needs Nix >= 2.18"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("this is Nix {version}")),
            "{stderr}"
        );
    } else {
        assert!(out.status.success(), "Nix {version}: {stderr}");
        let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
        let lock: Value =
            serde_json::from_slice(&std::fs::read(root().join("flake.lock")).unwrap()).unwrap();
        let rev = &lock["nodes"]["nixpkgs"]["locked"]["rev"];
        assert!(rev.is_string(), "no nixpkgs rev in flake.lock");
        assert_eq!(&meta["nixpkgs"]["rev"], rev, "Nix {version}");
        assert_eq!(meta["packageSet"], "nixpkgs", "Nix {version}");
        assert_eq!(meta["name"], "nginx", "Nix {version}");
    }
}

#[test]
fn nixpkgs_set_needs_nix_2_18() {
    for version in ["2.8.0", "2.17.1", "2.18", "2.18.0", "2.24.10"] {
        assert_nixpkgs_gate(version, &nixpkgs_meta_as_nix(Some(version)));
    }
}

#[test]
fn nixpkgs_set_on_this_nix() {
    let version = nix_version().rsplit(' ').next().unwrap();
    assert_nixpkgs_gate(version, &nixpkgs_meta_as_nix(None));
}

/// The offline nginx's dynamic modules: a CFI tier that keeps one is refused
/// at evaluation (non-cross-DSO CFI cannot cover a separately linked .so);
/// dropping them, or turning CFI off, evaluates.
#[test]
fn offline_nginx_refuses_cfi_with_dynamic_modules() {
    let nginx = |hardening: &str, drop: &str| {
        format!(
            "(import ./nix/offline {{ sourceDir = \"/nonexistent\"; hardening = {hardening}; drop = {drop}; }}).nginx.enabledFeatures"
        )
    };
    let modules = r#"[ "http_perl" "http_xslt" "http_image_filter" "http_geoip" ]"#;
    let e = eval_err(&["-E", &nginx("{ cfi = true; }", "[ ]")]);
    assert!(
        e.contains("Clang CFI cannot cover dynamic modules") && e.contains("http_perl"),
        "{e}"
    );
    let locked = eval_json(&["-E", &nginx("{ cfi = true; }", modules)]);
    let hardened = eval_json(&["-E", &nginx("{ }", "[ ]")]);
    let has = |v: &Value, f: &str| v.as_array().unwrap().iter().any(|x| x == f);
    for f in ["http_perl", "http_xslt", "http_image_filter", "http_geoip"] {
        assert!(has(&hardened, f) && !has(&locked, f), "{f}");
    }
}

/// The overlay on the stand-in for `cases` (name -> overlay arguments), with
/// its stderr (the stand-in traces every base-hardened copy it evaluates).
fn standin_cases_with_stderr(cases: &Value) -> (Value, String) {
    let c = cases.to_string();
    let args = [
        "--eval",
        "--strict",
        "--json",
        "nix/tests/overlay-standin.nix",
        "--argstr",
        "casesJson",
        &c,
    ];
    let out = nix(&args);
    assert!(out.status.success(), "{}", describe(&args, &out));
    (
        serde_json::from_slice(&out.stdout).expect("JSON"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_case(v: Value) -> Value {
    let (all, _) = standin_cases_with_stderr(&json!({ "x": v }));
    all["x"].clone()
}

/// nixpkgs' nginxStable builds in three third-party modules; the locked tier
/// (nixpkgs_override `modules = []`) keeps none, the hardened tier keeps them
/// and names them as features, in the metadata and as SBOM components.
/// Mirrors pkgs/top-level/all-packages.nix (nginxStable = callPackage
/// ../servers/http/nginx/stable.nix { …; withPerl = false; modules = [
/// nginxModules.rtmp nginxModules.dav nginxModules.moreheaders ]; }) and
/// pkgs/servers/http/nginx/generic.nix (`map (mod: "--add-module=${mod.src}")
/// modules` in configureFlags, meta.license ++ the modules' licences).
#[test]
fn third_party_nginx_modules_are_dropped_in_locked_and_named_in_hardened() {
    let standin_modules: Vec<String> = strs(&eval_json(&[
        "-E",
        "map (m: m.name) (import ./nix/tests/fake-nixpkgs { }).nginx.modules",
    ]));
    assert_eq!(standin_modules.len(), 3, "{standin_modules:?}");
    let add_modules = |c: &Value| -> usize {
        strs(&c["package"]["configureFlags"])
            .iter()
            .filter(|f| f.starts_with("--add-module="))
            .count()
    };
    let locked = case("nginx", "locked");
    assert_eq!(add_modules(locked), 0);
    assert!(locked["info"]["thirdPartyModules"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(!strs(&locked["info"]["enabledFeatures"])
        .iter()
        .any(|f| f.starts_with("module:")));
    let dropped = set(&locked["info"]["droppedFeatures"]);
    for m in &standin_modules {
        assert!(dropped.contains(&format!("module:{m}")), "{dropped:?}");
    }

    let hardened = case("nginx", "hardened");
    assert_eq!(add_modules(hardened), standin_modules.len());
    let kept: Vec<String> = hardened["info"]["thirdPartyModules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(m, "name").to_string())
        .collect();
    assert_eq!(kept, standin_modules);
    let enabled = set(&hardened["info"]["enabledFeatures"]);
    for m in &standin_modules {
        assert!(enabled.contains(&format!("module:{m}")), "{enabled:?}");
    }
    // the metadata armorred reads (labels, SBOM) lists them
    let m = build_nix_attr(
        &spec("nginx", "hardened", false, false),
        "./nix/tests/fake-nixpkgs",
        "meta",
    );
    assert_eq!(strs(&m["thirdPartyModules"]), standin_modules);
    let dep_names: BTreeSet<String> = m["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| s(d, "name").to_string())
        .collect();
    for name in &standin_modules {
        assert!(
            dep_names.contains(&format!("nginx-module-{name}")),
            "{dep_names:?}"
        );
    }
    let ml = build_nix_attr(
        &spec("nginx", "locked", false, false),
        "./nix/tests/fake-nixpkgs",
        "meta.thirdPartyModules",
    );
    assert_eq!(ml, json!([]));

    // one module dropped by name; a recipe-given list keeps only those
    let v = one_case(json!({ "package": { "attr": "nginx" }, "drop": ["module:rtmp"] }));
    let names: Vec<&str> = v["info"]["thirdPartyModules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(m, "name"))
        .collect();
    assert_eq!(names, ["dav", "moreheaders"]);
    assert!(set(&v["info"]["droppedFeatures"]).contains("module:rtmp"));
    let v =
        one_case(json!({ "package": { "attr": "nginx" }, "overrideArgs": { "modules": ["dav"] } }));
    assert_eq!(v["info"]["thirdPartyModules"][0]["name"], "dav");
    assert_eq!(v["info"]["thirdPartyModules"].as_array().unwrap().len(), 1);
    let e = eval_err(&[
        "nix/tests/overlay-standin.nix",
        "--argstr",
        "casesJson",
        &json!({ "x": { "package": { "attr": "nginx" }, "overrideArgs": { "modules": ["nosuch"] } } })
            .to_string(),
    ]);
    assert!(e.contains("nixpkgs has no nginxModules.nosuch"), "{e}");
}

/// The last value each `--name=` configure flag gets (nginx's configure lets
/// a later flag win).
fn last_flags(flags: &[String]) -> BTreeMap<String, String> {
    flags
        .iter()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// nixpkgs' nginx is configured to the layout the recipe's runtime expects
/// and the offline set ships: every `[runtime.links]` target of
/// recipes/nginx.toml is made by the configure flags or the install, logs go
/// to stderr/stdout, pid, lock and temp files to /tmp, the port-8080
/// nginx.conf is installed, and the hardened tier builds as dynamic modules
/// exactly the `.so` files its exceptions name (with perl kept).
/// Mirrors pkgs/servers/http/nginx/generic.nix (configureFlags:
/// --sbin-path=bin/nginx, --error-log-path/--pid-path under /var/log/nginx,
/// no --conf-path/--modules-path, modules built in, withPerl) and
/// all-packages.nix (nginxStable gets withPerl = false).
#[test]
fn nixpkgs_nginx_is_configured_to_the_recipes_runtime_layout() {
    let recipe: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("recipes/nginx.toml")).unwrap())
            .unwrap();
    let links: Vec<String> = recipe["runtime"]["links"]
        .as_table()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let out = s(case("nginx", "hardened"), "outPlaceholder").to_string();
    assert!(!out.is_empty());
    for tier in ["hardened", "locked"] {
        let p = &case("nginx", tier)["package"];
        let flags = strs(&p["configureFlags"]);
        let last = last_flags(&flags);
        let post = s(p, "postInstall");
        let ctx = format!("nginx/{tier}");
        assert_eq!(last["--sbin-path"], format!("{out}/bin/nginx"), "{ctx}");
        assert_eq!(
            last["--conf-path"],
            format!("{out}/etc/nginx/nginx.conf"),
            "{ctx}"
        );
        assert_eq!(
            last["--modules-path"],
            format!("{out}/lib/nginx/modules"),
            "{ctx}"
        );
        assert_eq!(last["--error-log-path"], "/dev/stderr", "{ctx}");
        assert_eq!(last["--http-log-path"], "/dev/stdout", "{ctx}");
        assert_eq!(last["--pid-path"], "/tmp/nginx.pid", "{ctx}");
        assert_eq!(last["--lock-path"], "/tmp/nginx.lock", "{ctx}");
        for (k, v) in &last {
            if k.starts_with("--http-") && k.ends_with("-temp-path") {
                assert!(v.starts_with("/tmp/"), "{ctx}: {k}={v}");
            }
        }
        // nothing of generic.nix' layout is left behind
        assert!(
            !flags.iter().any(|f| f.contains("/var/log/nginx")),
            "{ctx}: {flags:?}"
        );
        // each link target: made by configure (under $out), by nginx's
        // `make install` (auto/install copies mime.types and the *_params
        // files beside --conf-path), or by the install step
        let conf_dir = format!("{out}/etc/nginx/");
        let by_make_install = |t: &str| {
            last["--conf-path"].starts_with(&conf_dir)
                && [
                    "mime.types",
                    "fastcgi_params",
                    "scgi_params",
                    "uwsgi_params",
                ]
                .iter()
                .any(|f| t == format!("etc/nginx/{f}"))
        };
        for t in &links {
            let made = last
                .values()
                .any(|v| v == &format!("{out}/{t}") || v.starts_with(&format!("{out}/{t}/")))
                || by_make_install(t)
                || post.contains(&format!("\"$out/{t}\""));
            assert!(made, "{ctx}: nothing makes the link target {t}");
        }
        assert!(
            post.contains("mv \"$out/html\" \"$out/share/nginx/html\""),
            "{ctx}"
        );
        // the shipped configuration: the offline set's, with this store path
        let conf = std::fs::read_to_string(root().join("nix/nixpkgs/nginx.conf")).unwrap();
        assert!(
            post.contains(&conf.replace("@out@", &out)),
            "{ctx}: nginx.conf"
        );
        // and its default server, listening on 8080, in conf.d
        let default = std::fs::read_to_string(root().join("nix/nixpkgs/default.conf")).unwrap();
        assert!(default.contains("listen       8080;"), "{default}");
        assert!(
            post.contains(&default.replace("@out@", &out)),
            "{ctx}: conf.d/default.conf"
        );
    }

    // hardened: perl kept, and the modules the exceptions name are dynamic
    let h = &case("nginx", "hardened")["package"];
    assert_eq!(h["args"]["withPerl"], true);
    let flags = strs(&h["configureFlags"]);
    let post = s(h, "postInstall");
    let exceptions = recipe["tiers"]["hardened"]["exceptions"]
        .as_array()
        .unwrap();
    assert!(!exceptions.is_empty());
    for e in exceptions {
        let path = e["path"].as_str().unwrap();
        let built = if let Some(m) = path
            .strip_prefix("lib/nginx/modules/ngx_")
            .and_then(|m| m.strip_suffix("_module.so"))
        {
            flags.contains(&format!("--with-{m}_module=dynamic"))
        } else if path == "lib/perl5/auto/nginx/nginx.so" {
            flags.contains(&format!("--with-perl_modules_path={out}/lib/perl5"))
                && post.contains("\"$out/lib/perl5/auto/nginx/nginx.so\"")
        } else {
            false
        };
        assert!(
            built,
            "the hardened tier's exception names {path}, which is not built"
        );
    }
    // a module is built either in or dynamic, never both
    for m in [
        "http_perl",
        "http_xslt",
        "http_image_filter",
        "http_geoip",
        "stream_geoip",
    ] {
        assert!(flags.contains(&format!("--with-{m}_module=dynamic")), "{m}");
        assert!(!flags.contains(&format!("--with-{m}_module")), "{m}");
    }
    // locked: CFI, so no dynamic module at all (as in the offline set)
    let l = strs(&case("nginx", "locked")["package"]["configureFlags"]);
    assert!(!l.iter().any(|f| f.ends_with("=dynamic")), "{l:?}");
    let e = eval_err(&[
        "nix/tests/overlay-standin.nix",
        "--argstr",
        "casesJson",
        &json!({ "x": { "package": { "attr": "nginx" }, "hardening": { "cfi": true } } })
            .to_string(),
    ]);
    assert!(e.contains("Clang CFI cannot cover dynamic modules"), "{e}");
}

/// The nixpkgs set installs the offline set's nginx.conf: the two files
/// cannot drift apart (nix/nixpkgs/nginx.conf is the configuration
/// nix/offline/pkgs/nginx.nix writes, with @out@ for $out).
#[test]
fn nixpkgs_nginx_conf_is_the_offline_sets() {
    let offline = std::fs::read_to_string(root().join("nix/offline/pkgs/nginx.nix")).unwrap();
    // The heredoc that writes `file` in the offline install step, as the
    // shared file has it (@out@ for the store path).
    let heredoc = |file: &str| -> String {
        let at = offline
            .find(&format!("cat > \"$out/etc/nginx/{file}\" <<EOF\n"))
            .unwrap_or_else(|| panic!("the heredoc of {file} in nix/offline/pkgs/nginx.nix"));
        let start = at + offline[at..].find("<<EOF\n").unwrap() + 6;
        let end = start + offline[start..].find("\n    EOF").unwrap();
        offline[start..=end]
            .lines()
            .map(|l| l.strip_prefix("    ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("$out", "@out@")
    };
    for (shared, file) in [
        ("nginx.conf", "nginx.conf"),
        ("default.conf", "conf.d/default.conf"),
    ] {
        let text = std::fs::read_to_string(root().join("nix/nixpkgs").join(shared)).unwrap();
        assert_eq!(text.trim_end(), heredoc(file).trim_end(), "{shared}");
    }
}

/// Runtime inputs are rebuilt once each: one memo table per overlay, keyed
/// by the original derivation, serves the package, its metadata and the
/// shell layer (the stand-in traces each base-hardened copy it evaluates, and
/// Nix evaluates a shared value once). Build-only inputs are never rebuilt:
/// nativeBuildInputs (redis' pkg-config, python3), and nginx's perl when
/// withPerl is off.
/// Mirrors pkgs/servers/http/nginx/generic.nix (perl in buildInputs whatever
/// withPerl says) and pkgs/by-name/re/redis/package.nix (nativeBuildInputs).
#[test]
fn runtime_inputs_are_hardened_once_and_build_tools_never() {
    for (image, tier) in TIERS {
        let (v, err) = standin_cases_with_stderr(&json!({ "x": recipe_case(image, tier) }));
        let c = &v["x"];
        let traced: Vec<&str> = err
            .lines()
            .filter_map(|l| l.strip_prefix("trace: standin: base-hardened "))
            .collect();
        let mut seen = BTreeMap::new();
        for t in &traced {
            let name = t.split(' ').next().unwrap();
            *seen.entry(name.to_string()).or_insert(0) += 1;
        }
        let ctx = format!("{image}/{tier}");
        assert!(seen.len() >= 5, "{ctx}: {err}");
        for (name, n) in &seen {
            assert_eq!(*n, 1, "{ctx}: {name} was hardened {n} times\n{err}");
        }
        assert_eq!(
            c["info"]["memoKeys"].as_array().unwrap().len(),
            seen.len(),
            "{ctx}"
        );
        // the metadata's dependencies are the very copies the package uses
        let out_of = |d: &Value| s(d, "name").to_string();
        let in_package: BTreeSet<String> = c["package"]["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["armorredHardening"] == "base")
            .map(out_of)
            .collect();
        let in_meta: BTreeSet<String> = c["info"]["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(out_of)
            .collect();
        assert_eq!(in_package, in_meta, "{ctx}");
        for tool in ["pkg-config", "python3", "tcl"] {
            assert!(!seen.keys().any(|k| k.starts_with(tool)), "{ctx}: {tool}");
        }
        let perl = seen.keys().any(|k| k.starts_with("perl-"));
        assert_eq!(perl, image == "nginx" && tier == "hardened", "{ctx}: perl");
    }
}

/// redis' own test suite runs on the hardened build, CFI tier included, and
/// the metadata says so. Mirrors pkgs/by-name/re/redis/package.nix
/// (doCheck = !stdenv.hostPlatform.isDarwin; checkPhase runs ./runtest).
#[test]
fn redis_test_suite_runs_on_every_tier() {
    for tier in ["hardened", "locked"] {
        let c = case("redis", tier);
        assert_eq!(c["package"]["doCheck"], true, "redis/{tier}");
        assert!(s(&c["package"], "checkPhase").contains("./runtest"));
        assert_eq!(c["info"]["testSuite"], true);
        let m = build_nix_attr(
            &spec("redis", tier, false, false),
            "./nix/tests/fake-nixpkgs",
            "meta.testSuite",
        );
        assert_eq!(m, json!(true));
    }
}

/// The metadata's version and licences are the built derivation's (its
/// `version` and `meta.license`), not the recipe's.
/// Mirrors pkgs/by-name/re/redis/package.nix (meta.license = agpl3Only) and
/// generic.nix (license = [ bsd2 ] ++ the modules').
#[test]
fn nixpkgs_meta_version_and_licences_come_from_the_derivation() {
    for image in ["nginx", "redis"] {
        let drv = eval_json(&[
            "-E",
            &format!(
                "let p = (import ./nix/tests/fake-nixpkgs {{ }}).{image}; l = p.meta.license; \
                 in {{ version = p.version; licenses = map (x: x.spdxId) (if builtins.isList l then l else [ l ]); }}"
            ),
        ]);
        let m = build_nix_attr(
            &spec(image, "locked", false, false),
            "./nix/tests/fake-nixpkgs",
            "meta",
        );
        assert_eq!(m["version"], drv["version"], "{image}");
        let want: BTreeSet<String> = set(&drv["licenses"]);
        assert_eq!(set(&m["licenses"]), want, "{image}");
        assert_eq!(
            strs(&m["licenses"]).len(),
            want.len(),
            "{image}: licences listed once"
        );
    }
}

/// One `package.file` interface for both sets, nixpkgs side: a file is
/// called like nixpkgs' callPackage (its named arguments from nixpkgs, plus
/// `armorred`). A file that takes no `stdenv` (here buildGoModule's) is
/// hardened through overrideAttrs where the tier needs no clang, and refused
/// with armorred's own error naming the file where it does; an offline-style
/// `{ armorred }:` file builds through the nixpkgs set's armorred.mkHardened
/// with the tier's clang.
/// Mirrors lib/customisation.nix (callPackageWith: "Function called without
/// required argument"; an argument the function does not take is an error)
/// and pkgs/build-support/go/module.nix (buildGoModule takes no stdenv).
#[test]
fn package_file_is_callpackage_style_under_nixpkgs() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let go = write(
        "goapp.nix",
        "{ lib, fetchurl, buildGoModule }:\nbuildGoModule {\n  pname = \"goapp\";\n  version = \"0.1\";\n  \
         src = fetchurl { url = \"file:///nonexistent/goapp-0.1.tar.gz\"; hash = \"\"; };\n  \
         vendorHash = null;\n  meta.license = lib.licenses.mit;\n}\n",
    );
    let run = |file: &str, hardening: Value| {
        json!({ "x": { "package": { "file": file }, "hardening": hardening } }).to_string()
    };
    let v = eval_json(&[
        "nix/tests/overlay-standin.nix",
        "--argstr",
        "casesJson",
        &run(&go, json!({})),
    ]);
    let p = &v["x"]["package"];
    assert_eq!(s(p, "pname"), "goapp");
    assert_eq!(fortify_level(&command(p, "compile")), Some(3));
    assert!(set(&p["hardeningEnable"]).contains("stackclashprotection"));
    // a tier that needs clang cannot be applied: armorred says so, naming the file
    let e = eval_err(&[
        "nix/tests/overlay-standin.nix",
        "--argstr",
        "casesJson",
        &run(&go, json!({ "lto": true })),
    ]);
    assert!(
        e.contains(&format!("armorred: package.file {go}"))
            && e.contains("takes neither `stdenv` nor `armorred`"),
        "{e}"
    );
    assert!(!e.contains("unexpected argument"), "{e}");

    // the offline fixture, unchanged, under the nixpkgs set
    let hello = root().join("tests/fixtures/recipes/hello.nix");
    let v = eval_json(&[
        "nix/tests/overlay-standin.nix",
        "--argstr",
        "casesJson",
        &run(
            hello.to_str().unwrap(),
            json!({ "cfi": true, "lto": true, "safestack": true }),
        ),
    ]);
    let p = &v["x"]["package"];
    assert_eq!(s(p, "pname"), "hello");
    assert_eq!(s(p, "stdenv"), "stdenv-clang-wrapper");
    assert!(command(p, "compile").contains(&"-fsanitize=cfi".to_string()));
    assert_eq!(fortify_level(&command(p, "link")), Some(3));

    // arguments nobody provides, and a file that is no function
    let missing = write(
        "missing.nix",
        "{ stdenv, nosuchthing }: stdenv.mkDerivation { pname = \"m\"; version = \"1\"; }\n",
    );
    let e = eval_err(&[
        "nix/tests/overlay-standin.nix",
        "--argstr",
        "casesJson",
        &run(&missing, json!({})),
    ]);
    assert!(
        e.contains(&format!("package.file {missing} needs nosuchthing")),
        "{e}"
    );
    let plain = write("plain.nix", "42\n");
    let e = eval_err(&[
        "nix/tests/overlay-standin.nix",
        "--argstr",
        "casesJson",
        &run(&plain, json!({})),
    ]);
    assert!(
        e.contains(&format!(
            "package.file {plain} must be a function of named arguments"
        )),
        "{e}"
    );
}

/// The same interface in the offline set: a file's named arguments come from
/// the set's packages plus `armorred`, so `{ armorred, glibc }:` gets both,
/// and a file asking for what only nixpkgs has is refused by name. The build
/// is real (nix-build of a small C program, seconds with a warm store).
#[test]
fn package_file_is_callpackage_style_offline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("tests/fixtures/recipes/hello.c"),
        dir.path().join("hello.c"),
    )
    .unwrap();
    let file = dir.path().join("callpkg.nix");
    std::fs::write(
        &file,
        "{ armorred, glibc }:\narmorred.mkHardened {\n  pname = \"callpkg\";\n  version = \"1.0\";\n  \
         src = builtins.path { path = ./.; name = \"callpkg-src\"; filter = p: t: baseNameOf p == \"hello.c\"; };\n  \
         buildPhase = \"$CC $CFLAGS hello.c $LDFLAGS -o callpkg\";\n  \
         installPhase = ''\n    mkdir -p $out/bin\n    cp callpkg $out/bin/callpkg\n    \
         echo ${armorred.packageSet} ${glibc.pname} > $out/called-with\n  '';\n}\n",
    )
    .unwrap();
    let spec = |file: &str| {
        json!({
            "packageSet": "offline",
            "sourceDir": "/nonexistent",
            "toolchainId": armorred::nix::detect_toolchain_id(),
            "package": { "file": file },
            "hardening": { "cfi": false, "lto": true, "safestack": true },
            "drop": [],
        })
        .to_string()
    };
    let sp = spec(file.to_str().unwrap());
    let args = [
        "nix/build.nix",
        "--no-out-link",
        "-A",
        "package",
        "--argstr",
        "specJson",
        &sp,
    ];
    let out = Command::new("nix-build")
        .current_dir(root())
        .args(args)
        .env_remove("NIX_PATH")
        .output()
        .expect("run nix-build");
    assert!(
        out.status.success(),
        "nix-build {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let called = std::fs::read_to_string(path.join("called-with")).unwrap();
    assert!(called.starts_with("offline glibc"), "{called}");
    let run = Command::new(path.join("bin/callpkg")).output().unwrap();
    assert!(run.status.success());
    assert!(String::from_utf8_lossy(&run.stdout).contains("hello"));

    let nixpkgs_only = dir.path().join("nixpkgs-only.nix");
    std::fs::write(
        &nixpkgs_only,
        "{ stdenv, fetchurl }: stdenv.mkDerivation { pname = \"x\"; version = \"1\"; }\n",
    )
    .unwrap();
    let sp = spec(nixpkgs_only.to_str().unwrap());
    let e = eval_err(&["nix/build.nix", "--argstr", "specJson", &sp, "-A", "meta"]);
    assert!(
        e.contains(&format!(
            "package.file {} needs fetchurl, stdenv",
            nixpkgs_only.display()
        )) && e.contains("offline set does not provide"),
        "{e}"
    );
}

/// The flake evaluates purely (`nix eval` with flakes, Nix 2.8's
/// experimental flag), with the stand-in as its nixpkgs input: the overlay
/// needs no absolute path and no currentSystem, and a package.file given as
/// a string outside the store gets armorred's error, not Nix's.
#[test]
fn flake_evaluates_purely_on_the_stand_in() {
    let r = root();
    let flake = format!("git+file://{}#lib", r.display());
    let standin = format!("path:{}", r.join("nix/tests/fake-nixpkgs").display());
    let eval = |apply: &str| {
        Command::new("nix")
            .current_dir(&r)
            .args(["--extra-experimental-features", "nix-command flakes"])
            .args([
                "eval",
                "--json",
                &flake,
                "--override-input",
                "nixpkgs",
                &standin,
            ])
            .args(["--no-write-lock-file", "--apply", apply])
            .env_remove("NIX_PATH")
            .output()
            .expect("run nix eval")
    };
    let out = eval(
        "lib: let a = lib.hardenedPackages { system = \"x86_64-linux\"; package = { attr = \"redis\"; }; \
         hardening = { cfi = true; lto = true; safestack = true; }; drop = [ \"tls\" ]; }; \
         in { inherit (a.package) pname; names = a.package.armorred.names; shell = a.shells.busybox.pname; }",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pname"], "redis");
    assert!(strs(&v["names"]).contains(&"cfi".to_string()));
    assert_eq!(v["shell"], "busybox");
    let out = eval("lib: (lib.hardenedPackages { system = \"x86_64-linux\"; package = { file = \"/tmp/pkg.nix\"; }; }).package.pname");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        e.contains("pure evaluation (flakes) cannot read") && e.contains("file = ./pkg.nix"),
        "{e}"
    );
}

/// The check a machine with Nix >= 2.18 runs against the real pinned nixpkgs
/// (nix/nixpkgs/README.md: `nix eval --impure --json --file
/// nix/tests/real-nixpkgs-check.nix`) passes on the stand-in, so what it
/// reports there is about nixpkgs, not about the check.
#[test]
fn real_nixpkgs_check_passes_on_the_stand_in() {
    let v = eval_json(&[
        "nix/tests/real-nixpkgs-check.nix",
        "--arg",
        "nixpkgs",
        "./nix/tests/fake-nixpkgs",
        "--argstr",
        "system",
        "x86_64-linux",
    ]);
    let checks = v.as_object().unwrap();
    assert!(checks.len() >= 12, "{v}");
    for (name, value) in checks {
        if name != "details" {
            assert_eq!(value, &json!(true), "{name}: {}", v["details"]);
        }
    }
}

/// The two documented `package.file` examples: the nixpkgs one
/// (callPackage-style, `{ lib, stdenv }`) and the offline one (`{ armorred }`,
/// armorred.mkHardened and resolveFeatures), which evaluates in the nixpkgs
/// set as well, with its feature and drop list.
#[test]
fn package_file_examples_evaluate_on_the_stand_in() {
    let cases = json!({
        "nixpkgs": {
            "package": { "file": root().join("nix/nixpkgs/examples/hello/default.nix") },
            "hardening": { "cfi": true, "lto": true, "safestack": true },
        },
        "offline": {
            "package": { "file": root().join("nix/offline/examples/hello/default.nix") },
            "hardening": { "lto": true },
            "drop": ["greeting"],
        },
    });
    let (v, _) = standin_cases_with_stderr(&cases);
    let n = &v["nixpkgs"];
    assert_eq!(s(&n["package"], "stdenv"), "stdenv-clang-wrapper");
    assert_eq!(n["package"]["licenses"], json!(["MIT"]));
    assert!(command(&n["package"], "compile").contains(&"-fsanitize=cfi".to_string()));
    let o = &v["offline"];
    assert_eq!(s(&o["package"], "pname"), "hello");
    assert_eq!(o["info"]["features"], json!(["greeting"]));
    assert_eq!(o["info"]["droppedFeatures"], json!(["greeting"]));
    assert_eq!(fortify_level(&command(&o["package"], "compile")), Some(3));
}

/// The nixpkgs nginx's install step, run with bash (`set -eu -o pipefail`,
/// as nixpkgs' stdenv runs phases) on a tree shaped like nginx's `make
/// install` output under the overlay's configure flags (MakeMaker's
/// `lib/perl5/<archname>/` included, `bin/nginx` a stub that accepts `-t`):
/// afterwards every `[runtime.links]` target of recipes/nginx.toml and
/// every file the hardened tier's exceptions name exists, and nginx.conf is
/// the shipped one with the store path filled in. Both tiers (locked has no
/// dynamic module, which the install must also survive).
#[test]
fn nixpkgs_nginx_install_step_makes_the_recipes_paths() {
    let recipe: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("recipes/nginx.toml")).unwrap())
            .unwrap();
    for tier in ["hardened", "locked"] {
        let c = case("nginx", tier);
        let p = &c["package"];
        let placeholder = s(c, "outPlaceholder");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let top = dir.path().join("build");
        std::fs::create_dir_all(&top).unwrap();
        let mk = |rel: &str, text: &str| {
            let f = out.join(rel);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, text).unwrap();
        };
        mk(
            "bin/nginx",
            "#!/bin/sh\n[ \"$1\" = -t ] || exit 1\ncat \"$5\" >&2\n",
        );
        mk(
            "etc/nginx/nginx.conf",
            "# nginx's default, to be replaced\n",
        );
        // what nginx's own `make install` (auto/install) puts beside
        // --conf-path: mime.types and the three *_params files
        mk("etc/nginx/mime.types", "types {}\n");
        for params in ["fastcgi_params", "scgi_params", "uwsgi_params"] {
            mk(&format!("etc/nginx/{params}"), "# params\n");
        }
        mk("html/index.html", "<html></html>\n");
        let flags = strs(&p["configureFlags"]);
        for f in &flags {
            if let Some(m) = f
                .strip_prefix("--with-")
                .and_then(|f| f.strip_suffix("_module=dynamic"))
            {
                mk(&format!("lib/nginx/modules/ngx_{m}_module.so"), "so");
            }
        }
        if flags.iter().any(|f| f.starts_with("--with-perl=")) {
            mk(
                "lib/perl5/x86_64-linux-thread-multi/nginx.pm",
                "package nginx;\n",
            );
            mk(
                "lib/perl5/x86_64-linux-thread-multi/auto/nginx/nginx.so",
                "so",
            );
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            out.join("bin/nginx"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let script = format!(
            "set -eu -o pipefail\nremove-references-to() {{ :; }}\n{}",
            s(p, "postInstall").replace(placeholder, out.to_str().unwrap())
        );
        let run = Command::new("bash")
            .args(["-c", &script])
            .env("out", &out)
            .env("NIX_BUILD_TOP", &top)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "nginx/{tier} install step failed:\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        for t in recipe["runtime"]["links"].as_table().unwrap().values() {
            let t = t.as_str().unwrap();
            assert!(
                out.join(t).exists(),
                "nginx/{tier}: link target {t} missing"
            );
        }
        if tier == "hardened" {
            for e in recipe["tiers"]["hardened"]["exceptions"]
                .as_array()
                .unwrap()
            {
                let path = e["path"].as_str().unwrap();
                assert!(out.join(path).exists(), "nginx/hardened: {path} missing");
            }
            // `load_module modules/x.so` resolves through $out/modules
            assert!(out.join("modules/ngx_http_perl_module.so").exists());
            // the stub nginx was run with every module loaded
            assert!(String::from_utf8_lossy(&run.stderr).contains("load_module"));
        }
        let conf = std::fs::read_to_string(out.join("etc/nginx/nginx.conf")).unwrap();
        let shipped = std::fs::read_to_string(root().join("nix/nixpkgs/nginx.conf")).unwrap();
        assert_eq!(
            conf.trim_end(),
            shipped.replace("@out@", out.to_str().unwrap()).trim_end()
        );
        assert!(out.join("share/nginx/html/index.html").exists());
        assert!(!out.join("html").exists());
    }
}

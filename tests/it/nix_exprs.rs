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

#[test]
fn fortify_only_through_the_hardening_name_never_in_nix_cflags() {
    for (image, tier) in TIERS {
        let c = case(image, tier);
        let mut all = Vec::new();
        walk(&c["package"], &mut all);
        for sh in c["shells"].as_object().unwrap().values() {
            walk(sh, &mut all);
        }
        assert!(
            all.len() > 5,
            "{image}/{tier}: too few derivations to be meaningful"
        );
        for d in all {
            let f = cflags(d);
            assert!(
                !f.contains("_FORTIFY_SOURCE"),
                "{image}/{tier}: {} has {f}",
                s(d, "name")
            );
            assert!(
                set(&d["hardeningEnable"]).contains("fortify3"),
                "{image}/{tier}: {} lacks fortify3",
                s(d, "name")
            );
        }
        assert!(!strs(&c["info"]["cflags"])
            .iter()
            .any(|f| f.contains("FORTIFY")));
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
            "-fvisibility=hidden",
        ] {
            assert_eq!(f.contains(flag), cfi, "{ctx}: {flag}");
            assert_eq!(link.contains(flag), cfi, "{image}/{tier} link: {flag}");
        }
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
        assert_eq!(names.contains("cet"), !cfi);
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
    // hardened only adds the libraries of the modules it turns on and nixpkgs
    // leaves off by default (image_filter's gd, geoip). generic.nix keeps
    // perl among the build inputs whatever withPerl says.
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
    assert_eq!(extra, BTreeSet::from(["gd", "geoip"]), "{extra:?}");
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
        assert_eq!(names.contains("cet"), !cfi);
        assert!(names.contains("fortify3") && names.contains("relro") && names.contains("bindnow"));
        assert!(!s(&m, "cflags").contains("FORTIFY"));
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

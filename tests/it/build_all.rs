//! `build --all` over a mix of good and bad recipes, through
//! the real binary and real Nix: it keeps going, prints a summary table and
//! exits 1 when any image failed.

use std::fs;
use std::path::PathBuf;

use crate::common::*;

/// hello (good), weak (fails the hardening gate) and broken (fails its Nix
/// build), each in both tiers: six images.
fn mixed_recipes(ctx: &TestContext) -> PathBuf {
    let src = repo().join("tests/fixtures/recipes");
    let dir = ctx.path().join("recipes");
    fs::create_dir_all(&dir).unwrap();
    for f in [
        "hello.toml",
        "hello.nix",
        "hello.c",
        "weak.toml",
        "weak.nix",
        "weak.c",
        "broken.nix",
    ] {
        fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let hello = fs::read_to_string(src.join("hello.toml")).unwrap();
    let broken = hello
        .replace("name = \"hello\"", "name = \"broken\"")
        .replace("file = \"hello.nix\"", "file = \"broken.nix\"");
    assert_ne!(broken, hello);
    fs::write(dir.join("broken.toml"), broken).unwrap();
    dir
}

#[test]
fn build_all_with_jobs_keeps_going_and_summarizes() {
    let ctx = TestContext::new();
    let recipes = mixed_recipes(&ctx);
    let cache = ctx.path().join("cache");
    let build_all = |jobs: &str, extra: &[&str]| {
        let args = [
            "build",
            "--all",
            "--jobs",
            jobs,
            "--recipes",
            recipes.to_str().unwrap(),
            "--out",
            "out",
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        ctx.run(&[&args[..], extra].concat())
    };
    let r = build_all("2", &["--json"]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    let v = r.json();
    let built: Vec<(String, String)> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["image"].as_str().unwrap().to_string(),
                i["tier"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        built,
        [
            ("hello".to_string(), "hardened".to_string()),
            ("hello".into(), "locked".into())
        ],
        "{v}"
    );
    let failed: Vec<String> = v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["image"].as_str().unwrap(),
                f["tier"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            "broken hardened",
            "broken locked",
            "weak hardened",
            "weak locked"
        ],
        "{v}"
    );
    let err = r.stderr();
    assert!(err.contains("build summary:"), "{err}");
    assert!(err.contains("2 built, 4 failed"), "{err}");
    assert!(err.contains("this build fails on purpose"), "{err}");
    assert!(err.contains("hardening gate"), "{err}");
    for dir in ["hello-hardened", "hello-locked"] {
        assert!(ctx
            .path()
            .join("out")
            .join(dir)
            .join("index.json")
            .is_file());
    }
    for dir in ["weak-hardened", "broken-locked"] {
        assert!(!ctx.path().join("out").join(dir).exists(), "{dir}");
    }

    // All good: exit 0, and the summary still closes the run.
    for bad in ["weak.toml", "broken.toml"] {
        fs::remove_file(recipes.join(bad)).unwrap();
    }
    let ok = build_all("3", &[]);
    assert!(ok.out.status.success(), "{}", ok.describe());
    assert!(ok.stderr().contains("2 built, 0 failed"), "{}", ok.stderr());
    assert_eq!(ok.stdout().lines().count(), 2, "{}", ok.stdout());
}

#[test]
fn jobs_must_be_at_least_one() {
    let ctx = TestContext::new();
    let r = ctx.run(&["build", "--all", "--jobs", "0"]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(r.stderr().contains("--jobs"), "{}", r.stderr());
}

/// Runs `armorred ARGS` with a pseudo-terminal on stdin, stdout and stderr
/// (util-linux `script`); returns what the terminal showed.
fn on_a_terminal(ctx: &TestContext, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut line =
        shlex::try_join(std::iter::once(bin().to_str().unwrap()).chain(args.iter().copied()))
            .unwrap();
    line.push_str(" 2>&1");
    let mut cmd = std::process::Command::new("script");
    private_cache(&mut cmd)
        .args(["-qec", &line, "/dev/null"])
        .current_dir(ctx.path())
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{line}\n{shown}");
    shown
}

#[test]
fn progress_bars_on_a_terminal_plain_lines_otherwise() {
    let ctx = TestContext::new();
    let recipes = repo().join("tests/fixtures/recipes");
    let cache = ctx.path().join("cache");
    let args = |out: &'static str| {
        vec![
            "build".to_string(),
            "hello".into(),
            "--tier".into(),
            "hardened".into(),
            "--recipes".into(),
            recipes.to_str().unwrap().into(),
            "--out".into(),
            out.into(),
            "--cache-dir".into(),
            cache.to_str().unwrap().into(),
        ]
    };
    let a = args("bars");
    let bars = on_a_terminal(&ctx, &argv(&a), &[]);
    // The bar's last frame: every layer counted, then the digest.
    let done = shows_in_order(&bars, "layers, ", " MiB, done sha256:");
    assert!(done, "{bars}");
    assert!(
        !bars.contains("INFO hello (hardened): building with Nix"),
        "{bars}"
    );
    assert!(bars.contains("\x1b[36m"), "colored spinner: {bars:?}");

    let mut a = args("plain");
    a.push("--no-progress".into());
    let plain = on_a_terminal(&ctx, &argv(&a), &[]);
    assert!(
        plain.contains("hello (hardened): building with Nix"),
        "{plain}"
    );
    assert!(!plain.contains(" layers, "), "{plain}");

    let a = args("nocolor");
    let nocolor = on_a_terminal(&ctx, &argv(&a), &[("NO_COLOR", "1")]);
    assert!(nocolor.contains(" MiB, done sha256:"), "{nocolor}");
    assert!(!nocolor.contains("\x1b[3"), "no color codes: {nocolor:?}");

    // Not a terminal: plain log lines, whatever the flags.
    let piped = ctx.ok(&argv(&args("piped")));
    assert!(piped
        .stderr()
        .contains("hello (hardened): building with Nix"));
    assert!(!piped.stderr().contains(" layers, "));
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `text` holds `a`, then later `b`, on one line.
fn shows_in_order(text: &str, a: &str, b: &str) -> bool {
    text.split(['\n', '\r'])
        .any(|l| l.find(a).is_some_and(|i| l[i..].contains(b)))
}

//! Every bad input gets a clear error naming the culprit, the
//! documented exit code (1 build/check failed, 2 usage/input error), no
//! panic or backtrace, and a previously good image in --out stays untouched.

use std::fs;
use std::path::PathBuf;

use crate::common::*;

/// A temp dir with a copy of the fixture recipes and a good `hello` image
/// already built into `out/`.
struct Fixture {
    ctx: TestContext,
    recipes: PathBuf,
    good_index: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        let ctx = TestContext::new();
        let recipes = ctx.path().join("recipes");
        sh(
            "cp",
            &[
                "-a",
                repo().join("tests/fixtures/recipes").to_str().unwrap(),
                recipes.to_str().unwrap(),
            ],
        );
        let f = Fixture {
            ctx,
            recipes,
            good_index: Vec::new(),
        };
        let r = f.build("hello", &[]);
        assert!(r.out.status.success(), "{}", r.describe());
        let good_index = fs::read(f.good_layout().join("index.json")).unwrap();
        Fixture { good_index, ..f }
    }

    fn good_layout(&self) -> PathBuf {
        self.ctx.path().join("out/hello-hardened")
    }

    fn build(&self, image: &str, env: &[(&str, &str)]) -> Run {
        let recipes = self.recipes.display().to_string();
        let nix = repo().join("nix").display().to_string();
        let args = [
            "build",
            image,
            "--tier",
            "hardened",
            "--recipes",
            &recipes,
            "--nix-dir",
            &nix,
            "--out",
            "out",
        ];
        self.ctx.run_env(&args, env)
    }

    /// Rewrites `hello.toml` with `edit`.
    fn edit_recipe(&self, edit: impl FnOnce(String) -> String) {
        let p = self.recipes.join("hello.toml");
        let text = fs::read_to_string(&p).unwrap();
        let new = edit(text.clone());
        assert_ne!(new, text, "the edit changed nothing");
        fs::write(p, new).unwrap();
    }

    /// The failing run's checks shared by every case.
    fn assert_refused(&self, r: &Run, code: i32, needles: &[&str]) {
        assert_eq!(r.code(), code, "{}", r.describe());
        let err = r.stderr();
        assert!(
            err.starts_with("error: ") || err.contains("\nerror: "),
            "{err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("stack backtrace"),
            "{err}"
        );
        for n in needles {
            assert!(err.contains(n), "missing `{n}` in:\n{err}");
        }
        assert_eq!(
            fs::read(self.good_layout().join("index.json")).unwrap(),
            self.good_index,
            "good image changed"
        );
        let f = self
            .ctx
            .run(&["fsck", self.good_layout().to_str().unwrap()]);
        assert!(f.out.status.success(), "{}", f.describe());
    }
}

#[test]
fn malformed_toml() {
    let f = Fixture::new();
    f.edit_recipe(|t| t.replace("[package]", "[package"));
    f.assert_refused(
        &f.build("hello", &[]),
        2,
        &["hello.toml:8:", "unclosed table"],
    );
}

#[test]
fn unknown_key_wrong_type_missing_field() {
    let f = Fixture::new();
    f.edit_recipe(|t| t.replace("safestack = true", "safestack = true\nsafe_stack = true"));
    f.assert_refused(
        &f.build("hello", &[]),
        2,
        &["hello.toml:", "safe_stack", "unknown field"],
    );

    let f = Fixture::new();
    f.edit_recipe(|t| t.replacen("lto = true", "lto = \"yes\"", 1));
    f.assert_refused(
        &f.build("hello", &[]),
        2,
        &["hello.toml:", "key `tiers.hardened.lto`", "invalid type"],
    );

    let f = Fixture::new();
    f.edit_recipe(|t| t.replace("upstream = \"none\"\n", ""));
    f.assert_refused(
        &f.build("hello", &[]),
        2,
        &["hello.toml:", "missing field `upstream`"],
    );
}

#[test]
fn unknown_tier_or_image() {
    let f = Fixture::new();
    let r = f.ctx.run(&["build", "hello", "--tier", "paranoid"]);
    f.assert_refused(&r, 2, &["--tier", "unknown tier `paranoid`"]);
    let r = f.build("no-such-image", &[]);
    f.assert_refused(
        &r,
        2,
        &[
            "unknown image `no-such-image`",
            "no-such-image.toml",
            "hint: `armorred list`",
        ],
    );
}

/// A mistyped upstream-test mode would otherwise build with the CI subsets
/// and look like a full run.
#[test]
fn unknown_upstream_test_mode_is_refused() {
    let f = Fixture::new();
    let r = f.build("hello", &[("ARMORRED_UPSTREAM_TESTS", "ful")]);
    f.assert_refused(&r, 2, &["ARMORRED_UPSTREAM_TESTS=`ful`", "known: ci, full"]);
}

/// `report` needs both tiers' layouts: a missing one is named, with the
/// command that builds it, before any upstream is fetched.
#[test]
fn report_on_a_missing_layout() {
    let f = Fixture::new();
    // Only the hardened tier exists in out/: the locked one is missing.
    let r = f.ctx.run(&["report", "hello", "--out", "out"]);
    f.assert_refused(
        &r,
        2,
        &[
            "no image `hello` tier `locked`",
            "out/hello-locked",
            "hint: build it first: armorred build hello --tier locked",
        ],
    );
    // Nothing built at all: the first tier is named; the upstream is never opened.
    let r = f.ctx.run(&[
        "report",
        "hello",
        "--out",
        "empty",
        "--upstream",
        "docker://127.0.0.1:9/none:x",
    ]);
    f.assert_refused(
        &r,
        2,
        &[
            "empty/hello-hardened",
            "hint: build it first: armorred build hello --tier hardened",
        ],
    );
}

#[test]
fn entrypoint_not_in_the_closure() {
    let f = Fixture::new();
    f.edit_recipe(|t| {
        t.replace(
            "entrypoint = [\"/usr/bin/hello\"]",
            "entrypoint = [\"/usr/bin/missing\"]",
        )
    });
    f.assert_refused(
        &f.build("hello", &[]),
        2,
        &["entrypoint `/usr/bin/missing` is not in the closure"],
    );
}

#[test]
fn writable_path_relative_or_dotdot() {
    for bad in ["var/data", "/var/../etc"] {
        let f = Fixture::new();
        f.edit_recipe(|t| {
            t.replace(
                "[runtime]\n",
                &format!("[runtime]\nwritable = [\"{bad}\"]\n"),
            )
        });
        f.assert_refused(
            &f.build("hello", &[]),
            2,
            &["hello.toml:", "runtime.writable", bad],
        );
    }
}

#[test]
fn duplicate_or_invalid_ports() {
    let f = Fixture::new();
    f.edit_recipe(|t| {
        t.replace(
            "[runtime]\n",
            "[runtime]\nports = [\"8080\", \"8080/tcp\"]\n",
        )
    });
    f.assert_refused(
        &f.build("hello", &[]),
        2,
        &["hello.toml:", "runtime.ports", "listed twice"],
    );
    let f = Fixture::new();
    f.edit_recipe(|t| t.replace("[runtime]\n", "[runtime]\nports = [\"99999\"]\n"));
    f.assert_refused(
        &f.build("hello", &[]),
        2,
        &["runtime.ports", "`99999` is not a port"],
    );
}

#[test]
fn absent_nix() {
    let f = Fixture::new();
    let empty = f.ctx.path().join("empty-bin");
    fs::create_dir_all(&empty).unwrap();
    let r = f.build("hello", &[("PATH", empty.to_str().unwrap())]);
    // The first Nix command a build runs evaluates the package's meta.
    f.assert_refused(
        &r,
        1,
        &[
            "Nix is not installed",
            "nix-instantiate",
            "hint: install Nix",
        ],
    );
}

#[test]
fn failing_nix_build_shows_the_log_tail_and_command() {
    let f = Fixture::new();
    fs::write(
        f.recipes.join("broken.toml"),
        fs::read_to_string(f.recipes.join("hello.toml"))
            .unwrap()
            .replace("name = \"hello\"", "name = \"broken\"")
            .replace("hello.nix", "broken.nix"),
    )
    .unwrap();
    let r = f.build("broken", &[]);
    f.assert_refused(
        &r,
        1,
        &[
            "Nix build failed",
            "nix-build",
            "this build fails on purpose",
            "building `broken` tier `hardened`",
        ],
    );
}

#[test]
fn nix_evaluation_error_names_the_feature() {
    let f = Fixture::new();
    f.edit_recipe(|t| t.replace("[tiers.locked]", "drop = [\"telnet\"]\n\n[tiers.locked]"));
    let r = f.build("hello", &[]);
    f.assert_refused(&r, 1, &["Nix evaluation failed", "telnet"]);
}

fn fetched_recipe(f: &Fixture) {
    fs::write(
        f.recipes.join("fetched.toml"),
        fs::read_to_string(f.recipes.join("hello.toml"))
            .unwrap()
            .replace("name = \"hello\"", "name = \"fetched\"")
            .replace("hello.nix", "fetched.nix"),
    )
    .unwrap();
}

#[test]
fn missing_source_tarball() {
    let f = Fixture::new();
    fetched_recipe(&f);
    let sources = f.ctx.path().join("sources");
    fs::create_dir_all(&sources).unwrap();
    let r = f.build(
        "fetched",
        &[("ARMORRED_TEST_SOURCES", sources.to_str().unwrap())],
    );
    f.assert_refused(&r, 1, &["Nix build failed", "fixture-1.0.tar.gz"]);
}

#[test]
fn source_tarball_hash_mismatch() {
    let f = Fixture::new();
    fetched_recipe(&f);
    let sources = f.ctx.path().join("sources");
    fs::create_dir_all(&sources).unwrap();
    fs::write(
        sources.join("fixture-1.0.tar.gz"),
        b"not the pinned tarball",
    )
    .unwrap();
    let r = f.build(
        "fetched",
        &[("ARMORRED_TEST_SOURCES", sources.to_str().unwrap())],
    );
    f.assert_refused(&r, 1, &["hash mismatch", "fixture-1.0.tar.gz"]);
}

#[test]
fn unreadable_source_tarball() {
    let f = Fixture::new();
    fetched_recipe(&f);
    let sources = f.ctx.path().join("sources");
    fs::create_dir_all(&sources).unwrap();
    // A directory where the tarball should be: it exists but cannot be read as a file.
    fs::create_dir_all(sources.join("fixture-1.0.tar.gz")).unwrap();
    let r = f.build(
        "fetched",
        &[("ARMORRED_TEST_SOURCES", sources.to_str().unwrap())],
    );
    f.assert_refused(&r, 1, &["Nix build failed", "fixture-1.0.tar.gz"]);
}

#[test]
fn full_disk_while_writing_blobs() {
    let f = Fixture::new();
    let mnt = f.ctx.path().join("small");
    fs::create_dir_all(&mnt).unwrap();
    sh(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=6m",
            "tmpfs",
            mnt.to_str().unwrap(),
        ],
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let out = mnt.join("out");
    let recipes = f.recipes.display().to_string();
    let nixdir = repo().join("nix").display().to_string();
    let build = |extra: &[&str]| {
        let mut a = vec![
            "build",
            "hello",
            "--tier",
            "hardened",
            "--recipes",
            &recipes,
            "--nix-dir",
            &nixdir,
            "--out",
            out.to_str().unwrap(),
            "--no-cache",
        ];
        a.extend(extra);
        f.ctx.run(&a)
    };
    let first = build(&[]);
    assert!(first.out.status.success(), "{}", first.describe());
    let layout = out.join("hello-hardened");
    let before = fs::read(layout.join("index.json")).unwrap();
    // Fill the rest of the disk, then rebuild with uncompressed layers.
    let _ = std::process::Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}", mnt.join("filler").display()),
            "bs=64k",
        ])
        .output();
    let r = build(&["--compression", "none"]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(
        r.stderr().contains("No space left on device"),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr().contains(layout.to_str().unwrap()),
        "names the output: {}",
        r.stderr()
    );
    assert_eq!(
        fs::read(layout.join("index.json")).unwrap(),
        before,
        "the good image was replaced"
    );
    fs::remove_file(mnt.join("filler")).unwrap();
    let fsck = f.ctx.run(&["fsck", layout.to_str().unwrap()]);
    assert!(
        fsck.out.status.success() && fsck.stdout().contains("0 problem(s)"),
        "{}",
        fsck.describe()
    );
}

#[test]
fn corrupt_or_missing_layouts() {
    let f = Fixture::new();
    let missing = f.ctx.path().join("nope");
    let pubkey = f.ctx.path().join("k.pub");
    fs::write(
        &pubkey,
        "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    for cmd in [
        vec!["inspect"],
        vec!["analyze"],
        vec!["fsck"],
        vec!["lint"],
        vec!["sbom"],
    ] {
        let mut args = cmd.clone();
        args.push(missing.to_str().unwrap());
        let r = f.ctx.run(&args);
        assert_eq!(r.code(), 2, "{}", r.describe());
        assert!(
            r.stderr().contains(missing.to_str().unwrap()),
            "{}",
            r.stderr()
        );
    }
    // A layout whose index.json is not JSON.
    let corrupt = f.ctx.path().join("corrupt");
    sh(
        "cp",
        &[
            "-a",
            f.good_layout().to_str().unwrap(),
            corrupt.to_str().unwrap(),
        ],
    );
    fs::write(corrupt.join("index.json"), b"{ not json").unwrap();
    for cmd in ["inspect", "analyze"] {
        let r = f.ctx.run(&[cmd, corrupt.to_str().unwrap()]);
        assert_eq!(r.code(), 2, "{}", r.describe());
        assert!(
            r.stderr().contains("index.json") && r.stderr().contains("invalid JSON"),
            "{}",
            r.stderr()
        );
    }
    let r = f.ctx.run(&[
        "verify",
        corrupt.to_str().unwrap(),
        "--key",
        pubkey.to_str().unwrap(),
    ]);
    assert_ne!(r.code(), 0);
    // A blob that no longer matches its digest.
    let tampered = f.ctx.path().join("tampered");
    sh(
        "cp",
        &[
            "-a",
            f.good_layout().to_str().unwrap(),
            tampered.to_str().unwrap(),
        ],
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(tampered.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let p = tampered.join("blobs/sha256").join(&m[7..]);
    let mut bytes = fs::read(&p).unwrap();
    bytes[10] ^= 1;
    fs::write(&p, bytes).unwrap();
    let r = f.ctx.run(&["inspect", tampered.to_str().unwrap()]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(
        r.stderr().contains("does not match its digest"),
        "{}",
        r.stderr()
    );
    let r = f.ctx.run(&["fsck", tampered.to_str().unwrap()]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(r.stdout().contains(&m[7..]), "{}", r.stdout());
}

#[test]
fn wrong_key_passphrase() {
    let f = Fixture::new();
    let r = f.ctx.run_env(
        &["generate-key-pair", "--output-key-prefix", "k"],
        &[("COSIGN_PASSWORD", "right")],
    );
    assert!(r.out.status.success(), "{}", r.describe());
    let r = f.ctx.run_env(
        &["sign", f.good_layout().to_str().unwrap(), "--key", "k.key"],
        &[("COSIGN_PASSWORD", "wrong")],
    );
    f.assert_refused(&r, 1, &["k.key", "passphrase"]);
}

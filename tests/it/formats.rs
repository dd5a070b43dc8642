//! Output formats and ergonomics, on nginx built through real Nix.
//! A docker archive loads in podman and serves HTTP 200; an OCI archive
//! is read by skopeo; both are byte-for-byte reproducible. Completions,
//! man pages and `armorred.toml` come from the same CLI definitions.
//! Multi-platform recipes are tested in `multiarch`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

fn sha256(path: &Path) -> String {
    let out = sh("sha256sum", &[path.to_str().unwrap()]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Builds one tier of nginx with `--format`, in a fresh directory.
fn build(ctx: &TestContext, tier: &str, format: &str, out: &str) -> (PathBuf, Value) {
    let r = ctx.ok(&[
        "build", "nginx", "--tier", tier, "--format", format, "--out", out, "--json",
    ]);
    let v = r.json();
    let archive = PathBuf::from(
        v["archives"][0]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("no archive in the build summary\n{}", r.describe())),
    );
    (ctx.path().join(archive), v)
}

#[test]
fn docker_archive_loads_in_podman_and_serves() {
    let ctx = TestContext::new();
    let (archive, summary) = build(&ctx, "hardened", "docker-archive", "out");
    assert_eq!(archive, ctx.path().join("out/nginx-hardened.docker.tar"));
    let a = &summary["archives"][0];
    assert_eq!(a["format"], "docker-archive");
    assert_eq!(a["repo_tag"], "localhost/armorred/nginx:1.26.3-hardened");
    assert_eq!(a["digest"], format!("sha256:{}", sha256(&archive)));
    // No temp file is left beside it.
    for e in std::fs::read_dir(ctx.path().join("out")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".tmp-"), "leftover {name}");
    }

    // Reproducible: a second build writes the same bytes.
    let (again, _) = build(&ctx, "hardened", "docker-archive", "out2");
    assert_eq!(sha256(&archive), sha256(&again));

    let podman = Podman::new();
    let name = podman.load_archive(&archive);
    assert!(name.ends_with("armorred/nginx:1.26.3-hardened"), "{name}");
    // The loaded image is the built one: same config, hence the same ID.
    let config = summary["images"][0]["config_digest"].as_str().unwrap();
    let id = podman.run(&["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(
        format!("sha256:{}", String::from_utf8_lossy(&id.stdout).trim()),
        config
    );
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let mut args = vec!["run", "-d", "--rm", "-p", &publish];
    args.extend(PODMAN_LIMITS);
    args.push(&name);
    let started = podman.run(&args);
    let container = String::from_utf8_lossy(&started.stdout).trim().to_string();
    let status = http_status(port, "/", Duration::from_secs(30));
    let logs = podman.try_run(&["logs", &container]);
    let _ = podman.try_run(&["stop", "-t", "1", &container]);
    assert_eq!(
        status,
        Some(200),
        "nginx from the docker archive did not serve\n{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
}

#[test]
fn oci_archive_is_read_by_skopeo() {
    let ctx = TestContext::new();
    let (archive, summary) = build(&ctx, "locked", "oci-archive", "out");
    assert_eq!(archive, ctx.path().join("out/nginx-locked.oci.tar"));
    let src = format!("oci-archive:{}", archive.display());
    let out = sh("skopeo", &["inspect", &src]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], summary["images"][0]["manifest_digest"]);
    assert_eq!(v["Labels"]["org.armorred.tier"], "locked");
    assert_eq!(v["Architecture"], "amd64");
    let cfg = sh("skopeo", &["inspect", "--config", &src]);
    let cfg: Value = serde_json::from_slice(&cfg.stdout).unwrap();
    assert_eq!(cfg["config"]["User"], "65534");
    // skopeo copies it back into a layout that fsck accepts.
    let copy = ctx.path().join("copy");
    sh(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &src,
            &format!("oci:{}:x", copy.display()),
        ],
    );
    ctx.ok(&["fsck", copy.to_str().unwrap()]);
    let (again, _) = build(&ctx, "locked", "oci-archive", "out2");
    assert_eq!(sha256(&archive), sha256(&again));
}

#[test]
fn completions_and_man_pages_come_from_the_cli() {
    let ctx = TestContext::new();
    let bash = ctx.ok(&["completions", "bash"]).stdout();
    for word in [
        "armorred",
        "report",
        "compat",
        "--upstream",
        "docker-archive",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let zsh = ctx.ok(&["completions", "zsh"]).stdout();
    assert!(
        zsh.starts_with("#compdef armorred"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    let fish = ctx.ok(&["completions", "fish"]).stdout();
    assert!(fish.contains("complete -c armorred"));
    // bash accepts the script.
    let file = ctx.path().join("armorred.bash");
    std::fs::write(&file, &bash).unwrap();
    sh("bash", &["-n", file.to_str().unwrap()]);

    let man = ctx.ok(&["man"]).stdout();
    assert!(
        man.starts_with(".ie") || man.contains(".TH armorred"),
        "{}",
        &man[..200]
    );
    assert!(man.contains("report") && man.contains("compat"));
    let listed = ctx.ok(&["man", "--dir", "man"]).stdout();
    let report_page = ctx.path().join("man/armorred-report.1");
    assert!(listed.contains("armorred-report.1"), "{listed}");
    let page = std::fs::read_to_string(&report_page).unwrap();
    assert!(page.contains("armorred\\-report") || page.contains("armorred-report"));
    assert!(page.contains("upstream"));
    // man(1) renders it.
    let rendered = std::process::Command::new("man")
        .arg("-l")
        .arg(&report_page)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .output();
    if let Ok(o) = rendered {
        if o.status.success() {
            assert!(String::from_utf8_lossy(&o.stdout).contains("--upstream"));
        }
    }
}

#[test]
fn armorred_toml_sets_defaults_that_flags_override() {
    let b = nginx();
    let ctx = TestContext::new();
    let out = b.ctx.path().join("out");
    std::fs::write(
        ctx.path().join("armorred.toml"),
        format!(
            "out = \"{}\"\nregistry = \"registry.example:5000/team\"\n",
            out.display()
        ),
    )
    .unwrap();
    // `report` finds the layouts through the file's `out`.
    let md = ctx.ok(&["report", "nginx"]).stdout();
    assert!(md.contains("| Property | Hardened | Locked |"), "{md}");
    // A flag beats the file.
    let r = ctx.run(&["report", "nginx", "--out", "elsewhere"]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(
        r.stderr().contains("elsewhere/nginx-hardened"),
        "{}",
        r.describe()
    );

    // Strict parsing: an unknown key is an input error naming file and line.
    std::fs::write(
        ctx.path().join("armorred.toml"),
        "out = \"o\"\noutdir = \"x\"\n",
    )
    .unwrap();
    let r = ctx.run(&["list"]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(r.stderr().contains("armorred.toml:2:"), "{}", r.describe());
    assert!(
        r.stderr().contains("unknown field `outdir`"),
        "{}",
        r.describe()
    );

    // `registry` names the docker archive's tag; `key` is sign's default.
    std::fs::write(
        ctx.path().join("armorred.toml"),
        "registry = \"registry.example:5000/team\"\nkey = \"missing.key\"\n",
    )
    .unwrap();
    let r = ctx.run(&["sign", "out/nginx-hardened"]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(r.stderr().contains("missing.key"), "{}", r.describe());
    let r = ctx.ok(&[
        "build",
        "nginx",
        "--tier",
        "hardened",
        "--format",
        "docker-archive",
        "--json",
    ]);
    assert_eq!(
        r.json()["archives"][0]["repo_tag"],
        "registry.example:5000/team/nginx:1.26.3-hardened"
    );
    // The file's default `out` is the built-in one here: `out/`.
    assert!(ctx.path().join("out/nginx-hardened.docker.tar").is_file());
}

//! Shared helper for integration tests: runs the real `armorred` binary in a
//! temp directory and, on failure, prints the command, its output and the
//! directory listing. Also starts podman with the flags these machines need,
//! and builds the images several suites read (nginx, redis, hello) once per
//! test process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_armorred"))
}

pub struct TestContext {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub cmd: String,
    pub out: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!("{}\nstdout is not JSON: {e}\n{}", self.cmd, self.describe())
        })
    }
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.out.status.code(),
            self.stdout(),
            self.stderr()
        )
    }
}

impl TestContext {
    pub fn new() -> TestContext {
        let dir = tempfile::Builder::new()
            .prefix("armorred-test-")
            .tempdir()
            .expect("temp dir");
        TestContext { dir }
    }

    /// A context for an image built once and read by many tests. It lives in
    /// a static, which is never dropped, so it goes in [`run_dir`]: the next
    /// run removes it, where a temp dir in `/tmp` would stay forever.
    pub fn shared(name: &str) -> TestContext {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(run_dir())
            .expect("temp dir in the run directory");
        TestContext { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs armorred with the repo's recipes and nix dir, in the temp dir.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = Command::new(bin());
        private_cache(&mut c)
            .args(args)
            .current_dir(self.path())
            .env("ARMORRED_RECIPES", repo().join("recipes"))
            .env("ARMORRED_NIX_DIR", repo().join("nix"))
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            c.env(k, v);
        }
        let cmd = format!("armorred {}", args.join(" "));
        let out = c.output().expect("run armorred");
        Run { cmd, out }
    }

    /// Runs and asserts success, printing everything useful otherwise.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(
            r.out.status.success(),
            "{}\n--- dir ---\n{}",
            r.describe(),
            self.listing()
        );
        r
    }

    /// `cosign.key` / `cosign.pub` in the temp dir, passphrase [`COSIGN_TEST_PASSWORD`].
    pub fn generate_key_pair(&self) {
        self.ok_env(&["generate-key-pair"], &[COSIGN_TEST_PASSWORD]);
    }

    /// Runs with extra environment and asserts success.
    pub fn ok_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let r = self.run_env(args, env);
        assert!(
            r.out.status.success(),
            "{}\n--- dir ---\n{}",
            r.describe(),
            self.listing()
        );
        r
    }

    pub fn listing(&self) -> String {
        let out = Command::new("find")
            .arg(self.path())
            .args(["-maxdepth", "4"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines().take(200).collect::<Vec<_>>().join("\n")
    }
}

/// The passphrase of test key pairs, as the environment variable cosign reads.
pub const COSIGN_TEST_PASSWORD: (&str, &str) = ("COSIGN_PASSWORD", "pw");

/// This test process's own directory, `target/tmp/it/run-<pid>`: the
/// private cache and the images built once per run live here. libtest has no
/// hook at exit, so a run cannot remove its own directory; instead each run
/// removes the directories of runs whose process is gone.
pub fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("it");
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let pid = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("run-"))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !Path::new("/proc").join(pid.to_string()).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("run-{}", std::process::id()));
        // A directory left by an earlier process with the same pid.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the run directory");
        dir
    })
}

/// `XDG_CACHE_HOME` of every process the tests start: empty at the start of
/// each run, so no test reads or fills the developer's `~/.cache` and a run
/// does not depend on what an earlier one left there. Tests of the layer
/// cache itself pass `--cache-dir` with their own directory.
pub fn cache_home() -> PathBuf {
    run_dir().join("cache")
}

/// The source tarballs `scripts/fetch-sources.sh` downloaded: an input, not a
/// cache, so the tests read the user's (`ARMORRED_SOURCES`, else
/// `$XDG_CACHE_HOME/armorred/sources`, else `~/.cache/armorred/sources`)
/// even though [`cache_home`] is private.
pub fn sources_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(p) = std::env::var_os("ARMORRED_SOURCES").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/root/.cache"))
            .join("armorred/sources")
    })
    .clone()
}

/// Points `cmd` at the private cache ([`cache_home`]) and the user's source
/// tarballs ([`sources_dir`]). syft keeps its cache under `XDG_CACHE_HOME`
/// too; `SYFT_CACHE_DIR` names it explicitly.
pub fn private_cache(cmd: &mut Command) -> &mut Command {
    cmd.env("XDG_CACHE_HOME", cache_home())
        .env("ARMORRED_SOURCES", sources_dir())
        .env("SYFT_CACHE_DIR", cache_home().join("syft"))
}

/// Runs an external command and asserts it succeeded.
pub fn sh(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed ({:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind loopback")
}

/// Podman as it works on these machines: root, vfs storage, runc, explicit
/// ulimits. Each test gets its own storage root so runs don't interfere.
pub struct Podman {
    pub root: tempfile::TempDir,
    // Podman instances share lock state (/dev/shm, /run/libpod) even with
    // separate storage roots, so tests take turns.
    _turn: std::sync::MutexGuard<'static, ()>,
}

static PODMAN_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Podman {
    pub fn new() -> Podman {
        let turn = PODMAN_TURN.lock().unwrap_or_else(|p| p.into_inner());
        Podman {
            root: tempfile::Builder::new()
                .prefix("armorred-podman-")
                .tempdir()
                .unwrap(),
            _turn: turn,
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.root.path().join("root"))
            .arg("--runroot")
            .arg(self.root.path().join("run"))
            .arg("--tmpdir")
            .arg(self.root.path().join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--runtime",
                "/usr/sbin/runc",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().expect("podman");
        assert!(
            out.status.success(),
            "podman {} failed\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn try_run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("podman")
    }

    /// `podman run -d --name NAME --read-only --user 65534 -p 127.0.0.1:PORT:CPORT IMAGE`
    /// with the limits these machines need; returns the host port.
    pub fn serve(&self, name: &str, image: &str, container_port: u16) -> u16 {
        let port = free_port();
        let publish = format!("127.0.0.1:{port}:{container_port}");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--read-only",
            "--user",
            "65534",
            "-p",
            &publish,
        ];
        args.extend(PODMAN_LIMITS);
        args.push(image);
        self.run(&args);
        port
    }

    /// `podman load -i ARCHIVE` (a docker archive); returns the loaded name.
    pub fn load_archive(&self, archive: &Path) -> String {
        let loaded = self.run(&["load", "-i", archive.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&loaded.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("Loaded image: "))
            .unwrap_or_else(|| panic!("podman load said: {text}"))
            .trim()
            .to_string()
    }

    /// Loads an OCI layout and returns the image ID.
    pub fn load_layout(&self, layout: &Path, reference: &str) -> String {
        // podman names the image after the layout path, which must be
        // lowercase; temp dirs are not, so pull through a lowercase symlink.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let link =
            std::env::temp_dir().join(format!("armorred-oci-{}-{nanos}", std::process::id()));
        std::os::unix::fs::symlink(layout, &link).expect("symlink");
        let src = format!("oci:{}:{}", link.display(), reference);
        let out = self.try_run(&["pull", "-q", &src]);
        let _ = std::fs::remove_file(&link);
        assert!(
            out.status.success(),
            "podman pull {src} failed\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af", "-t", "0"]).output();
        let _ = self.cmd().args(["system", "reset", "-f"]).output();
    }
}

pub const PODMAN_LIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// GETs a loopback URL with a plain HTTP/1.0 request, retrying until the
/// server answers or `timeout` passes; returns the status and the body.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                let text = String::from_utf8_lossy(&buf);
                if let Some(code) = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()) {
                    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
                    return Some((code, body.to_string()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    None
}

/// [`http_get`]'s status only.
pub fn http_status(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    http_get(port, path, timeout).map(|(code, _)| code)
}

/// Both tiers of a recipe, built once per test run into [`run_dir`] and read
/// by every suite: tests must not change these layouts (copy one first).
pub struct TierBuild {
    pub ctx: TestContext,
    pub hardened: PathBuf,
    pub locked: PathBuf,
    /// What `build --tier all` printed.
    pub stdout: String,
}

fn build_both_tiers(image: &str) -> TierBuild {
    let ctx = TestContext::shared(image);
    let r = ctx.ok(&["build", image, "--tier", "all", "--out", "out"]);
    let out = ctx.path().join("out");
    TierBuild {
        hardened: out.join(format!("{image}-hardened")),
        locked: out.join(format!("{image}-locked")),
        stdout: r.stdout(),
        ctx,
    }
}

/// nginx from `recipes/`, both tiers.
pub fn nginx() -> &'static TierBuild {
    static BUILD: OnceLock<TierBuild> = OnceLock::new();
    BUILD.get_or_init(|| build_both_tiers("nginx"))
}

/// redis from `recipes/`, both tiers.
pub fn redis() -> &'static TierBuild {
    static BUILD: OnceLock<TierBuild> = OnceLock::new();
    BUILD.get_or_init(|| build_both_tiers("redis"))
}

/// The `hello` fixture's hardened tier, unsigned, built once per run; read
/// only (tests that sign or change it build their own).
pub fn hello() -> &'static (TestContext, PathBuf) {
    static BUILD: OnceLock<(TestContext, PathBuf)> = OnceLock::new();
    BUILD.get_or_init(|| {
        let ctx = TestContext::shared("hello");
        let layout = build_fixture(&ctx, "hello", "hardened", &[], &[]);
        (ctx, layout)
    })
}

/// The Python the tests run: the venv `scripts/setup-python.sh` makes, named
/// by `ARMORRED_PYTHON`, or the repo's `.venv` when that exists. Never a bare
/// `python3` from PATH: a system Python with hand-installed modules once let a
/// check pass that fails on a fresh machine.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ARMORRED_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = repo().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python venv for the tests; hint: export ARMORRED_PYTHON=$(bash scripts/setup-python.sh)"
    );
    venv
}

/// A scanner installed into the test venv by `scripts/setup-python.sh`
/// (`syft`, `trivy`), beside the venv's Python.
pub fn venv_tool(name: &str) -> PathBuf {
    let py = python();
    let tool = py.parent().expect("venv bin dir").join(name);
    assert!(
        tool.exists(),
        "{} is missing; hint: bash scripts/setup-python.sh",
        tool.display()
    );
    tool
}

/// `armorred build <image> --tier <tier>` of a recipe in `tests/fixtures/recipes`
/// into `out/`, plus `extra` flags and `env`, whatever its outcome (for the
/// builds that must fail).
pub fn run_fixture_build(
    ctx: &TestContext,
    image: &str,
    tier: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let recipes = repo().join("tests/fixtures/recipes");
    let mut args = vec![
        "build",
        image,
        "--tier",
        tier,
        "--recipes",
        recipes.to_str().unwrap(),
        "--out",
        "out",
    ];
    args.extend(extra);
    ctx.run_env(&args, env)
}

/// [`run_fixture_build`] that must succeed; returns the layout
/// `out/<image>-<tier>`.
pub fn build_fixture(
    ctx: &TestContext,
    image: &str,
    tier: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> PathBuf {
    let r = run_fixture_build(ctx, image, tier, extra, env);
    assert!(
        r.out.status.success(),
        "{}\n--- dir ---\n{}",
        r.describe(),
        ctx.listing()
    );
    ctx.path().join("out").join(format!("{image}-{tier}"))
}

/// A layout's `index.json`.
pub fn index_json(layout: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
        .expect("index.json is JSON")
}

/// The attachments index `index.json`'s one image entry names (its
/// `org.armorred.attachments` annotation), read as plain JSON.
pub fn attachments_index(layout: &Path) -> serde_json::Value {
    let index = index_json(layout);
    let digest = index["manifests"][0]["annotations"]["org.armorred.attachments"]
        .as_str()
        .unwrap_or_else(|| panic!("no attachments named in {index}"))
        .to_string();
    let path = layout.join("blobs/sha256").join(&digest[7..]);
    serde_json::from_slice(&std::fs::read(path).expect("the attachments index blob"))
        .expect("the attachments index is JSON")
}

/// The entries of the image's attachments index (signatures, SBOMs).
pub fn attachments(layout: &Path) -> Vec<serde_json::Value> {
    attachments_index(layout)["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Rewrites the image's attachments index through `edit` and points
/// `index.json` at the new one, as a hand edit of the layout would.
pub fn edit_attachments(layout: &Path, edit: impl FnOnce(&mut Vec<serde_json::Value>)) {
    use sha2::Digest as _;
    let mut list = attachments_index(layout);
    let mut entries = list["manifests"].as_array().cloned().unwrap_or_default();
    edit(&mut entries);
    list["manifests"] = entries.into();
    let bytes = serde_json::to_vec(&list).unwrap();
    let hex = hex::encode(sha2::Sha256::digest(&bytes));
    std::fs::write(layout.join("blobs/sha256").join(&hex), &bytes).unwrap();
    let mut index = index_json(layout);
    index["manifests"][0]["annotations"]["org.armorred.attachments"] =
        format!("sha256:{hex}").into();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// The provenance statement (the DSSE payload) attested in a layout.
pub fn attested_provenance(layout_dir: &Path) -> Vec<u8> {
    let layout = armorred::oci::layout::Layout::open(layout_dir).unwrap();
    let digest = layout.load_image(None).unwrap().descriptor.digest;
    let tag = armorred::sign::attestation_tag(digest.as_str());
    let att = layout
        .attachments()
        .unwrap()
        .into_iter()
        .find(|d| d.annotations.get(armorred::oci::ANNOTATION_REF_NAME) == Some(&tag))
        .unwrap_or_else(|| panic!("no {tag} in {}", layout_dir.display()));
    let manifest = layout.read_blob(&att, 1 << 20).unwrap();
    let layers = armorred::sign::parse_attestation_manifest(&manifest, |d| {
        Ok(layout
            .blobs()
            .read(&armorred::oci::Digest::parse(d).unwrap())
            .unwrap())
    })
    .unwrap();
    // Provenance is attested first.
    assert_eq!(layers[0].predicate_type, "https://slsa.dev/provenance/v1");
    let envelope: armorred::sign::dsse::Envelope =
        serde_json::from_slice(&layers[0].envelope).unwrap();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, envelope.payload).unwrap()
}

/// The real syft's catalog of `source` (`oci-dir:DIR`, or a layout path as
/// users type it), as syft JSON. Panics with syft's stderr when it fails.
pub fn syft_json(source: &str) -> serde_json::Value {
    let out = Command::new(venv_tool("syft"))
        .args([source, "-o", "syft-json", "-q"])
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .expect("run syft");
    assert!(
        out.status.success(),
        "syft {source} failed ({:?})\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("syft -o syft-json prints JSON")
}

/// Checks that syft's catalog lists as a Nix package every store path of
/// `store_paths` (`/nix/store/<hash>-<name>`), each with a version and a CPE,
/// and nothing else. syft splits name and version as Nix does (the version
/// starts at the first `-` followed by a digit) and skips a path without one,
/// which is why the imported glibc is named `glibc-<version>`.
pub fn assert_syft_lists_store_paths(
    catalog: &serde_json::Value,
    store_paths: &std::collections::BTreeSet<String>,
) {
    use std::collections::BTreeMap;
    let listed: BTreeMap<String, &serde_json::Value> = catalog["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "nix")
        .filter_map(|a| Some((a["metadata"]["outputHash"].as_str()?.to_string(), a)))
        .collect();
    assert!(!store_paths.is_empty(), "no store path in the image");
    let mut hashes = std::collections::BTreeSet::new();
    for p in store_paths {
        let (hash, _) = p
            .strip_prefix("/nix/store/")
            .and_then(|n| n.split_once('-'))
            .unwrap_or_else(|| panic!("not a store path: {p}"));
        hashes.insert(hash.to_string());
        // every store path, glibc included, is a package scanners can match:
        // a version and at least one CPE
        let a = listed
            .get(hash)
            .unwrap_or_else(|| panic!("syft does not list {p}; it lists {:?}", listed.keys()));
        assert!(
            a["version"].as_str().is_some_and(|v| !v.is_empty()),
            "syft lists {p} without a version: {a}"
        );
        assert!(
            a["cpes"].as_array().is_some_and(|c| !c.is_empty()),
            "syft lists {p} without a CPE: {a}"
        );
    }
    assert_eq!(
        listed
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        hashes,
        "syft's Nix packages vs the image's store paths {store_paths:?}"
    );
}

/// Each Nix package syft finds is a component of armorred's CycloneDX SBOM
/// with the same name and version.
pub fn assert_syft_matches_sbom(catalog: &serde_json::Value, cyclonedx: &serde_json::Value) {
    let components: std::collections::BTreeSet<(String, String)> = cyclonedx["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["name"].as_str()?.to_string(),
                c["version"].as_str()?.to_string(),
            ))
        })
        .collect();
    let nix: Vec<&serde_json::Value> = catalog["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "nix")
        .collect();
    assert!(!nix.is_empty(), "syft found no Nix package");
    for a in nix {
        let key = (
            a["name"].as_str().unwrap_or_default().to_string(),
            a["version"].as_str().unwrap_or_default().to_string(),
        );
        assert!(
            components.contains(&key),
            "syft's {key:?} is not an SBOM component; the SBOM has {components:?}"
        );
    }
}

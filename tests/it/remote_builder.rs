//! Nix's distributed path for real: `armorred build --builders … --max-jobs 0`
//! against a Nix remote builder that the test starts, an OpenSSH `sshd` on a
//! loopback port with its own host key and an authorized key made for the
//! test. No local build slot is allowed, so the derivation (made new by a
//! per-run nonce) can only be built by the builder. The test proves that it
//! was: Nix logs `building '…drv' on 'ssh://…'`, the builder's sshd log shows
//! the test's key accepted and the command log `nix-store --serve --write`,
//! the output exists in the builder's own store, and the image is valid
//! (`armorred fsck`, `umoci unpack`, and the unpacked binary runs). A second
//! test shares results through a signed binary cache instead.
//!
//! The builder has a store of its own: each ssh session gets a private mount
//! namespace with a directory of the test mounted on `/nix`. With the machine's
//! own store a "remote" on the same host deadlocks: the local Nix holds the
//! lock of the output path while the builder waits for the same lock.
//!
//! Needs `openssh-server` (`scripts/setup-system.sh`), root and `unshare`.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// An sshd on 127.0.0.1, acting as a Nix remote builder; killed on drop.
struct Builder {
    dir: tempfile::TempDir,
    port: u16,
    sshd: Child,
}

impl Builder {
    fn start() -> Builder {
        let dir = tempfile::Builder::new()
            .prefix("armorred-builder-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            sh(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "armorred-test",
                    "-f",
                    d.join(key).to_str().unwrap(),
                ],
            );
        }
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        fs::create_dir_all(d.join("nix")).unwrap();
        // Every session: log the command Nix asked for, then run it with the
        // builder's own store on /nix.
        let serve = d.join("serve.sh");
        fs::write(
            &serve,
            format!(
                "#!/bin/sh\n\
                 printf '%s\\n' \"$SSH_ORIGINAL_COMMAND\" >> {log}\n\
                 exec unshare --mount --propagation private sh -c \
                 'mount --bind {store} /nix && exec sh -c \"$SSH_ORIGINAL_COMMAND\"'\n",
                log = d.join("commands.log").display(),
                store = d.join("nix").display(),
            ),
        )
        .unwrap();
        sh("chmod", &["755", serve.to_str().unwrap()]);
        let port = free_port();
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host_key}\n\
                 AuthorizedKeysFile {keys}\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PidFile {pid}\n\
                 LogLevel VERBOSE\n\
                 ForceCommand {serve}\n",
                host_key = d.join("host_key").display(),
                keys = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
                serve = serve.display(),
            ),
        )
        .unwrap();
        // sshd's compiled-in privilege separation directory.
        fs::create_dir_all("/run/sshd").unwrap();
        let sshd_bin = Path::new("/usr/sbin/sshd");
        assert!(
            sshd_bin.exists(),
            "no /usr/sbin/sshd; hint: bash scripts/setup-system.sh installs openssh-server"
        );
        let sshd = Command::new(sshd_bin)
            .args(["-D", "-f"])
            .arg(&config)
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let b = Builder { dir, port, sshd };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {port}:\n{}",
                b.log("sshd.log")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Host key checking stays on: the known host is this sshd's key.
        let host_pub = fs::read_to_string(b.path("host_key.pub")).unwrap();
        let key: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        fs::write(
            b.path("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", key.join(" ")),
        )
        .unwrap();
        b
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// A Nix machine spec: URI, system, SSH key, max jobs, speed factor.
    fn machines(&self) -> String {
        format!(
            "ssh://root@127.0.0.1 x86_64-linux {} 2 1",
            self.path("client_key").display()
        )
    }

    /// `NIX_SSHOPTS`: what Nix adds to every ssh command line it runs.
    fn ssh_opts(&self) -> String {
        format!(
            "-p {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
            self.port,
            self.path("known_hosts").display()
        )
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

/// The `hello` fixture with a per-run nonce in its source, so its derivation
/// is not in the store and must be built.
fn fresh_hello(ctx: &TestContext) -> (PathBuf, String) {
    let src = repo().join("tests/fixtures/recipes");
    let dir = ctx.path().join("recipes");
    fs::create_dir_all(&dir).unwrap();
    for f in ["hello.toml", "hello.nix"] {
        fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let c = fs::read_to_string(src.join("hello.c")).unwrap();
    fs::write(
        dir.join("hello.c"),
        format!("{c}/* remote builder test {nonce} */\n"),
    )
    .unwrap();
    (dir, nonce)
}

#[test]
fn max_jobs_zero_builds_every_derivation_on_the_remote_builder() {
    let builder = Builder::start();
    let ctx = TestContext::new();
    let (recipes, _nonce) = fresh_hello(&ctx);
    let machines = builder.machines();
    let ssh_opts = builder.ssh_opts();
    let args = [
        "build",
        "hello",
        "--tier",
        "hardened",
        "--recipes",
        recipes.to_str().unwrap(),
        "--out",
        "out",
        "--builders",
        &machines,
        "--max-jobs",
        "0",
    ];
    let r = ctx.run_env(
        &args,
        &[
            ("NIX_SSHOPTS", ssh_opts.as_str()),
            ("RUST_LOG", "info,armorred::nix=debug"),
        ],
    );
    let diagnose = || {
        format!(
            "{}\n--- sshd.log ---\n{}\n--- commands.log ---\n{}",
            r.describe(),
            builder.log("sshd.log"),
            builder.log("commands.log")
        )
    };
    assert!(r.out.status.success(), "{}", diagnose());

    // Nix built the (new) hello derivation on the builder, and nothing
    // locally: with --max-jobs 0 it would have refused any local build.
    let err = r.stderr();
    let remote: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("building '") && l.contains(".drv' on 'ssh://root@127.0.0.1'"))
        .collect();
    assert!(
        remote.iter().any(|l| l.contains("-hello-1.0.drv'")),
        "no remote build of hello in the Nix log\n{}",
        diagnose()
    );
    let local = err
        .lines()
        .filter(|l| l.contains("building '") && l.contains(".drv'") && !l.contains("' on '"))
        .count();
    assert_eq!(local, 0, "a derivation was built locally\n{}", diagnose());

    // The builder's sshd accepted the test's key, and Nix ran its serve
    // protocol with write access on it.
    let fingerprint = String::from_utf8(
        sh(
            "ssh-keygen",
            &["-l", "-f", builder.path("client_key.pub").to_str().unwrap()],
        )
        .stdout,
    )
    .unwrap();
    let fingerprint = fingerprint.split_whitespace().nth(1).unwrap().to_string();
    let sshd_log = builder.log("sshd.log");
    assert!(
        sshd_log.lines().any(
            |l| l.starts_with("Accepted publickey for root from 127.0.0.1")
                && l.contains(&fingerprint)
        ),
        "{}",
        diagnose()
    );
    assert!(
        builder
            .log("commands.log")
            .lines()
            .any(|l| l.trim() == "nix-store --serve --write"),
        "{}",
        diagnose()
    );

    // The package in the image is the one the builder produced in its own store.
    let layout = ctx.path().join("out/hello-hardened");
    let v = sh(
        "skopeo",
        &["inspect", "--config", &format!("oci:{}", layout.display())],
    );
    let config: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    let package = config["config"]["Labels"]["org.armorred.nix.package"]
        .as_str()
        .unwrap()
        .to_string();
    let name = package.strip_prefix("/nix/store/").unwrap();
    assert!(
        builder
            .path("nix/store")
            .join(name)
            .join("bin/hello")
            .exists(),
        "{package} is not in the builder's store\n{}",
        diagnose()
    );

    // A valid image: armorred's own check, umoci's unpack, and the binary runs.
    ctx.ok(&["fsck", layout.to_str().unwrap()]);
    let reference = index_json(&layout)["manifests"][0]["annotations"]
        ["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap()
        .to_string();
    let bundle = ctx.path().join("bundle");
    sh(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{reference}", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let rootfs = bundle.join("rootfs");
    let out = sh(
        "chroot",
        &[rootfs.to_str().unwrap(), "/usr/bin/hello", "remote"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "remote 42\n");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `armorred ARGS` run as on a second machine: in a private mount
/// namespace whose `/nix` is `store` (empty at first), so nothing the first
/// build left in this machine's store is there.
fn run_on_fresh_store(ctx: &TestContext, store: &Path, args: &[&str]) -> Run {
    fs::create_dir_all(store).unwrap();
    let mut script = format!(
        "mount --bind {} /nix && exec {}",
        store.display(),
        bin().display()
    );
    for a in args {
        script.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
    }
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .current_dir(ctx.path())
        .env("XDG_CACHE_HOME", cache_home())
        .env("RUST_LOG", "info,armorred::nix=debug")
        .env("NO_COLOR", "1")
        .output()
        .expect("run unshare");
    Run {
        cmd: format!("(fresh /nix) armorred {}", args.join(" ")),
        out,
    }
}

/// The other half of a build farm: a signed binary cache. One machine builds
/// and uploads (`nix copy --to file://…`, then `nix store sign` in the
/// cache); a machine with an empty store then builds the same image with
/// `--substituters` and `--max-jobs 0`, so it can only fetch, and gets the
/// same manifest digest.
#[test]
fn a_signed_binary_cache_serves_a_machine_that_builds_nothing() {
    let ctx = TestContext::new();
    let (recipes, _nonce) = fresh_hello(&ctx);
    let dir = recipes.to_str().unwrap();
    let nix_dir = repo().join("nix").display().to_string();
    let build = |out: &str| -> Vec<String> {
        [
            "build",
            "hello",
            "--tier",
            "hardened",
            "--recipes",
            dir,
            "--nix-dir",
            &nix_dir,
            "--out",
            out,
        ]
        .map(String::from)
        .to_vec()
    };
    let first = ctx.ok(&strs(&build("out1")));
    let digest = first
        .stdout()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let layout = ctx.path().join("out1/hello-hardened");
    let v = sh(
        "skopeo",
        &["inspect", "--config", &format!("oci:{}", layout.display())],
    );
    let config: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    let package = config["config"]["Labels"]["org.armorred.nix.package"]
        .as_str()
        .unwrap()
        .to_string();

    // Publish the package's closure to a signed cache.
    let (sk, pk) = (ctx.path().join("cache.sk"), ctx.path().join("cache.pk"));
    sh(
        "nix-store",
        &[
            "--generate-binary-cache-key",
            "armorred-test-cache-1",
            sk.to_str().unwrap(),
            pk.to_str().unwrap(),
        ],
    );
    let nix = |args: &[&str]| {
        let mut all = vec!["--extra-experimental-features", "nix-command"];
        all.extend_from_slice(args);
        sh("nix", &all)
    };
    let cache = format!("file://{}", ctx.path().join("cache").display());
    nix(&["copy", "--to", &cache, &package]);
    // Signed in the cache, so this machine's store is left as it was.
    let key = sk.to_str().unwrap();
    nix(&[
        "store",
        "sign",
        "--store",
        &cache,
        "-r",
        "--key-file",
        key,
        &package,
    ]);

    let public = fs::read_to_string(&pk).unwrap();
    let trusted = format!("trusted-public-keys={}", public.trim());
    let mut args = build("out2");
    args.extend(
        [
            "--substituters",
            &cache,
            "--nix-option",
            &trusted,
            "--max-jobs",
            "0",
        ]
        .map(String::from),
    );
    let store = ctx.path().join("second-machine-nix");
    let r = run_on_fresh_store(&ctx, &store, &strs(&args));
    assert!(r.out.status.success(), "{}", r.describe());
    let err = r.stderr();
    let name = package.strip_prefix("/nix/store/").unwrap();
    assert!(
        err.contains(&format!("copying path '{package}' from '{cache}'")),
        "{}",
        r.describe()
    );
    assert!(!err.contains("building '"), "{}", r.describe());
    assert!(store.join("store").join(name).join("bin/hello").exists());
    assert_eq!(
        r.stdout().split_whitespace().next(),
        Some(digest.as_str()),
        "the second machine's image differs\n{}",
        r.describe()
    );
}

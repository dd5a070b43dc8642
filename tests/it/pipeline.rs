//! nginx built in both tiers from the offline set through real Nix,
//! checked with real clients (umoci, skopeo, podman).

use std::time::Duration;

use crate::common::*;

#[test]
fn build_prints_digest_and_layout_per_tier() {
    let b = nginx();
    let lines: Vec<&str> = b.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", b.stdout);
    for (line, dir) in lines.iter().zip(["nginx-hardened", "nginx-locked"]) {
        let (digest, path) = line.split_once(' ').unwrap();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{line}"
        );
        assert!(path.ends_with(dir), "{line}");
    }
    assert_ne!(
        lines[0].split(' ').next(),
        lines[1].split(' ').next(),
        "tiers differ"
    );
}

#[test]
fn layouts_pass_fsck_and_skopeo_and_umoci() {
    let b = nginx();
    for (layout, tier) in [(&b.hardened, "hardened"), (&b.locked, "locked")] {
        let f = b
            .ctx
            .ok(&["fsck", layout.to_str().unwrap(), "--json"])
            .json();
        assert_eq!(f["problems"].as_array().unwrap().len(), 0, "{f}");
        assert!(f["blobs_checked"].as_u64().unwrap() >= 7);

        let reference = format!("1.26.3-{tier}");
        let out = sh(
            "skopeo",
            &["inspect", &format!("oci:{}:{reference}", layout.display())],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Labels"]["org.armorred.tier"], tier);
        assert_eq!(v["Os"], "linux");
        assert_eq!(v["Architecture"], "amd64");

        let bundle = b.ctx.path().join(format!("bundle-{tier}"));
        sh(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:{reference}", layout.display()),
                bundle.to_str().unwrap(),
            ],
        );
        let rootfs = bundle.join("rootfs");
        assert!(rootfs.join("etc/passwd").is_file());
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        assert!(passwd.contains("nobody:x:65534:65534"));
        let nginx = std::fs::read_link(rootfs.join("usr/sbin/nginx")).unwrap();
        assert!(
            nginx.starts_with("/nix/store/") && nginx.ends_with("bin/nginx"),
            "{nginx:?}"
        );
        assert!(rootfs.join(nginx.strip_prefix("/").unwrap()).is_file());
        // Nothing but what the closure and the recipe put there.
        let mut top: Vec<String> = std::fs::read_dir(&rootfs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        let expected: &[&str] = if tier == "locked" {
            &["bin", "etc", "nix", "tmp", "usr", "var"]
        } else {
            // the entrypoint compatibility program and its step markers,
            // where the official image has its entrypoint script and steps
            &[
                "docker-entrypoint.d",
                "docker-entrypoint.sh",
                "etc",
                "nix",
                "tmp",
                "usr",
                "var",
            ]
        };
        assert_eq!(top, expected);
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["process"]["user"]["uid"], 65534);

        // syft (and so grype) reads the layout as build left it, SBOMs
        // attached, and finds every store path of the image (glibc and
        // nginx among them) with a version and a CPE, each one a component
        // of armorred's own SBOM with the same name and version.
        let store: std::collections::BTreeSet<String> = std::fs::read_dir(rootfs.join("nix/store"))
            .unwrap()
            .map(|e| format!("/nix/store/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        assert!(store.contains(nginx.parent().unwrap().parent().unwrap().to_str().unwrap()));
        assert!(store.iter().any(|p| p.contains("-glibc-2.")), "{store:?}");
        let catalog = syft_json(layout.to_str().unwrap());
        assert_syft_lists_store_paths(&catalog, &store);
        let cdx = b
            .ctx
            .ok(&["sbom", layout.to_str().unwrap(), "--format", "cyclonedx"])
            .json();
        assert_syft_matches_sbom(&catalog, &cdx);
    }
}

#[test]
fn labels_user_and_runtime_config() {
    let b = nginx();
    for (layout, tier) in [(&b.hardened, "hardened"), (&b.locked, "locked")] {
        let v = b
            .ctx
            .ok(&["inspect", layout.to_str().unwrap(), "--json"])
            .json();
        let l = &v["labels"];
        assert_eq!(l["org.armorred.base"], "scratch");
        assert_eq!(l["org.armorred.tier"], tier);
        assert_eq!(l["org.opencontainers.image.title"], "nginx");
        assert_eq!(l["org.opencontainers.image.version"], "1.26.3");
        assert_eq!(
            l["org.opencontainers.image.description"],
            format!("Hardened nginx 1.26.3 ({tier} tier)")
        );
        assert_eq!(
            l["org.opencontainers.image.created"],
            "1970-01-01T00:00:01Z"
        );
        assert!(l["org.opencontainers.image.source"].is_string());
        // What was asked of the compiler…
        let flags = l["org.armorred.hardening.flags"].as_str().unwrap();
        assert_eq!(flags.contains("cfi"), tier == "locked", "{flags}");
        assert_eq!(flags.contains("cet"), tier == "hardened", "{flags}");
        // …and what the binaries prove (checked by the build's own gate).
        let verified: Vec<&str> = l["org.armorred.hardening"]
            .as_str()
            .unwrap()
            .split(',')
            .collect();
        for p in [
            "relro",
            "bindnow",
            "stackprotector",
            "nx",
            "pie",
            "fortify3",
            "safestack",
        ] {
            assert!(
                verified.contains(&p),
                "{tier}: {p} not verified: {verified:?}"
            );
        }
        assert_eq!(verified.contains(&"cfi"), tier == "locked", "{verified:?}");
        // The claim's published excuses: exactly the hardened modules the
        // recipe names, each really lacking the property it is excused from.
        let excused = l
            .get("org.armorred.hardening.exceptions")
            .and_then(|e| e.as_str())
            .unwrap_or("");
        if tier == "locked" {
            assert_eq!(excused, "", "locked excuses nothing");
        } else {
            let a = b
                .ctx
                .ok(&["analyze", layout.to_str().unwrap(), "--json"])
                .json();
            let package = l["org.armorred.nix.package"].as_str().unwrap();
            let entries: Vec<&str> = excused.split(',').collect();
            assert_eq!(entries.len(), 5, "{excused}");
            for e in entries {
                let (path, property) = e.rsplit_once(':').unwrap();
                assert_eq!(property, "fortify", "{e}");
                let full = format!("{package}/{path}");
                let bin = a["binaries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["path"] == full.as_str())
                    .unwrap_or_else(|| panic!("{full} is not in the image"));
                assert_eq!(bin["fortify"]["fortified_count"], 0, "{full}");
            }
        }
        // the stream output directory only where the entrypoint renders
        // stream templates
        assert_eq!(
            l["org.armorred.writable"],
            if tier == "hardened" {
                "/tmp,/var/cache/nginx,/etc/nginx/conf.d,/etc/nginx/stream-conf.d"
            } else {
                "/tmp,/var/cache/nginx,/etc/nginx/conf.d"
            }
        );
        assert_eq!(v["user"], "65534");
        // hardened: the official image's entrypoint and cmd, through the
        // entrypoint compatibility program; locked leaves it out.
        if tier == "hardened" {
            assert_eq!(
                v["entrypoint"],
                serde_json::json!(["/docker-entrypoint.sh"])
            );
            assert_eq!(v["cmd"], serde_json::json!(["nginx", "-g", "daemon off;"]));
            assert_eq!(l["org.armorred.entrypoint-compat"], "nginx");
            assert!(l.get("org.armorred.tradeoffs").is_none());
        } else {
            // leaving the program out is a declared trade-off, labelled
            assert_eq!(l["org.armorred.tradeoffs"], "no-entrypoint-script");
            assert_eq!(v["entrypoint"], serde_json::json!(["/usr/sbin/nginx"]));
            assert_eq!(
                v["cmd"],
                serde_json::json!(["-g", "daemon off; worker_processes auto;"])
            );
            assert!(l.get("org.armorred.entrypoint-compat").is_none());
        }
        assert_eq!(v["exposed_ports"], serde_json::json!(["8080/tcp"]));
        assert_eq!(v["stop_signal"], "SIGQUIT");
        assert_eq!(v["created"], "1970-01-01T00:00:01Z");
    }
}

#[test]
fn second_build_gives_the_same_digest() {
    let b = nginx();
    let ctx = TestContext::new();
    let again = ctx
        .ok(&["build", "nginx", "--tier", "all", "--out", "out"])
        .stdout();
    let digests = |s: &str| {
        s.lines()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&again), digests(&b.stdout));
    // A different SOURCE_DATE_EPOCH is a different input, so a different digest.
    let r = ctx.run_env(
        &["build", "nginx", "--tier", "hardened", "--out", "out2"],
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    assert!(r.out.status.success(), "{}", r.describe());
    assert_ne!(digests(&r.stdout())[0], digests(&b.stdout)[0]);
}

fn serve_and_check(tier: &str, layout: &std::path::Path) {
    let podman = Podman::new();
    let id = podman.load_layout(layout, &format!("1.26.3-{tier}"));
    assert!(!id.is_empty());
    let port = podman.serve("web", &id, 8080);
    let status = http_status(port, "/", Duration::from_secs(30));
    let missing = http_status(port, "/no-such-page", Duration::from_secs(5));
    let logs = podman.try_run(&["logs", "web"]);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    assert_eq!(status, Some(200), "{tier}: GET / failed\n{logs}");
    assert_eq!(missing, Some(404), "{tier}: GET /no-such-page\n{logs}");
    let top = podman.run(&["top", "web", "user"]);
    let users = String::from_utf8_lossy(&top.stdout);
    assert!(
        !users.lines().skip(1).any(|l| l.trim() == "root"),
        "nginx runs as root?\n{users}"
    );

    // The shell is there exactly where the recipe asks for it.
    // No --rm: under load podman sometimes loses the exit code of a removed container.
    let mut sh_args = vec![
        "run",
        "--name",
        "shell-probe",
        "--read-only",
        "--entrypoint",
        "/bin/sh",
    ];
    sh_args.extend(PODMAN_LIMITS);
    sh_args.extend([id.as_str(), "-c", "echo shell-ok; id -u"]);
    let out = podman.try_run(&sh_args);
    let text = String::from_utf8_lossy(&out.stdout);
    if tier == "hardened" {
        assert!(
            !out.status.success(),
            "hardened must have no /bin/sh: {text}"
        );
    } else {
        assert!(
            out.status.success() && text.contains("shell-ok") && text.contains("65534"),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn hardened_nginx_serves_in_podman_read_only_as_nobody() {
    serve_and_check("hardened", &nginx().hardened);
}

#[test]
fn locked_nginx_serves_in_podman_read_only_as_nobody() {
    serve_and_check("locked", &nginx().locked);
}

#[test]
fn plan_json_shows_what_differs_between_tiers() {
    let ctx = TestContext::new();
    let v = ctx
        .ok(&["plan", "nginx", "--tier", "locked", "--json", "--eval"])
        .json();
    let p = &v[0];
    assert_eq!(p["plan"]["tier"], "locked");
    assert_eq!(p["plan"]["hardening"]["cfi"], true);
    assert!(p["plan"]["drop"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d == "mail"));
    let cflags = p["package_meta"]["cflags"].as_str().unwrap();
    assert!(
        cflags.contains("-fsanitize=cfi") && !cflags.contains("-fcf-protection"),
        "{cflags}"
    );
    assert!(cflags.contains("-D_FORTIFY_SOURCE=3"), "{cflags}");
    let h = ctx
        .ok(&["plan", "nginx", "--tier", "hardened", "--json", "--eval"])
        .json();
    let hflags = h[0]["package_meta"]["cflags"].as_str().unwrap();
    assert!(
        hflags.contains("-fcf-protection=full") && !hflags.contains("-fsanitize=cfi"),
        "{hflags}"
    );
    assert_eq!(h[0]["plan"]["drop"], serde_json::json!([]));
    assert!(p["nix_command"].as_str().unwrap().starts_with("nix-build "));
}

#[test]
fn list_shows_recipes_and_tiers() {
    let ctx = TestContext::new();
    let v = ctx.ok(&["list", "--json"]).json();
    let nginx = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["image"] == "nginx")
        .expect("nginx recipe");
    assert_eq!(nginx["tiers"].as_array().unwrap().len(), 2);
    assert_eq!(nginx["platforms"], serde_json::json!(["x86_64-linux"]));
    // A recipe listing two platforms shows both, in the text output too.
    let fixtures = repo().join("tests/fixtures/recipes");
    let fixtures = fixtures.to_str().unwrap();
    let v = ctx.ok(&["list", "--recipes", fixtures, "--json"]).json();
    let multi = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["image"] == "multiarch")
        .expect("multiarch fixture");
    assert_eq!(
        multi["platforms"],
        serde_json::json!(["x86_64-linux", "aarch64-linux"])
    );
    let text = ctx.ok(&["list", "--recipes", fixtures]).stdout();
    assert!(text.contains("[x86_64-linux, aarch64-linux]"), "{text}");
}

#[test]
fn redis_serves_in_both_tiers_and_locked_drops_tls() {
    let b = redis();
    assert_eq!(b.stdout.lines().count(), 2, "{}", b.stdout);
    for (tier, layout) in [("hardened", &b.hardened), ("locked", &b.locked)] {
        let podman = Podman::new();
        let id = podman.load_layout(layout, &format!("8.0.2-{tier}"));
        let port = podman.serve("kv", &id, 6379);
        let reply = redis_ping(port);
        let logs = podman.try_run(&["logs", "kv"]);
        assert_eq!(
            reply.as_deref(),
            Some("+PONG"),
            "{tier}: {}",
            String::from_utf8_lossy(&logs.stdout)
        );
        // TLS is compiled out of locked: Redis 8 has no TLS connection type
        // to start the TLS port with (Redis 7 refused the directive itself).
        let mut args = vec!["run", "--name", "tlsprobe", "--read-only"];
        args.extend(PODMAN_LIMITS);
        args.extend([id.as_str(), "--tls-port", "6380", "--port", "0"]);
        let probe = podman.try_run(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&probe.stdout),
            String::from_utf8_lossy(&probe.stderr)
        );
        assert_eq!(
            text.contains("Failed finding TLS support"),
            tier == "locked",
            "{tier}: {text}"
        );
        assert!(
            !probe.status.success(),
            "{tier}: started without certificates: {text}"
        );
    }
}

fn redis_ping(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            if s.write_all(b"PING\r\n").is_ok() {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf) {
                    if n > 0 {
                        return Some(String::from_utf8_lossy(&buf[..n]).trim().to_string());
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    None
}

//! The official images' entrypoint behaviour in the hardened tier, done by
//! the entrypoint compatibility program (nix/offline/entrypoint) instead of
//! a shell script, checked in real containers: templates rendered under a
//! read-only root into a tmpfs, stream templates served, the IPv6 listen
//! default, a user's own /docker-entrypoint.d walked as upstream walks it,
//! worker auto-tuning from the CPU limit, the steps skipped for a command
//! other than nginx, redis' argument handling;
//! and the image still has no shell while the program shows every property
//! the tier promises. The program's own unit tests (envsubst, the CPU count
//! from fake cgroup trees) run in its Nix build, which fails on any failure.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// The hardened tier of `image`, from the builds the suites share.
fn hardened(image: &str) -> &'static TierBuild {
    if image == "nginx" {
        nginx()
    } else {
        redis()
    }
}

/// Loads the hardened `image` into podman under the reference the build
/// named it with (`<version>-hardened`, the version being what Nix built).
fn load(podman: &Podman, image: &str) -> String {
    let b = hardened(image);
    let index: Value =
        serde_json::from_slice(&std::fs::read(b.hardened.join("index.json")).unwrap()).unwrap();
    let reference = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("the image is named in index.json")
        .to_string();
    podman.load_layout(&b.hardened, &reference)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn logs(podman: &Podman, name: &str) -> String {
    text(&podman.try_run(&["logs", name]))
}

/// A template directory as a Kubernetes user mounts one: a server template
/// using `${VAR}` and `$VAR`, nginx's own `$variables` and an undefined
/// `${VAR}` (all kept), and a template in a subdirectory.
fn templates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(
        d.join("default.conf.template"),
        "server {\n\
         \x20   listen ${NGINX_PORT};\n\
         \x20   server_name ${NGINX_HOST};\n\
         \x20   # left as written: ${ARMORRED_UNDEFINED_VAR} and $ARMORRED_UNDEFINED_VAR\n\
         \x20   # resolvers: [${NGINX_LOCAL_RESOLVERS}]\n\
         \x20   include /etc/nginx/conf.d/sub/*.conf;\n\
         \x20   location / {\n\
         \x20       add_header X-Served-By $NGINX_HOST;\n\
         \x20       return 200 \"host=${NGINX_HOST} port=$server_port\\n\";\n\
         \x20   }\n\
         }\n",
    )
    .unwrap();
    std::fs::write(
        d.join("sub/extra.conf.template"),
        "location = /sub { return 200 \"sub of ${NGINX_HOST}\\n\"; }\n",
    )
    .unwrap();
    sh("chmod", &["-R", "a+rX", d.to_str().unwrap()]);
    dir
}

const HOST: &str = "templated.armorred.test";
const PORT: &str = "8181";

/// `podman run` arguments for nginx with the templates mounted read-only,
/// a tmpfs on the output directory and a read-only root.
fn template_args<'a>(name: &'a str, mount: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--name",
        name,
        "--read-only",
        "--user",
        "65534",
        "-v",
        mount,
        // An empty tmpfs, as Docker's --tmpfs and a Kubernetes emptyDir
        // give; podman copies the image's directory up by default, and the
        // shipped default.conf link it copies is root's in a sticky
        // directory, which UID 65534 cannot replace.
        "--tmpfs",
        "/etc/nginx/conf.d:notmpcopyup",
        "-e",
        "NGINX_HOST=templated.armorred.test",
        "-e",
        "NGINX_PORT=8181",
    ];
    args.extend(PODMAN_LIMITS);
    args.extend_from_slice(extra);
    args
}

#[test]
fn templates_are_rendered_under_a_read_only_root_and_served() {
    let podman = Podman::new();
    let id = load(&podman, "nginx");
    let tpl = templates();
    let mount = format!("{}:/etc/nginx/templates:ro", tpl.path().display());
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:{PORT}");
    let mut args = template_args(
        "tpl",
        &mount,
        &[
            "-d",
            "-p",
            &publish,
            "-e",
            "NGINX_ENTRYPOINT_LOCAL_RESOLVERS=1",
        ],
    );
    args.push(&id);
    podman.run(&args);

    // The server answering on NGINX_PORT with NGINX_HOST in its body and
    // header is the rendered template, not the shipped default server.
    let got = http_get(port, "/", Duration::from_secs(30));
    let log = logs(&podman, "tpl");
    let (code, body) = got.unwrap_or_else(|| panic!("no answer on {PORT}\n{log}"));
    assert_eq!(code, 200, "{body}\n{log}");
    assert_eq!(body, format!("host={HOST} port={PORT}\n"), "{log}");
    let (code, body) = http_get(port, "/sub", Duration::from_secs(10)).unwrap();
    assert_eq!(
        (code, body.as_str()),
        (200, "sub of templated.armorred.test\n")
    );
    assert!(
        log.contains("Running envsubst on /etc/nginx/templates/default.conf.template to /etc/nginx/conf.d/default.conf")
            && log.contains("to /etc/nginx/conf.d/sub/extra.conf")
            && log.contains("Configuration complete; ready for start up"),
        "{log}"
    );

    // The configuration nginx runs, read back: defined variables in both
    // forms substituted, an undefined one and nginx's own left as written.
    let dump = text(&podman.run(&["exec", "tpl", "nginx", "-T"]));
    for want in [
        "listen 8181;",
        "server_name templated.armorred.test;",
        "add_header X-Served-By templated.armorred.test;",
        "# left as written: ${ARMORRED_UNDEFINED_VAR} and $ARMORRED_UNDEFINED_VAR",
        "port=$server_port",
    ] {
        assert!(dump.contains(want), "`{want}` not in nginx -T:\n{dump}");
    }
    assert!(!dump.contains("${NGINX_"), "{dump}");
    // NGINX_ENTRYPOINT_LOCAL_RESOLVERS: the container's nameservers, each
    // followed by a space, as the official step lists them.
    let line = dump
        .lines()
        .find(|l| l.contains("# resolvers: ["))
        .unwrap_or_else(|| panic!("{dump}"))
        .to_string();
    let list = line.split_once('[').unwrap().1.trim_end_matches(']');
    assert!(
        !list.is_empty()
            && list.ends_with(' ')
            && list
                .split_whitespace()
                .all(|a| a.parse::<std::net::IpAddr>().is_ok()),
        "{line}"
    );
}

#[test]
fn a_command_other_than_nginx_skips_the_steps_and_quiet_logs_silence_them() {
    let podman = Podman::new();
    let id = load(&podman, "nginx");
    let tpl = templates();
    let mount = format!("{}:/etc/nginx/templates:ro", tpl.path().display());

    // `nginx -T`: the steps run, so the rendered template is in the dump.
    let mut args = template_args("steps", &mount, &[]);
    args.extend([id.as_str(), "nginx", "-T"]);
    let out = podman.try_run(&args);
    let dump = text(&out);
    assert!(out.status.success(), "{dump}");
    assert!(dump.contains("listen 8181;"), "{dump}");
    assert!(
        dump.contains("/docker-entrypoint.sh: Configuration complete"),
        "{dump}"
    );

    // The same nginx by its path is not the command `nginx`: as in the
    // official image, nothing is rendered and nothing is logged.
    let mut args = template_args("skipped", &mount, &[]);
    args.extend([id.as_str(), "/usr/sbin/nginx", "-T"]);
    let out = podman.try_run(&args);
    let dump = text(&out);
    assert!(out.status.success(), "{dump}");
    assert!(!dump.contains("listen 8181;"), "{dump}");
    assert!(!dump.contains("/docker-entrypoint.sh:"), "{dump}");

    // NGINX_ENTRYPOINT_QUIET_LOGS: the steps run without a word.
    let mut args = template_args("quiet", &mount, &["-e", "NGINX_ENTRYPOINT_QUIET_LOGS=1"]);
    args.extend([id.as_str(), "nginx", "-T"]);
    let out = podman.try_run(&args);
    let dump = text(&out);
    assert!(out.status.success(), "{dump}");
    assert!(dump.contains("listen 8181;"), "{dump}");
    assert!(!dump.contains("/docker-entrypoint.sh:"), "{dump}");
}

/// The container's main process, seen from the host: its network
/// namespace's files are under `/proc/<pid>/net`.
fn container_pid(podman: &Podman, name: &str) -> String {
    let out = podman.run(&["inspect", "--format", "{{.State.Pid}}", name]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_ipv6_step_adds_the_listen_and_nginx_listens_on_it() {
    let podman = Podman::new();
    let id = load(&podman, "nginx");
    // `:U` chowns the tmpfs (and the copied-up default.conf link) to the
    // container's user, who may then replace the link in the sticky
    // directory; `notmpcopyup` would leave no default.conf to edit.
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "v6",
        "--read-only",
        "--user",
        "65534",
        "--tmpfs",
        "/etc/nginx/conf.d:U",
    ];
    args.extend(PODMAN_LIMITS);
    args.push(&id);
    podman.run(&args);
    let net = std::path::PathBuf::from(format!("/proc/{}/net", container_pid(&podman, "v6")));
    let log = logs(&podman, "v6");
    if !net.join("if_inet6").exists() {
        // no IPv6 in this container's network: the step's own answer
        assert!(
            log.contains("10-listen-on-ipv6-by-default.sh: info: ipv6 not available"),
            "{log}"
        );
        return;
    }
    assert!(
        log.contains("/docker-entrypoint.sh: Launching /docker-entrypoint.d/10-listen-on-ipv6-by-default.sh")
            && log.contains("10-listen-on-ipv6-by-default.sh: info: Enabled listen on IPv6 in /etc/nginx/conf.d/default.conf"),
        "{log}"
    );
    let dump = text(&podman.run(&["exec", "v6", "nginx", "-T"]));
    assert!(
        dump.contains("listen       8080;\n    listen  [::]:8080;"),
        "{dump}"
    );
    // A listening socket on [::]:8080 (0x1F90, state 0A) in the
    // container's namespace.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tcp6 = std::fs::read_to_string(net.join("tcp6")).unwrap_or_default();
        let listening = tcp6.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == "00000000000000000000000000000000:1F90" && f[3] == "0A"
        });
        if listening {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no [::]:8080 listener\n{tcp6}\n{log}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A minimal nginx.conf of a user's own: the default server's includes,
/// and a stream block when asked.
fn own_nginx_conf(dir: &std::path::Path, stream_block: bool) -> std::path::PathBuf {
    let path = dir.join("nginx.conf");
    let stream = if stream_block {
        "stream {\n    include /etc/nginx/stream-conf.d/*.conf;\n}\n"
    } else {
        ""
    };
    std::fs::write(
        &path,
        format!(
            "pid /tmp/nginx.pid;\nerror_log /dev/stderr notice;\nevents {{\n    worker_connections 64;\n}}\n\
             http {{\n    include /etc/nginx/conf.d/*.conf;\n}}\n{stream}"
        ),
    )
    .unwrap();
    // writable by the container's user, for the step that appends to it
    sh(
        "chmod",
        &["a+rwX", dir.to_str().unwrap(), path.to_str().unwrap()],
    );
    path
}

/// [`templates`] plus stream templates: a stream server answering with
/// defined variables, and one in a subdirectory.
fn stream_templates() -> tempfile::TempDir {
    let dir = templates();
    let d = dir.path();
    std::fs::write(
        d.join("greet.conf.stream-template"),
        "server {\n    listen 9000;\n    return \"${GREETING} from ${NGINX_HOST}\\n\";\n}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("sub/second.conf.stream-template"),
        "server { listen 9001; return \"second\\n\"; }\n",
    )
    .unwrap();
    sh("chmod", &["-R", "a+rX", d.to_str().unwrap()]);
    dir
}

#[test]
fn stream_templates_are_rendered_and_served() {
    let podman = Podman::new();
    let id = load(&podman, "nginx");
    let tpl = stream_templates();
    let mount = format!("{}:/etc/nginx/templates:ro", tpl.path().display());
    let stream_tmpfs = ["--tmpfs", "/etc/nginx/stream-conf.d"];

    // A read-only nginx.conf of the user's own with a stream block: the
    // step only says so, renders, and nginx serves the rendered server.
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = own_nginx_conf(conf_dir.path(), true);
    let conf_ro = format!("{}:/etc/nginx/nginx.conf:ro", conf.display());
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:9000");
    let mut extra = vec!["-d", "-p", &publish, "-v", &conf_ro, "-e", "GREETING=hello"];
    extra.extend(stream_tmpfs);
    let mut args = template_args("stream", &mount, &extra);
    args.push(&id);
    podman.run(&args);
    let got = tcp_exchange(port, b"");
    let log = logs(&podman, "stream");
    assert_eq!(
        got.as_deref(),
        Some("hello from templated.armorred.test"),
        "{log}"
    );
    for want in [
        "20-envsubst-on-templates.sh: /etc/nginx/nginx.conf contains a stream block; include /etc/nginx/stream-conf.d/*.conf to enable stream templates",
        "20-envsubst-on-templates.sh: Running envsubst on /etc/nginx/templates/greet.conf.stream-template to /etc/nginx/stream-conf.d/greet.conf",
        "Running envsubst on /etc/nginx/templates/sub/second.conf.stream-template to /etc/nginx/stream-conf.d/sub/second.conf",
        "Running envsubst on /etc/nginx/templates/default.conf.template to /etc/nginx/conf.d/default.conf",
    ] {
        assert!(log.contains(want), "`{want}` not in\n{log}");
    }
    // the http pass does not take stream templates: `.stream-template`
    // does not end in `.template`
    assert!(!log.contains("to /etc/nginx/conf.d/greet.conf"), "{log}");

    // A writable nginx.conf without one: the block is appended, as upstream.
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = own_nginx_conf(conf_dir.path(), false);
    let conf_rw = format!("{}:/etc/nginx/nginx.conf", conf.display());
    let mut extra = vec!["-v", &conf_rw, "-e", "GREETING=hello"];
    extra.extend(stream_tmpfs);
    let mut args = template_args("appended", &mount, &extra);
    args.extend([id.as_str(), "nginx", "-T"]);
    let out = podman.try_run(&args);
    let dump = text(&out);
    assert!(out.status.success(), "{dump}");
    assert!(
        dump.contains("Appending stream block to /etc/nginx/nginx.conf to include /etc/nginx/stream-conf.d/*.conf")
            && dump.contains("stream {\n  include /etc/nginx/stream-conf.d/*.conf;\n}")
            && dump.contains("return \"hello from templated.armorred.test"),
        "{dump}"
    );
    let written = std::fs::read_to_string(&conf).unwrap();
    assert!(
        written.contains("# added by \"20-envsubst-on-templates.sh\" on \""),
        "{written}"
    );

    // The image's own nginx.conf, a link into the read-only store that the
    // official append can never change: the block goes into the stream
    // output directory and nginx includes it through -g (which takes no
    // block itself), so the rendered stream server is served.
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:9000");
    let mut extra = vec!["-d", "-p", &publish, "-e", "GREETING=hi"];
    extra.extend(stream_tmpfs);
    let mut args = template_args("shipped-conf", &mount, &extra);
    args.push(&id);
    podman.run(&args);
    let got = tcp_exchange(port, b"");
    let log = logs(&podman, "shipped-conf");
    assert_eq!(
        got.as_deref(),
        Some("hi from templated.armorred.test"),
        "{log}"
    );
    assert!(
        log.contains("20-envsubst-on-templates.sh: /etc/nginx/nginx.conf is read-only; including /etc/nginx/stream-conf.d/*.conf through -g 'include /etc/nginx/stream-conf.d/.stream-block;'"),
        "{log}"
    );
}

#[test]
fn a_mounted_docker_entrypoint_d_is_walked_as_upstream_and_hides_the_built_in_steps() {
    let podman = Podman::new();
    let id = load(&podman, "nginx");
    let tpl = templates();
    let mount = format!("{}:/etc/nginx/templates:ro", tpl.path().display());
    let steps = tempfile::tempdir().unwrap();
    let d = steps.path();
    let exe = |name: &str, body: &str, mode: &str| {
        std::fs::write(d.join(name), body).unwrap();
        sh("chmod", &[mode, d.join(name).to_str().unwrap()]);
    };
    exe("40-not-executable.sh", "echo never\n", "0644");
    exe("05-vars.envsh", "export X=1\n", "0755");
    exe("README", "notes\n", "0644");
    // A program with an interpreter the image has: nginx checking the
    // script itself as a configuration (`#` lines are comments to it).
    exe("25-check.sh", "#!/usr/sbin/nginx -qtc\nevents {}\n", "0755");
    sh("chmod", &["a+rx", d.to_str().unwrap()]);
    let user_dir = format!("{}:/docker-entrypoint.d:ro", d.display());

    let mut args = template_args("own", &mount, &["-v", &user_dir]);
    args.extend([id.as_str(), "nginx", "-T"]);
    let out = podman.try_run(&args);
    let dump = text(&out);
    assert!(out.status.success(), "{dump}");
    let at = |s: &str| {
        dump.find(s)
            .unwrap_or_else(|| panic!("`{s}` not in\n{dump}"))
    };
    // version order, and each kind of file as the official loop treats it
    let order = [
        "/docker-entrypoint.sh: /docker-entrypoint.d/ is not empty, will attempt to perform configuration",
        "/docker-entrypoint.sh: Sourcing /docker-entrypoint.d/05-vars.envsh",
        "/docker-entrypoint.sh: Launching /docker-entrypoint.d/25-check.sh",
        "/docker-entrypoint.sh: Ignoring /docker-entrypoint.d/40-not-executable.sh, not executable",
        "/docker-entrypoint.sh: Ignoring /docker-entrypoint.d/README",
        "/docker-entrypoint.sh: Configuration complete; ready for start up",
    ];
    let pos: Vec<usize> = order.iter().map(|s| at(s)).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{dump}");
    assert!(
        dump.contains(
            "warning: /docker-entrypoint.d/05-vars.envsh was not sourced: this image has no shell"
        ),
        "{dump}"
    );
    // the mount hides the built-in steps: no template rendered, no IPv6 edit
    assert!(!dump.contains("listen 8181;"), "{dump}");
    assert!(!dump.contains("Running envsubst"), "{dump}");
    assert!(!dump.contains("10-listen-on-ipv6-by-default.sh"), "{dump}");

    // An executable script the kernel cannot run (no #!, no shell to fall
    // back to) stops the start, as a failing script does under `set -e`.
    exe("50-plain.sh", "echo needs a shell\n", "0755");
    let mut args = template_args("noshell", &mount, &["-v", &user_dir]);
    args.extend([id.as_str(), "nginx", "-T"]);
    let out = podman.try_run(&args);
    let dump = text(&out);
    assert_eq!(out.status.code(), Some(126), "{dump}");
    assert!(
        dump.contains("cannot run /docker-entrypoint.d/50-plain.sh: Exec format error; this image has no shell (/bin/sh)")
            && !dump.contains("Configuration complete"),
        "{dump}"
    );

    // An empty directory: upstream's message, and nothing run.
    let empty = tempfile::tempdir().unwrap();
    sh("chmod", &["a+rx", empty.path().to_str().unwrap()]);
    let empty_dir = format!("{}:/docker-entrypoint.d:ro", empty.path().display());
    let mut args = template_args("empty", &mount, &["-v", &empty_dir]);
    args.extend([id.as_str(), "nginx", "-t"]);
    let out = podman.try_run(&args);
    let dump = text(&out);
    assert!(out.status.success(), "{dump}");
    assert!(
        dump.contains("/docker-entrypoint.sh: No files found in /docker-entrypoint.d/, skipping configuration"),
        "{dump}"
    );
}

/// Worker processes of a running container, as `podman top` lists them.
fn workers(podman: &Podman, name: &str, at_least: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let top = text(&podman.try_run(&["top", name, "args"]));
        let n = top.lines().filter(|l| l.contains("worker process")).count();
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn worker_autotune_follows_the_cpu_limit() {
    let online: usize = String::from_utf8_lossy(&sh("getconf", &["_NPROCESSORS_ONLN"]).stdout)
        .trim()
        .parse()
        .unwrap();
    let podman = Podman::new();
    let id = load(&podman, "nginx");
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--read-only",
            "--user",
            "65534",
        ];
        args.extend(PODMAN_LIMITS);
        args.extend_from_slice(extra);
        args.push(&id);
        podman.run(&args);
    };
    run(
        "tuned",
        &[
            "--cpus",
            "1",
            "-e",
            "NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE=1",
        ],
    );
    // give a wrong count time to show up before counting
    std::thread::sleep(Duration::from_secs(2));
    let log = logs(&podman, "tuned");
    assert_eq!(workers(&podman, "tuned", 1), 1, "{log}");
    assert!(log.contains("1 worker processes"), "{log}");

    // Without auto-tuning the shipped configuration's `auto` holds: one
    // worker per online CPU, whatever the CPU limit.
    run("auto", &["--cpus", "1"]);
    assert_eq!(
        workers(&podman, "auto", online),
        online,
        "{}",
        logs(&podman, "auto")
    );
}

#[test]
fn redis_arguments_become_a_redis_server_command() {
    let podman = Podman::new();
    let id = load(&podman, "redis");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:6379");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "kv",
        "--read-only",
        "--user",
        "65534",
        "--tmpfs",
        "/data",
        "-p",
        &publish,
    ];
    args.extend(PODMAN_LIMITS);
    args.extend([id.as_str(), "--appendonly", "yes"]);
    podman.run(&args);
    let get = |key: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = podman.try_run(&["exec", "kv", "redis-cli", "CONFIG", "GET", key]);
            let t = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && t.lines().count() == 2 || Instant::now() > deadline {
                return t;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let log = || logs(&podman, "kv");
    assert_eq!(get("appendonly"), "appendonly\nyes\n", "{}", log());
    // Protected mode is off as in the official image, so a client from
    // outside the container's loopback (the published port) is served.
    assert_eq!(get("protected-mode"), "protected-mode\nno\n", "{}", log());
    assert_eq!(redis_ping(port).as_deref(), Some("+PONG"), "{}", log());
    assert!(log().contains("Starting Redis Server"), "{}", log());
}

fn redis_ping(port: u16) -> Option<String> {
    tcp_exchange(port, b"PING\r\n")
}

/// Connects to the published `port` until a server answers, sends `send` and
/// returns the first bytes it reads back, trimmed.
fn tcp_exchange(port: u16, send: &[u8]) -> Option<String> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 256];
            if s.write_all(send).is_ok() {
                if let Ok(n @ 1..) = s.read(&mut buf) {
                    return Some(String::from_utf8_lossy(&buf[..n]).trim().to_string());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    None
}

fn assert_promised_properties(analysis: &Value, program: &str) {
    let bin = analysis["binaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["path"].as_str().unwrap_or("").ends_with(program))
        .unwrap_or_else(|| panic!("{program} is not in the analysis"));
    let path = bin["path"].as_str().unwrap();
    assert!(path.contains("-armorred-entrypoint-"), "{path}");
    for (key, want) in [
        ("pie", Value::Bool(true)),
        ("relro", Value::from("full")),
        ("bind_now", Value::Bool(true)),
        ("canary", Value::Bool(true)),
        ("nx", Value::Bool(true)),
        ("safestack", Value::Bool(true)),
    ] {
        assert_eq!(bin[key], want, "{path}: {key}\n{bin:#}");
    }
    assert_eq!(bin["fortify"]["status"], "fortified", "{path}\n{bin:#}");
}

#[test]
fn the_hardened_images_have_no_shell_and_the_program_keeps_the_tier_promise() {
    for image in ["nginx", "redis"] {
        let b = hardened(image);
        let layout = b.hardened.to_str().unwrap();
        let a = b.ctx.ok(&["analyze", layout, "--json"]).json();
        assert_eq!(a["shell"]["present"], false, "{image}: {:#}", a["shell"]);
        assert_eq!(a["coreutils"]["present"], false, "{image}");
        assert_promised_properties(&a, "/bin/nginx-entrypoint");
        assert_promised_properties(&a, "/bin/redis-entrypoint");

        let i = b.ctx.ok(&["inspect", layout, "--json"]).json();
        let (entrypoint, cmd) = if image == "nginx" {
            (
                vec!["/docker-entrypoint.sh"],
                vec!["nginx", "-g", "daemon off;"],
            )
        } else {
            (vec!["docker-entrypoint.sh"], vec!["redis-server"])
        };
        assert_eq!(i["entrypoint"], serde_json::json!(entrypoint), "{i:#}");
        assert_eq!(i["cmd"], serde_json::json!(cmd), "{i:#}");
        assert_eq!(
            i["labels"]["org.armorred.entrypoint-compat"], image,
            "{i:#}"
        );
    }
    let podman = Podman::new();
    let id = load(&podman, "nginx");
    let mut args = vec!["run", "--name", "noshell", "--entrypoint", "/bin/sh"];
    args.extend(PODMAN_LIMITS);
    args.extend([id.as_str(), "-c", "true"]);
    assert!(!podman.try_run(&args).status.success(), "/bin/sh ran");
}

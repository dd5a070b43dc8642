//! Debian security patches in the offline package set: the selection rule and
//! `scripts/sources-update.py` (their own unit tests, run with the test venv's
//! Python), and one nginx CVE shown by behaviour: the same nginx expression
//! built with and without Debian's patches, answering the reproducer from the
//! fix's own commit message differently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// Runs `python -m unittest discover` in `dir` and asserts every test passed.
fn python_unittests(dir: &str) {
    let out = Command::new(python())
        .args([
            "-m",
            "unittest",
            "discover",
            "-v",
            "-s",
            dir,
            "-p",
            "test_*.py",
        ])
        .current_dir(repo())
        .output()
        .expect("running the venv Python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "unit tests in {dir} failed:\n{stderr}"
    );
    // unittest's summary, so a discovery that finds nothing cannot pass
    assert!(
        stderr.contains("\nOK") && !stderr.contains("Ran 0 tests"),
        "{stderr}"
    );
    eprintln!("{dir}: {}", stderr.lines().rev().nth(2).unwrap_or(""));
}

#[test]
fn patch_selection_rule_unit_tests() {
    python_unittests("nix/offline");
}

#[test]
fn sources_update_on_captured_index() {
    python_unittests("scripts");
}

/// nginx from the offline set with or without Debian's patches, everything
/// else equal: base hardening and the locked tier's small module set, so the
/// two builds are quick and differ only in the patches.
fn build_nginx(debian_patches: bool) -> PathBuf {
    let expr = format!(
        r#"(import {repo}/nix/offline {{
              sourceDir = "{src}";
              debianPatches = {debian_patches};
              drop = [ "http_perl" "http_xslt" "http_image_filter" "http_geoip" "mail" "stream"
                       "http_dav" "http_flv" "http_mp4" "http_grpc" "http_v3" ];
            }}).nginx"#,
        repo = repo().display(),
        src = sources_dir().display(),
    );
    let out = Command::new("nix-build")
        .args(["--no-out-link", "-E", &expr])
        .output()
        .expect("running nix-build");
    assert!(
        out.status.success(),
        "nix-build (debianPatches = {debian_patches}) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `nginx` on a loopback port with the reproducer's configuration.
fn serve(nginx: &Path, dir: &Path, port: u16) -> Nginx {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\n\
             pid {dir}/nginx.pid;\n\
             error_log stderr;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {dir}/body;\n\
               proxy_temp_path {dir}/proxy;\n\
               fastcgi_temp_path {dir}/fastcgi;\n\
               uwsgi_temp_path {dir}/uwsgi;\n\
               scgi_temp_path {dir}/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                   rewrite ^(.*) /new?c=1;\n\
                   set $myvar $1;\n\
                   return 200 $myvar;\n\
                 }}\n\
               }}\n\
             }}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new(nginx.join("bin/nginx"))
        .args(["-p", &dir.display().to_string(), "-c"])
        .arg(&conf)
        .args(["-e", "stderr", "-g", "daemon off;"])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting nginx");
    Nginx(child)
}

/// CVE-2026-42945 (nginx "Rewrite: fixed escaping and possible buffer
/// overrun"): after a rewrite whose replacement has arguments, captures used
/// later in `set` were escaped, into a buffer sized for the unescaped value.
/// Chosen because the fix's commit message gives a deterministic reproducer
/// whose effect shows in the response body, with no crash needed: `$1` of
/// `/a%20b` must come back as `/a b`; unpatched nginx 1.26.3 answers `/a%2`
/// (escaped, and cut to the unescaped length: measured).
#[test]
fn nginx_cve_2026_42945_is_fixed_by_the_debian_patch() {
    let ctx = TestContext::new();
    let mut bodies = Vec::new();
    for patched in [false, true] {
        let nginx = build_nginx(patched);
        let record = nginx.join("nix-support/armorred-patches.json");
        assert_eq!(
            record.exists(),
            patched,
            "{} should exist only in the patched build",
            record.display()
        );
        let port = free_port();
        let _server = serve(
            &nginx,
            &ctx.path()
                .join(if patched { "patched" } else { "unpatched" }),
            port,
        );
        let (code, body) = http_get(port, "/a%20b", Duration::from_secs(20))
            .unwrap_or_else(|| panic!("nginx (patched = {patched}) did not answer"));
        assert_eq!(code, 200, "{body}");
        bodies.push(body);
    }
    assert_eq!(
        bodies[1], "/a b",
        "the patched build returns the capture as is"
    );
    // Unpatched, the capture is escaped ("/a%20b") into a buffer sized for
    // the unescaped value (4 bytes): the response is the escaped text, cut
    // at that length, the visible half of the overrun the fix describes.
    assert!(
        bodies[0] != bodies[1] && bodies[0].starts_with("/a%2"),
        "the unpatched build should show the bug (an escaped capture), got {:?}",
        bodies[0]
    );
}

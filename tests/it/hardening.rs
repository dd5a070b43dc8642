//! Binary-level proof of every hardening claim, on nginx built in
//! both tiers through real Nix; Debian's checksec is the independent
//! cross-check. Also: the gate refuses an unhardened package, and the locked
//! tier really lacks the modules it drops.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

fn analyze(layout: &Path) -> Value {
    nginx()
        .ctx
        .ok(&["analyze", layout.to_str().unwrap(), "--json"])
        .json()
}

fn package_of(layout: &Path) -> String {
    let v = nginx()
        .ctx
        .ok(&["inspect", layout.to_str().unwrap(), "--json"])
        .json();
    v["labels"]["org.armorred.nix.package"]
        .as_str()
        .unwrap()
        .to_string()
}

fn binaries<'a>(a: &'a Value, prefix: &str) -> Vec<&'a Value> {
    a["binaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["path"].as_str().unwrap().contains(prefix))
        .collect()
}

#[test]
fn nginx_and_its_libraries_have_the_base_hardening() {
    let b = nginx();
    for layout in [&b.hardened, &b.locked] {
        let a = analyze(layout);
        let mut libs = vec!["-nginx-", "-openssl-", "-pcre2-", "-zlib-"];
        // The principal binaries: the executable and each library's main
        // shared object. These must show a canary and fortified calls; the
        // smaller objects (perl's XS extensions, nginx's modules) may have
        // no function a canary or FORTIFY applies to, which the checksec
        // cross-check below confirms file by file.
        let mut principal = vec![
            "/bin/nginx",
            "/libssl.so",
            "/libcrypto.so",
            "/libpcre2-8.so",
            "/libz.so",
        ];
        if layout == &b.hardened {
            libs.extend(["-perl-", "-libxml2-", "-libxslt-", "-libgd-", "-libpng-"]);
            libs.extend(["-libjpeg-turbo-", "-geoip-"]);
            principal.extend(["/libperl.so", "/libxml2.so", "/libxslt.so", "/libgd.so"]);
            principal.extend(["/libpng16.so", "/libjpeg.so", "/libGeoIP.so"]);
        }
        let mut principal_seen = BTreeMap::new();
        for lib in libs {
            let bins = binaries(&a, lib);
            assert!(!bins.is_empty(), "no ELF of {lib} in {}", layout.display());
            for bin in bins {
                let p = bin["path"].as_str().unwrap();
                assert_eq!(bin["relro"], "full", "{p}");
                assert_eq!(bin["bind_now"], true, "{p}");
                assert_eq!(bin["nx"], true, "{p}");
                assert_eq!(bin["rpath_outside_store"], false, "{p}");
                if bin["elf_type"] == "executable" {
                    assert_eq!(bin["pie"], true, "{p}");
                }
                let Some(name) = principal.iter().find(|n| p.contains(**n)) else {
                    continue;
                };
                *principal_seen.entry(*name).or_insert(0) += 1;
                assert_eq!(bin["canary"], true, "{p}");
                assert!(
                    bin["fortify"]["fortified_count"].as_u64().unwrap() > 0,
                    "{p}: {}",
                    bin["fortify"]
                );
            }
        }
        for name in &principal {
            assert!(
                principal_seen.contains_key(name),
                "{name} not found in {}",
                layout.display()
            );
        }
        assert_eq!(a["suid_sgid"].as_array().unwrap().len(), 0);
        assert_eq!(a["world_writable"].as_array().unwrap().len(), 0);
        assert_eq!(a["user"], "65534");
        // glibc, zlib, pcre2, openssl, nginx; hardened adds the dynamic
        // modules' libraries (perl, libxml2, libxslt, libgd, libpng,
        // libjpeg-turbo, geoip) and the entrypoint program, locked adds
        // busybox instead.
        let expected = if layout == &b.locked { 6 } else { 13 };
        assert_eq!(a["component_count"], expected, "{}", layout.display());
    }
}

#[test]
fn cfi_and_safestack_exactly_where_the_tier_asks() {
    let b = nginx();
    for (layout, cfi) in [(&b.hardened, false), (&b.locked, true)] {
        let a = analyze(layout);
        let pkg = package_of(layout);
        let nginx_bin = binaries(&a, &format!("{pkg}/bin/nginx"));
        assert_eq!(nginx_bin.len(), 1);
        assert_eq!(nginx_bin[0]["cfi"]["enabled"], cfi, "{}", layout.display());
        if cfi {
            assert!(nginx_bin[0]["cfi"]["symbols"].as_u64().unwrap() > 100);
        }
        assert_eq!(nginx_bin[0]["safestack"], true);
        // Dependencies are built once for both tiers without CFI/SafeStack.
        for dep in binaries(&a, "-openssl-") {
            assert_eq!(dep["cfi"]["enabled"], false);
            assert_eq!(dep["safestack"], false);
        }
    }
}

/// `checksec --output=json --file=X` → its verdicts for X.
fn checksec(file: &Path) -> BTreeMap<String, String> {
    let out = sh(
        "checksec",
        &["--output=json", &format!("--file={}", file.display())],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, fields) = v.as_object().unwrap().iter().next().unwrap();
    fields
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

#[test]
fn checksec_agrees_on_every_shared_column() {
    let b = nginx();
    for (layout, tier) in [(&b.hardened, "hardened"), (&b.locked, "locked")] {
        let bundle = b.ctx.path().join(format!("checksec-{tier}"));
        sh(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:1.26.3-{tier}", layout.display()),
                bundle.to_str().unwrap(),
            ],
        );
        let rootfs = bundle.join("rootfs");
        let a = analyze(layout);
        let mut compared = 0;
        for bin in a["binaries"].as_array().unwrap() {
            let p = bin["path"].as_str().unwrap();
            if p.contains("glibc") {
                continue; // imported from the host, not ours to vouch for
            }
            let c = checksec(&rootfs.join(p.trim_start_matches('/')));
            let ctx = format!("{tier} {p}: checksec {c:?}\nours {bin}");
            assert_eq!(c["relro"], bin["relro"].as_str().unwrap(), "{ctx}");
            assert_eq!(
                c["canary"] == "yes",
                bin["canary"].as_bool().unwrap(),
                "{ctx}"
            );
            assert_eq!(c["nx"] == "yes", bin["nx"].as_bool().unwrap(), "{ctx}");
            let pie = if bin["elf_type"] == "shared-library" {
                "dso"
            } else if bin["pie"] == true {
                "yes"
            } else {
                "no"
            };
            assert_eq!(c["pie"], pie, "{ctx}");
            assert_eq!(
                c["rpath"] == "yes",
                !bin["rpath"].as_array().unwrap().is_empty(),
                "{ctx}"
            );
            assert_eq!(
                c["runpath"] == "yes",
                !bin["runpath"].as_array().unwrap().is_empty(),
                "{ctx}"
            );
            assert_eq!(
                c["symbols"] == "yes",
                !bin["stripped"].as_bool().unwrap(),
                "{ctx}"
            );
            let fortified = bin["fortify"]["fortified_count"].as_u64().unwrap();
            assert_eq!(c["fortify_source"] == "yes", fortified > 0, "{ctx}");
            assert_eq!(c["fortified"].parse::<u64>().unwrap(), fortified, "{ctx}");
            compared += 1;
        }
        assert!(compared >= 6, "{tier}: compared only {compared} binaries");
    }
}

fn nginx_v(layout: &Path) -> String {
    let bin = Path::new(&package_of(layout)).join("bin/nginx");
    let out = Command::new(&bin).arg("-V").output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn locked_nginx_lacks_the_dropped_modules_and_hardened_has_them() {
    let b = nginx();
    let hardened = nginx_v(&b.hardened);
    let locked = nginx_v(&b.locked);
    // Both tiers are the release Debian 13 ships, with OpenSSL 3.5.
    for v in [&hardened, &locked] {
        assert!(v.starts_with("nginx version: nginx/1.26.3\n"), "{v}");
        assert!(v.contains("built with OpenSSL 3.5."), "{v}");
    }
    assert!(hardened.contains("--with-http_v3_module"), "{hardened}");
    for flag in [
        "--with-mail",
        "--with-stream",
        "--with-http_dav_module",
        "--with-http_mp4_module",
        "--with-http_flv_module",
        "--with-http_perl_module=dynamic",
        "--with-http_xslt_module=dynamic",
        "--with-http_image_filter_module=dynamic",
        "--with-http_geoip_module=dynamic",
        "--with-stream_geoip_module=dynamic",
    ] {
        assert!(
            hardened.contains(flag),
            "hardened lacks {flag}:\n{hardened}"
        );
        assert!(!locked.contains(flag), "locked still has {flag}:\n{locked}");
    }
    for flag in [
        "--without-http_ssi_module",
        "--without-http_memcached_module",
        "--without-http_grpc_module",
    ] {
        assert!(
            locked.contains(flag),
            "locked should build {flag}:\n{locked}"
        );
        assert!(
            !hardened.contains(flag),
            "hardened should keep the module of {flag}"
        );
    }
    assert!(
        locked.contains("-fsanitize=cfi") && !locked.contains("-fcf-protection"),
        "{locked}"
    );
    assert!(
        hardened.contains("-fcf-protection=full") && !hardened.contains("-fsanitize=cfi"),
        "{hardened}"
    );
    // The label tells users what was dropped.
    let v = b
        .ctx
        .ok(&["inspect", b.locked.to_str().unwrap(), "--json"])
        .json();
    assert!(v["labels"]["org.armorred.dropped-features"]
        .as_str()
        .unwrap()
        .contains("mail"));
}

fn fixture_ctx() -> TestContext {
    TestContext::new()
}

fn fixture_args<'a>(image: &'a str, tier: &'a str, out: &'a str) -> Vec<String> {
    let recipes = repo().join("tests/fixtures/recipes");
    vec![
        "build".into(),
        image.into(),
        "--tier".into(),
        tier.into(),
        "--recipes".into(),
        recipes.display().to_string(),
        "--out".into(),
        out.into(),
    ]
}

#[test]
fn build_refuses_an_unhardened_package_and_keeps_the_good_image() {
    let ctx = fixture_ctx();
    // A good image first, in the same --out place the bad build targets.
    let good = ctx.run(
        &fixture_args("hello", "hardened", "out")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(good.out.status.success(), "{}", good.describe());
    let weak = fixture_args("weak", "hardened", "out");
    let r = ctx.run(&weak.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code(), 1, "{}", r.describe());
    let err = r.stderr();
    assert!(err.contains("hardening gate"), "{err}");
    assert!(
        err.contains("-weak-1.0/bin/weak: missing relro_full"),
        "{err}"
    );
    for prop in ["bind_now", "canary", "pie", "fortify"] {
        assert!(err.contains(&format!("missing {prop}")), "{prop}: {err}");
    }
    // Nothing half-made is left for the refused image.
    assert!(
        !ctx.path().join("out/weak-hardened").exists(),
        "{}",
        ctx.listing()
    );
    let f = ctx.ok(&[
        "fsck",
        ctx.path().join("out/hello-hardened").to_str().unwrap(),
    ]);
    assert!(f.stdout().contains("0 problem(s)"), "{}", f.stdout());
}

#[test]
fn a_users_own_package_file_gets_the_tier_hardening() {
    let ctx = fixture_ctx();
    let r = ctx.run(
        &fixture_args("hello", "locked", "out")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(r.out.status.success(), "{}", r.describe());
    let a = ctx
        .ok(&[
            "analyze",
            ctx.path().join("out/hello-locked").to_str().unwrap(),
            "--json",
        ])
        .json();
    let hello = binaries(&a, "-hello-1.0/bin/hello");
    assert_eq!(hello.len(), 1);
    assert_eq!(hello[0]["cfi"]["enabled"], true);
    assert_eq!(hello[0]["safestack"], true);
    assert_eq!(hello[0]["relro"], "full");
}

/// A valid 3×2 RGB PNG, built here so the test owns its input.
fn tiny_png() -> Vec<u8> {
    use std::io::Write;
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend(kind);
        out.extend(data);
        out.extend(crc.sum().to_be_bytes());
    }
    let (w, h) = (3u32, 2u32);
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    let mut raw = Vec::new();
    for _ in 0..h {
        raw.push(0); // filter: none
        raw.extend(std::iter::repeat_n([200u8, 30, 30], w as usize).flatten());
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &z.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    png
}

/// Serves content through the official image's dynamic modules, loaded the
/// way its users load them (`load_module modules/<name>.so`).
const MODULES_CONF: &str = r#"
load_module modules/ngx_http_perl_module.so;
load_module modules/ngx_http_xslt_filter_module.so;
load_module modules/ngx_http_image_filter_module.so;
load_module modules/ngx_http_geoip_module.so;
load_module modules/ngx_stream_geoip_module.so;
pid /tmp/nginx.pid;
error_log /dev/stderr notice;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    perl_set $perl_version 'sub { return sprintf("perl %vd", $^V); }';
    server {
        listen 8080;
        root /srv/site;
        location = /perl {
            perl 'sub {
                my $r = shift;
                $r->send_http_header("text/plain");
                $r->print("handler says ", join("-", map { uc } qw(x y z)), " on ", $r->variable("perl_version"), "\n");
                return OK;
            }';
        }
        location /xml/ { xslt_stylesheet /srv/style.xsl; }
        location /img/ { image_filter size; }
    }
}
"#;

const STYLE_XSL: &str = r#"<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text"/>
  <xsl:template match="/greeting">transformed: <xsl:value-of select="@to"/> (<xsl:value-of select="count(item)"/> items)</xsl:template>
</xsl:stylesheet>
"#;

fn modules_site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("site/xml")).unwrap();
    std::fs::create_dir_all(d.join("site/img")).unwrap();
    std::fs::write(d.join("nginx.conf"), MODULES_CONF).unwrap();
    std::fs::write(d.join("style.xsl"), STYLE_XSL).unwrap();
    std::fs::write(
        d.join("site/xml/doc.xml"),
        "<?xml version=\"1.0\"?><greeting to=\"armorred\"><item/><item/></greeting>\n",
    )
    .unwrap();
    std::fs::write(d.join("site/img/red.png"), tiny_png()).unwrap();
    // readable by nobody inside the container
    sh("chmod", &["-R", "a+rX", d.to_str().unwrap()]);
    dir
}

#[test]
fn hardened_nginx_runs_the_official_dynamic_modules_and_locked_has_none() {
    let b = nginx();
    let site = modules_site();
    let mount = format!("{}:/srv:ro", site.path().display());
    let podman = Podman::new();

    // hardened: a Perl handler, an XSLT transformation and an image_filter
    // answer through the real modules.
    let id = podman.load_layout(&b.hardened, "1.26.3-hardened");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "mods",
        "--read-only",
        "--user",
        "65534",
        "-p",
        &publish,
        "-v",
        &mount,
    ];
    args.extend(PODMAN_LIMITS);
    args.extend([
        id.as_str(),
        "nginx",
        "-c",
        "/srv/nginx.conf",
        "-g",
        "daemon off;",
    ]);
    podman.run(&args);
    let perl = http_get(port, "/perl", Duration::from_secs(30));
    let logs = podman.try_run(&["logs", "mods"]);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    let (code, body) = perl.unwrap_or_else(|| panic!("no answer from /perl\n{logs}"));
    assert_eq!(code, 200, "{body}\n{logs}");
    assert_eq!(body, "handler says X-Y-Z on perl 5.40.1\n", "{logs}");

    let (code, body) = http_get(port, "/xml/doc.xml", Duration::from_secs(10)).unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.trim(), "transformed: armorred (2 items)");

    let (code, body) = http_get(port, "/img/red.png", Duration::from_secs(10)).unwrap();
    assert_eq!(code, 200, "{body}");
    let size: Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(size["img"]["width"], 3, "{body}");
    assert_eq!(size["img"]["height"], 2, "{body}");
    assert_eq!(size["img"]["type"], "png", "{body}");

    // locked: the same configuration is refused, because the modules are
    // not in the image at all.
    let id = podman.load_layout(&b.locked, "1.26.3-locked");
    let mut args = vec!["run", "--name", "mods-locked", "--read-only", "-v", &mount];
    args.extend(PODMAN_LIMITS);
    args.extend([id.as_str(), "-t", "-c", "/srv/nginx.conf"]);
    let out = podman.try_run(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "locked accepted the modules:\n{text}"
    );
    assert!(
        text.contains("ngx_http_perl_module.so") && text.contains("failed"),
        "{text}"
    );
    let listing = |layout: &Path| -> String {
        let a = analyze(layout);
        a["binaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["path"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (hardened, locked) = (listing(&b.hardened), listing(&b.locked));
    for module in [
        "ngx_http_perl_module.so",
        "ngx_http_xslt_filter_module.so",
        "ngx_http_image_filter_module.so",
        "ngx_http_geoip_module.so",
        "ngx_stream_geoip_module.so",
        "libperl.so",
    ] {
        assert!(hardened.contains(module), "hardened lacks {module}");
        assert!(!locked.contains(module), "locked still has {module}");
    }
}

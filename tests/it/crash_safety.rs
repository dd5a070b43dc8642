//! A `kill -9` at any point of a build leaves either the old image
//! or the new one in --out, never a mix; leftovers are cleaned by the next run.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

fn index_digest(layout: &std::path::Path) -> String {
    let v: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index.json exists"))
            .expect("index.json is whole JSON");
    v["manifests"][0]["digest"].as_str().unwrap().to_string()
}

#[test]
fn kill_9_at_random_points_never_leaves_a_mix() {
    let ctx = TestContext::new();
    let recipes = repo().join("tests/fixtures/recipes");
    let nix = repo().join("nix");
    let out = ctx.path().join("out");
    let args = |epoch: u64| {
        let mut c = Command::new(bin());
        private_cache(&mut c)
            .args([
                "-q",
                "build",
                "hello",
                "--tier",
                "hardened",
                "--no-cache",
                "--compression",
                "gzip",
                "--compression-level",
                "9",
                "--recipes",
            ])
            .arg(&recipes)
            .arg("--nix-dir")
            .arg(&nix)
            .arg("--out")
            .arg(&out)
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    // A good image first, and how long a build takes.
    let t = Instant::now();
    assert!(args(1).status().unwrap().success());
    let full = t.elapsed();
    let layout = out.join("hello-hardened");
    let mut known = vec![index_digest(&layout)];

    // A small LCG: the kill points differ per run but need no extra crate.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rand = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let budget = full.as_millis().max(50) as u64 * 12 / 10;
    let mut killed_mid_write = 0;
    for i in 0..12u64 {
        let epoch = 1000 + i;
        let delay = Duration::from_millis(rand() % budget);
        let mut child = args(epoch).spawn().unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        let _ = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
        let _ = child.wait();
        if !finished {
            killed_mid_write += 1;
        }
        // Whatever index.json names is complete and verifies.
        let now = index_digest(&layout);
        let fsck = ctx
            .run(&["fsck", layout.to_str().unwrap(), "--json"])
            .json();
        assert_eq!(
            fsck["problems"].as_array().unwrap().len(),
            0,
            "after kill at {delay:?}: {fsck}"
        );
        let inspect = ctx.run(&["inspect", layout.to_str().unwrap(), "--json"]);
        assert!(
            inspect.out.status.success(),
            "after kill at {delay:?}: {}",
            inspect.describe()
        );
        // It is the old image or the new one of this round (labels say which).
        let created = inspect.json()["created"].as_str().unwrap().to_string();
        let ok = known.contains(&now) || created == armorred::base::time::rfc3339_utc(epoch as i64);
        assert!(ok, "round {i}: index names {now}, created {created}");
        known.push(now);
    }
    assert!(
        killed_mid_write > 0,
        "no kill landed during a build; raise the budget"
    );
    // The next run cleans leftovers and builds normally.
    assert!(args(5000).status().unwrap().success());
    let leftovers: Vec<_> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .chain(fs::read_dir(&layout).unwrap())
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let fsck = ctx
        .run(&["fsck", layout.to_str().unwrap(), "--json"])
        .json();
    assert_eq!(fsck["unreferenced"], 0, "{fsck}");
}

//! `armorred compat` against a stand-in for the official nginx
//! image (buildah, FROM scratch, the official runtime contract). The
//! differences nginx.toml declares pass the hardened tier; one it does not
//! declare fails it (exit 1, naming the field); the locked tier only warns.
//! The hardened tier's entrypoint and cmd are the official ones (the
//! entrypoint compatibility program), so they are no difference at all.

use crate::common::*;
use crate::fixture::upstream;
use serde_json::Value;

fn compat(args: &[&str]) -> Run {
    let mut all = vec!["compat", "nginx", "--out", "out"];
    all.extend_from_slice(args);
    nginx().ctx.run(&all)
}

fn differences(r: &Run) -> Vec<Value> {
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["differences"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn declared_differences_pass_the_hardened_tier() {
    let up = upstream();
    let r = compat(&["--upstream", &up.oci("latest"), "--tier", "hardened"]);
    assert_eq!(r.code(), 0, "{}", r.describe());
    let text = r.stdout();
    for field in ["user", "ports", "env"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("allowed") && l.contains(field)),
            "{field} not listed as allowed:\n{text}"
        );
    }
    assert!(!text.contains("ERROR"), "{text}");
    // The differences are the real ones, each with the recipe's reason.
    let r = compat(&[
        "--upstream",
        &up.oci("latest"),
        "--tier",
        "hardened",
        "--json",
    ]);
    let d = differences(&r);
    let find = |field: &str| {
        d.iter()
            .filter(|x| x["field"] == field)
            .cloned()
            .collect::<Vec<_>>()
    };
    let user = &find("user")[0];
    assert_eq!(
        (user["upstream"].as_str(), user["ours"].as_str()),
        (Some("root"), Some("65534"))
    );
    assert_eq!(user["verdict"], "allowed");
    assert!(user["reason"].as_str().unwrap().contains("nobody"));
    let ports: Vec<(String, String)> = find("ports")
        .iter()
        .map(|p| {
            (
                p["change"].as_str().unwrap().to_string(),
                p["item"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("missing".to_string(), "80/tcp".to_string()),
            ("added".to_string(), "8080/tcp".to_string())
        ]
    );
    assert!(
        find("entrypoint").is_empty() && find("cmd").is_empty(),
        "{d:#?}"
    );
    // Same working dir (unset = /) and stop signal: no difference listed.
    assert!(find("workdir").is_empty() && find("stop_signal").is_empty());
    assert!(d.iter().all(|x| x["verdict"] == "allowed"));
}

#[test]
fn an_undeclared_difference_fails_hardened_and_warns_in_locked() {
    let up = upstream();
    let r = compat(&["--upstream", &up.oci("undeclared"), "--tier", "hardened"]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    let err_line = r
        .stdout()
        .lines()
        .find(|l| l.trim_start().starts_with("ERROR"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no ERROR line\n{}", r.describe()));
    assert!(
        err_line.contains("volumes") && err_line.contains("/var/cache/nginx"),
        "{err_line}"
    );
    assert!(
        r.stderr().contains("volumes"),
        "stderr should name the field\n{}",
        r.describe()
    );
    assert_eq!(r.stdout().matches("ERROR").count(), 1, "{}", r.describe());

    let r = compat(&["--upstream", &up.oci("undeclared"), "--tier", "locked"]);
    assert_eq!(r.code(), 0, "{}", r.describe());
    assert!(r
        .stdout()
        .lines()
        .any(|l| l.trim_start().starts_with("warning") && l.contains("volumes")));
    assert!(!r.stdout().contains("ERROR"));

    // Both tiers at once: the hardened error decides the exit code.
    let r = compat(&["--upstream", &up.oci("undeclared")]);
    assert_eq!(r.code(), 1, "{}", r.describe());
}

#[test]
fn without_the_declarations_every_difference_is_an_error() {
    let up = upstream();
    let recipes = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("recipes/nginx.toml")).unwrap();
    let cut = text
        .find("[[compat.allowed]]")
        .expect("nginx.toml declares its differences");
    std::fs::write(recipes.path().join("nginx.toml"), &text[..cut]).unwrap();
    let r = compat(&[
        "--upstream",
        &up.oci("latest"),
        "--tier",
        "hardened",
        "--recipes",
        recipes.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    let d = differences(&r);
    let mut fields: Vec<&str> = d.iter().map(|x| x["field"].as_str().unwrap()).collect();
    fields.dedup();
    assert_eq!(fields, ["ports", "env", "user"]);
    assert!(d.iter().all(|x| x["verdict"] == "error"));
}

#[test]
fn a_bad_declaration_is_a_recipe_error() {
    let recipes = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("recipes/nginx.toml")).unwrap();
    let bad = text.replacen("field = \"user\"", "field = \"uid\"", 1);
    std::fs::write(recipes.path().join("nginx.toml"), bad).unwrap();
    let r = compat(&[
        "--upstream",
        &upstream().oci("latest"),
        "--recipes",
        recipes.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code(), 2, "{}", r.describe());
    assert!(
        r.stderr().contains("unknown variant `uid`"),
        "{}",
        r.describe()
    );
    assert!(r.stderr().contains("nginx.toml:"), "{}", r.describe());
}

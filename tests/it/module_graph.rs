//! The library's modules depend only downward. Each top-level module of
//! `src/` has a rank in [`ORDER`] (lowest first) and may name only modules
//! of lower rank; the command layer lives in the binary (`src/bin/armorred`),
//! which the library cannot name at all. A new module must be placed in the
//! order, which is the point: where it sits is a design decision.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Lowest first. Foundation, then the build stages in pipeline order, then
/// the image readers and checks, the attachments, the registry and reports,
/// the user-facing error classification, and the pipeline that drives them.
const ORDER: &[&str] = &[
    // foundation: one owner per low-level job
    "base",
    "process",
    "store_path",
    "tier",
    "package_set",
    "platform",
    "parallel",
    // the ELF analyzer: pure functions over bytes
    "analyze",
    // value types the stages share: the closure's store-path graph and the
    // upstream test records its packages carry
    "closure",
    "upstream_tests",
    // recipe → plan → nix → layers → oci (write and read)
    "recipe",
    "config",
    "plan",
    "nix",
    "layers",
    "oci",
    "rootfs",
    "cache",
    // checks and attachments, which read images
    "layout_analysis",
    "provenance",
    "sbom",
    "sign",
    "slsa",
    "attach",
    "lint",
    "gate",
    "inspect",
    "archive",
    "registry",
    "report",
    "compat",
    // what a user sees of errors, then the driver
    "error",
    "pipeline",
    "batch",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments (doc links name modules too, and
/// naming one in prose is no dependency).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules a file names through `crate::`, including inside
/// `use crate::{a, b::c}` groups.
fn named_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    out.push(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
        rest = after;
    }
    out
}

fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    if first == "bin" || first == "lib.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

#[test]
fn every_library_module_is_ranked_and_lib_declares_no_command_module() {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: Vec<String> = code(&lib)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    for m in &declared {
        assert!(
            ORDER.contains(&m.as_str()),
            "module `{m}` is not in the rank order of tests/it/module_graph.rs: place it"
        );
    }
    for command_layer in ["cli", "commands", "progress"] {
        assert!(
            !declared.iter().any(|m| m == command_layer),
            "`{command_layer}` belongs to the binary (src/bin/armorred), not the library"
        );
    }
}

#[test]
fn library_modules_depend_only_downward() {
    let rank: BTreeMap<&str, usize> = ORDER.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = Vec::new();
    for f in files {
        let Some(module) = top_module(&f) else {
            continue;
        };
        let Some(&own) = rank.get(module.as_str()) else {
            violations.push(format!("{}: module `{module}` has no rank", f.display()));
            continue;
        };
        let text = fs::read_to_string(&f).unwrap();
        for named in named_modules(&code(&text)) {
            if named == module {
                continue;
            }
            match rank.get(named.as_str()) {
                Some(&r) if r < own => {}
                Some(_) => violations.push(format!(
                    "{}: `{module}` names `{named}`, which is not below it",
                    f.display()
                )),
                None => violations.push(format!(
                    "{}: `{module}` names `crate::{named}`, which is not a ranked module",
                    f.display()
                )),
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_plain_paths_groups_and_ignores_comments() {
    let c = code(
        "use crate::{oci::Layout, plan};\n// crate::lint in prose\nlet x = crate::gate::check();",
    );
    assert_eq!(named_modules(&c), ["oci", "plan", "gate"]);
}

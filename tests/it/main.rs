//! The integration tests, one test binary: the helpers in `common` compile
//! once, and the images several suites read (nginx in both tiers, redis, the
//! `hello` fixture) are built once per run (`common::nginx()` and friends).
//! Each module is one area; its header says what it covers.

mod common;
#[path = "../fixtures/upstream/mod.rs"]
mod fixture;

mod analyze_elf;
mod bad_input;
mod build_all;
mod commit;
mod compat;
mod crash_safety;
mod entrypoint;
mod formats;
mod hardening;
mod hostile_layout;
mod hostile_upstream;
mod layer_cache;
mod lint;
mod module_graph;
mod multiarch;
mod nix_exprs;
mod nix_facts;
mod pipeline;
mod registry;
mod remote_builder;
mod report;
mod sbom_validate;
mod security_patches;
mod sign_compat;
mod snapshots;
mod supply_chain;
mod upstream_suites;

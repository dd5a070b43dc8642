//! armorred: build hardened FROM-scratch OCI images with Nix.
//!
//! Typed stages that depend only downward (the order is enforced by
//! `tests/it/module_graph.rs`; the README's "How it works" draws it):
//!
//! ```text
//! base → recipe → plan → nix → closure → layers → oci (write and read)
//!   → checks (analyze, gate, lint) · attachments (sbom, sign, slsa, attach)
//!   · registry · report · compat → error → pipeline → batch
//! ```
//!
//! The command layer (`cli`, `commands`, `progress`) belongs to the binary,
//! `src/bin/armorred`, which the library cannot name.

pub mod attach;
pub mod base;
pub mod cache;
pub mod closure;
pub mod gate;
pub mod inspect;
pub mod layers;
pub mod layout_analysis;
pub mod lint;
pub mod nix;
pub mod oci;
pub mod package_set;
pub mod parallel;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod process;
pub mod provenance;
pub mod recipe;
pub mod rootfs;
pub mod store_path;
pub mod tier;
pub mod upstream_tests;
// -- readers, checks, attachments and registry --
pub mod analyze;
pub mod archive;
pub mod batch;
pub mod compat;
pub mod config;
pub mod error;
pub mod registry;
pub mod report;
pub mod sbom;
pub mod sign;
pub mod slsa;

//! armorred: build hardened FROM-scratch OCI images with Nix.
//!
//! The pipeline, one module per typed stage:
//!
//! ```text
//! recipe (TOML → Recipe) → plan (Recipe + Tier → BuildPlan, pure)
//!   → nix (BuildPlan → built store paths + Closure)
//!   → layers (Closure → LayerPlan, pure) → oci (LayerPlan → blobs, manifest, config, layout)
//!   → inspect / analyze / lint / sbom / sign / push (each reads an image)
//! ```

pub mod analysis;
pub mod attach;
pub mod cache;
pub mod cli;
pub mod closure;
pub mod commands;
pub mod gate;
pub mod inspect;
pub mod layers;
pub mod lint;
pub mod nix;
pub mod oci;
pub mod parallel;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod process;
pub mod progress;
pub mod provenance;
pub mod recipe;
pub mod rootfs;
pub mod store_path;
pub mod tier;
pub mod upstream_tests;
// -- readers, checks, attachments and registry --
pub mod analyze;
pub mod archive;
pub mod compat;
pub mod config;
pub mod registry;
pub mod report;
pub mod sbom;
pub mod sign;
pub mod slsa;

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

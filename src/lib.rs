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

pub mod closure;
pub mod nix;
pub mod plan;
pub mod process;
pub mod recipe;
pub mod store_path;
pub mod tier;
// -- helper modules (each added by its owner) --

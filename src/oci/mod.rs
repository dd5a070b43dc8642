//! Stage 5: [`crate::layers::LayerPlan`] → blobs, config, manifest and an OCI
//! image layout on disk, written in Rust (no tar or image tool is run).
//!
//! Everything written is hashed while it is written, lands through a temp
//! file, fsync and rename, and `index.json` is replaced last, so an
//! interrupted build never leaves a half-written image where a good one was.

pub mod attachments;
pub mod blob;
pub mod decode;
pub mod digest;
pub mod facts;
pub mod image;
pub mod index;
pub mod layout;
pub mod media_types;
pub mod rootfs_view;
pub mod secrets;
pub mod tarball;

pub use digest::Digest;
pub use media_types::*;

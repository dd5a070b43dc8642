//! Stage 5: [`crate::layers::LayerPlan`] → blobs, config, manifest and an OCI
//! image layout on disk, written in Rust (no tar or image tool is run).
//!
//! Everything written is hashed while it is written, lands through a temp
//! file, fsync and rename, and `index.json` is replaced last, so an
//! interrupted build never leaves a half-written image where a good one was.

pub mod attachments;
pub mod blob;
pub mod digest;
pub mod image;
pub mod index;
pub mod layout;
pub mod media_types;
pub mod rootfs_view;
pub mod tarball;

pub use digest::Digest;
pub use media_types::*;


/// Serializes to canonical JSON: serde_json's map is ordered by key (the
/// `preserve_order` feature is off), and no whitespace is added, so equal
/// values give equal bytes and equal digests.
pub fn canonical_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let value = serde_json::to_value(v).expect("OCI types always serialize");
    serde_json::to_vec(&value).expect("a JSON value always serializes")
}

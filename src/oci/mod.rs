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
pub mod rootfs_view;
pub mod secrets;
pub mod tarball;

pub use digest::Digest;

pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Serializes to canonical JSON: serde_json's map is ordered by key (the
/// `preserve_order` feature is off), and no whitespace is added, so equal
/// values give equal bytes and equal digests.
pub fn canonical_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let value = serde_json::to_value(v).expect("OCI types always serialize");
    serde_json::to_vec(&value).expect("a JSON value always serializes")
}

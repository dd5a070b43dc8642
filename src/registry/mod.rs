//! Pushing images and their attachments to an OCI registry, and signing and
//! reading signatures there, over the OCI distribution API.
//!
//! Contract:
//! - [`push_layout`] sends one image of a layout: blobs the registry lacks
//!   (HEAD first; one PUT up to [`RegistryOptions::chunk_size`], chunked PATCH
//!   uploads above it), then the manifest by tag and by digest, then every
//!   attachment of that manifest in the layout ([`crate::oci::attachments`]):
//!   - the cosign signature manifest (`sha256-<hex>.sig`) is *merged* with
//!     the one in the registry: remote signatures are kept, ours appended;
//!   - artifacts whose `subject` is the image (SBOMs) are pushed by digest.
//!     A registry without the OCI 1.1 referrers API gets the spec's fallback:
//!     the image index at the tag `sha256-<hex>` (the "referrers tag
//!     schema"), which oras, regclient and go-containerregistry's
//!     `remote.Referrers` (so `cosign tree`) read. Entries are only added to
//!     it, never removed. An artifact the layout itself names with a cosign
//!     attachment tag (`sha256-<hex>.sbom`, `.att`) is also pushed under that
//!     tag; an existing remote manifest at such a tag is never replaced.
//! - [`sign_remote`] signs the digest of the exact manifest bytes the
//!   registry serves and appends the signature to the `.sig` manifest.
//! - [`signatures_remote`] reads them back for [`crate::sign::verify_image`].
//! - Retries: connection errors, 5xx and 429 are retried with exponential
//!   back-off ([`RegistryOptions::retries`] times); other 4xx are not.
//!   Socket reads and writes time out, so nothing hangs.
//! - Credentials: see [`auth`](self) — `REGISTRY_AUTH_FILE` or Docker's
//!   `config.json`; Basic and Bearer (token) challenges are answered.
//!
//! Read-modify-write of the `.sig` manifest and the referrers index is not
//! atomic: the distribution API has no conditional PUT, so two writers racing
//! on one image can lose an append (cosign has the same limit).
//!
//! Library code: nothing is printed; progress goes to `tracing`.

mod auth;
mod client;
mod error;
mod push;
mod reference;
mod signatures;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

pub use client::Client;
pub use error::RegistryError;
pub use reference::{ImageRef, DEFAULT_REGISTRY};

use crate::oci::layout::{Layout, MAX_JSON_BLOB};
use crate::oci::Digest;
use crate::sign::keys::SigningKey;
use crate::sign::SignatureLayer;

/// Blobs above this size are sent in chunks of this size by default.
pub const DEFAULT_CHUNK_SIZE: usize = 16 << 20;
/// Retries after the first attempt, by default.
pub const DEFAULT_RETRIES: u32 = 4;

/// How to talk to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Plain HTTP instead of HTTPS (for loopback registries).
    pub insecure: bool,
    /// The auth file; else `$REGISTRY_AUTH_FILE`, else
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub auth_file: Option<PathBuf>,
    /// Blobs larger than this go up in chunked PATCH requests of this size;
    /// smaller ones in one PUT. Also bounds the memory an upload uses.
    /// 0 means [`DEFAULT_CHUNK_SIZE`].
    pub chunk_size: usize,
    /// How many times a transient failure is retried.
    pub retries: u32,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: false,
            auth_file: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            retries: DEFAULT_RETRIES,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushReport {
    /// Where the image is now: `registry/repository[:tag]@digest`.
    pub reference: String,
    pub manifest_digest: Digest,
    pub blobs_uploaded: usize,
    /// Blobs the registry already had (not sent again).
    pub blobs_skipped: usize,
    pub bytes_uploaded: u64,
    /// One line per attachment pushed or found already present.
    pub attachments: Vec<String>,
}

/// Pushes the image `image_ref_name` of `layout` (its `ref.name` or manifest
/// digest; `None` for the only image) and its attachments to `target`. A
/// multi-platform image index goes up whole: each child by digest with its
/// own signatures and SBOMs, then the index.
///
/// The tag is `target`'s, else the image's `ref.name` when that is a valid
/// tag, else the image is pushed by digest only. A `target` digest must be
/// the image's.
pub fn push_layout(
    layout: &Layout,
    image_ref_name: Option<&str>,
    target: &ImageRef,
    opts: &RegistryOptions,
) -> Result<PushReport, RegistryError> {
    push_layout_reporting(layout, image_ref_name, target, opts, &())
}

/// Told about each blob a push handles, for a progress display.
pub trait PushProgress: Sync {
    /// `uploaded` is false when the registry already had the blob.
    fn blob(&self, size: u64, uploaded: bool);
}

impl PushProgress for () {
    fn blob(&self, _size: u64, _uploaded: bool) {}
}

/// [`push_layout`], telling `progress` about each blob.
pub fn push_layout_reporting(
    layout: &Layout,
    image_ref_name: Option<&str>,
    target: &ImageRef,
    opts: &RegistryOptions,
    progress: &dyn PushProgress,
) -> Result<PushReport, RegistryError> {
    let plan = push::plan(layout, image_ref_name, target)?;
    let client = Client::new(target, opts)?;
    push::execute(&client, layout, &plan, target, progress)
}

/// The manifest `target` names: its exact bytes, media type and digest.
/// A digest in `target` is checked against the bytes.
pub fn fetch_manifest(
    target: &ImageRef,
    opts: &RegistryOptions,
) -> Result<(Vec<u8>, String, Digest), RegistryError> {
    let client = Client::new(target, opts)?;
    signatures::fetch_manifest(&client, target)
}

/// A small blob (at most [`MAX_JSON_BLOB`] bytes: configs, manifests,
/// signature payloads, SBOMs), verified against `digest`.
pub fn fetch_blob(
    target: &ImageRef,
    digest: &Digest,
    opts: &RegistryOptions,
) -> Result<Vec<u8>, RegistryError> {
    Client::new(target, opts)?.get_blob(digest, MAX_JSON_BLOB)
}

/// Signs the manifest `target` names, as the registry serves it, with `key`,
/// and appends the signature to its `sha256-<hex>.sig` manifest. `optional`
/// becomes the payload's `optional` claims (cosign's `-a key=value`).
/// Returns the digest of the signed manifest. Signing twice with the same
/// key and claims adds nothing: the payload and RFC 6979 signature repeat.
pub fn sign_remote(
    target: &ImageRef,
    key: &SigningKey,
    opts: &RegistryOptions,
    optional: &BTreeMap<String, serde_json::Value>,
) -> Result<Digest, RegistryError> {
    let client = Client::new(target, opts)?;
    signatures::sign(&client, target, key, optional)
}

/// The digest of the manifest `target` names and every cosign signature
/// stored for it (empty when there is no `.sig` manifest), for
/// [`crate::sign::verify_image`].
pub fn signatures_remote(
    target: &ImageRef,
    opts: &RegistryOptions,
) -> Result<(Digest, Vec<SignatureLayer>), RegistryError> {
    let client = Client::new(target, opts)?;
    signatures::read(&client, target)
}

/// The image's digest and the attestations of its `.att` manifest (none
/// when there is no such tag).
pub fn attestations_remote(
    target: &ImageRef,
    opts: &RegistryOptions,
) -> Result<(Digest, Vec<crate::sign::AttestationLayer>), RegistryError> {
    let client = Client::new(target, opts)?;
    signatures::read_attestations(&client, target)
}

//! Every media type and annotation key armorred writes or reads, in one
//! place, so a reader and a writer can never disagree on a string.

// OCI image spec.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// The empty descriptor of artifact manifests (image-spec 1.1).
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";

// Docker's schema 2, which registries and `docker save` still produce and
// readers therefore accept.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MEDIA_TYPE_DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
pub const MEDIA_TYPE_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

// Attachments: SBOMs, VEX, cosign signatures and in-toto attestations.
pub const MEDIA_TYPE_SPDX: &str = "application/spdx+json";
pub const MEDIA_TYPE_CYCLONEDX: &str = "application/vnd.cyclonedx+json";
pub const MEDIA_TYPE_OPENVEX: &str = "application/vnd.openvex+json";
pub const MEDIA_TYPE_COSIGN_SIMPLE_SIGNING: &str =
    "application/vnd.dev.cosign.simplesigning.v1+json";
pub const MEDIA_TYPE_DSSE: &str = "application/vnd.dsse.envelope.v1+json";
/// DSSE `payloadType` of an in-toto statement.
pub const PAYLOAD_TYPE_IN_TOTO: &str = "application/vnd.in-toto+json";
pub const ARTIFACT_TYPE_ATTACHMENTS: &str = "application/vnd.armorred.attachments.v1+json";

// Annotations.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The recipe's health check, which OCI image config cannot carry.
pub const ANNOTATION_HEALTHCHECK: &str = "org.armorred.healthcheck";

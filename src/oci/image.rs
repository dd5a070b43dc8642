//! Writes one image (layers, config, manifest) into a layout and makes it the
//! layout's image by replacing `index.json`.

use crate::oci::media_types::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use oci_spec::image::{
    Arch, ConfigBuilder, HistoryBuilder, ImageConfigurationBuilder, Os, RootFsBuilder,
};

use super::blob::BlobStore;
use super::facts::{write_layer_with_facts, LayerFacts};
use super::layout::{Descriptor, Layout, LayoutError, Manifest, Platform};
use super::tarball::{Compression, LayerBlob, LayerContent, LayerError, RootfsEntry};
use super::{ANNOTATION_REF_NAME, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST};
use crate::layers::{LayerPlan, LayerSpec};
use crate::plan::BuildPlan;

/// The default `PATH` when a recipe sets none: the usual FHS directories,
/// where armorred puts the entrypoint, shell and coreutils links.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("building the image config: {0}")]
    Config(String),
    #[error("writing blob: {0}")]
    Io(#[from] std::io::Error),
}

/// Whether a layer (or what was derived from it) was made by this build or
/// taken from the cache; `build --json` counts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    Built,
    Cached,
}

/// A layer as a [`LayerSource`] hands it over.
#[derive(Debug, Clone)]
pub struct ProducedLayer {
    pub blob: LayerBlob,
    pub provenance: Provenance,
    /// What the gate and lint need from the layer, when it came for free
    /// (derived while the layer was written); else a
    /// [`crate::oci::facts::FactsSource`] gets it.
    pub facts: Option<LayerFacts>,
}

/// Produces layer blobs; the layer cache implements this to skip work.
pub trait LayerSource: Sync {
    fn layer(
        &self,
        store: &BlobStore,
        content: &LayerContent<'_>,
        compression: Compression,
        mtime: u64,
    ) -> Result<ProducedLayer, LayerError>;
}

/// Writes every layer from scratch.
pub struct DirectLayers;

impl LayerSource for DirectLayers {
    fn layer(
        &self,
        store: &BlobStore,
        content: &LayerContent<'_>,
        compression: Compression,
        mtime: u64,
    ) -> Result<ProducedLayer, LayerError> {
        let (blob, facts) = write_layer_with_facts(store, content, compression, mtime)?;
        Ok(ProducedLayer {
            blob,
            provenance: Provenance::Built,
            facts,
        })
    }
}

/// Progress callbacks for layer writing (a progress bar or log lines).
pub trait LayerProgress: Sync {
    fn layer_done(&self, _index: usize, _total: usize, _blob: &LayerBlob) {}
}

impl LayerProgress for () {}

pub struct ImageInputs<'a> {
    pub plan: &'a BuildPlan,
    pub layer_plan: &'a LayerPlan,
    pub rootfs: &'a [RootfsEntry],
    pub compression: Compression,
    /// Labels known only after the build (e.g. the package's store path).
    pub extra_labels: BTreeMap<String, String>,
    /// Parallel layer writers; 0 means one per core.
    pub jobs: usize,
    /// The OCI platform of the image (config `architecture`/`os`/`variant`).
    pub platform: Platform,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WrittenImage {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<LayerBlob>,
    pub ref_name: String,
}

/// The `org.opencontainers.image.ref.name` of a tier's image: `<version>-<tier>`.
pub fn ref_name(plan: &BuildPlan) -> String {
    format!("{}-{}", plan.version, plan.tier)
}

/// Writes layers (in parallel), config and manifest as blobs. Does not touch
/// `index.json`; [`commit`] does that.
pub fn write_image(
    layout: &Layout,
    inputs: &ImageInputs<'_>,
    source: &dyn LayerSource,
    progress: &dyn LayerProgress,
) -> Result<WrittenImage, ImageError> {
    let layers = write_image_layers(layout, inputs, source, progress)?;
    finish_image(layout, inputs, layers.into_iter().map(|l| l.blob).collect())
}

/// Writes only the layer blobs, so they can be analyzed before the config
/// (whose labels record what the analysis verified) is written.
pub fn write_image_layers(
    layout: &Layout,
    inputs: &ImageInputs<'_>,
    source: &dyn LayerSource,
    progress: &dyn LayerProgress,
) -> Result<Vec<ProducedLayer>, ImageError> {
    let mtime = inputs.plan.source_date_epoch.max(0) as u64;
    write_layers(layout.blobs(), inputs, source, progress, mtime)
}

/// Layer descriptors as they will appear in the manifest.
pub fn layer_descriptors(layers: &[LayerBlob]) -> Vec<Descriptor> {
    layers
        .iter()
        .map(|l| Descriptor::new(l.media_type.clone(), l.digest.clone(), l.size))
        .collect()
}

/// Writes config and manifest for already written layers.
pub fn finish_image(
    layout: &Layout,
    inputs: &ImageInputs<'_>,
    layers: Vec<LayerBlob>,
) -> Result<WrittenImage, ImageError> {
    let plan = inputs.plan;
    let config = config_json(plan, inputs, &layers)?;
    let config_blob = layout.blobs().put(&config)?;
    let config_desc = Descriptor::new(MEDIA_TYPE_CONFIG, config_blob.digest, config_blob.size);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.into()),
        artifact_type: None,
        config: config_desc.clone(),
        layers: layer_descriptors(&layers),
        subject: None,
        annotations: manifest_annotations(plan),
    };
    let manifest_bytes = crate::base::json::canonical(&manifest);
    let m = layout.blobs().put(&manifest_bytes)?;
    layout.blobs().sync_dir()?;
    let ref_name = ref_name(plan);
    Ok(WrittenImage {
        manifest: Descriptor::new(MEDIA_TYPE_MANIFEST, m.digest, m.size)
            .with_annotations(BTreeMap::from([(
                ANNOTATION_REF_NAME.to_string(),
                ref_name.clone(),
            )]))
            .with_platform(inputs.platform.clone()),
        config: config_desc,
        layers,
        ref_name,
    })
}

fn write_layers(
    store: &BlobStore,
    inputs: &ImageInputs<'_>,
    source: &dyn LayerSource,
    progress: &dyn LayerProgress,
    mtime: u64,
) -> Result<Vec<ProducedLayer>, ImageError> {
    let specs = &inputs.layer_plan.layers;
    let total = specs.len();
    let done = AtomicUsize::new(0);
    let written = crate::parallel::try_map(specs, inputs.jobs, |spec| {
        let content = match spec {
            LayerSpec::StorePaths { paths } => LayerContent::StorePaths(paths),
            LayerSpec::Rootfs => LayerContent::Rootfs(inputs.rootfs),
        };
        let r = source.layer(store, &content, inputs.compression, mtime);
        if let Ok(l) = &r {
            progress.layer_done(done.fetch_add(1, Ordering::SeqCst) + 1, total, &l.blob);
        }
        r
    })?;
    Ok(written)
}

fn manifest_annotations(plan: &BuildPlan) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([
        (
            "org.opencontainers.image.created".to_string(),
            crate::base::time::rfc3339_utc(plan.source_date_epoch),
        ),
        (
            "org.opencontainers.image.base.name".to_string(),
            "scratch".to_string(),
        ),
    ]);
    // The OCI config has no healthcheck field; Docker-format outputs carry
    // it as `Healthcheck`, OCI layouts as this annotation.
    if let Some(h) = &plan.runtime.healthcheck {
        a.insert(
            ANNOTATION_HEALTHCHECK.to_string(),
            String::from_utf8(crate::base::json::canonical(h)).expect("JSON is UTF-8"),
        );
    }
    a
}

fn config_json(
    plan: &BuildPlan,
    inputs: &ImageInputs<'_>,
    layers: &[LayerBlob],
) -> Result<Vec<u8>, ImageError> {
    let rt = &plan.runtime;
    let mut env: Vec<String> = Vec::new();
    if !rt.env.contains_key("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env.extend(rt.env.iter().map(|(k, v)| format!("{k}={v}")));
    let mut labels: HashMap<String, String> = plan.labels.clone().into_iter().collect();
    labels.extend(inputs.extra_labels.clone());
    let err = |e: oci_spec::OciSpecError| ImageError::Config(e.to_string());

    let mut cfg = ConfigBuilder::default()
        .user(rt.user.clone())
        .env(env)
        .entrypoint(rt.entrypoint.clone())
        .labels(labels);
    if !rt.cmd.is_empty() {
        cfg = cfg.cmd(rt.cmd.clone());
    }
    if !rt.ports.is_empty() {
        cfg = cfg.exposed_ports(rt.ports.clone());
    }
    if let Some(w) = &rt.workdir {
        cfg = cfg.working_dir(w.clone());
    }
    if let Some(s) = &rt.stop_signal {
        cfg = cfg.stop_signal(s.clone());
    }
    let created = crate::base::time::rfc3339_utc(plan.source_date_epoch);
    let history = inputs
        .layer_plan
        .layers
        .iter()
        .map(|l| {
            let what = match l {
                LayerSpec::StorePaths { paths } => {
                    paths.iter().map(|p| p.name()).collect::<Vec<_>>().join(" ")
                }
                LayerSpec::Rootfs => "rootfs extras (passwd, group, writable dirs, links)".into(),
            };
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(format!("armorred: {what}"))
                .comment("armorred")
                .build()
                .map_err(err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(Arch::from(inputs.platform.architecture.as_str()))
        .os(Os::from(inputs.platform.os.as_str()));
    if let Some(v) = &inputs.platform.variant {
        config = config.variant(v.clone());
    }
    let config = config
        .config(cfg.build().map_err(err)?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(
                    layers
                        .iter()
                        .map(|l| l.diff_id.to_string())
                        .collect::<Vec<_>>(),
                )
                .build()
                .map_err(err)?,
        )
        .history(history)
        .build()
        .map_err(err)?;
    Ok(crate::base::json::canonical(&config))
}

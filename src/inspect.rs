//! `armorred inspect`: what an image layout holds, read (and verified) from
//! the layout alone; components (with the Debian security fixes applied to
//! each) from the attached CycloneDX SBOM.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::oci::layout::{Layout, LayoutError};
use crate::oci::ANNOTATION_REF_NAME;
use crate::sbom::ComponentSummary;

#[derive(Debug, Serialize)]
pub struct InspectReport {
    pub layout: String,
    pub reference: Option<String>,
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub config_digest: String,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub created: Option<String>,
    pub user: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub exposed_ports: Vec<String>,
    pub working_dir: Option<String>,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub layers: Vec<LayerInfo>,
    pub compressed_size: u64,
    /// Signatures, SBOMs and other attachments of the layout's image.
    pub attachments: Vec<Attachment>,
    /// From the attached CycloneDX SBOM; empty when there is none.
    pub components: Vec<ComponentSummary>,
    /// A multi-platform image: the index index.json names. The fields above
    /// describe one child (this machine's platform, or the one `--ref` names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexInfo>,
}

#[derive(Debug, Serialize)]
pub struct IndexInfo {
    pub digest: String,
    pub media_type: String,
    pub children: Vec<IndexChild>,
}

#[derive(Debug, Serialize)]
pub struct IndexChild {
    /// `os/architecture[/variant]`.
    pub platform: Option<String>,
    pub digest: String,
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct LayerInfo {
    pub digest: String,
    pub diff_id: Option<String>,
    pub media_type: String,
    pub size: u64,
    pub created_by: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Attachment {
    pub reference: Option<String>,
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
}

fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn string(v: Option<&serde_json::Value>) -> Option<String> {
    v.and_then(|v| v.as_str()).map(str::to_string)
}

pub fn inspect(dir: &Path, reference: Option<&str>) -> Result<InspectReport, LayoutError> {
    let layout = Layout::open(dir)?;
    let img = layout.load_image(reference)?;
    let c = &img.config;
    let cfg = c.get("config");
    let at = |k: &str| cfg.and_then(|x| x.get(k));
    let diff_ids = strings(c.pointer("/rootfs/diff_ids"));
    let history: Vec<serde_json::Value> = strings_values(c.get("history"));
    let created_by: Vec<Option<String>> = history
        .iter()
        .filter(|h| {
            !h.get("empty_layer")
                .and_then(|e| e.as_bool())
                .unwrap_or(false)
        })
        .map(|h| string(h.get("created_by")))
        .collect();
    let layers = img
        .manifest
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| LayerInfo {
            digest: l.digest.to_string(),
            diff_id: diff_ids.get(i).cloned(),
            media_type: l.media_type.clone(),
            size: l.size,
            created_by: created_by.get(i).cloned().flatten(),
        })
        .collect::<Vec<_>>();
    let mut ports: Vec<String> = at("ExposedPorts")
        .and_then(|p| p.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    ports.sort();
    let attachments = layout
        .attachments()?
        .into_iter()
        .map(|d| Attachment {
            reference: d.annotations.get(ANNOTATION_REF_NAME).cloned(),
            digest: d.digest.to_string(),
            media_type: d.media_type,
            artifact_type: d.artifact_type,
        })
        .collect();
    Ok(InspectReport {
        layout: dir.display().to_string(),
        reference: img.ref_name().map(str::to_string),
        manifest_digest: img.descriptor.digest.to_string(),
        manifest_size: img.descriptor.size,
        config_digest: img.manifest.config.digest.to_string(),
        architecture: string(c.get("architecture")),
        os: string(c.get("os")),
        created: string(c.get("created")),
        user: string(at("User")),
        entrypoint: strings(at("Entrypoint")),
        cmd: strings(at("Cmd")),
        env: strings(at("Env")),
        exposed_ports: ports,
        working_dir: string(at("WorkingDir")),
        stop_signal: string(at("StopSignal")),
        labels: img.labels(),
        compressed_size: layers.iter().map(|l| l.size).sum::<u64>() + img.manifest.config.size,
        layers,
        attachments,
        components: attached_components(dir, reference),
        index: img.index.as_ref().map(|i| IndexInfo {
            digest: i.descriptor.digest.to_string(),
            media_type: i.descriptor.media_type.clone(),
            children: i
                .index
                .manifests
                .iter()
                .map(|c| IndexChild {
                    platform: c.platform.as_ref().map(crate::platform::display),
                    digest: c.digest.to_string(),
                    size: c.size,
                })
                .collect(),
        }),
    })
}

/// The components of the attached CycloneDX SBOM, sorted; none without one.
fn attached_components(dir: &Path, reference: Option<&str>) -> Vec<ComponentSummary> {
    let bytes = match crate::attach::read_sbom(dir, reference, crate::attach::SbomFormat::Cyclonedx)
    {
        Ok(b) => b,
        Err(_) => return Vec::new(),
    };
    let mut list = serde_json::from_slice(&bytes)
        .ok()
        .and_then(|v| crate::sbom::cyclonedx_components(&v))
        .unwrap_or_default();
    list.sort();
    list
}

fn strings_values(v: Option<&serde_json::Value>) -> Vec<serde_json::Value> {
    v.and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

/// Human-readable rendering for the terminal.
pub fn render(r: &InspectReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "layout:      {}", r.layout);
    if let Some(x) = &r.reference {
        let _ = writeln!(s, "reference:   {x}");
    }
    if let Some(i) = &r.index {
        let _ = writeln!(
            s,
            "index:       {} ({} platform(s))",
            i.digest,
            i.children.len()
        );
        for c in &i.children {
            let _ = writeln!(
                s,
                "  {:<14} {}",
                c.platform.as_deref().unwrap_or("?"),
                c.digest
            );
        }
    }
    let _ = writeln!(
        s,
        "manifest:    {} ({} bytes)",
        r.manifest_digest, r.manifest_size
    );
    let _ = writeln!(s, "config:      {}", r.config_digest);
    let _ = writeln!(
        s,
        "platform:    {}/{}",
        r.os.as_deref().unwrap_or("?"),
        r.architecture.as_deref().unwrap_or("?")
    );
    let _ = writeln!(s, "created:     {}", r.created.as_deref().unwrap_or("-"));
    let _ = writeln!(s, "user:        {}", r.user.as_deref().unwrap_or("(root)"));
    let _ = writeln!(s, "entrypoint:  {:?}", r.entrypoint);
    let _ = writeln!(s, "cmd:         {:?}", r.cmd);
    let _ = writeln!(s, "ports:       {}", r.exposed_ports.join(", "));
    if let Some(sig) = &r.stop_signal {
        let _ = writeln!(s, "stop signal: {sig}");
    }
    let _ = writeln!(s, "env:");
    for e in &r.env {
        let _ = writeln!(s, "  {e}");
    }
    let _ = writeln!(s, "labels:");
    for (k, v) in &r.labels {
        let _ = writeln!(s, "  {k}={v}");
    }
    let _ = writeln!(
        s,
        "layers ({}, {} bytes compressed):",
        r.layers.len(),
        r.compressed_size
    );
    for l in &r.layers {
        let _ = writeln!(
            s,
            "  {} {:>10}  {}",
            &l.digest[..19],
            l.size,
            l.created_by.as_deref().unwrap_or("")
        );
    }
    if !r.components.is_empty() {
        let _ = writeln!(
            s,
            "components ({}, from the CycloneDX SBOM):",
            r.components.len()
        );
        for c in &r.components {
            let _ = writeln!(s, "  {}", c.display());
        }
    }
    if !r.attachments.is_empty() {
        let _ = writeln!(s, "attachments:");
        for a in &r.attachments {
            let _ = writeln!(
                s,
                "  {} {} {}",
                a.reference.as_deref().unwrap_or("-"),
                a.artifact_type.as_deref().unwrap_or(&a.media_type),
                a.digest
            );
        }
    }
    s
}

//! `armorred analyze`: the hardening of every ELF file in an image and the
//! image-level facts (size, components, shell, SUID, world-writable files,
//! user, labels), read from the layout alone. The analysis itself is
//! [`crate::analyze`]; this module feeds it an image and renders the result.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::analyze::{analyze_image, ImageAnalysis, ImageInput, Relro};
use crate::oci::layout::Layout;
use crate::oci::rootfs_view::read_rootfs;
use crate::oci::secrets::SecretHit;

pub fn analyze_layout(dir: &Path, reference: Option<&str>) -> Result<ImageAnalysis> {
    read_layout(dir, reference).map(|(analysis, _)| analysis)
}

/// The analysis and the secret-pattern hits of a layout's image, from one
/// read of its layers.
pub fn read_layout(dir: &Path, reference: Option<&str>) -> Result<(ImageAnalysis, Vec<SecretHit>)> {
    let layout = Layout::open(dir)?;
    let img = layout.load_image(reference)?;
    let diff_ids: Vec<String> = img
        .config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if diff_ids.len() != img.manifest.layers.len() {
        anyhow::bail!(
            "{}: the config lists {} diff_ids for {} layers",
            dir.display(),
            diff_ids.len(),
            img.manifest.layers.len()
        );
    }
    let view = read_rootfs(layout.blobs(), &img.manifest.layers, Some(&diff_ids))
        .with_context(|| format!("reading the layers of {}", dir.display()))?;
    let labels = img.labels();
    let writable = labels
        .get("org.armorred.writable")
        .map(|w| w.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let user = img
        .config
        .pointer("/config/User")
        .and_then(|u| u.as_str())
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    let analysis = analyze_image(&ImageInput {
        files: &view.files,
        elfs: &view.elfs,
        user,
        labels,
        compressed_size: img.manifest.layers.iter().map(|l| l.size).sum::<u64>()
            + img.manifest.config.size,
        uncompressed_size: view.uncompressed_size,
        layer_count: img.manifest.layers.len(),
        writable,
    });
    Ok((analysis, view.secrets))
}

fn yn(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A checksec-like table plus the image-level facts.
pub fn render(a: &ImageAnalysis) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "size: {} bytes compressed, {} uncompressed; {} layers; {} components",
        a.compressed_size, a.uncompressed_size, a.layer_count, a.component_count
    );
    let _ = writeln!(
        s,
        "user: {}{}",
        a.user.as_deref().unwrap_or("(root)"),
        if a.runs_as_root { " (root!)" } else { "" }
    );
    let _ = writeln!(
        s,
        "shell: {}  coreutils: {}",
        yn(a.shell.present),
        yn(a.coreutils.present)
    );
    let _ = writeln!(
        s,
        "suid/sgid files: {}  world-writable outside writable paths: {}",
        a.suid_sgid.len(),
        a.world_writable.len()
    );
    for f in a.suid_sgid.iter().chain(&a.world_writable) {
        let _ = writeln!(s, "  {} {}", f.mode, f.path);
    }
    let _ = writeln!(
        s,
        "\n{:<7} {:<6} {:<3} {:<4} {:<11} {:<3} {:<9} {:<7} {:<8} PATH",
        "RELRO", "CANARY", "NX", "PIE", "FORTIFY", "CFI", "SAFESTACK", "CET", "RUNPATH"
    );
    for b in &a.binaries {
        let relro = match b.relro {
            Relro::Full => "full",
            Relro::Partial => "partial",
            Relro::None => "none",
        };
        let cet = match (b.cet.ibt, b.cet.shstk) {
            (true, true) => "ibt+shs",
            (true, false) => "ibt",
            (false, true) => "shstk",
            (false, false) => "no",
        };
        let _ = writeln!(
            s,
            "{:<7} {:<6} {:<3} {:<4} {:<11} {:<3} {:<9} {:<7} {:<8} {}",
            relro,
            yn(b.canary),
            yn(b.nx),
            if b.elf_type == crate::analyze::ElfType::SharedLibrary {
                "dso"
            } else {
                yn(b.pie)
            },
            format!(
                "{}/{}",
                b.fortify.fortified_count,
                b.fortify.fortified_count + b.fortify.fortifiable_count
            ),
            yn(b.cfi.enabled),
            yn(b.safestack),
            cet,
            if b.rpath_outside_store {
                "OUTSIDE"
            } else if b.runpath.is_empty() {
                "-"
            } else {
                "store"
            },
            b.path
        );
    }
    for u in &a.unreadable_elfs {
        let _ = writeln!(s, "unreadable ELF {}: {}", u.path, u.error);
    }
    s
}

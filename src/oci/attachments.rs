//! What attaches to an image in a layout (cosign's `sha256-<hex>.sig` and
//! `.att` manifests, the SBOMs, a VEX document), and the one place that lists
//! and adds them.
//!
//! # The layout's shape
//!
//! `index.json` lists the image only: one descriptor, the image manifest (or,
//! for several platforms, the image index). Every attachment manifest stays in
//! `blobs/` and is listed in one OCI image index blob, the *attachments index*
//! (`artifactType` [`ARTIFACT_TYPE_ATTACHMENTS`]), whose digest the image's
//! entry in `index.json` carries as the annotation [`ANNOTATION_ATTACHMENTS`].
//! Why this shape, by tool:
//! - syft and grype (stereoscope's `oci-dir`, syft 1.18) refuse an `index.json`
//!   with more than one descriptor, and read that one as an image manifest;
//! - skopeo, umoci, podman and oras (`--oci-layout`, `--from-oci-layout`) pick
//!   the image by `org.opencontainers.image.ref.name` and ignore annotations
//!   they do not know, so they see exactly the image;
//! - cosign reads signatures in a layout only in its own `cosign save` shape
//!   (`index.json` entries marked `kind: dev.cosignproject.cosign/sigs`),
//!   which syft refuses and which armorred never wrote (`cosign verify
//!   --local-image` fails on either shape); `push` sends signatures under
//!   cosign's tag, where `cosign verify` finds them;
//! - fsck and gc walk from `index.json` and follow the annotation, so the
//!   layout stays one content-addressed tree: fsck checks every attachment
//!   and gc keeps them.
//!
//! A change is atomic: new blobs, then the new attachments index, then
//! `index.json` (replaced last) naming it, then gc of what is no longer named.
//! Inside the attachments index each entry says what it attaches to: cosign's
//! tag as its `ref.name`, or [`ANNOTATION_SUBJECT`] with the subject digest.
//! A tool that rewrites `index.json` without knowing the annotation (`umoci
//! gc`, `skopeo copy` into the same directory) drops the attachments; `push`
//! carries them.
//!
//! Layouts from earlier versions list the attachments beside the image in
//! `index.json`. They are still read, so users' existing outputs verify and
//! push as they did; the next write (`sign`, a rebuild) moves them into an
//! attachments index, and syft can then read the layout too.

use std::collections::BTreeSet;

use super::layout::{Descriptor, Index, Layout, LayoutError, MAX_JSON_BLOB};
use super::{Digest, ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX};

/// On an `index.json` entry: the digest of its attachments index.
pub const ANNOTATION_ATTACHMENTS: &str = "org.armorred.attachments";
/// The `artifactType` of an attachments index.
pub const ARTIFACT_TYPE_ATTACHMENTS: &str = "application/vnd.armorred.attachments.v1+json";
/// On an attachment's entry: the digest of the manifest it attaches to.
pub const ANNOTATION_SUBJECT: &str = "org.armorred.subject";

/// Entries that attach to an image rather than being one: cosign's tag
/// convention (`sha256-<hex>.sig`, `.att`, `.sbom`) or an artifact.
pub fn is_attachment(d: &Descriptor) -> bool {
    d.annotations
        .get(ANNOTATION_REF_NAME)
        .is_some_and(|r| r.starts_with("sha256-"))
        || d.artifact_type.is_some()
}

/// The manifest an attachment entry attaches to: [`ANNOTATION_SUBJECT`], else
/// the digest in cosign's tag `sha256-<hex>.<kind>`.
pub fn subject_of(d: &Descriptor) -> Option<Digest> {
    if let Some(s) = d.annotations.get(ANNOTATION_SUBJECT) {
        return Digest::parse(s).ok();
    }
    let hex = d
        .annotations
        .get(ANNOTATION_REF_NAME)?
        .strip_prefix("sha256-")?
        .split('.')
        .next()?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Whether `new` takes the place of `old`: the same cosign tag (a signature
/// manifest is rewritten whole, its earlier signatures carried inside), or
/// the same artifact type for the same subject (a rebuilt SBOM).
fn same_slot(old: &Descriptor, new: &Descriptor) -> bool {
    match (
        old.annotations.get(ANNOTATION_REF_NAME),
        new.annotations.get(ANNOTATION_REF_NAME),
    ) {
        (Some(a), Some(b)) => a == b,
        (None, None) if new.artifact_type.is_some() => {
            old.artifact_type == new.artifact_type && subject_of(old) == subject_of(new)
        }
        _ => old.digest == new.digest,
    }
}

impl Layout {
    /// The attachments index an `index.json` entry names. Its size is the
    /// file's (the annotation holds the digest only); the digest is checked
    /// when it is read.
    pub fn attachments_descriptor(
        &self,
        entry: &Descriptor,
    ) -> Result<Option<Descriptor>, LayoutError> {
        let Some(value) = entry.annotations.get(ANNOTATION_ATTACHMENTS) else {
            return Ok(None);
        };
        let digest = Digest::parse(value).map_err(|e| LayoutError::BadJson {
            path: self.index_path(),
            message: format!("annotation {ANNOTATION_ATTACHMENTS}: {e}"),
        })?;
        let size = std::fs::metadata(self.blobs().path(&digest)).map_or(0, |m| m.len());
        Ok(Some(
            Descriptor::new(MEDIA_TYPE_INDEX, digest, size)
                .with_artifact_type(ARTIFACT_TYPE_ATTACHMENTS),
        ))
    }

    /// Every attachment in the layout: those in the attachments index of
    /// each image, then those an earlier version listed in `index.json`.
    pub fn attachments(&self) -> Result<Vec<Descriptor>, LayoutError> {
        let index = self.read_index()?;
        let mut all: Vec<Descriptor> = Vec::new();
        for entry in index.manifests.iter().filter(|d| !is_attachment(d)) {
            if let Some(d) = self.attachments_descriptor(entry)? {
                all.extend(self.read_image_index(&d)?.index.manifests);
            }
        }
        for d in index.manifests.into_iter().filter(is_attachment) {
            if !all.contains(&d) {
                all.push(d);
            }
        }
        Ok(all)
    }

    /// The attachments whose subject is `subject`.
    pub fn attachments_of(&self, subject: &Digest) -> Result<Vec<Descriptor>, LayoutError> {
        Ok(self
            .attachments()?
            .into_iter()
            .filter(|d| subject_of(d).as_ref() == Some(subject))
            .collect())
    }

    /// Adds attachments whose manifests (and blobs) are already in the
    /// layout. Each one replaces the attachment in its slot (see
    /// [`same_slot`]) or is appended; nothing else is dropped. Then
    /// `index.json` names the new attachments index and gc runs.
    pub fn put_attachments(&self, new: &[Descriptor]) -> Result<(), LayoutError> {
        let images: Vec<Descriptor> = self
            .read_index()?
            .manifests
            .into_iter()
            .filter(|d| !is_attachment(d))
            .collect();
        let subjects = self.subjects(&images)?;
        let mut all = self.attachments()?;
        for d in new {
            let subject = subject_of(d);
            if !subject
                .as_ref()
                .is_some_and(|s| subjects.iter().any(|(_, owned)| owned.contains(s)))
            {
                return Err(LayoutError::NoSubject {
                    path: self.index_path(),
                    attachment: d.digest.clone(),
                    subject: subject.map_or_else(|| "none".into(), |s| s.to_string()),
                });
            }
            match all.iter().position(|old| same_slot(old, d)) {
                Some(i) => all[i] = d.clone(),
                None => all.push(d.clone()),
            }
        }
        self.write_index_with(subjects, all)
    }

    /// Makes `top` (an image manifest, or an image index already in the
    /// layout) the layout's only image, keeping the attachments of `top` and
    /// of its children; those of the image it replaces go.
    pub fn replace_image(&self, top: &Descriptor) -> Result<(), LayoutError> {
        let mut top = top.clone();
        top.annotations.remove(ANNOTATION_ATTACHMENTS);
        let attachments = self.attachments()?;
        let subjects = self.subjects(std::slice::from_ref(&top))?;
        self.write_index_with(subjects, attachments)
    }

    /// Each image entry with the digests its attachments may name: its own
    /// and, for an image index, its children's.
    fn subjects(
        &self,
        images: &[Descriptor],
    ) -> Result<Vec<(Descriptor, BTreeSet<Digest>)>, LayoutError> {
        images
            .iter()
            .map(|e| {
                let mut owned = BTreeSet::from([e.digest.clone()]);
                if e.media_type == MEDIA_TYPE_INDEX {
                    let index = self.read_image_index(e)?;
                    owned.extend(index.index.manifests.into_iter().map(|c| c.digest));
                }
                Ok((e.clone(), owned))
            })
            .collect()
    }

    /// Writes one attachments index per image entry (those of `attachments`
    /// whose subject it owns), then `index.json`, then removes what is no
    /// longer reachable. An attachment no image owns is dropped.
    fn write_index_with(
        &self,
        images: Vec<(Descriptor, BTreeSet<Digest>)>,
        attachments: Vec<Descriptor>,
    ) -> Result<(), LayoutError> {
        let io = |source| LayoutError::Io {
            path: self.blobs().dir().to_path_buf(),
            source,
        };
        let mut index = self.read_index()?;
        index.manifests.clear();
        for (mut entry, owned) in images {
            entry.annotations.remove(ANNOTATION_ATTACHMENTS);
            let mine: Vec<Descriptor> = attachments
                .iter()
                .filter(|d| subject_of(d).is_some_and(|s| owned.contains(&s)))
                .cloned()
                .collect();
            if !mine.is_empty() {
                let list = Index {
                    artifact_type: Some(ARTIFACT_TYPE_ATTACHMENTS.into()),
                    manifests: mine,
                    ..Index::default()
                };
                let bytes = crate::base::json::canonical(&list);
                if bytes.len() as u64 > MAX_JSON_BLOB {
                    return Err(LayoutError::TooLarge {
                        path: self.index_path(),
                        size: bytes.len() as u64,
                        limit: MAX_JSON_BLOB,
                    });
                }
                let b = self.blobs().put(&bytes).map_err(io)?;
                entry
                    .annotations
                    .insert(ANNOTATION_ATTACHMENTS.into(), b.digest.to_string());
            }
            index.manifests.push(entry);
        }
        self.blobs().sync_dir().map_err(io)?;
        self.write_index(&index)?;
        let removed = self.gc()?;
        tracing::debug!("removed {removed} unreferenced blob(s)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::layout::tests::{descriptor, layerless};
    use crate::oci::layout::Manifest;
    use crate::oci::MEDIA_TYPE_MANIFEST;
    use std::collections::BTreeMap;

    /// A layerless manifest told apart by `seed`, stored; its descriptor.
    fn manifest(layout: &Layout, seed: &str) -> Descriptor {
        let config = layout.blobs().put(b"{}").unwrap();
        let m = Manifest {
            annotations: BTreeMap::from([("seed".to_string(), seed.to_string())]),
            ..layerless(&config.digest, config.size)
        };
        let b = layout
            .blobs()
            .put(&crate::base::json::canonical(&m))
            .unwrap();
        descriptor(MEDIA_TYPE_MANIFEST, b.digest, b.size)
    }

    fn sbom_entry(d: Descriptor, subject: &Digest, artifact_type: &str) -> Descriptor {
        Descriptor {
            artifact_type: Some(artifact_type.into()),
            annotations: BTreeMap::from([(ANNOTATION_SUBJECT.into(), subject.to_string())]),
            ..d
        }
    }

    fn sig_entry(d: Descriptor, subject: &Digest) -> Descriptor {
        Descriptor {
            annotations: BTreeMap::from([(
                ANNOTATION_REF_NAME.into(),
                format!("sha256-{}.sig", subject.hex()),
            )]),
            ..d
        }
    }

    #[test]
    fn index_json_names_only_the_image_and_attachments_replace_by_slot() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let image = Descriptor {
            annotations: BTreeMap::from([(ANNOTATION_REF_NAME.into(), "1-x".into())]),
            ..manifest(&layout, "image")
        };
        layout.replace_image(&image).unwrap();
        let sbom1 = sbom_entry(manifest(&layout, "s1"), &image.digest, "a/spdx");
        let sig1 = sig_entry(manifest(&layout, "sig1"), &image.digest);
        layout.put_attachments(&[sbom1.clone(), sig1]).unwrap();
        let sbom2 = sbom_entry(manifest(&layout, "s2"), &image.digest, "a/spdx");
        let sig2 = sig_entry(manifest(&layout, "sig2"), &image.digest);
        let vex = sbom_entry(manifest(&layout, "vex"), &image.digest, "a/vex");
        layout
            .put_attachments(&[sbom2.clone(), sig2.clone(), vex.clone()])
            .unwrap();

        let index = layout.read_index().unwrap();
        assert_eq!(index.manifests.len(), 1, "{index:?}");
        assert_eq!(index.manifests[0].digest, image.digest);
        assert_eq!(
            index.manifests[0].annotations.get(ANNOTATION_REF_NAME),
            Some(&"1-x".to_string())
        );
        assert_eq!(
            layout.attachments_of(&image.digest).unwrap(),
            vec![sbom2.clone(), sig2.clone(), vex.clone()]
        );
        // The replaced SBOM's manifest is gone; the layout is whole.
        assert!(!layout.blobs().path(&sbom1.digest).exists());
        let report = layout.fsck().unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.unreferenced, 0, "{report:?}");

        // A rebuilt image keeps its own attachments only.
        let other = manifest(&layout, "other");
        layout.replace_image(&other).unwrap();
        assert!(layout.attachments().unwrap().is_empty());
        assert!(!layout.blobs().path(&vex.digest).exists());
        // The image's manifest went with it; put it back.
        assert_eq!(manifest(&layout, "image").digest, image.digest);
        layout.replace_image(&image).unwrap();
        let stray = sbom_entry(manifest(&layout, "x"), &other.digest, "a/spdx");
        let e = layout.put_attachments(&[stray]).unwrap_err();
        assert!(matches!(e, LayoutError::NoSubject { .. }), "{e}");
    }

    #[test]
    fn attachments_listed_beside_the_image_are_read_and_moved_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let image = manifest(&layout, "image");
        let sbom = sbom_entry(manifest(&layout, "s"), &image.digest, "a/spdx");
        let sig = sig_entry(manifest(&layout, "sig"), &image.digest);
        layout
            .write_index(&Index {
                manifests: vec![image.clone(), sbom.clone(), sig.clone()],
                ..Index::default()
            })
            .unwrap();
        assert_eq!(layout.images().unwrap(), vec![image.clone()]);
        assert_eq!(
            layout.attachments_of(&image.digest).unwrap(),
            vec![sbom.clone(), sig.clone()]
        );
        let sig2 = sig_entry(manifest(&layout, "sig2"), &image.digest);
        layout.put_attachments(std::slice::from_ref(&sig2)).unwrap();
        let index = layout.read_index().unwrap();
        assert_eq!(index.manifests.len(), 1, "{index:?}");
        assert_eq!(
            layout.attachments_of(&image.digest).unwrap(),
            vec![sbom, sig2]
        );
        assert!(layout.fsck().unwrap().is_ok());
    }

    #[test]
    fn a_missing_attachments_index_is_reported_and_gc_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let image = manifest(&layout, "image");
        layout.replace_image(&image).unwrap();
        let sbom = sbom_entry(manifest(&layout, "s"), &image.digest, "a/spdx");
        layout.put_attachments(std::slice::from_ref(&sbom)).unwrap();
        let entry = layout.read_index().unwrap().manifests.remove(0);
        let list = layout.attachments_descriptor(&entry).unwrap().unwrap();
        std::fs::remove_file(layout.blobs().path(&list.digest)).unwrap();
        let report = layout.fsck().unwrap();
        let all = report.problems.join("\n");
        assert!(
            all.contains(list.digest.hex()) && all.contains("referenced but missing"),
            "{all}"
        );
        assert!(layout.gc().is_err());
        assert!(layout.blobs().path(&sbom.digest).exists());
    }

    #[test]
    fn the_subject_comes_from_the_annotation_or_cosigns_tag() {
        let image = Digest::of(b"image");
        let entry = |k: &str, v: String| Descriptor {
            annotations: BTreeMap::from([(k.to_string(), v)]),
            ..descriptor(MEDIA_TYPE_MANIFEST, Digest::of(b"x"), 1)
        };
        for tag in ["sig", "att", "sbom"] {
            let d = entry(ANNOTATION_REF_NAME, format!("sha256-{}.{tag}", image.hex()));
            assert_eq!(subject_of(&d), Some(image.clone()));
        }
        let d = entry(ANNOTATION_SUBJECT, image.to_string());
        assert_eq!(subject_of(&d), Some(image));
        assert_eq!(subject_of(&entry(ANNOTATION_REF_NAME, "1.0".into())), None);
        assert_eq!(
            subject_of(&entry(ANNOTATION_SUBJECT, "nonsense".into())),
            None
        );
    }

    #[test]
    fn a_malformed_annotation_is_an_error_fsck_reports_and_gc_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let image = Descriptor {
            annotations: BTreeMap::from([(ANNOTATION_ATTACHMENTS.into(), "sha256:nope".into())]),
            ..manifest(&layout, "image")
        };
        layout
            .write_index(&Index {
                manifests: vec![image],
                ..Index::default()
            })
            .unwrap();
        assert!(layout.attachments().is_err());
        let report = layout.fsck().unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains(ANNOTATION_ATTACHMENTS)),
            "{report:?}"
        );
        assert!(layout.gc().is_err());
    }
}

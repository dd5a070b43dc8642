//! Multi-platform images: an OCI image index (`application/vnd.oci.image.index.v1+json`)
//! with one child manifest per platform, stored as a blob and named from
//! `index.json` like a single image is.
//!
//! The index lists its children in the order given (the recipe's platform
//! order), each with its `platform`, and serializes canonically, so the same
//! children give the same index digest.

use std::collections::BTreeMap;

use super::layout::{Descriptor, Index, Layout, LayoutError, Platform};
use super::{ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX};

/// The index of `children` (manifest descriptors, each with its platform).
/// Children carry no `ref.name`: only the index is named in `index.json`.
pub fn image_index(children: &[Descriptor]) -> Index {
    Index {
        manifests: children
            .iter()
            .map(|c| Descriptor {
                annotations: BTreeMap::new(),
                ..c.clone()
            })
            .collect(),
        ..Index::default()
    }
}

/// Writes the index of `children` as a blob; returns its descriptor for
/// `index.json`, named `ref_name`.
pub fn write_image_index(
    layout: &Layout,
    children: &[Descriptor],
    ref_name: &str,
) -> Result<Descriptor, LayoutError> {
    let bytes = crate::base::json::canonical(&image_index(children));
    let io = |source| LayoutError::Io {
        path: layout.blobs().dir().to_path_buf(),
        source,
    };
    let b = layout.blobs().put(&bytes).map_err(io)?;
    layout.blobs().sync_dir().map_err(io)?;
    Ok(
        Descriptor::new(MEDIA_TYPE_INDEX, b.digest, b.size).with_annotations(BTreeMap::from([(
            ANNOTATION_REF_NAME.to_string(),
            ref_name.to_string(),
        )])),
    )
}

/// The child to read when a command is given an index: the one for this
/// machine's platform, else the only child. `None` when several children
/// exist and none is this machine's.
pub fn pick_child<'a>(
    children: &'a [Descriptor],
    host: Option<&Platform>,
) -> Option<&'a Descriptor> {
    let same = |p: &Platform, h: &Platform| {
        p.os == h.os && p.architecture == h.architecture && p.variant == h.variant
    };
    host.and_then(|h| {
        children
            .iter()
            .find(|c| c.platform.as_ref().is_some_and(|p| same(p, h)))
    })
    .or(match children {
        [one] => Some(one),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{Digest, MEDIA_TYPE_MANIFEST};
    use crate::platform::System;

    fn child(seed: &[u8], system: &str) -> Descriptor {
        Descriptor::new(MEDIA_TYPE_MANIFEST, Digest::of(seed), 100)
            .with_annotations(BTreeMap::from([(
                ANNOTATION_REF_NAME.to_string(),
                "1-x".to_string(),
            )]))
            .with_platform(System::parse(system).unwrap().oci())
    }

    #[test]
    fn index_json_is_canonical_and_names_each_platform() {
        let children = [child(b"a", "x86_64-linux"), child(b"b", "aarch64-linux")];
        let bytes = crate::base::json::canonical(&image_index(&children));
        let text = String::from_utf8(bytes.clone()).unwrap();
        // Sorted keys, no whitespace, children in the given order, no ref.name on children.
        assert_eq!(
            text,
            format!(
                r#"{{"manifests":[{{"digest":"{}","mediaType":"{MEDIA_TYPE_MANIFEST}","platform":{{"architecture":"amd64","os":"linux"}},"size":100}},{{"digest":"{}","mediaType":"{MEDIA_TYPE_MANIFEST}","platform":{{"architecture":"arm64","os":"linux"}},"size":100}}],"mediaType":"{MEDIA_TYPE_INDEX}","schemaVersion":2}}"#,
                Digest::of(b"a"),
                Digest::of(b"b")
            )
        );
        assert_eq!(bytes, crate::base::json::canonical(&image_index(&children)));
    }

    #[test]
    fn written_index_is_a_named_blob() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let d = write_image_index(&layout, &[child(b"a", "x86_64-linux")], "1-x").unwrap();
        assert_eq!(d.media_type, MEDIA_TYPE_INDEX);
        assert_eq!(d.annotations[ANNOTATION_REF_NAME], "1-x");
        let stored: Index =
            serde_json::from_slice(&layout.blobs().read(&d.digest).unwrap()).unwrap();
        assert_eq!(stored.manifests.len(), 1);
        assert_eq!(stored.media_type.as_deref(), Some(MEDIA_TYPE_INDEX));
    }

    #[test]
    fn the_host_child_is_picked() {
        let amd = System::X86_64_LINUX.oci();
        let arm = System::parse("aarch64-linux").unwrap().oci();
        let both = [child(b"a", "aarch64-linux"), child(b"b", "x86_64-linux")];
        assert_eq!(
            pick_child(&both, Some(&amd)).unwrap().digest,
            both[1].digest
        );
        assert_eq!(
            pick_child(&both, Some(&arm)).unwrap().digest,
            both[0].digest
        );
        assert!(pick_child(&both, None).is_none());
        let one = [child(b"a", "aarch64-linux")];
        assert_eq!(pick_child(&one, Some(&amd)).unwrap().digest, one[0].digest);
    }
}

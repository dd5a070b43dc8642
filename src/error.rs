//! What the user sees of an error: its exit code (2 for usage and input
//! problems, 1 for everything else) and a hint where the next step is obvious.
//!
//! It classifies the typed errors of the stages below it, so it sits above
//! them and below the pipeline and the binary, which only map its answer to a
//! process exit.

use std::path::PathBuf;

use crate::tier::Tier;
use crate::{config, nix, oci, recipe, sign};

/// Input problems: exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("unknown image `{image}`: no recipe {}", path.display())]
    UnknownImage { image: String, path: PathBuf },
    #[error("recipes directory {} cannot be read", .0.display())]
    RecipesDir(PathBuf, #[source] std::io::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("no image `{image}` tier `{tier}`: {} is not an OCI image layout", path.display())]
    MissingLayout {
        image: String,
        tier: Tier,
        path: PathBuf,
    },
}

/// Exit code 2 for usage and input errors, 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    use oci::layout::LayoutError;
    for cause in err.chain() {
        if cause.is::<InputError>()
            || cause.is::<config::ConfigError>()
            || cause.is::<recipe::RecipeError>()
            || cause.is::<recipe::RecipeLoadError>()
            || cause.is::<crate::plan::FactsError>()
            || cause.is::<crate::rootfs::LinkError>()
        {
            return 2;
        }
        // Hostile or damaged image content is bad input, like a bad layout.
        if let Some(v) = cause.downcast_ref::<oci::decode::ViewError>() {
            use oci::decode::ViewError as V;
            if matches!(
                v,
                V::Hostile { .. }
                    | V::TooLarge { .. }
                    | V::SizeMismatch { .. }
                    | V::DigestMismatch { .. }
            ) {
                return 2;
            }
        }
        if let Some(l) = cause.downcast_ref::<LayoutError>() {
            return match l {
                LayoutError::Io { .. } => 1,
                _ => 2,
            };
        }
    }
    1
}

/// A next step for the user, where one is obvious.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    for cause in err.chain() {
        if let Some(n) = cause.downcast_ref::<nix::NixError>() {
            return n.hint().map(str::to_string);
        }
        if let Some(f) = cause.downcast_ref::<crate::plan::FactsError>() {
            return Some(f.hint().into());
        }
        if cause.is::<crate::rootfs::LinkError>() {
            return Some(
                "fix the link's target in `[runtime.links]` (relative to the package output), \
                 or make the package install it"
                    .into(),
            );
        }
        if let Some(InputError::UnknownImage { .. }) = cause.downcast_ref::<InputError>() {
            return Some(
                "`armorred list` shows the recipes; --recipes DIR picks another directory".into(),
            );
        }
        if let Some(InputError::MissingLayout { image, tier, .. }) =
            cause.downcast_ref::<InputError>()
        {
            return Some(format!(
                "build it first: armorred build {image} --tier {tier} (or pass the --out it was built into)"
            ));
        }
        let missing = |e: Option<&sign::layout::AttestationError>| {
            matches!(e, Some(sign::layout::AttestationError::Missing { .. }))
        };
        let in_layout = match cause.downcast_ref::<sign::layout::LayoutSignError>() {
            Some(sign::layout::LayoutSignError::Attestation(e)) => Some(e),
            _ => None,
        };
        if missing(cause.downcast_ref()) || missing(in_layout) {
            return Some(
                "`build --sign-key` attests the image, or each platform's manifest of a \
                 multi-platform index; `sign` alone does not attest"
                    .into(),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::decode::ViewError;
    use crate::oci::Digest;

    #[test]
    fn input_problems_exit_2_with_a_hint_and_the_rest_exit_1() {
        let unknown = anyhow::Error::new(InputError::UnknownImage {
            image: "nope".into(),
            path: "recipes/nope.toml".into(),
        })
        .context("building");
        assert_eq!(exit_code(&unknown), 2);
        assert!(hint(&unknown).unwrap().contains("armorred list"));
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), 1);
        assert_eq!(hint(&anyhow::anyhow!("disk full")), None);
    }

    #[test]
    fn hostile_layer_content_is_an_input_error() {
        let digest = Digest::of(b"layer");
        let bomb = anyhow::Error::new(ViewError::TooLarge {
            digest: digest.clone(),
            limit: 1,
        })
        .context("analyzing out/x");
        assert_eq!(exit_code(&bomb), 2);
        let io = anyhow::Error::new(ViewError::Io {
            digest,
            source: std::io::Error::other("disk"),
        });
        assert_eq!(exit_code(&io), 1);
    }
}

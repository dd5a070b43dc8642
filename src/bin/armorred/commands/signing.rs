//! `generate-key-pair`, `sign` and `verify`: cosign-format signatures and attestations.

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{GenerateKeyPairArgs, SignArgs, VerifyArgs};
use armorred::config::ProjectConfig;
use armorred::error::InputError;
use armorred::registry;
use armorred::sign::{self, keys};

use super::*;

pub(super) fn generate_key_pair(a: &GenerateKeyPairArgs) -> Result<CommandOutput> {
    let pass = keys::passphrase_from_env_or_prompt(true)?;
    let (key, public) = keys::write_key_pair(&a.output_key_prefix, &pass).with_context(|| {
        format!(
            "writing the key pair {}.key/.pub",
            a.output_key_prefix.display()
        )
    })?;
    tracing::info!("private key written to {} (mode 0600)", key.display());
    Ok(CommandOutput::ok(format!(
        "{}\n{}\n",
        key.display(),
        public.display()
    )))
}

pub(super) fn sign(a: &SignArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    let key_path = project.signing_key(a.key.as_deref()).ok_or_else(|| {
        InputError::Invalid("no signing key: pass --key or set `key` in armorred.toml".into())
    })?;
    let key = load_signing_key(&key_path)?;
    let optional: std::collections::BTreeMap<String, serde_json::Value> = a
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    if !is_layout(&a.target) {
        let target = image_ref(&a.target)?;
        let opts = registry_options(&a.registry);
        let digest = registry::sign_remote(&target, &key, &opts, &optional)
            .with_context(|| format!("signing {}", a.target))?;
        // A multi-platform index: sign every child too, as `cosign sign --recursive`.
        let (bytes, media_type, _) = registry::fetch_manifest(&target.with_digest(&digest), &opts)?;
        if media_type == armorred::oci::MEDIA_TYPE_INDEX {
            let index: armorred::oci::layout::Index =
                serde_json::from_slice(&bytes).context("parsing the image index")?;
            for child in &index.manifests {
                registry::sign_remote(&target.with_digest(&child.digest), &key, &opts, &optional)
                    .with_context(|| format!("signing {} of {}", child.digest, a.target))?;
            }
        }
        let tag = sign::signature_tag(digest.as_str());
        return Ok(CommandOutput::ok(if a.json {
            json(&serde_json::json!({"manifest_digest": digest, "signature_tag": tag}))
        } else {
            format!("{digest} {tag}\n")
        }));
    }
    let o = sign::layout::sign_layout(
        Path::new(&a.target),
        a.reference.as_deref(),
        &key,
        a.identity.as_deref(),
        optional,
    )
    .with_context(|| format!("signing {}", a.target))?;
    Ok(CommandOutput::ok(if a.json {
        json(&o)
    } else {
        format!(
            "{} {} ({} signature(s))\n",
            o.manifest_digest, o.signature_tag, o.signatures
        )
    }))
}

pub(super) fn verify(a: &VerifyArgs, project: &ProjectConfig) -> Result<CommandOutput> {
    let key_path = project.public_key(a.key.as_deref()).ok_or_else(|| {
        InputError::Invalid("no public key: pass --key or set `key` in armorred.toml".into())
    })?;
    let key = load_verifying_key(&key_path)?;
    if a.attestations {
        return verify_attestations(a, &key);
    }
    let o = if is_layout(&a.target) {
        sign::layout::verify_layout(Path::new(&a.target), a.reference.as_deref(), &key)
            .with_context(|| format!("verifying {}", a.target))?
    } else {
        verify_remote(&a.target, &key, &registry_options(&a.registry))
            .with_context(|| format!("verifying {}", a.target))?
    };
    Ok(CommandOutput::ok(if a.json {
        json(&o)
    } else {
        format!(
            "verified {} signed as {} (tier: {})\n",
            o.manifest_digest,
            o.docker_reference,
            o.tier.as_deref().unwrap_or("unknown")
        )
    }))
}

/// `verify --attestations`: in a layout or a registry, every attestation of
/// the image verifies and names it, and SLSA provenance is among them; for a
/// multi-platform index, of every child.
pub(super) fn verify_attestations(
    a: &VerifyArgs,
    key: &keys::VerifyingKey,
) -> Result<CommandOutput> {
    use sign::layout::AttestedTarget;
    let required = armorred::slsa::PREDICATE_TYPE;
    let attested = if is_layout(&a.target) {
        sign::layout::verify_layout_attestations(
            Path::new(&a.target),
            a.reference.as_deref(),
            key,
            required,
        )
        .map_err(anyhow::Error::from)
    } else {
        remote_attestations(&a.target, key, &registry_options(&a.registry), required)
    }
    .with_context(|| format!("verifying the attestations of {}", a.target))?;
    Ok(CommandOutput::ok(match (&attested, a.json) {
        (AttestedTarget::Image(o), true) => json(&attestations_json(o, required)),
        (AttestedTarget::Image(o), false) => attestations_text(o),
        (
            AttestedTarget::Index {
                manifest_digest,
                children,
            },
            true,
        ) => json(&serde_json::json!({
            "manifest_digest": manifest_digest,
            "children": children
                .iter()
                .map(|o| attestations_json(o, required))
                .collect::<Vec<_>>(),
        })),
        (
            AttestedTarget::Index {
                manifest_digest,
                children,
            },
            false,
        ) => {
            let mut s = format!(
                "verified the attestations of the {} platform manifest(s) of index {manifest_digest}\n",
                children.len()
            );
            for o in children {
                s.push_str(&attestations_text(o));
            }
            s
        }
    }))
}

/// The attestations of a registry image, or of each child of an index.
pub(super) fn remote_attestations(
    target: &str,
    key: &keys::VerifyingKey,
    opts: &registry::RegistryOptions,
    required: &str,
) -> Result<sign::layout::AttestedTarget> {
    let target = image_ref(target)?;
    let (manifest, media_type, digest) = registry::fetch_manifest(&target, opts)?;
    if media_type != armorred::oci::MEDIA_TYPE_INDEX {
        let (digest, layers) = registry::attestations_remote(&target.with_digest(&digest), opts)?;
        return Ok(sign::layout::AttestedTarget::Image(
            sign::layout::attestations_outcome(key, digest.as_str(), &layers, required)?,
        ));
    }
    let index: armorred::oci::layout::Index =
        serde_json::from_slice(&manifest).context("parsing the image index")?;
    let children = index
        .manifests
        .iter()
        .map(|child| {
            let (d, layers) =
                registry::attestations_remote(&target.with_digest(&child.digest), opts)?;
            Ok((d.to_string(), layers))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(sign::layout::index_attestations(
        key,
        digest.as_str(),
        &children,
        required,
    )?)
}

/// `verify --attestations --json` of one image.
pub(super) fn attestations_json(
    o: &sign::layout::AttestationsOutcome,
    required: &str,
) -> serde_json::Value {
    let provenance = o
        .predicate_types
        .iter()
        .position(|t| t == required)
        .map(|i| o.statements[i]["predicate"].clone())
        .unwrap_or_default();
    serde_json::json!({
        "manifest_digest": o.manifest_digest,
        "attestation_tag": o.attestation_tag,
        "key_fingerprint": o.key_fingerprint,
        "predicate_types": o.predicate_types,
        "provenance": {
            "build_type": provenance.pointer("/buildDefinition/buildType"),
            "builder_id": provenance.pointer("/runDetails/builder/id"),
            "external_parameters": provenance.pointer("/buildDefinition/externalParameters"),
            "internal_parameters": provenance.pointer("/buildDefinition/internalParameters"),
            "resolved_dependencies": provenance.pointer("/buildDefinition/resolvedDependencies"),
        },
    })
}

/// `verify --attestations` of one image, as text.
pub(super) fn attestations_text(o: &sign::layout::AttestationsOutcome) -> String {
    let mut s = format!(
        "verified {} attestation(s) of {}\n",
        o.predicate_types.len(),
        o.manifest_digest
    );
    for t in &o.predicate_types {
        s.push_str(&format!("  {t}\n"));
    }
    s
}

/// Verifies a registry image: its signature (cosign's `.sig` tag) and its tier label.
pub(super) fn verify_remote(
    target: &str,
    key: &keys::VerifyingKey,
    opts: &registry::RegistryOptions,
) -> Result<sign::layout::VerifyOutcome> {
    let target = image_ref(target)?;
    let (digest, layers) = registry::signatures_remote(&target, opts)?;
    let v = sign::verify_image(key, digest.as_str(), &layers)?;
    let (mut manifest, media_type, _) =
        registry::fetch_manifest(&target.with_digest(&digest), opts)?;
    if media_type == armorred::oci::MEDIA_TYPE_INDEX {
        // A multi-platform index: every child must carry its own signature,
        // as `verify` of a layout demands; the tier comes from the first.
        let index: armorred::oci::layout::Index =
            serde_json::from_slice(&manifest).context("parsing the image index")?;
        for child in &index.manifests {
            let at = target.with_digest(&child.digest);
            let (_, layers) = registry::signatures_remote(&at, opts)?;
            sign::verify_image(key, child.digest.as_str(), &layers)
                .with_context(|| format!("verifying index child {}", child.digest))?;
        }
        let first = index
            .manifests
            .first()
            .context("the image index has no children")?;
        manifest = registry::fetch_manifest(&target.with_digest(&first.digest), opts)?.0;
    }
    let m: armorred::oci::layout::Manifest =
        serde_json::from_slice(&manifest).context("parsing the image manifest")?;
    let config = registry::fetch_blob(&target, &m.config.digest, opts)?;
    let config: serde_json::Value =
        serde_json::from_slice(&config).context("parsing the image config")?;
    Ok(sign::layout::VerifyOutcome {
        manifest_digest: digest.to_string(),
        docker_reference: v.payload.critical.identity.docker_reference.clone(),
        tier: config
            .pointer("/config/Labels/org.armorred.tier")
            .and_then(|t| t.as_str())
            .map(str::to_string),
        key_fingerprint: key.fingerprint(),
    })
}

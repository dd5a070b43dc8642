//! Where an image to compare comes from: an OCI layout, an OCI archive, a
//! docker archive or a registry. Every kind is opened as an OCI layout
//! (archives are unpacked or imported into a temp directory, registry
//! images copied there with skopeo), so the rest reads them one way.
//!
//! Spellings follow skopeo's transports: `oci:DIR[:REF]`,
//! `oci-archive:FILE[:REF]`, `docker-archive:FILE`, `docker://REF`. A bare
//! path is sniffed (a directory is a layout, a file an archive); anything
//! else that looks like an image reference goes to the registry.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::archive::{self, ArchiveKind};
use crate::process;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    Layout {
        dir: PathBuf,
        reference: Option<String>,
    },
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    DockerArchive {
        file: PathBuf,
    },
    Registry {
        reference: String,
    },
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_ref = |r: &Option<String>| r.as_ref().map(|r| format!(":{r}")).unwrap_or_default();
        match self {
            ImageSource::Layout { dir, reference } => {
                write!(f, "oci:{}{}", dir.display(), with_ref(reference))
            }
            ImageSource::OciArchive { file, reference } => {
                write!(f, "oci-archive:{}{}", file.display(), with_ref(reference))
            }
            ImageSource::DockerArchive { file } => write!(f, "docker-archive:{}", file.display()),
            ImageSource::Registry { reference } => write!(f, "docker://{reference}"),
        }
    }
}

fn split_ref(s: &str) -> (PathBuf, Option<String>) {
    // skopeo splits `oci:` names at the first colon after the transport.
    match s.split_once(':') {
        Some((p, r)) if !r.is_empty() => (PathBuf::from(p), Some(r.to_string())),
        Some((p, _)) => (PathBuf::from(p), None),
        None => (PathBuf::from(s), None),
    }
}

/// Plausible `[host[:port]/]name[:tag|@digest]`.
fn looks_like_reference(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['/', '.', '-'])
        && s.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '.' | '_' | '-' | '/' | ':' | '@')
                || c.is_ascii_uppercase() && s.contains(['@', ':'])
        })
}

impl ImageSource {
    pub fn parse(s: &str) -> Result<ImageSource> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, reference) = split_ref(rest);
            return Ok(ImageSource::Layout { dir, reference });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, reference) = split_ref(rest);
            return Ok(ImageSource::OciArchive { file, reference });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            return Ok(ImageSource::DockerArchive {
                file: PathBuf::from(rest),
            });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(ImageSource::Registry {
                reference: rest.to_string(),
            });
        }
        let p = Path::new(s);
        if p.is_dir() {
            if !p.join("oci-layout").is_file() {
                bail!("{s}: the directory is not an OCI image layout (no `oci-layout` file)");
            }
            return Ok(ImageSource::Layout {
                dir: p.to_path_buf(),
                reference: None,
            });
        }
        if p.is_file() {
            return Ok(match archive::sniff(p)? {
                ArchiveKind::Oci => ImageSource::OciArchive {
                    file: p.to_path_buf(),
                    reference: None,
                },
                ArchiveKind::Docker => ImageSource::DockerArchive {
                    file: p.to_path_buf(),
                },
            });
        }
        if looks_like_reference(s) && !s.contains("//") {
            return Ok(ImageSource::Registry {
                reference: s.to_string(),
            });
        }
        bail!(
            "`{s}` is neither an existing OCI layout or archive nor an image reference \
             (use oci:DIR[:REF], oci-archive:FILE, docker-archive:FILE or docker://REF)"
        )
    }

    /// Makes the image readable as an OCI layout. `insecure` allows plain
    /// HTTP and unverified TLS for a registry.
    pub fn open(&self, insecure: bool) -> Result<OpenedImage> {
        let described = self.to_string();
        match self {
            ImageSource::Layout { dir, reference } => Ok(OpenedImage {
                dir: dir.clone(),
                reference: reference.clone(),
                source: described,
                _tmp: None,
            }),
            ImageSource::OciArchive { file, reference } => {
                let tmp = temp_dir()?;
                let dir = tmp.path().join("layout");
                archive::extract_oci_archive(file, &dir)
                    .with_context(|| format!("unpacking {described}"))?;
                Ok(OpenedImage {
                    dir,
                    reference: reference.clone(),
                    source: described,
                    _tmp: Some(tmp),
                })
            }
            ImageSource::DockerArchive { file } => {
                let tmp = temp_dir()?;
                let dir = tmp.path().join("layout");
                let reference = archive::import_docker_archive(file, &dir)
                    .with_context(|| format!("importing {described}"))?;
                Ok(OpenedImage {
                    dir,
                    reference: Some(reference),
                    source: described,
                    _tmp: Some(tmp),
                })
            }
            ImageSource::Registry { reference } => {
                let tmp = temp_dir()?;
                let dir = tmp.path().join("layout");
                let tls = format!("--src-tls-verify={}", !insecure);
                process::Cmd::new("skopeo")
                    .args(["copy", "--quiet", &tls])
                    .arg(format!("docker://{reference}"))
                    .arg(format!("oci:{}:image", dir.display()))
                    .run()
                    .with_context(|| {
                        format!(
                            "copying {described} from its registry (offline? pass a layout or archive \
                             instead: `skopeo copy docker://{reference} oci-archive:upstream.tar` \
                             on a connected machine)"
                        )
                    })?;
                Ok(OpenedImage {
                    dir,
                    reference: Some("image".into()),
                    source: described,
                    _tmp: Some(tmp),
                })
            }
        }
    }
}

fn temp_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("armorred-upstream-")
        .tempdir()
        .context("creating a temp directory for the upstream image")
}

/// An image readable as an OCI layout; temp copies vanish on drop.
#[derive(Debug)]
pub struct OpenedImage {
    pub dir: PathBuf,
    pub reference: Option<String>,
    /// How the user named it.
    pub source: String,
    _tmp: Option<tempfile::TempDir>,
}

impl OpenedImage {
    /// One of our own layouts.
    pub fn layout(dir: &Path, reference: Option<&str>) -> OpenedImage {
        OpenedImage {
            dir: dir.to_path_buf(),
            reference: reference.map(str::to_string),
            source: dir.display().to_string(),
            _tmp: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_like_skopeo() {
        assert_eq!(
            ImageSource::parse("oci:/tmp/up:latest").unwrap(),
            ImageSource::Layout {
                dir: "/tmp/up".into(),
                reference: Some("latest".into())
            }
        );
        assert_eq!(
            ImageSource::parse("oci-archive:/x/a.tar").unwrap(),
            ImageSource::OciArchive {
                file: "/x/a.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            ImageSource::parse("docker://docker.io/library/nginx:1.22.1").unwrap(),
            ImageSource::Registry {
                reference: "docker.io/library/nginx:1.22.1".into()
            }
        );
        assert_eq!(
            ImageSource::parse("localhost:5000/nginx:1").unwrap(),
            ImageSource::Registry {
                reference: "localhost:5000/nginx:1".into()
            }
        );
        assert!(ImageSource::parse("/no/such/dir").is_err());
        assert!(ImageSource::parse("not a ref").is_err());
    }

    #[test]
    fn a_directory_must_be_a_layout() {
        let d = tempfile::tempdir().unwrap();
        let e = ImageSource::parse(d.path().to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not an OCI image layout"), "{e}");
        std::fs::write(d.path().join("oci-layout"), "{}").unwrap();
        assert!(matches!(
            ImageSource::parse(d.path().to_str().unwrap()).unwrap(),
            ImageSource::Layout { .. }
        ));
    }
}

//! Image references: `[registry/]repository[:tag][@sha256:…]`.
//!
//! The registry part follows Docker's rule: the first path component is a
//! registry host when it contains `.` or `:` or is `localhost`. Otherwise the
//! reference is on Docker Hub: the registry is `docker.io` (reached at
//! `registry-1.docker.io`) and a one-component name gets `library/`, so
//! `nginx:1.25` means `docker.io/library/nginx:1.25`.

use std::fmt;

use super::RegistryError;
use crate::oci::Digest;

/// The registry Docker assumes when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Where Docker Hub's registry API actually answers.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Host and optional port, as written (`localhost:5000`, `ghcr.io`).
    pub registry: String,
    /// Repository path inside the registry (`armorred/nginx`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, RegistryError> {
        let bad = |reason: &str| RegistryError::BadReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.contains("://") {
            return Err(bad(
                "leave out the scheme (`http://`); use --insecure for plain HTTP",
            ));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d).map_err(|e| bad(&e.to_string()))?)),
            None => (s, None),
        };
        // A tag's `:` comes after the last `/`; an earlier one is a port.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_tag[..at], Some(name_tag[at + 1..].to_string()))
            }
            None => (name_tag, None),
        };
        if let Some(t) = &tag {
            check_tag(t).map_err(|r| bad(&r))?;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ if name.contains('/') => (DEFAULT_REGISTRY.to_string(), name.to_string()),
            _ => (DEFAULT_REGISTRY.to_string(), format!("library/{name}")),
        };
        check_registry(&registry).map_err(|r| bad(&r))?;
        check_repository(&repository).map_err(|r| bad(&r))?;
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host (and port) the registry API is reached at.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY || self.registry == "index.docker.io" {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// `registry/repository`, the name cosign puts in a signature payload.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at another tag.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository at a digest.
    pub fn with_digest(&self, digest: &Digest) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> Option<String> {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Some(d.to_string()),
            (None, Some(t)) => Some(t.clone()),
            (None, None) => None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (the distribution spec).
pub(crate) fn check_tag(t: &str) -> Result<(), String> {
    let ok_first = t
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let ok_rest = t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok_first && ok_rest && t.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "tag `{t}` must be 1-128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
        ))
    }
}

fn check_registry(r: &str) -> Result<(), String> {
    let ok = !r.is_empty()
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if ok {
        Ok(())
    } else {
        Err(format!("registry host `{r}` is not a host[:port]"))
    }
}

/// Path components of `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by `/`.
fn check_repository(repo: &str) -> Result<(), String> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if is_lower_alnum(b[i]) {
                i += 1;
                continue;
            }
            let sep_start = i;
            while i < b.len() && !is_lower_alnum(b[i]) {
                i += 1;
            }
            let sep = &c[sep_start..i];
            if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
                return false;
            }
        }
        true
    };
    if repo.len() > 255 {
        return Err("the repository name is longer than 255 characters".into());
    }
    if repo.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("repository `{repo}` must be lowercase"));
    }
    if repo.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(format!(
            "repository `{repo}` must be `/`-separated lowercase components of letters and digits, joined inside by `.`, `_`, `__` or dashes"
        ))
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36";

    #[test]
    fn registry_port_repo_and_tag() {
        let r = ImageRef::parse("localhost:5000/armorred/nginx:1.22.1-locked").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "armorred/nginx");
        assert_eq!(r.tag.as_deref(), Some("1.22.1-locked"));
        assert_eq!(r.digest, None);
        assert_eq!(r.to_string(), "localhost:5000/armorred/nginx:1.22.1-locked");
        assert_eq!(r.api_host(), "localhost:5000");
    }

    #[test]
    fn digest_references() {
        let r = ImageRef::parse(&format!("127.0.0.1:5000/app@{D}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().unwrap().as_str(), D);
        assert_eq!(r.manifest_reference().unwrap(), D);
        let both = ImageRef::parse(&format!("ghcr.io/o/app:v1@{D}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("v1"));
        assert_eq!(both.manifest_reference().unwrap(), D);
        assert!(ImageRef::parse("ghcr.io/o/app@sha256:abc").is_err());
    }

    #[test]
    fn docker_hub_defaults() {
        let r = ImageRef::parse("nginx:1.25").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/nginx")
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = ImageRef::parse("someone/app").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "someone/app")
        );
        assert_eq!(r.tag, None);
        let r = ImageRef::parse("localhost/app").unwrap();
        assert_eq!(r.registry, "localhost");
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            "http://localhost:5000/app:1",
            "localhost:5000/App:1",
            "localhost:5000/app:-bad",
            "localhost:5000/app:",
            "localhost:5000/a//b",
            "localhost:5000/a-/b",
            "localhost:5000/a..b",
            "localhost:5000/",
            "local host:5000/app",
        ] {
            let err = ImageRef::parse(bad).unwrap_err();
            assert!(
                matches!(err, RegistryError::BadReference { .. }),
                "{bad}: {err:?}"
            );
        }
        for good in [
            "localhost:5000/a__b/c-d/e.f/g---h:T_1.x-y",
            "[::1]:5000/app",
        ] {
            ImageRef::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }
}

//! Registry credentials and authentication challenges.
//!
//! Credentials come from one auth file, the first of: the file the caller
//! names, `$REGISTRY_AUTH_FILE` (containers-auth.json, as podman and skopeo
//! read it), `$DOCKER_CONFIG/config.json`, `~/.docker/config.json`. Both
//! formats share `{"auths": {"<key>": {"auth": base64("user:pass")}}}`
//! (`username`/`password` fields are read too). Keys may carry a scheme and a
//! `/v1/` suffix (Docker) or a repository path (containers-auth.json); the
//! most specific key matching the repository wins.
//!
//! Credential helpers (`credsStore`, `credHelpers`) are not run: they are
//! programs, and armorred does not start one to push. When one is configured
//! for a registry without inline credentials, the 401 error says so.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;

/// The largest auth file read.
const MAX_AUTH_FILE: u64 = 4 << 20;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            BASE64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// What the auth file said about one repository.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthLookup {
    /// The file consulted, if any was found.
    pub file: Option<PathBuf>,
    pub credentials: Option<Credentials>,
    /// A credential helper the file names for this registry (not run).
    pub helper: Option<String>,
}

/// `auths` entries of a Docker config.json or containers-auth.json.
/// Unknown fields are ignored; both tools add their own.
#[derive(Debug, Default, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Which auth file to read, given an explicit path and the environment,
/// and whether it must exist (it was named). `None` when no file is named
/// and the Docker default does not exist.
pub(crate) fn auth_file_path(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Option<(PathBuf, bool)> {
    if let Some(p) = explicit {
        return Some((p.to_path_buf(), true));
    }
    if let Some(p) = env("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(p), true));
    }
    let docker_dir = env("DOCKER_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    let p = docker_dir.join("config.json");
    p.is_file().then_some((p, false))
}

/// Looks up credentials for `registry`/`repository`. A file that was asked
/// for explicitly (option or `REGISTRY_AUTH_FILE`) must exist and parse.
pub(crate) fn lookup(
    explicit: Option<&Path>,
    registry: &str,
    repository: &str,
) -> Result<AuthLookup, RegistryError> {
    let Some((path, required)) = auth_file_path(explicit, |k| std::env::var_os(k)) else {
        return Ok(AuthLookup::default());
    };
    let bytes = match read_limited(&path) {
        Ok(b) => b,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(AuthLookup::default())
        }
        Err(e) => {
            return Err(RegistryError::AuthFile {
                path,
                message: format!("cannot read it: {e}"),
            })
        }
    };
    let file: AuthFile = serde_json::from_slice(&bytes).map_err(|e| RegistryError::AuthFile {
        path: path.clone(),
        message: format!("not a Docker config or containers auth JSON file: {e}"),
    })?;
    let (credentials, helper) =
        find(&file, registry, repository).map_err(|message| RegistryError::AuthFile {
            path: path.clone(),
            message,
        })?;
    Ok(AuthLookup {
        file: Some(path),
        credentials,
        helper,
    })
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_AUTH_FILE)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `host/ns/repo` stays.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    k.to_string()
}

/// Docker Hub is written several ways in auth files.
fn registry_aliases(registry: &str) -> Vec<&str> {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        vec!["docker.io", "index.docker.io", "registry-1.docker.io"]
    } else {
        vec![registry]
    }
}

fn find(
    file: &AuthFile,
    registry: &str,
    repository: &str,
) -> Result<(Option<Credentials>, Option<String>), String> {
    let entries: BTreeMap<String, &AuthEntry> = file
        .auths
        .iter()
        .map(|(k, v)| (normalize_key(k), v))
        .collect();
    for host in registry_aliases(registry) {
        // Most specific first: host/a/b/c, host/a/b, host/a, host.
        let mut key = format!("{host}/{repository}");
        loop {
            if let Some(entry) = entries.get(&key) {
                if let Some(c) = entry_credentials(entry, &key)? {
                    return Ok((Some(c), None));
                }
            }
            match key.rfind('/') {
                Some(i) => key.truncate(i),
                None => break,
            }
        }
    }
    let helper = registry_aliases(registry)
        .into_iter()
        .find_map(|h| file.cred_helpers.get(h).cloned())
        .or_else(|| file.creds_store.clone());
    Ok((None, helper))
}

fn entry_credentials(entry: &AuthEntry, key: &str) -> Result<Option<Credentials>, String> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = BASE64
            .decode(auth.trim())
            .map_err(|e| format!("`auths.{key}.auth` is not base64: {e}"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| format!("`auths.{key}.auth` does not decode to UTF-8"))?;
        let (u, p) = decoded
            .split_once(':')
            .ok_or_else(|| format!("`auths.{key}.auth` does not decode to `user:password`"))?;
        return Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="…",service="…",scope="…"`.
/// Quoted values may hold commas (`scope="repository:a:pull,push"`).
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        })
    } else {
        None
    }
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// A token endpoint's answer (Docker's token spec; `access_token` is OAuth2's name).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str) -> AuthFile {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="insufficient_scope""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm=https://t.example/token"#),
            Some(Challenge::Bearer {
                realm: "https://t.example/token".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn credentials_by_most_specific_key() {
        let f = file(
            r#"{"auths":{
                "127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"},
                "127.0.0.1:5000/team":{"username":"team","password":"s:cret"},
                "https://index.docker.io/v1/":{"auth":"aHViOmh1Yg=="}
            }}"#,
        );
        let (c, _) = find(&f, "127.0.0.1:5000", "other/app").unwrap();
        assert_eq!(c.unwrap().username, "user");
        let (c, _) = find(&f, "127.0.0.1:5000", "team/app").unwrap();
        let c = c.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("team", "s:cret")
        );
        let (c, _) = find(&f, "docker.io", "library/nginx").unwrap();
        assert_eq!(c.unwrap().password, "hub");
        let (c, h) = find(&f, "ghcr.io", "x").unwrap();
        assert!(c.is_none() && h.is_none());
    }

    #[test]
    fn helpers_are_named_not_run() {
        let f = file(
            r#"{"auths":{"ghcr.io":{}},"credHelpers":{"ghcr.io":"gh"},"credsStore":"desktop"}"#,
        );
        assert_eq!(find(&f, "ghcr.io", "x").unwrap(), (None, Some("gh".into())));
        assert_eq!(
            find(&f, "quay.io", "x").unwrap(),
            (None, Some("desktop".into()))
        );
    }

    #[test]
    fn malformed_auth_is_an_error() {
        let f = file(r#"{"auths":{"h":{"auth":"!!"}}}"#);
        assert!(find(&f, "h", "r").unwrap_err().contains("base64"));
        let f = file(r#"{"auths":{"h":{"auth":"bm9jb2xvbg=="}}}"#);
        assert!(find(&f, "h", "r").unwrap_err().contains("user:password"));
    }

    #[test]
    fn auth_file_resolution_order() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".docker")).unwrap();
        let env = |vars: Vec<(&'static str, OsString)>| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        // No file anywhere.
        assert_eq!(
            auth_file_path(None, env(vec![("HOME", home.clone().into())])),
            None
        );
        std::fs::write(home.join(".docker/config.json"), "{}").unwrap();
        assert_eq!(
            auth_file_path(None, env(vec![("HOME", home.clone().into())])),
            Some((home.join(".docker/config.json"), false))
        );
        assert_eq!(
            auth_file_path(
                None,
                env(vec![
                    ("HOME", home.clone().into()),
                    ("REGISTRY_AUTH_FILE", "/a.json".into())
                ])
            ),
            Some((PathBuf::from("/a.json"), true))
        );
        assert_eq!(
            auth_file_path(
                Some(Path::new("/explicit.json")),
                env(vec![("REGISTRY_AUTH_FILE", "/a.json".into())])
            ),
            Some((PathBuf::from("/explicit.json"), true))
        );
        let dc = dir.path().join("dc");
        std::fs::create_dir_all(&dc).unwrap();
        std::fs::write(dc.join("config.json"), "{}").unwrap();
        assert_eq!(
            auth_file_path(
                None,
                env(vec![
                    ("HOME", home.into()),
                    ("DOCKER_CONFIG", dc.clone().into())
                ])
            ),
            Some((dc.join("config.json"), false))
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(
            query_escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}

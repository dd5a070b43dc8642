//! A small blocking client for the OCI distribution API, on `ureq`.
//!
//! Every exchange reads its whole (bounded) response, so a connection that
//! drops in the middle of a body is caught here and counts as a failed
//! attempt. Idempotent requests are retried with exponential back-off on
//! connection errors, 5xx and 429; a blob upload (POST, PATCH…, PUT) is not
//! idempotent step by step, so it is retried as a whole, from a new upload
//! session. Per-read and per-write timeouts turn a stalled peer into an error
//! instead of a hang, whatever the size of the blob.

use crate::oci::media_types::*;
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use ureq::http::{self, HeaderMap, Method};
use ureq::Agent;

use super::auth::{self, AuthLookup, Challenge, TokenResponse};
use super::error::is_retryable_status;
use super::{ImageRef, RegistryError, RegistryOptions};
use crate::oci::layout::{LayoutError, MAX_JSON_BLOB};
use crate::oci::Digest;

/// Every manifest type we read. distribution 2.8 answers 404 for an OCI
/// manifest unless the request accepts its media type.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a single socket read or write may block. Large blobs are
/// fine: the clock restarts with every byte that moves.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// A server's `Retry-After` is obeyed up to this long.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);
/// Error bodies are read only this far.
const ERROR_BODY_LIMIT: u64 = 64 << 10;

/// A connection to one repository of one registry.
pub struct Client {
    agent: Agent,
    /// `http(s)://host[:port]`
    base: String,
    registry: String,
    repository: String,
    retries: u32,
    chunk_size: usize,
    auth: AuthLookup,
    /// The `Authorization` value in use, once a challenge has been answered.
    authorization: Mutex<Option<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("repository", &self.repository)
            .field("auth_file", &self.auth.file)
            .finish_non_exhaustive()
    }
}

/// A response, read in full.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One request, kept so it can be sent again.
struct Call<'a> {
    method: Method,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Option<&'a [u8]>,
    /// The largest success body accepted.
    limit: u64,
    /// Whether registry credentials apply (not for a token server).
    registry_auth: bool,
}

impl<'a> Call<'a> {
    fn new(method: Method, url: String) -> Call<'a> {
        Call {
            method,
            url,
            headers: Vec::new(),
            body: None,
            limit: MAX_JSON_BLOB,
            registry_auth: true,
        }
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn body(mut self, body: &'a [u8]) -> Self {
        self.body = Some(body);
        self
    }
}

enum AttemptError {
    /// The network failed; another attempt may work.
    Transport(ureq::Error),
    /// Retrying cannot help.
    Fatal(RegistryError),
}

/// Where a blob's bytes come from.
pub(crate) enum BlobSource<'a> {
    File(PathBuf),
    Bytes(&'a [u8]),
}

impl BlobSource<'_> {
    fn open(&self) -> Result<Box<dyn Read + '_>, RegistryError> {
        match self {
            BlobSource::File(p) => Ok(Box::new(File::open(p).map_err(|source| {
                RegistryError::Io {
                    path: p.clone(),
                    source,
                }
            })?)),
            BlobSource::Bytes(b) => Ok(Box::new(Cursor::new(*b))),
        }
    }

    fn describe(&self) -> PathBuf {
        match self {
            BlobSource::File(p) => p.clone(),
            BlobSource::Bytes(_) => PathBuf::from("<memory>"),
        }
    }
}

impl Client {
    /// A client for `reg`'s registry and repository. Reads the auth file
    /// now (an explicitly named one must exist); makes no request yet.
    pub fn new(reg: &ImageRef, opts: &RegistryOptions) -> Result<Client, RegistryError> {
        let auth = auth::lookup(opts.auth_file.as_deref(), &reg.registry, &reg.repository)?;
        let host = reg.api_host();
        let scheme = if opts.insecure { "http" } else { "https" };
        if opts.insecure && !is_loopback(host) {
            tracing::warn!(
                "--insecure: talking plain HTTP to {host}, which is not a loopback address"
            );
        }
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(format!("armorred/{}", env!("CARGO_PKG_VERSION")))
            .timeout_resolve(Some(CONNECT_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(IO_TIMEOUT))
            .timeout_per_write(Some(IO_TIMEOUT))
            .max_redirects(5)
            .build();
        Ok(Client {
            agent: Agent::new_with_config(config),
            base: format!("{scheme}://{host}"),
            registry: reg.registry.clone(),
            repository: reg.repository.clone(),
            retries: opts.retries,
            // 0 would mean one-byte chunks; take it as "the default".
            chunk_size: match opts.chunk_size {
                0 => super::DEFAULT_CHUNK_SIZE,
                n => n,
            },
            auth,
            authorization: Mutex::new(None),
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.repository)
    }

    /// Whether the repository has the blob (HEAD).
    pub(crate) fn blob_exists(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let call = Call::new(Method::HEAD, self.url(&format!("blobs/{digest}")));
        let reply = self.send(&call, self.retries)?;
        match reply.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_error(&call, &reply, 1)),
        }
    }

    /// Uploads a blob the registry does not have, checking as it reads that
    /// the bytes are `digest`. Returns the bytes sent. Retried as a whole.
    pub(crate) fn upload_blob(
        &self,
        source: &BlobSource<'_>,
        digest: &Digest,
        size: u64,
    ) -> Result<u64, RegistryError> {
        let mut attempt = 1;
        loop {
            match self.upload_once(source, digest, size) {
                Ok(n) => return Ok(n),
                Err(mut e) if e.is_transient() => {
                    if attempt > self.retries {
                        e.set_attempts(attempt);
                        return Err(e);
                    }
                    let wait = backoff(attempt, None);
                    tracing::warn!("uploading {digest} failed ({e}); retrying in {wait:?}");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn upload_once(
        &self,
        source: &BlobSource<'_>,
        digest: &Digest,
        size: u64,
    ) -> Result<u64, RegistryError> {
        let mut reader = source.open()?;
        let mut hasher = Sha256::new();
        let mut sent = 0u64;
        let mut buf = Vec::with_capacity(self.chunk_size.min(size as usize + 1));
        let read_chunk = |reader: &mut dyn Read, buf: &mut Vec<u8>| {
            buf.clear();
            reader
                .take(self.chunk_size as u64)
                .read_to_end(buf)
                .map_err(|source_err| RegistryError::Io {
                    path: source.describe(),
                    source: source_err,
                })
        };

        let mismatch = |actual: Digest, actual_size: u64| {
            let path = source.describe();
            if actual_size != size {
                RegistryError::Layout(LayoutError::SizeMismatch {
                    path,
                    expected: size,
                    actual: actual_size,
                })
            } else {
                RegistryError::Layout(LayoutError::DigestMismatch {
                    path,
                    expected: digest.clone(),
                    actual,
                })
            }
        };

        if size <= self.chunk_size as u64 {
            // Monolithic: one PUT with the whole blob, checked before a
            // session is opened.
            read_chunk(&mut reader, &mut buf)?;
            let mut extra = [0u8; 1];
            let more = reader.read(&mut extra).unwrap_or(0);
            let actual = Digest::of(&buf);
            if actual != *digest || buf.len() as u64 != size || more > 0 {
                return Err(mismatch(actual, buf.len() as u64 + more as u64));
            }
            let location = self.start_upload()?;
            let put = Call::new(Method::PUT, with_digest_param(&location, digest))
                .header("content-type", "application/octet-stream")
                .body(&buf);
            let reply = self.send(&put, 0)?;
            if reply.status != 201 {
                return Err(self.status_error(&put, &reply, 1));
            }
            return Ok(buf.len() as u64);
        }

        // Chunked: PATCH each chunk at the offset the last answer gave.
        let mut location = self.start_upload()?;
        loop {
            read_chunk(&mut reader, &mut buf)?;
            if buf.is_empty() {
                break;
            }
            hasher.update(&buf);
            let end = sent + buf.len() as u64 - 1;
            let patch = Call::new(Method::PATCH, location.clone())
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{sent}-{end}"))
                .body(&buf);
            let reply = self.send(&patch, 0)?;
            if reply.status != 202 && reply.status != 204 {
                return Err(self.status_error(&patch, &reply, 1));
            }
            sent += buf.len() as u64;
            location = self.location(&reply)?;
            tracing::debug!("{digest}: {sent}/{size} bytes sent");
        }
        let actual = Digest::from_sha256(hasher);
        if actual != *digest || sent != size {
            // Leave no half-finished session behind; its failure changes nothing.
            let _ = self.send(&Call::new(Method::DELETE, location), 0);
            return Err(mismatch(actual, sent));
        }
        let put = Call::new(Method::PUT, with_digest_param(&location, digest)).body(&[]);
        let reply = self.send(&put, 0)?;
        if reply.status != 201 {
            return Err(self.status_error(&put, &reply, 1));
        }
        Ok(sent)
    }

    /// Opens an upload session; returns its URL.
    fn start_upload(&self) -> Result<String, RegistryError> {
        let start = Call::new(Method::POST, self.url("blobs/uploads/")).body(&[]);
        let reply = self.send(&start, 0)?;
        if reply.status != 202 {
            return Err(self.status_error(&start, &reply, 1));
        }
        self.location(&reply)
    }

    /// Fetches a manifest by tag or digest; `None` when the registry has none.
    /// Returns the exact bytes and the media type.
    pub(crate) fn get_manifest(
        &self,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, String)>, RegistryError> {
        let call = Call::new(Method::GET, self.url(&format!("manifests/{reference}")))
            .header("accept", MANIFEST_ACCEPT);
        let reply = self.send(&call, self.retries)?;
        match reply.status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status_error(&call, &reply, 1)),
        }
        let media_type = reply
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .filter(|c| !c.is_empty() && c != "application/json")
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&reply.body)
                    .ok()
                    .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
            })
            .ok_or_else(|| self.protocol(format!("manifest `{reference}` has no media type")))?;
        Ok(Some((reply.body, media_type)))
    }

    /// Stores a manifest under a tag or its digest. Returns the registry's
    /// `OCI-Subject` header, which a registry with the referrers API sets
    /// when the manifest has a subject.
    pub(crate) fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Option<String>, RegistryError> {
        let call = Call::new(Method::PUT, self.url(&format!("manifests/{reference}")))
            .header("content-type", media_type)
            .body(bytes);
        let reply = self.send(&call, self.retries)?;
        if reply.status != 201 {
            return Err(self.status_error(&call, &reply, 1));
        }
        if let Some(d) = reply.header("docker-content-digest") {
            let ours = Digest::of(bytes);
            if d != ours.as_str() {
                return Err(RegistryError::DigestMismatch {
                    registry: self.registry.clone(),
                    what: format!("the manifest stored at `{reference}`"),
                    expected: ours.to_string(),
                    actual: d.to_string(),
                });
            }
        }
        Ok(reply.header("oci-subject").map(str::to_string))
    }

    /// A small blob, verified against its digest.
    pub(crate) fn get_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let mut call = Call::new(Method::GET, self.url(&format!("blobs/{digest}")));
        call.limit = limit;
        let reply = self.send(&call, self.retries)?;
        match reply.status {
            200 => {}
            404 => {
                return Err(RegistryError::NotFound {
                    registry: self.registry.clone(),
                    reference: format!("{}@{digest} (blob)", self.repository),
                })
            }
            _ => return Err(self.status_error(&call, &reply, 1)),
        }
        let actual = Digest::of(&reply.body);
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                registry: self.registry.clone(),
                what: format!("blob {digest}"),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(reply.body)
    }

    /// Whether the registry serves the OCI 1.1 referrers API. A registry
    /// without it answers 404 (distribution 2.8 has no such route).
    pub(crate) fn referrers_supported(&self, subject: &Digest) -> Result<bool, RegistryError> {
        let call = Call::new(Method::GET, self.url(&format!("referrers/{subject}")))
            .header("accept", MEDIA_TYPE_INDEX);
        let reply = self.send(&call, self.retries)?;
        match reply.status {
            200 => Ok(reply
                .header("content-type")
                .is_some_and(|c| c.starts_with(MEDIA_TYPE_INDEX))),
            404 | 405 | 400 | 501 => Ok(false),
            _ => Err(self.status_error(&call, &reply, 1)),
        }
    }

    /// Sends `call`, retrying transient failures up to `retries` times.
    fn send(&self, call: &Call<'_>, retries: u32) -> Result<Reply, RegistryError> {
        let mut attempt = 1;
        loop {
            let outcome = self.attempt(call);
            // (is it worth another try, why not, how long the server asks us to wait)
            let (transient, why, asked_wait) = match &outcome {
                Ok(r) => (
                    is_retryable_status(r.status),
                    format!("status {}", r.status),
                    retry_after(r),
                ),
                Err(AttemptError::Transport(e)) => (is_transient(e), e.to_string(), None),
                Err(AttemptError::Fatal(_)) => (false, String::new(), None),
            };
            if transient && attempt <= retries {
                let wait = backoff(attempt, asked_wait);
                tracing::warn!(
                    "{} {}: {why}; retrying in {wait:?} (attempt {}/{})",
                    call.method,
                    url_path(&call.url),
                    attempt + 1,
                    retries + 1
                );
                std::thread::sleep(wait);
                attempt += 1;
                continue;
            }
            return match outcome {
                Ok(reply) if is_retryable_status(reply.status) => {
                    Err(self.status_error(call, &reply, attempt))
                }
                Ok(reply) => Ok(reply),
                Err(AttemptError::Transport(e)) => Err(self.transport_error(call, &e, attempt)),
                Err(AttemptError::Fatal(e)) => Err(e),
            };
        }
    }

    /// One exchange, answering an authentication challenge once.
    fn attempt(&self, call: &Call<'_>) -> Result<Reply, AttemptError> {
        let current = if call.registry_auth {
            self.authorization.lock().expect("not poisoned").clone()
        } else {
            None
        };
        let reply = self.exchange(call, current.as_deref())?;
        if reply.status != 401 || !call.registry_auth {
            return Ok(reply);
        }
        let header = self
            .authorize(&reply, call, current.is_some())
            .map_err(AttemptError::Fatal)?;
        let reply = self.exchange(call, Some(&header))?;
        if reply.status == 401 {
            return Err(AttemptError::Fatal(self.unauthorized(
                self.refused_problem(),
                registry_message(&reply.body),
            )));
        }
        *self.authorization.lock().expect("not poisoned") = Some(header);
        Ok(reply)
    }

    fn refused_problem(&self) -> String {
        match &self.auth.credentials {
            Some(c) => format!(
                "the credentials of user `{}` for {} were refused",
                c.username, self.registry
            ),
            None => self.no_credentials_problem(),
        }
    }

    fn no_credentials_problem(&self) -> String {
        let mut p = format!(
            "it requires authentication and there are no credentials for {}",
            self.registry
        );
        if let Some(h) = &self.auth.helper {
            p.push_str(&format!(
                " (the auth file names the credential helper `{h}`, which armorred does not run; \
                 put an `auth` entry for the registry in the file)"
            ));
        }
        p
    }

    /// The `Authorization` value answering the challenge in `reply`.
    fn authorize(
        &self,
        reply: &Reply,
        call: &Call<'_>,
        had_auth: bool,
    ) -> Result<String, RegistryError> {
        let challenge = reply
            .header("www-authenticate")
            .and_then(auth::parse_challenge);
        match challenge {
            Some(Challenge::Basic) => match &self.auth.credentials {
                Some(c) => Ok(c.basic_header()),
                None => {
                    Err(self
                        .unauthorized(self.no_credentials_problem(), registry_message(&reply.body)))
                }
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope = scope.unwrap_or_else(|| {
                    let actions = if call.method == Method::GET || call.method == Method::HEAD {
                        "pull"
                    } else {
                        "pull,push"
                    };
                    format!("repository:{}:{actions}", self.repository)
                });
                self.fetch_token(&realm, service.as_deref(), &scope)
                    .map(|t| format!("Bearer {t}"))
            }
            None if had_auth => {
                Err(self.unauthorized(self.refused_problem(), registry_message(&reply.body)))
            }
            None => Err(self.unauthorized(
                "it sent no usable WWW-Authenticate challenge".into(),
                registry_message(&reply.body),
            )),
        }
    }

    /// Docker's token protocol: GET realm?service=…&scope=…, with Basic
    /// credentials when there are some (anonymous otherwise).
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(self.protocol(format!("token realm `{realm}` is not an http(s) URL")));
        }
        let mut url = format!("{realm}{}", if realm.contains('?') { '&' } else { '?' });
        if let Some(s) = service {
            url.push_str(&format!("service={}&", auth::query_escape(s)));
        }
        url.push_str(&format!("scope={}", auth::query_escape(scope)));
        let mut call = Call::new(Method::GET, url);
        call.registry_auth = false;
        call.limit = 1 << 20;
        if let Some(c) = &self.auth.credentials {
            call = call.header("authorization", c.basic_header());
        }
        let reply = self.send(&call, self.retries)?;
        if reply.status == 401 || reply.status == 403 {
            return Err(self.unauthorized(
                format!(
                    "its token server refused a token for `{scope}`: {}",
                    self.refused_problem()
                ),
                registry_message(&reply.body),
            ));
        }
        if reply.status != 200 {
            return Err(self.status_error(&call, &reply, 1));
        }
        let token: TokenResponse = serde_json::from_slice(&reply.body)
            .map_err(|e| self.protocol(format!("token server answer is not JSON: {e}")))?;
        token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.protocol("token server answer has no token".into()))
    }

    /// Sends once and reads the whole response.
    fn exchange(
        &self,
        call: &Call<'_>,
        authorization: Option<&str>,
    ) -> Result<Reply, AttemptError> {
        let mut builder = http::Request::builder()
            .method(call.method.clone())
            .uri(&call.url);
        for (k, v) in &call.headers {
            builder = builder.header(*k, v);
        }
        if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        let bad = |e: http::Error| {
            AttemptError::Fatal(
                self.protocol(format!("cannot build a request for {}: {e}", call.url)),
            )
        };
        let result = match call.body {
            Some(b) => self.agent.run(builder.body(b).map_err(bad)?),
            None => self.agent.run(builder.body(()).map_err(bad)?),
        };
        let mut response = result.map_err(AttemptError::Transport)?;
        let status = response.status().as_u16();
        tracing::debug!("{} {} → {status}", call.method, url_path(&call.url));
        let limit = if (200..300).contains(&status) {
            call.limit
        } else {
            ERROR_BODY_LIMIT
        };
        let body = if call.method == Method::HEAD {
            Vec::new()
        } else {
            match response.body_mut().with_config().limit(limit).read_to_vec() {
                Ok(b) => b,
                Err(ureq::Error::BodyExceedsLimit(n)) if (200..300).contains(&status) => {
                    return Err(AttemptError::Fatal(self.protocol(format!(
                        "the answer to {} {} is larger than the {n}-byte limit",
                        call.method,
                        url_path(&call.url)
                    ))))
                }
                // An error page cut short still has its status.
                Err(ureq::Error::BodyExceedsLimit(_)) => Vec::new(),
                Err(e) => return Err(AttemptError::Transport(e)),
            }
        };
        Ok(Reply {
            status,
            headers: response.headers().clone(),
            body,
        })
    }

    /// The absolute URL of a reply's `Location` header.
    fn location(&self, reply: &Reply) -> Result<String, RegistryError> {
        let loc = reply
            .header("location")
            .ok_or_else(|| self.protocol("an upload answer has no Location header".into()))?;
        Ok(resolve_location(&self.base, loc))
    }

    fn protocol(&self, message: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.registry.clone(),
            message,
        }
    }

    fn unauthorized(&self, problem: String, detail: Option<String>) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            auth_file: self.auth.file.clone(),
            problem,
            detail,
        }
    }

    fn status_error(&self, call: &Call<'_>, reply: &Reply, attempts: u32) -> RegistryError {
        if reply.status == 401 {
            return self.unauthorized(self.refused_problem(), registry_message(&reply.body));
        }
        RegistryError::Server {
            registry: self.registry.clone(),
            status: reply.status,
            method: call.method.to_string(),
            path: url_path(&call.url),
            message: registry_message(&reply.body),
            attempts,
        }
    }

    fn transport_error(&self, call: &Call<'_>, e: &ureq::Error, attempts: u32) -> RegistryError {
        let registry = self.registry.clone();
        if let Some(reason) = connect_failure(e) {
            return RegistryError::Unreachable {
                registry,
                reason,
                attempts,
            };
        }
        RegistryError::ConnectionDropped {
            registry,
            method: call.method.to_string(),
            path: url_path(&call.url),
            reason: e.to_string(),
            attempts,
        }
    }
}

/// Why no connection was made, if that is what `e` says.
fn connect_failure(e: &ureq::Error) -> Option<String> {
    use std::io::ErrorKind::*;
    use ureq::Timeout;
    match e {
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | NetworkUnreachable | HostUnreachable
            ) =>
        {
            Some(io.to_string())
        }
        ureq::Error::HostNotFound => Some("host not found".into()),
        ureq::Error::ConnectionFailed => Some("connection failed".into()),
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => {
            Some(format!("{e} after {CONNECT_TIMEOUT:?}"))
        }
        _ if is_tls(e) => Some(format!("TLS failed: {e}")),
        _ => None,
    }
}

/// TLS failures, including rustls errors ureq passes up as I/O errors (an
/// HTTPS request to a plain-HTTP server gets one).
fn is_tls(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => true,
        ureq::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>()),
        _ => false,
    }
}

/// Failures another attempt may cure: the network, not our request or TLS.
fn is_transient(e: &ureq::Error) -> bool {
    !is_tls(e)
        && !matches!(
            e,
            ureq::Error::BadUri(_)
                | ureq::Error::Http(_)
                | ureq::Error::RedirectFailed
                | ureq::Error::TooManyRedirects
                | ureq::Error::InvalidProxyUrl
                | ureq::Error::BodyExceedsLimit(_)
                | ureq::Error::StatusCode(_)
        )
}

/// 250 ms, 500 ms, 1 s, … up to 8 s; a server's Retry-After (capped) if longer.
pub(crate) fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let base = exp.min(BACKOFF_MAX);
    retry_after
        .map(|r| r.min(RETRY_AFTER_MAX))
        .map_or(base, |r| r.max(base))
}

fn retry_after(reply: &Reply) -> Option<Duration> {
    reply
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// `scheme://host/path?query` → `/path` (upload URLs carry long state).
pub(crate) fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    path.split('?').next().unwrap_or(path).to_string()
}

/// Location headers may be absolute or relative to the registry.
pub(crate) fn resolve_location(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        format!("{base}/{loc}")
    }
}

fn with_digest_param(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!(
        "{location}{sep}digest={}",
        auth::query_escape(digest.as_str())
    )
}

/// The registry's own words from an error body:
/// `{"errors":[{"code":"…","message":"…","detail":…}]}`.
pub(crate) fn registry_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| {
                let mut s = format!("{}: {}", e.code, e.message);
                if let Some(d) = e.detail.as_ref().filter(|d| !d.is_null()) {
                    let d = d.to_string();
                    let d: String = d.chars().take(300).collect();
                    s.push_str(&format!(" ({d})"));
                }
                s
            })
            .collect();
        if !parts.is_empty() {
            return Some(parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(300).collect())
}

fn is_loopback(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(1, None), Duration::from_millis(250));
        assert_eq!(backoff(2, None), Duration::from_millis(500));
        assert_eq!(backoff(3, None), Duration::from_secs(1));
        assert_eq!(backoff(20, None), BACKOFF_MAX);
        assert_eq!(
            backoff(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(backoff(1, Some(Duration::from_secs(3600))), RETRY_AFTER_MAX);
    }

    #[test]
    fn locations_and_paths() {
        let base = "http://127.0.0.1:5000";
        assert_eq!(
            resolve_location(base, "/v2/a/blobs/uploads/u?_state=x"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=x"
        );
        assert_eq!(
            resolve_location(base, "https://s3.example/u"),
            "https://s3.example/u"
        );
        assert_eq!(
            url_path("http://h:1/v2/a/blobs/uploads/u?_state=x"),
            "/v2/a/blobs/uploads/u"
        );
        let d = Digest::of(b"x");
        assert_eq!(
            with_digest_param("http://h/u?_state=x", &d),
            format!("http://h/u?_state=x&digest=sha256%3A{}", d.hex())
        );
    }

    #[test]
    fn registry_messages() {
        let body = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"}]}"#;
        assert_eq!(
            registry_message(body).unwrap(),
            r#"MANIFEST_BLOB_UNKNOWN: blob unknown to registry ("sha256:ab")"#
        );
        assert_eq!(registry_message(b"oops\n").unwrap(), "oops");
        assert_eq!(registry_message(b""), None);
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "127.0.0.1",
            "localhost",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn retryable_statuses() {
        for s in [500, 502, 503, 504, 429] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }
}

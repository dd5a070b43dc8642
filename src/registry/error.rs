//! Errors of the registry module. Callers branch on the kind: a 401 gets a
//! hint about credentials, an unreachable registry a hint about the address
//! or `--insecure`, and a dropped connection or 5xx is reported with the
//! number of attempts made, so "it retried and gave up" is visible.

use std::path::PathBuf;

use crate::oci::layout::LayoutError;
use crate::sign::SignError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("`{reference}` is not a valid image reference: {reason}")]
    BadReference { reference: String, reason: String },

    #[error("registry {registry} is unreachable ({reason}) after {attempts} attempt(s){hint}", hint = unreachable_hint(reason))]
    Unreachable {
        registry: String,
        reason: String,
        attempts: u32,
    },

    #[error("the connection to registry {registry} dropped during {method} {path} ({reason}); gave up after {attempts} attempt(s)")]
    ConnectionDropped {
        registry: String,
        method: String,
        path: String,
        reason: String,
        attempts: u32,
    },

    #[error("registry {registry} answered 401 Unauthorized: {problem} ({credentials}){detail}",
        credentials = credentials_source(auth_file.as_deref()),
        detail = detail.as_deref().map(|d| format!("; the registry says: {d}")).unwrap_or_default())]
    Unauthorized {
        registry: String,
        /// The auth file consulted, if one was found.
        auth_file: Option<PathBuf>,
        /// What was wrong: no credentials, or credentials refused.
        problem: String,
        detail: Option<String>,
    },

    #[error("registry {registry} answered {status} to {method} {path}{message}{after}",
        message = message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(),
        after = if *attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() })]
    Server {
        registry: String,
        status: u16,
        method: String,
        path: String,
        message: Option<String>,
        attempts: u32,
    },

    #[error("{reference} was not found in registry {registry}")]
    NotFound { registry: String, reference: String },

    #[error("registry {registry}: {message}")]
    Protocol { registry: String, message: String },

    #[error("{what} from registry {registry} does not match its digest {expected} (it hashes to {actual})")]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },

    #[error("auth file {}: {message}", path.display())]
    AuthFile { path: PathBuf, message: String },

    #[error(transparent)]
    Layout(#[from] LayoutError),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("signatures in registry {registry}")]
    Signature {
        registry: String,
        #[source]
        source: SignError,
    },
}

impl RegistryError {
    /// Errors that another attempt may cure: the network or the server, not us.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } | RegistryError::ConnectionDropped { .. } => true,
            RegistryError::Server { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }

    /// How many attempts were made, for errors that come from retrying.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            RegistryError::Unreachable { attempts, .. }
            | RegistryError::ConnectionDropped { attempts, .. }
            | RegistryError::Server { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    pub(crate) fn set_attempts(&mut self, n: u32) {
        match self {
            RegistryError::Unreachable { attempts, .. }
            | RegistryError::ConnectionDropped { attempts, .. }
            | RegistryError::Server { attempts, .. } => *attempts = n,
            _ => {}
        }
    }
}

/// 5xx (except "not implemented" / "version not supported") and 429 are worth
/// another try; other 4xx say our request is wrong and would fail again.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..600).contains(&status) && status != 501 && status != 505
}

fn unreachable_hint(reason: &str) -> &'static str {
    if reason.contains("TLS") || reason.contains("tls") {
        "; if it serves plain HTTP on loopback, pass --insecure"
    } else {
        ""
    }
}

fn credentials_source(auth_file: Option<&std::path::Path>) -> String {
    match auth_file {
        Some(p) => format!("auth file consulted: {}", p.display()),
        None => "no auth file found: set REGISTRY_AUTH_FILE or write ~/.docker/config.json".into(),
    }
}

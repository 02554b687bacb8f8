//! TLS: the settings toward clients (`[tls]`) and toward backends (`[backend_tls]`), and
//! what is built from them (`server`: the acceptor for clients, `client`: the connector
//! toward backends). `config` re-exports the settings.

use serde::{Deserialize, Serialize};

pub mod client;
pub mod server;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain presented to clients.
    pub cert: std::path::PathBuf,
    /// PEM private key of `cert`.
    pub key: std::path::PathBuf,
    /// Refuse clients that did not switch to TLS (MySQL's `require_secure_transport`).
    #[serde(default)]
    pub require_secure_transport: bool,
}

/// How Sluice's connections to a backend use TLS (MySQL's `--ssl-mode`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain TCP.
    #[default]
    Disabled,
    /// TLS when the backend offers it, else plain TCP; the certificate is not checked.
    Preferred,
    /// TLS or no connection; the certificate is not checked (encryption only).
    Required,
    /// TLS, and the backend's certificate must chain to `backend_tls.ca`.
    VerifyCa,
    /// As `verify_ca`, and the certificate must name the host of the backend's address.
    VerifyIdentity,
}

impl TlsMode {
    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Preferred => "preferred",
            TlsMode::Required => "required",
            TlsMode::VerifyCa => "verify_ca",
            TlsMode::VerifyIdentity => "verify_identity",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct BackendTls {
    /// Mode of every backend without its own `tls`.
    #[serde(default)]
    pub mode: TlsMode,
    /// PEM CA certificate(s) trusted for `verify_ca` / `verify_identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate chain (PEM) presented to backends that ask for one (`REQUIRE X509`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<std::path::PathBuf>,
    /// Private key of `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<std::path::PathBuf>,
}

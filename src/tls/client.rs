//! TLS toward backends (rustls): the client configuration of each backend, built once from
//! `[backend_tls]` and the backend's `tls` mode, and the certificate checks of each mode.

use super::{BackendTls, TlsMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

/// How connections to one backend use TLS.
pub struct TlsClient {
    pub mode: TlsMode,
    pub connector: TlsConnector,
    /// The name checked by `verify_identity` (the host of the backend's address).
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsClient({:?}, {:?})", self.mode, self.server_name)
    }
}

impl TlsClient {
    /// Whether a backend that does not offer TLS must be refused.
    pub fn required(&self) -> bool {
        self.mode != TlsMode::Preferred
    }
}

/// The TLS client for a backend at `address` with mode `mode` (default: the global one);
/// `None` when TLS is disabled.
pub fn client(
    cfg: &BackendTls,
    mode: Option<TlsMode>,
    address: &str,
) -> Result<Option<Arc<TlsClient>>, String> {
    let mode = mode.unwrap_or(cfg.mode);
    if mode == TlsMode::Disabled {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        TlsMode::Preferred | TlsMode::Required => Arc::new(NoCheck(provider.clone())),
        _ => {
            let ca = cfg
                .ca
                .as_deref()
                .ok_or_else(|| format!("tls = \"{}\" needs backend_tls.ca", mode.name()))?;
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("{}: unusable CA certificate: {e}", ca.display()))?;
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            if mode == TlsMode::VerifyCa {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&cfg.cert, &cfg.key) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read a private key from {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(read_certs(cert)?, key)
                .map_err(|e| format!("backend_tls.cert and key do not form a pair: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("backend_tls.cert and backend_tls.key go together".into()),
    };
    Ok(Some(Arc::new(TlsClient {
        mode,
        connector: TlsConnector::from(Arc::new(config)),
        server_name: server_name(address)?,
    })))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM in {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// The host part of `host:port` / `[v6]:port` as a TLS server name (DNS name or IP).
fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("{address}: {host} is not a valid TLS server name: {e}"))
}

/// `verify_ca`: the chain must lead to the CA; the name is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `preferred` / `required`: encryption without authentication of the server (the
/// handshake signatures are still checked against the presented certificate).
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_addresses() {
        assert_eq!(
            format!("{:?}", server_name("127.0.0.1:3306").unwrap()),
            "IpAddress(V4(Ipv4Addr([127, 0, 0, 1])))"
        );
        assert!(matches!(
            server_name("db1.example.com:3306").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("[::1]:3306").unwrap(),
            ServerName::IpAddress(_)
        ));
    }

    #[test]
    fn verify_modes_need_a_ca() {
        let cfg = BackendTls {
            mode: TlsMode::VerifyCa,
            ..Default::default()
        };
        let e = client(&cfg, None, "127.0.0.1:3306").unwrap_err();
        assert!(e.contains("backend_tls.ca"), "{e}");
        assert!(client(&cfg, Some(TlsMode::Disabled), "h:1")
            .unwrap()
            .is_none());
        assert!(client(&cfg, Some(TlsMode::Required), "h:1")
            .unwrap()
            .is_some());
    }
}

//! TLS toward the backends: servers that refuse plain connections
//! (`require_secure_transport = ON`) reached with each `backend_tls` mode. One test in its own
//! binary: it makes the whole topology TLS-only.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use sluice::config::{Config, TlsMode};

/// What the backend session says of its TLS: its server certificate's end of validity, empty
/// over plain TCP (`Ssl_version` and `Ssl_cipher` read through Sluice describe the client's
/// own connection instead, see README "Session isolation").
const SSL_VERSION: &str = "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
     WHERE VARIABLE_NAME = 'Ssl_server_not_after'";

fn with_tls(mode: TlsMode, ca: Option<std::path::PathBuf>) -> Config {
    let mut cfg = config();
    cfg.backend_tls.mode = mode;
    cfg.backend_tls.ca = ca;
    cfg
}

/// The TLS of a replica's and of the primary's backend session, through Sluice.
async fn backend_tls_versions(p: &sluice::app::Proxy) -> Result<(String, String), String> {
    let mut c = mysql_async::Conn::new(opts(p, None))
        .await
        .map_err(|e| e.to_string())?;
    let read: Option<String> = c
        .query_first(SSL_VERSION)
        .await
        .map_err(|e| e.to_string())?;
    c.query_drop("BEGIN").await.map_err(|e| e.to_string())?;
    let on_primary: Option<String> = c
        .query_first(format!("{SSL_VERSION} FOR UPDATE"))
        .await
        .map_err(|e| e.to_string())?;
    c.query_drop("COMMIT").await.map_err(|e| e.to_string())?;
    Ok((read.unwrap_or_default(), on_primary.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_only_backends_are_reached_with_each_mode() {
    let t = topology();
    for i in 0..t.servers.len() {
        t.sql(i, "SET GLOBAL require_secure_transport = ON")
            .await
            .unwrap();
    }
    let ca = t.dir.join("tls").join("ca.pem");

    // plain TCP: the servers refuse Sluice's connections, and the client is told why
    let p = proxy(with_tls(TlsMode::Disabled, None)).await;
    let e = backend_tls_versions(&p).await.unwrap_err();
    // (MariaDB 10.11 answers 1045, MySQL 8 3159 "insecure transport")
    assert!(
        e.contains("1045") || e.contains("insecure transport"),
        "{e}"
    );
    drop(p);

    for (mode, ca) in [
        (TlsMode::Required, None),
        (TlsMode::Preferred, None),
        (TlsMode::VerifyCa, Some(ca.clone())),
        (TlsMode::VerifyIdentity, Some(ca.clone())),
    ] {
        let p = proxy(with_tls(mode, ca)).await;
        let (replica, primary) = backend_tls_versions(&p)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        for v in [&replica, &primary] {
            assert!(!v.is_empty(), "{mode:?}: a backend session without TLS");
        }
        // the monitor reaches the servers too
        let mut probed = serde_json::Value::Null;
        for _ in 0..50 {
            probed = backend_status(&p, "db1").await;
            if probed["probes"].as_u64().unwrap_or(0) > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(probed["healthy"], true, "{mode:?}: {probed}");
    }

    // a CA that did not sign the servers' certificate: refused, with the reason
    let other = std::env::temp_dir().join(format!("sluice-other-ca-{}", std::process::id()));
    let certs = sluice::sandbox::certs::ensure(&other).unwrap();
    let p = proxy(with_tls(TlsMode::VerifyCa, Some(certs.ca))).await;
    let e = backend_tls_versions(&p).await.unwrap_err();
    assert!(e.contains("TLS handshake failed"), "{e}");
    assert!(e.contains("invalid peer certificate"), "{e}");
    let _ = std::fs::remove_dir_all(other);
}

//! A throw-away CA and server certificate (rcgen) so the sandbox and the tests offer TLS:
//! `<dir>/tls/ca.pem` (give it to clients: `--ssl-ca`), `server.pem`, `server-key.pem`
//! (names: localhost and 127.0.0.1).

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};

pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the files of the sandbox in `dir` are.
pub fn paths(dir: &Path) -> Certs {
    let d = dir.join("tls");
    Certs {
        ca: d.join("ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server-key.pem"),
    }
}

/// Writes the files (kept if they already exist, so clients keep trusting the CA). Each file
/// is written under a temporary name and renamed.
pub fn ensure(dir: &Path) -> Result<Certs, String> {
    let d = dir.join("tls");
    let certs = paths(dir);
    if certs.ca.exists() && certs.cert.exists() && certs.key.exists() {
        return Ok(certs);
    }
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let err = |e: rcgen::Error| format!("certificate generation: {e}");
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Sluice sandbox CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(err)?).map_err(err)?;
    let mut server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(err)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().map_err(err)?;
    let cert = server.signed_by(&key, &ca).map_err(err)?;
    let write = |p: &Path, s: String| {
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, s)
            .and_then(|_| std::fs::rename(&tmp, p))
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    write(&certs.ca, ca.pem())?;
    write(&certs.cert, cert.pem())?;
    write(&certs.key, key.serialize_pem())?;
    Ok(certs)
}

//! A client's way in: refused while its host is blocked, greeting, optional switch to TLS
//! after the client's SSL request, authentication (`auth::Handshake`) within
//! `listen.handshake_timeout`, failed logins counted per host, and a per-user session slot.

use super::auth::{greeting, nonce, Handshake, HandshakeError, Login};
use crate::access::user_limit::UserSlot;
use crate::error::SqlError;
use crate::protocol::packet::{PacketReader, PacketWriter};
use crate::protocol::stream::{ClientRead, ClientWrite};
use crate::protocol::CapabilityFlags;
use crate::shared::Shared;
use std::net::IpAddr;
use tokio::net::TcpStream;

pub struct Client {
    pub r: PacketReader<ClientRead>,
    pub w: PacketWriter<ClientWrite>,
    /// The TLS session with the client, when it switched to TLS.
    pub tls: Option<TlsInfo>,
}

/// What `SHOW STATUS LIKE 'Ssl_%'` tells a client about its own TLS session.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// OpenSSL's name of the cipher (as a MariaDB or MySQL server reports it).
    pub cipher: String,
    /// `TLSv1.2`, `TLSv1.3`.
    pub version: String,
}

impl TlsInfo {
    fn of(conn: &rustls::ServerConnection) -> TlsInfo {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        };
        let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
        let iana = suite.and_then(|s| s.as_str()).unwrap_or_default();
        TlsInfo {
            cipher: openssl_name(iana),
            version: version.into(),
        }
    }
}

/// OpenSSL's name of an IANA cipher suite name as rustls spells it
/// (`TLS13_AES_128_GCM_SHA256` is `TLS_AES_128_GCM_SHA256`,
/// `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384` is `ECDHE-RSA-AES256-GCM-SHA384`).
fn openssl_name(iana: &str) -> String {
    if let Some(rest) = iana.strip_prefix("TLS13_") {
        return format!("TLS_{rest}");
    }
    let parts = iana
        .strip_prefix("TLS_")
        .and_then(|r| r.split_once("_WITH_"));
    let Some((kx, cipher)) = parts else {
        return iana.into();
    };
    let cipher = cipher
        .replace("AES_128_GCM", "AES128-GCM")
        .replace("AES_256_GCM", "AES256-GCM")
        .replace("CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305")
        .replace('_', "-");
    format!("{}-{cipher}", kx.replace('_', "-"))
}

/// Runs the login of a new client; returns it, the sequence id of the final OK, and the
/// (possibly encrypted) connection. Rejections were already told to the client.
pub async fn accept(
    shared: &Shared,
    stream: TcpStream,
    connection_id: u32,
    peer_host: &str,
    on_reject: &(dyn Fn(&SqlError) + Send + Sync),
) -> Result<(Login, u8, Client), HandshakeError> {
    let acceptor = shared.tls.load_full();
    let mut client = Client::plain(stream);
    let nonce = nonce();
    let hello = greeting(
        &shared.server_version,
        connection_id,
        &nonce,
        acceptor.is_some(),
    );
    client.w.write_packet(&mut 0, &hello).await?;
    client.w.flush().await?;
    let mut buf = Vec::new();
    let mut seq = client.r.read_packet_exact(&mut buf, 1 << 16).await?;
    let wants_tls = buf.len() == 32
        && crate::protocol::lenenc::u32_at(&buf, 0)
            .is_some_and(|c| c & CapabilityFlags::CLIENT_SSL.bits() != 0);
    if let (true, Some(acceptor)) = (wants_tls, acceptor.as_deref()) {
        client = client.upgrade(acceptor).await?;
        seq = client.r.read_logical(&mut buf, 1 << 16).await?;
    }
    let cfg = shared.config.load();
    let tls = client.is_tls();
    let requires_tls = |user: &str| tls_required(&cfg, user);
    let hs = Handshake {
        requires_tls: Some(&requires_tls),
        r: &mut client.r,
        w: &mut client.w,
        users: &cfg.users,
        accounts: shared.backend_accounts(),
        server_version: &shared.server_version,
        connection_id,
        peer_host: peer_host.to_string(),
        tls,
        on_reject: Some(on_reject),
    };
    let (login, seq) = hs.login(nonce, &buf, seq.wrapping_add(1)).await?;
    Ok((login, seq, client))
}

pub(crate) fn tls_required(cfg: &crate::config::Config, user: &str) -> bool {
    cfg.tls.as_ref().is_some_and(|t| t.require_secure_transport)
        || cfg.users.iter().any(|u| u.name == user && u.require_tls)
}

/// A logged-in client, before Sluice's final OK (sequence id `seq`).
pub struct Admitted {
    pub login: Login,
    pub seq: u8,
    pub client: Client,
    /// Counts the session against `[[users]] max_connections` until dropped.
    pub user_slot: UserSlot,
}

/// Runs a new client's way in; `None` when it is gone or was refused (and told why).
pub async fn admit(
    shared: &Shared,
    mut stream: TcpStream,
    peer_ip: Option<IpAddr>,
    connection_id: u32,
) -> Option<Admitted> {
    let peer = peer_ip.map_or_else(|| "unknown".into(), |ip| ip.to_string());
    let _ = stream.set_nodelay(true);
    if let Some(ip) = peer_ip.filter(|ip| shared.auth_throttle.is_blocked(*ip)) {
        let e = SqlError::new(
            1129,
            "HY000",
            format!("Host '{ip}' is blocked because of many failed logins (Sluice listen.auth_failure_limit); it is unblocked after listen.auth_failure_block"),
        );
        let mut w = PacketWriter::new(&mut stream);
        let _ = w.write_packet(&mut 0, &e.to_packet()).await;
        let _ = w.flush().await;
        return None;
    }
    let timeout = shared.config.load().listen.handshake_timeout.0;
    // 3159: right password, insecure transport: not a guessing attempt. A refusal the
    // handshake sends is counted before the client reads it (it may retry at once, on
    // another worker); others when the handshake returns.
    let counted = std::sync::atomic::AtomicBool::new(false);
    let on_reject = |e: &SqlError| {
        if e.code != 3159 && !counted.swap(true, std::sync::atomic::Ordering::Relaxed) {
            count_failure(shared, peer_ip, &peer);
        }
    };
    let login = accept(shared, stream, connection_id, &peer, &on_reject);
    let (login, seq, mut client) = match crate::timer::timeout(timeout, login).await {
        Ok(Ok(x)) => x,
        Ok(Err(HandshakeError::Rejected(e))) => {
            tracing::info!(client = %peer, error = %e, "login rejected");
            on_reject(&e);
            return None;
        }
        Ok(Err(HandshakeError::Io(_))) => return None,
        Err(_) => {
            tracing::info!(client = %peer, "login not completed within listen.handshake_timeout; disconnected");
            return None;
        }
    };
    let limit = shared
        .config
        .load()
        .users
        .iter()
        .find(|u| u.name == login.user)
        .map_or(0, |u| u.max_connections);
    let Some(user_slot) = shared.user_counts.take(&login.user, limit) else {
        let e = SqlError::new(
            1226,
            "42000",
            format!(
                "User '{}' has exceeded the 'max_user_connections' resource (current value: {limit}; Sluice [[users]] max_connections)",
                login.user
            ),
        );
        let mut seq = seq;
        let _ = client.w.write_packet(&mut seq, &e.to_packet()).await;
        let _ = client.w.flush().await;
        return None;
    };
    if let Some(ip) = peer_ip {
        shared.auth_throttle.succeeded(ip);
    }
    Some(Admitted {
        login,
        seq,
        client,
        user_slot,
    })
}

/// A failed login: counted, and the host blocked once it reaches the limit.
fn count_failure(shared: &Shared, peer_ip: Option<IpAddr>, peer: &str) {
    shared.metrics.auth_failures_total.inc();
    let cfg = shared.config.load();
    let (limit, block) = (
        cfg.listen.auth_failure_limit,
        cfg.listen.auth_failure_block.0,
    );
    if let Some(ip) = peer_ip {
        if shared.auth_throttle.failed(ip, limit, block) {
            shared.metrics.auth_blocked_hosts_total.inc();
            tracing::warn!(client = %peer, "{limit} failed logins: host blocked for {block:?}");
        }
    }
}

impl Client {
    fn plain(stream: TcpStream) -> Client {
        let (r, w) = stream.into_split();
        Client {
            r: PacketReader::new(ClientRead::Tcp(
                crate::protocol::sock::TcpIn::new(r),
                Default::default(),
            )),
            w: PacketWriter::new(ClientWrite::Tcp(w)),
            tls: None,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.r.get_ref().is_tls()
    }

    /// Replaces the plain connection with a TLS one (server side of the TLS handshake).
    async fn upgrade(self, acceptor: &tokio_rustls::TlsAcceptor) -> Result<Client, HandshakeError> {
        let (ClientRead::Tcp(r, _), ClientWrite::Tcp(w)) =
            (self.r.into_inner(), self.w.into_inner())
        else {
            return Err(HandshakeError::Io(std::io::ErrorKind::InvalidInput.into()));
        };
        let tcp = r
            .into_inner()
            .reunite(w)
            .map_err(|_| HandshakeError::Io(std::io::ErrorKind::InvalidInput.into()))?;
        let watch = crate::protocol::stream::Watch::new(&tcp);
        let tls = acceptor.accept(tcp).await?;
        let info = TlsInfo::of(tls.get_ref().1);
        let (r, w) = tokio::io::split(tls);
        Ok(Client {
            r: PacketReader::new(ClientRead::Tls(r, watch)),
            w: PacketWriter::new(ClientWrite::Tls(w)),
            tls: Some(info),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::openssl_name;

    #[test]
    fn cipher_names_are_openssl_s() {
        assert_eq!(
            openssl_name("TLS13_AES_256_GCM_SHA384"),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            openssl_name("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
            "ECDHE-RSA-AES256-GCM-SHA384"
        );
        assert_eq!(
            openssl_name("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        );
    }
}

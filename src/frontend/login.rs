//! A client's way in: greeting, optional switch to TLS after the client's SSL request, then
//! authentication (`auth::Handshake`).

use super::auth::{greeting, nonce, Handshake, HandshakeError, Login};
use crate::error::SqlError;
use crate::protocol::packet::{PacketReader, PacketWriter};
use crate::protocol::stream::{ClientRead, ClientWrite};
use crate::protocol::CapabilityFlags;
use crate::shared::Shared;
use tokio::net::TcpStream;

pub struct Client {
    pub r: PacketReader<ClientRead>,
    pub w: PacketWriter<ClientWrite>,
}

impl Client {
    fn plain(stream: TcpStream) -> Client {
        let (r, w) = stream.into_split();
        Client {
            r: PacketReader::new(ClientRead::Tcp(r)),
            w: PacketWriter::new(ClientWrite::Tcp(w)),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.r.get_ref().is_tls()
    }

    /// Replaces the plain connection with a TLS one (server side of the TLS handshake).
    async fn upgrade(self, acceptor: &tokio_rustls::TlsAcceptor) -> Result<Client, HandshakeError> {
        let (ClientRead::Tcp(r), ClientWrite::Tcp(w)) = (self.r.into_inner(), self.w.into_inner())
        else {
            return Err(HandshakeError::Io(std::io::ErrorKind::InvalidInput.into()));
        };
        let tcp = r
            .reunite(w)
            .map_err(|_| HandshakeError::Io(std::io::ErrorKind::InvalidInput.into()))?;
        let tls = acceptor.accept(tcp).await?;
        let (r, w) = tokio::io::split(tls);
        Ok(Client {
            r: PacketReader::new(ClientRead::Tls(r)),
            w: PacketWriter::new(ClientWrite::Tls(w)),
        })
    }
}

/// Runs the login of a new client; returns it, the sequence id of the final OK, and the
/// (possibly encrypted) connection. Rejections were already told to the client.
pub async fn accept(
    shared: &Shared,
    stream: TcpStream,
    connection_id: u32,
    peer_host: &str,
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
    let hs = Handshake {
        r: &mut client.r,
        w: &mut client.w,
        users: &cfg.users,
        accounts: shared.backend_accounts(),
        server_version: &shared.server_version,
        connection_id,
        peer_host: peer_host.to_string(),
    };
    let (login, mut seq) = hs.login(nonce, &buf, seq.wrapping_add(1)).await?;
    if !client.is_tls() && tls_required(&cfg, &login.user) {
        let e = SqlError::new(
            3159,
            "HY000",
            "Connections using insecure transport are prohibited (Sluice [tls] \
             require_secure_transport or the user's require_tls); connect with SSL",
        );
        let _ = client.w.write_packet(&mut seq, &e.to_packet()).await;
        let _ = client.w.flush().await;
        return Err(HandshakeError::Rejected(e));
    }
    Ok((login, seq, client))
}

fn tls_required(cfg: &crate::config::Config, user: &str) -> bool {
    cfg.tls.as_ref().is_some_and(|t| t.require_secure_transport)
        || cfg.users.iter().any(|u| u.name == user && u.require_tls)
}

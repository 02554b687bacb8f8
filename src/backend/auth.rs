//! Client-side handshake toward a backend: mysql_native_password and caching_sha2_password
//! (fast path, and full authentication with the server's RSA public key when not on TLS).

use super::stream::{split_tcp, split_tls};
use super::{BackendConn, BackendError, ConnectOpts};
use crate::error::SqlError;
use crate::protocol::packet::{PacketReader, PacketWriter};
use mysql_common::auth::plugins::caching_sha2_password::scramble_sha256;
use mysql_common::auth::plugins::mysql_native_password::scramble_native;
use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};
use mysql_common::crypto;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse, SslRequest,
};
use mysql_common::proto::{MyDeserialize, MySerialize};
use tokio::net::TcpStream;

const NATIVE: &[u8] = b"mysql_native_password";
const SHA2: &[u8] = b"caching_sha2_password";
const ED25519: &[u8] = b"client_ed25519";

fn proto(msg: &str) -> BackendError {
    BackendError::Protocol(msg.into())
}

/// The auth response bytes for `plugin` with `nonce`.
fn scramble(plugin: &[u8], nonce: &[u8], opts: &ConnectOpts) -> Result<Vec<u8>, BackendError> {
    let password = opts.password.as_str();
    if let Some(h1) = &opts.native_hash1 {
        return match plugin {
            NATIVE => Ok(crate::password::native::answer(
                nonce.get(..20).ok_or_else(|| proto("short nonce"))?,
                h1,
            )),
            other => Err(proto(&format!(
                "the backend asks for {} but Sluice only holds this user's mysql_native_password \
                 hash (accounts loaded from the backend); give the user's password in [[users]]",
                String::from_utf8_lossy(other)
            ))),
        };
    }
    if password.is_empty() {
        return Ok(Vec::new());
    }
    match plugin {
        NATIVE => Ok(scramble_native(nonce, password.as_bytes())
            .map(|s| s.to_vec())
            .unwrap_or_default()),
        SHA2 => {
            let nonce: &[u8; 20] = nonce
                .get(..20)
                .and_then(|n| n.try_into().ok())
                .ok_or_else(|| proto("short nonce"))?;
            Ok(scramble_sha256(nonce, password.as_bytes())
                .map(|s| s.to_vec())
                .unwrap_or_default())
        }
        ED25519 => Ok(crate::password::ed25519::sign(password.as_bytes(), nonce).to_vec()),
        other => Err(proto(&format!(
            "backend asks for unsupported auth plugin {}",
            String::from_utf8_lossy(other)
        ))),
    }
}

async fn read(conn: &mut BackendConn) -> Result<u8, BackendError> {
    Ok(conn.r.read_logical(&mut conn.buf, 1 << 20).await?)
}

async fn write(conn: &mut BackendConn, seq: &mut u8, payload: &[u8]) -> Result<(), BackendError> {
    conn.w.write_packet(seq, payload).await?;
    conn.w.flush().await?;
    Ok(())
}

/// What the greeting and the options decided.
struct Negotiated {
    caps: CapabilityFlags,
    mariadb_caps: MariadbCapabilities,
    plugin: Vec<u8>,
    nonce: Vec<u8>,
    version: (u16, u16, u16),
}

fn negotiate(hs: &HandshakePacket<'_>, opts: &ConnectOpts) -> Result<Negotiated, BackendError> {
    let server_caps = hs.capabilities();
    if !server_caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
        return Err(proto("backend does not speak protocol 4.1"));
    }
    let mut nonce = hs.nonce();
    nonce.truncate(20);
    let mut plugin = hs.auth_plugin_name_ref().unwrap_or(NATIVE).to_vec();
    if plugin != NATIVE && plugin != SHA2 {
        plugin = NATIVE.to_vec();
    }
    let mut caps = BackendConn::wanted_capabilities(opts.flavour) & server_caps;
    let ext = MariadbCapabilities::MARIADB_CLIENT_EXTENDED_METADATA;
    let mut mariadb_caps = MariadbCapabilities::empty();
    if opts.flavour.extended_metadata {
        let offered = !server_caps.contains(CapabilityFlags::CLIENT_LONG_PASSWORD)
            && hs.mariadb_ext_capabilities().contains(ext);
        if !offered {
            return Err(proto(
                "the client negotiated MariaDB extended metadata, which this backend does not offer",
            ));
        }
        // MariaDB reads the extended capabilities only from a client without CLIENT_MYSQL
        caps -= CapabilityFlags::CLIENT_LONG_PASSWORD;
        mariadb_caps = ext;
    }
    if let Some(t) = &opts.tls {
        if server_caps.contains(CapabilityFlags::CLIENT_SSL) {
            caps |= CapabilityFlags::CLIENT_SSL;
        } else if t.required() {
            return Err(proto(&format!(
                "the backend does not offer TLS (tls = \"{}\" for it; enable TLS on the server \
                 or lower the mode)",
                t.mode.name()
            )));
        }
    }
    Ok(Negotiated {
        caps,
        mariadb_caps,
        plugin,
        nonce,
        version: hs.server_version_parsed().unwrap_or((5, 7, 0)),
    })
}

/// Sends the SSL request (sequence id 1): the start of a handshake response, after which
/// TLS begins.
async fn send_ssl_request(tcp: &mut TcpStream, n: &Negotiated) -> Result<(), BackendError> {
    let mut payload = Vec::new();
    SslRequest::new(n.caps, 1 << 30, 45) // utf8mb4_general_ci
        .with_mariadb_capabilities(n.mariadb_caps)
        .serialize(&mut payload);
    let mut w = PacketWriter::new(tcp);
    w.write_packet(&mut 1, &payload).await?;
    w.flush().await?;
    Ok(())
}

/// Opens and logs in a connection (TLS first when configured and offered).
pub(super) async fn connect(opts: &ConnectOpts) -> Result<BackendConn, BackendError> {
    let tcp = TcpStream::connect(&opts.address).await?;
    tcp.set_nodelay(true)?;
    let mut r = PacketReader::new(tcp);
    let mut buf = Vec::new();
    r.read_logical(&mut buf, 1 << 20).await?;
    if buf.first() == Some(&0xFF) {
        return Err(BackendError::Server(SqlError::from_packet(&buf)));
    }
    let hs = HandshakePacket::deserialize((), &mut ParseBuf(&buf))
        .map_err(|e| proto(&format!("bad handshake: {e}")))?;
    let n = negotiate(&hs, opts)?;
    if r.buffered() > 0 {
        return Err(proto("unexpected bytes after the server greeting"));
    }
    let mut tcp = r.into_inner();
    let (rd, wr, seq) = match &opts.tls {
        Some(t) if n.caps.contains(CapabilityFlags::CLIENT_SSL) => {
            send_ssl_request(&mut tcp, &n).await?;
            let s = t
                .connector
                .connect(t.server_name.clone(), tcp)
                .await
                .map_err(|e| proto(&format!("TLS handshake failed: {e}")))?;
            let (rd, wr) = split_tls(s);
            (rd, wr, 2)
        }
        _ => {
            let (rd, wr) = split_tcp(tcp);
            (rd, wr, 1)
        }
    };
    let mut conn = BackendConn::new(rd, wr, opts);
    conn.thread_id = hs.connection_id();
    conn.server_version = String::from_utf8_lossy(hs.server_version_ref()).into_owned();
    conn.deprecate_eof = n.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF);
    // a login that fails part way is dropped without a COM_QUIT (see `Drop for BackendConn`)
    conn.busy = true;
    authenticate(&mut conn, opts, n, seq).await?;
    conn.busy = false;
    Ok(conn)
}

async fn authenticate(
    conn: &mut BackendConn,
    opts: &ConnectOpts,
    n: Negotiated,
    mut seq: u8,
) -> Result<(), BackendError> {
    let Negotiated {
        caps,
        mariadb_caps,
        mut plugin,
        mut nonce,
        version,
    } = n;
    let data = scramble(&plugin, &nonce, opts)?;
    let resp = HandshakeResponse::new(
        Some(&data[..]),
        version,
        Some(opts.user.as_bytes()),
        opts.database.as_deref().map(str::as_bytes),
        Some(AuthPlugin::from_bytes(&plugin)),
        caps,
        None,
        1 << 30,
    )
    .with_mariadb_ext_capabilities(mariadb_caps);
    let mut out = Vec::new();
    resp.serialize(&mut out);
    write(conn, &mut seq, &out).await?;
    loop {
        seq = read(conn).await?.wrapping_add(1);
        match conn.buf.first().copied() {
            Some(0x00) => return Ok(()),
            Some(0xFF) => return Err(BackendError::Server(SqlError::from_packet(&conn.buf))),
            Some(0xFE) => {
                let sw = AuthSwitchRequest::deserialize((), &mut ParseBuf(&conn.buf))
                    .map_err(|e| proto(&format!("bad auth switch: {e}")))?;
                plugin = sw.auth_plugin().as_bytes().to_vec();
                nonce = sw.plugin_data().to_vec();
                let data = scramble(&plugin, &nonce, opts)?;
                write(conn, &mut seq, &data).await?;
            }
            Some(0x01) if plugin == SHA2 => match conn.buf.get(1) {
                Some(0x03) => continue, // fast auth succeeded; OK follows
                Some(0x04) if conn.r.get_ref().is_tls() => {
                    // full authentication over TLS: the password itself
                    let mut pass = opts.password.as_bytes().to_vec();
                    pass.push(0);
                    write(conn, &mut seq, &pass).await?;
                }
                Some(0x04) => {
                    // full authentication: request the public key, answer RSA-encrypted
                    write(conn, &mut seq, &[0x02]).await?;
                    seq = read(conn).await?.wrapping_add(1);
                    let key = conn
                        .buf
                        .get(1..)
                        .ok_or_else(|| proto("empty public key"))?
                        .to_vec();
                    let mut pass = opts.password.as_bytes().to_vec();
                    pass.push(0);
                    for (i, b) in pass.iter_mut().enumerate() {
                        *b ^= nonce[i % nonce.len()];
                    }
                    let enc = crypto::encrypt(&pass, &key)
                        .map_err(|e| proto(&format!("RSA encryption failed: {e}")))?;
                    write(conn, &mut seq, &enc).await?;
                }
                _ => return Err(proto("unexpected caching_sha2_password message")),
            },
            _ => return Err(proto("unexpected packet during authentication")),
        }
    }
}

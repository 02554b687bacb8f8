//! Server-side handshake toward clients: capability negotiation and password verification
//! (mysql_native_password; caching_sha2_password answered on its fast path).

use crate::config::User;
use crate::error::SqlError;
use crate::protocol::packet::{PacketReader, PacketWriter, ReadError};
use crate::protocol::{CapabilityFlags, StatusFlags};
use mysql_common::auth::plugins::caching_sha2_password::scramble_sha256;
use mysql_common::auth::plugins::mysql_native_password::scramble_native;
use mysql_common::constants::MariadbCapabilities;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthSwitchRequest, HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};

pub const NATIVE: &[u8] = b"mysql_native_password";
pub const SHA2: &[u8] = b"caching_sha2_password";
const CLEAR: &[u8] = b"mysql_clear_password";

/// Capabilities Sluice offers clients. In front of MariaDB it presents itself as MariaDB
/// does: without CLIENT_MYSQL (= CLIENT_LONG_PASSWORD), so that clients send MariaDB's
/// extended capabilities (extended column metadata).
pub fn server_capabilities(mariadb: bool) -> CapabilityFlags {
    let caps = server_capabilities_mysql();
    if mariadb {
        caps - CapabilityFlags::CLIENT_LONG_PASSWORD
    } else {
        caps
    }
}

/// Whether the backends (by the version Sluice announces) are MariaDB 10.5 or later, which
/// support extended column metadata.
pub fn offers_extended_metadata(server_version: &str) -> bool {
    let Some(pos) = server_version.find("-MariaDB") else {
        return false;
    };
    let v = server_version[..pos].trim_start_matches("5.5.5-");
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (10, 5)
}

/// MariaDB extended capabilities Sluice offers (and passes through to backends).
pub const MARIADB_EXT_CAPS: MariadbCapabilities =
    MariadbCapabilities::MARIADB_CLIENT_EXTENDED_METADATA;

fn server_capabilities_mysql() -> CapabilityFlags {
    CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_FOUND_ROWS
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_LOCAL_FILES
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_INTERACTIVE
        | CapabilityFlags::CLIENT_IGNORE_SPACE
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_COMPRESS
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_CONNECT_ATTRS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_SESSION_TRACK
}

/// A 20-byte printable nonce without NUL bytes.
pub fn nonce() -> [u8; 20] {
    let mut rng = rand::rng();
    std::array::from_fn(|_| rng.random_range(0x21u8..0x7F))
}

/// Whether `data` is the right answer to `nonce` for `password` under `plugin`.
pub fn verify(plugin: &[u8], data: &[u8], nonce: &[u8; 20], password: &str) -> bool {
    if password.is_empty() {
        return data.is_empty() || data == [0];
    }
    match plugin {
        NATIVE => scramble_native(nonce, password.as_bytes()).is_some_and(|s| s[..] == *data),
        SHA2 => scramble_sha256(nonce, password.as_bytes()).is_some_and(|s| s[..] == *data),
        _ => false,
    }
}

/// The initial handshake packet; `tls` offers CLIENT_SSL.
pub fn greeting(server_version: &str, connection_id: u32, nonce: &[u8; 20], tls: bool) -> Vec<u8> {
    let mut scramble_2 = nonce[8..].to_vec();
    scramble_2.push(0);
    let mariadb = offers_extended_metadata(server_version);
    let mut caps = server_capabilities(mariadb);
    if tls {
        caps |= CapabilityFlags::CLIENT_SSL;
    }
    let mut hs = HandshakePacket::new(
        10,
        server_version.as_bytes(),
        connection_id,
        nonce[..8].try_into().expect("8 bytes"),
        Some(scramble_2),
        caps,
        45, // utf8mb4_general_ci
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(NATIVE),
    );
    if mariadb {
        hs = hs.with_mariadb_ext_capabilities(MARIADB_EXT_CAPS);
    }
    let mut out = Vec::new();
    hs.serialize(&mut out);
    out
}

/// What Sluice knows of a user's secret.
enum Known {
    Plain(String),
    /// SHA1(SHA1(password)).
    Hash(crate::password::native::Hash),
    /// caching_sha2_password's stored form: needs the plaintext (full authentication).
    Sha2(crate::password::sha2crypt::Sha2Crypt),
    /// MariaDB's ed25519 public key: needs the plaintext (over TLS).
    Ed25519(crate::password::ed25519::PublicKey),
    Unsupported(String),
}

impl Known {
    fn of_config(u: &User) -> Known {
        let Some(stored) = u.password_hash.as_deref() else {
            return Known::Plain(u.password.clone());
        };
        match crate::password::native::parse_stored(stored) {
            Some(h) => Known::Hash(h),
            None => match crate::password::sha2crypt::Sha2Crypt::parse(stored.as_bytes()) {
                Some(c) => Known::Sha2(c),
                None => Known::Unsupported("an unreadable password_hash".into()),
            },
        }
    }

    fn of_backend(s: crate::access::accounts::Secret) -> Known {
        use crate::access::accounts::Secret;
        match s {
            Secret::NativeHash(h) => Known::Hash(h),
            Secret::Sha2(c) => Known::Sha2(c),
            Secret::Ed25519(k) => Known::Ed25519(k),
            Secret::Empty => Known::Plain(String::new()),
            Secret::Unsupported(p) => Known::Unsupported(p),
        }
    }

    /// Checks a mysql_native_password answer: `Some(SHA1(pw) if only the hash is known)`.
    fn check(
        &self,
        data: &[u8],
        nonce: &[u8; 20],
    ) -> Option<Option<crate::password::native::Hash>> {
        match self {
            Known::Plain(p) => verify(NATIVE, data, nonce, p).then_some(None),
            Known::Hash(h) => crate::password::native::recover(data, nonce, h).map(Some),
            Known::Sha2(_) | Known::Ed25519(_) | Known::Unsupported(_) => None,
        }
    }
}

/// The result of a successful login.
#[derive(Debug, Clone)]
pub struct Login {
    /// Index in the config's users at login; sessions replace it with a stable id
    /// (`Shared::user_id`) because a reload may reorder users.
    pub user_index: usize,
    /// The user's password as configured at login (for opening backend connections).
    pub password: String,
    /// SHA1(password), recovered from the client's answer, for users known only by their
    /// mysql_native_password hash (kept for the session only, never logged).
    pub native_hash1: Option<crate::password::native::Hash>,
    pub user: String,
    pub database: Option<String>,
    pub capabilities: CapabilityFlags,
    /// MariaDB extended capabilities the client asked for (of `MARIADB_EXT_CAPS`).
    pub mariadb_caps: MariadbCapabilities,
    pub collation: u8,
    pub nonce: [u8; 20],
}

/// ERR 3159 for a plain-TCP client that must use TLS.
fn insecure_transport() -> SqlError {
    SqlError::new(
        3159,
        "HY000",
        "Connections using insecure transport are prohibited (Sluice [tls] \
         require_secure_transport or the user's require_tls); connect with SSL",
    )
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The client was refused and sent this ERR (except `TooLarge`: a packet over the limit,
    /// answered by closing the connection).
    #[error("{0}")]
    Rejected(SqlError),
}

impl From<ReadError> for HandshakeError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => HandshakeError::Io(e),
            ReadError::TooLarge { .. } => {
                HandshakeError::Rejected(SqlError::new(1153, "08S01", "handshake packet too large"))
            }
        }
    }
}

pub struct Handshake<'a, R, W: AsyncWrite> {
    pub r: &'a mut PacketReader<R>,
    pub w: &'a mut PacketWriter<W>,
    pub users: &'a [User],
    /// Accounts loaded from the backend (`[auth] users = "backend"`), after `users`.
    pub accounts: Option<&'a crate::access::accounts::AccountStore>,
    pub server_version: &'a str,
    pub connection_id: u32,
    pub peer_host: String,
    /// The client is on TLS (caching_sha2_password full authentication sends the password
    /// in the clear then).
    pub tls: bool,
    /// Called with a refusal before the client is told of it (failed-login accounting must
    /// be done by the time the client can try again).
    pub on_reject: Option<&'a (dyn Fn(&SqlError) + Send + Sync)>,
    /// Whether a user must use TLS (`require_secure_transport`, `[[users]] require_tls`):
    /// a plain-TCP client is refused before its password is judged, so the answer tells an
    /// eavesdropper nothing about the password.
    pub requires_tls: Option<&'a (dyn Fn(&str) -> bool + Send + Sync)>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Handshake<'_, R, W> {
    async fn send(&mut self, seq: &mut u8, payload: &[u8]) -> Result<(), HandshakeError> {
        self.w.write_packet(seq, payload).await?;
        self.w.flush().await?;
        Ok(())
    }

    /// Sluice's RSA key could not be made or used: the client is refused (and told).
    async fn key_unavailable(&mut self, seq: &mut u8, e: String) -> HandshakeError {
        tracing::error!(error = %e, "caching_sha2_password key exchange");
        let refused = SqlError::new(1045, "28000", "Sluice: RSA key unavailable");
        self.reject(seq, refused).await
    }

    /// Sends the client `e` and returns it as the handshake's outcome.
    async fn reject(&mut self, seq: &mut u8, e: SqlError) -> HandshakeError {
        if let Some(f) = self.on_reject {
            f(&e);
        }
        let _ = self.send(seq, &e.to_packet()).await;
        HandshakeError::Rejected(e)
    }

    /// Runs the exchange up to a verified login without TLS; returns it with the sequence id
    /// the final OK (or ERR) must carry. The caller sends that packet.
    pub async fn run(mut self) -> Result<(Login, u8), HandshakeError> {
        let nonce = nonce();
        let out = greeting(self.server_version, self.connection_id, &nonce, false);
        let mut seq = 0;
        let buf = self.ask(&mut seq, &out).await?;
        self.login(nonce, &buf, seq).await
    }

    /// Continues from the client's handshake response `buf` (after TLS, if any); `seq` is
    /// the sequence id of Sluice's next packet.
    pub async fn login(
        mut self,
        nonce: [u8; 20],
        buf: &[u8],
        mut seq: u8,
    ) -> Result<(Login, u8), HandshakeError> {
        if buf.len() == 32 {
            let e = SqlError::new(
                1043,
                "08S01",
                "Sluice offers no TLS here ([tls] not configured); connect without SSL",
            );
            return Err(self.reject(&mut seq, e).await);
        }
        let mariadb = offers_extended_metadata(self.server_version);
        let resp = match HandshakeResponse::deserialize((), &mut ParseBuf(buf)) {
            Ok(r) => r,
            Err(_) => {
                return Err(self
                    .reject(&mut seq, SqlError::new(1043, "08S01", "Bad handshake"))
                    .await)
            }
        };
        let caps = resp.capabilities() & server_capabilities(mariadb);
        // the extended capabilities are only meaningful from a client that did not claim
        // CLIENT_MYSQL
        let mariadb_caps = if mariadb
            && !resp
                .capabilities()
                .contains(CapabilityFlags::CLIENT_LONG_PASSWORD)
        {
            resp.mariadb_ext_capabilities() & MARIADB_EXT_CAPS
        } else {
            MariadbCapabilities::empty()
        };
        if !caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            let e = SqlError::new(1043, "08S01", "Sluice requires protocol 4.1 clients");
            return Err(self.reject(&mut seq, e).await);
        }
        let user = String::from_utf8_lossy(resp.user()).into_owned();
        let database = resp
            .db_name()
            .filter(|d| !d.is_empty() && caps.contains(CapabilityFlags::CLIENT_CONNECT_WITH_DB))
            .map(|d| String::from_utf8_lossy(d).into_owned());
        let plugin = resp
            .auth_plugin()
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or(NATIVE.to_vec());
        let data = resp.scramble_buf().to_vec();
        if !self.tls && self.requires_tls.is_some_and(|f| f(&user)) {
            return Err(self.reject(&mut seq, insecure_transport()).await);
        }
        let login = Login {
            user_index: 0,
            password: String::new(),
            native_hash1: None,
            user,
            database,
            capabilities: caps,
            mariadb_caps,
            collation: resp.collation(),
            nonce,
        };
        self.authenticate(login, &plugin, &data, seq).await
    }

    /// Verifies `data` (answer to the login nonce under `plugin`), switching the client to
    /// mysql_native_password when it used another plugin. Sends ERR 1045 on failure; on
    /// success returns the login and the sequence id for the caller's OK.
    pub async fn authenticate(
        &mut self,
        mut login: Login,
        plugin: &[u8],
        data: &[u8],
        mut seq: u8,
    ) -> Result<(Login, u8), HandshakeError> {
        let found = self.users.iter().position(|u| u.name == login.user);
        let known = match found {
            Some(i) => Some(Known::of_config(&self.users[i])),
            None => match self.accounts {
                Some(a) => a
                    .lookup(&login.user, &self.peer_host)
                    .await
                    .map(Known::of_backend),
                None => None,
            },
        };
        tracing::debug!(plugin = %String::from_utf8_lossy(plugin), len = data.len(), "client auth response");
        if let Some(Known::Unsupported(p)) = &known {
            let msg = format!(
                "Access denied for user '{}': its account uses {p}, which Sluice cannot verify \
                 (accounts loaded from the backend must use mysql_native_password; or add the \
                 user to [[users]] with its password)",
                login.user
            );
            return Err(self
                .reject(&mut seq, SqlError::new(1045, "28000", msg))
                .await);
        }
        if let Some(Known::Sha2(stored)) = &known {
            let plain = self.sha2_full_auth(&login.nonce, plugin, &mut seq).await?;
            let plain = plain.filter(|p| stored.verify(p.as_bytes()));
            return self.with_password(login, found, plain, seq).await;
        }
        if let Some(Known::Ed25519(key)) = known {
            return self.ed25519_login(login, &key, found, seq).await;
        }
        let plain = match &known {
            Some(Known::Plain(p)) => Some(p.as_str()),
            _ => None,
        };
        let checked = match plugin {
            NATIVE => known.as_ref().and_then(|k| k.check(data, &login.nonce)),
            SHA2 if plain.is_some_and(|p| verify(SHA2, data, &login.nonce, p)) => {
                if plain.is_some_and(|p| !p.is_empty()) {
                    self.send(&mut seq, &[0x01, 0x03]).await?; // fast auth success
                }
                Some(None)
            }
            _ => {
                let data = switch_data(&login.nonce);
                let buf = self.switch_to(&mut seq, NATIVE, data).await?;
                known.as_ref().and_then(|k| k.check(&buf, &login.nonce))
            }
        };
        let Some(native_hash1) = checked else {
            let e = SqlError::access_denied(&login.user, &self.peer_host, !data.is_empty());
            return Err(self.reject(&mut seq, e).await);
        };
        login.user_index = found.unwrap_or(0);
        login.password = plain.unwrap_or_default().to_string();
        login.native_hash1 = native_hash1;
        Ok((login, seq))
    }

    /// An ed25519 account: over TLS the client is switched to mysql_clear_password and its
    /// password checked against the account's public key (then kept for the session to log
    /// in to the backends); without TLS it is refused, as the password would cross the
    /// network in the clear.
    async fn ed25519_login(
        &mut self,
        login: Login,
        key: &crate::password::ed25519::PublicKey,
        found: Option<usize>,
        mut seq: u8,
    ) -> Result<(Login, u8), HandshakeError> {
        if !self.tls {
            let msg = format!(
                "Access denied for user '{}': its account uses ed25519, which Sluice verifies \
                 from the password sent inside TLS (mysql_clear_password); connect with SSL",
                login.user
            );
            return Err(self
                .reject(&mut seq, SqlError::new(1045, "28000", msg))
                .await);
        }
        let buf = self.switch_to(&mut seq, CLEAR, Vec::new()).await?;
        let plain = clear_text(buf).filter(|p| key.matches(p.as_bytes()));
        self.with_password(login, found, plain, seq).await
    }

    /// The login with the password the client sent in full (`None`: wrong or unusable, ERR
    /// 1045 sent); it is kept for the session to log in to the backends.
    async fn with_password(
        &mut self,
        mut login: Login,
        found: Option<usize>,
        plain: Option<String>,
        mut seq: u8,
    ) -> Result<(Login, u8), HandshakeError> {
        let Some(p) = plain else {
            let e = SqlError::access_denied(&login.user, &self.peer_host, true);
            return Err(self.reject(&mut seq, e).await);
        };
        login.user_index = found.unwrap_or(0);
        login.password = p;
        Ok((login, seq))
    }

    /// caching_sha2_password full authentication: the client's password, in the clear over
    /// TLS or RSA-encrypted with Sluice's key (sent on request) without. `None`: the client
    /// sent nothing usable.
    async fn sha2_full_auth(
        &mut self,
        nonce: &[u8; 20],
        plugin: &[u8],
        seq: &mut u8,
    ) -> Result<Option<String>, HandshakeError> {
        if plugin != SHA2 {
            self.switch_to(seq, SHA2, switch_data(nonce)).await?;
        }
        let mut buf = self.ask(seq, &[0x01, 0x04]).await?; // perform full authentication
        let plain = if self.tls {
            buf
        } else {
            if buf == [0x02] {
                // the client asks for the public key
                let mut out = vec![0x01];
                let pem = match super::rsa_key::public_pem().await {
                    Ok(pem) => pem,
                    Err(e) => return Err(self.key_unavailable(seq, e).await),
                };
                out.extend_from_slice(pem.as_bytes());
                buf = self.ask(seq, &out).await?;
            }
            let decrypted = match super::rsa_key::decrypt(&buf).await {
                Ok(d) => d,
                Err(e) => return Err(self.key_unavailable(seq, e).await),
            };
            let Some(mut p) = decrypted else {
                return Ok(None);
            };
            for (i, b) in p.iter_mut().enumerate() {
                *b ^= nonce[i % nonce.len()];
            }
            p
        };
        Ok(clear_text(plain))
    }

    /// Sends `payload` and reads the client's answer, sequence ids advanced past both.
    async fn ask(&mut self, seq: &mut u8, payload: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        self.send(seq, payload).await?;
        let mut buf = Vec::new();
        *seq = self
            .r
            .read_logical(&mut buf, 1 << 16)
            .await?
            .wrapping_add(1);
        Ok(buf)
    }

    /// Switches the client to authentication `plugin` (with `data`); its answer.
    async fn switch_to(
        &mut self,
        seq: &mut u8,
        plugin: &[u8],
        data: Vec<u8>,
    ) -> Result<Vec<u8>, HandshakeError> {
        let mut out = Vec::new();
        AuthSwitchRequest::new(plugin, data).serialize(&mut out);
        self.ask(seq, &out).await
    }
}

/// An auth switch's data: the login nonce and its NUL.
fn switch_data(nonce: &[u8; 20]) -> Vec<u8> {
    let mut data = nonce.to_vec();
    data.push(0);
    data
}

/// A password the client sent in the clear (a trailing NUL dropped); `None` if not UTF-8.
fn clear_text(mut p: Vec<u8>) -> Option<String> {
    if p.last() == Some(&0) {
        p.pop();
    }
    String::from_utf8(p).ok()
}

#[cfg(test)]
mod tests;

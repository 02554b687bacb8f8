//! Session-level commands Sluice answers itself: KILL, COM_CHANGE_USER,
//! COM_RESET_CONNECTION, COM_SET_OPTION.

use super::state::SessionState;
use super::{Fatal, Session};
use crate::backend::BackendConn;
use crate::error::SqlError;
use crate::frontend::auth::{Handshake, HandshakeError, Login, NATIVE};
use crate::protocol::{lenenc, reply, CapabilityFlags};

/// Fields of a COM_CHANGE_USER packet.
struct ChangeUser {
    user: String,
    auth: Vec<u8>,
    database: Option<String>,
    collation: Option<u8>,
    plugin: Option<Vec<u8>>,
}

fn cstr(p: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let rest = p.get(*pos..)?;
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    *pos += end + 1;
    Some(rest[..end].to_vec())
}

fn parse_change_user(p: &[u8], caps: CapabilityFlags) -> Option<ChangeUser> {
    let mut pos = 1;
    let user = String::from_utf8_lossy(&cstr(p, &mut pos)?).into_owned();
    let auth = if caps.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
        let n = *p.get(pos)? as usize;
        let a = p.get(pos + 1..pos + 1 + n)?.to_vec();
        pos += 1 + n;
        a
    } else {
        cstr(p, &mut pos)?
    };
    let db = cstr(p, &mut pos).unwrap_or_default();
    let collation = lenenc::u16_at(p, pos).map(|c| c as u8);
    pos += 2;
    let plugin = if caps.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH) {
        cstr(p, &mut pos)
    } else {
        None
    };
    let database = (!db.is_empty()).then(|| String::from_utf8_lossy(&db).into_owned());
    Some(ChangeUser {
        user,
        auth,
        database,
        collation,
        plugin,
    })
}

impl Session {
    /// KILL [QUERY] id, where id is a Sluice connection id (the one clients see).
    pub(super) async fn kill(&mut self, query_only: bool, id: u64) -> Result<(), Fatal> {
        let target = u32::try_from(id)
            .ok()
            .and_then(|id| self.shared.sessions.lock().get(&id).cloned());
        let Some(h) = target else {
            return self
                .send_err(&SqlError::new(
                    1094,
                    "HY000",
                    format!("Unknown thread id: {id}"),
                ))
                .await;
        };
        let foreign =
            h.user_index.load(std::sync::atomic::Ordering::Relaxed) != self.login.user_index;
        if foreign && !self.may_kill_others().await {
            return self
                .send_err(&SqlError::new(
                    1095,
                    "HY000",
                    format!("You are not owner of thread {id}"),
                ))
                .await;
        }
        if let Some((backend, thread)) = h.running() {
            let opts = self.connect_opts(backend);
            match BackendConn::kill_thread(&opts, thread, true).await {
                Ok(()) => {}
                Err(e) if e.is_fatal() => {
                    tracing::warn!(parent: &self.span, error = %e, "cannot reach the backend to kill a query")
                }
                Err(e) => {
                    tracing::debug!(parent: &self.span, error = %e, "KILL QUERY on the backend failed")
                }
            }
        }
        if !query_only {
            if h.id == self.handle.id {
                return Err(Fatal::Ended("the client killed its own connection"));
            }
            if let Some(a) = h.abort.lock().take() {
                a.abort();
            }
        }
        self.send_ok().await
    }

    /// Whether this client's account may kill other users' threads (SUPER or CONNECTION
    /// ADMIN), as the primary says: then it may kill other users' Sluice sessions too.
    async fn may_kill_others(&self) -> bool {
        const SQL: &str = "SELECT 1 FROM information_schema.USER_PRIVILEGES \
            WHERE PRIVILEGE_TYPE IN ('SUPER', 'CONNECTION ADMIN') AND GRANTEE = \
            CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
            SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''') LIMIT 1";
        let Ok(mut lease) = self.checkout(self.shared.topology.primary()).await else {
            return false;
        };
        lease.query(SQL).await.is_ok_and(|r| !r.rows.is_empty())
    }

    /// Drops every backend connection the session holds, resetting the primary one.
    async fn release_all(&mut self) {
        self.held = None;
        self.handle.set_primary_tx(None);
        if let Some((_, mut lease)) = self.primary.take() {
            if lease.reset().await.is_err() {
                lease.discard();
            }
        }
        self.stmts.clear();
    }

    pub(super) async fn reset_connection(&mut self) -> Result<(), Fatal> {
        self.release_all().await;
        self.state = SessionState::new(
            self.state.database.clone(),
            self.login.collation,
            self.state.multi_statements,
        );
        self.count_pinned();
        self.send_ok().await
    }

    pub(super) async fn change_user(&mut self, packet: &[u8]) -> Result<(), Fatal> {
        self.seq = 1;
        let Some(cu) = parse_change_user(packet, self.login.capabilities) else {
            return self
                .send_err(&SqlError::new(1047, "08S01", "Malformed COM_CHANGE_USER"))
                .await;
        };
        let cfg = self.shared.config.load_full();
        let login = Login {
            user_index: 0,
            password: String::new(),
            native_hash1: None,
            user: cu.user.clone(),
            database: cu.database.clone(),
            capabilities: self.login.capabilities,
            mariadb_caps: self.login.mariadb_caps,
            collation: cu.collation.unwrap_or(self.login.collation),
            nonce: self.login.nonce,
        };
        let tls = self.client_r.get_ref().is_tls();
        let requires_tls = |user: &str| crate::frontend::login::tls_required(&cfg, user);
        let mut hs = Handshake {
            requires_tls: Some(&requires_tls),
            r: &mut self.client_r,
            w: &mut self.client_w,
            users: &cfg.users,
            accounts: self.shared.backend_accounts(),
            server_version: &self.shared.server_version,
            connection_id: self.handle.id,
            peer_host: self.peer_host.clone(),
            tls,
            on_reject: None,
        };
        let plugin = cu.plugin.unwrap_or_else(|| NATIVE.to_vec());
        match hs.authenticate(login, &plugin, &cu.auth, self.seq).await {
            Ok((login, seq)) => {
                self.seq = seq;
                self.release_all().await;
                self.state = SessionState::new(
                    login.database.clone(),
                    login.collation,
                    self.state.multi_statements,
                );
                self.count_pinned();
                self.login = login;
                self.login.user_index = self.shared.user_id(&self.login.user);
                {
                    let mut shown = self.handle.shown.lock();
                    shown.user = std::sync::Arc::from(self.login.user.as_str());
                    shown.db = self.state.database.as_deref().map(std::sync::Arc::from);
                }
                self.handle
                    .user_index
                    .store(self.login.user_index, std::sync::atomic::Ordering::Relaxed);
                self.send_ok().await
            }
            // as a server does: the client was sent the ERR (1045 for an unknown user or a
            // wrong password) and stays logged in as before
            Err(HandshakeError::Rejected(e)) if e.code != 1153 => {
                tracing::info!(parent: &self.span, error = %e, "COM_CHANGE_USER refused");
                Ok(())
            }
            Err(HandshakeError::Rejected(_)) => Err(Fatal::Ended("COM_CHANGE_USER refused")),
            Err(HandshakeError::Io(e)) => Err(Fatal::ClientIo(e)),
        }
    }

    pub(super) async fn set_option(&mut self, packet: &[u8]) -> Result<(), Fatal> {
        match lenenc::u16_at(packet, 1) {
            Some(0) => self.state.multi_statements = true,
            Some(1) => self.state.multi_statements = false,
            _ => {
                return self
                    .send_err(&SqlError::new(
                        1047,
                        "08S01",
                        "Unknown COM_SET_OPTION value",
                    ))
                    .await
            }
        }
        let t = reply::terminator(self.deprecate_eof, self.state.status, 0);
        self.send_packet(&t).await
    }
}

//! Outgoing MySQL connections: connect, authenticate, send commands, read simple replies.

mod auth;
pub mod pooled;
mod query;
pub mod stmt_cache;
mod stream;
mod unacked;

pub use crate::tls::client::TlsClient;
pub use query::QueryResult;
pub use stmt_cache::StmtCache;
pub use stream::{BackendRead, BackendWrite};

use crate::error::SqlError;
use crate::protocol::packet::{PacketReader, PacketWriter, ReadError};
use crate::protocol::reply::{self, OkInfo};
use crate::protocol::{cmd, CapabilityFlags};
use mysql_common::constants::MariadbCapabilities;
use std::io;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A packet the connection could not take (too large).
    #[error(transparent)]
    Read(ReadError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Server(SqlError),
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl BackendError {
    /// Whether the connection must be discarded.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, BackendError::Server(_))
    }
    /// The ERR a client should see for this failure on backend `name`.
    pub fn to_sql_error(&self, name: &str) -> SqlError {
        match self {
            BackendError::Server(e) => e.clone(),
            other => SqlError::backend_unavailable(name, &crate::error::chain(other)),
        }
    }
}

impl From<ReadError> for BackendError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => BackendError::Io(e),
            other => BackendError::Read(other),
        }
    }
}

/// How to open a connection.
#[derive(Debug, Clone)]
pub struct ConnectOpts {
    pub address: String,
    pub user: String,
    pub password: String,
    /// SHA1(password) when the plaintext is unknown (an account loaded from the backend);
    /// enough for mysql_native_password.
    pub native_hash1: Option<[u8; 20]>,
    pub database: Option<String>,
    /// Client capabilities the connection shares with its clients, fixed for its life.
    pub flavour: Flavour,
    pub timeout: Duration,
    /// TLS toward this backend (`None`: plain TCP).
    pub tls: Option<Arc<TlsClient>>,
}

/// Client capabilities that change what a backend sends, so a backend connection serves
/// only clients that asked for the same ones (pools keep one slot per flavour).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flavour {
    /// CLIENT_FOUND_ROWS: affected rows = matched rows.
    pub found_rows: bool,
    /// CLIENT_SESSION_TRACK: OK packets carry session state changes.
    pub session_track: bool,
    /// MariaDB's MARIADB_CLIENT_EXTENDED_METADATA: column definitions carry type formats
    /// (json, uuid, inet6...).
    pub extended_metadata: bool,
    /// The client frames result sets with EOF packets (no CLIENT_DEPRECATE_EOF, as
    /// libmariadb): its backend connections do too, so replies pass through untranslated.
    pub classic_eof: bool,
    /// CLIENT_IGNORE_SPACE: the session parses `COUNT (*)` as a call (sql_mode IGNORE_SPACE
    /// for the connection; `mariadb -i`).
    pub ignore_space: bool,
}

impl Flavour {
    pub const COUNT: usize = 32;

    pub fn of_client(caps: CapabilityFlags, mariadb: MariadbCapabilities) -> Self {
        Self {
            found_rows: caps.contains(CapabilityFlags::CLIENT_FOUND_ROWS),
            session_track: caps.contains(CapabilityFlags::CLIENT_SESSION_TRACK),
            extended_metadata: mariadb
                .contains(MariadbCapabilities::MARIADB_CLIENT_EXTENDED_METADATA),
            classic_eof: !caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF),
            ignore_space: caps.contains(CapabilityFlags::CLIENT_IGNORE_SPACE),
        }
    }

    pub fn index(self) -> usize {
        self.found_rows as usize
            | (self.session_track as usize) << 1
            | (self.extended_metadata as usize) << 2
            | (self.classic_eof as usize) << 3
            | (self.ignore_space as usize) << 4
    }
}

/// Session-dependent state a connection currently carries (see `session::align`).
#[derive(Debug, Default, Clone)]
pub struct ConnState {
    pub database: Option<String>,
    /// Session variable statements applied since the last reset, in order.
    pub vars: Vec<Arc<str>>,
    /// CLIENT_MULTI_STATEMENTS as the server has it (`None`: unknown, set it before use).
    pub multi_statements: Option<bool>,
    pub last_insert_id: u64,
    /// Statements prepared here, by (database, SQL).
    pub prepared: StmtCache,
}

pub struct BackendConn {
    pub r: PacketReader<BackendRead>,
    pub w: PacketWriter<BackendWrite>,
    pub thread_id: u32,
    pub server_version: String,
    pub deprecate_eof: bool,
    pub state: ConnState,
    /// Set while a command is in flight; a connection dropped in that state has its
    /// backend thread killed and is closed.
    pub busy: bool,
    /// The connection must be closed, not reused (I/O failed, state unknown).
    pub broken: bool,
    /// Connection-bound state that only COM_RESET_CONNECTION clears (user variables, locks,
    /// temporary tables, SQL-level prepared statements, XA, a statement of unknown effect).
    pub dirty: bool,
    /// Server status flags of the last reply (open transaction, autocommit).
    pub status: u16,
    /// How it was opened (to kill its thread from another connection).
    pub opts: Arc<ConnectOpts>,
    pub buf: Vec<u8>,
    /// The session worker whose event loop drives its socket (`workers::current()`).
    pub lane: u16,
    /// Set by the pool: counts it among the backend's open connections until dropped.
    pub counted: Option<pooled::Counted>,
    /// Set by the pool while it waits in a worker's hot slot (see `pool::hot`).
    pub parked: Option<pooled::Parked>,
    /// The pool generation it was opened in: connections of an older one are closed when
    /// returned (`BackendPool::retire`).
    pub generation: u64,
}

impl Drop for BackendConn {
    /// An idle connection being closed (idle timeout, retired, reset failed, shutdown) says
    /// COM_QUIT first, as a client leaving politely does: the server then neither counts it
    /// in `Aborted_clients` nor logs "Aborted connection ... Got an error reading
    /// communication packets" for it. A connection mid-command or broken is just closed.
    fn drop(&mut self) {
        if !self.busy && !self.broken && !self.w.has_pending() {
            self.w.get_mut().send_now(&[1, 0, 0, 0, cmd::QUIT]);
        }
    }
}

impl BackendConn {
    pub async fn connect(opts: &ConnectOpts) -> Result<BackendConn, BackendError> {
        match crate::timer::timeout(opts.timeout, auth::connect(opts)).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Timeout(opts.timeout)),
        }
    }

    /// A connection over `r`/`w` whose login is still to be done.
    fn new(r: BackendRead, w: BackendWrite, opts: &ConnectOpts) -> BackendConn {
        BackendConn {
            lane: crate::workers::current(),
            counted: None,
            parked: None,
            generation: 0,
            r: PacketReader::new(r),
            w: PacketWriter::new(w),
            thread_id: 0,
            server_version: String::new(),
            deprecate_eof: false,
            state: ConnState {
                database: opts.database.clone(),
                multi_statements: Some(true),
                ..Default::default()
            },
            busy: false,
            broken: false,
            dirty: false,
            status: crate::protocol::status::AUTOCOMMIT,
            opts: Arc::new(opts.clone()),
            buf: Vec::with_capacity(256),
        }
    }

    /// Capabilities Sluice asks a backend for.
    pub fn wanted_capabilities(flavour: Flavour) -> CapabilityFlags {
        let mut c = CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_LOCAL_FILES
            | CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_MULTI_STATEMENTS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        if !flavour.classic_eof {
            c |= CapabilityFlags::CLIENT_DEPRECATE_EOF;
        }
        if flavour.found_rows {
            c |= CapabilityFlags::CLIENT_FOUND_ROWS;
        }
        if flavour.ignore_space {
            c |= CapabilityFlags::CLIENT_IGNORE_SPACE;
        }
        if flavour.session_track {
            c |= CapabilityFlags::CLIENT_SESSION_TRACK;
        }
        c
    }

    /// Sends a command packet (sequence 0) and flushes.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), BackendError> {
        let now = self.send_now(payload)?;
        self.send_rest(payload, now).await
    }

    /// What `send_now` (which returned `now`) left to do.
    pub async fn send_rest(
        &mut self,
        payload: &[u8],
        now: Option<bool>,
    ) -> Result<(), BackendError> {
        match now {
            Some(true) => Ok(()),
            // the socket is full: the rest when it has room
            Some(false) => Ok(self.w.flush().await?),
            None => self.send_slow(payload).await,
        }
    }

    /// `send` without waiting for the usual command, one small packet: `Some(true)` sent,
    /// `Some(false)` buffered but not all written (`PacketWriter::flush` finishes), `None`
    /// nothing done (`send`).
    pub fn send_now(&mut self, payload: &[u8]) -> io::Result<Option<bool>> {
        self.busy = true;
        if !self.state.prepared.pending_close.is_empty() {
            return Ok(None);
        }
        self.w.write_packet_now(0, payload)
    }

    async fn send_slow(&mut self, payload: &[u8]) -> Result<(), BackendError> {
        for id in std::mem::take(&mut self.state.prepared.pending_close) {
            let mut close = vec![cmd::STMT_CLOSE];
            close.extend_from_slice(&id.to_le_bytes());
            self.w.write_packet(&mut 0, &close).await?;
        }
        let mut seq = 0;
        self.w.write_packet(&mut seq, payload).await?;
        self.w.flush().await?;
        Ok(())
    }

    /// Kills backend thread `thread` (its statement only with `query_only`) from a new
    /// connection opened with `opts` (no database), bounded by `opts.timeout`.
    pub async fn kill_thread(
        opts: &ConnectOpts,
        thread: u32,
        query_only: bool,
    ) -> Result<(), BackendError> {
        let mut opts = opts.clone();
        opts.database = None;
        let mut c = BackendConn::connect(&opts).await?;
        let what = if query_only { "QUERY " } else { "" };
        match crate::timer::timeout(opts.timeout, c.exec(&format!("KILL {what}{thread}"))).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Timeout(opts.timeout)),
        }
    }

    /// Whether the connection carries state a next user must not inherit.
    pub fn needs_reset(&self) -> bool {
        use crate::protocol::status;
        self.dirty || self.status & status::IN_TRANS != 0 || self.status & status::AUTOCOMMIT == 0
    }

    /// Sends a command answered by exactly one OK or ERR packet.
    pub async fn simple(&mut self, payload: &[u8]) -> Result<OkInfo, BackendError> {
        self.send(payload).await?;
        self.r.read_logical(&mut self.buf, usize::MAX).await?;
        self.busy = false;
        let ok = match self.buf.first() {
            Some(0xFE) if self.buf.len() == 5 => {
                let (warnings, status) = reply::parse_eof(&self.buf).unwrap_or_default();
                Ok(OkInfo {
                    status,
                    warnings,
                    ..Default::default()
                })
            }
            Some(0x00) | Some(0xFE) => reply::parse_ok(&self.buf)
                .ok_or_else(|| BackendError::Protocol("short OK packet".into())),
            Some(0xFF) => return Err(BackendError::Server(SqlError::from_packet(&self.buf))),
            _ => return Err(BackendError::Protocol("expected OK or ERR".into())),
        };
        if let Ok(info) = &ok {
            self.status = info.status;
        }
        ok
    }

    pub async fn init_db(&mut self, db: &str) -> Result<(), BackendError> {
        let mut p = vec![cmd::INIT_DB];
        p.extend_from_slice(db.as_bytes());
        self.simple(&p).await?;
        self.state.database = Some(db.to_string());
        Ok(())
    }

    /// COM_RESET_CONNECTION: clears session variables, user variables, temporary tables,
    /// prepared statements; keeps the current database.
    pub async fn reset(&mut self) -> Result<(), BackendError> {
        self.simple(&[cmd::RESET_CONNECTION]).await?;
        let db = self.state.database.take();
        self.state = ConnState {
            database: db,
            multi_statements: None,
            ..Default::default()
        };
        self.dirty = false;
        Ok(())
    }

    /// COM_SET_OPTION (multi-statements on/off); the server answers with EOF.
    pub async fn set_multi_statements(&mut self, on: bool) -> Result<(), BackendError> {
        let opt: u16 = if on { 0 } else { 1 };
        let mut p = vec![cmd::SET_OPTION];
        p.extend_from_slice(&opt.to_le_bytes());
        self.simple(&p).await?;
        self.state.multi_statements = Some(on);
        Ok(())
    }
}

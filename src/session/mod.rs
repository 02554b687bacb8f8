//! One client connection: handshake, then the command loop.
//!
//! Statement flow: classify (router) -> acquire a backend lease (pool) -> align the lease with
//! this session's state -> send -> relay the response -> keep or return the lease.

mod accept;
mod acquire;
mod align;
mod cached;
mod control;
mod digest;
mod dump;
mod exec;
pub mod explain;
pub mod freshness;
mod idle;
mod inflight;
mod live;
mod local;
mod mirror;
mod pins;
mod prepared;
mod previous;
mod processlist;
mod processlist_view;
mod query;
mod refresh;
mod replay;
mod ruled;
mod slot;
pub mod state;

use crate::error::SqlError;
use crate::frontend::auth::Login;
use crate::pool::Lease;
use crate::protocol::packet::{PacketReader, PacketWriter, ReadError};
use crate::protocol::relay::Expect;
use crate::protocol::stream::{ClientRead, ClientWrite};
use crate::protocol::{cmd, reply, CapabilityFlags};
use crate::router::{Reason, Target};
use crate::shared::{SessionHandle, Shared};
pub use accept::accept_loop;
use prepared::{ExecPlan, Prepared};
use query::QueryPlan;
use state::SessionState;
use std::sync::Arc;
use std::task::Poll;
use tokio::net::TcpStream;

/// Why the session cannot continue (logged when it ends, with its cause).
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    #[error("the client quit")]
    Quit,
    #[error("client connection failed")]
    ClientIo(#[from] std::io::Error),
    #[error("the client went away during a statement")]
    ClientLeft,
    #[error("{0}")]
    Ended(&'static str),
}

pub struct Session {
    shared: Arc<Shared>,
    handle: Arc<SessionHandle>,
    login: Login,
    client_r: PacketReader<ClientRead>,
    client_w: PacketWriter<ClientWrite>,
    /// The client's TLS session, if it uses TLS.
    tls: Option<crate::frontend::login::TlsInfo>,
    deprecate_eof: bool,
    flavour: crate::backend::Flavour,
    state: SessionState,
    /// Primary connection kept between statements (transaction, pins, user variables).
    primary: Option<(usize, Lease)>,
    /// Connection of the previous statement, kept while it has warnings (SHOW WARNINGS).
    held: Option<(usize, Lease)>,
    /// The previous statement left warnings on the session's primary connection.
    warnings_on_primary: bool,
    /// The backend that ran the session's previous statement (diagnostics go there).
    last_ran: Option<usize>,
    /// The client's address (account host patterns, COM_CHANGE_USER).
    peer_host: String,
    /// The client's address (rules' `client` matches).
    peer_ip: Option<std::net::IpAddr>,
    /// By the client's statement id (looked up several times per execution: ahash, not
    /// SipHash).
    stmts: ahash::AHashMap<u32, Prepared>,
    next_stmt_id: u32,
    /// Sequence id for the next packet to the client.
    seq: u8,
    /// Text of the session's last write GTID (read-your-writes).
    last_gtid_text: String,
    /// The primary connection died inside a transaction: statements fail until the client
    /// ends the transaction (never a silent replay in autocommit mode).
    tx_lost: bool,
    /// The open transaction's statements (`failover.transaction_replay`).
    tx_log: replay::TxLog,
    /// When the last command arrived; releases buffers and ends idle sessions.
    idle: idle::Idle,
    /// Counted in `sluice_pinned_sessions`.
    pinned_counted: bool,
    /// How a routing rule wants the current statement's read served.
    plan: freshness::ReadPlan,
    /// The routing rule behind the current statement.
    rule_note: Option<ruled::RuleNote>,
    /// The last statement's digest context and recent rows (`digest::Recorder`).
    digest_ctx: digest::Recorder,
    /// Per-backend metrics (grown by reloads), checked with one atomic load per statement.
    backend_metrics: live::Live<Vec<Arc<crate::metrics::BackendMetrics>>>,
    /// The routing rules, checked for a reload with one atomic load per statement.
    rules: live::Live<crate::rules::RuleSet>,
    /// The configuration and the backend list, for the statement path (`acquire_now`).
    config: live::Watched<crate::config::Config>,
    backends: live::Watched<Vec<Arc<crate::topology::Backend>>>,
    /// Copies of statements for `mirror` rules, by group.
    mirrors: mirror::Mirrors,
    /// What this session's open transaction wrote: invalidated again at its end.
    cache_pending: Vec<crate::cache::tables::Written>,
    /// The session's log context (id, user, client), given as the parent of its events
    /// rather than entered on every poll of the session's future.
    span: tracing::Span,
    buf: Vec<u8>,
    /// A prepared execution's packet as sent to the backend (statement id remapped), kept
    /// between executions so that none allocates.
    exec_buf: Vec<u8>,
}

/// The error for statements of a transaction lost with its primary connection.
fn lost_transaction() -> SqlError {
    SqlError::new(
        1180,
        "HY000",
        "Sluice: the transaction was lost with its primary connection (failover, switchover or \
         backend failure); it was rolled back. Issue ROLLBACK and retry the transaction",
    )
}

/// How the process list shows a client: `host:port` (`peer` alone when the port is unknown).
fn peer_host(addr: Option<std::net::SocketAddr>, peer: &str) -> String {
    addr.map_or_else(|| peer.to_string(), |a| format!("{}:{}", a.ip(), a.port()))
}

/// Accepts one client: handshake, login, then the command loop until the client leaves.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream, handle: Arc<SessionHandle>) {
    let stream_peer = stream.peer_addr().ok();
    let peer_ip = stream_peer.map(|a| a.ip());
    let peer = peer_ip.map_or_else(|| "unknown".into(), |ip| ip.to_string());
    // boxed: the login's state would otherwise size every idle session's task
    let admit = Box::pin(crate::frontend::login::admit(
        &shared, stream, peer_ip, handle.id,
    ));
    let Some(admitted) = admit.await else {
        return;
    };
    let crate::frontend::login::Admitted {
        login,
        seq,
        client,
        user_slot,
    } = admitted;
    let (client_r, client_w, tls) = (client.r, client.w, client.tls);
    let mut login = login;
    login.user_index = shared.user_id(&login.user);
    handle
        .user_index
        .store(login.user_index, std::sync::atomic::Ordering::Relaxed);
    let span = tracing::info_span!("session", id = handle.id, user = %login.user, client = %peer);
    *handle.shown.lock() = crate::shared::Shown {
        user: Arc::from(login.user.as_str()),
        host: Arc::from(peer_host(stream_peer, &peer).as_str()),
        db: login.database.as_deref().map(Arc::from),
    };
    let caps = login.capabilities;
    let idle_limit = shared.config.load().listen.idle_timeout.0;
    let mariadb_caps = login.mariadb_caps;
    let rules = arc_swap::Cache::new(shared.rules.clone());
    let backend_metrics = arc_swap::Cache::new(shared.metrics.backends.clone());
    let config = arc_swap::Cache::new(live::Field(shared.clone(), |s| &s.config));
    let backends =
        arc_swap::Cache::new(live::Field(shared.clone(), |s| s.topology.backends_swap()));
    let mut s = Session {
        state: SessionState::new(
            login.database.clone(),
            login.collation,
            caps.contains(CapabilityFlags::CLIENT_MULTI_STATEMENTS),
        ),
        shared,
        handle,
        login,
        client_r,
        client_w,
        tls,
        deprecate_eof: caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF),
        flavour: crate::backend::Flavour::of_client(caps, mariadb_caps),
        primary: None,
        held: None,
        warnings_on_primary: false,
        last_ran: None,
        peer_host: peer.clone(),
        peer_ip,
        stmts: ahash::AHashMap::new(),
        next_stmt_id: 1,
        seq,
        last_gtid_text: String::new(),
        tx_lost: false,
        tx_log: Default::default(),
        idle: idle::Idle::new(idle_limit),
        pinned_counted: false,
        plan: Default::default(),
        rule_note: None,
        digest_ctx: Default::default(),
        rules,
        config,
        backends,
        backend_metrics,
        mirrors: Default::default(),
        cache_pending: Vec::new(),
        span,
        buf: Vec::new(),
        exec_buf: Vec::new(),
    };
    let _user_slot = user_slot;
    if Box::pin(s.finish_login()).await.is_ok() {
        tracing::debug!(parent: &s.span, "client logged in");
        if let Err(e) = s.run().await {
            let why = crate::error::chain(&e);
            tracing::debug!(parent: &s.span, %why, "client session ending");
        }
    }
    s.unpin_at_end();
    tracing::debug!(parent: &s.span, "client session ended");
}

impl Drop for Session {
    fn drop(&mut self) {
        // its connections come back (and may park) first
        self.primary = None;
        self.handle.set_primary_tx(None);
        self.held = None;
        self.unpark();
    }
}

impl Session {
    /// Moves this session's parked backend connections (`pool::hot`) to the idle lists: a
    /// quiet or departed session's connections serve the others.
    fn unpark(&self) {
        let topology = &self.shared.topology;
        for i in 0..topology.len() {
            topology.backend(i).pool.unpark_session(self.handle.id);
        }
    }

    /// Validates the login database (if any) on the primary, then sends the login OK.
    async fn finish_login(&mut self) -> Result<(), Fatal> {
        if self.state.database.is_some() {
            let primary = self.shared.topology.primary();
            match self.checkout(primary).await {
                Ok(mut lease) => {
                    if let Err(e) = self.align(&mut lease, 0).await {
                        let e = e.to_sql_error(&lease.pool().name);
                        self.send_err(&e).await?;
                        return Err(Fatal::Ended(
                            "the session's connection could not be restored",
                        ));
                    }
                }
                Err(e) => {
                    self.send_err(&e).await?;
                    return Err(Fatal::Ended("no connection to restore the session on"));
                }
            }
        }
        self.send_ok().await?;
        if self
            .login
            .capabilities
            .contains(CapabilityFlags::CLIENT_COMPRESS)
        {
            // from the byte after the login's OK on, both ways (backends stay uncompressed)
            crate::protocol::stream::compress(self.client_r.get_mut(), self.client_w.get_mut());
        }
        Ok(())
    }

    /// Waits until the client's socket is readable, releasing the buffers (and the command
    /// slot) of a quiet client; `Ok(false)`: idle for `listen.idle_timeout`.
    async fn wait_readable(&mut self, slot: &mut slot::Slot) -> Result<bool, Fatal> {
        loop {
            // one poll function (no select): the statement path. It reads what arrives (one
            // readiness check and one read when the command comes, not a wait and a read)
            // when the statement's disconnect watch left the task's waker on the socket, the
            // first poll relies on it (`ClientRead::watch_armed`)
            let (client, idle) = (&mut self.client_r, &mut self.idle);
            let mut armed = client.get_ref().watch_armed();
            let ready = std::future::poll_fn(|cx| {
                if std::mem::take(&mut armed) {
                    return idle.poll_timer(cx).map(|()| Ok(false));
                }
                match client.poll_fill(cx) {
                    Poll::Ready(r) => Poll::Ready(r.map(|()| true)),
                    Poll::Pending => idle.poll_timer(cx).map(|()| Ok(false)),
                }
            });
            if ready.await? {
                return Ok(true);
            }
            match self.idle.fired() {
                idle::Tick::Disconnect => return Ok(false),
                idle::Tick::ReleaseBuffers => {
                    self.client_r.release_idle();
                    self.client_w.release_idle();
                    self.buf = Vec::new();
                    self.exec_buf = Vec::new();
                    slot.release();
                    self.unpark();
                }
                idle::Tick::Continue => {}
            }
        }
    }

    async fn run(&mut self) -> Result<(), Fatal> {
        let limit = self.shared.config.load().listen.max_packet_size;
        self.client_r.get_ref().clear_stale_readiness();
        // a running command's state (kilobytes) lives here, not in every idle session's task
        let mut slot = slot::Slot::default();
        loop {
            if self.client_r.buffered() == 0 && !self.wait_readable(&mut slot).await? {
                return self.disconnect_idle().await;
            }
            let mut buf = std::mem::take(&mut self.buf);
            let ready = self.client_r.read_logical_now(&mut buf, limit);
            // a partial packet followed by silence ends the session at the idle limit too
            let res = if let Some(r) = ready {
                Some(r.map_err(ReadError::Io))
            } else {
                let (client_r, idle) = (&mut self.client_r, &mut self.idle);
                let read = client_r.read_logical(&mut buf, limit);
                tokio::pin!(read);
                loop {
                    tokio::select! {
                        biased;
                        r = &mut read => break Some(r),
                        _ = idle.timer.as_mut() => if let idle::Tick::Disconnect = idle.fired() {
                            break None;
                        },
                    }
                }
            };
            let Some(res) = res else {
                return self.disconnect_idle().await;
            };
            self.idle.active(crate::timer::precise_ns());
            let (command, now_ms) = (buf.first().copied().unwrap_or(0), self.idle.arrived_ms());
            self.handle.set_command(command, now_ms);
            let r = match res {
                Ok(seq) => {
                    self.seq = seq.wrapping_add(1);
                    // a statement's `execute` goes in the slot itself, not inside `dispatch`'s
                    // future: each async layer costs ~80-110 instructions per statement
                    let expect = Expect::ResultSets;
                    match buf.first().copied() {
                        Some(cmd::QUERY) => match self.query_plan(&buf) {
                            QueryPlan::Plain(intent, route, on_ok) => {
                                let run = || self.execute(&buf, expect, route, &intent, on_ok);
                                slot.place(run).await
                            }
                            QueryPlan::Special(intent, special) => {
                                slot.place(|| self.query_special(&buf, intent, special))
                                    .await
                            }
                        },
                        Some(cmd::STMT_EXECUTE) => match self.execute_plan(&buf) {
                            ExecPlan::Run(spends, intent, route, on_ok) => {
                                let run = || self.execute(&buf, expect, route, &intent, on_ok);
                                let r = slot.place(run).await;
                                self.executed(spends, r)
                            }
                            plan => slot.place(|| self.stmt_execute_planned(&buf, plan)).await,
                        },
                        _ => slot.place(|| self.dispatch(&buf)).await,
                    }
                }
                Err(ReadError::TooLarge { size, limit }) => {
                    self.seq = 1;
                    let msg = format!(
                        "Got a packet bigger than 'max_allowed_packet' bytes ({size} > {limit})"
                    );
                    self.send_err(&SqlError::new(1153, "08S01", msg)).await
                }
                Err(ReadError::Io(e)) => Err(Fatal::ClientIo(e)),
            };
            self.buf = buf;
            // quiet again (the process list's time counts from the command's start)
            self.handle
                .command
                .store(0, std::sync::atomic::Ordering::Relaxed);
            r?;
        }
    }

    async fn dispatch(&mut self, packet: &[u8]) -> Result<(), Fatal> {
        let Some(&command) = packet.first() else {
            return self
                .send_err(&SqlError::new(1047, "08S01", "Empty command packet"))
                .await;
        };
        match command {
            // `run` places a query's future itself (`query_plan`); the same here
            cmd::QUERY => match self.query_plan(packet) {
                QueryPlan::Plain(intent, route, on_ok) => {
                    self.execute(packet, Expect::ResultSets, route, &intent, on_ok)
                        .await
                }
                QueryPlan::Special(intent, special) => {
                    self.query_special(packet, intent, special).await
                }
            },
            cmd::QUIT => Err(Fatal::Quit),
            cmd::PING => self.send_ok().await,
            cmd::INIT_DB => self.init_db(packet).await,
            cmd::FIELD_LIST => self.simple_primary(packet, Expect::FieldList).await,
            cmd::STATISTICS => self.simple_primary(packet, Expect::Single).await,
            cmd::SET_OPTION => self.set_option(packet).await,
            cmd::RESET_CONNECTION => self.reset_connection().await,
            cmd::CHANGE_USER => self.change_user(packet).await,
            cmd::PROCESS_KILL => {
                let id = crate::protocol::lenenc::u32_at(packet, 1).unwrap_or(0) as u64;
                self.kill(false, id).await
            }
            cmd::STMT_PREPARE => self.stmt_prepare(packet).await,
            cmd::STMT_EXECUTE => self.stmt_execute(packet).await,
            cmd::STMT_SEND_LONG_DATA => {
                self.stmt_long_data(packet);
                Ok(())
            }
            cmd::STMT_CLOSE => {
                self.stmt_close(packet);
                Ok(())
            }
            cmd::STMT_RESET => self.stmt_reset(packet).await,
            cmd::STMT_FETCH => self.stmt_fetch(packet).await,
            cmd::REGISTER_SLAVE => self.register_replica(packet).await,
            cmd::BINLOG_DUMP | cmd::BINLOG_DUMP_GTID => self.binlog_dump(packet).await,
            other => {
                let e = SqlError::new(
                    1047,
                    "08S01",
                    format!("Unknown or unsupported command 0x{other:02x}"),
                );
                self.send_err(&e).await
            }
        }
    }

    /// The session's pool slot (its user and client flavour).
    fn pool_slot(&self) -> usize {
        crate::pool::BackendPool::slot(self.login.user_index, self.flavour)
    }

    async fn init_db(&mut self, packet: &[u8]) -> Result<(), Fatal> {
        let db = String::from_utf8_lossy(&packet[1..]).into_owned();
        let intent = crate::router::classify(b"USE x");
        self.execute(
            packet,
            Expect::Single,
            (Target::Primary, Reason::Session),
            &intent,
            exec::OnOk::SetDb(db),
        )
        .await
    }

    async fn simple_primary(&mut self, packet: &[u8], expect: Expect) -> Result<(), Fatal> {
        let intent = crate::router::classify(b"SHOW TABLES");
        self.execute(
            packet,
            expect,
            (Target::Primary, Reason::Session),
            &intent,
            exec::OnOk::Nothing,
        )
        .await
    }

    fn view(&self) -> crate::router::SessionView {
        crate::router::SessionView {
            in_transaction: self.state.in_transaction(),
            pinned: self.state.pins != 0,
            has_user_vars: self.state.user_vars,
        }
    }

    async fn send_packet(&mut self, payload: &[u8]) -> Result<(), Fatal> {
        self.client_w.write_packet(&mut self.seq, payload).await?;
        self.client_w.flush().await?;
        Ok(())
    }

    async fn send_err(&mut self, e: &SqlError) -> Result<(), Fatal> {
        self.send_packet(&e.to_packet()).await
    }

    /// Tells a client silent for `listen.idle_timeout` why it is disconnected (MySQL 8's
    /// ER_CLIENT_INTERACTION_TIMEOUT, sequence 0 as an unsolicited packet), then ends.
    async fn disconnect_idle(&mut self) -> Result<(), Fatal> {
        let idle = self.shared.config.load().listen.idle_timeout.0;
        tracing::info!(parent: &self.span, "client idle for {idle:?} (listen.idle_timeout); disconnected");
        let e = SqlError::new(
            4031,
            "HY000",
            "The client was disconnected by the server because of inactivity (Sluice listen.idle_timeout)",
        );
        self.seq = 0;
        let _ = self.send_err(&e).await;
        Err(Fatal::Ended("idle for listen.idle_timeout"))
    }

    async fn send_ok(&mut self) -> Result<(), Fatal> {
        let ok = reply::ok(0, 0, self.state.status, 0);
        self.send_packet(&ok).await
    }
}

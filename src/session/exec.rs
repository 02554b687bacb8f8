//! Running one command on a backend: acquire a lease, align it, send, relay, keep or return.

use super::inflight::{closed_unread, reply_or_client_left, reply_or_tcp_client_left, InFlight};
use super::{Fatal, Session};
use crate::backend::BackendError;
use crate::error::SqlError;
use crate::pool::Lease;
use crate::protocol::relay::{Expect, Outcome, Relay, RelayError};
use crate::router::{flag, Intent, Kind, Reason, Target};
use std::sync::Arc;

/// Distinct session-variable statements replayed on other connections before the session is
/// pinned to its primary connection instead.
const MAX_TRACKED_VARS: usize = 64;

/// Session bookkeeping to do when the command succeeds.
pub(super) enum OnOk {
    Nothing,
    AddVar(Arc<str>),
    SetDb(String),
    /// `DROP DATABASE` of this name: if it is the current one, the server unset it.
    DropDb(String),
    /// A prepared statement: (client statement id, SQL).
    Prepared(u32, Arc<str>),
}

/// How a statement ended, for metrics and digests.
struct Done {
    failed: bool,
    rows: u64,
}

/// One statement, as its bookkeeping needs it.
#[derive(Clone, Copy)]
struct Stmt<'a> {
    payload: &'a [u8],
    intent: &'a Intent,
    target: Target,
    reason: Reason,
    /// When its command arrived (`timer::precise_ns`).
    started: u64,
}

impl<'a> Stmt<'a> {
    fn new(
        payload: &'a [u8],
        intent: &'a Intent,
        (target, reason): (Target, Reason),
        started: u64,
    ) -> Self {
        Stmt {
            payload,
            intent,
            target,
            reason,
            started,
        }
    }
}

/// Why a backend connection failed under a command (the cause kept for the message).
#[derive(Debug, thiserror::Error)]
pub(super) enum LinkError {
    #[error("the server had closed the connection")]
    ClosedBeforeSend,
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Relay(#[from] RelayError),
}

/// How a command on a lease failed.
pub(super) enum RunError {
    /// The backend failed; `sent` packets had reached the client. `unsent`: the command
    /// never reached the server whole (it cannot have run).
    Backend {
        sent: u32,
        unsent: bool,
        error: LinkError,
    },
    Client,
}

impl Session {
    /// Runs `payload` on a backend chosen by `target`, streaming the reply to the client.
    pub(super) async fn execute(
        &mut self,
        payload: &[u8],
        expect: Expect,
        (target, reason): (Target, Reason),
        intent: &Intent,
        on_ok: OnOk,
    ) -> Result<(), Fatal> {
        // the command's arrival: one clock read per statement for idleness and metrics
        let started = self.idle.last_active;
        let st = Stmt::new(payload, intent, (target, reason), started);
        let mut diagnosed = self.previous_connection(intent);
        let mut skip = None;
        if target == Target::Primary && self.primary.is_some() {
            self.follow_primary(intent).await;
            if self.tx_lost {
                return self.send_err(&super::lost_transaction()).await;
            }
        }
        let replay_on = self.replay_on(target);
        if may_write(intent) {
            // before it runs: however it ends, the transaction's COMMIT is tracked
            self.state.tx_wrote = true;
        }
        for attempt in 0..3 {
            let now = match diagnosed.take() {
                Some(previous) => Some(Ok(previous)),
                None => self.acquire_now((target, skip), intent),
            };
            let acquired = match now {
                Some(r) => r,
                None => self.acquire(target, intent, skip).await,
            };
            let (idx, mut lease) = match acquired {
                Ok(x) => x,
                Err(e) => return self.send_err(&e).await,
            };
            if !self.aligned(&lease, intent.flags) {
                if let Err(e) = self.align(&mut lease, intent.flags).await {
                    let name = lease.pool().name.clone();
                    // nothing of this statement ran yet: it may run again
                    let again =
                        e.is_fatal() && self.lost_before_running(lease, target, intent).await?;
                    if again && attempt < 2 {
                        continue;
                    }
                    return self.send_err(&e.to_sql_error(&name)).await;
                }
            }
            let ready = match self.payload_now(&mut lease, payload) {
                Some(r) => r,
                None => self.prepare_payload(&mut lease, payload).await,
            };
            let sent_payload = match ready {
                Ok(p) => p,
                Err(e) => return self.send_err(&e).await,
            };
            let sent = sent_payload.as_deref().unwrap_or(payload);
            let ran = self
                .run_on(
                    &mut lease,
                    idx,
                    sent,
                    expect,
                    &on_ok,
                    (replay_on, reply_early(intent)),
                )
                .await;
            self.keep_exec_buf(sent_payload);
            let failure = match ran {
                Ok(outcome) => {
                    if outcome.err.is_none() && self.may_have_written(idx, intent, outcome.status) {
                        // before the client sees the OK: with read_your_writes = "global"
                        // the next read of any session must know about this write
                        self.track_write(&mut lease, intent, outcome.status).await;
                    }
                    self.answered(&st, (idx, lease), (on_ok, replay_on), outcome);
                    return if self.reply_now()? {
                        Ok(())
                    } else {
                        self.flush_rest().await
                    };
                }
                // the lease dropped mid-command: the pool kills its backend thread, closes it
                Err(RunError::Client) => return Err(Fatal::ClientLeft),
                Err(RunError::Backend {
                    sent,
                    unsent,
                    error,
                }) => (sent, unsent, error),
            };
            let retry = (attempt, &mut skip);
            if let Some(e) = self
                .after_failure(&st, (idx, lease), failure, retry)
                .await?
            {
                return self.send_err(&e).await;
            }
        }
        self.send_err(&exhausted(target)).await
    }

    /// The statement ran (its write tracked): transaction log, metrics, session bookkeeping.
    /// Synchronous, so that the statement path awaits no extra future.
    fn answered(
        &mut self,
        st: &Stmt<'_>,
        (idx, mut lease): (usize, Lease),
        (on_ok, replay_on): (OnOk, bool),
        outcome: Outcome,
    ) {
        if replay_on {
            let limit = self
                .shared
                .config
                .load()
                .failover
                .transaction_replay_max_bytes;
            self.tx_log
                .record(st.payload, st.intent, outcome.digest, outcome.status, limit);
        }
        if let Some(code) = outcome.err.as_deref().and_then(|e| e.get(1..3)) {
            self.rule_error(u16::from_le_bytes([code[0], code[1]]));
        }
        // an error may come after some rows were written (multi-row, multi-statement)
        self.cache_written(st.payload, st.intent, outcome.status);
        if outcome.err.is_none() && st.intent.has(flag::GLOBAL_CHANGE) {
            // new sessions must see the new defaults and privileges, as direct ones would
            for b in self.shared.topology.backends().iter() {
                b.pool.retire();
            }
        }
        let done = Done {
            failed: outcome.err.is_some(),
            rows: outcome.rows,
        };
        if let Some(end) = self.count(idx, st, done) {
            lease.finished(end / 1_000_000);
        }
        self.after(idx, lease, st.target, st.intent, on_ok, outcome);
    }

    /// Sends the client what the relay left in its buffer.
    pub(super) async fn flush_reply(&mut self) -> Result<(), Fatal> {
        if self.reply_now()? {
            return Ok(());
        }
        self.flush_rest().await
    }

    /// `flush_reply` without waiting: `true` when the client's socket took it all.
    fn reply_now(&mut self) -> Result<bool, Fatal> {
        let r = self.client_w.flush_now();
        r.map_err(|e| self.client_gone(e))
    }

    /// What `flush_now` left of the reply, written when the client's socket has room.
    async fn flush_rest(&mut self) -> Result<(), Fatal> {
        let r = self.client_w.flush().await;
        r.map_err(|e| self.client_gone(e))
    }

    fn client_gone(&self, e: std::io::Error) -> Fatal {
        tracing::debug!(parent: &self.span, error = %e, "client went away");
        Fatal::ClientIo(e)
    }

    /// An execution's rewritten payload, kept for the next one (see `prepare_payload`)
    /// unless large.
    fn keep_exec_buf(&mut self, sent: Option<Vec<u8>>) {
        if let Some(b) = sent.filter(|b| b.capacity() <= 64 * 1024) {
            self.exec_buf = b;
        }
    }

    /// Whether a statement that succeeded on backend `idx` with `status` may have committed
    /// a write on the primary (`track_write` then remembers it).
    fn may_have_written(&self, idx: usize, intent: &Intent, status: u16) -> bool {
        idx == self.shared.topology.primary()
            && super::freshness::may_have_committed(intent, status)
            && (intent.kind != Kind::EndTx || self.state.tx_wrote)
    }

    /// The lease died before the statement ran on it: discarded; whether the statement may
    /// run again (the session held nothing there, or its transaction was replayed).
    async fn lost_before_running(
        &mut self,
        lease: Lease,
        target: Target,
        intent: &Intent,
    ) -> Result<bool, Fatal> {
        let was_alone = self.lose(lease);
        Ok(self.after_loss(target, intent).await? || was_alone)
    }

    /// A lease whose connection died, discarded (and its pool's dead idle connections with
    /// it); whether the session held nothing on the primary connection.
    fn lose(&mut self, lease: Lease) -> bool {
        lease.pool().purge_dead_idle();
        lease.discard();
        !self.state.holds_primary()
    }

    /// The connection broke under the statement (`sent` reply packets had reached the
    /// client; `unsent`: the command cannot have reached the server) on attempt `attempt`.
    /// `None`: run it again (a failed replica read avoids that replica: `skip`); else what
    /// the client gets.
    async fn after_failure(
        &mut self,
        st: &Stmt<'_>,
        (idx, lease): (usize, Lease),
        (sent, unsent, error): (u32, bool, LinkError),
        (attempt, skip): (usize, &mut Option<usize>),
    ) -> Result<Option<SqlError>, Fatal> {
        let name = lease.pool().name.clone();
        let was_alone = self.lose(lease);
        let (target, intent) = (st.target, st.intent);
        if sent == 0 && self.after_loss(target, intent).await? && attempt < 2 {
            return Ok(None); // the transaction is back on the new primary: run it again
        }
        // a read, or a statement that never reached the server, runs again (on a new
        // primary once there is one); anything else may have run
        let rerun = (target == Target::Replica && intent.kind == Kind::Read) || unsent;
        if sent == 0 && attempt < 2 && was_alone && rerun {
            let error = crate::error::chain(&error);
            tracing::warn!(parent: &self.span, backend = %name, %error, "statement failed before any reply; running it again");
            *skip = (target == Target::Replica).then_some(idx);
            return Ok(None);
        }
        let done = Done {
            failed: true,
            rows: 0,
        };
        self.count(idx, st, done);
        Ok(Some(SqlError::lost_connection(
            &name,
            &crate::error::chain(&error),
        )))
    }

    /// The session's connection died before the statement got any reply. Inside a
    /// transaction that can be replayed (and for a statement that cannot have committed it),
    /// reruns the transaction on the new primary: `Ok(true)` when the statement may run
    /// again. Otherwise whatever lived on the connection is gone.
    async fn after_loss(&mut self, target: Target, intent: &Intent) -> Result<bool, Fatal> {
        let replay = target == Target::Primary && self.state.tx_open() && self.can_replay(intent);
        self.lost_primary_if(target);
        if !replay {
            return Ok(false);
        }
        Ok(self.replay(intent).await)
    }

    /// Metrics and digest statistics for one statement (pre-resolved handles only); the
    /// statement's end (`timer::precise_ns`) when it read the clock.
    fn count(&mut self, idx: usize, st: &Stmt<'_>, Done { failed, rows }: Done) -> Option<u64> {
        let Stmt {
            payload,
            intent,
            target,
            reason,
            started,
        } = *st;
        let m = &self.shared.metrics;
        let b = self.backend_metrics.load().get(idx).cloned()?;
        let is_primary = idx == self.shared.topology.primary();
        let reason = if target == Target::Replica && is_primary {
            Reason::Fallback
        } else {
            reason
        };
        b.queries[reason.index()].inc();
        if failed {
            b.errors.inc();
        }
        let h = if is_primary {
            &m.query_duration_primary
        } else {
            &m.query_duration_replica
        };
        let end = crate::timer::precise_ns();
        let took_ns = end.saturating_sub(started);
        h.observe(took_ns as f64 / 1e9);
        let stmt = super::digest::Statement {
            payload,
            digest: intent.digest,
            backend: &b.name,
            reason,
            took_ns,
            rows,
            failed,
        };
        self.record_statement(&stmt);
        Some(end)
    }

    /// The session's primary connection died: whatever lived on it (transaction, temporary
    /// tables, locks, user variables) is gone.
    fn lost_primary_if(&mut self, target: Target) {
        if target == Target::Primary && self.state.holds_primary() {
            tracing::warn!(parent: &self.span,
                "primary connection lost; transaction and connection-bound state discarded"
            );
            if self.state.tx_open() {
                self.tx_lost = true;
            }
            self.state.pins = 0;
            self.state.user_vars = false;
            self.state.between_tx = true;
            self.handle.set_primary_tx(None);
            self.count_pinned();
            // no transaction any more; the client's autocommit setting stays
            self.state.status &= crate::protocol::status::AUTOCOMMIT;
        }
    }

    async fn run_on(
        &mut self,
        lease: &mut Lease,
        idx: usize,
        payload: &[u8],
        expect: Expect,
        on_ok: &OnOk,
        (digest, early): (bool, bool),
    ) -> Result<Outcome, RunError> {
        if lease.r.buffered() > 0 || lease.r.get_ref().closed_by_peer() {
            // found closed (or with unasked bytes) before sending: the command cannot run
            return Err(RunError::Backend {
                sent: 0,
                unsent: true,
                error: LinkError::ClosedBeforeSend,
            });
        }
        // cleared when this statement ends however it ends (error, client gone, cancelled)
        let on_primary = idx == self.shared.topology.primary();
        let _in_flight =
            InFlight::start(&self.handle, &self.shared, idx, lease.thread_id, on_primary);
        let fail = |e: BackendError| RunError::Backend {
            sent: 0,
            unsent: true,
            error: e.into(),
        };
        match lease.send_now(payload) {
            Ok(Some(true)) => {}
            Ok(now) => lease.send_rest(payload, now).await.map_err(fail)?,
            Err(e) => return Err(fail(e.into())),
        }
        let quiet = lease.r.buffered() == 0 && self.client_r.buffered() == 0;
        let waited = if quiet && self.client_r.get_ref().is_tcp() {
            reply_or_tcp_client_left(self.client_r.get_ref(), lease).await
        } else {
            reply_or_client_left(&mut self.client_r, lease).await
        };
        match waited {
            Ok(true) => {}
            Ok(false) => return Err(RunError::Client),
            Err(e) => {
                return Err(RunError::Backend {
                    sent: 0,
                    unsent: closed_unread(&e, lease),
                    error: RelayError::Backend(e).into(),
                })
            }
        }
        let conn = &mut **lease;
        let mut relay = Relay::new(&mut conn.r, &mut conn.w, conn.deprecate_eof, &mut conn.buf);
        relay.client_w = Some(&mut self.client_w);
        relay.client_r = Some(&mut self.client_r);
        relay.client_deprecate_eof = self.deprecate_eof;
        relay.status_hint = self.state.status;
        relay.out_seq = self.seq;
        if digest {
            relay.digest = Some(std::hash::DefaultHasher::new());
        }
        if let OnOk::Prepared(id, _) = on_ok {
            relay.stmt_id_for_client = Some(*id);
        }
        relay.cursor_asked = crate::protocol::relay::cursor_asked(payload);
        relay.reply_early = early;
        let res = if relay.run_now(expect) {
            Ok(())
        } else {
            relay.run(expect).await
        };
        let (outcome, seq) = (std::mem::take(&mut relay.outcome), relay.out_seq);
        drop(relay);
        self.seq = seq;
        match res {
            Ok(()) => {
                conn.busy = false;
                conn.status = outcome.status;
                Ok(outcome) // the caller flushes the reply to the client
            }
            Err(RelayError::Client(_)) => Err(RunError::Client),
            Err(e) => Err(RunError::Backend {
                sent: outcome.sent,
                unsent: false,
                error: e.into(),
            }),
        }
    }

    /// Bookkeeping after a relayed reply; decides whether the session keeps the lease.
    fn after(
        &mut self,
        idx: usize,
        mut lease: Lease,
        target: Target,
        intent: &Intent,
        on_ok: OnOk,
        o: Outcome,
    ) {
        self.state.status = o.status;
        if o.status & crate::protocol::status::IN_TRANS == 0 {
            self.state.tx_wrote = false;
        }
        if intent.flags & flag::LEAVES_STATE != 0 {
            // even a failed statement may have done part of it (multi-statements)
            lease.dirty = true;
        }
        if let Some(ok) = o.ok {
            if ok.last_insert_id != 0 {
                self.state.last_insert_id = ok.last_insert_id;
                lease.state.last_insert_id = ok.last_insert_id;
            }
        }
        let pins_before = (self.state.pins, self.state.user_vars);
        if o.err.is_none() {
            let ends_tx = intent.kind == Kind::EndTx && !intent.has(flag::SAVEPOINT);
            self.state.between_tx =
                !self.state.tx_open() && (ends_tx || intent.has(flag::AUTOCOMMIT));
            match on_ok {
                OnOk::Nothing => {}
                OnOk::AddVar(v) => {
                    // a repeated SET replaces its earlier copy (same final state); past the
                    // cap the session keeps its primary connection instead of replaying
                    self.state.vars.retain(|x| *x != v);
                    self.state.vars.push(v);
                    if self.state.vars.len() > MAX_TRACKED_VARS {
                        self.state.pins |= flag::PIN;
                    }
                    lease.state.vars = self.state.vars.clone();
                }
                OnOk::SetDb(db) => {
                    self.handle.show_db(Some(&db));
                    self.state.database = Some(db.clone());
                    lease.state.database = Some(db);
                }
                OnOk::DropDb(db) => {
                    if lease.state.database.as_deref() == Some(db.as_str()) {
                        lease.state.database = None;
                    }
                    if self.state.database.as_deref() == Some(db.as_str()) {
                        self.handle.show_db(None);
                        self.state.database = None;
                    }
                }
                OnOk::Prepared(id, sql) => self.prepared_ok(&mut lease, id, sql, o.prepared),
            }
            self.state.pins |= intent.flags & flag::HARD_PIN;
            if target == Target::Primary && intent.has(flag::USER_VAR | flag::ASSIGNS_USER_VAR) {
                self.state.user_vars = true;
            }
            if (self.state.pins, self.state.user_vars) != pins_before {
                self.pins_changed(pins_before);
            }
        }
        let is_primary = idx == self.shared.topology.primary();
        self.warnings_on_primary = false;
        self.last_ran = Some(idx);
        let in_tx = is_primary && self.state.tx_open();
        self.handle
            .set_primary_tx(in_tx.then_some((idx, lease.thread_id)));
        if is_primary && self.state.holds_primary() {
            self.warnings_on_primary = o.warnings > 0 || o.err.is_some();
            self.primary = Some((idx, lease));
        } else if o.warnings > 0 || o.err.is_some() {
            self.held = Some((idx, lease));
        }
    }
}

/// What the client gets when every attempt of a statement failed on a broken backend.
fn exhausted(target: Target) -> SqlError {
    let side = if target == Target::Primary {
        "primary"
    } else {
        "replica"
    };
    let why = "the statement could not be run after 3 attempts";
    SqlError::backend_unavailable(side, why)
}

/// Whether a statement's reply may reach the client before the session's bookkeeping after
/// it (`Relay::reply_early`): a read that cannot have written, committed or changed a global
/// (not a multi-statement, not a CALL), so that nothing another session could see (a cache
/// invalidation, a retired pool) is waiting for that bookkeeping.
fn reply_early(intent: &Intent) -> bool {
    intent.kind == Kind::Read
        && !may_write(intent)
        && !intent.has(flag::GLOBAL_CHANGE)
        && !super::freshness::may_have_committed(intent, 0)
}

/// Whether a statement may write (for `SessionState::tx_wrote`): anything but a read (locking
/// or not), a transaction's start or end, a savepoint, `USE`, `KILL` or an empty statement.
/// Conservative: a SET (it may call a function), a CALL, a multi-statement or one the
/// classifier cannot tell count as writes.
fn may_write(intent: &Intent) -> bool {
    let quiet = matches!(
        intent.kind,
        Kind::Read | Kind::Begin | Kind::EndTx | Kind::Use | Kind::Kill | Kind::Empty
    );
    !quiet || intent.has(flag::MULTI | flag::CALL)
}

//! Transaction replay (`failover.transaction_replay`): the statements of the open
//! transaction and a checksum of each reply are kept; when the primary connection is lost
//! (failover, a killed connection) or the primary changes (switchover) they are rerun on the
//! new primary, and the transaction continues only if every reply is the same.

use super::Session;
use crate::pool::Lease;
use crate::protocol::relay::{Expect, Relay};
use crate::protocol::stream::{ClientRead, ClientWrite};
use crate::protocol::{cmd, status};
use crate::router::{flag, Intent, Kind, Target};

/// One statement of the open transaction.
struct Entry {
    payload: Box<[u8]>,
    digest: u64,
}

/// The open transaction's statements; empty (no allocation) outside transactions.
#[derive(Default)]
pub(super) struct TxLog {
    entries: Vec<Entry>,
    bytes: usize,
    /// Something in the transaction cannot be rerun (too large, prepared statements, LOCAL
    /// INFILE data, a session pin): a loss ends it as before.
    spoiled: bool,
}

impl TxLog {
    fn clear(&mut self) {
        if !self.entries.is_empty() || self.spoiled {
            *self = TxLog::default();
        }
    }

    /// Records a statement that ran on the primary; `status` is the server status after it.
    pub(super) fn record(
        &mut self,
        payload: &[u8],
        intent: &Intent,
        digest: u64,
        status: u16,
        limit: usize,
    ) {
        if status & status::IN_TRANS == 0 {
            self.clear(); // no transaction open after it (autocommit, COMMIT, ROLLBACK)
            return;
        }
        if self.spoiled {
            return;
        }
        let text = payload.first() == Some(&cmd::QUERY);
        if !text || intent.has(flag::HARD_PIN) || self.bytes + payload.len() > limit {
            self.entries = Vec::new();
            self.spoiled = true;
            return;
        }
        self.bytes += payload.len();
        self.entries.push(Entry {
            payload: payload.into(),
            digest,
        });
    }
}

/// How a replay ended without the transaction back.
pub(super) enum ReplayFailure {
    /// Nothing to replay, or the transaction cannot be rerun.
    NotReplayable,
    /// A reply differed (the data changed since): the transaction is lost.
    Mismatch(String),
    /// No primary in time, or the new connection failed.
    Failed(String),
}

impl Session {
    /// Whether the session keeps reply checksums for the statement about to run.
    pub(super) fn replay_on(&self, target: Target) -> bool {
        target == Target::Primary && self.shared.config.load().failover.transaction_replay
    }

    /// Whether the open transaction can be rerun in place of the lost one, with `intent` (the
    /// statement that found the connection gone, not yet answered) run again after it.
    pub(super) fn can_replay(&self, intent: &Intent) -> bool {
        self.shared.config.load().failover.transaction_replay
            && !self.tx_log.spoiled
            && !self.tx_log.entries.is_empty()
            && self.state.pins == 0
            && !self.state.user_vars
            // a COMMIT or ROLLBACK in flight may have ended the transaction already
            && intent.kind != Kind::EndTx
    }

    /// Reruns the transaction (see `rerun_log`) and counts the outcome; `false`: the
    /// transaction is lost.
    pub(super) async fn replay(&mut self, intent: &Intent) -> bool {
        let r = self.rerun_log(intent).await;
        self.replay_done(&r);
        r.is_ok()
    }

    /// Reruns the transaction log on the (new) primary; on success the session holds the
    /// connection with the transaction open again.
    async fn rerun_log(&mut self, intent: &Intent) -> Result<(), ReplayFailure> {
        let log = std::mem::take(&mut self.tx_log);
        if log.spoiled || log.entries.is_empty() {
            return Err(ReplayFailure::NotReplayable);
        }
        let (idx, mut lease) = self
            .acquire(Target::Primary, intent, None)
            .await
            .map_err(|e| ReplayFailure::Failed(e.message))?;
        let name = lease.pool().name.clone();
        if let Err(e) = self.align(&mut lease, 0).await {
            return Err(ReplayFailure::Failed(e.to_sql_error(&name).message));
        }
        let mut last_status = status::AUTOCOMMIT;
        for (n, e) in log.entries.iter().enumerate() {
            let (digest, st) = rerun(&mut lease, &e.payload)
                .await
                .map_err(|err| ReplayFailure::Failed(format!("{name}: {err}")))?;
            if digest != e.digest {
                lease.discard();
                return Err(ReplayFailure::Mismatch(format!(
                    "statement {} of {} answered differently on {name}",
                    n + 1,
                    log.entries.len()
                )));
            }
            last_status = st;
        }
        tracing::warn!(parent: &self.span, backend = %name, statements = log.entries.len(), "transaction replayed on the new primary");
        self.state.status = last_status;
        self.tx_lost = false;
        self.tx_log = log;
        self.primary = Some((idx, lease));
        Ok(())
    }

    /// Counts a replay and turns a failure into the lost-transaction state.
    fn replay_done(&mut self, r: &Result<(), ReplayFailure>) {
        let (result, why) = match r {
            Ok(()) => ("success", None),
            Err(ReplayFailure::NotReplayable) => ("not_replayable", None),
            Err(ReplayFailure::Mismatch(why)) => ("mismatch", Some(why)),
            Err(ReplayFailure::Failed(why)) => ("failed", Some(why)),
        };
        if let Some(why) = why {
            tracing::warn!(parent: &self.span, reason = %why, "transaction replay failed; the transaction is lost");
        }
        self.shared
            .metrics
            .transaction_replays_total
            .with_label_values(&[result])
            .inc();
        if r.is_err() {
            self.tx_log.clear();
            self.tx_lost = true;
        }
    }

    /// Before a statement of an open transaction: if the primary changed under it
    /// (switchover), or is changing (writes held), move the transaction to the new primary.
    pub(super) async fn follow_primary(&mut self, intent: &Intent) {
        let Some((idx, _)) = &self.primary else {
            return;
        };
        let shared = self.shared.clone();
        if !self.state.tx_open() || !self.can_replay(intent) {
            return;
        }
        // a switchover lets open transactions run on the old primary while it drains
        let f = &shared.failover;
        let holding = f.holding.load(std::sync::atomic::Ordering::SeqCst)
            && !f.draining.load(std::sync::atomic::Ordering::SeqCst);
        if holding {
            let hold = shared.config.load().failover.hold_writes.0;
            shared
                .failover
                .wait_for_primary(&shared.topology, usize::MAX, hold)
                .await;
        }
        if *idx == shared.topology.primary() {
            return;
        }
        self.handle.set_primary_tx(None);
        if let Some((_, old)) = self.primary.take() {
            old.discard(); // closing it rolls the old transaction back on the old primary
        }
        self.replay(intent).await;
    }
}

/// Runs one logged statement on `lease`, swallowing the reply: (checksum, status after).
async fn rerun(lease: &mut Lease, payload: &[u8]) -> Result<(u64, u16), String> {
    lease.send(payload).await.map_err(|e| e.to_string())?;
    let conn = &mut **lease;
    let mut relay: Relay<'_, _, _, ClientRead, ClientWrite> =
        Relay::new(&mut conn.r, &mut conn.w, conn.deprecate_eof, &mut conn.buf);
    relay.digest = Some(std::hash::DefaultHasher::new());
    relay.cursor_asked = crate::protocol::relay::cursor_asked(payload);
    relay
        .run(Expect::ResultSets)
        .await
        .map_err(|e| e.to_string())?;
    let o = std::mem::take(&mut relay.outcome);
    drop(relay);
    conn.busy = false;
    conn.status = o.status;
    Ok((o.digest, o.status))
}

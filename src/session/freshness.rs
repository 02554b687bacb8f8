//! Choosing a replica that is fresh enough for a read (lag bound, read-your-writes), and
//! remembering the session's last write.

use super::Session;
use crate::backend::ConnectOpts;
use crate::config::{Fallback, ReadYourWrites};
use crate::error::SqlError;
use crate::failover::sql::Dialect;
use crate::pool::Lease;
use crate::router::{Intent, Kind};
use crate::topology::gtid::GtidSet;
use crate::topology::ReadNeeds;
use std::sync::Arc;
use std::time::Instant;

fn is_mariadb(lease: &Lease) -> bool {
    Dialect::of(&lease.server_version) == Dialect::MariaDb
}

impl Session {
    /// A replica lease for a read, or `Ok(None)` when the read must go to the primary.
    pub(super) async fn acquire_replica(
        &mut self,
        intent: &Intent,
        mut skip: Option<usize>,
    ) -> Result<Option<(usize, Lease)>, SqlError> {
        let cfg = self.shared.config.load();
        let plan = std::mem::take(&mut self.plan);
        let mode = plan
            .read_your_writes
            .unwrap_or(cfg.routing.read_your_writes);
        if matches!(mode, ReadYourWrites::Gtid | ReadYourWrites::Global) {
            self.resolve_write().await;
        }
        if mode == ReadYourWrites::Global {
            self.adopt_global_write();
        }
        if self.wrote_recently(mode, &cfg) {
            return Ok(None);
        }
        let wait = cfg.routing.gtid_wait.0;
        loop {
            let pick = {
                // the backend list's guard is not held across the checkout's wait
                let backends = self.shared.topology.backends();
                self.pick_for_read((&**cfg, &backends[..]), intent, &plan, (mode, skip))?
            };
            let Some((r, must_wait)) = pick else {
                return Ok(None);
            };
            match self.checkout(r).await {
                Ok(lease) if !must_wait => return Ok(Some((r, lease))),
                Ok(lease) => return Ok(self.wait_for_gtid(r, lease, wait).await),
                Err(e) if e.code == 1040 => return Err(e), // pool exhausted: do not pile onto the primary
                Err(e) => {
                    let retry = cfg.routing.replica_retry_after.0;
                    let topo = &self.shared.topology;
                    tracing::warn!(parent: &self.span, backend = %topo.backend(r).pool.name, error = %e, "replica unavailable; reads skip it for {retry:?}");
                    topo.backend(r).pool.mark_down(retry);
                    skip = Some(r);
                }
            }
        }
    }

    /// `acquire_replica` without waiting, for a statement without a rule's plan outside
    /// `read_your_writes = "global"` (nothing to take or adopt): `Some` when decided here (a
    /// parked replica connection, the primary, or the fallback error); `None`: ask
    /// `acquire_replica`, which decides again from the start.
    pub(super) fn replica_now(
        &mut self,
        intent: &Intent,
    ) -> Option<Result<Option<(usize, Lease)>, SqlError>> {
        if !self.plan.is_empty() || self.state.write_unresolved.is_some() {
            return None;
        }
        let cfg = self.config.load().clone();
        let mode = cfg.routing.read_your_writes;
        if mode == ReadYourWrites::Global {
            return None;
        }
        if self.wrote_recently(mode, &cfg) {
            return Some(Ok(None));
        }
        let backends = self.backends.load().clone();
        let read = (&*cfg, &backends[..]);
        match self.pick_for_read(read, intent, &ReadPlan::default(), (mode, None)) {
            Err(e) => Some(Err(e)),
            Ok(None) => Some(Ok(None)),
            Ok(Some((_, true))) => None,
            Ok(Some((r, false))) => self
                .parked_in(&backends, r, self.idle.arrived_ms())
                .map(|l| Ok(Some((r, l)))),
        }
    }

    /// With `read_your_writes = "session"`: whether the session wrote within the window
    /// (its reads stay on the primary).
    fn wrote_recently(&self, mode: ReadYourWrites, cfg: &crate::config::Config) -> bool {
        mode == ReadYourWrites::Session
            && self
                .state
                .last_write_at
                .is_some_and(|at| at.elapsed() < cfg.routing.read_your_writes_window.0)
    }

    /// The replica for a read (with whether it must first wait for the session's last write),
    /// `None` for the primary, or the error of a `fallback = "error"`; makes no change.
    fn pick_for_read(
        &self,
        (cfg, backends): (&crate::config::Config, &[Arc<crate::topology::Backend>]),
        intent: &Intent,
        plan: &ReadPlan,
        (mode, skip): (ReadYourWrites, Option<usize>),
    ) -> Result<Option<(usize, bool)>, SqlError> {
        let topo = &self.shared.topology;
        let gtid = match mode {
            ReadYourWrites::Gtid | ReadYourWrites::Global => self.state.last_write_gtid.as_deref(),
            _ => None,
        };
        let max_lag_us = (intent.max_lag_ms > 0).then(|| intent.max_lag_ms as i64 * 1000);
        let needs = ReadNeeds {
            max_lag_us,
            gtid,
            confirmed: Some(&self.state.confirmed),
            members: plan.group.as_ref().map(|g| &g.members),
            lag_bound_us: plan.lag_bound_us,
        };
        let pick = match topo.pick_replica_in(backends, skip, &needs, true) {
            Some(r) => Some((r, false)),
            None if gtid.is_some() && !cfg.routing.gtid_wait.0.is_zero() => {
                topo.least_lagged_replica(skip, &needs).map(|r| (r, true))
            }
            None => None,
        };
        let Some((r, must_wait)) = pick else {
            if plan.fallback_error {
                return Err(plan.no_member());
            }
            let fallback = cfg.routing.fallback;
            return no_replica(topo, (skip, max_lag_us), fallback, intent).map(|()| None);
        };
        if r == topo.primary() {
            return Ok(None); // a group's primary member: the session's primary path
        }
        Ok(Some((r, must_wait)))
    }

    /// Replica `r` (least lagged) waits up to `wait` for the session's last write; the lease
    /// if it applied it in time, else `None` (the primary has it).
    async fn wait_for_gtid(
        &mut self,
        r: usize,
        mut lease: Lease,
        wait: std::time::Duration,
    ) -> Option<(usize, Lease)> {
        let sql =
            Dialect::of(&lease.server_version).wait_for(&self.last_gtid_text, wait.as_secs_f64());
        match lease.query(&sql).await {
            Ok(res) if res.get("r") == Some("0") => {
                self.state.confirmed.insert(r);
                Some((r, lease))
            }
            Ok(_) => None,
            Err(e) => {
                if e.is_fatal() {
                    lease.discard();
                }
                None
            }
        }
    }

    /// After a successful statement that may have written on the primary (outside a
    /// transaction, or its COMMIT; `may_have_committed`, checked by the caller): remember it
    /// for read-your-writes. Its GTID is read when a read needs it (`resolve_write`), at
    /// once with `read_your_writes = "global"` (every session's next read needs it).
    /// `status`: the server status after the statement. What counts is whether a transaction
    /// is still open then, not the autocommit mode: with autocommit off, COMMIT (or DDL, or
    /// `SET autocommit=1`) commits and leaves the session "in a transaction" by mode only.
    pub(super) async fn track_write(&mut self, lease: &mut Lease, intent: &Intent, status: u16) {
        debug_assert!(may_have_committed(intent, status), "the caller checks");
        let mode = self.shared.config.load().routing.read_your_writes;
        match mode {
            ReadYourWrites::Off => {}
            ReadYourWrites::Session => self.state.last_write_at = Some(Instant::now()),
            ReadYourWrites::Gtid | ReadYourWrites::Global => {
                self.state.last_write_at = Some(Instant::now());
                self.state.write_unresolved = Some(is_mariadb(lease));
                if mode == ReadYourWrites::Global {
                    // every session's next read needs this write: published before its OK
                    self.resolve_write().await;
                }
            }
        }
    }

    /// Reads the primary's GTID position for the session's last write if that is not done
    /// yet (`write_unresolved`): the position as read after the write's reply arrived
    /// (`last_write_at`), one read shared by the sessions waiting for it. Without an answer
    /// the session's reads go to the primary for a while.
    pub(super) async fn resolve_write(&mut self) {
        let (Some(mariadb), Some(since)) =
            (self.state.write_unresolved.take(), self.state.last_write_at)
        else {
            return;
        };
        let global = self.shared.config.load().routing.read_your_writes == ReadYourWrites::Global;
        let idx = self.shared.topology.primary();
        let pool = &self.shared.topology.backend(idx).pool;
        // the [monitor] account, else this client's (any account may read it)
        let opts = || match &self.shared.config.load().monitor {
            Some(m) => pool.monitor_opts(m),
            None => ConnectOpts {
                database: None,
                ..self.connect_opts(idx)
            },
        };
        let reads = &self.shared.metrics.gtid_position_reads_total;
        match pool.position.after(since, opts, (mariadb, reads)).await {
            Ok(g) => {
                if !g.is_empty() && g != self.last_gtid_text {
                    let set = Arc::new(GtidSet::parse(&g));
                    if global {
                        self.publish_global_write(&set, &g);
                    }
                    self.state.last_write_gtid = Some(set);
                    self.last_gtid_text = g;
                    self.state.confirmed.clear();
                }
            }
            Err(e) => {
                tracing::debug!(parent: &self.span, error = %e, "cannot read the primary's GTID position; reads stay on the primary for a while");
                // without a GTID, play safe: the session reads from the primary
                self.state.last_write_gtid = Some(Arc::new(GtidSet::parse(
                    "4294967295-0-18446744073709551615",
                )));
            }
        }
    }
}

/// Whether a statement that succeeded with server `status` may have committed a write
/// (outside a transaction, or its end): what `track_write` remembers.
pub(super) fn may_have_committed(intent: &Intent, status: u16) -> bool {
    let may_commit = matches!(intent.kind, Kind::Write | Kind::EndTx)
        || intent.has(crate::router::flag::AUTOCOMMIT);
    may_commit && status & crate::protocol::status::IN_TRANS == 0
}

/// How a routing rule wants this statement's read served (`rules`): reset per statement.
#[derive(Default)]
pub(super) struct ReadPlan {
    /// Only this group's members (the primary too if it is one).
    pub group: Option<Arc<crate::rules::Group>>,
    /// No eligible member: an error instead of the primary.
    pub fallback_error: bool,
    pub lag_bound_us: Option<i64>,
    pub read_your_writes: Option<ReadYourWrites>,
}

impl ReadPlan {
    /// No rule asked anything of this read.
    pub(super) fn is_empty(&self) -> bool {
        self.group.is_none()
            && !self.fallback_error
            && self.lag_bound_us.is_none()
            && self.read_your_writes.is_none()
    }

    fn no_member(&self) -> SqlError {
        let what = match &self.group {
            Some(g) => format!("member of server group {}", g.name),
            None => "replica".to_string(),
        };
        SqlError::new(
            1105,
            "HY000",
            format!("Sluice: no {what} is healthy and fresh enough for this statement (rule fallback = \"error\")"),
        )
    }
}

impl Session {
    /// Makes the proxy-wide last write this session's freshness requirement.
    fn adopt_global_write(&mut self) {
        let global = self.shared.last_write.load();
        if let Some(w) = global.as_deref() {
            if w.1 != self.last_gtid_text {
                self.state.last_write_gtid = Some(w.0.clone());
                self.last_gtid_text = w.1.clone();
                self.state.confirmed.clear();
            }
        }
    }

    /// Publishes a write unless a newer one (containing it) is already published.
    fn publish_global_write(&self, set: &Arc<GtidSet>, text: &str) {
        let new = Arc::new((set.clone(), text.to_string()));
        self.shared.last_write.rcu(|cur| match cur.as_deref() {
            Some(c) if c.0.contains(set) => cur.clone(),
            _ => Some(new.clone()),
        });
    }
}

/// No replica may take a read: `Ok` to fall back to the primary, or the error of
/// `routing.fallback = "error"` when no replica is healthy and fresh enough (lag only; a
/// session's own unapplied write still falls back).
#[inline]
fn no_replica(
    topo: &crate::topology::Topology,
    (skip, max_lag_us): (Option<usize>, Option<i64>),
    fallback: Fallback,
    intent: &Intent,
) -> Result<(), SqlError> {
    if fallback != Fallback::Error || intent.kind != Kind::Read {
        return Ok(());
    }
    let needs = ReadNeeds {
        max_lag_us,
        ..Default::default()
    };
    if topo.pick_replica(skip, &needs, true).is_some() {
        return Ok(());
    }
    Err(SqlError::new(
        1105,
        "HY000",
        "Sluice: no replica is healthy and fresh enough for this read (routing.fallback = \"error\")",
    ))
}

//! Getting a backend connection for a statement: the session's own (held, or parked in its
//! pool) without waiting when it is at hand, else a checkout, a fresh-enough replica or,
//! during a failover, the new primary.

use super::Session;
use crate::backend::ConnectOpts;
use crate::error::SqlError;
use crate::pool::{BackendPool, Lease};
use crate::router::{Intent, Target};
use crate::topology::Backend;
use std::sync::Arc;

impl Session {
    pub(super) fn connect_opts(&self, backend: usize) -> ConnectOpts {
        let cfg = self.shared.config.load();
        ConnectOpts {
            address: self.shared.topology.backend(backend).pool.address.clone(),
            user: self.login.user.clone(),
            password: self.login.password.clone(),
            native_hash1: self.login.native_hash1,
            // a client in another character set than the one connections open in gets its
            // database after its `SET NAMES` (see `align::database_and_vars`): the server
            // then judges the name in the client's character set, as for a direct login
            database: match self.state.vars.first() {
                Some(v) if super::align::is_set_names(v) => None,
                _ => self.state.database.clone(),
            },
            flavour: self.flavour,
            timeout: cfg.pool.connect_timeout.0,
            tls: self.shared.topology.backend(backend).pool.tls(),
        }
    }

    /// This session's key in a backend's pool: (pool slot of its user and framing, session
    /// id for its parked connection).
    fn pool_key(&self) -> (usize, u32) {
        (
            BackendPool::slot(self.login.user_index, self.flavour),
            self.handle.id,
        )
    }

    /// The session's own connection to `backends[i]` parked in its pool, if it is there;
    /// `now_ms`: a monotonic clock reading in milliseconds (at the command's start, its
    /// arrival: `Idle::arrived_ms`).
    pub(super) fn parked_in(
        &self,
        backends: &[Arc<Backend>],
        i: usize,
        now_ms: u64,
    ) -> Option<Lease> {
        backends[i].pool.take_parked(self.pool_key(), now_ms)
    }

    pub(super) async fn checkout(&self, backend: usize) -> Result<Lease, SqlError> {
        // the session's own parked connection: no reference to the backend kept (after
        // possible waits: a clock reading of its own)
        let now_ms = crate::timer::coarse_ms();
        let parked = self.parked_in(&self.shared.topology.backends(), backend, now_ms);
        if let Some(lease) = parked {
            return Ok(lease);
        }
        let key = self.pool_key();
        let pool = &self.shared.topology.backend(backend).pool;
        // the configuration is read only when the pool is at its limit
        let wait = || self.shared.config.load().pool.checkout_timeout.0;
        let r = pool
            .checkout(key, || self.connect_opts(backend), wait)
            .await;
        if matches!(&r, Err(e) if e.code == 1040) {
            if let Some(b) = self.shared.metrics.backends.load().get(backend) {
                b.pool_timeouts.inc();
            }
        }
        r
    }

    /// `acquire` without waiting, when the session's connection is at hand (held, or parked
    /// in its pool) and neither a replica to `skip` nor a failover holding writes is
    /// involved: `None` asks `acquire`.
    pub(super) fn acquire_now(
        &mut self,
        (target, skip): (Target, Option<usize>),
        intent: &Intent,
    ) -> Option<Result<(usize, Lease), SqlError>> {
        if skip.is_some() {
            return None;
        }
        if target == Target::Replica {
            match self.replica_now(intent)? {
                Ok(Some(r)) => return Some(Ok(r)),
                Err(e) => return Some(Err(e)),
                Ok(None) => {}
            }
        }
        if let Some(p) = self.primary.take() {
            return Some(Ok(p));
        }
        if self
            .shared
            .failover
            .holding
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        let p = self.shared.topology.primary();
        let backends = self.backends.load().clone();
        self.parked_in(&backends, p, self.idle.arrived_ms())
            .map(|l| Ok((p, l)))
    }

    /// A lease on a fresh-enough replica for reads, else on the primary (the session's own
    /// if it holds one).
    pub(super) async fn acquire(
        &mut self,
        target: Target,
        intent: &Intent,
        skip: Option<usize>,
    ) -> Result<(usize, Lease), SqlError> {
        if target == Target::Replica {
            if let Some(r) = self.acquire_replica(intent, skip).await? {
                return Ok(r);
            }
        }
        if let Some(p) = self.primary.take() {
            return Ok(p);
        }
        let holding = &self.shared.failover.holding;
        if holding.load(std::sync::atomic::Ordering::Relaxed) {
            // failover or switchover in progress: wait for the new primary instead of failing
            let shared = self.shared.clone();
            let hold = shared.config.load().failover.hold_writes.0;
            shared
                .failover
                .wait_for_primary(&shared.topology, usize::MAX, hold)
                .await;
        }
        let p = self.shared.topology.primary();
        match self.checkout(p).await {
            Ok(l) => Ok((p, l)),
            Err(e) if e.code != 1040 && self.shared.config.load().failover.enabled => {
                let shared = self.shared.clone();
                let hold = shared.config.load().failover.hold_writes.0;
                tracing::warn!(parent: &self.span, error = %e, "primary unreachable; holding the write for a new primary");
                if shared
                    .failover
                    .wait_for_primary(&shared.topology, p, hold)
                    .await
                {
                    let np = shared.topology.primary();
                    Ok((np, self.checkout(np).await?))
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }
}

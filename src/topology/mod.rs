//! The backends Sluice knows, their live state, and replica selection.
//!
//! Without a `[monitor]` section roles come from the config and every backend counts as
//! healthy (connection failures still bench a replica briefly). With it, `monitor` tasks
//! discover roles from `read_only`, health with hysteresis, and lag.

pub mod failover;
pub mod gtid;
pub mod heartbeat;
pub mod history;
pub mod set;
pub mod state;

use crate::config::{Config, Role};
use crate::pool::BackendPool;
use arc_swap::ArcSwap;
use gtid::GtidSet;
use rand::Rng;
use smallvec::SmallVec;
use state::BackendState;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Backend {
    pub pool: Arc<BackendPool>,
    /// Role from the config (a hint once the monitor runs).
    pub role: Role,
    weight: AtomicU32,
    /// Removed from the config: takes no new statements, drains, stays in the list so that
    /// indices held by sessions remain valid.
    removed: AtomicBool,
    /// Drained by an operator (admin API): no new reads until undrained.
    drained: AtomicBool,
    pub state: BackendState,
}

/// The TLS client of backend `b` (the config was validated, so building it succeeds unless
/// a file changed since; then the backend gets no TLS client and the error is logged).
pub fn backend_tls(
    cfg: &Config,
    b: &crate::config::Backend,
) -> Option<Arc<crate::backend::TlsClient>> {
    crate::tls::client::client(&cfg.backend_tls, b.tls, &b.address).unwrap_or_else(|e| {
        tracing::error!(backend = %b.name, error = %e, "backend TLS settings unusable");
        None
    })
}

impl Backend {
    pub fn new(cfg: &Config, b: &crate::config::Backend) -> Backend {
        let pool = BackendPool::new(
            &b.name,
            &b.address,
            cfg.pool.max_connections_per_backend,
            cfg.pool.max_idle_per_backend,
        );
        pool.set_tls(backend_tls(cfg, b));
        Backend {
            pool: Arc::new(pool),
            role: b.role,
            weight: AtomicU32::new(b.weight),
            removed: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            state: BackendState::default(),
        }
    }
    pub fn weight(&self) -> u32 {
        if self.is_removed() || self.is_drained() {
            0
        } else {
            self.weight.load(Ordering::Relaxed)
        }
    }
    pub fn set_weight(&self, w: u32) {
        self.weight.store(w, Ordering::Relaxed);
    }
    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }
    pub fn set_drained(&self, on: bool) {
        self.drained.store(on, Ordering::Relaxed);
    }
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }
    /// Marks the backend removed and closes its idle connections; busy ones close when
    /// their statement ends.
    pub fn remove(&self) {
        self.removed.store(true, Ordering::Relaxed);
        self.pool.close();
    }
}

pub struct Topology {
    /// Append-only: a backend keeps its index for the life of the process.
    backends: ArcSwap<Vec<Arc<Backend>>>,
    primary: AtomicUsize,
    /// More than one backend is writable: the primary is kept, and this is raised.
    pub split_brain: AtomicBool,
    /// Serialises role resolution (`monitor::resolve_roles`).
    pub(crate) roles: parking_lot::Mutex<()>,
}

/// Extra conditions for one read.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadNeeds<'a> {
    /// A stricter lag bound than the configured one (hint `sluice:max_lag=...`).
    pub max_lag_us: Option<i64>,
    /// The replica must have applied this (read-your-writes).
    pub gtid: Option<&'a GtidSet>,
    /// Replicas known to have applied `gtid` regardless of what the monitor saw.
    pub confirmed: Option<&'a set::BackendSet>,
    /// Only these backends (a server group); the primary too if it is a member.
    pub members: Option<&'a set::BackendSet>,
    /// A replicating replica within this lag may serve even if `routing.max_replica_lag`
    /// made it ineligible (a rule's `max_lag`).
    pub lag_bound_us: Option<i64>,
}

impl Topology {
    pub fn from_config(cfg: &Config) -> Self {
        let backends: Vec<Arc<Backend>> = cfg
            .backends
            .iter()
            .map(|b| Arc::new(Backend::new(cfg, b)))
            .collect();
        let primary = backends
            .iter()
            .position(|b| b.role == Role::Primary)
            .unwrap_or(0);
        backends[primary].state.update(|s| s.writable = true);
        Self {
            backends: ArcSwap::from_pointee(backends),
            primary: AtomicUsize::new(primary),
            split_brain: AtomicBool::new(false),
            roles: parking_lot::Mutex::new(()),
        }
    }

    /// All backends ever configured (check `is_removed`).
    pub fn backends(&self) -> arc_swap::Guard<Arc<Vec<Arc<Backend>>>> {
        self.backends.load()
    }

    /// The backend list itself, for a reader that caches it (`arc_swap::Cache`).
    pub fn backends_swap(&self) -> &ArcSwap<Vec<Arc<Backend>>> {
        &self.backends
    }

    pub fn backend(&self, i: usize) -> Arc<Backend> {
        self.backends.load()[i].clone()
    }

    pub fn len(&self) -> usize {
        self.backends.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index of the live (not removed) backend called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.backends
            .load()
            .iter()
            .position(|b| b.pool.name == name && !b.is_removed())
    }

    /// Appends a backend; returns its index.
    pub fn add(&self, b: Backend) -> usize {
        let b = Arc::new(b);
        let mut index = 0;
        self.backends.rcu(|old| {
            let mut v = Vec::clone(old);
            index = v.len();
            v.push(b.clone());
            v
        });
        index
    }

    pub fn primary(&self) -> usize {
        self.primary.load(Ordering::Relaxed)
    }

    pub fn set_primary(&self, i: usize) {
        self.primary.store(i, Ordering::Relaxed);
    }

    /// A failover or switchover made `new` the primary (and `old`, if reachable, read-only):
    /// recorded under the same lock as the monitor's role resolution.
    pub fn promoted(&self, new: usize, old: Option<usize>) {
        let _one = self.roles.lock();
        self.set_primary(new);
        self.backend(new).state.update(|s| s.writable = true);
        if let Some(old) = old {
            self.backend(old).state.update(|s| s.writable = false);
        }
    }

    fn can_read(
        &self,
        i: usize,
        b: &Backend,
        skip: Option<usize>,
        needs: &ReadNeeds<'_>,
        check_gtid: bool,
    ) -> bool {
        let primary = i == self.primary();
        if (primary && needs.members.is_none())
            || b.weight() == 0
            || Some(i) == skip
            || b.pool.is_down()
            || needs.members.is_some_and(|m| !m.contains(i))
        {
            return false;
        }
        let st = b.state.load();
        if primary {
            return st.up; // a group's primary member: it has every write
        }
        let lag = st.lag_us();
        let within = |max: i64| lag.is_some_and(|l| l <= max);
        let loose = needs
            .lag_bound_us
            .is_some_and(|max| st.replicating && within(max));
        if !st.up || !(st.eligible || loose) {
            return false;
        }
        if needs.max_lag_us.is_some_and(|max| !within(max)) {
            return false;
        }
        if check_gtid {
            if let Some(g) = needs.gtid {
                return needs.confirmed.is_some_and(|c| c.contains(i)) || st.gtid.contains(g);
            }
        }
        true
    }

    /// The eligible replica with the least lag (ignoring the GTID requirement): the best one
    /// to wait on for a write it has probably applied already.
    pub fn least_lagged_replica(
        &self,
        skip: Option<usize>,
        needs: &ReadNeeds<'_>,
    ) -> Option<usize> {
        self.backends
            .load()
            .iter()
            .enumerate()
            .filter(|(i, b)| self.can_read(*i, b, skip, needs, false))
            .min_by_key(|(_, b)| b.state.load().lag_us().unwrap_or(i64::MAX))
            .map(|(i, _)| i)
    }

    /// A replica for a read: among those eligible, two picked at random by weight, the one
    /// with fewer statements in flight per weight wins. With `check_gtid` false the GTID
    /// requirement is ignored (the caller will wait for it). `None`: no replica can serve.
    pub fn pick_replica(
        &self,
        skip: Option<usize>,
        needs: &ReadNeeds<'_>,
        check_gtid: bool,
    ) -> Option<usize> {
        self.pick_replica_in(&self.backends.load(), skip, needs, check_gtid)
    }

    /// `pick_replica` among `backends`, this topology's list as loaded by the caller.
    pub fn pick_replica_in(
        &self,
        backends: &[Arc<Backend>],
        skip: Option<usize>,
        needs: &ReadNeeds<'_>,
        check_gtid: bool,
    ) -> Option<usize> {
        // each backend's eligibility and weight are read once (atomic loads each time); no
        // random draw when at most one can serve
        let mut candidates: SmallVec<[(usize, u64); 8]> = SmallVec::new();
        let mut total = 0;
        for (i, b) in backends.iter().enumerate() {
            if self.can_read(i, b, skip, needs, check_gtid) {
                let w = b.weight() as u64;
                if w > 0 {
                    candidates.push((i, w));
                    total += w;
                }
            }
        }
        match candidates[..] {
            [] => return None,
            [(only, _)] => return Some(only),
            _ => {}
        }
        let mut rng = rand::rng();
        let mut draw = || {
            let mut x = rng.random_range(0..total);
            for &(i, w) in &candidates {
                if x < w {
                    return i;
                }
                x -= w;
            }
            candidates[0].0
        };
        let (a, b) = (draw(), draw());
        let load = |i: usize| {
            let be = &backends[i];
            be.pool.busy.load(Ordering::Relaxed) as f64 / be.weight().max(1) as f64
        };
        Some(if load(b) < load(a) { b } else { a })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(weights: &[u32]) -> Config {
        let mut text = String::from(
            "[listen]\naddress='127.0.0.1:1'\n[admin]\naddress='127.0.0.1:2'\n[[users]]\nname='a'\npassword='b'\n\
             [[backends]]\nname='p'\naddress='127.0.0.1:3'\nrole='primary'\n",
        );
        for (i, w) in weights.iter().enumerate() {
            text.push_str(&format!(
                "[[backends]]\nname='r{i}'\naddress='127.0.0.1:{}'\nrole='replica'\nweight={w}\n",
                10 + i
            ));
        }
        Config::parse(&text, "t").unwrap()
    }

    fn pick(t: &Topology) -> Option<usize> {
        t.pick_replica(None, &ReadNeeds::default(), true)
    }

    #[test]
    fn weights_are_respected() {
        let t = Topology::from_config(&cfg(&[1, 3, 0]));
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[pick(&t).unwrap()] += 1;
        }
        assert_eq!(counts[0], 0);
        assert_eq!(counts[3], 0);
        let ratio = counts[2] as f64 / counts[1] as f64;
        assert!((2.4..3.8).contains(&ratio), "{counts:?}");
    }

    #[test]
    fn down_ineligible_and_lagging_replicas_are_skipped() {
        let t = Topology::from_config(&cfg(&[1, 1]));
        t.backend(1)
            .pool
            .mark_down(std::time::Duration::from_secs(60));
        assert_eq!(pick(&t), Some(2));
        t.backend(2).state.update(|s| s.eligible = false);
        assert_eq!(pick(&t), None);
        let t = Topology::from_config(&cfg(&[1, 1]));
        t.backend(1).state.update(|s| s.heartbeat_lag_us = 900_000);
        t.backend(2).state.update(|s| s.heartbeat_lag_us = 100_000);
        let needs = ReadNeeds {
            max_lag_us: Some(500_000),
            ..Default::default()
        };
        for _ in 0..50 {
            assert_eq!(t.pick_replica(None, &needs, true), Some(2));
        }
        let t = Topology::from_config(&cfg(&[]));
        assert_eq!(pick(&t), None);
    }

    #[test]
    fn gtid_requirement() {
        let t = Topology::from_config(&cfg(&[1, 1]));
        t.backend(1).state.update(|s| s.set_gtid("0-1-10"));
        t.backend(2).state.update(|s| s.set_gtid("0-1-9"));
        let g = GtidSet::parse("0-1-10");
        let needs = ReadNeeds {
            gtid: Some(&g),
            ..Default::default()
        };
        for _ in 0..50 {
            assert_eq!(t.pick_replica(None, &needs, true), Some(1));
        }
        let mut two = set::BackendSet::default();
        two.insert(2);
        let needs = ReadNeeds {
            gtid: Some(&g),
            confirmed: Some(&two),
            ..Default::default()
        };
        assert!(t.pick_replica(Some(1), &needs, true) == Some(2));
    }

    #[test]
    fn a_group_takes_only_its_members_and_may_include_the_primary() {
        let t = Topology::from_config(&cfg(&[1, 1, 1]));
        let mut g = set::BackendSet::default();
        g.insert(2);
        let needs = ReadNeeds {
            members: Some(&g),
            ..Default::default()
        };
        for _ in 0..50 {
            assert_eq!(t.pick_replica(None, &needs, true), Some(2));
        }
        t.backend(2).state.update(|s| s.eligible = false);
        assert_eq!(t.pick_replica(None, &needs, true), None);
        g.insert(0); // the primary
        let needs = ReadNeeds {
            members: Some(&g),
            ..Default::default()
        };
        assert_eq!(t.pick_replica(None, &needs, true), Some(0));
        assert_eq!(
            pick(&t).map(|i| i == 0),
            Some(false),
            "no group: never the primary"
        );
    }

    #[test]
    fn a_looser_lag_bound_admits_a_lagging_replica() {
        let t = Topology::from_config(&cfg(&[1]));
        t.backend(1).state.update(|s| {
            s.eligible = false;
            s.replicating = true;
            s.heartbeat_lag_us = 5_000_000;
        });
        assert_eq!(pick(&t), None);
        let loose = |us| ReadNeeds {
            lag_bound_us: Some(us),
            ..Default::default()
        };
        assert_eq!(t.pick_replica(None, &loose(30_000_000), true), Some(1));
        assert_eq!(t.pick_replica(None, &loose(1_000_000), true), None);
    }

    #[test]
    fn fewer_in_flight_wins() {
        let t = Topology::from_config(&cfg(&[1, 1]));
        t.backend(1).pool.busy.store(10, Ordering::Relaxed);
        let picks: Vec<_> = (0..200).filter_map(|_| pick(&t)).collect();
        let to_busy = picks.iter().filter(|&&i| i == 1).count();
        assert!(
            to_busy < 70,
            "power of two choices should favour the idle replica: {to_busy}/200"
        );
    }
}

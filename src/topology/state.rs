//! Live state of one backend: one immutable snapshot, written whole by its monitor task and
//! read lock-free by routing, so a reader never sees half of a probe.

use super::gtid::GtidSet;
use arc_swap::{ArcSwap, Guard};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What one probe (or a failover step) established about a backend.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub up: bool,
    pub writable: bool,
    /// Serves reads (a replica within the lag bound, replicating).
    pub eligible: bool,
    /// A replica with both replication threads running and a known lag (a rule's own
    /// `max_lag` judges it instead of `routing.max_replica_lag`).
    pub replicating: bool,
    /// Heartbeat lag in microseconds; -1 unknown.
    pub heartbeat_lag_us: i64,
    /// Seconds_Behind_Master/Source; -1 when NULL or unknown.
    pub seconds_behind: i64,
    pub io_running: bool,
    pub sql_running: bool,
    /// Whether the backend has been probed at least once.
    pub probed: bool,
    /// Consecutive failed probes (0 after a success).
    pub failures: u64,
    pub gtid: Arc<GtidSet>,
    /// Why the replica is not eligible ("" when it is).
    pub reason: String,
    pub last_error: String,
    pub probe_error: String,
    pub gtid_text: String,
    pub version: String,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            up: true,
            writable: false,
            eligible: true,
            replicating: false,
            heartbeat_lag_us: -1,
            seconds_behind: -1,
            io_running: false,
            sql_running: false,
            probed: false,
            failures: 0,
            gtid: Arc::default(),
            reason: String::new(),
            last_error: String::new(),
            probe_error: String::new(),
            gtid_text: String::new(),
            version: String::new(),
        }
    }
}

impl Snapshot {
    /// Lag used for routing: heartbeat when known, else Seconds_Behind; `None` unknown.
    pub fn lag_us(&self) -> Option<i64> {
        if self.heartbeat_lag_us >= 0 {
            return Some(self.heartbeat_lag_us);
        }
        let s = self.seconds_behind;
        (s >= 0).then_some(s * 1_000_000)
    }

    /// Up and without a failed probe since the last success.
    pub fn healthy(&self) -> bool {
        self.up && self.failures == 0
    }

    /// Replaces the GTID set only when it changed (keeps the parse off the reader's path).
    pub fn set_gtid(&mut self, s: &str) {
        if self.gtid_text != s {
            self.gtid = Arc::new(GtidSet::parse(s));
            self.gtid_text = s.to_string();
        }
    }
}

#[derive(Default)]
pub struct BackendState {
    snap: ArcSwap<Snapshot>,
    pub probes: AtomicU64,
}

impl BackendState {
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.snap.load()
    }

    /// Applies `f` to a copy of the current snapshot and publishes it whole (retrying if
    /// another writer published in between).
    pub fn update(&self, f: impl Fn(&mut Snapshot)) {
        self.snap.rcu(|old| {
            let mut s = Snapshot::clone(old);
            f(&mut s);
            s
        });
    }

    pub fn count_probe(&self) {
        self.probes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_is_seen_whole() {
        let st = BackendState::default();
        let before = st.load();
        st.update(|s| {
            s.up = false;
            s.failures = 3;
            s.set_gtid("0-1-10");
        });
        assert!(before.up && before.failures == 0, "old readers keep theirs");
        let now = st.load();
        assert!(!now.up && now.failures == 3);
        assert!(now.gtid.contains(&GtidSet::parse("0-1-9")));
    }
}

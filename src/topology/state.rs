//! Live state of one backend, written by its monitor task and read lock-free by routing.

use super::gtid::GtidSet;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// What /status shows beyond the atomics (written once per probe, read by the admin API).
#[derive(Debug, Clone, Default)]
pub struct Detail {
    pub reason: String,
    pub last_error: String,
    pub probe_error: String,
    pub gtid: String,
    pub version: String,
}

pub struct BackendState {
    pub up: AtomicBool,
    pub writable: AtomicBool,
    pub eligible: AtomicBool,
    /// Heartbeat lag in microseconds; -1 unknown.
    pub heartbeat_lag_us: AtomicI64,
    /// Seconds_Behind_Master/Source; -1 when NULL or unknown.
    pub seconds_behind: AtomicI64,
    pub io_running: AtomicBool,
    pub sql_running: AtomicBool,
    /// Whether the backend has been probed at least once.
    pub probed: AtomicBool,
    pub probes: AtomicU64,
    /// Consecutive failed probes (0 after a success).
    pub consecutive_failures: AtomicU64,
    pub gtid: ArcSwap<GtidSet>,
    pub detail: Mutex<Detail>,
}

impl Default for BackendState {
    fn default() -> Self {
        Self {
            up: AtomicBool::new(true),
            writable: AtomicBool::new(false),
            eligible: AtomicBool::new(true),
            heartbeat_lag_us: AtomicI64::new(-1),
            seconds_behind: AtomicI64::new(-1),
            io_running: AtomicBool::new(false),
            sql_running: AtomicBool::new(false),
            probed: AtomicBool::new(false),
            probes: AtomicU64::new(0),
            consecutive_failures: AtomicU64::new(0),
            gtid: ArcSwap::from_pointee(GtidSet::default()),
            detail: Mutex::new(Detail::default()),
        }
    }
}

impl BackendState {
    /// Lag used for routing: heartbeat when known, else Seconds_Behind; `None` unknown.
    pub fn lag_us(&self) -> Option<i64> {
        let hb = self.heartbeat_lag_us.load(Ordering::Relaxed);
        if hb >= 0 {
            return Some(hb);
        }
        let s = self.seconds_behind.load(Ordering::Relaxed);
        (s >= 0).then_some(s * 1_000_000)
    }

    pub fn failures(&self) -> u64 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    pub fn has_applied(&self, needed: &GtidSet) -> bool {
        self.gtid.load().contains(needed)
    }

    pub fn set_gtid(&self, s: &str) {
        let parsed = GtidSet::parse(s);
        if **self.gtid.load() != parsed {
            self.gtid.store(Arc::new(parsed));
        }
    }
}

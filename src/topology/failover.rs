//! Failover and switchover state shared with sessions (write holding), the admin API and
//! the coordinator (`crate::failover`): the status and last timeline, the write hold.

use super::Topology;
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// One step of a failover or switchover, for /status.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub at_ms: u64,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub kind: &'static str,
    pub started_unix: f64,
    pub from: String,
    pub to: Option<String>,
    pub result: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// "normal", "primary_failing", "failing_over", "switching_over".
    pub state: String,
    pub last: Option<Timeline>,
    /// Backends made read-only because they came back writable after losing the primary role.
    pub fenced: Vec<String>,
    pub note: String,
}

/// Failover state shared with sessions (write holding) and the admin API.
pub struct Failover {
    pub status: Mutex<Status>,
    /// Set while writes must wait (failover or switchover in progress).
    pub holding: AtomicBool,
    /// Set during a switchover's first phase, while transactions already open on the old
    /// primary may still run on it to their COMMIT (new writes are held).
    pub draining: AtomicBool,
    /// Notified whenever the primary changes or holding ends.
    pub changed: Notify,
    /// Serializes promotions and switchovers within this process.
    pub busy: tokio::sync::Mutex<()>,
}

impl Default for Failover {
    fn default() -> Self {
        Self {
            status: Mutex::new(Status {
                state: "normal".into(),
                ..Default::default()
            }),
            holding: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            changed: Notify::new(),
            busy: tokio::sync::Mutex::new(()),
        }
    }
}

/// Writes held while alive: released, and their waiters woken, when the operation releases
/// them or however it ends (an error, a panic, a cancelled future).
pub(crate) struct Hold<'a> {
    failover: &'a Failover,
}

impl<'a> Hold<'a> {
    pub fn new(failover: &'a Failover) -> Self {
        failover.holding.store(true, Ordering::SeqCst);
        Self { failover }
    }
    /// New writes go on (to whichever server is the primary now).
    pub fn release(&self) {
        self.failover.draining.store(false, Ordering::SeqCst);
        self.failover.holding.store(false, Ordering::SeqCst);
        self.failover.changed.notify_waiters();
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Records steps of one operation.
pub(crate) struct Recorder {
    started: Instant,
    pub timeline: Timeline,
}

impl Recorder {
    pub fn new(kind: &'static str, from: &str) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        Self {
            started: Instant::now(),
            timeline: Timeline {
                kind,
                started_unix: now,
                from: from.into(),
                to: None,
                result: "in progress".into(),
                steps: Vec::new(),
            },
        }
    }
    pub fn step(&mut self, what: impl Into<String>) {
        let what = what.into();
        tracing::warn!(kind = self.timeline.kind, "{what}");
        self.timeline.steps.push(Step {
            at_ms: self.started.elapsed().as_millis() as u64,
            what,
        });
    }
}

impl Failover {
    pub fn set_state(&self, s: &str) {
        self.status.lock().state = s.into();
    }

    pub(crate) fn finish(&self, rec: Recorder, result: &str) {
        let mut t = rec.timeline;
        t.result = result.into();
        let mut st = self.status.lock();
        st.last = Some(t);
        st.state = "normal".into();
    }

    /// Waits (bounded) until writes are no longer held and the primary `old` was replaced
    /// (`old == usize::MAX`: until the hold ends with a healthy primary). True on success.
    pub async fn wait_for_primary(&self, topo: &Topology, old: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let p = topo.primary();
            let healthy = topo.backend(p).state.load().healthy();
            if !self.holding.load(Ordering::Relaxed) && (p != old || (old == usize::MAX && healthy))
            {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = crate::timer::timeout(
                left.min(Duration::from_millis(100)),
                self.changed.notified(),
            )
            .await;
        }
    }
}

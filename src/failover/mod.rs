//! Automatic failover, fencing of a returning old primary, and planned switchover.
//!
//! One coordinator task per proxy watches the monitor's view. When the primary has failed its
//! probes for `failover.after` and every healthy replica has lost it too, Sluice takes a named
//! lock on a majority of reachable backends, promotes the most advanced replica (after it
//! applied its relay log), re-points the others, and releases held writes to the new primary.

mod conn;
pub mod error;
mod lock;
mod promote;
mod semisync;
pub mod sql;
mod switchover;
mod target;

pub use switchover::switchover;

use crate::shared::Shared;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::topology::failover::{Failover, Status, Step, Timeline};
pub(crate) use crate::topology::failover::{Hold, Recorder};

/// Starts the coordinator (it idles when failover is disabled, fencing nothing).
pub fn spawn(shared: &Arc<Shared>, stop: &watch::Receiver<bool>) -> Option<JoinHandle<()>> {
    shared.config.load().monitor.as_ref()?;
    Some(tokio::spawn(coordinate(shared.clone(), stop.clone())))
}

async fn coordinate(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut failing_since: Option<(usize, Instant)> = None;
    loop {
        let cfg = shared.config.load_full();
        let Some(m) = cfg.monitor.as_ref() else {
            return;
        };
        let interval = m.interval.0;
        tokio::select! {
            _ = crate::timer::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if !cfg.failover.enabled {
            continue;
        }
        let topo = &shared.topology;
        let p = topo.primary();
        let failing = !topo.backend(p).state.load().healthy();
        if !failing {
            if failing_since.take().is_some() {
                shared.failover.set_state("normal");
            }
            promote::fence_returning(&shared).await;
            continue;
        }
        let since = match failing_since {
            Some((q, t)) if q == p => t,
            _ => {
                shared.failover.set_state("primary_failing");
                failing_since = Some((p, Instant::now()));
                Instant::now()
            }
        };
        let after = cfg.failover.after.map(|d| d.0).unwrap_or(interval * 3);
        if since.elapsed() < after {
            continue;
        }
        match promote::failover(&shared, p).await {
            Ok(true) => failing_since = None,
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e.line(), "failover did not complete"),
        }
    }
}

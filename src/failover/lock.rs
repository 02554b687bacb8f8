//! A named lock on a majority of the reachable backends, so that of several Sluice instances
//! in front of the same servers exactly one performs a promotion.

use super::conn;
use crate::backend::BackendConn;
use crate::shared::Shared;

const LOCK: &str = "sluice_failover";

/// Holds the lock while alive (the server releases it when the connections close).
pub(crate) struct MajorityLock {
    _conns: Vec<BackendConn>,
}

/// Tries to take the lock on every backend except `skip`; succeeds with a strict majority of
/// the reachable ones (and at least one).
pub(crate) async fn acquire(shared: &Shared, skip: usize) -> Option<MajorityLock> {
    let mut held = Vec::new();
    let mut reachable = 0;
    for i in 0..shared.topology.len() {
        if i == skip {
            continue;
        }
        let Ok(mut c) = conn::connect(shared, i).await else {
            continue;
        };
        reachable += 1;
        if let Ok(r) = c.query(&format!("SELECT GET_LOCK('{LOCK}', 0) AS l")).await {
            if r.get("l") == Some("1") {
                held.push(c);
            }
        }
    }
    (reachable > 0 && held.len() * 2 > reachable).then_some(MajorityLock { _conns: held })
}

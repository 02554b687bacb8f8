//! A named lock on a majority of all configured backends, so that of several Sluice instances
//! in front of the same servers at most one performs a promotion. Backends that cannot be
//! reached (the failed primary among them) count as "no": two instances partitioned from each
//! other, each seeing a different replica, both fall short.

use super::conn;
use super::error::Error;
use crate::backend::BackendConn;
use crate::shared::Shared;

const LOCK: &str = "sluice_failover";

/// Holds the lock while alive (the server releases it when the connections close).
pub(crate) struct MajorityLock {
    _conns: Vec<BackendConn>,
}

/// Tries to take the lock on every configured backend except `skip` (which counts as "no");
/// succeeds when held on a strict majority of them all. The error says how many it got.
pub(crate) async fn acquire(shared: &Shared, skip: usize) -> Result<MajorityLock, Error> {
    let topo = &shared.topology;
    let configured: Vec<usize> = (0..topo.len())
        .filter(|&i| !topo.backend(i).is_removed())
        .collect();
    let mut held = Vec::new();
    for &i in &configured {
        if i == skip {
            continue;
        }
        let Ok(mut c) = conn::connect(shared, i).await else {
            continue;
        };
        if let Ok(r) = c.query(&format!("SELECT GET_LOCK('{LOCK}', 0) AS l")).await {
            if r.get("l") == Some("1") {
                held.push(c);
            }
        }
    }
    if has_majority(held.len(), configured.len()) {
        Ok(MajorityLock { _conns: held })
    } else {
        Err(Error::Refused(format!(
            "the failover lock is held on {} of {} configured backends, a majority needs {} \
             (unreachable backends, or another Sluice instance holding it)",
            held.len(),
            configured.len(),
            configured.len() / 2 + 1
        )))
    }
}

fn has_majority(held: usize, configured: usize) -> bool {
    held * 2 > configured
}

#[cfg(test)]
mod tests {
    #[test]
    fn majority_of_all_configured() {
        use super::has_majority;
        // primary down, both replicas locked
        assert!(has_majority(2, 3));
        // an instance that sees one replica of three backends
        assert!(!has_majority(1, 3));
        // 1 primary + 1 replica: a lone survivor is never a majority
        assert!(!has_majority(1, 2));
        assert!(has_majority(3, 5) && !has_majority(2, 5));
    }
}

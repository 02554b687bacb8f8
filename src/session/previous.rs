//! The connection a diagnostic runs on: the one that ran the session's previous statement
//! (`SHOW WARNINGS`, profiles, the optimizer trace), or for status reads the primary's.

use super::Session;
use crate::pool::{BackendPool, Lease};
use crate::router::{flag, Intent};

impl Session {
    /// For a diagnostic (SHOW WARNINGS, session status, ...): the connection that ran the
    /// session's previous statement, kept for it (`held`: it had warnings or failed) or still
    /// parked for the session; `None` otherwise (the session's primary connection serves it
    /// through `acquire`, see `query`). A connection kept for a diagnostic that does not come
    /// goes back to the pool.
    pub(super) fn previous_connection(&mut self, intent: &Intent) -> Option<(usize, Lease)> {
        let held = self.held.take();
        if !intent.has(flag::SHOW_WARNINGS) || intent.has(flag::SERVER_STATE) {
            return None;
        }
        let previous = held.or_else(|| self.parked_last());
        if intent.has(flag::STATUS) {
            // status reads run on the primary (see `flag::STATUS`)
            let primary = self.shared.topology.primary();
            return previous.filter(|(idx, _)| *idx == primary);
        }
        previous
    }

    /// The session's connection to the backend that ran its previous statement, if it is
    /// still parked for the session (nobody else used it since).
    fn parked_last(&self) -> Option<(usize, Lease)> {
        let idx = self.last_ran?;
        if self.primary.is_some() && idx == self.shared.topology.primary() {
            return None; // the session's own primary connection serves it (`acquire`)
        }
        let key = (
            BackendPool::slot(self.login.user_index, self.flavour),
            self.handle.id,
        );
        let backends = self.shared.topology.backends();
        let lease = backends
            .get(idx)?
            .pool
            .take_parked(key, self.idle.arrived_ms())?;
        Some((idx, lease))
    }
}

//! Why sessions lose multiplexing: `sluice_session_pins_total{reason}` counts each reason a
//! session started keeping one primary connection for itself, and `sluice_pinned_sessions`
//! is how many do now.

use super::Session;
use crate::router::flag;

/// Pin flags and their metric reasons.
const REASONS: [(u32, &str); 7] = [
    (flag::TEMP_TABLE, "temporary_table"),
    (flag::LOCK_TABLES, "lock_tables"),
    (flag::GET_LOCK, "get_lock"),
    (flag::SQL_PREPARE, "sql_prepare"),
    (flag::XA, "xa"),
    (flag::CALC_FOUND_ROWS, "found_rows"),
    (flag::PIN, "session_state"),
];

impl Session {
    /// After a statement: counts new pin reasons (`before`: the pins and user-variable state
    /// before it) and keeps the pinned-sessions gauge right.
    pub(super) fn pins_changed(&mut self, before: (u32, bool)) {
        let m = &self.shared.metrics;
        let new = self.state.pins & !before.0;
        if new != 0 {
            for (bit, reason) in REASONS {
                if new & bit != 0 {
                    m.session_pins_total.with_label_values(&[reason]).inc();
                }
            }
        }
        if self.state.user_vars && !before.1 {
            m.session_pins_total
                .with_label_values(&["user_variable"])
                .inc();
        }
        self.count_pinned();
    }

    /// Brings `sluice_pinned_sessions` in line with the session's state (also after a reset,
    /// a lost primary connection, or at the end with `ending`).
    pub(super) fn count_pinned(&mut self) {
        let pinned = self.state.pins != 0 || self.state.user_vars;
        if pinned != self.pinned_counted {
            self.pinned_counted = pinned;
            let g = &self.shared.metrics.pinned_sessions;
            if pinned {
                g.inc()
            } else {
                g.dec()
            }
        }
    }

    /// The session ends: it no longer counts as pinned.
    pub(super) fn unpin_at_end(&mut self) {
        if self.pinned_counted {
            self.pinned_counted = false;
            self.shared.metrics.pinned_sessions.dec();
        }
    }
}

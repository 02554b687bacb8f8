//! Replication lag from heartbeats: the monitor of the primary writes a row stamped with
//! Sluice's own clock every interval and remembers each write the server acknowledged; a
//! replica's lag is the age of the oldest acknowledged heartbeat it has not applied yet.
//!
//! So a replica that holds the newest heartbeat reads 0 whatever the interval, and one that
//! stopped applying reads a lag that grows with wall time from the first write it missed.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::Instant;

/// Acknowledged heartbeats remembered (at a 100 ms interval, about 7 minutes of them).
const HISTORY: usize = 4096;

/// Per-process heartbeat identity, clock and the writes the primary acknowledged.
pub struct Heartbeat {
    pub id: u64,
    epoch: Instant,
    written: Mutex<Written>,
}

#[derive(Default)]
struct Written {
    /// Timestamps of acknowledged heartbeat writes, oldest first.
    ts: VecDeque<i64>,
    /// Older writes were dropped from `ts`.
    truncated: bool,
}

impl Heartbeat {
    pub fn new() -> Self {
        Self {
            id: rand::random::<u64>() >> 1,
            epoch: Instant::now(),
            written: Mutex::new(Written::default()),
        }
    }

    /// Microseconds on Sluice's heartbeat clock.
    pub fn now_us(&self) -> i64 {
        self.epoch.elapsed().as_micros() as i64
    }

    /// The primary acknowledged the heartbeat stamped `ts`.
    pub fn acknowledged(&self, ts: i64) {
        let mut w = self.written.lock();
        if w.ts.back().is_some_and(|&last| last >= ts) {
            return; // stamps only grow; a late duplicate changes nothing
        }
        if w.ts.len() == HISTORY {
            w.ts.pop_front();
            w.truncated = true;
        }
        w.ts.push_back(ts);
    }

    /// The lag of a replica whose newest applied heartbeat is stamped `applied`, at `now`:
    /// the age of the oldest acknowledged heartbeat newer than `applied`, 0 if none.
    pub fn lag_us(&self, applied: i64, now: i64) -> i64 {
        let w = self.written.lock();
        let first_missed = w.ts.partition_point(|&t| t <= applied);
        let since = match w.ts.get(first_missed) {
            None => return 0,
            // the first missed write may have been dropped from the history: count from
            // what the replica has (an overestimate by at most one interval)
            Some(_) if first_missed == 0 && w.truncated => applied,
            Some(&t) => t,
        };
        (now - since).max(0)
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_with_the_newest_heartbeat_has_no_lag() {
        let hb = Heartbeat::new();
        for ts in [1_000, 2_000, 3_000] {
            hb.acknowledged(ts);
        }
        assert_eq!(hb.lag_us(3_000, 3_400), 0);
        // written but not yet acknowledged: the replica is ahead of what Sluice knows
        assert_eq!(hb.lag_us(3_500, 3_600), 0);
    }

    #[test]
    fn lag_is_the_age_of_the_first_missed_heartbeat() {
        let hb = Heartbeat::new();
        for ts in [1_000, 2_000, 3_000, 4_000] {
            hb.acknowledged(ts);
        }
        assert_eq!(hb.lag_us(2_000, 4_500), 1_500, "3_000 is the first missed");
        assert_eq!(hb.lag_us(2_000, 9_000), 6_000, "grows with wall time");
        assert_eq!(hb.lag_us(0, 4_500), 3_500);
    }

    #[test]
    fn a_truncated_history_overestimates_rather_than_hides() {
        let hb = Heartbeat::new();
        for i in 0..(HISTORY as i64 + 10) {
            hb.acknowledged(1_000 + i * 10);
        }
        assert_eq!(hb.lag_us(500, 100_000), 99_500);
        hb.acknowledged(5); // out of order: ignored
        assert_eq!(hb.lag_us(1_000 + (HISTORY as i64 + 9) * 10, 10_000_000), 0);
    }
}

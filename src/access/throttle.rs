//! Per-host login failure limit: after `listen.auth_failure_limit` failed logins from one
//! client address, that address is refused for `listen.auth_failure_block` (MariaDB's
//! `max_connect_errors`, MaxScale's `max_auth_errors_until_block`). Memory is bounded: past
//! `MAX_HOSTS` tracked addresses, entries that are not blocked are forgotten first.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const MAX_HOSTS: usize = 100_000;

#[derive(Default)]
struct Entry {
    failures: u32,
    blocked_until: Option<Instant>,
}

#[derive(Default)]
pub struct AuthThrottle {
    hosts: Mutex<HashMap<IpAddr, Entry>>,
}

impl AuthThrottle {
    /// Whether `host` is blocked now.
    pub fn is_blocked(&self, host: IpAddr) -> bool {
        let mut hosts = self.hosts.lock();
        match hosts.get_mut(&host) {
            Some(e) => match e.blocked_until {
                Some(until) if until > Instant::now() => true,
                Some(_) => {
                    hosts.remove(&host); // the block ran out: start counting afresh
                    false
                }
                None => false,
            },
            None => false,
        }
    }

    /// Records a failed login; returns true when this failure blocks the host.
    pub fn failed(&self, host: IpAddr, limit: u32, block: Duration) -> bool {
        if limit == 0 {
            return false;
        }
        let mut hosts = self.hosts.lock();
        if hosts.len() >= MAX_HOSTS && !hosts.contains_key(&host) {
            let now = Instant::now();
            hosts.retain(|_, e| e.blocked_until.is_some_and(|u| u > now));
        }
        let e = hosts.entry(host).or_default();
        e.failures += 1;
        if e.failures >= limit && e.blocked_until.is_none() {
            e.blocked_until = Some(Instant::now() + block);
            return true;
        }
        false
    }

    /// A successful login clears the host's count (as MariaDB does).
    pub fn succeeded(&self, host: IpAddr) {
        let mut hosts = self.hosts.lock();
        if hosts.get(&host).is_some_and(|e| e.blocked_until.is_none()) {
            hosts.remove(&host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_unblocks_after_the_period() {
        let t = AuthThrottle::default();
        let h: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..2 {
            assert!(!t.failed(h, 3, Duration::from_millis(50)));
        }
        t.succeeded(h);
        for _ in 0..2 {
            assert!(!t.failed(h, 3, Duration::from_millis(50)));
        }
        assert!(t.failed(h, 3, Duration::from_millis(50)));
        assert!(t.is_blocked(h));
        assert!(!t.is_blocked(other));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!t.is_blocked(h));
        assert!(
            !t.failed(h, 0, Duration::from_secs(1)),
            "limit 0 never blocks"
        );
    }
}

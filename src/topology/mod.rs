//! The backends Sluice knows, their roles and weights, and replica selection.
//!
//! Roles come from the config here; live discovery (health, lag, read_only) builds on this.

use crate::config::{Config, Role};
use crate::pool::BackendPool;
use rand::Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Backend {
    pub pool: Arc<BackendPool>,
    pub role: Role,
    pub weight: u32,
}

pub struct Topology {
    pub backends: Vec<Backend>,
    primary: AtomicUsize,
}

impl Topology {
    pub fn from_config(cfg: &Config) -> Self {
        let backends = cfg
            .backends
            .iter()
            .map(|b| Backend {
                pool: Arc::new(BackendPool::new(
                    &b.name,
                    &b.address,
                    cfg.pool.max_connections_per_backend,
                    cfg.pool.max_idle_per_backend,
                    cfg.users.len(),
                )),
                role: b.role,
                weight: b.weight,
            })
            .collect::<Vec<_>>();
        let primary = backends
            .iter()
            .position(|b| b.role == Role::Primary)
            .unwrap_or(0);
        Self {
            backends,
            primary: AtomicUsize::new(primary),
        }
    }

    pub fn primary(&self) -> usize {
        self.primary.load(Ordering::Relaxed)
    }

    /// A replica chosen at random by weight among those not marked down, excluding `skip`;
    /// `None` when no replica can take reads.
    pub fn pick_replica(&self, skip: Option<usize>) -> Option<usize> {
        let primary = self.primary();
        let eligible = |i: usize, b: &Backend| {
            i != primary
                && b.role == Role::Replica
                && b.weight > 0
                && Some(i) != skip
                && !b.pool.is_down()
        };
        let total: u64 = self
            .backends
            .iter()
            .enumerate()
            .filter(|(i, b)| eligible(*i, b))
            .map(|(_, b)| b.weight as u64)
            .sum();
        if total == 0 {
            return None;
        }
        let mut x = rand::rng().random_range(0..total);
        for (i, b) in self.backends.iter().enumerate() {
            if eligible(i, b) {
                if x < b.weight as u64 {
                    return Some(i);
                }
                x -= b.weight as u64;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(weights: &[u32]) -> Config {
        let mut text = String::from(
            "[listen]\naddress='127.0.0.1:1'\n[admin]\naddress='127.0.0.1:2'\n[[users]]\nname='a'\npassword='b'\n\
             [[backends]]\nname='p'\naddress='127.0.0.1:3'\nrole='primary'\n",
        );
        for (i, w) in weights.iter().enumerate() {
            text.push_str(&format!(
                "[[backends]]\nname='r{i}'\naddress='127.0.0.1:{}'\nrole='replica'\nweight={w}\n",
                10 + i
            ));
        }
        Config::parse(&text, "t").unwrap()
    }

    #[test]
    fn weights_are_respected() {
        let t = Topology::from_config(&cfg(&[1, 3, 0]));
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[t.pick_replica(None).unwrap()] += 1;
        }
        assert_eq!(counts[0], 0);
        assert_eq!(counts[3], 0);
        let ratio = counts[2] as f64 / counts[1] as f64;
        assert!((2.4..3.8).contains(&ratio), "{counts:?}");
    }

    #[test]
    fn down_replicas_are_skipped_and_none_means_primary() {
        let t = Topology::from_config(&cfg(&[1]));
        assert_eq!(t.pick_replica(None), Some(1));
        t.backends[1]
            .pool
            .mark_down(std::time::Duration::from_secs(60));
        assert_eq!(t.pick_replica(None), None);
        let t = Topology::from_config(&cfg(&[]));
        assert_eq!(t.pick_replica(None), None);
    }
}

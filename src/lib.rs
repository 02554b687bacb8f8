//! Sluice: a read/write-splitting MySQL/MariaDB proxy.
//!
//! Query flow: `frontend` -> `session` -> `router` -> `pool` -> `backend`, with `protocol`
//! doing the wire work. User documentation (configuration, routing, failover, metrics,
//! security, limits) is `README.md` at the repository root; each module's header comment
//! describes its part.

pub mod access;
pub mod admin;
pub mod app;
pub mod backend;
pub mod cache;
pub mod config;
pub mod error;
pub mod failover;
pub mod follower;
pub mod frontend;
pub mod memory;
pub mod metrics;
pub mod monitor;
pub mod password;
pub mod pool;
pub mod preflight;
pub mod protocol;
pub mod reload;
pub mod router;
pub mod rules;
pub mod sandbox;
pub mod session;
pub mod shared;
pub mod stats;
pub mod timer;
pub mod tls;
pub mod topology;
pub mod watch;
pub mod workers;

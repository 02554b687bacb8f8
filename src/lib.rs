//! Sluice: a read/write-splitting MySQL/MariaDB proxy.

pub mod backend;
pub mod config;
pub mod error;
pub mod protocol;
pub mod router;
pub mod pool;
pub mod topology;

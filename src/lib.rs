//! Sluice: a read/write-splitting MySQL/MariaDB proxy.

pub mod backend;
pub mod config;
pub mod error;
pub mod protocol;

//! Default values of the configuration keys.

use super::Dur;
use std::time::Duration;

pub fn max_client_connections() -> usize {
    20_000
}
pub fn max_packet_size() -> usize {
    64 << 20
}
pub fn shutdown_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}
pub fn auth_refresh() -> Dur {
    Dur(Duration::from_secs(60))
}
pub fn handshake_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}
pub fn idle_timeout() -> Dur {
    Dur(Duration::from_secs(8 * 3600))
}
pub fn auth_failure_limit() -> u32 {
    10
}
pub fn auth_failure_block() -> Dur {
    Dur(Duration::from_secs(60))
}
pub fn worker_threads() -> usize {
    0
}
pub fn weight() -> u32 {
    1
}
pub fn max_connections() -> usize {
    100
}
pub fn max_idle() -> usize {
    100
}
pub fn max_prepared() -> usize {
    128
}
pub fn connect_timeout() -> Dur {
    Dur(Duration::from_secs(2))
}
pub fn checkout_timeout() -> Dur {
    Dur(Duration::from_secs(3))
}
pub fn replica_retry_after() -> Dur {
    Dur(Duration::from_secs(2))
}
pub fn max_replica_lag() -> Dur {
    Dur(Duration::from_secs(2))
}
pub fn fallback() -> super::Fallback {
    super::Fallback::Primary
}
pub fn read_your_writes() -> super::ReadYourWrites {
    super::ReadYourWrites::Gtid
}
pub fn ryw_window() -> Dur {
    Dur(Duration::from_secs(1))
}
pub fn gtid_wait() -> Dur {
    Dur(Duration::from_millis(50))
}
pub fn replay_max_bytes() -> usize {
    1 << 20
}
pub fn hold_writes() -> Dur {
    Dur(Duration::from_secs(10))
}
pub fn relay_wait() -> Dur {
    Dur(Duration::from_secs(5))
}
pub fn pool_idle_timeout() -> Dur {
    Dur(Duration::from_secs(600))
}
pub fn switchover_drain() -> Dur {
    Dur(Duration::from_secs(2))
}
pub fn monitor_interval() -> Dur {
    Dur(Duration::from_millis(500))
}
pub fn probe_timeout() -> Dur {
    Dur(Duration::from_secs(1))
}
pub fn fail_after() -> u32 {
    3
}
pub fn recover_after() -> u32 {
    2
}
pub fn yes() -> bool {
    true
}
pub fn log_level() -> String {
    "info".into()
}

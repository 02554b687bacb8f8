//! Semantic validation: every problem is collected, each with the key it concerns.

use super::{Config, Role};
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// `host:port` with a non-empty host and a numeric port (hostnames resolve at connect time).
fn is_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains(' ') && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

pub fn validate(cfg: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut bad = |key: String, message: &str| {
        out.push(Problem {
            key,
            message: message.into(),
        })
    };
    listen(cfg, &mut bad);
    users(cfg, &mut bad);
    backends(cfg, &mut bad);
    timeouts(cfg, &mut bad);
    monitor_failover(cfg, &mut bad);
    log(cfg, &mut bad);
    super::rules::check(cfg, &mut bad);
    out
}

/// Reports one problem: the key it concerns and what is wrong.
type Bad<'a> = dyn FnMut(String, &str) + 'a;

/// Checks the listener, the admin address and the user source.
fn listen(cfg: &Config, bad: &mut Bad<'_>) {
    if cfg.listen.address.parse::<SocketAddr>().is_err() {
        bad(
            "listen.address".into(),
            "must be an IP:port such as \"127.0.0.1:6033\"",
        );
    }
    match cfg.admin.address.parse::<SocketAddr>() {
        Err(_) => bad(
            "admin.address".into(),
            "must be an IP:port such as \"127.0.0.1:9033\"",
        ),
        Ok(a) if !a.ip().is_loopback() && !has_admin_token(cfg) => bad(
            "admin.address".into(),
            "a non-loopback admin address needs [admin] token (or SLUICE_ADMIN_TOKEN): \
             reload, switchover and drain would be open to anyone who reaches it",
        ),
        Ok(_) => {}
    }
    if cfg.listen.max_client_connections == 0 {
        bad("listen.max_client_connections".into(), "must be at least 1");
    }
    if cfg.listen.max_packet_size < 1024 {
        bad(
            "listen.max_packet_size".into(),
            "must be at least 1024 bytes",
        );
    }
    if cfg.users.is_empty() && cfg.auth.users == super::UserSource::Config {
        bad(
            "users".into(),
            "at least one [[users]] entry is required (or [auth] users = \"backend\")",
        );
    }
    if cfg.auth.users == super::UserSource::Backend && cfg.monitor.is_none() {
        bad(
            "auth.users".into(),
            "\"backend\" reads mysql.user with the [monitor] credentials: add [monitor]",
        );
    }
}

/// Checks `[[users]]`.
fn users(cfg: &Config, bad: &mut Bad<'_>) {
    let mut names = HashSet::new();
    for (i, u) in cfg.users.iter().enumerate() {
        if u.name.is_empty() {
            bad(format!("users[{i}].name"), "must not be empty");
        } else if !names.insert(&u.name) {
            bad(format!("users[{i}].name"), "duplicate user name");
        }
        if let Some(h) = &u.password_hash {
            if crate::password::native::parse_stored(h).is_none()
                && crate::password::sha2crypt::Sha2Crypt::parse(h.as_bytes()).is_none()
            {
                bad(
                    format!("users[{i}].password_hash"),
                    "must be \"*\" and 40 hex digits (mysql_native_password) or a \
                     caching_sha2_password string (\"$A$005$...\", or 0x and its hex), as in \
                     mysql.user",
                );
            }
            if !u.password.is_empty() {
                bad(
                    format!("users[{i}].password"),
                    "give either password or password_hash, not both",
                );
            }
        }
    }
}

/// Checks `[[backends]]`, the pool's limit and TLS on both sides.
fn backends(cfg: &Config, bad: &mut Bad<'_>) {
    if cfg.backends.is_empty() {
        bad(
            "backends".into(),
            "at least one [[backends]] entry is required",
        );
    }
    let mut names = HashSet::new();
    for (i, b) in cfg.backends.iter().enumerate() {
        if b.name.is_empty() {
            bad(format!("backends[{i}].name"), "must not be empty");
        } else if !names.insert(&b.name) {
            bad(format!("backends[{i}].name"), "duplicate backend name");
        }
        if !is_host_port(&b.address) {
            bad(
                format!("backends[{i}].address"),
                "must be host:port such as \"127.0.0.1:3306\"",
            );
        }
    }
    let primaries = cfg
        .backends
        .iter()
        .filter(|b| b.role == Role::Primary)
        .count();
    if !cfg.backends.is_empty() && primaries != 1 {
        bad(
            "backends".into(),
            &format!("exactly one backend must have role = \"primary\" (found {primaries})"),
        );
    }
    if cfg.pool.max_connections_per_backend == 0 {
        bad(
            "pool.max_connections_per_backend".into(),
            "must be at least 1",
        );
    }
    if let Some(tls) = &cfg.tls {
        if let Err(e) = crate::tls::server::acceptor(tls) {
            bad("tls".into(), &e);
        }
    }
    for b in &cfg.backends {
        if let Err(e) = crate::tls::client::client(&cfg.backend_tls, b.tls, &b.address) {
            bad(format!("backends[{}].tls", b.name), &e);
        }
    }
    if cfg.tls.is_none() && cfg.users.iter().any(|u| u.require_tls) {
        bad(
            "users.require_tls".into(),
            "needs a [tls] section (cert, key)",
        );
    }
}

/// Checks timeouts, the pool and routing.
fn timeouts(cfg: &Config, bad: &mut Bad<'_>) {
    if cfg.listen.handshake_timeout.0.is_zero() {
        bad(
            "listen.handshake_timeout".into(),
            "must be greater than zero",
        );
    }
    if cfg.listen.idle_timeout.0.is_zero() {
        bad("listen.idle_timeout".into(), "must be greater than zero");
    }
    if cfg.pool.max_prepared_per_connection == 0 {
        bad(
            "pool.max_prepared_per_connection".into(),
            "must be at least 1",
        );
    }
    if cfg.pool.connect_timeout.0.is_zero() {
        bad("pool.connect_timeout".into(), "must be greater than zero");
    }
    if cfg.pool.idle_timeout.0 < std::time::Duration::from_secs(1) {
        bad("pool.idle_timeout".into(), "must be at least 1s");
    }
    if cfg.pool.checkout_timeout.0.is_zero() {
        bad("pool.checkout_timeout".into(), "must be greater than zero");
    }
    let r = &cfg.routing;
    if r.max_replica_lag.0.is_zero() {
        bad(
            "routing.max_replica_lag".into(),
            "must be greater than zero",
        );
    }
    if r.reentry() > r.max_replica_lag.0 {
        bad(
            "routing.lag_reentry".into(),
            "must not exceed routing.max_replica_lag",
        );
    }
}

/// Checks `[monitor]` and `[failover]`.
fn monitor_failover(cfg: &Config, bad: &mut Bad<'_>) {
    if let Some(m) = &cfg.monitor {
        if m.user.is_empty() {
            bad("monitor.user".into(), "must not be empty");
        }
        if m.interval.0 < std::time::Duration::from_millis(10) {
            bad("monitor.interval".into(), "must be at least 10ms");
        }
        if m.timeout.0.is_zero() {
            bad("monitor.timeout".into(), "must be greater than zero");
        }
        if m.fail_after == 0 || m.recover_after == 0 {
            bad(
                "monitor.fail_after".into(),
                "fail_after and recover_after must be at least 1",
            );
        }
    }
    let f = &cfg.failover;
    if f.enabled {
        if cfg.monitor.is_none() {
            bad(
                "failover.enabled".into(),
                "failover needs a [monitor] section",
            );
        }
        if f.replication_user.is_empty() {
            bad(
                "failover.replication_user".into(),
                "required when failover is enabled",
            );
        }
    }
    if f.transaction_replay && f.transaction_replay_max_bytes == 0 {
        bad(
            "failover.transaction_replay_max_bytes".into(),
            "must be more than 0 when transaction_replay is on",
        );
    }
    for (i, n) in f.never_promote.iter().enumerate() {
        if !cfg.backends.iter().any(|b| &b.name == n) {
            bad(format!("failover.never_promote[{i}]"), "names no backend");
        }
    }
}

/// Checks `[log]`.
fn log(cfg: &Config, bad: &mut Bad<'_>) {
    if cfg
        .log
        .level
        .parse::<tracing_subscriber::EnvFilter>()
        .is_err()
    {
        bad(
            "log.level".into(),
            "is not a valid tracing filter (e.g. \"info\", \"sluice=debug\")",
        );
    }
}

fn has_admin_token(cfg: &Config) -> bool {
    cfg.admin.token.as_deref().is_some_and(|t| !t.is_empty())
        || std::env::var("SLUICE_ADMIN_TOKEN").is_ok_and(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_admin_address_needs_a_token() {
        let text = |address: &str, token: &str| {
            format!(
                "[listen]\naddress = \"127.0.0.1:1\"\n[admin]\naddress = \"{address}\"\n{token}\n\
                 [[users]]\nname = \"app\"\npassword = \"x\"\n[[backends]]\nname = \"a\"\n\
                 address = \"127.0.0.1:3\"\nrole = \"primary\"\n"
            )
        };
        let keys = |t: String| -> Vec<String> {
            let cfg: Config = toml::from_str(&t).unwrap();
            validate(&cfg).into_iter().map(|p| p.key).collect()
        };
        if std::env::var("SLUICE_ADMIN_TOKEN").is_err() {
            assert_eq!(keys(text("0.0.0.0:9033", "")), vec!["admin.address"]);
        }
        assert!(keys(text("0.0.0.0:9033", "token = \"s3cret\"")).is_empty());
        assert!(keys(text("127.0.0.1:9033", "")).is_empty());
    }

    #[test]
    fn collects_every_problem() {
        let text = r#"
            [listen]
            address = "nowhere"
            [admin]
            address = "127.0.0.1:9033"
            [[users]]
            name = "app"
            password = "x"
            [[users]]
            name = "app"
            password = "y"
            [[backends]]
            name = "a"
            address = "127.0.0.1"
            role = "replica"
            [pool]
            max_connections_per_backend = 0
        "#;
        let cfg: Config = toml::from_str(text).unwrap();
        let keys: Vec<String> = validate(&cfg).into_iter().map(|p| p.key).collect();
        for k in [
            "listen.address",
            "users[1].name",
            "backends[0].address",
            "backends",
            "pool.max_connections_per_backend",
        ] {
            assert!(keys.iter().any(|x| x == k), "missing {k} in {keys:?}");
        }
    }

    #[test]
    fn routing_monitor_and_failover_problems() {
        let text = r#"
            [listen]
            address = "127.0.0.1:1"
            [admin]
            address = "127.0.0.1:2"
            [[users]]
            name = "app"
            password = "x"
            [[backends]]
            name = "a"
            address = "127.0.0.1:3"
            role = "primary"
            [routing]
            max_replica_lag = "1s"
            lag_reentry = "2s"
            [failover]
            enabled = true
            never_promote = ["nope"]
        "#;
        let cfg: Config = toml::from_str(text).unwrap();
        let keys: Vec<String> = validate(&cfg).into_iter().map(|p| p.key).collect();
        for k in [
            "routing.lag_reentry",
            "failover.enabled",
            "failover.replication_user",
            "failover.never_promote[0]",
        ] {
            assert!(keys.iter().any(|x| x == k), "missing {k} in {keys:?}");
        }
    }

    #[test]
    fn host_port_forms() {
        assert!(is_host_port("db.internal:3306"));
        assert!(is_host_port("[::1]:3306"));
        assert!(!is_host_port("db.internal"));
        assert!(!is_host_port(":3306"));
    }
}

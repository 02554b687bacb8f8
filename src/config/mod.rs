//! Configuration: serde types (unknown keys rejected), loading, and validation.

mod cache;
pub mod diff;
mod duration;
pub mod rules;
mod sections;
mod stats;
mod validate;

pub use crate::tls::{BackendTls, Tls, TlsMode};
pub use cache::Cache;
pub use duration::Dur;
pub use stats::Stats;
pub use validate::{validate, Problem};

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Listen,
    pub admin: Admin,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub auth: Auth,
    /// TLS toward clients; absent: Sluice offers no TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// TLS toward the backends (all of them; `backends.tls` overrides the mode per backend).
    #[serde(default)]
    pub backend_tls: BackendTls,
    pub backends: Vec<Backend>,
    #[serde(default)]
    pub pool: Pool,
    #[serde(default)]
    pub routing: Routing,
    #[serde(default)]
    pub monitor: Option<Monitor>,
    #[serde(default)]
    pub failover: Failover,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub log: Log,
    /// The result cache's bounds (what is cached: rules with `cache_ttl`).
    #[serde(default)]
    pub cache: Cache,
    /// Routing rules, in evaluation order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<rules::Rule>,
}

/// Health and replication monitoring of every backend.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    pub user: String,
    pub password: String,
    #[serde(default = "defaults::monitor_interval")]
    pub interval: Dur,
    /// Time allowed for each probe (connect, ping, status queries).
    #[serde(default = "defaults::probe_timeout")]
    pub timeout: Dur,
    /// Consecutive failed probes before a backend is marked down.
    #[serde(default = "defaults::fail_after")]
    pub fail_after: u32,
    /// Consecutive successful probes before a down backend is marked up again.
    #[serde(default = "defaults::recover_after")]
    pub recover_after: u32,
    /// Write a heartbeat row on the primary (schema `sluice`) for sub-second lag.
    #[serde(default = "defaults::yes")]
    pub heartbeat: bool,
}

/// Automatic failover and planned switchover (actions run as the monitor user).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    /// Promote a replica when the primary fails. When false Sluice still follows whichever
    /// backend became writable (external failover tools).
    #[serde(default)]
    pub enabled: bool,
    /// How long the primary must fail health checks (default: 3 monitor intervals).
    #[serde(default)]
    pub after: Option<Dur>,
    /// Credentials replicas use to replicate from the promoted primary.
    #[serde(default)]
    pub replication_user: String,
    #[serde(default)]
    pub replication_password: String,
    /// Backends never promoted.
    #[serde(default)]
    pub never_promote: Vec<String>,
    /// New writes wait this long for a new primary instead of failing.
    #[serde(default = "defaults::hold_writes")]
    pub hold_writes: Dur,
    /// Bounded wait for the candidate to apply its relay log before promotion.
    #[serde(default = "defaults::relay_wait")]
    pub relay_log_wait: Dur,
    /// How long a switchover lets transactions already open on the old primary run on to
    /// their COMMIT; those still open then are ended (replayed on the new primary with
    /// `transaction_replay`, else their client gets an error) before the demotion.
    #[serde(default = "defaults::switchover_drain")]
    pub switchover_drain: Dur,
    /// Re-point a returning old primary as a replica when its history allows it.
    #[serde(default)]
    pub auto_rejoin: bool,
    /// Keep each open transaction's statements (and a checksum of each reply) and rerun
    /// them on the new primary when the old one is lost or switched over; the transaction
    /// continues only if every reply matches.
    #[serde(default)]
    pub transaction_replay: bool,
    /// A transaction whose statements exceed this many bytes is not replayable.
    #[serde(default = "defaults::replay_max_bytes")]
    pub transaction_replay_max_bytes: usize,
}

impl Default for Failover {
    fn default() -> Self {
        Self {
            enabled: false,
            after: None,
            replication_user: String::new(),
            replication_password: String::new(),
            never_promote: Vec::new(),
            hold_writes: defaults::hold_writes(),
            relay_log_wait: defaults::relay_wait(),
            switchover_drain: defaults::switchover_drain(),
            auto_rejoin: false,
            transaction_replay: false,
            transaction_replay_max_bytes: defaults::replay_max_bytes(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    Primary,
    Error,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReadYourWrites {
    Off,
    Session,
    Gtid,
    /// Causal reads across sessions: a read waits for (or skips replicas without) the last
    /// write any session made through this Sluice.
    Global,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub address: String,
    /// Client connections beyond this are refused with ERR 1040.
    #[serde(default = "defaults::max_client_connections")]
    pub max_client_connections: usize,
    /// Largest statement (logical packet) accepted from a client, in bytes.
    #[serde(default = "defaults::max_packet_size")]
    pub max_packet_size: usize,
    /// How long running statements may take to finish on SIGTERM/SIGINT.
    #[serde(default = "defaults::shutdown_timeout")]
    pub shutdown_timeout: Dur,
    /// Threads running client sessions; 0 (default) = one per CPU. 1 runs everything on one
    /// thread (no cross-thread wake-ups), a good choice when sharing a small machine.
    #[serde(default = "defaults::worker_threads")]
    pub worker_threads: usize,
    /// Server version announced to clients; default: the primary's, with a "-sluice" suffix.
    #[serde(default)]
    pub server_version: Option<String>,
    /// A client must complete the login within this time, else it is disconnected.
    #[serde(default = "defaults::handshake_timeout")]
    pub handshake_timeout: Dur,
    /// A logged-in client silent this long (between commands, or inside a half-sent packet)
    /// is disconnected, like the server's `wait_timeout`.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Dur,
    /// Failed logins from one client host before it is blocked (0: never block).
    #[serde(default = "defaults::auth_failure_limit")]
    pub auth_failure_limit: u32,
    /// How long a host that reached `auth_failure_limit` is refused.
    #[serde(default = "defaults::auth_failure_block")]
    pub auth_failure_block: Dur,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub address: String,
    /// Bearer token required by mutating endpoints (reload, switchover, drain). The
    /// SLUICE_ADMIN_TOKEN environment variable overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub password: String,
    /// Instead of `password`: the mysql_native_password hash (`*` + 40 hex, as in
    /// `mysql.user`), so that the config holds no plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// This user must connect with TLS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_tls: bool,
    /// Client sessions this user may have open at once (0: no limit).
    #[serde(default)]
    pub max_connections: usize,
}

/// Where client accounts come from.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserSource {
    /// Only `[[users]]`.
    #[default]
    Config,
    /// `[[users]]` first, then the accounts of `mysql.user` on the primary.
    Backend,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default)]
    pub users: UserSource,
    /// How often accounts are reloaded from the primary (also on an unknown user's login).
    #[serde(default = "defaults::auth_refresh")]
    pub refresh: Dur,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            users: UserSource::Config,
            refresh: defaults::auth_refresh(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Replica,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub name: String,
    pub address: String,
    pub role: Role,
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// TLS mode toward this backend (default: `backend_tls.mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsMode>,
    /// Server groups this backend belongs to (rule routes `group:NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    #[serde(default = "defaults::max_connections")]
    pub max_connections_per_backend: usize,
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Dur,
    #[serde(default = "defaults::checkout_timeout")]
    pub checkout_timeout: Dur,
    /// Idle backend connections kept per (backend, user).
    #[serde(default = "defaults::max_idle")]
    pub max_idle_per_backend: usize,
    /// Statements kept prepared per backend connection; past it the least recently used one
    /// is closed on the server (bounds `Prepared_stmt_count` on the backends).
    #[serde(default = "defaults::max_prepared")]
    pub max_prepared_per_connection: usize,
    /// Idle backend connections unused this long are closed (pgbouncer's
    /// `server_idle_timeout`): a quiet proxy leaves the servers no sessions of its own.
    #[serde(default = "defaults::pool_idle_timeout")]
    pub idle_timeout: Dur,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            max_connections_per_backend: defaults::max_connections(),
            connect_timeout: defaults::connect_timeout(),
            checkout_timeout: defaults::checkout_timeout(),
            max_idle_per_backend: defaults::max_idle(),
            max_prepared_per_connection: defaults::max_prepared(),
            idle_timeout: defaults::pool_idle_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// After a replica fails to connect, skip it for reads this long.
    #[serde(default = "defaults::replica_retry_after")]
    pub replica_retry_after: Dur,
    /// Replicas lagging more than this get no reads.
    #[serde(default = "defaults::max_replica_lag")]
    pub max_replica_lag: Dur,
    /// A replica excluded for lag comes back only below this (default: half the maximum).
    #[serde(default)]
    pub lag_reentry: Option<Dur>,
    /// Where reads go when no replica is eligible.
    #[serde(default = "defaults::fallback")]
    pub fallback: Fallback,
    #[serde(default = "defaults::read_your_writes")]
    pub read_your_writes: ReadYourWrites,
    /// `session` mode: how long after a write the session reads from the primary.
    #[serde(default = "defaults::ryw_window")]
    pub read_your_writes_window: Dur,
    /// `gtid` mode: how long a replica may wait for the session's last write before the read
    /// goes to the primary instead.
    #[serde(default = "defaults::gtid_wait")]
    pub gtid_wait: Dur,
}

impl Routing {
    pub fn reentry(&self) -> std::time::Duration {
        self.lag_reentry
            .map(|d| d.0)
            .unwrap_or(self.max_replica_lag.0 / 2)
    }
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            replica_retry_after: defaults::replica_retry_after(),
            max_replica_lag: defaults::max_replica_lag(),
            lag_reentry: None,
            fallback: defaults::fallback(),
            read_your_writes: defaults::read_your_writes(),
            read_your_writes_window: defaults::ryw_window(),
            gtid_wait: defaults::gtid_wait(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// tracing filter, e.g. "info" or "sluice=debug"; a reload changes it live.
    #[serde(default = "defaults::log_level")]
    pub level: String,
    /// "human" or "json" (one JSON object per line).
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: defaults::log_level(),
            format: LogFormat::Human,
        }
    }
}

mod defaults;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: invalid configuration:\n{}", list(.problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    pub fn parse(text: &str, path: &str) -> Result<Config, LoadError> {
        let cfg: Config = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                return Err(match sections::problems(text) {
                    Some(problems) if !problems.is_empty() => LoadError::Invalid {
                        path: path.into(),
                        problems,
                    },
                    _ => LoadError::Parse {
                        path: path.into(),
                        message: e.to_string(),
                    },
                })
            }
        };
        let problems = validate(&cfg);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(LoadError::Invalid {
                path: path.into(),
                problems,
            })
        }
    }

    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    pub fn primary(&self) -> Option<&Backend> {
        self.backends.iter().find(|b| b.role == Role::Primary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name)
    }

    #[test]
    fn shipped_configs_parse() {
        for f in ["sluice.toml", "minimal.toml"] {
            Config::load(&repo_file(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        // the compose file listens on 0.0.0.0 and gets its admin token from the environment
        // (docker-compose.yml sets SLUICE_ADMIN_TOKEN): that must be the only problem
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/sluice.compose.toml");
        let text = std::fs::read_to_string(deploy).unwrap();
        let cfg: Config = toml::from_str(&text).expect("deploy config parses");
        let problems: Vec<String> = validate(&cfg).into_iter().map(|p| p.key).collect();
        if std::env::var("SLUICE_ADMIN_TOKEN").is_err() {
            assert_eq!(problems, vec!["admin.address"]);
        } else {
            assert!(problems.is_empty(), "{problems:?}");
        }
    }

    #[test]
    fn a_read_error_keeps_its_cause_and_prints_it_once() {
        let e = Config::load(Path::new("/nonexistent/sluice.toml")).unwrap_err();
        let source = std::error::Error::source(&e).expect("the I/O error is the source");
        assert!(source.to_string().contains("No such file"), "{source}");
        let line = crate::error::chain(&e);
        assert_eq!(line.matches("No such file").count(), 1, "{line}");
        assert!(
            line.starts_with("cannot read /nonexistent/sluice.toml: "),
            "{line}"
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        let text = std::fs::read_to_string(repo_file("minimal.toml")).unwrap();
        let bad = text.replace("[pool]", "[pool]\nmax_conections_per_backend = 3");
        let err = Config::parse(&bad, "x.toml").unwrap_err().to_string();
        assert!(err.contains("max_conections_per_backend"), "{err}");
    }

    #[test]
    fn durations_are_human() {
        let text = std::fs::read_to_string(repo_file("minimal.toml")).unwrap();
        let cfg = Config::parse(&text.replace("\"3s\"", "\"250ms\""), "x").unwrap();
        assert_eq!(
            cfg.pool.checkout_timeout.0,
            std::time::Duration::from_millis(250)
        );
        let bad = text.replace("\"3s\"", "\"soon\"");
        assert!(Config::parse(&bad, "x")
            .unwrap_err()
            .to_string()
            .contains("soon"));
    }
}

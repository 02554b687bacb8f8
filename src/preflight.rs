//! `sluice check --connect`: logs in to every backend with the configured accounts and says
//! what is missing before Sluice is put in front of existing servers: logins, the monitor
//! user's privileges, `read_only` as the roles say, binary log and GTIDs on the primary,
//! replication running on replicas, rights on the heartbeat table.

use crate::backend::{BackendConn, ConnectOpts, Flavour};
use crate::config::{Config, Role};
use crate::failover::sql::Dialect;
use std::time::Duration;

/// What was found about one backend: `(ok, line)` pairs.
pub struct Report {
    pub backend: String,
    pub lines: Vec<(bool, String)>,
}

impl Report {
    fn ok(&mut self, s: impl Into<String>) {
        self.lines.push((true, s.into()));
    }
    fn bad(&mut self, s: impl Into<String>) {
        self.lines.push((false, s.into()));
    }
    pub fn failed(&self) -> bool {
        self.lines.iter().any(|(ok, _)| !ok)
    }
}

fn opts(cfg: &Config, address: &str, user: &str, password: &str) -> ConnectOpts {
    ConnectOpts {
        address: address.to_string(),
        user: user.to_string(),
        password: password.to_string(),
        native_hash1: None,
        database: None,
        flavour: Flavour::default(),
        timeout: cfg.pool.connect_timeout.0.max(Duration::from_secs(1)),
        tls: None,
    }
}

/// Checks every backend of `cfg`.
pub async fn check(cfg: &Config) -> Vec<Report> {
    let mut out = Vec::new();
    for b in &cfg.backends {
        let mut r = Report {
            backend: format!("{} ({}, {:?})", b.name, b.address, b.role).to_lowercase(),
            lines: Vec::new(),
        };
        for u in &cfg.users {
            if u.password_hash.is_some() {
                continue; // no plaintext to log in with
            }
            match BackendConn::connect(&opts(cfg, &b.address, &u.name, &u.password)).await {
                Ok(_) => r.ok(format!("user {} logs in", u.name)),
                Err(e) => r.bad(format!(
                    "user {} cannot log in ({e}): it must exist on every backend with the same password",
                    u.name
                )),
            }
        }
        match &cfg.monitor {
            Some(m) => monitor_checks(cfg, b, m, &mut r).await,
            None => r.ok("no [monitor]: roles come from the file, no lag measure, no failover"),
        }
        let f = &cfg.failover;
        if f.enabled {
            let o = opts(
                cfg,
                &b.address,
                &f.replication_user,
                &f.replication_password,
            );
            match BackendConn::connect(&o).await {
                Ok(_) => r.ok(format!("replication user {} logs in", f.replication_user)),
                Err(e) => r.bad(format!(
                    "replication user {} cannot log in ({e}): a failover re-points replicas with it",
                    f.replication_user
                )),
            }
        }
        out.push(r);
    }
    out
}

async fn monitor_checks(
    cfg: &Config,
    b: &crate::config::Backend,
    m: &crate::config::Monitor,
    r: &mut Report,
) {
    let mut c = match BackendConn::connect(&opts(cfg, &b.address, &m.user, &m.password)).await {
        Ok(c) => c,
        Err(e) => return r.bad(format!("monitor user {} cannot log in: {e}", m.user)),
    };
    r.ok(format!("monitor user {} logs in", m.user));
    let d = Dialect::of(&c.server_version);
    grants(&mut c, d, &m.user, r).await;
    let vars =
        "SELECT @@global.read_only AS ro, @@global.log_bin AS lb, @@global.binlog_format AS bf";
    let Ok(v) = c.query(vars).await else {
        return r.bad("cannot read read_only / log_bin / binlog_format");
    };
    let on = |x: Option<&str>| matches!(x, Some("1" | "ON"));
    let read_only = on(v.get("ro"));
    match b.role {
        Role::Primary if read_only => {
            r.bad("read_only is ON: Sluice will not take it as the primary")
        }
        Role::Replica if !read_only => r.bad(
            "read_only is OFF on a replica: writes there would diverge; SET GLOBAL read_only = 1",
        ),
        _ => r.ok(format!(
            "read_only = {}",
            if read_only { "ON" } else { "OFF" }
        )),
    }
    if on(v.get("lb")) {
        r.ok("binary log on");
    } else {
        r.bad("binary log off (log_bin): replicas, failover and read-your-writes need it");
    }
    match v.get("bf") {
        Some("ROW") => r.ok("binlog_format = ROW"),
        other => r.bad(format!(
            "binlog_format = {}: ROW is what replicas apply safely",
            other.unwrap_or("?")
        )),
    }
    gtids(&mut c, d, r).await;
    if b.role == Role::Replica {
        replication(&mut c, d, r).await;
    }
}

async fn grants(c: &mut BackendConn, d: Dialect, user: &str, r: &mut Report) {
    let Ok(g) = c.query("SHOW GRANTS").await else {
        return r.bad(format!("cannot read the grants of {user}"));
    };
    let text: String = g
        .rows
        .iter()
        .filter_map(|row| row.first().cloned().flatten())
        .collect::<Vec<_>>()
        .join("\n")
        .to_uppercase();
    let all = text.contains("GRANT ALL PRIVILEGES ON *.*");
    // MariaDB shows some privileges under their other name
    let aliases = |p: &str| match p {
        "REPLICATION CLIENT" => Some("BINLOG MONITOR"),
        "REPLICA MONITOR" => Some("SLAVE MONITOR"),
        "REPLICATION SLAVE ADMIN" => Some("SLAVE ADMIN"),
        _ => None,
    };
    let has = |p: &str| text.contains(p) || aliases(p).is_some_and(|a| text.contains(a));
    let missing: Vec<&str> = d
        .monitor_privileges()
        .iter()
        .filter(|p| !all && !has(p))
        .copied()
        .collect();
    if missing.is_empty() {
        r.ok("monitor privileges complete");
    } else {
        r.bad(format!(
            "monitor user lacks {}: GRANT {} ON *.* TO {user}",
            missing.join(", "),
            d.monitor_privileges().join(", ")
        ));
    }
    let heartbeat = all || text.contains("ON `SLUICE`.*") || text.contains("INSERT");
    if heartbeat {
        r.ok("heartbeat table writable (sluice.heartbeat)");
    } else {
        r.bad(format!(
            "no rights on the heartbeat table: GRANT ALL PRIVILEGES ON sluice.* TO {user}"
        ));
    }
}

async fn gtids(c: &mut BackendConn, d: Dialect, r: &mut Report) {
    let sql = match d {
        Dialect::MariaDb => "SELECT @@global.gtid_binlog_pos AS g, @@global.gtid_strict_mode AS s",
        Dialect::MySql => "SELECT @@global.gtid_mode AS g, @@global.enforce_gtid_consistency AS s",
    };
    match (d, c.query(sql).await) {
        (Dialect::MySql, Ok(v)) if v.get("g") != Some("ON") => r.bad(format!(
            "gtid_mode = {}: failover and read-your-writes need gtid_mode = ON",
            v.get("g").unwrap_or("?")
        )),
        (_, Ok(_)) => r.ok("GTIDs available"),
        (_, Err(e)) => r.bad(format!("cannot read the GTID settings: {e}")),
    }
}

async fn replication(c: &mut BackendConn, d: Dialect, r: &mut Report) {
    let (sql, io, sqlt) = match d {
        Dialect::MariaDb => ("SHOW SLAVE STATUS", "Slave_IO_Running", "Slave_SQL_Running"),
        Dialect::MySql => (
            "SHOW REPLICA STATUS",
            "Replica_IO_Running",
            "Replica_SQL_Running",
        ),
    };
    match c.query(sql).await {
        Ok(s) if s.rows.is_empty() => {
            r.bad("not replicating (no replica status): CHANGE MASTER TO ... ; START SLAVE")
        }
        Ok(s) if s.get(io) == Some("Yes") && s.get(sqlt) == Some("Yes") => {
            r.ok("replication threads running")
        }
        Ok(s) => r.bad(format!(
            "replication not running (IO: {}, SQL: {})",
            s.get(io).unwrap_or("?"),
            s.get(sqlt).unwrap_or("?")
        )),
        Err(e) => r.bad(format!("cannot read the replica status: {e}")),
    }
}

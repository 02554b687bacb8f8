//! Which server is installed (MariaDB or MySQL) and the SQL dialect each needs.

use crate::failover::sql::Dialect;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MariaDb,
    MySql,
}

#[derive(Debug, Clone)]
pub struct Flavor {
    pub kind: Kind,
    pub server: PathBuf,
    pub version: String,
}

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = [
        PathBuf::from("/usr/sbin"),
        PathBuf::from("/usr/local/sbin"),
        PathBuf::from("/usr/local/mysql/bin"),
    ];
    std::env::split_paths(&path)
        .chain(extra)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub const INSTALL_HINT: &str = "no MySQL or MariaDB server found: install one, e.g. \
    `sudo apt-get install -y mariadb-server mariadb-client` (Debian/Ubuntu) or `brew install mariadb`";

impl Flavor {
    pub fn detect() -> Result<Flavor, String> {
        let server = find("mariadbd")
            .or_else(|| find("mysqld"))
            .ok_or_else(|| INSTALL_HINT.to_string())?;
        let out = Command::new(&server)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", server.display()))?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let kind = if version.contains("MariaDB") {
            Kind::MariaDb
        } else {
            Kind::MySql
        };
        Ok(Flavor {
            kind,
            server,
            version,
        })
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::MariaDb => "MariaDB",
            Kind::MySql => "MySQL",
        }
    }

    /// The replication-control dialect shared with failover.
    pub fn dialect(&self) -> Dialect {
        match self.kind {
            Kind::MariaDb => Dialect::MariaDb,
            Kind::MySql => Dialect::MySql,
        }
    }

    /// Statements that point a replica at `host:port` with GTID auto-positioning.
    pub fn change_primary(&self, host: &str, port: u16, user: &str, password: &str) -> Vec<String> {
        self.dialect().change_primary(host, port, user, password)
    }

    pub fn replica_status(&self) -> &'static str {
        self.dialect().replica_status()
    }

    /// (IO running, SQL running) column names in the replica status.
    pub fn thread_columns(&self) -> (&'static str, &'static str) {
        match self.kind {
            Kind::MariaDb => ("Slave_IO_Running", "Slave_SQL_Running"),
            Kind::MySql => ("Replica_IO_Running", "Replica_SQL_Running"),
        }
    }

    /// SQL returning the primary's executed GTID position.
    pub fn gtid_position(&self) -> &'static str {
        match self.kind {
            Kind::MariaDb => "SELECT @@global.gtid_binlog_pos AS pos",
            Kind::MySql => "SELECT @@global.gtid_executed AS pos",
        }
    }

    /// SQL on a replica that waits for `pos`, returning 0 on success.
    pub fn wait_for_gtid(&self, pos: &str, secs: u64) -> String {
        self.dialect().wait_for(pos, secs as f64)
    }

    pub fn delay_replica(&self, secs: u32) -> Vec<String> {
        match self.kind {
            Kind::MariaDb => vec![
                "STOP SLAVE".into(),
                format!("CHANGE MASTER TO MASTER_DELAY={secs}"),
                "START SLAVE".into(),
            ],
            Kind::MySql => vec![
                "STOP REPLICA".into(),
                format!("CHANGE REPLICATION SOURCE TO SOURCE_DELAY={secs}"),
                "START REPLICA".into(),
            ],
        }
    }

    pub fn sql_thread(&self, start: bool) -> &'static str {
        match (self.kind, start) {
            (Kind::MariaDb, true) => "START SLAVE SQL_THREAD",
            (Kind::MariaDb, false) => "STOP SLAVE SQL_THREAD",
            (Kind::MySql, true) => "START REPLICA SQL_THREAD",
            (Kind::MySql, false) => "STOP REPLICA SQL_THREAD",
        }
    }

    /// Privileges of the monitor user.
    pub fn monitor_grants(&self) -> String {
        self.dialect().monitor_privileges().join(", ")
    }
}

//! Replication-control SQL for MariaDB and MySQL 8.

/// Which server family a backend runs (from its handshake version string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MariaDb,
    MySql,
}

impl Dialect {
    pub fn of(server_version: &str) -> Dialect {
        if server_version.contains("MariaDB") {
            Dialect::MariaDb
        } else {
            Dialect::MySql
        }
    }

    /// Privileges the `[monitor]` user needs: monitoring, plus what failover actions need
    /// (read_only, replication control).
    pub fn monitor_privileges(self) -> &'static [&'static str] {
        match self {
            Dialect::MariaDb => &[
                "REPLICATION CLIENT",
                "REPLICATION SLAVE",
                "SHOW VIEW",
                "REPLICA MONITOR",
                "BINLOG MONITOR",
                "PROCESS",
                "SUPER",
                "REPLICATION SLAVE ADMIN",
                "READ_ONLY ADMIN",
                "RELOAD",
            ],
            Dialect::MySql => &[
                "REPLICATION CLIENT",
                "REPLICATION SLAVE",
                "SHOW VIEW",
                "PROCESS",
                "SUPER",
                "RELOAD",
                "REPLICATION_SLAVE_ADMIN",
                "SYSTEM_VARIABLES_ADMIN",
            ],
        }
    }

    /// Points a replica at `host:port` with GTID auto-positioning and starts it. Every value
    /// is quoted with `quote` (control connections run without NO_BACKSLASH_ESCAPES).
    pub fn change_primary(self, host: &str, port: u16, user: &str, password: &str) -> Vec<String> {
        let (host, user, password) = (quote(host), quote(user), quote(password));
        match self {
            Dialect::MariaDb => vec![
                "STOP SLAVE".into(),
                format!(
                    "CHANGE MASTER TO MASTER_HOST={host}, MASTER_PORT={port}, MASTER_USER={user}, \
                     MASTER_PASSWORD={password}, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
                ),
                "START SLAVE".into(),
            ],
            Dialect::MySql => vec![
                "STOP REPLICA".into(),
                format!(
                    "CHANGE REPLICATION SOURCE TO SOURCE_HOST={host}, SOURCE_PORT={port}, SOURCE_USER={user}, \
                     SOURCE_PASSWORD={password}, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1"
                ),
                "START REPLICA".into(),
            ],
        }
    }

    /// Turns a replica into a writable primary.
    pub fn promote(self) -> Vec<&'static str> {
        let mut stmts = match self {
            Dialect::MariaDb => vec!["STOP SLAVE", "RESET SLAVE ALL"],
            Dialect::MySql => vec!["STOP REPLICA", "RESET REPLICA ALL"],
        };
        stmts.extend(self.make_writable());
        stmts
    }

    pub fn make_writable(self) -> Vec<&'static str> {
        match self {
            Dialect::MariaDb => vec!["SET GLOBAL read_only = OFF"],
            Dialect::MySql => vec![
                "SET GLOBAL super_read_only = OFF",
                "SET GLOBAL read_only = OFF",
            ],
        }
    }

    pub fn make_read_only(self) -> Vec<&'static str> {
        match self {
            Dialect::MariaDb => vec!["SET GLOBAL read_only = ON"],
            Dialect::MySql => vec!["SET GLOBAL super_read_only = ON"],
        }
    }

    pub fn replica_status(self) -> &'static str {
        match self {
            Dialect::MariaDb => "SHOW SLAVE STATUS",
            Dialect::MySql => "SHOW REPLICA STATUS",
        }
    }

    /// (executed position, own server id or uuid) of a server.
    pub fn position(self) -> &'static str {
        match self {
            Dialect::MariaDb => "SELECT @@global.gtid_binlog_pos AS executed, @@global.gtid_current_pos AS current, @@server_id AS me",
            Dialect::MySql => "SELECT @@global.gtid_executed AS executed, @@global.gtid_executed AS current, @@server_uuid AS me",
        }
    }

    /// The transactions a server holds (`History::of` reads the row) and its own id.
    pub fn history(self) -> &'static str {
        match self {
            Dialect::MariaDb => "SELECT @@global.gtid_binlog_state AS h, @@global.gtid_slave_pos AS s, @@server_id AS me",
            Dialect::MySql => "SELECT @@global.gtid_executed AS h, '' AS s, @@server_uuid AS me",
        }
    }

    /// Received (relay log) GTID position column of the replica status.
    pub fn received_column(self) -> &'static str {
        match self {
            Dialect::MariaDb => "Gtid_IO_Pos",
            Dialect::MySql => "Retrieved_Gtid_Set",
        }
    }

    /// Waits until `pos` is applied; returns 0 on success.
    pub fn wait_for(self, pos: &str, secs: f64) -> String {
        match self {
            Dialect::MariaDb => format!("SELECT MASTER_GTID_WAIT('{pos}', {secs:.3}) AS r"),
            Dialect::MySql => format!("SELECT WAIT_FOR_EXECUTED_GTID_SET('{pos}', {secs:.3}) AS r"),
        }
    }
}

/// A MySQL string literal for `s`, safe for any bytes: quotes and backslashes escaped, control
/// characters spelled out (valid unless the session has NO_BACKSLASH_ESCAPES, which control
/// connections clear).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `text` with every occurrence of `secret` replaced (for errors that may echo SQL).
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    text.replace(secret, "<redacted>")
}

/// Splits "host:port".
pub fn host_port(address: &str) -> (String, u16) {
    match address.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_matches(['[', ']']).to_string(),
            p.parse().unwrap_or(3306),
        ),
        None => (address.to_string(), 3306),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_backslashes() {
        assert_eq!(quote(r#"a'b\c"d"#), r#"'a\'b\\c"d'"#);
        assert_eq!(quote("x\0y\nz"), r"'x\0y\nz'");
        let sql = &Dialect::MariaDb.change_primary("h'", 3306, "u\\", "p'; DROP TABLE t; --")[1];
        assert!(
            sql.contains(r"MASTER_PASSWORD='p\'; DROP TABLE t; --'"),
            "{sql}"
        );
        assert!(sql.contains(r"MASTER_HOST='h\''") && sql.contains(r"MASTER_USER='u\\'"));
        assert_eq!(redact("near 'secret' at", "secret"), "near '<redacted>' at");
    }

    #[test]
    fn addresses() {
        assert_eq!(host_port("127.0.0.1:3307"), ("127.0.0.1".into(), 3307));
        assert_eq!(host_port("[::1]:3307"), ("::1".into(), 3307));
    }
}

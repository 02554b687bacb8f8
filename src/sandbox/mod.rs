//! A real primary/replica topology on loopback: used by `sluice sandbox` and by the tests.
//!
//! Setup is the classic one: binary log and a unique server_id on the primary, a replication
//! user, replicas with their own server_id, read_only, pointed at the primary with GTID
//! auto-positioning, started, and checked.

pub mod certs;
pub mod cli;
pub mod flavor;
pub mod process;
pub mod server;

use crate::backend::{BackendConn, BackendError, QueryResult};
use crate::config::Config;
use flavor::Flavor;
pub use server::Server;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const ADMIN_USER: &str = "sluice_admin";
pub const ADMIN_PASSWORD: &str = "sluice_admin_pw";
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "apppass";
pub const MONITOR_USER: &str = "sluice_monitor";
pub const MONITOR_PASSWORD: &str = "monitorpass";
pub const REPL_USER: &str = "repl";
pub const REPL_PASSWORD: &str = "replpass";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    NoServer(String),
    #[error("{server}: {what}\n--- last lines of its error log ---\n{log_tail}")]
    Server {
        server: String,
        what: String,
        log_tail: String,
    },
    #[error("{server}: SQL failed: {sql}: {error}")]
    Sql {
        server: String,
        sql: String,
        error: BackendError,
    },
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub replicas: usize,
    /// Primary on base_port, replicas on the following ports; `None`: free ports.
    pub base_port: Option<u16>,
    pub fresh: bool,
    /// Print progress lines to stderr.
    pub progress: bool,
}

pub struct Sandbox {
    pub flavor: Flavor,
    pub dir: PathBuf,
    /// servers[0] is the primary.
    pub servers: Vec<Server>,
    progress: bool,
}

fn free_port() -> Result<u16, SandboxError> {
    process::free_port().map_err(|e| SandboxError::Other(format!("no free port: {e}")))
}

/// A port of the operator's choosing, if nothing listens on it: a server of ours started
/// there would fail while its readiness check reached the other one.
fn taken_port_refused(port: u16) -> Result<u16, SandboxError> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(port),
        Err(e) => Err(SandboxError::Other(format!(
            "port {port} is not free ({e}): another server or sandbox uses it; stop it or \
             choose another base port"
        ))),
    }
}

impl Sandbox {
    fn say(&self, msg: &str) {
        if self.progress {
            eprintln!("  {msg}");
        }
    }

    /// Creates (or reuses) the folder, starts every server, sets up replication, waits until
    /// it runs.
    pub async fn start(opts: Options) -> Result<Sandbox, SandboxError> {
        let flavor = Flavor::detect().map_err(SandboxError::NoServer)?;
        if opts.fresh && opts.dir.exists() {
            std::fs::remove_dir_all(&opts.dir).map_err(|e| {
                SandboxError::Other(format!("cannot wipe {}: {e}", opts.dir.display()))
            })?;
        }
        let mut servers = Vec::new();
        for i in 0..=opts.replicas {
            let port = match opts.base_port {
                Some(p) => taken_port_refused(p + i as u16)?,
                None => free_port()?,
            };
            // named as the generated Sluice config names the backends
            let name = format!("db{i}");
            let dir = opts.dir.join(&name);
            // on reused data the roles may have moved (failover, switchover): start every
            // server read-only and open the primary once it is known
            let reused = dir.join("data").join("mysql").is_dir();
            servers.push(Server::new(
                &flavor,
                &name,
                port,
                1 + i as u32,
                dir,
                i > 0 || reused,
            ));
        }
        let mut sb = Sandbox {
            flavor,
            dir: opts.dir.clone(),
            servers,
            progress: opts.progress,
        };
        let fresh = !sb.servers.iter().all(|s| s.is_initialized());
        if fresh {
            sb.say(&format!(
                "initialising {} data folders with {} ({})...",
                sb.servers.len(),
                sb.flavor.name(),
                sb.flavor.version
            ));
            // one bootstrap, copied: parallel bootstraps interfere, and copying is faster
            sb.servers[0].initialize()?;
            for s in &sb.servers[1..] {
                s.initialize_from(&sb.servers[0])?;
            }
        }
        // the servers offer TLS with the same certificate as Sluice (backend_tls tests)
        let tls = match certs::ensure(&sb.dir) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "sandbox without TLS");
                None
            }
        };
        sb.say("starting servers...");
        for s in &sb.servers {
            s.start(tls.as_ref())?;
        }
        for i in 0..sb.servers.len() {
            let mut retries = if opts.base_port.is_none() { 3 } else { 0 };
            while let Err(e) = sb.servers[i].wait_ready(Duration::from_secs(60)).await {
                // a port of our choosing taken by someone else since: choose another
                if retries == 0 || !sb.servers[i].lost_its_port() {
                    return Err(e);
                }
                retries -= 1;
                sb.servers[i].port = free_port()?;
                sb.servers[i].start(tls.as_ref())?;
            }
            sb.say(&format!(
                "{} is up on {}",
                sb.servers[i].name,
                sb.servers[i].address()
            ));
        }
        if fresh {
            sb.setup_replication().await?;
        } else {
            // reused data: every server started read-only; open the primary for writes
            let p = sb.primary_index().await;
            sb.sql(p, "SET GLOBAL read_only = OFF").await?;
            sb.say(&format!(
                "{} is the primary (no replica configuration)",
                sb.servers[p].name
            ));
        }
        sb.say("checking replication...");
        sb.check_replication(Duration::from_secs(30)).await?;
        Ok(sb)
    }

    /// Runs SQL as the admin user on server `i`.
    pub async fn sql(&self, i: usize, sql: &str) -> Result<QueryResult, SandboxError> {
        let s = &self.servers[i];
        let err = |error| SandboxError::Sql {
            server: s.name.clone(),
            sql: sql.into(),
            error,
        };
        let mut c = BackendConn::connect(&s.admin_opts()).await.map_err(err)?;
        c.query(sql).await.map_err(err)
    }

    async fn setup_replication(&self) -> Result<(), SandboxError> {
        self.say("creating users on the primary (replication, application, monitor)...");
        let app_privs = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE TEMPORARY TABLES, \
                         LOCK TABLES, EXECUTE, CREATE ROUTINE, ALTER ROUTINE, CREATE VIEW, SHOW VIEW, TRIGGER, \
                         REFERENCES, PROCESS";
        let stmts = [
            format!("CREATE USER '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY '{REPL_PASSWORD}'"),
            format!(
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{REPL_USER}'@'127.0.0.1'"
            ),
            format!("CREATE USER '{APP_USER}'@'127.0.0.1' IDENTIFIED BY '{APP_PASSWORD}'"),
            format!("GRANT {app_privs} ON *.* TO '{APP_USER}'@'127.0.0.1'"),
            format!("CREATE USER '{MONITOR_USER}'@'127.0.0.1' IDENTIFIED BY '{MONITOR_PASSWORD}'"),
            format!(
                "GRANT {} ON *.* TO '{MONITOR_USER}'@'127.0.0.1'",
                self.flavor.monitor_grants()
            ),
            format!("GRANT ALL PRIVILEGES ON sluice.* TO '{MONITOR_USER}'@'127.0.0.1'"),
            // [auth] users = "backend" reads the accounts with the monitor credentials
            format!("GRANT SELECT ON mysql.* TO '{MONITOR_USER}'@'127.0.0.1'"),
        ];
        for s in &stmts {
            self.sql(0, s).await?;
        }
        let port = self.servers[0].port;
        for i in 1..self.servers.len() {
            self.say(&format!(
                "pointing {} at the primary (GTID auto-positioning)...",
                self.servers[i].name
            ));
            for s in self
                .flavor
                .change_primary("127.0.0.1", port, REPL_USER, REPL_PASSWORD)
            {
                self.sql(i, &s).await?;
            }
        }
        Ok(())
    }

    /// Replica status of server `i` (first row of SHOW SLAVE/REPLICA STATUS).
    pub async fn replica_status(&self, i: usize) -> Result<QueryResult, SandboxError> {
        self.sql(i, self.flavor.replica_status()).await
    }

    /// The primary: the server without a replica configuration (after a failover or
    /// switchover it may not be servers[0]).
    pub async fn primary_index(&self) -> usize {
        for i in 0..self.servers.len() {
            if let Ok(st) = self.replica_status(i).await {
                if st.rows.is_empty() {
                    return i;
                }
            }
        }
        0
    }

    /// Waits until every replica's IO and SQL threads run and it has caught up.
    pub async fn check_replication(&self, timeout: Duration) -> Result<(), SandboxError> {
        let deadline = Instant::now() + timeout;
        let (io, sqlt) = self.flavor.thread_columns();
        let primary = self.primary_index().await;
        for i in (0..self.servers.len()).filter(|&i| i != primary) {
            loop {
                let st = self.replica_status(i).await?;
                if st.get(io) == Some("Yes") && st.get(sqlt) == Some("Yes") {
                    break;
                }
                if Instant::now() > deadline {
                    let err = st
                        .get("Last_IO_Error")
                        .or(st.get("Last_SQL_Error"))
                        .unwrap_or("")
                        .to_string();
                    return Err(SandboxError::Server {
                        server: self.servers[i].name.clone(),
                        what: format!(
                            "replication threads not running (IO={:?}, SQL={:?}) {err}",
                            st.get(io),
                            st.get(sqlt)
                        ),
                        log_tail: self.servers[i].log_tail(15),
                    });
                }
                crate::timer::sleep(Duration::from_millis(100)).await;
            }
        }
        self.wait_caught_up(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
        )
        .await
    }

    /// Waits until every running replica has applied the primary's current GTID position.
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), SandboxError> {
        let primary = self.primary_index().await;
        let pos = self.sql(primary, self.flavor.gtid_position()).await?;
        let pos = pos.get("pos").unwrap_or("").to_string();
        for i in (0..self.servers.len()).filter(|&i| i != primary) {
            let r = self
                .sql(
                    i,
                    &self.flavor.wait_for_gtid(&pos, timeout.as_secs().max(1)),
                )
                .await?;
            if r.get("r") != Some("0") {
                return Err(SandboxError::Other(format!(
                    "{} did not reach GTID {pos} within {timeout:?}",
                    self.servers[i].name
                )));
            }
        }
        Ok(())
    }

    /// Makes replica `i` apply events `secs` seconds late (0 undoes it).
    pub async fn delay_replica(&self, i: usize, secs: u32) -> Result<(), SandboxError> {
        for s in self.flavor.delay_replica(secs) {
            self.sql(i, &s).await?;
        }
        Ok(())
    }

    pub async fn set_sql_thread(&self, i: usize, running: bool) -> Result<(), SandboxError> {
        self.sql(i, self.flavor.sql_thread(running))
            .await
            .map(|_| ())
    }

    /// kill -9 of server `i`.
    pub fn kill(&self, i: usize) {
        self.servers[i].kill();
    }
    pub fn freeze(&self, i: usize) -> Result<(), SandboxError> {
        self.servers[i].signal(libc::SIGSTOP)
    }
    pub fn thaw(&self, i: usize) -> Result<(), SandboxError> {
        self.servers[i].signal(libc::SIGCONT)
    }
    pub fn stop(&self, i: usize) {
        self.servers[i].stop();
    }
    /// Stops (if running) and starts server `i` again on the same data and port.
    pub async fn restart(&self, i: usize) -> Result<(), SandboxError> {
        self.servers[i].stop();
        let c = certs::paths(&self.dir);
        let tls = (c.ca.exists() && c.cert.exists() && c.key.exists()).then_some(&c);
        self.servers[i].start(tls)?;
        self.servers[i].wait_ready(Duration::from_secs(60)).await
    }

    /// A Sluice config for this topology with the app user, listening on `listen`/`admin`.
    pub fn proxy_config(&self, listen: &str, admin: &str) -> Config {
        let mut text = format!(
            "[listen]\naddress = \"{listen}\"\n\n[admin]\naddress = \"{admin}\"\n\n\
             [[users]]\nname = \"{APP_USER}\"\npassword = \"{APP_PASSWORD}\"\n\n"
        );
        for (i, s) in self.servers.iter().enumerate() {
            let role = if i == 0 { "primary" } else { "replica" };
            text.push_str(&format!(
                "[[backends]]\nname = \"db{i}\"\naddress = \"{}\"\nrole = \"{role}\"\n\n",
                s.address()
            ));
        }
        text.push_str("[pool]\nmax_connections_per_backend = 100\nconnect_timeout = \"2s\"\ncheckout_timeout = \"3s\"\n\n");
        text.push_str(&format!(
            "[monitor]\nuser = \"{MONITOR_USER}\"\npassword = \"{MONITOR_PASSWORD}\"\ninterval = \"500ms\"\n\n\
             [failover]\nenabled = false\nreplication_user = \"{REPL_USER}\"\nreplication_password = \"{REPL_PASSWORD}\"\n"
        ));
        let c = certs::paths(&self.dir);
        if c.ca.exists() && c.cert.exists() && c.key.exists() {
            text.push_str(&format!(
                "\n[tls]\ncert = {:?}\nkey = {:?}\n",
                c.cert.display().to_string(),
                c.key.display().to_string()
            ));
        }
        Config::parse(&text, "sandbox").expect("generated sandbox config is valid")
    }

    /// Stops every server (SIGTERM, bounded wait).
    pub fn shutdown(&self) {
        for s in self.servers.iter().rev() {
            s.stop();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown();
    }
}

//! One database server process of a sandbox: data folder, start/stop, signals, readiness.

use super::flavor::{Flavor, Kind};
use super::{process, SandboxError, ADMIN_PASSWORD, ADMIN_USER};
use crate::backend::{BackendConn, ConnectOpts};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Server {
    pub name: String,
    pub port: u16,
    pub server_id: u32,
    pub dir: PathBuf,
    pub replica: bool,
    flavor: Flavor,
    child: Mutex<Option<Child>>,
}

impl Server {
    pub fn new(
        flavor: &Flavor,
        name: &str,
        port: u16,
        server_id: u32,
        dir: PathBuf,
        replica: bool,
    ) -> Server {
        Server {
            name: name.into(),
            port,
            server_id,
            dir,
            replica,
            flavor: flavor.clone(),
            child: Mutex::new(None),
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }
    pub fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }
    pub fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.id())
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn is_initialized(&self) -> bool {
        self.data_dir().join("mysql").is_dir()
    }

    /// Last lines of the server's error log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.error_log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the server's last start failed because its port was in use.
    pub fn lost_its_port(&self) -> bool {
        self.log_tail(5).contains("Address already in use")
    }

    fn fail(&self, what: &str) -> SandboxError {
        SandboxError::Server {
            server: self.name.clone(),
            what: what.into(),
            log_tail: self.log_tail(15),
        }
    }

    /// Creates the data folder with the system tables (mariadb-install-db / mysqld --initialize).
    pub fn initialize(&self) -> Result<(), SandboxError> {
        std::fs::create_dir_all(self.data_dir())
            .map_err(|e| self.fail(&format!("create data dir: {e}")))?;
        std::fs::create_dir_all(self.tmp_dir())
            .map_err(|e| self.fail(&format!("create tmp dir: {e}")))?;
        let mut cmd = match self.flavor.kind {
            Kind::MariaDb => {
                let installer = self.flavor.server.with_file_name("mariadb-install-db");
                let installer = if installer.is_file() {
                    installer
                } else {
                    PathBuf::from("mariadb-install-db")
                };
                let mut c = Command::new(installer);
                c.arg("--no-defaults")
                    .arg(format!("--datadir={}", self.data_dir().display()))
                    .arg("--auth-root-authentication-method=normal")
                    .arg(format!("--tmpdir={}", self.tmp_dir().display()))
                    .arg("--innodb-use-native-aio=0")
                    .arg("--skip-test-db");
                c
            }
            Kind::MySql => {
                let mut c = Command::new(&self.flavor.server);
                c.arg("--no-defaults")
                    .arg(format!("--tmpdir={}", self.tmp_dir().display()))
                    .arg("--initialize-insecure")
                    .arg(format!("--datadir={}", self.data_dir().display()));
                c
            }
        };
        if is_root() {
            cmd.arg("--user=root");
        }
        let log = std::fs::File::create(self.dir.join("init.log"))
            .map_err(|e| self.fail(&e.to_string()))?;
        let log2 = log.try_clone().map_err(|e| self.fail(&e.to_string()))?;
        let status = cmd
            .stdout(log)
            .stderr(log2)
            .status()
            .map_err(|e| self.fail(&format!("cannot run installer: {e}")))?;
        if !status.success() {
            let out = std::fs::read_to_string(self.dir.join("init.log")).unwrap_or_default();
            let tail: Vec<&str> = out
                .lines()
                .filter(|l| l.contains("ERROR") || l.contains("rror"))
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(SandboxError::Server {
                server: self.name.clone(),
                what: format!("data folder initialisation failed ({status})"),
                log_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            });
        }
        Ok(())
    }

    /// Initialises this server's data folder as a copy of `other`'s freshly bootstrapped one.
    pub fn initialize_from(&self, other: &Server) -> Result<(), SandboxError> {
        let _ = std::fs::remove_dir_all(self.data_dir());
        copy_dir(&other.data_dir(), &self.data_dir())
            .map_err(|e| self.fail(&format!("copy data folder: {e}")))?;
        // MySQL keeps the server UUID there; each server needs its own
        let _ = std::fs::remove_file(self.data_dir().join("auto.cnf"));
        Ok(())
    }

    fn write_init_file(&self) -> Result<PathBuf, SandboxError> {
        let path = self.dir.join("init.sql");
        let sql = format!(
            "SET sql_log_bin = 0;\n\
             CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'127.0.0.1' IDENTIFIED BY '{ADMIN_PASSWORD}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'127.0.0.1' WITH GRANT OPTION;\n\
             SET sql_log_bin = 1;\n"
        );
        std::fs::write(&path, sql).map_err(|e| self.fail(&e.to_string()))?;
        Ok(path)
    }

    /// Starts the server process (does not wait for readiness).
    pub fn start(&self, tls: Option<&super::certs::Certs>) -> Result<(), SandboxError> {
        let init = self.write_init_file()?;
        std::fs::create_dir_all(self.tmp_dir())
            .map_err(|e| self.fail(&format!("create tmp dir: {e}")))?;
        let d = &self.dir;
        let mut cmd = Command::new(&self.flavor.server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", d.join("mysql.sock").display()))
            .arg(format!("--pid-file={}", d.join("server.pid").display()))
            .arg(format!("--log-error={}", self.error_log().display()))
            .arg(format!("--init-file={}", init.display()))
            // a private tmpdir: servers delete stale #sql files of others in a shared one
            .arg(format!("--tmpdir={}", self.tmp_dir().display()))
            .arg(format!("--server-id={}", self.server_id))
            .arg("--log-bin=binlog")
            .arg("--relay-log=relay-bin")
            .arg("--binlog-format=ROW")
            .arg("--skip-name-resolve")
            .arg("--max-connections=1000")
            .arg("--max-allowed-packet=256M")
            .arg("--innodb-buffer-pool-size=64M")
            .arg("--innodb-flush-log-at-trx-commit=2")
            .arg("--performance-schema=OFF")
            // native AIO reserves kernel AIO slots per instance; many sandboxes exhaust them
            .arg("--innodb-use-native-aio=0");
        match self.flavor.kind {
            Kind::MariaDb => {
                // replicas notice a dead or frozen primary within seconds (heartbeat = half of it)
                cmd.arg("--slave-net-timeout=4");
                cmd.arg("--log-slave-updates=ON")
                    .arg("--gtid-strict-mode=ON")
                    .arg("--innodb-log-file-size=48M");
            }
            Kind::MySql => {
                cmd.arg("--replica-net-timeout=4");
                cmd.arg("--gtid-mode=ON")
                    .arg("--enforce-gtid-consistency=ON")
                    .arg("--log-replica-updates=ON")
                    .arg("--mysqlx=OFF");
            }
        }
        if self.replica {
            cmd.arg("--read-only=ON");
        }
        if let Some(c) = tls {
            cmd.arg(format!("--ssl-cert={}", c.cert.display()))
                .arg(format!("--ssl-key={}", c.key.display()))
                .arg(format!("--ssl-ca={}", c.ca.display()));
        }
        if is_root() {
            cmd.arg("--user=root");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = process::spawn(cmd).map_err(|e| {
            self.fail(&format!(
                "cannot start {}: {e}",
                self.flavor.server.display()
            ))
        })?;
        *self.child() = Some(child);
        Ok(())
    }

    pub fn admin_opts(&self) -> ConnectOpts {
        ConnectOpts {
            address: self.address(),
            user: ADMIN_USER.into(),
            password: ADMIN_PASSWORD.into(),
            native_hash1: None,
            database: None,
            flavour: Default::default(),
            tls: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// Waits until the server accepts an admin login; fails early if the process exits.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), SandboxError> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = {
                let mut child = self.child();
                match child.as_mut().map(|c| c.try_wait()) {
                    Some(Ok(Some(status))) => {
                        *child = None;
                        Some(status)
                    }
                    _ => None,
                }
            };
            if let Some(status) = exited {
                return Err(self.fail(&format!("server exited during startup ({status})")));
            }
            if BackendConn::connect(&self.admin_opts()).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.fail(&format!("not ready after {timeout:?}")));
            }
            crate::timer::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn signal(&self, sig: i32) -> Result<(), SandboxError> {
        let pid = self.pid().ok_or_else(|| self.fail("not running"))?;
        process::signal(pid, sig).map_err(|e| self.fail(&format!("signal {sig}: {e}")))
    }

    /// kill -9, and reap.
    pub fn kill(&self) {
        if let Some(mut c) = self.child().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded), then SIGKILL.
    pub fn stop(&self) {
        let Some(mut c) = self.child().take() else {
            return;
        };
        let _ = process::signal(c.id(), libc::SIGCONT);
        let _ = process::signal(c.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    pub fn is_running(&self) -> bool {
        matches!(self.child().as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Removes folders of earlier test runs whose process is gone.
pub fn remove_stale(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|p| p.parse::<u32>().ok())
        {
            if !process::is_alive(pid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

//! Wiring and lifecycle: bind listeners, start tasks, graceful shutdown.

use crate::backend::{BackendConn, ConnectOpts};
use crate::config::Config;
use crate::shared::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(crate::config::LoadError),
    // the cause is the source, not part of the message: `error::chain` (or anyhow's `{:#}`)
    // prints it once
    #[error("cannot listen on {address} ({what})")]
    Bind {
        what: &'static str,
        address: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot start {threads} worker threads (listen.worker_threads)")]
    Workers {
        threads: usize,
        #[source]
        cause: std::io::Error,
    },
}

/// A running proxy instance.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    workers: Arc<crate::workers::Workers>,
}

/// The version string announced to clients: configured, or the primary's plus "-sluice".
async fn server_version(cfg: &Config) -> String {
    if let Some(v) = &cfg.listen.server_version {
        return v.clone();
    }
    // the monitor's credentials, else the first user with a plaintext password
    let creds = cfg
        .monitor
        .as_ref()
        .map(|m| (m.user.clone(), m.password.clone()))
        .or_else(|| {
            let u = cfg.users.iter().find(|u| u.password_hash.is_none())?;
            Some((u.name.clone(), u.password.clone()))
        });
    let (Some(primary), Some((user, password))) = (cfg.primary(), creds) else {
        return "8.0.36-sluice".into();
    };
    let opts = ConnectOpts {
        address: primary.address.clone(),
        user,
        password,
        native_hash1: None,
        database: None,
        flavour: Default::default(),
        tls: crate::topology::backend_tls(cfg, primary),
        timeout: cfg.pool.connect_timeout.0,
    };
    match BackendConn::connect(&opts).await {
        Ok(c) => format!("{}-sluice", c.server_version),
        Err(e) => {
            tracing::warn!(backend = %primary.name, error = %e, "cannot reach the primary at startup; announcing a generic version");
            "8.0.36-sluice".into()
        }
    }
}

async fn bind(what: &'static str, address: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind {
            what,
            address: address.into(),
            cause: source,
        })
}

impl Proxy {
    /// Starts from a file: reloads on SIGHUP (see `run`), on `POST /reload`, and when the
    /// file changes.
    pub async fn start_from_file(path: &std::path::Path) -> Result<Proxy, StartError> {
        let config = Config::load(path).map_err(StartError::Config)?;
        let mut proxy = Self::start(config).await?;
        proxy.shared.reload.lock().path = Some(path.display().to_string());
        proxy.tasks.push(crate::watch::spawn(
            proxy.shared.clone(),
            path.to_path_buf(),
        ));
        Ok(proxy)
    }

    pub async fn start(config: Config) -> Result<Proxy, StartError> {
        let listener = bind("listen.address", &config.listen.address).await?;
        let admin = bind("admin.address", &config.admin.address).await?;
        let version = server_version(&config).await;
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, version, stop_rx.clone()));
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let admin_addr = admin.local_addr().expect("bound listener has an address");
        let threads = crate::workers::count(shared.config.load().listen.worker_threads);
        let workers = Arc::new(
            crate::workers::Workers::start(threads)
                .map_err(|cause| StartError::Workers { threads, cause })?,
        );
        let mut tasks = vec![
            tokio::spawn(crate::session::accept_loop(
                shared.clone(),
                listener,
                workers.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(crate::admin::serve(shared.clone(), admin, stop_rx.clone())),
        ];
        tasks.extend(crate::monitor::spawn(&shared, &stop_rx));
        tasks.extend(crate::failover::spawn(&shared, &stop_rx));
        tasks.push(spawn_account_refresh(&shared, stop_rx.clone()).await);
        tasks.push(crate::memory::spawn(&shared, stop_rx.clone()));
        tasks.push(crate::follower::spawn(&shared, stop_rx.clone()));
        tasks.push(spawn_idle_reaper(&shared, stop_rx.clone()));
        tracing::info!(%addr, %admin_addr, version = %shared.server_version, "sluice is serving");
        Ok(Proxy {
            addr,
            admin_addr,
            shared,
            stop,
            tasks,
            workers,
        })
    }

    /// Stops accepting, waits (bounded by `listen.shutdown_timeout`) for running statements,
    /// then closes every session.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let deadline = Instant::now() + self.shared.config.load().listen.shutdown_timeout.0;
        loop {
            let running = self
                .shared
                .sessions
                .lock()
                .values()
                .filter(|h| h.running().is_some())
                .count();
            if running == 0 || Instant::now() >= deadline {
                if running > 0 {
                    tracing::warn!(
                        running,
                        "shutdown timeout reached; closing sessions with statements in flight"
                    );
                }
                break;
            }
            crate::timer::sleep(Duration::from_millis(20)).await;
        }
        let handles: Vec<_> = self.shared.sessions.lock().values().cloned().collect();
        for h in handles {
            if let Some(a) = h.abort.lock().take() {
                a.abort();
            }
        }
        // the accept loop has ended: this is the last reference
        if let Ok(workers) = Arc::try_unwrap(self.workers) {
            workers.stop().await;
        }
        tracing::info!("sluice stopped");
    }
}

/// Loads backend accounts now (when `[auth] users = "backend"`) and then every
/// `auth.refresh`; the store opens its connections with the monitor credentials to the
/// current primary.
/// Closes backend connections idle longer than `pool.idle_timeout` (checked a few times per
/// timeout, at most every 5 s).
fn spawn_idle_reaper(shared: &Arc<Shared>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let shared = shared.clone();
    tokio::spawn(async move {
        loop {
            let timeout = shared.config.load().pool.idle_timeout.0;
            let every = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
            tokio::select! {
                _ = crate::timer::sleep(every) => {}
                _ = stop.changed() => return,
            }
            for b in shared.topology.backends().iter() {
                let closed = b.pool.close_idle_older_than(timeout);
                if closed > 0 {
                    tracing::debug!(backend = %b.pool.name, closed, "idle backend connections closed (pool.idle_timeout)");
                }
            }
        }
    })
}

async fn spawn_account_refresh(
    shared: &Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(shared);
    let _ = shared.accounts.opener.set(Box::new(move || {
        let shared = weak.upgrade()?;
        let cfg = shared.config.load();
        let m = cfg.monitor.as_ref()?;
        let primary = shared.topology.backend(shared.topology.primary());
        Some(primary.pool.monitor_opts(m))
    }));
    let load = |shared: &Shared| shared.backend_accounts().is_some();
    if load(shared) {
        match shared.accounts.refresh().await {
            Ok(n) => tracing::info!(accounts = n, "accounts loaded from the primary"),
            Err(e) => tracing::warn!(error = %e, "cannot load accounts from the primary"),
        }
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        loop {
            let every = shared.config.load().auth.refresh.0;
            tokio::select! {
                _ = crate::timer::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if load(&shared) {
                if let Err(e) = shared.accounts.refresh().await {
                    tracing::warn!(error = %e, "cannot reload accounts from the primary");
                }
            }
        }
    })
}

/// `sluice run`: start, serve until SIGTERM/SIGINT (reloading on SIGHUP), shut down
/// gracefully.
pub async fn run(
    path: &std::path::Path,
    set_log_level: crate::shared::LevelSetter,
) -> Result<(), StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let proxy = Proxy::start_from_file(path).await?;
    let _ = proxy.shared.set_log_level.set(set_log_level);
    let mut hup = signal(SignalKind::hangup()).expect("install SIGHUP handler");
    loop {
        tokio::select! {
            _ = wait_for_signal() => break,
            _ = hup.recv() => {
                crate::reload::from_file(&proxy.shared, "sighup").await;
            }
        }
    }
    tracing::info!("shutdown requested");
    proxy.shutdown().await;
    Ok(())
}

/// SIGTERM/SIGINT/SIGQUIT handlers, installed when created (so a signal arriving during a slow
/// startup is not lost or ignored).
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub fn install() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        StopSignals {
            term: signal(SignalKind::terminate()).expect("install SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("install SIGINT handler"),
            quit: signal(SignalKind::quit()).expect("install SIGQUIT handler"),
        }
    }

    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            _ = self.quit.recv() => {}
        }
    }
}

pub async fn wait_for_signal() {
    StopSignals::install().recv().await
}

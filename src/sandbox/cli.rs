//! `sluice sandbox`: a local primary + replicas with Sluice in front, for trying Sluice out.

use super::{Options, Sandbox, APP_PASSWORD, APP_USER};
use crate::app::Proxy;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of replicas (at most 9: their ports end before Sluice's).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=9))]
    pub replicas: u16,
    /// Data folder (default: <temp dir>/sluice-sandbox). Reused by later runs.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Wipe the data folder first.
    #[arg(long)]
    pub fresh: bool,
    /// Ports: primary on BASE, replicas on BASE+1.., Sluice on BASE+10, admin on BASE+11
    /// (1024 to 65524).
    #[arg(long, default_value_t = 23306, value_parser = clap::value_parser!(u16).range(1024..=65524))]
    pub base_port: u16,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = args
        .dir
        .unwrap_or_else(|| std::env::temp_dir().join("sluice-sandbox"));
    eprintln!(
        "sluice sandbox: primary + {} replicas in {}",
        args.replicas,
        dir.display()
    );
    let opts = Options {
        dir: dir.clone(),
        replicas: args.replicas.into(),
        base_port: Some(args.base_port),
        fresh: args.fresh,
        progress: true,
    };
    let mut signals = crate::app::StopSignals::install();
    let sb = tokio::select! {
        sb = Sandbox::start(opts) => sb?,
        _ = signals.recv() => {
            // dropping the unfinished start stops the servers it had started
            anyhow::bail!("interrupted during startup");
        }
    };
    let listen = format!("127.0.0.1:{}", args.base_port + 10);
    let admin = format!("127.0.0.1:{}", args.base_port + 11);
    let mut cfg = sb.proxy_config(&listen, &admin);
    cfg.failover.enabled = true;
    // after a switchover or failover in an earlier run the primary may be another server
    let primary = sb.primary_index().await;
    for (i, b) in cfg.backends.iter_mut().enumerate() {
        b.role = if i == primary {
            crate::config::Role::Primary
        } else {
            crate::config::Role::Replica
        };
    }
    let cfg_path = dir.join("sluice.toml");
    std::fs::write(&cfg_path, toml::to_string_pretty(&cfg)?)?;
    // from the file, as `sluice run`: editing it, SIGHUP and POST /reload reload it
    let proxy = Proxy::start_from_file(&cfg_path).await?;
    print_banner(&sb, &proxy, primary, &cfg_path);
    println!(
        "Press Ctrl-C to stop Sluice and the servers (SIGHUP reloads {}).",
        cfg_path.display()
    );
    let ids: Vec<u32> = sb.servers.iter().map(|s| s.server_id).collect();
    serve_until_stopped(&proxy, &mut signals, (primary, &ids)).await;
    eprintln!("stopping...");
    proxy.shutdown().await;
    sb.shutdown();
    eprintln!(
        "stopped; data kept in {} (use --fresh to start over)",
        dir.display()
    );
    Ok(())
}

/// Reloads on SIGHUP until SIGTERM, SIGINT or SIGQUIT; says when another server becomes
/// the primary (`primary`: the index at start, `ids`: the servers' ids), so the banner's
/// hint is never left stale.
async fn serve_until_stopped(
    proxy: &Proxy,
    signals: &mut crate::app::StopSignals,
    (mut primary, ids): (usize, &[u32]),
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        signals.recv().await;
        return;
    };
    #[allow(clippy::disallowed_methods)] // on the control plane's runtime, which has timers
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = signals.recv() => return,
            _ = tick.tick() => {
                let now = proxy.shared.topology.primary();
                if now != primary && now < ids.len() {
                    primary = now;
                    println!(
                        "primary is now db{now}: inside BEGIN ... COMMIT, SELECT @@server_id shows {}",
                        ids[now]
                    );
                }
            }
            _ = hup.recv() => {
                let o = crate::reload::from_file(&proxy.shared, "sighup").await;
                if o.ok {
                    eprintln!("configuration reloaded: {}", o.changes.join("; "));
                } else {
                    eprintln!("configuration NOT reloaded: {}", o.errors.join("; "));
                }
            }
        }
    }
}

/// What runs where, and how to try it.
fn print_banner(sb: &Sandbox, proxy: &Proxy, primary: usize, cfg_path: &std::path::Path) {
    let port = proxy.addr.port();
    println!();
    println!(
        "Sluice is running in front of a {} primary and {} replicas.",
        sb.flavor.name(),
        sb.servers.len() - 1
    );
    println!("  proxy:      {}", proxy.addr);
    println!("  connect:    mariadb -h 127.0.0.1 -P {port} -u {APP_USER} -p{APP_PASSWORD}");
    let ca = sb.dir.join("tls").join("ca.pem");
    if ca.exists() {
        println!(
            "  with TLS:   mariadb -h 127.0.0.1 -P {port} -u {APP_USER} -p{APP_PASSWORD} --ssl --ssl-ca={} --ssl-verify-server-cert",
            ca.display()
        );
    }
    println!(
        "  try:        SELECT @@server_id;   -- a replica's id; inside BEGIN ... COMMIT the primary's ({})",
        sb.servers[primary].server_id
    );
    println!(
        "  admin:      http://{}/  (status page; /status, /metrics)",
        proxy.admin_addr
    );
    let other = (0..sb.servers.len())
        .rev()
        .find(|&i| i != primary)
        .unwrap_or(0);
    println!(
        "  failover:   enabled; try  {} switchover --admin {} --to db{other}",
        command_name(),
        proxy.admin_addr
    );
    println!("  config:     {}", cfg_path.display());
    for (i, s) in sb.servers.iter().enumerate() {
        println!(
            "  {:<4} {:<8} 127.0.0.1:{}  server_id={}  data={}  log={}",
            s.name,
            if i == primary { "primary" } else { "replica" },
            s.port,
            s.server_id,
            s.data_dir().display(),
            s.error_log().display()
        );
    }
}

/// How to run this binary from the current folder: `./target/release/sluice` after
/// `cargo build --release`, `sluice` when it is the one on the PATH, else its full path.
fn command_name() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "sluice".into();
    };
    if let Ok(cwd) = std::env::current_dir() {
        if let Ok(rel) = exe.strip_prefix(&cwd) {
            return format!("./{}", rel.display());
        }
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sluice") == exe));
    if on_path {
        "sluice".into()
    } else {
        exe.display().to_string()
    }
}

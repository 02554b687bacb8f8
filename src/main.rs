//! Command line: `sluice run`, `sluice check`, `sluice sandbox`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice::config::{Config, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;

// glibc only: its epoll_wait is a cancellation point (and musl's static library defines it
// beside epoll_ctl in one object, which a definition of our own would collide with)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod epoll;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A read/write-splitting MySQL/MariaDB proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the proxy.
    Run {
        /// The configuration file (TOML; see config/sluice.toml for every key).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and print every problem found.
    Check {
        /// The configuration file to validate.
        #[arg(long, short)]
        config: PathBuf,
        /// Also show how the file differs from what a running Sluice uses (its admin address,
        /// e.g. http://127.0.0.1:9033).
        #[arg(long)]
        diff_with: Option<String>,
        /// Also log in to every backend with the configured accounts and report what is
        /// missing (logins, monitor privileges, read_only, binary log, GTIDs, replication).
        #[arg(long)]
        connect: bool,
    },
    /// Start a local primary + replicas (MariaDB or MySQL) with Sluice in front.
    Sandbox(sluice::sandbox::cli::Args),
    /// Planned switchover of a running Sluice (POST /switchover on its admin address).
    Switchover {
        /// Admin address of the running Sluice, e.g. 127.0.0.1:9033.
        #[arg(long)]
        admin: String,
        /// Backend to promote (default: the best candidate).
        #[arg(long)]
        to: Option<String>,
        /// Print the admin API's JSON reply instead of the timeline.
        #[arg(long)]
        json: bool,
    },
    /// Explain where a statement would go and why (POST /explain on a running Sluice's admin
    /// address), without running it.
    Explain {
        /// Admin address of the running Sluice, e.g. 127.0.0.1:9033.
        #[arg(long)]
        admin: String,
        /// The statement.
        sql: String,
    },
    /// Print the `password_hash` forms of a password read from standard input (one line), for
    /// `[[users]]` without plaintext: mysql_native_password and caching_sha2_password.
    PasswordHash,
}

use sluice::shared::LevelSetter;

/// Installs the subscriber; returns a function that changes the filter live (RUST_LOG, when
/// set, wins at startup).
fn init_logging(level: &str, format: LogFormat) -> LevelSetter {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .init(),
        LogFormat::Human => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    // colour only on a terminal: no escape codes in files and journals
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .init(),
    }
    Box::new(move |lvl: &str| {
        let f = tracing_subscriber::EnvFilter::try_new(lvl).map_err(|e| e.to_string())?;
        handle.reload(f).map_err(|e| e.to_string())
    })
}

/// Lets the proxy use as many file descriptors as the hard limit allows (one per client).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_fd_limit();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A minimal HTTP POST to the admin listener; returns (status code, body).
async fn http_post(addr: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    http("POST", addr, path, body).await
}

async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    http("GET", addr, path, "").await
}

/// One request to the admin listener (with SLUICE_ADMIN_TOKEN when set), within 90 s (a
/// switchover may take the admin API's own 60 s limit).
async fn http(method: &str, addr: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let token = std::env::var("SLUICE_ADMIN_TOKEN").ok();
    let limit = std::time::Duration::from_secs(90);
    Ok(sluice::admin::client::request(addr, (method, path, body), token.as_deref(), limit).await?)
}

/// The control plane's runtime (accept, admin, monitor, failover); sessions run on the
/// workers of `listen.worker_threads` (see `sluice::workers`).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check {
            config,
            diff_with,
            connect,
        } => {
            let code = check(&config, diff_with)?;
            if connect && code == ExitCode::SUCCESS {
                return check_connect(&config);
            }
            Ok(code)
        }
        Command::Run { config } => {
            let cfg = Config::load(&config)?;
            let set_level = init_logging(&cfg.log.level, cfg.log.format);
            runtime()?.block_on(sluice::app::run(&config, set_level))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::PasswordHash => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let pw = line.trim_end_matches(['\r', '\n']);
            let (native, sha2) = sluice::frontend::password_hashes(pw);
            println!("mysql_native_password: password_hash = \"{native}\"");
            println!("caching_sha2_password: password_hash = \"{sha2}\"");
            Ok(ExitCode::SUCCESS)
        }
        Command::Switchover { admin, to, json } => switchover(&admin, to, json),
        Command::Explain { admin, sql } => explain(&admin, &sql),
        Command::Sandbox(args) => {
            let _ = init_logging("warn", LogFormat::Human);
            runtime()?.block_on(sluice::sandbox::cli::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sluice check`: validates a configuration, optionally diffed with a running one.
fn check(config: &std::path::Path, diff_with: Option<String>) -> anyhow::Result<ExitCode> {
    match Config::load(config) {
        Ok(cfg) => {
            if let Some(admin) = diff_with {
                let (code, running) = runtime()?.block_on(http_get(&admin, "/config"))?;
                anyhow::ensure!(code == 200, "GET {admin}/config answered {code}");
                let running: serde_json::Value =
                    serde_json::from_str(&running).context("parsing the running config")?;
                let mut lines = sluice::config::diff::diff(&running, &serde_json::to_value(&cfg)?);
                let running_rules: Vec<sluice::config::rules::Rule> = running
                    .get("rules")
                    .map(|r| serde_json::from_value(r.clone()))
                    .transpose()
                    .context("parsing the running rules")?
                    .unwrap_or_default();
                lines.retain(|l| !l[2..].starts_with("rules["));
                lines.extend(sluice::config::rules::changes(&running_rules, &cfg.rules));
                if lines.is_empty() {
                    println!("no differences from the running configuration at {admin}");
                }
                for l in lines {
                    println!("{l}");
                }
            }
            let n = |count: usize, one: &str, many: &str| {
                format!("{count} {}", if count == 1 { one } else { many })
            };
            for w in sluice::config::rules::unreachable(&cfg) {
                println!("warning: {w}");
            }
            println!(
                "{}: OK ({}, {}, {}, listening on {})",
                config.display(),
                n(cfg.backends.len(), "backend", "backends"),
                n(cfg.users.len(), "user", "users"),
                n(cfg.rules.len(), "rule", "rules"),
                cfg.listen.address
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}", sluice::error::chain(&e));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `sluice check --connect`: what each backend lacks.
fn check_connect(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config)?;
    let reports = runtime()?.block_on(sluice::preflight::check(&cfg));
    let mut failed = false;
    for r in &reports {
        println!("{}", r.backend);
        for (ok, line) in &r.lines {
            println!("  {} {line}", if *ok { "ok " } else { "NO " });
        }
        failed |= r.failed();
    }
    if failed {
        println!(
            "problems found: fix the lines marked NO (README: Put Sluice in front of your servers)"
        );
        Ok(ExitCode::FAILURE)
    } else {
        println!("every backend is ready for Sluice");
        Ok(ExitCode::SUCCESS)
    }
}

/// `sluice switchover`: asks a running Sluice to switch over and prints the timeline.
fn switchover(admin: &str, to: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let body = match to {
        Some(t) => serde_json::json!({ "to": t }).to_string(),
        None => String::new(),
    };
    let (code, reply) = runtime()?.block_on(http_post(admin, "/switchover", &body))?;
    if json {
        println!("{reply}");
    } else {
        print!("{}", timeline_text(&reply));
    }
    Ok(if code == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `sluice explain`: how a running Sluice would route a statement.
fn explain(admin: &str, sql: &str) -> anyhow::Result<ExitCode> {
    let (code, reply) = runtime()?.block_on(http_post(admin, "/explain", sql))?;
    match serde_json::from_str::<Vec<serde_json::Value>>(&reply) {
        Ok(rows) if code == 200 => {
            for r in rows {
                println!(
                    "{:<18} {}",
                    r["item"].as_str().unwrap_or(""),
                    r["value"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("{reply}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The admin API's switchover reply as lines for a terminal: the outcome, then each step
/// with its time since the start. Anything unexpected is printed as it came.
fn timeline_text(reply: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(reply) else {
        return format!("{reply}\n");
    };
    if let Some(e) = v["error"].as_str() {
        return format!("switchover failed: {e}\n");
    }
    let t = &v["timeline"];
    let mut out = format!(
        "switchover {} -> {}: {}\n",
        t["from"].as_str().unwrap_or("?"),
        t["to"].as_str().unwrap_or("?"),
        v["result"].as_str().unwrap_or("?")
    );
    for step in t["steps"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:>6} ms  {}\n",
            step["at_ms"].as_u64().unwrap_or(0),
            step["what"].as_str().unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn switchover_reply_reads_as_a_timeline() {
        let reply = r#"{"result":"success","timeline":{"kind":"switchover","from":"db0","to":"db2","result":"success","steps":[{"at_ms":0,"what":"holding new writes"},{"at_ms":31,"what":"db2 promoted"}]}}"#;
        assert_eq!(
            super::timeline_text(reply),
            "switchover db0 -> db2: success\n       0 ms  holding new writes\n      31 ms  db2 promoted\n"
        );
        assert_eq!(
            super::timeline_text(r#"{"error":"no healthy replica to switch to"}"#),
            "switchover failed: no healthy replica to switch to\n"
        );
    }
}

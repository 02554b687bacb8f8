//! Admin HTTP listener: GET /live, /ready, /status, /metrics; POST /switchover. A deliberately
//! tiny HTTP/1.1 server (one request per connection).

mod page;

use crate::shared::Shared;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub async fn serve(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => { tokio::time::sleep(Duration::from_millis(100)).await; continue } },
            _ = stop.changed() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(60), handle(shared, stream)).await;
        });
    }
}

async fn handle(shared: Arc<Shared>, mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0)
        .min(64 * 1024);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body =
        String::from_utf8_lossy(&buf[head_end..buf.len().min(head_end + length)]).into_owned();
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let authorized = authorized(&shared, &head);
    let (code, ctype, body) = if method == "POST" && !authorized {
        (
            "401 Unauthorized",
            "application/json",
            json!({"error": "missing or wrong bearer token ([admin] token / SLUICE_ADMIN_TOKEN)"})
                .to_string(),
        )
    } else {
        route(&shared, method, path, &body).await
    };
    let head = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

type Reply = (&'static str, &'static str, String);

/// Whether the request carries the configured admin token (always true without one).
fn authorized(shared: &Shared, head: &str) -> bool {
    let token = std::env::var("SLUICE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| shared.config.load().admin.token.clone());
    let Some(token) = token else { return true };
    head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("authorization") && v.trim() == format!("Bearer {token}")
        })
    })
}

/// The running configuration as JSON with secrets redacted.
fn config_json(shared: &Shared) -> String {
    let mut v = serde_json::to_value(&**shared.config.load()).unwrap_or_default();
    crate::config::diff::redact(&mut v);
    v.to_string()
}

fn drain(shared: &Shared, path: &str) -> Reply {
    let rest = path.trim_start_matches("/backends/");
    let (name, on) = match rest.rsplit_once('/') {
        Some((n, "drain")) => (n, true),
        Some((n, "undrain")) => (n, false),
        _ => return ("404 Not Found", "text/plain", "not found\n".into()),
    };
    match shared.topology.index_of(name) {
        Some(i) => {
            shared.topology.backend(i).set_drained(on);
            tracing::warn!(
                backend = name,
                drained = on,
                "backend drain state changed by the admin API"
            );
            (
                "200 OK",
                "application/json",
                json!({"backend": name, "drained": on}).to_string(),
            )
        }
        None => (
            "404 Not Found",
            "application/json",
            json!({"error": format!("no backend named {name:?}")}).to_string(),
        ),
    }
}

fn ready(shared: &Shared) -> Reply {
    let topo = &shared.topology;
    let p = topo.backend(topo.primary());
    if p.state.up.load(Ordering::Relaxed) && !p.is_removed() {
        (
            "200 OK",
            "text/plain",
            format!("ready: primary {}\n", p.pool.name),
        )
    } else {
        (
            "503 Service Unavailable",
            "text/plain",
            "not ready: no healthy primary known\n".into(),
        )
    }
}

async fn route(shared: &Arc<Shared>, method: &str, path: &str, body: &str) -> Reply {
    match (method, path) {
        ("GET", "/") => ("200 OK", "text/html; charset=utf-8", page::render(shared)),
        ("GET", "/live") => ("200 OK", "text/plain", "ok\n".into()),
        ("GET", "/ready") => ready(shared),
        ("GET", "/config") => ("200 OK", "application/json", config_json(shared)),
        ("POST", "/reload") => {
            let o = crate::reload::from_file(shared, "admin").await;
            let code = if o.ok {
                "200 OK"
            } else {
                "422 Unprocessable Entity"
            };
            (code, "application/json", json!(o).to_string())
        }
        ("POST", p) if p.starts_with("/backends/") => drain(shared, p),
        ("GET", "/status") => ("200 OK", "application/json", status(shared).to_string()),
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            shared.metrics.render(shared),
        ),
        ("POST", "/switchover") => switchover(shared, body).await,
        _ => ("404 Not Found", "text/plain", "not found\n".into()),
    }
}

async fn switchover(shared: &Arc<Shared>, body: &str) -> Reply {
    let to =
        if body.trim().is_empty() {
            None
        } else {
            match serde_json::from_str::<serde_json::Value>(body) {
                Ok(v) => v.get("to").and_then(|t| t.as_str()).map(str::to_string),
                Err(e) => return (
                    "400 Bad Request",
                    "application/json",
                    json!({"error": format!("body must be JSON like {{\"to\": \"db2\"}}: {e}")})
                        .to_string(),
                ),
            }
        };
    match crate::failover::switchover(shared, to.as_deref()).await {
        Ok(t) => (
            "200 OK",
            "application/json",
            json!({"result": "success", "timeline": t}).to_string(),
        ),
        Err(e) => (
            "409 Conflict",
            "application/json",
            json!({"error": e}).to_string(),
        ),
    }
}

pub fn status(shared: &Shared) -> serde_json::Value {
    let topo = &shared.topology;
    let primary = topo.primary();
    let monitored = shared.config.load().monitor.is_some();
    let backends: Vec<_> = topo
        .backends()
        .iter()
        .enumerate()
        .map(|(i, b)| backend_status(b, i == primary, monitored))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "clients": shared.clients.load(Ordering::Relaxed),
        "primary": topo.backends().get(primary).map(|b| b.pool.name.clone()),
        "split_brain": topo.split_brain.load(Ordering::Relaxed),
        "monitoring": monitored,
        "failover": *shared.failover.status.lock(),
        "config": *shared.reload.lock(),
        "backends": backends,
    })
}

fn backend_status(
    b: &crate::topology::Backend,
    is_primary: bool,
    monitored: bool,
) -> serde_json::Value {
    let st = &b.state;
    let d = st.detail.lock().clone();
    let lag = st.lag_us().map(|us| us as f64 / 1e6);
    let hb = st.heartbeat_lag_us.load(Ordering::Relaxed);
    let behind = st.seconds_behind.load(Ordering::Relaxed);
    let healthy = st.up.load(Ordering::Relaxed) && !b.pool.is_down();
    let eligible = !is_primary && healthy && b.weight() > 0 && st.eligible.load(Ordering::Relaxed);
    let reason = if is_primary {
        "primary".to_string()
    } else if b.is_removed() {
        "removed from the configuration (draining)".to_string()
    } else if b.is_drained() {
        "drained by the admin API".to_string()
    } else if b.weight() == 0 {
        "weight is 0".to_string()
    } else if b.pool.is_down() {
        "connections refused recently".to_string()
    } else {
        d.reason.clone()
    };
    json!({
        "name": b.pool.name,
        "address": b.pool.address,
        "role": if is_primary { "primary" } else { "replica" },
        "healthy": healthy,
        "writable": st.writable.load(Ordering::Relaxed),
        "lag_seconds": if is_primary { Some(0.0) } else { lag },
        "heartbeat_lag_seconds": (hb >= 0).then(|| hb as f64 / 1e6),
        "seconds_behind": (behind >= 0).then_some(behind),
        "replication": { "io_running": st.io_running.load(Ordering::Relaxed), "sql_running": st.sql_running.load(Ordering::Relaxed), "last_error": d.last_error },
        "gtid_position": d.gtid,
        "eligible": eligible,
        "reason": if eligible { None } else { Some(reason) },
        "weight": b.weight(),
        "removed": b.is_removed(),
        "drained": b.is_drained(),
        "in_flight": b.pool.busy.load(Ordering::Relaxed),
        "pool": { "busy": b.pool.busy.load(Ordering::Relaxed), "idle": b.pool.idle_count(), "opened_total": b.pool.opened.load(Ordering::Relaxed) },
        "probe_error": (!d.probe_error.is_empty()).then_some(d.probe_error),
        "probes": st.probes.load(Ordering::Relaxed),
        "monitored": monitored,
        "server_version": d.version,
    })
}

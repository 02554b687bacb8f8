//! Admin HTTP listener: GET /live, /ready, /status. A deliberately tiny HTTP/1.1 server.

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
            let _ = tokio::time::timeout(Duration::from_secs(10), handle(shared, stream)).await;
        });
    }
}

async fn handle(shared: Arc<Shared>, mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
        let r = stream.read(&mut buf[n..]).await?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let req = String::from_utf8_lossy(&buf[..n]);
    let mut parts = req.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (code, ctype, body) = route(&shared, method, path);
    let head = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

fn route(shared: &Shared, method: &str, path: &str) -> (&'static str, &'static str, String) {
    match (method, path) {
        ("GET", "/live") => ("200 OK", "text/plain", "ok\n".into()),
        ("GET", "/ready") => ("200 OK", "text/plain", "ready\n".into()),
        ("GET", "/status") => ("200 OK", "application/json", status(shared).to_string()),
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            shared.metrics.render(shared),
        ),
        _ => ("404 Not Found", "text/plain", "not found\n".into()),
    }
}

pub fn status(shared: &Shared) -> serde_json::Value {
    let topo = &shared.topology;
    let primary = topo.primary();
    let monitored = shared.config.load().monitor.is_some();
    let backends: Vec<_> = topo
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| backend_status(b, i == primary, monitored))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "clients": shared.clients.load(Ordering::Relaxed),
        "primary": topo.backends.get(primary).map(|b| b.pool.name.clone()),
        "split_brain": topo.split_brain.load(Ordering::Relaxed),
        "monitoring": monitored,
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
    let eligible = !is_primary && healthy && b.weight > 0 && st.eligible.load(Ordering::Relaxed);
    let reason = if is_primary {
        "primary".to_string()
    } else if b.weight == 0 {
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
        "weight": b.weight,
        "in_flight": b.pool.busy.load(Ordering::Relaxed),
        "pool": { "busy": b.pool.busy.load(Ordering::Relaxed), "idle": b.pool.idle_count(), "opened_total": b.pool.opened.load(Ordering::Relaxed) },
        "probe_error": (!d.probe_error.is_empty()).then_some(d.probe_error),
        "probes": st.probes.load(Ordering::Relaxed),
        "monitored": monitored,
        "server_version": d.version,
    })
}

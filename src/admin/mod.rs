//! Admin HTTP listener (hyper, HTTP/1.1): GET /, /live, /ready, /status, /config, /metrics;
//! POST /reload, /switchover, /backends/<name>/drain|undrain.
//!
//! Safe by default: POST endpoints need the bearer token (`[admin] token` or
//! SLUICE_ADMIN_TOKEN, compared in constant time); without a token they answer only to
//! loopback peers (and `sluice check` refuses a non-loopback `admin.address` without one).
//! At most `MAX_CONNECTIONS` admin connections are served at once.

mod cache;
pub mod client;
mod digests;
mod page;
mod rules;

use crate::shared::Shared;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Admin connections served at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 64;
/// Largest request body accepted (switchover JSON).
const MAX_BODY: usize = 64 * 1024;

pub async fn serve(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => { crate::timer::sleep(Duration::from_millis(100)).await; continue } },
            _ = stop.changed() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "admin connection refused: {MAX_CONNECTIONS} already open");
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, peer, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = crate::timer::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

async fn handle(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let (code, ctype, body) = if method == "POST" {
        match authorize(token(shared).as_deref(), peer, req.headers()) {
            Err(reply) => reply,
            Ok(()) => match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => {
                    let body = String::from_utf8_lossy(&b.to_bytes()).into_owned();
                    route(shared, &method, &path, &body, &query).await
                }
                Err(_) => (
                    "413 Payload Too Large",
                    "text/plain",
                    format!("request body over {MAX_BODY} bytes\n"),
                ),
            },
        }
    } else {
        route(shared, &method, &path, "", &query).await
    };
    let status = code
        .get(..3)
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

type Reply = (&'static str, &'static str, String);

/// The admin token in force: SLUICE_ADMIN_TOKEN, else `[admin] token`.
pub fn token(shared: &Shared) -> Option<String> {
    std::env::var("SLUICE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| shared.config.load().admin.token.clone())
}

/// The credentials of an `Authorization: Bearer <token>` header; the scheme name is
/// case-insensitive (RFC 7235), one or more spaces follow it.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start())
}

/// Whether a POST may proceed: the right bearer token, or no token configured and a loopback
/// peer.
fn authorize(
    token: Option<&str>,
    peer: SocketAddr,
    headers: &hyper::HeaderMap,
) -> Result<(), Reply> {
    let Some(token) = token else {
        if peer.ip().is_loopback() {
            return Ok(());
        }
        return Err((
            "403 Forbidden",
            "application/json",
            json!({"error": "without [admin] token, POST endpoints answer only on loopback"})
                .to_string(),
        ));
    };
    let given = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .unwrap_or("");
    if token_matches(given, token) {
        Ok(())
    } else {
        Err((
            "401 Unauthorized",
            "application/json",
            json!({"error": "missing or wrong bearer token ([admin] token / SLUICE_ADMIN_TOKEN)"})
                .to_string(),
        ))
    }
}

/// Constant-time comparison (the time does not depend on where the strings differ).
fn token_matches(given: &str, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == token.len() && bool::from(given.as_bytes().ct_eq(token.as_bytes()))
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

/// Ready when a primary is reachable: healthy by the monitor's probes, or, without a
/// `[monitor]` (nothing probes), accepting a TCP connection now (within 1 s).
async fn ready(shared: &Shared) -> Reply {
    let topo = &shared.topology;
    let p = topo.backend(topo.primary());
    let reachable = if shared.config.load().monitor.is_some() {
        p.state.load().up
    } else {
        let connect = tokio::net::TcpStream::connect(p.pool.address.as_str());
        matches!(
            crate::timer::timeout(Duration::from_secs(1), connect).await,
            Ok(Ok(_))
        )
    };
    if reachable && !p.is_removed() {
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

async fn route(shared: &Arc<Shared>, method: &str, path: &str, body: &str, query: &str) -> Reply {
    match (method, path) {
        ("GET", "/digests") => digests::get(shared, query),
        ("GET", "/rules") => rules::get(shared),
        ("GET", "/cache") => cache::get(shared),
        ("POST", "/cache/purge") => cache::purge(shared),
        ("POST", "/digests/reset") => digests::reset(shared),
        ("POST", "/explain") => digests::explain(shared, body),
        ("GET", "/") => ("200 OK", "text/html; charset=utf-8", page::render(shared)),
        ("GET", "/live") => ("200 OK", "text/plain", "ok\n".into()),
        ("GET", "/ready") => ready(shared).await,
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
            shared.metrics.render(
                &shared.topology,
                shared.clients.load(Ordering::Relaxed),
                &shared.cache,
            ),
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
            json!({"error": e.line()}).to_string(),
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
        "cache": { "active": shared.cache.active(), "binlog": &*shared.cache.follower.read() },
        "backends": backends,
    })
}

fn backend_status(
    b: &crate::topology::Backend,
    is_primary: bool,
    monitored: bool,
) -> serde_json::Value {
    let d = b.state.load();
    let lag = d.lag_us().map(|us| us as f64 / 1e6);
    let (hb, behind) = (d.heartbeat_lag_us, d.seconds_behind);
    let healthy = d.up && !b.pool.is_down();
    let eligible = !is_primary && healthy && b.weight() > 0 && d.eligible;
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
        "writable": d.writable,
        "lag_seconds": if is_primary { Some(0.0) } else { lag },
        "heartbeat_lag_seconds": (hb >= 0).then(|| hb as f64 / 1e6),
        "seconds_behind": (behind >= 0).then_some(behind),
        "replication": { "io_running": d.io_running, "sql_running": d.sql_running, "last_error": d.last_error },
        "gtid_position": d.gtid_text,
        "eligible": eligible,
        "reason": if eligible { None } else { Some(reason) },
        "weight": b.weight(),
        "removed": b.is_removed(),
        "drained": b.is_drained(),
        "in_flight": b.pool.busy.load(Ordering::Relaxed),
        "pool": { "busy": b.pool.busy.load(Ordering::Relaxed), "idle": b.pool.idle_count(), "opened_total": b.pool.opened.load(Ordering::Relaxed) },
        "probe_error": (!d.probe_error.is_empty()).then_some(&d.probe_error),
        "probes": b.state.probes(),
        "monitored": monitored,
        // MariaDB's handshake prefixes its version with "5.5.5-" for old clients
        "server_version": d.version.strip_prefix("5.5.5-").unwrap_or(&d.version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(token: Option<&str>, peer: &str, auth: Option<&str>) -> &'static str {
        let mut h = hyper::HeaderMap::new();
        if let Some(a) = auth {
            h.insert(hyper::header::AUTHORIZATION, a.parse().unwrap());
        }
        match authorize(token, peer.parse().unwrap(), &h) {
            Ok(()) => "ok",
            Err((c, _, _)) => c,
        }
    }

    #[test]
    fn posts_need_a_token_or_loopback() {
        assert_eq!(code(None, "127.0.0.1:5000", None), "ok");
        assert_eq!(code(None, "[::1]:5000", None), "ok");
        assert_eq!(code(None, "10.1.2.3:5000", None), "403 Forbidden");
        let t = Some("s3cret");
        assert_eq!(code(t, "127.0.0.1:5000", None), "401 Unauthorized");
        assert_eq!(
            code(t, "10.1.2.3:5000", Some("Bearer s3cre")),
            "401 Unauthorized"
        );
        assert_eq!(code(t, "10.1.2.3:5000", Some("Bearer s3cret")), "ok");
        // the scheme is case-insensitive (RFC 7235)
        assert_eq!(code(t, "10.1.2.3:5000", Some("bearer s3cret")), "ok");
        assert_eq!(code(t, "10.1.2.3:5000", Some("BEARER  s3cret")), "ok");
        assert_eq!(
            code(t, "10.1.2.3:5000", Some("Basic s3cret")),
            "401 Unauthorized"
        );
        assert!(token_matches("abc", "abc") && !token_matches("abd", "abc"));
    }
}

//! The one HTTP client of Sluice, for its admin API: `sluice switchover`, `sluice explain`,
//! `sluice check --diff-with` and the tests use it (hyper's HTTP/1.1 client: any framing the
//! server picks, chunked included, and a time limit on the whole exchange).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("HTTP exchange with {addr}: {source}")]
    Http { addr: String, source: hyper::Error },
    #[error("invalid request to {addr}: {source}")]
    Request {
        addr: String,
        source: hyper::http::Error,
    },
    #[error("{addr} did not answer within {limit:?}")]
    Timeout { addr: String, limit: Duration },
}

/// One request to `addr` (`host:port`, an `http://` prefix allowed); `token` becomes a bearer
/// `Authorization`. Returns the status code and the body as text.
pub async fn request(
    addr: &str,
    (method, path, body): (&str, &str, &str),
    token: Option<&str>,
    limit: Duration,
) -> Result<(u16, String), ClientError> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    let exchange = exchange(addr, (method, path, body), token);
    crate::timer::timeout(limit, exchange)
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.to_string(),
            limit,
        })?
}

async fn exchange(
    addr: &str,
    (method, path, body): (&str, &str, &str),
    token: Option<&str>,
) -> Result<(u16, String), ClientError> {
    let http = |source| ClientError::Http {
        addr: addr.to_string(),
        source,
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .map_err(|source| ClientError::Request {
            addr: addr.to_string(),
            source,
        })?;
    let reply = sender.send_request(req).await.map_err(http)?;
    let status = reply.status().as_u16();
    let bytes = reply.into_body().collect().await.map_err(http)?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

//! A backend connection's two halves, plain TCP or TLS. TLS halves share the stream behind a
//! mutex (held only inside one poll) so that the socket's state can still be looked at without
//! reading (`is_quiet`, `closed_by_peer`).

use crate::protocol::sock::TcpIn;
use parking_lot::Mutex;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type Shared = Arc<Mutex<TlsStream<TcpStream>>>;

pub enum BackendRead {
    Tcp(TcpIn),
    Tls(Shared),
}

pub enum BackendWrite {
    Tcp(OwnedWriteHalf),
    Tls(Shared),
}

/// Splits a stream into halves.
pub fn split_tcp(s: TcpStream) -> (BackendRead, BackendWrite) {
    let (r, w) = s.into_split();
    (BackendRead::Tcp(TcpIn::new(r)), BackendWrite::Tcp(w))
}

pub fn split_tls(s: TlsStream<TcpStream>) -> (BackendRead, BackendWrite) {
    let s = Arc::new(Mutex::new(s));
    (BackendRead::Tls(s.clone()), BackendWrite::Tls(s))
}

impl BackendRead {
    /// Whether the socket is open with nothing to read (an idle connection's expected state;
    /// bytes or end of stream mean the server closed it or sent something unexpected).
    pub fn is_quiet(&self) -> bool {
        self.with_tcp(|tcp| {
            let mut b = [0u8; 1];
            let mut rb = ReadBuf::new(&mut b);
            let mut cx = Context::from_waker(std::task::Waker::noop());
            tcp.poll_peek(&mut cx, &mut rb).is_pending()
        })
    }

    /// Runs `f` on the TCP socket under the stream (TLS: under its lock).
    fn with_tcp<T>(&self, f: impl FnOnce(&tokio::net::TcpStream) -> T) -> T {
        match self {
            BackendRead::Tcp(r) => f(r.as_ref()),
            BackendRead::Tls(s) => f(s.lock().get_ref().0),
        }
    }

    /// After the reply wait failed with `kind`: whether the server cannot have read the
    /// command (see `unacked`).
    pub fn command_never_read(&self, kind: io::ErrorKind) -> bool {
        self.with_tcp(|tcp| super::unacked::never_read(kind, tcp))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, BackendRead::Tls(_))
    }

    /// Before a command is sent on a connection that should be silent: whether the server
    /// closed it (or sent something unasked). No system call unless the socket was reported
    /// readable since the last read.
    pub fn closed_by_peer(&self) -> bool {
        self.with_tcp(|tcp| {
            // no readiness recorded since the last read: quiet (the usual case)
            if !crate::protocol::sock::readiness_recorded(tcp) {
                return false;
            }
            // `try_io` registers no waker; a peek that finds nothing clears the readiness
            let peek = || crate::protocol::sock::peek_now(tcp.as_raw_fd());
            let peeked = tcp.try_io(tokio::io::Interest::READABLE, peek);
            !matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        })
    }
}

impl AsyncRead for BackendRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendRead::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            BackendRead::Tls(s) => Pin::new(&mut *s.lock()).poll_read(cx, buf),
        }
    }
}

impl BackendWrite {
    /// Writes `bytes` if the socket takes them at once, without waiting (best effort: a
    /// connection being dropped says goodbye this way).
    pub fn send_now(&mut self, bytes: &[u8]) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut w = Pin::new(self);
        if let Poll::Ready(Ok(n)) = w.as_mut().poll_write(&mut cx, bytes) {
            if n == bytes.len() {
                let _ = w.poll_flush(&mut cx);
            }
        }
    }
}

impl AsyncWrite for BackendWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendWrite::Tcp(w) => crate::protocol::sock::poll_send(w, cx, buf),
            BackendWrite::Tls(s) => Pin::new(&mut *s.lock()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendWrite::Tcp(w) => Pin::new(w).poll_flush(cx),
            BackendWrite::Tls(s) => Pin::new(&mut *s.lock()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendWrite::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            BackendWrite::Tls(s) => Pin::new(&mut *s.lock()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendWrite::Tcp(w) => crate::protocol::sock::poll_send_vectored(w, cx, bufs),
            BackendWrite::Tls(s) => Pin::new(&mut *s.lock()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            BackendWrite::Tcp(w) => w.is_write_vectored(),
            BackendWrite::Tls(_) => true,
        }
    }
}

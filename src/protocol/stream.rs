//! The client connection's two halves, plain TCP or TLS. Plain TCP keeps the readiness
//! tricks of the session loop (idle wait without a buffer, disconnect watch by peeking); TLS
//! halves support reading and writing only.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub enum ClientRead {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
}

pub enum ClientWrite {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

impl ClientRead {
    /// Waits until the socket is readable (TLS: returns at once; the read itself waits).
    /// Polls the read readiness directly: the session is the only one waiting on it.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            ClientRead::Tcp(r) => std::future::poll_fn(|cx| r.as_ref().poll_read_ready(cx)).await,
            ClientRead::Tls(_) => Ok(()),
        }
    }

    /// Clears a readiness left over from reads that ended exactly at the data's end (the
    /// login reads exact lengths), so that the next `readable` waits for new bytes. One
    /// `peek` system call; for the start of a session, not per command.
    pub fn clear_stale_readiness(&self) {
        if let ClientRead::Tcp(r) = self {
            let mut b = [0u8; 1];
            let mut rb = ReadBuf::new(&mut b);
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let _ = r.as_ref().poll_peek(&mut cx, &mut rb);
        }
    }

    /// The TCP socket, when the connection is not encrypted.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            ClientRead::Tcp(r) => Some(r.as_ref()),
            ClientRead::Tls(_) => None,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, ClientRead::Tls(_))
    }
}

impl AsyncRead for ClientRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientRead::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ClientRead::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientWrite::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            ClientWrite::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWrite::Tcp(w) => Pin::new(w).poll_flush(cx),
            ClientWrite::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWrite::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            ClientWrite::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientWrite::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            ClientWrite::Tls(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientWrite::Tcp(w) => w.is_write_vectored(),
            ClientWrite::Tls(w) => w.is_write_vectored(),
        }
    }
}

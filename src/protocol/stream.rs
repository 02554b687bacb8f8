//! The client connection's two halves, plain TCP or TLS. Plain TCP keeps the readiness
//! tricks of the session loop (idle wait without a buffer, disconnect watch by peeking); a TLS
//! client's socket is watched for a disconnect through a second registration of it (a
//! duplicate descriptor that is never read), since the TLS layer owns the socket.

use super::compress::{FrameSeq, ZRead, ZWrite};
use super::sock::TcpIn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub enum ClientRead {
    /// With whether the session task's waker stands on the socket's read readiness since the
    /// disconnect watch left it there (`poll_closed`), no read having taken it since: the
    /// wait for the next command may rely on it (`watch_armed`).
    Tcp(TcpIn, AtomicBool),
    /// With the disconnect watch, when the descriptor could be duplicated.
    Tls(ReadHalf<TlsStream<TcpStream>>, Option<Watch>),
    /// The compressed protocol over one of the others.
    Zlib(Box<ZRead<ClientRead>>),
    /// Only while the stream is being wrapped (`compress`).
    Taken,
}

/// A second registration of an encrypted client's socket, only to notice that the client
/// closed it while a statement runs.
pub struct Watch(AsyncFd<OwnedFd>);

impl Watch {
    /// Registers a duplicate of `tcp`'s descriptor with the current runtime.
    pub fn new(tcp: &TcpStream) -> Option<Watch> {
        let fd = tcp.as_fd().try_clone_to_owned().ok()?;
        // SAFETY: an OwnedFd stays open, and returns the same descriptor, until dropped
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .ok()
            .map(Watch)
    }

    /// Resolves when the client has closed the connection; stays pending while bytes wait
    /// (TLS records: a next command or an alert, not a disconnect that can be told).
    async fn closed(&self) {
        loop {
            let Ok(mut ready) = self.0.readable().await else {
                return;
            };
            match super::sock::peek_now(self.0.get_ref().as_raw_fd()) {
                Ok(0) => return,
                Ok(_) => std::future::pending::<()>().await,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

pub enum ClientWrite {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
    Zlib(Box<ZWrite<ClientWrite>>),
    Taken,
}

/// Switches a client's halves to the compressed protocol (after the login's OK).
pub fn compress(r: &mut ClientRead, w: &mut ClientWrite) {
    let seq = FrameSeq::default();
    let inner = std::mem::replace(r, ClientRead::Taken);
    *r = ClientRead::Zlib(Box::new(ZRead::new(inner, seq.clone())));
    let inner = std::mem::replace(w, ClientWrite::Taken);
    *w = ClientWrite::Zlib(Box::new(ZWrite::new(inner, seq)));
}

fn taken() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

impl ClientRead {
    /// The stream under the compressed protocol, if any.
    fn base(&self) -> &ClientRead {
        match self {
            ClientRead::Zlib(z) => &z.inner,
            other => other,
        }
    }

    /// Resolves when the client has closed the connection (end of stream, or an error);
    /// stays pending while bytes are waiting (pipelined commands are not a disconnect) or
    /// when that cannot be watched. Costs no system call while the client is quiet: its
    /// socket's readiness was cleared by the read of the command.
    pub async fn closed(&self) {
        match self.base() {
            ClientRead::Tcp(..) => {
                let mut watching = true;
                std::future::poll_fn(|cx| self.poll_closed(cx, &mut watching)).await
            }
            ClientRead::Tls(_, Some(watch)) => watch.closed().await,
            _ => std::future::pending::<()>().await,
        }
    }

    /// `closed` as a poll for a TCP client (any other stays pending): `Ready` once the client
    /// has closed; `watching` turns false for good when bytes are waiting instead (pipelined
    /// commands are not a disconnect).
    pub fn poll_closed(&self, cx: &mut Context<'_>, watching: &mut bool) -> Poll<()> {
        let ClientRead::Tcp(r, armed) = self.base() else {
            return Poll::Pending;
        };
        if !*watching {
            return Poll::Pending;
        }
        let mut b = [0u8; 1];
        let mut rb = ReadBuf::new(&mut b);
        match r.as_ref().poll_peek(cx, &mut rb) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(()),
            Poll::Ready(Ok(_)) => {
                *watching = false;
                Poll::Pending
            }
            Poll::Pending => {
                // the waker now stands on the socket's read readiness
                armed.store(true, Relaxed);
                Poll::Pending
            }
        }
    }

    /// Whether the wait for the client's next bytes may rely on the waker the disconnect
    /// watch left on the socket instead of registering one again (tokio's registration takes
    /// a lock, ~200 instructions per command): a plain (uncompressed) TCP client, the watch
    /// pending since its last read, and no readiness recorded since (an event that took the
    /// waker records one first, and only reads, which disarm, clear it). Disarms.
    pub fn watch_armed(&self) -> bool {
        let ClientRead::Tcp(r, armed) = self else {
            return false;
        };
        armed.swap(false, Relaxed) && !super::sock::readiness_recorded(r.as_ref())
    }

    /// Whether `poll_closed` watches this client (plain TCP, compressed or not).
    pub fn is_tcp(&self) -> bool {
        matches!(self.base(), ClientRead::Tcp(..))
    }

    /// Clears a readiness left over from reads that ended exactly at the data's end (the
    /// login reads exact lengths), so that the next `readable` waits for new bytes. One
    /// `peek` system call; for the start of a session, not per command.
    pub fn clear_stale_readiness(&self) {
        if let ClientRead::Tcp(r, _) = self.base() {
            let mut b = [0u8; 1];
            let mut rb = ReadBuf::new(&mut b);
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let _ = r.as_ref().poll_peek(&mut cx, &mut rb);
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.base(), ClientRead::Tls(..))
    }
}

impl AsyncRead for ClientRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientRead::Tcp(r, armed) => {
                // a read may take the waker the watch left (see `watch_armed`)
                armed.store(false, Relaxed);
                Pin::new(r).poll_read(cx, buf)
            }
            ClientRead::Tls(r, _) => Pin::new(r).poll_read(cx, buf),
            ClientRead::Zlib(z) => Pin::new(&mut **z).poll_read(cx, buf),
            ClientRead::Taken => Poll::Ready(Err(taken())),
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
            ClientWrite::Tcp(w) => super::sock::poll_send(w, cx, buf),
            ClientWrite::Tls(w) => Pin::new(w).poll_write(cx, buf),
            ClientWrite::Zlib(z) => Pin::new(&mut **z).poll_write(cx, buf),
            ClientWrite::Taken => Poll::Ready(Err(taken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWrite::Tcp(w) => Pin::new(w).poll_flush(cx),
            ClientWrite::Tls(w) => Pin::new(w).poll_flush(cx),
            ClientWrite::Zlib(z) => Pin::new(&mut **z).poll_flush(cx),
            ClientWrite::Taken => Poll::Ready(Err(taken())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWrite::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            ClientWrite::Tls(w) => Pin::new(w).poll_shutdown(cx),
            ClientWrite::Zlib(z) => Pin::new(&mut **z).poll_shutdown(cx),
            ClientWrite::Taken => Poll::Ready(Err(taken())),
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
            other => {
                let buf = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &**b);
                Pin::new(other).poll_write(cx, buf)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientWrite::Tcp(w) => w.is_write_vectored(),
            ClientWrite::Tls(w) => w.is_write_vectored(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn pair() -> (ClientRead, OwnedWriteHalf, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        let (r, w) = s.into_split();
        (
            ClientRead::Tcp(TcpIn::new(r), AtomicBool::new(false)),
            w,
            peer,
        )
    }

    /// The wait for a next command relies on the watch's waker only while it stands: armed
    /// by a pending watch; not after bytes arrived (the event took the waker), not after a
    /// read, and once only.
    #[tokio::test]
    async fn the_watch_arms_the_next_wait_only_while_its_waker_stands() {
        let (client, _w, mut peer) = pair().await;
        let watch = |client: &ClientRead| {
            let mut watching = true;
            let mut cx = Context::from_waker(std::task::Waker::noop());
            client.poll_closed(&mut cx, &mut watching).is_pending() && watching
        };
        assert!(!client.watch_armed(), "never watched");
        assert!(watch(&client));
        assert!(client.watch_armed(), "a pending watch");
        assert!(!client.watch_armed(), "once");
        assert!(watch(&client));
        peer.write_all(b"x").await.unwrap();
        // the event reaches the socket's readiness once the runtime turns
        crate::timer::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!client.watch_armed(), "bytes arrived since the watch");
        let mut client = client;
        let mut b = [0u8; 4];
        let mut rb = ReadBuf::new(&mut b);
        std::future::poll_fn(|cx| Pin::new(&mut client).poll_read(cx, &mut rb))
            .await
            .unwrap();
        assert_eq!(rb.filled(), b"x");
        assert!(watch(&client));
        let mut rb = ReadBuf::new(&mut b);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut client)
            .poll_read(&mut cx, &mut rb)
            .is_pending());
        assert!(!client.watch_armed(), "a read since the watch");
    }
}

//! Direct socket system calls on tokio's TCP sockets: the writes of the statement path and
//! the disconnect peeks.
//!
//! glibc's `recv` and `send` are thread cancellation points: in a multi-threaded process each
//! call enables and disables asynchronous cancellation around the system call (about 90
//! instructions). Sluice never cancels threads, so these go through `syscall(2)`. A read
//! with readiness recorded goes straight to the socket too (`TcpIn`); only a read that
//! must wait goes through tokio's `poll_read`, which registers the waker. (An earlier
//! version asked `poll_read_ready` first, which registers on every read, and cost more than
//! the wrapper it saved: +47 instructions per text point select.)

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A system call's return as a count or the error it set.
fn counted(n: libc::c_long) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `recvfrom(fd, buf, len, flags)` without glibc's cancellation wrapper.
fn recv_raw(fd: i32, buf: *mut u8, len: usize, flags: i32) -> io::Result<usize> {
    // SAFETY: the caller passes a writable region of `len` bytes and a descriptor it owns;
    // the two null pointers are recvfrom's optional source address
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            buf,
            len,
            flags,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    counted(n)
}

/// `sendto(fd, buf, len, flags)` to the connected peer, without the cancellation wrapper.
fn send_raw(fd: i32, buf: &[u8], flags: i32) -> io::Result<usize> {
    // SAFETY: sends from a live slice on a descriptor the caller owns; no address (connected)
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            buf.as_ptr(),
            buf.len(),
            flags,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    counted(n)
}

/// `sendmsg(fd, bufs, flags)` to the connected peer (one vectored write), without the
/// cancellation wrapper.
fn send_vectored_raw(fd: i32, bufs: &[io::IoSlice<'_>], flags: i32) -> io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid (no address, no control data)
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on Unix; sendmsg does not write to it
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(1024) as _;
    // SAFETY: the iovecs point into live slices for the call's duration
    counted(unsafe { libc::syscall(libc::SYS_sendmsg, fd, &msg as *const libc::msghdr, flags) })
}

/// Peeks at one byte of socket `fd` without waiting: `Ok(0)` at end of stream.
pub(crate) fn peek_now(fd: i32) -> io::Result<usize> {
    let mut b = 0u8;
    recv_raw(fd, &mut b, 1, libc::MSG_PEEK | libc::MSG_DONTWAIT)
}

/// Not blocking, no SIGPIPE on a closed peer (an error instead).
const SEND_FLAGS: i32 = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;

/// Writes to TCP half `w` what its socket takes now with one direct system call, falling
/// back to tokio's `poll_write` (which waits for the socket, registering interest) only when
/// it takes nothing. The usual case, a reply into a socket with room, then skips the event
/// loop's readiness bookkeeping (about 250 instructions per write); a readiness tokio still
/// believes in after a direct write is harmless for writing: its own attempt finds out.
pub(crate) fn poll_send(
    w: &mut OwnedWriteHalf,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    let fd = AsRef::<TcpStream>::as_ref(w).as_raw_fd();
    let sent = send_raw(fd, buf, SEND_FLAGS);
    sent_or_wait(sent, || Pin::new(w).poll_write(cx, buf))
}

/// `poll_send` for several slices in one system call (a packet's header and payload without
/// copying them together).
pub(crate) fn poll_send_vectored(
    w: &mut OwnedWriteHalf,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let fd = AsRef::<TcpStream>::as_ref(w).as_raw_fd();
    let sent = send_vectored_raw(fd, bufs, SEND_FLAGS);
    sent_or_wait(sent, || Pin::new(w).poll_write_vectored(cx, bufs))
}

/// A direct send's result, or, when the socket took nothing now, tokio's own write (`wait`),
/// which waits for room with the task's waker registered.
fn sent_or_wait(
    sent: io::Result<usize>,
    wait: impl FnOnce() -> Poll<io::Result<usize>>,
) -> Poll<io::Result<usize>> {
    match sent {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            wait()
        }
        r => Poll::Ready(r),
    }
}

/// A TCP read half whose reads go straight to the socket when they can: when tokio has
/// read readiness recorded, a read is one direct system call (no waker registered: bytes
/// were there); a short read means the socket is drained, and the readiness is cleared as
/// tokio's own read would, so that the next wait registers at once instead of trying the
/// socket first. Only when nothing is recorded, or the socket had nothing after all,
/// tokio's `poll_read` waits with the task's waker (and takes from tokio's cooperative
/// budget).
///
/// With whether the last read filled the buffer: such reads (a long reply streaming in)
/// take from the budget too, so that a socket that always has bytes still lets the
/// worker's other sessions run; a read after a wait does not need to (the wait yielded),
/// which saves two thread-local lookups on every request-reply turn.
pub struct TcpIn {
    half: OwnedReadHalf,
    streak: bool,
}

impl TcpIn {
    pub fn new(half: OwnedReadHalf) -> TcpIn {
        TcpIn {
            half,
            streak: false,
        }
    }

    pub fn into_inner(self) -> OwnedReadHalf {
        self.half
    }
}

impl AsRef<TcpStream> for TcpIn {
    fn as_ref(&self) -> &TcpStream {
        self.half.as_ref()
    }
}

impl AsyncRead for TcpIn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let TcpIn { half, streak } = self.get_mut();
        if *streak {
            std::task::ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
        }
        let tcp: &TcpStream = half.as_ref();
        // SAFETY: recv writes only initialised bytes, and `assume_init` covers no more than
        // it reports
        let room = unsafe { buf.unfilled_mut() };
        let (at, len) = (room.as_mut_ptr().cast::<u8>(), room.len());
        // A short read means the socket is drained: the closure then reports `WouldBlock`
        // so that `try_io` clears the readiness with the tick it read before the call, as
        // tokio's own read does. (A tick read after the call could be that of bytes that
        // arrived meanwhile, on another worker's driver, and clearing it would lose them.)
        let mut read = None;
        let got = tcp.try_io(Interest::READABLE, || {
            let n = recv_raw(tcp.as_raw_fd(), at, len, libc::MSG_DONTWAIT)?;
            read = Some(n);
            if n > 0 && n < len {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(n)
            }
        });
        // a short read's bytes, whatever `try_io` reported
        match read.map_or(got, Ok) {
            Ok(n) => {
                *streak = n == len;
                // SAFETY: the system call wrote `n` bytes into the unfilled part
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                *streak = false;
                Pin::new(half).poll_read(cx, buf)
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// Whether tokio has read readiness recorded for `tcp` since its last read took it: a look
/// that neither registers a waker nor clears the readiness (`try_io`'s closure runs only
/// when some is recorded, and does not fail).
pub(crate) fn readiness_recorded(tcp: &TcpStream) -> bool {
    tcp.try_io(tokio::io::Interest::READABLE, || Ok(())).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_go_straight_to_the_socket() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        let (_r, mut w) = c.into_split();
        let n = std::future::poll_fn(|cx| poll_send(&mut w, cx, b"hello"))
            .await
            .unwrap();
        assert_eq!(n, 5);
        let mut got = [0u8; 5];
        tokio::io::AsyncReadExt::read_exact(&mut s, &mut got)
            .await
            .unwrap();
        assert_eq!(&got, b"hello");
        let parts = [
            io::IoSlice::new(b"he"),
            io::IoSlice::new(b""),
            io::IoSlice::new(b"llo"),
        ];
        let n = std::future::poll_fn(|cx| poll_send_vectored(&mut w, cx, &parts))
            .await
            .unwrap();
        assert_eq!(n, 5);
        tokio::io::AsyncReadExt::read_exact(&mut s, &mut got)
            .await
            .unwrap();
        assert_eq!(&got, b"hello", "the slices in order");
        assert_eq!(
            peek_now(s.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // a closed peer is an error, not a SIGPIPE (the flags reach the system call)
        drop(s);
        let mut failed = None;
        for _ in 0..100 {
            match std::future::poll_fn(|cx| poll_send(&mut w, cx, b"more")).await {
                Ok(_) => crate::timer::sleep(std::time::Duration::from_millis(5)).await,
                Err(e) => {
                    failed = Some(e.kind());
                    break;
                }
            }
        }
        assert!(
            matches!(
                failed,
                Some(io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
            ),
            "{failed:?}"
        );
    }

    /// A reply that keeps the socket readable does not keep the worker: full reads take from
    /// tokio's budget, so another task on the same thread runs before the stream ends.
    #[tokio::test(flavor = "current_thread")]
    async fn a_long_stream_of_direct_reads_lets_other_tasks_run() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        const TOTAL: usize = 64 * 1024;
        tokio::io::AsyncWriteExt::write_all(&mut s, &vec![7u8; TOTAL])
            .await
            .unwrap();
        let (r, _w) = c.into_split();
        let mut r = TcpIn::new(r);
        // the bytes are all in the socket before the reader starts
        crate::timer::sleep(std::time::Duration::from_millis(50)).await;
        let other_ran = std::sync::Arc::new(AtomicBool::new(false));
        let flag = other_ran.clone();
        tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
        let (mut got, mut ran_midway) = (0, false);
        let mut b = [0u8; 64];
        while got < TOTAL {
            let mut rb = ReadBuf::new(&mut b);
            std::future::poll_fn(|cx| Pin::new(&mut r).poll_read(cx, &mut rb))
                .await
                .unwrap();
            assert!(!rb.filled().is_empty(), "end of stream after {got}");
            got += rb.filled().len();
            ran_midway |= got < TOTAL && other_ran.load(Ordering::SeqCst);
        }
        assert!(ran_midway, "the other task waited for the whole stream");
    }

    /// Bytes that arrive just after a short read, on a socket whose readiness another
    /// thread's driver records (a pooled backend connection registered by another worker),
    /// are not lost: the drained socket's readiness is cleared only if no event came since
    /// the read began. Writes come in pairs with a varying gap, the second often landing
    /// while the reader is inside its read of the first; a lost readiness leaves the reader
    /// waiting for bytes that are already in the socket.
    #[test]
    fn bytes_arriving_during_a_short_read_are_not_lost() {
        use std::io::Write;
        use std::sync::mpsc;
        let driver = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let (reader, mut peer) = driver.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            (c, s.into_std().unwrap())
        });
        peer.set_nonblocking(false).unwrap();
        peer.set_nodelay(true).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // the socket's events are turned by this thread's driver, not the reader's
        let turning = std::thread::spawn(move || driver.block_on(async { stopped.await.ok() }));
        let (ack, acked) = mpsc::channel::<()>();
        const ROUNDS: usize = 20_000;
        let writer = std::thread::spawn(move || {
            for round in 0..ROUNDS {
                peer.write_all(b"first").unwrap();
                for _ in 0..round % 64 {
                    std::hint::spin_loop();
                }
                peer.write_all(b"second").unwrap();
                if acked.recv().is_err() {
                    return;
                }
            }
        });
        let reading = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let lost = reading.block_on(async move {
            let (r, _w) = reader.into_split();
            let mut r = TcpIn::new(r);
            let mut b = [0u8; 64];
            for round in 0..ROUNDS {
                let mut got = 0;
                while got < 11 {
                    let mut rb = ReadBuf::new(&mut b);
                    let read = std::future::poll_fn(|cx| Pin::new(&mut r).poll_read(cx, &mut rb));
                    match crate::timer::timeout(std::time::Duration::from_secs(2), read).await {
                        Ok(res) => got += res.map(|()| rb.filled().len()).unwrap(),
                        Err(_) => return Some(round),
                    }
                }
                ack.send(()).unwrap();
            }
            None
        });
        let _ = stop.send(());
        turning.join().unwrap();
        writer.join().unwrap();
        assert_eq!(lost, None, "a read waited for bytes already in the socket");
    }
}

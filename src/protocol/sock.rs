//! Direct socket system calls on tokio's TCP sockets: the writes of the statement path and
//! the disconnect peeks.
//!
//! glibc's `recv` and `send` are thread cancellation points: in a multi-threaded process each
//! call enables and disables asynchronous cancellation around the system call (about 90
//! instructions). Sluice never cancels threads, so these go through `syscall(2)`. Reads stay
//! tokio's own `poll_read`: a version of it built on `try_io` and `poll_read_ready` (to use
//! the direct call) cost more in tokio's readiness bookkeeping than the wrapper it saved
//! (callgrind, text point select: +47 instructions per statement).

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;
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
}

//! Whether the server can have read a command, judged after the connection failed without a
//! reply. Every segment a server's kernel sends after accepting our bytes acknowledges them,
//! its FIN included, and a socket closed before they arrived answers them with a reset,
//! which acknowledges nothing. So when the server had closed the connection (its FIN seen
//! first: the read ends with end of stream) and our bytes are still unacknowledged, the
//! server process never read the command and it cannot have run: it may be sent again, also
//! when it writes. A connection the proxy took back just before noticing that the server had
//! died (its close not yet seen by the event loop) is the usual case.
//!
//! A reset without a FIN before it proves nothing: a peer that read the command and then
//! closed abortively (SO_LINGER 0, a middlebox cutting the connection) resets before its
//! delayed acknowledgement went out, and Linux ignores the acknowledgement a reset carries.

use std::os::fd::AsRawFd;

/// Whether a command whose reply wait failed with `kind` on TCP socket `s` cannot have been
/// read by the server: the server had closed the connection (end of stream; a reset after
/// our bytes reached a socket in CLOSE_WAIT reads as `BrokenPipe`) and some of our bytes
/// were never acknowledged. `false` when unsure (then the command may have run).
pub fn never_read(kind: std::io::ErrorKind, s: &impl AsRawFd) -> bool {
    use std::io::ErrorKind::{BrokenPipe, UnexpectedEof};
    matches!(kind, UnexpectedEof | BrokenPipe) && has_unacked(s)
}

/// Whether some bytes written on TCP socket `s` were never acknowledged by the peer. `false`
/// when the kernel cannot tell.
fn has_unacked(s: &impl AsRawFd) -> bool {
    let Some(info) = tcp_info(s.as_raw_fd()) else {
        return false;
    };
    let sent_once = info.tcpi_bytes_sent.saturating_sub(info.tcpi_bytes_retrans);
    info.tcpi_notsent_bytes > 0 || sent_once > info.tcpi_bytes_acked
}

/// The socket's `TCP_INFO`, if the kernel fills in the byte counters (Linux 4.19+).
fn tcp_info(fd: i32) -> Option<libc::tcp_info> {
    // SAFETY: an all-zero tcp_info is a valid value (plain integers)
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes; the kernel writes at most `len`
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_retrans) + 8;
    (rc == 0 && len as usize >= needed).then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// A connected pair: (client side, server side).
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    /// Writes a command, then reads until the connection fails or ends; how the read ended.
    fn command_fails(c: &mut TcpStream) -> std::io::ErrorKind {
        let _ = c.write_all(b"\x05\0\0\0\x03SELECT");
        let mut b = [0u8; 16];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match c.read(&mut b) {
            Ok(0) => std::io::ErrorKind::UnexpectedEof,
            Ok(n) => panic!("no reply expected, got {n} bytes"),
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn a_command_sent_to_a_closed_server_is_unacknowledged() {
        let (mut c, s) = pair();
        drop(s); // the server died while the connection was idle
        std::thread::sleep(Duration::from_millis(20));
        let kind = command_fails(&mut c);
        assert!(has_unacked(&c));
        assert!(never_read(kind, &c), "{kind:?}");
    }

    #[test]
    fn a_command_the_server_read_is_acknowledged() {
        let (mut c, mut s) = pair();
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 11];
            s.read_exact(&mut b).unwrap();
            drop(s); // read it, then died
        });
        let kind = command_fails(&mut c);
        t.join().unwrap();
        assert!(!has_unacked(&c));
        assert!(!never_read(kind, &c));
    }

    #[test]
    fn a_command_the_server_read_before_a_reset_may_have_run() {
        let (mut c, mut s) = pair();
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 11];
            s.read_exact(&mut b).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: plain setsockopt on an open socket
            unsafe {
                let l = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&l as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            drop(s); // read it, then reset (an abortive close, a middlebox cut)
        });
        let kind = command_fails(&mut c);
        t.join().unwrap();
        // the reset may come before the delayed acknowledgement: only the kind tells
        assert_eq!(kind, std::io::ErrorKind::ConnectionReset);
        assert!(!never_read(kind, &c));
    }

    #[test]
    fn a_healthy_connection_has_nothing_unacknowledged() {
        let (mut c, mut s) = pair();
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        s.write_all(b"pong").unwrap();
        c.read_exact(&mut b).unwrap();
        assert!(!has_unacked(&c));
    }
}

//! Whether the server can have read a command, judged after the connection failed without a
//! reply: every segment a server's kernel sends after accepting our bytes acknowledges them
//! (its FIN included), and a socket closed before they arrived answers them with a reset,
//! which acknowledges nothing. So bytes still unacknowledged when the connection broke never
//! reached the server process, and the command cannot have run: it may be sent again, also
//! when it writes. A connection the proxy took back just before noticing that the server had
//! died (its close not yet seen by the event loop) is the usual case.

use std::os::fd::AsRawFd;

/// Whether some bytes written on TCP socket `s` were never acknowledged by the peer. `false`
/// when the kernel cannot tell (then the command may have run).
pub fn has_unacked(s: &impl AsRawFd) -> bool {
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

    /// Writes a command, then reads until the connection fails or ends.
    fn command_fails(c: &mut TcpStream) {
        let _ = c.write_all(b"\x05\0\0\0\x03SELECT");
        let mut b = [0u8; 16];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(
            matches!(c.read(&mut b), Ok(0) | Err(_)),
            "no reply expected"
        );
    }

    #[test]
    fn a_command_sent_to_a_closed_server_is_unacknowledged() {
        let (mut c, s) = pair();
        drop(s); // the server died while the connection was idle
        std::thread::sleep(Duration::from_millis(20));
        command_fails(&mut c);
        assert!(has_unacked(&c));
    }

    #[test]
    fn a_command_the_server_read_is_acknowledged() {
        let (mut c, mut s) = pair();
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 11];
            s.read_exact(&mut b).unwrap();
            drop(s); // read it, then died
        });
        command_fails(&mut c);
        t.join().unwrap();
        assert!(!has_unacked(&c));
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

//! Spawning server processes so that they die with the process that started them.
//!
//! Children get PR_SET_PDEATHSIG(SIGKILL). That signal fires when the *thread* that forked
//! exits, so every spawn goes through one long-lived spawner thread.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Request = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static TX: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("sluice-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the process spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd`; the child is killed if this process dies.
pub fn spawn(cmd: Command) -> io::Result<Child> {
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| io::Error::other("spawner lock poisoned"))?
        .send((cmd, tx))
        .map_err(|_| io::Error::other("spawner thread gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread gone"))?
}

pub fn signal(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: plain kill(2) on a pid we own.
    if unsafe { libc::kill(pid as i32, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn is_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Sandbox ports are taken from below Linux's default ephemeral range (32768-60999): a port
/// the kernel hands out for outgoing connections (every client of every test) could be taken
/// between our check and the server's bind, which is how a parallel test once lost its
/// replica ("Address already in use").
const PORTS: std::ops::Range<u32> = 12000..32000;

/// A free TCP port on loopback (bound then released), never the same twice in this process;
/// processes start at different places in the range.
pub fn free_port() -> io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = PORTS.end - PORTS.start;
    static SEED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        std::process::id().wrapping_mul(7919) ^ nanos
    });
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (PORTS.start + seed.wrapping_add(n) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

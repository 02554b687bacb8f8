//! The binary's `epoll_wait`, in place of glibc's (part of the `sluice` executable only, not
//! of the library: `main.rs` declares it).
//!
//! glibc's `epoll_wait` is a thread cancellation point: in a multi-threaded process each call
//! enables and disables asynchronous cancellation around the system call (~15 instructions
//! each way, beside the wrapper's own ~25), and tokio's event loop (through mio) calls it
//! twice per statement (the client's command, the backend's reply). Sluice never cancels threads,
//! so the executable defines the symbol itself, as `epoll_pwait` with no signal mask (the
//! same system call's documented equivalent) through `syscall(2)`, like the statement path's
//! socket calls (`protocol::sock`). The executable's own definition is the one its calls
//! bind to (tokio's included; whole-program LTO inlines it); errors come back the same
//! way (-1 with `errno` set, `EINTR` included, which mio retries).

/// `epoll_wait(2)`: waits for events on `epfd`.
///
/// # Safety
/// The caller's contract is `epoll_wait`'s: `events` points to room for `maxevents` entries.
#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    epfd: libc::c_int,
    events: *mut libc::epoll_event,
    maxevents: libc::c_int,
    timeout: libc::c_int,
) -> libc::c_int {
    // SAFETY: epoll_pwait with a null signal mask is epoll_wait; the caller vouches for
    // `events`; the last argument is the kernel's signal set size, unused with no mask
    let n = unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait,
            epfd,
            events,
            maxevents,
            timeout,
            std::ptr::null::<libc::sigset_t>(),
            8usize,
        )
    };
    n as libc::c_int
}

#[cfg(test)]
mod tests {
    use super::epoll_wait;

    #[test]
    fn waits_reports_and_fails_like_glibc() {
        // SAFETY: plain descriptor calls on descriptors this test creates and closes
        unsafe {
            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            let ev = libc::eventfd(0, libc::EFD_NONBLOCK);
            assert!(ep >= 0 && ev >= 0);
            let mut reg = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 7,
            };
            assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, ev, &mut reg), 0);
            let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
            // nothing ready: the timeout (0) returns no events
            assert_eq!(epoll_wait(ep, out.as_mut_ptr(), 4, 0), 0);
            assert_eq!(libc::eventfd_write(ev, 1), 0);
            // ready: one event, with the registration's data
            assert_eq!(epoll_wait(ep, out.as_mut_ptr(), 4, 1000), 1);
            let data = out[0].u64;
            assert_eq!(data, 7);
            // a bad descriptor: -1 and errno, as glibc's
            assert_eq!(epoll_wait(-1, out.as_mut_ptr(), 4, 0), -1);
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EBADF)
            );
            libc::close(ev);
            libc::close(ep);
        }
    }
}

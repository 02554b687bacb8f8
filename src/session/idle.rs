//! Waiting for a client's next command with one timer per session, re-armed only when it
//! fires (no timer operation per command): it releases the session's buffers once the
//! client has been quiet for `KEEP_BUFFERS` (a busy client keeps them, an idle one holds
//! none) and ends the session after `listen.idle_timeout`.

use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;
use tokio::time::Sleep;

/// How long a quiet client keeps its read/write buffers.
pub(super) const KEEP_BUFFERS: Duration = Duration::from_secs(1);

pub(super) struct Idle {
    pub(super) timer: Pin<Box<Sleep>>,
    /// When the last command arrived (`timer::precise_ns`; also its statement's start).
    pub(super) last_active: u64,
    limit: Duration,
    holds_buffers: bool,
    /// The timer was polled since it was last armed: it holds the session task's waker.
    registered: bool,
}

/// What a fired timer means.
pub(super) enum Tick {
    Continue,
    ReleaseBuffers,
    Disconnect,
}

impl Idle {
    pub(super) fn new(limit: Duration) -> Self {
        Self::starting_at(limit, crate::timer::precise_ns())
    }

    /// `new`, the session starting at `now` (a `timer::precise_ns` reading).
    fn starting_at(limit: Duration, now: u64) -> Self {
        Self {
            timer: Box::pin(crate::timer::sleep_until(
                Instant::now() + KEEP_BUFFERS.min(limit),
            )),
            last_active: now,
            limit,
            holds_buffers: true,
            registered: false,
        }
    }

    /// The last command's arrival in milliseconds (`timer::coarse_ms`'s scale).
    pub(super) fn arrived_ms(&self) -> u64 {
        self.last_active / 1_000_000
    }

    /// A command arrived at `now` (a `timer::precise_ns` reading).
    pub(super) fn active(&mut self, now: u64) {
        self.last_active = now;
        if !self.holds_buffers {
            // back from a quiet spell: the timer was armed for the idle limit
            self.holds_buffers = true;
            self.timer
                .as_mut()
                .reset(Instant::now() + KEEP_BUFFERS.min(self.limit));
            self.registered = false;
        }
    }

    /// Polls the timer when that can matter: once after it was armed (so that it holds the
    /// session task's waker) and once it has elapsed. In between its registration stands (the
    /// session is one task) and a poll per command would only repeat it.
    pub(super) fn poll_timer(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.registered && !self.timer.is_elapsed() {
            return std::task::Poll::Pending;
        }
        self.registered = true;
        std::future::Future::poll(self.timer.as_mut(), cx)
    }

    /// The timer fired: decides, then re-arms it for the next decision.
    pub(super) fn fired(&mut self) -> Tick {
        self.fired_at(crate::timer::precise_ns())
    }

    /// `fired`, at `now` (a `timer::precise_ns` reading).
    fn fired_at(&mut self, now: u64) -> Tick {
        let quiet = Duration::from_nanos(now.saturating_sub(self.last_active));
        if quiet >= self.limit {
            return Tick::Disconnect;
        }
        let release = self.holds_buffers && quiet >= KEEP_BUFFERS;
        if release {
            self.holds_buffers = false;
        }
        let wait = if self.holds_buffers {
            KEEP_BUFFERS.min(self.limit)
        } else {
            self.limit
        };
        self.timer
            .as_mut()
            .reset(Instant::now() + wait.saturating_sub(quiet));
        self.registered = false;
        if release {
            Tick::ReleaseBuffers
        } else {
            Tick::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nanoseconds of tokio's paused clock since `base`, as `timer::precise_ns` would read.
    fn ns(base: Instant) -> u64 {
        base.elapsed().as_nanos() as u64
    }

    #[tokio::test(start_paused = true)]
    async fn buffers_go_after_a_quiet_second_and_the_session_after_the_limit() {
        let base = Instant::now();
        let mut idle = Idle::starting_at(Duration::from_secs(5), ns(base));
        idle.timer.as_mut().await;
        assert!(matches!(idle.fired_at(ns(base)), Tick::ReleaseBuffers));
        idle.timer.as_mut().await;
        assert!(matches!(idle.fired_at(ns(base)), Tick::Disconnect));
        assert!(base.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_client_keeps_its_buffers() {
        let base = Instant::now();
        let mut idle = Idle::starting_at(Duration::from_secs(5), ns(base));
        crate::timer::sleep(Duration::from_millis(900)).await;
        idle.active(ns(base));
        idle.timer.as_mut().await;
        assert!(
            matches!(idle.fired_at(ns(base)), Tick::Continue),
            "active 0.1 s ago"
        );
        idle.timer.as_mut().await;
        assert!(matches!(idle.fired_at(ns(base)), Tick::ReleaseBuffers));
        assert!(base.elapsed() >= Duration::from_millis(1900));
    }
}

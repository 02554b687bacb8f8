//! Planned switchover: check the target, hold new writes, let statements and transactions
//! already running on the primary finish (bounded; the rest are ended), make the primary
//! read-only, let the target catch up, promote it, re-point everything else (old primary
//! included) and check that they replicate. No acknowledged write is lost.
//!
//! It runs in a task of its own: a caller that goes away (an HTTP client's Ctrl-C, the admin
//! API's timeout) cannot stop it halfway, and the hold on writes is a guard that ends with
//! it however it ends.

use super::error::Error;
use super::sql::Dialect;
use super::{conn, lock, Hold, Recorder, Timeline};
use crate::backend::BackendConn;
use crate::shared::Shared;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs a switchover to `to` (or the best replica) to its end, even if the caller's future
/// is dropped; the timeline on success, else why it failed or was refused.
pub async fn switchover(shared: &Arc<Shared>, to: Option<&str>) -> Result<Timeline, Error> {
    let (shared, to) = (shared.clone(), to.map(str::to_string));
    tokio::spawn(async move { switch(&shared, to.as_deref()).await })
        .await
        .map_err(Error::Task)?
}

async fn switch(shared: &Arc<Shared>, to: Option<&str>) -> Result<Timeline, Error> {
    let _busy = shared.failover.busy.lock().await;
    let target = super::target::pick(shared, to).await?;
    let old = shared.topology.primary();
    let name = |i: usize| shared.topology.backend(i).pool.name.clone();
    let _lock = lock::acquire(shared, usize::MAX).await?;
    let mut rec = Recorder::new("switchover", &name(old));
    rec.timeline.to = Some(name(target));
    let hold = Hold::new(&shared.failover);
    shared.failover.draining.store(true, Ordering::SeqCst);
    shared.failover.set_state("switching_over");
    rec.step(format!(
        "holding new writes; switching from {} to {}",
        name(old),
        name(target)
    ));
    let res = run(shared, (old, target), &hold, &mut rec).await;
    drop(hold);
    match res {
        Ok(()) => {
            let t = rec.timeline.clone();
            shared.failover.finish(rec, "success");
            Ok(Timeline {
                result: "success".into(),
                ..t
            })
        }
        Err(e) => {
            shared
                .metrics
                .promotion_failures_total
                .with_label_values(&["switchover"])
                .inc();
            let line = e.line();
            rec.step(format!("failed: {line}"));
            shared.failover.finish(rec, &format!("failed: {line}"));
            Err(e)
        }
    }
}

async fn run(
    shared: &Arc<Shared>,
    (old, target): (usize, usize),
    hold: &Hold<'_>,
    rec: &mut Recorder,
) -> Result<(), Error> {
    let cfg = shared.config.load_full();
    let topo = &shared.topology;
    let name = |i: usize| topo.backend(i).pool.name.clone();
    let mut oc = conn::connect(shared, old)
        .await
        .map_err(Error::at(format!("{}: connecting", name(old))))?;
    drain(shared, old, &mut oc, rec).await;
    let d = Dialect::of(&oc.server_version);
    conn::run_all(&mut oc, &d.make_read_only())
        .await
        .map_err(Error::at(format!("{}: making it read-only", name(old))))?;
    rec.step(format!("{} is read-only", name(old)));
    let undo = |mut oc: BackendConn| async move {
        let _ = conn::run_all(&mut oc, &d.make_writable()).await;
    };
    let pos = match conn::query(&mut oc, d.position()).await {
        Ok(r) => r.get("current").unwrap_or("").to_string(),
        Err(e) => {
            undo(oc).await;
            return Err(Error::at(format!("{}: reading its position", name(old)))(e));
        }
    };
    let mut tc = match conn::connect(shared, target).await {
        Ok(c) => c,
        Err(e) => {
            undo(oc).await;
            return Err(Error::at(format!("{}: connecting", name(target)))(e));
        }
    };
    let caught_up = conn::query_within(
        &mut tc,
        &d.wait_for(&pos, cfg.failover.relay_log_wait.0.as_secs_f64()),
        cfg.failover.relay_log_wait.0,
    )
    .await;
    if !matches!(&caught_up, Ok(r) if r.get("r") == Some("0")) {
        undo(oc).await;
        return Err(Error::Refused(format!(
            "{} did not reach {pos} in time; {} is writable again",
            name(target),
            name(old)
        )));
    }
    rec.step(format!("{} applied everything up to {pos}", name(target)));
    if let Err(e) = conn::run_all(&mut tc, &d.promote()).await {
        // it may have run in part: the target is a read-only replica of the old primary
        // again before the old primary takes writes
        demote(shared, (old, target), rec).await;
        undo(oc).await;
        return Err(Error::at(format!("promotion of {} failed", name(target)))(
            e,
        ));
    }
    topo.promoted(target, Some(old));
    shared.metrics.switchovers_total.inc();
    hold.release();
    rec.step(format!("{} promoted; writes released to it", name(target)));
    let others: Vec<usize> = (0..topo.len())
        .filter(|&i| i != target && !topo.backend(i).is_removed())
        .collect();
    let failed = super::promote::repoint(shared, target, &others, rec).await;
    // once the others replicate from it (see `semisync`)
    super::promote::semi_sync_primary(&mut tc, d, &name(target), rec).await;
    if !failed.is_empty() {
        return Err(Error::Refused(format!(
            "{} promoted, but re-pointing failed: {}",
            name(target),
            failed.join("; ")
        )));
    }
    Ok(())
}

/// Lets what already runs on the old primary finish, bounded by `failover.switchover_drain`:
/// statements in flight, and transactions open on it (their statements still go there while
/// `draining`). Transactions still open then are ended with `KILL CONNECTION` on `oc`, so
/// that the demotion does not wait on them: with `transaction_replay` their sessions replay
/// them on the new primary, otherwise their clients get an error.
/// Makes `target` a read-only replica of `old` again after a promotion that failed, perhaps
/// in part; what could not be done is recorded (the monitor fences it if it is left writable).
async fn demote(shared: &Arc<Shared>, (old, target): (usize, usize), rec: &mut Recorder) {
    let name = shared.topology.backend(target).pool.name.clone();
    let res = async {
        let mut c = conn::connect(shared, target).await?;
        let stmts = Dialect::of(&c.server_version).make_read_only();
        conn::run_all(&mut c, &stmts).await
    }
    .await;
    match res {
        Ok(()) => rec.step(format!("{name} is read-only again")),
        Err(e) => rec.step(format!("could not make {name} read-only again: {e}")),
    }
    super::promote::repoint(shared, old, &[target], rec).await;
}

async fn drain(shared: &Shared, old: usize, oc: &mut BackendConn, rec: &mut Recorder) {
    let limit = shared.config.load().failover.switchover_drain.0;
    let deadline = Instant::now() + limit;
    let open_tx = || -> Vec<u32> {
        let sessions = shared.sessions.lock();
        sessions
            .values()
            .filter_map(|h| h.primary_tx())
            .filter(|&(b, _)| b == old)
            .map(|(_, thread)| thread)
            .collect()
    };
    loop {
        let busy = shared.primary_inflight.load(Ordering::SeqCst) > 0;
        if (!busy && open_tx().is_empty()) || Instant::now() >= deadline {
            break;
        }
        crate::timer::sleep(Duration::from_millis(5)).await;
    }
    // from here on, statements of open transactions wait for the new primary
    shared.failover.draining.store(false, Ordering::SeqCst);
    let left = open_tx();
    if left.is_empty() {
        rec.step("statements and transactions on the old primary finished");
        return;
    }
    for thread in &left {
        let _ = conn::query(oc, &format!("KILL CONNECTION {thread}")).await;
    }
    rec.step(format!(
        "{} transaction(s) still open after {limit:?} ended on the old primary",
        left.len()
    ));
}

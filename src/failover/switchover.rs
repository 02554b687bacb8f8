//! Planned switchover: hold writes, make the primary read-only, let the target catch up,
//! promote it, re-point everything else (old primary included). No acknowledged write is lost.

use super::sql::Dialect;
use super::{conn, lock, Recorder, Timeline};
use crate::shared::Shared;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pick_target(shared: &Shared, to: Option<&str>) -> Result<usize, String> {
    let topo = &shared.topology;
    let cfg = shared.config.load();
    let p = topo.primary();
    if let Some(name) = to {
        let i = topo
            .backends()
            .iter()
            .position(|b| b.pool.name == name)
            .ok_or(format!("no backend named {name:?}"))?;
        if i == p {
            return Err(format!("{name} is already the primary"));
        }
        return Ok(i);
    }
    topo.backends()
        .iter()
        .enumerate()
        .filter(|(i, b)| {
            *i != p && b.state.load().up && !cfg.failover.never_promote.contains(&b.pool.name)
        })
        .min_by_key(|(_, b)| b.state.load().lag_us().unwrap_or(i64::MAX))
        .map(|(i, _)| i)
        .ok_or_else(|| "no healthy replica to switch to".to_string())
}

pub async fn switchover(shared: &Arc<Shared>, to: Option<&str>) -> Result<Timeline, String> {
    let _busy = shared.failover.busy.lock().await;
    let target = pick_target(shared, to)?;
    let old = shared.topology.primary();
    let name = |i: usize| shared.topology.backend(i).pool.name.clone();
    let _lock = lock::acquire(shared, usize::MAX).await?;
    let mut rec = Recorder::new("switchover", &name(old));
    rec.timeline.to = Some(name(target));
    shared.failover.holding.store(true, Ordering::Relaxed);
    shared.failover.set_state("switching_over");
    rec.step(format!(
        "holding new writes; switching from {} to {}",
        name(old),
        name(target)
    ));
    let res = run(shared, old, target, &mut rec).await;
    shared.failover.holding.store(false, Ordering::Relaxed);
    shared.failover.changed.notify_waiters();
    match res {
        Ok(()) => {
            shared.metrics.switchovers_total.inc();
            let t = rec.timeline.clone();
            shared.failover.finish(rec, "success");
            Ok(Timeline {
                result: "success".into(),
                ..t
            })
        }
        Err(e) => {
            rec.step(format!("failed: {e}"));
            shared.failover.finish(rec, &format!("failed: {e}"));
            Err(e)
        }
    }
}

async fn run(
    shared: &Arc<Shared>,
    old: usize,
    target: usize,
    rec: &mut Recorder,
) -> Result<(), String> {
    let cfg = shared.config.load_full();
    let topo = &shared.topology;
    let name = |i: usize| topo.backend(i).pool.name.clone();
    // let statements already running on the primary finish
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.primary_inflight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut oc = conn::connect(shared, old)
        .await
        .map_err(|e| format!("{}: {e}", name(old)))?;
    let d = Dialect::of(&oc.server_version);
    conn::run_all(&mut oc, &d.make_read_only())
        .await
        .map_err(|e| e.to_string())?;
    rec.step(format!("{} is read-only", name(old)));
    let undo = |mut oc: crate::backend::BackendConn| async move {
        let _ = conn::run_all(&mut oc, &d.make_writable()).await;
    };
    let pos = match conn::query(&mut oc, d.position()).await {
        Ok(r) => r.get("current").unwrap_or("").to_string(),
        Err(e) => {
            undo(oc).await;
            return Err(e.to_string());
        }
    };
    let mut tc = match conn::connect(shared, target).await {
        Ok(c) => c,
        Err(e) => {
            undo(oc).await;
            return Err(format!("{}: {e}", name(target)));
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
        return Err(format!(
            "{} did not reach {pos} in time; {} is writable again",
            name(target),
            name(old)
        ));
    }
    rec.step(format!("{} applied everything up to {pos}", name(target)));
    if let Err(e) = conn::run_all(&mut tc, &d.promote()).await {
        undo(oc).await;
        return Err(format!("promotion of {} failed: {e}", name(target)));
    }
    topo.promoted(target, Some(old));
    shared.failover.holding.store(false, Ordering::Relaxed);
    shared.failover.changed.notify_waiters();
    rec.step(format!("{} promoted; writes released to it", name(target)));
    let others: Vec<usize> = (0..topo.len())
        .filter(|&i| i != target && !topo.backend(i).is_removed())
        .collect();
    let failed = super::promote::repoint(shared, target, &others, rec).await;
    if !failed.is_empty() {
        return Err(format!(
            "{} promoted, but re-pointing failed: {}",
            name(target),
            failed.join("; ")
        ));
    }
    Ok(())
}

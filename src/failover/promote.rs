//! Choosing and promoting a candidate, re-pointing the others, fencing a returning primary.

use super::error::Error;
use super::sql::{self, Dialect};
use super::{conn, lock, Recorder};
use crate::monitor::Replication;
use crate::shared::Shared;
use crate::topology::gtid::GtidSet;
use crate::topology::history::History;
use std::sync::Arc;

/// What a replica has received and applied.
struct Position {
    index: usize,
    dialect: Dialect,
    received: GtidSet,
    received_text: String,
    /// Every transaction it holds, and those it wrote itself (as a primary, or errant).
    history: History,
    own: History,
}

fn note(shared: &Shared, msg: String) {
    let mut st = shared.failover.status.lock();
    if st.note != msg {
        tracing::warn!("{msg}");
        st.note = msg;
    }
}

async fn position(shared: &Shared, i: usize) -> Result<Position, Error> {
    let name = &shared.topology.backend(i).pool.name;
    let mut c = conn::connect(shared, i)
        .await
        .map_err(Error::at(format!("{name}: reading its position")))?;
    let d = Dialect::of(&c.server_version);
    let st = conn::query(&mut c, d.replica_status())
        .await
        .map_err(Error::at(format!("{name}: reading its position")))?;
    let pos = conn::query(&mut c, d.position())
        .await
        .map_err(Error::at(format!("{name}: reading its position")))?;
    let held = conn::query(&mut c, d.history())
        .await
        .map_err(Error::at(format!("{name}: reading its position")))?;
    let history = History::of(&held);
    let own = history.own(held.get("me").unwrap_or(""));
    let mut received_text = st.get(d.received_column()).unwrap_or("").to_string();
    if received_text.is_empty() {
        received_text = pos.get("current").unwrap_or("").to_string();
    }
    Ok(Position {
        index: i,
        dialect: d,
        received: GtidSet::parse(&received_text),
        received_text,
        history,
        own,
    })
}

/// Picks the most advanced replica without errant transactions; says why others were refused.
fn choose(
    positions: &[Position],
    names: &dyn Fn(usize) -> String,
    rec: &mut Recorder,
) -> Option<usize> {
    let mut ok: Vec<&Position> = Vec::new();
    for p in positions {
        // its own transactions (same domain, server id and sequence) held by another replica
        let others_have = positions
            .iter()
            .filter(|o| o.index != p.index)
            .any(|o| o.history.contains(&p.own));
        if !p.own.is_empty() && !others_have {
            rec.step(format!(
                "refusing {}: errant transactions {} that no other replica has",
                names(p.index),
                History::default().missing(&p.own)
            ));
            continue;
        }
        ok.push(p);
    }
    ok.iter()
        .max_by_key(|p| {
            ok.iter()
                .filter(|o| p.received.contains(&o.received))
                .count()
        })
        .map(|p| p.index)
}

/// Runs a failover away from `old`. `Ok(false)`: conditions not met (try again later).
pub(crate) async fn failover(shared: &Arc<Shared>, old: usize) -> Result<bool, Error> {
    let Ok(_busy) = shared.failover.busy.try_lock() else {
        return Ok(false);
    };
    let cfg = shared.config.load_full();
    let topo = &shared.topology;
    let name = |i: usize| topo.backend(i).pool.name.clone();
    let healthy: Vec<usize> = (0..topo.len())
        .filter(|&i| i != old && topo.backend(i).state.load().healthy())
        .collect();
    if healthy.is_empty() {
        note(
            shared,
            "primary is failing but no healthy replica can be promoted".into(),
        );
        return Ok(false);
    }
    let seeing: Vec<String> = healthy
        .iter()
        .filter(|&&i| topo.backend(i).state.load().io_running)
        .map(|&i| name(i))
        .collect();
    if !seeing.is_empty() {
        note(shared, format!("primary {} fails Sluice's checks but replicas {seeing:?} still replicate from it: not promoting", name(old)));
        return Ok(false);
    }
    let _lock = match lock::acquire(shared, old).await {
        Ok(l) => l,
        Err(e) => {
            note(shared, format!("not promoting: {e}; following the servers"));
            return Ok(false);
        }
    };
    if topo.primary() != old
        || healthy
            .iter()
            .any(|&i| topo.backend(i).state.load().writable)
    {
        return Ok(true); // someone else promoted already; the monitor follows read_only
    }
    let hold = super::Hold::new(&shared.failover);
    shared.failover.set_state("failing_over");
    let mut rec = Recorder::new("failover", &name(old));
    rec.step(format!(
        "primary {} failed its checks and no replica replicates from it",
        name(old)
    ));
    let result = run_failover(shared, &healthy, (&cfg, &hold), &mut rec).await;
    drop(hold);
    match result {
        Ok(()) => {
            shared.failover.finish(rec, "success");
            Ok(true)
        }
        Err(e) => {
            shared
                .metrics
                .promotion_failures_total
                .with_label_values(&["failover"])
                .inc();
            let line = e.line();
            rec.step(format!("failed: {line}"));
            shared.failover.finish(rec, &format!("failed: {line}"));
            Err(e)
        }
    }
}

/// The positions of the healthy replicas that may be promoted (not in `never_promote`);
/// what could not be read is recorded.
async fn eligible_positions(
    shared: &Shared,
    healthy: &[usize],
    cfg: &crate::config::Config,
    rec: &mut Recorder,
) -> Vec<Position> {
    let name = |i: usize| shared.topology.backend(i).pool.name.clone();
    let mut eligible = Vec::new();
    for &i in healthy {
        if cfg.failover.never_promote.contains(&name(i)) {
            rec.step(format!("{} is in never_promote", name(i)));
            continue;
        }
        match position(shared, i).await {
            Ok(p) => eligible.push(p),
            Err(e) => rec.step(format!("cannot read the position of {}: {e}", name(i))),
        }
    }
    eligible
}

async fn run_failover(
    shared: &Arc<Shared>,
    healthy: &[usize],
    (cfg, hold): (&crate::config::Config, &super::Hold<'_>),
    rec: &mut Recorder,
) -> Result<(), Error> {
    let topo = &shared.topology;
    let name = |i: usize| topo.backend(i).pool.name.clone();
    let eligible = eligible_positions(shared, healthy, cfg, rec).await;
    let cand = choose(&eligible, &name, rec).ok_or("no replica can be promoted")?;
    let pos = eligible
        .iter()
        .find(|p| p.index == cand)
        .ok_or("candidate vanished")?;
    rec.timeline.to = Some(name(cand));
    rec.step(format!(
        "candidate {} (received {})",
        name(cand),
        pos.received_text
    ));
    let mut c = conn::connect(shared, cand)
        .await
        .map_err(Error::at(format!("{}: connecting", name(cand))))?;
    let wait = cfg.failover.relay_log_wait.0.as_secs_f64();
    let r = conn::query_within(
        &mut c,
        &pos.dialect.wait_for(&pos.received_text, wait),
        cfg.failover.relay_log_wait.0,
    )
    .await
    .map_err(Error::at(format!("{}: applying its relay log", name(cand))))?;
    if r.get("r") != Some("0") {
        rec.step(format!(
            "relay log not fully applied within {wait}s; promoting anyway"
        ));
    } else {
        rec.step("relay log applied");
    }
    if let Err(e) = conn::run_all(&mut c, &pos.dialect.promote()).await {
        // the statements may have taken effect with their reply lost (a step's time limit
        // on a loaded server): a candidate that is writable now was promoted
        if !writable(shared, cand).await {
            return Err(Error::at(format!("promotion of {} failed", name(cand)))(e));
        }
        rec.step(format!(
            "the promotion of {} reported {e}, but it is writable now",
            name(cand)
        ));
    }
    rec.step(format!(
        "{} promoted (replication reset, writable)",
        name(cand)
    ));
    topo.promoted(cand, None);
    shared.metrics.failovers_total.inc();
    hold.release();
    let failed = repoint(
        shared,
        cand,
        &eligible
            .iter()
            .map(|p| p.index)
            .chain(healthy.iter().copied())
            .collect::<Vec<_>>(),
        rec,
    )
    .await;
    // once the others replicate from it (a semi-sync primary without replicas would hold
    // each commit for the semi-sync timeout)
    semi_sync_primary(&mut c, pos.dialect, &name(cand), rec).await;
    if !failed.is_empty() {
        return Err(Error::Refused(format!(
            "{} promoted, but re-pointing failed: {}",
            name(cand),
            failed.join("; ")
        )));
    }
    Ok(())
}

/// Whether backend `i` answers, on a new connection, that it is not read-only.
async fn writable(shared: &Shared, i: usize) -> bool {
    let Ok(mut c) = conn::connect(shared, i).await else {
        return false;
    };
    let r = conn::query(&mut c, "SELECT @@global.read_only AS ro").await;
    matches!(r, Ok(r) if r.get("ro") == Some("0"))
}

/// Points every backend in `others` (except the primary) at `primary`; returns what failed.
pub(super) async fn repoint(
    shared: &Shared,
    primary: usize,
    others: &[usize],
    rec: &mut Recorder,
) -> Vec<String> {
    let cfg = shared.config.load();
    let (host, port) = sql::host_port(&shared.topology.backend(primary).pool.address);
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for &i in others {
        if i == primary || done.contains(&i) {
            continue;
        }
        done.push(i);
        let name = shared.topology.backend(i).pool.name.clone();
        let res = async {
            let mut c = conn::connect(shared, i)
                .await
                .map_err(Error::at("connecting"))?;
            let d = Dialect::of(&c.server_version);
            let stmts = d.change_primary(
                &host,
                port,
                &cfg.failover.replication_user,
                &cfg.failover.replication_password,
            );
            super::semisync::as_replica(&mut c, d).await?;
            conn::run_all(&mut c, &stmts)
                .await
                .map_err(Error::at("CHANGE MASTER / START SLAVE"))?;
            replicating(&mut c, d).await
        }
        .await;
        match res {
            Ok(()) => rec.step(format!(
                "{name} now replicates from {}",
                shared.topology.backend(primary).pool.name
            )),
            Err(e) => {
                let e = sql::redact(&e.line(), &cfg.failover.replication_password);
                rec.step(format!("could not re-point {name}: {e}"));
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    failed
}

/// A backend other than the primary that is up and writable (an old primary back from the
/// dead, or a frozen one resumed) is made read-only; with `auto_rejoin` it becomes a replica
/// when its history is a prefix of the primary's.
pub(crate) async fn fence_returning(shared: &Arc<Shared>) {
    let topo = &shared.topology;
    let p = topo.primary();
    for (i, b) in topo.backends().iter().enumerate() {
        let st = b.state.load();
        if i == p || !st.writable || !st.healthy() {
            continue;
        }
        let Ok(_busy) = shared.failover.busy.try_lock() else {
            return;
        };
        let name = b.pool.name.clone();
        let res = async {
            let mut c = conn::connect(shared, i).await?;
            let d = Dialect::of(&c.server_version);
            conn::run_all(&mut c, &d.make_read_only()).await?;
            let mine = History::of(&conn::query(&mut c, d.history()).await?);
            Ok::<_, crate::backend::BackendError>((c, d, mine))
        }
        .await;
        let Ok((c, d, mine)) = res else { continue };
        b.state.update(|s| s.writable = false);
        let mut reason = format!(
            "{name} came back writable while {} is primary: made read-only",
            topo.backend(p).pool.name
        );
        if shared.config.load().failover.auto_rejoin {
            match rejoin(shared, p, c, d, &mine).await {
                Ok(()) => {
                    // back in the topology: no longer listed as fenced
                    tracing::warn!("{reason}; rejoined as a replica");
                    let mut fs = shared.failover.status.lock();
                    fs.fenced.retain(|f| !f.starts_with(&format!("{name} ")));
                    continue;
                }
                Err(why) => reason.push_str(&format!("; {why}")),
            }
        }
        tracing::warn!("{reason}");
        {
            let mut fs = shared.failover.status.lock();
            fs.fenced.retain(|f| !f.starts_with(&format!("{name} ")));
            fs.fenced.push(reason);
        }
    }
}

/// Makes a fenced server (control connection `c`) a replica of the primary `p`, only if the
/// primary holds every transaction it has (`mine`); else says why not.
async fn rejoin(
    shared: &Shared,
    p: usize,
    mut c: crate::backend::BackendConn,
    d: Dialect,
    mine: &History,
) -> Result<(), Error> {
    let topo = &shared.topology;
    let primary = async {
        let mut pc = conn::connect(shared, p).await.ok()?;
        Some(History::of(&conn::query(&mut pc, d.history()).await.ok()?))
    }
    .await
    .ok_or("rejoin postponed: primary unreachable")?;
    let missing = primary.missing(mine);
    if !missing.is_empty() {
        return Err(Error::Refused(format!(
            "kept out, not rejoined: its history diverged, it has transactions the primary \
             lacks ({missing})"
        )));
    }
    let cfg = shared.config.load();
    let (host, port) = sql::host_port(&topo.backend(p).pool.address);
    let stmts = d.change_primary(
        &host,
        port,
        &cfg.failover.replication_user,
        &cfg.failover.replication_password,
    );
    super::semisync::as_replica(&mut c, d).await?;
    conn::run_all(&mut c, &stmts)
        .await
        .map_err(Error::at("rejoin failed: CHANGE MASTER / START SLAVE"))?;
    replicating(&mut c, d).await
}

/// How long a re-pointed server has to show both replication threads running.
const REPLICATING_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits (bounded) until the server on `c` shows its replication I/O and SQL threads
/// running: a re-pointed server counts as done only then. The error carries the server's own
/// last replication error (e.g. access denied for the replication user).
pub(super) async fn replicating(
    c: &mut crate::backend::BackendConn,
    d: Dialect,
) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + REPLICATING_WITHIN;
    loop {
        let st = conn::query(c, d.replica_status())
            .await
            .map_err(Error::at("reading the replica status"))?;
        let r = Replication::from_status(&st).unwrap_or_default();
        if r.io && r.sql {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let err = if r.last_error.is_empty() {
                String::new()
            } else {
                format!(": {}", r.last_error)
            };
            return Err(Error::Refused(format!(
                "replication not running after {REPLICATING_WITHIN:?} (I/O thread running: {}, SQL thread running: {}){err}",
                r.io, r.sql
            )));
        }
        crate::timer::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Semi-sync's source side on for a promoted server that acknowledged as a replica (a
/// failure is recorded, not fatal: writes go on, asynchronously).
pub(super) async fn semi_sync_primary(
    c: &mut crate::backend::BackendConn,
    d: Dialect,
    name: &str,
    rec: &mut Recorder,
) {
    match super::semisync::as_primary(c, d).await {
        Ok(true) => rec.step(format!("{name} waits for semi-sync acknowledgements")),
        Ok(false) => {}
        Err(e) => rec.step(format!(
            "could not turn on semi-sync on {name}: {}",
            e.line()
        )),
    }
}

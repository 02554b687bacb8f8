//! Which server a switchover may promote, decided before anything is held: a target that
//! cannot take over is refused at once, with the reason.

use super::conn;
use super::error::Error;
use super::sql::Dialect;
use crate::shared::Shared;
use crate::topology::history::History;

/// The switchover target: `to` if it can take over, else the least-lagging replica that
/// can; the error says why not.
pub(super) async fn pick(shared: &Shared, to: Option<&str>) -> Result<usize, Error> {
    let topo = &shared.topology;
    let p = topo.primary();
    let i = match to {
        Some(name) => {
            let i = topo
                .backends()
                .iter()
                .position(|b| b.pool.name == name)
                .ok_or(format!("no backend named {name:?}"))?;
            if i == p {
                return Err(format!("{name} is already the primary").into());
            }
            ready(shared, i)?;
            i
        }
        None => (0..topo.len())
            .filter(|&i| i != p && ready(shared, i).is_ok())
            .min_by_key(|&i| topo.backend(i).state.load().lag_us().unwrap_or(i64::MAX))
            .ok_or_else(|| {
                let why: Vec<String> = (0..topo.len())
                    .filter(|&i| i != p)
                    .filter_map(|i| ready(shared, i).err().map(|e| e.line()))
                    .collect();
                format!("no replica can take over: {}", why.join("; "))
            })?,
    };
    no_errant_transactions(shared, p, i).await?;
    Ok(i)
}

/// What the monitor knows: configured, not fenced, healthy, replicating, fresh enough.
fn ready(shared: &Shared, i: usize) -> Result<(), Error> {
    let b = shared.topology.backend(i);
    let name = &b.pool.name;
    let cfg = shared.config.load();
    if b.is_removed() {
        return Err(format!("{name} was removed from the configuration").into());
    }
    if cfg.failover.never_promote.contains(name) {
        return Err(format!("{name} is in failover.never_promote").into());
    }
    let prefix = format!("{name} ");
    if let Some(f) = shared
        .failover
        .status
        .lock()
        .fenced
        .iter()
        .find(|f| f.starts_with(&prefix))
    {
        return Err(format!("{name} is fenced: {f}").into());
    }
    let s = b.state.load();
    if cfg.monitor.is_some() && !s.probed {
        return Err(format!("{name} has not been probed yet").into());
    }
    if !s.healthy() {
        let why = if s.probe_error.is_empty() {
            "failing health checks"
        } else {
            &s.probe_error
        };
        return Err(format!("{name} is not healthy: {why}").into());
    }
    if !(s.io_running && s.sql_running) {
        return Err(format!(
            "{name} is not replicating (I/O thread running: {}, SQL thread running: {}) {}",
            s.io_running, s.sql_running, s.last_error
        )
        .into());
    }
    let max = cfg.routing.max_replica_lag.0.as_micros() as i64;
    match s.lag_us() {
        Some(lag) if lag <= max => Ok(()),
        Some(lag) => Err(format!(
            "{name} lags {:.3}s behind (max_replica_lag {:.3}s)",
            lag as f64 / 1e6,
            max as f64 / 1e6
        )
        .into()),
        None => Err(format!("{name}'s lag is unknown").into()),
    }
}

/// The target must not hold transactions of its own that the primary lacks: promoting it
/// would publish them, and the old primary could not replicate from it.
async fn no_errant_transactions(shared: &Shared, p: usize, i: usize) -> Result<(), Error> {
    let name = |i: usize| shared.topology.backend(i).pool.name.clone();
    let history = |i: usize| async move {
        let mut c = conn::connect(shared, i)
            .await
            .map_err(Error::at(format!("{}: reading its history", name(i))))?;
        let d = Dialect::of(&c.server_version);
        let row = conn::query(&mut c, d.history())
            .await
            .map_err(Error::at(format!("{}: reading its history", name(i))))?;
        Ok::<_, Error>((History::of(&row), row.get("me").unwrap_or("").to_string()))
    };
    let (theirs, me) = history(i).await?;
    let (primary, _) = history(p).await?;
    let errant = primary.missing(&theirs.own(&me));
    if errant.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} has errant transactions the primary {} lacks: {errant}",
            name(i),
            name(p)
        )
        .into())
    }
}

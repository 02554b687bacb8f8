//! Hot reload: parse and validate the whole new configuration first; if anything is wrong keep
//! the running one. Otherwise apply it: reweight backends in place, add new ones (pool,
//! metrics, monitor task), drain removed ones, and swap the configuration atomically so every
//! session sees it from its next statement. Client connections stay open.

use crate::config::{Config, TlsMode};
use crate::shared::Shared;
use crate::topology::Backend;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::shared::{ReloadOutcome as Outcome, ReloadState as State};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Reloads from the file the proxy was started with.
pub async fn from_file(shared: &Arc<Shared>, trigger: &str) -> Outcome {
    // SIGHUP, the admin API and the file watcher may fire together: one reload at a time,
    // each reading the file afresh, so the last one to run applies the newest file
    let _serial = shared.reload_serial.lock().await;
    let path = shared.reload.lock().path.clone();
    let parsed = match path {
        None => Err(vec![
            "Sluice was started without a configuration file; nothing to reload".to_string(),
        ]),
        Some(p) => Config::load(Path::new(&p)).map_err(|e| {
            crate::error::chain(&e)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        }),
    };
    let result = parsed.and_then(|cfg| apply(shared, cfg));
    record(shared, trigger, result)
}

fn record(shared: &Shared, trigger: &str, result: Result<Vec<String>, Vec<String>>) -> Outcome {
    let ok = result.is_ok();
    let (changes, errors) = match result {
        Ok(c) => (c, Vec::new()),
        Err(e) => (Vec::new(), e),
    };
    let m = &shared.metrics;
    if ok {
        m.config_reloads_total.with_label_values(&["success"]).inc();
        m.config_last_reload_success.set(now());
        tracing::info!(trigger, changes = ?changes, "configuration reloaded");
    } else {
        m.config_reloads_total.with_label_values(&["failure"]).inc();
        tracing::error!(trigger, errors = ?errors, "configuration reload rejected; the running configuration stays");
    }
    let outcome = Outcome {
        at_unix: now(),
        trigger: trigger.into(),
        ok,
        errors,
        changes,
    };
    shared.reload.lock().last = Some(outcome.clone());
    outcome
}

/// Checks that `new` can replace the running configuration; returns every reason it cannot.
fn compatible(shared: &Shared, new: &Config) -> Vec<String> {
    let topo = &shared.topology;
    let primary = topo.backend(topo.primary());
    let mut errors = Vec::new();
    if !primary.is_removed()
        && !new
            .backends
            .iter()
            .any(|b| b.name == primary.pool.name && b.address == primary.pool.address)
    {
        errors.push(format!(
            "backends: the current primary {} ({}) cannot be removed or moved by a reload; switch over first",
            primary.pool.name, primary.pool.address
        ));
    }
    if new.monitor.is_some() != shared.config.load().monitor.is_some() {
        errors.push("monitor: adding or removing the [monitor] section needs a restart".into());
    }
    errors
}

/// Applies a validated configuration; returns the list of changes.
pub fn apply(shared: &Arc<Shared>, mut new: Config) -> Result<Vec<String>, Vec<String>> {
    let errors = compatible(shared, &new);
    if !errors.is_empty() {
        return Err(errors);
    }
    let old = shared.config.load_full();
    let mut changes = Vec::new();
    if new.listen.address != old.listen.address
        || new.admin.address != old.admin.address
        || new.listen.worker_threads != old.listen.worker_threads
    {
        changes.push("listen.address / admin.address / listen.worker_threads change only with a restart; the running values stay".into());
        new.listen.address = old.listen.address.clone();
        new.admin.address = old.admin.address.clone();
        new.listen.worker_threads = old.listen.worker_threads;
    }
    if new.stats != old.stats {
        shared.digests.configure(&new.stats);
        changes.push("stats: digest statistics / slow-query settings applied".into());
    }
    apply_backends(shared, &new, &old, &mut changes);
    note_settings(shared, &new, &old, &mut changes);
    let topo = &shared.topology;
    let rules = crate::rules::RuleSet::compile(&new, |n| topo.index_of(n), &shared.metrics)
        .map_err(|e| vec![format!("rules: {e}")])?;
    changes.extend(crate::config::rules::changes(&old.rules, &new.rules));
    let groups = |c: &Config| {
        c.backends
            .iter()
            .map(|b| (b.name.clone(), b.groups.clone()))
            .collect::<Vec<_>>()
    };
    if groups(&new) != groups(&old) {
        changes.push("server groups updated".into());
    }
    // client certificates are re-read on every reload (renewed files on the same paths)
    let tls = new
        .tls
        .as_ref()
        .and_then(|t| crate::tls::server::acceptor(t).ok())
        .map(Arc::new);
    if tls.is_some() || old.tls.is_some() {
        changes.push("TLS certificate and key reloaded (new connections use them)".into());
    }
    shared.tls.store(tls);
    let caching = |c: &Config| {
        c.rules
            .iter()
            .filter(|r| r.cache_ttl.is_some())
            .cloned()
            .collect::<Vec<_>>()
    };
    if caching(&new) != caching(&old) || new.cache != old.cache {
        shared.cache.purge(crate::cache::Cause::Reload);
        changes.push("result cache purged (caching rules or [cache] changed)".into());
    }
    shared.cache.set_active(rules.caches());
    shared.rules.store(Arc::new(rules));
    shared.config.store(Arc::new(new));
    shared.reload.lock().version += 1;
    Ok(changes)
}

/// Backends added, re-addressed (drained and added anew), reweighted or removed.
fn apply_backends(shared: &Arc<Shared>, new: &Config, old: &Config, changes: &mut Vec<String>) {
    let topo = &shared.topology;
    for b in &new.backends {
        match topo.index_of(&b.name) {
            Some(i) if topo.backend(i).pool.address == b.address => {
                let be = topo.backend(i);
                if be.weight() != b.weight {
                    changes.push(format!(
                        "{}: weight {} -> {}",
                        b.name,
                        be.weight(),
                        b.weight
                    ));
                    be.set_weight(b.weight);
                }
                reload_backend_tls(new, old, b, &be.pool, changes);
            }
            existing => {
                if let Some(i) = existing {
                    topo.backend(i).remove();
                    changes.push(format!(
                        "{}: address changed; old connections drained",
                        b.name
                    ));
                }
                let i = topo.add(Backend::new(new, b));
                shared.metrics.add_backend(&b.name);
                let _ = topo
                    .backend(i)
                    .pool
                    .wait_histogram
                    .set(shared.metrics.pool_wait_seconds.clone());
                if new.monitor.is_some() {
                    crate::monitor::spawn_one(shared, i);
                }
                changes.push(format!("{}: added ({})", b.name, b.address));
            }
        }
    }
    for b in topo.backends().iter() {
        if !b.is_removed() && !new.backends.iter().any(|n| n.name == b.pool.name) {
            b.remove();
            changes.push(format!(
                "{}: removed; running statements finish, then its connections close",
                b.pool.name
            ));
        }
    }
}

/// Notes the settings that take effect by being stored (users, routing, pool, monitor,
/// failover) and applies a new log level.
fn note_settings(shared: &Shared, new: &Config, old: &Config, changes: &mut Vec<String>) {
    if new.users != old.users {
        changes.push(
            "users updated (new logins use them; connected sessions keep their login)".into(),
        );
    }
    if new.routing != old.routing {
        changes.push("routing settings updated".into());
    }
    if new.pool != old.pool {
        changes.push(
            "pool settings updated (connection limits apply to backends added from now on)".into(),
        );
    }
    if new.log.level != old.log.level {
        match shared.set_log_level.get().map(|f| f(&new.log.level)) {
            Some(Ok(())) => {
                changes.push(format!("log level {} -> {}", old.log.level, new.log.level))
            }
            Some(Err(e)) => changes.push(format!("log level unchanged: {e}")),
            None => {}
        }
    }
    if new.log.format != old.log.format {
        changes.push("log.format changes only with a restart".into());
    }
    if new.monitor != old.monitor || new.failover != old.failover {
        changes.push("monitor / failover settings updated".into());
    }
}

/// Re-reads backend `b`'s TLS files (renewed on the same paths) and applies a changed mode.
fn reload_backend_tls(
    new: &Config,
    old: &Config,
    b: &crate::config::Backend,
    pool: &crate::pool::BackendPool,
    changes: &mut Vec<String>,
) {
    let was = old
        .backends
        .iter()
        .find(|o| o.name == b.name)
        .and_then(|o| o.tls);
    let mode = b.tls.unwrap_or(new.backend_tls.mode);
    let old_mode = was.unwrap_or(old.backend_tls.mode);
    if mode == TlsMode::Disabled && old_mode == TlsMode::Disabled {
        return;
    }
    pool.set_tls(crate::topology::backend_tls(new, b));
    changes.push(format!(
        "{}: backend TLS {} -> {} (files re-read; new connections use it)",
        b.name,
        old_mode.name(),
        mode.name()
    ));
}

//! `GET /cache`: the result cache per rule (entries, bytes, hits, misses, stores), its
//! memory, invalidations by cause and whether it follows the binary log.
//! `POST /cache/purge`: drops every entry.

use super::Reply;
use crate::shared::Shared;
use serde_json::json;

pub(super) fn get(shared: &Shared) -> Reply {
    let c = &shared.cache;
    let m = &c.metrics;
    let held = c.by_rule();
    let rules: Vec<_> = shared
        .rules
        .load()
        .rules
        .iter()
        .filter_map(|r| Some((r, r.actions.cache_ttl?)))
        .map(|(r, ttl)| {
            let name = &*r.name;
            let (entries, bytes) = held
                .iter()
                .find(|(n, ..)| &**n == name)
                .map_or((0, 0), |(_, e, b)| (*e, *b));
            json!({
                "rule": name,
                "ttl": format!("{ttl:?}"),
                "entries": entries,
                "bytes": bytes,
                "hits": m.hits.with_label_values(&[name]).get(),
                "misses": m.misses.with_label_values(&[name]).get(),
                "stores": m.stores.with_label_values(&[name]).get(),
                "uncacheable": m.uncacheable.with_label_values(&[name]).get(),
            })
        })
        .collect();
    let (entries, bytes) = c.usage();
    let causes = ["write", "binlog", "ttl", "reload", "topology", "purge"];
    let invalidations: serde_json::Map<_, _> = causes
        .iter()
        .map(|k| {
            (
                k.to_string(),
                json!(m.invalidations.with_label_values(&[k]).get()),
            )
        })
        .collect();
    let cfg = shared.config.load();
    let body = json!({
        "rules": rules,
        "entries": entries,
        "bytes": bytes,
        "max_memory": cfg.cache.max_memory,
        "max_entry_size": cfg.cache.max_entry_size,
        "invalidations": invalidations,
        "evictions": m.evictions.get(),
        "binlog": &*c.follower.read(),
    });
    ("200 OK", "application/json", body.to_string())
}

pub(super) fn purge(shared: &Shared) -> Reply {
    let (entries, _) = shared.cache.usage();
    shared.cache.purge(crate::cache::Cause::Purge);
    tracing::info!(target: "sluice::cache", entries, "result cache purged (POST /cache/purge)");
    let body = json!({ "purged": entries });
    ("200 OK", "application/json", body.to_string())
}

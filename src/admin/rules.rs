//! `GET /rules`: the running routing rules in order, what each does, and its counters; the
//! server groups with their members.

use super::Reply;
use crate::shared::Shared;
use serde_json::json;

pub(super) fn get(shared: &Shared) -> Reply {
    let set = shared.rules.load();
    let topo = &shared.topology;
    let backends = topo.backends();
    let groups: Vec<_> = set
        .groups
        .iter()
        .map(|g| {
            let members: Vec<&str> = backends
                .iter()
                .enumerate()
                .filter(|(i, b)| g.members.contains(*i) && !b.is_removed())
                .map(|(_, b)| b.pool.name.as_str())
                .collect();
            json!({
                "name": &*g.name,
                "members": members,
                "mirror_dropped": g.mirror_dropped.get(),
            })
        })
        .collect();
    let rules: Vec<_> = set
        .rules
        .iter()
        .map(|r| {
            let c = &r.counters;
            json!({
                "name": &*r.name,
                "does": r.describe(&set.groups),
                "hits": c.hits.get(),
                "rejects": c.rejects.get(),
                "rewrites": c.rewrites.get(),
                "routes": c.routes.get(),
                "routes_ignored": c.routes_ignored.get(),
                "mirrored": c.mirrored.get(),
                "mirror_dropped": c.mirror_dropped.get(),
                "timeouts": c.timeouts.get(),
            })
        })
        .collect();
    let body = json!({ "rules": rules, "groups": groups });
    ("200 OK", "application/json", body.to_string())
}

//! `GET /`: a small self-refreshing HTML status page for people (topology, health, lag,
//! traffic split). Rendered server-side; no scripts.

use crate::shared::Shared;
use std::fmt::Write;
use std::sync::atomic::Ordering;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(shared: &Shared) -> String {
    let topo = &shared.topology;
    let primary = topo.primary();
    let metrics = shared.metrics.backends.load();
    let served: Vec<u64> = (0..topo.len())
        .map(|i| {
            metrics
                .get(i)
                .map(|m| m.queries.iter().map(|c| c.get()).sum())
                .unwrap_or(0)
        })
        .collect();
    let total = served.iter().sum::<u64>().max(1);
    let mut rows = String::new();
    for (i, b) in topo.backends().iter().enumerate() {
        if b.is_removed() {
            continue;
        }
        let st = b.state.load();
        let up = st.up && !b.pool.is_down();
        let lag = if i == primary {
            "-".to_string()
        } else {
            st.lag_us()
                .map(|l| format!("{:.3} s", l as f64 / 1e6))
                .unwrap_or_else(|| "unknown".into())
        };
        let eligible = i != primary && up && b.weight() > 0 && st.eligible;
        let share = served[i] as f64 * 100.0 / total as f64;
        let _ = write!(
            rows,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td><div class=bar style=\"width:{share:.0}%\"></div>{share:.1}%</td></tr>",
            if up { "up" } else { "down" },
            esc(&b.pool.name),
            esc(&b.pool.address),
            if i == primary { "primary" } else { "replica" },
            if up { "up" } else { "DOWN" },
            lag,
            if i == primary { "writes".to_string() } else if eligible { "yes".to_string() } else { esc(&st.reason) },
            b.weight(),
            b.pool.busy.load(Ordering::Relaxed),
            b.pool.idle_count(),
        );
    }
    let fo = shared.failover.status.lock().clone();
    let last = fo
        .last
        .map(|t| {
            format!(
                "last {}: {} -> {} ({})",
                t.kind,
                esc(&t.from),
                esc(t.to.as_deref().unwrap_or("?")),
                esc(&t.result)
            )
        })
        .unwrap_or_else(|| "no failover or switchover yet".into());
    format!(
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=2><title>Sluice</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
         td,th{{padding:.35em .8em;border-bottom:1px solid #ddd;text-align:left}}tr.down{{background:#fde8e8}}\
         .bar{{display:inline-block;height:.7em;background:#4a90d9;margin-right:.4em;vertical-align:middle}}</style></head><body>\
         <h1>Sluice</h1><p>{} client connections &middot; failover state: {} &middot; {}{}</p>\
         <table><tr><th>backend</th><th>address</th><th>role</th><th>health</th><th>lag</th><th>takes reads</th>\
         <th>weight</th><th>busy / idle</th><th>share of statements</th></tr>{rows}</table>\
         <h2>Top statements by total time</h2>{}\
         <p><a href=/status>/status</a> &middot; <a href=/metrics>/metrics</a> &middot; <a href=/config>/config</a></p></body></html>",
        shared.clients.load(Ordering::Relaxed),
        esc(&fo.state),
        last,
        if topo.split_brain.load(Ordering::Relaxed) { " &middot; <b>SPLIT BRAIN: several writable backends</b>" } else { "" },
        top_digests(shared),
    )
}

/// The ten statements with the most total time (`GET /digests` has them all).
fn top_digests(shared: &Shared) -> String {
    let (mut rows, _) = shared.digests.snapshot();
    if rows.is_empty() {
        return "<p>no statements yet</p>".into();
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.figures.total_us));
    let mut out = String::from(
        "<table><tr><th>statement</th><th>user</th><th>backend</th><th>route</th><th>count</th>\
         <th>errors</th><th>total</th><th>avg</th><th>p99</th></tr>",
    );
    for r in rows.iter().take(10) {
        let f = &r.figures;
        let ms = |us: u64| format!("{:.2} ms", us as f64 / 1e3);
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.text),
            esc(&r.user),
            esc(&r.backend),
            r.route,
            f.count,
            f.errors,
            ms(f.total_us),
            ms(f.total_us / f.count.max(1)),
            ms(f.percentile_us(0.99)),
        );
    }
    out.push_str("</table><p><a href=\"/digests?sort=total_time&amp;limit=50\">/digests</a></p>");
    out
}

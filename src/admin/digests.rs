//! `GET /digests?sort=total_time&limit=50`, `POST /digests/reset` and `POST /explain`.

use super::Reply;
use crate::shared::Shared;

/// Largest `limit` served.
const MAX_LIMIT: usize = 5_000;

pub(super) fn get(shared: &Shared, query: &str) -> Reply {
    let mut sort = "total_time".to_string();
    let mut limit = 50usize;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sort" => sort = v.to_string(),
            "limit" => match v.parse::<usize>() {
                Ok(n) => limit = n.min(MAX_LIMIT),
                Err(_) => return bad(format!("limit must be a number, not {v:?}")),
            },
            other => return bad(format!("unknown parameter {other:?} (sort, limit)")),
        }
    }
    match crate::stats::report(&shared.digests, &sort, limit) {
        Ok(v) => ("200 OK", "application/json", v.to_string()),
        Err(e) => bad(e),
    }
}

/// `POST /explain` with a statement as the body: the `EXPLAIN ROUTE` rows for a new session.
pub(super) fn explain(shared: &Shared, body: &str) -> Reply {
    if body.trim().is_empty() {
        return bad("the body must be the statement to explain".into());
    }
    let state = crate::session::state::SessionState::new(None, 45, false);
    let rows =
        crate::session::explain::explain(shared, body.as_bytes(), &state, Default::default());
    let v: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(item, value)| serde_json::json!({ "item": item, "value": value }))
        .collect();
    (
        "200 OK",
        "application/json",
        serde_json::Value::from(v).to_string(),
    )
}

pub(super) fn reset(shared: &Shared) -> Reply {
    shared.digests.reset();
    ("200 OK", "application/json", r#"{"reset":true}"#.into())
}

fn bad(msg: String) -> Reply {
    (
        "400 Bad Request",
        "application/json",
        serde_json::json!({ "error": msg }).to_string(),
    )
}

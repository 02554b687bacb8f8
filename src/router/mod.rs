//! Routing: classify a statement (pure, cached for the parser path) and pick a target.

pub mod classify;
mod keyword;
pub(crate) mod lexer;
pub mod policy;
mod server_state;
mod shape;
mod stops;

pub use classify::{classify, flag, Intent, Kind};
pub use lexer::{first_word, normalized};
pub use policy::{route, Reason, SessionView, Target};

use parking_lot::RwLock;
use sqlparser::ast::{Query, SetExpr, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::collections::HashMap;

/// Parser-path results are cached by digest; past this many shapes the cache starts over.
const CACHE_LIMIT: usize = 50_000;

/// Classifier with a digest-keyed cache for statements the keyword path cannot decide.
#[derive(Default)]
pub struct Classifier {
    cache: RwLock<HashMap<u64, Kind>>,
}

impl Classifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// The intent of `sql`; each distinct statement shape is classified once per thread.
    pub fn classify(&self, sql: &[u8]) -> Intent {
        self.classify_shaped(sql).0
    }

    /// The intent of `sql` and its shape's id on this thread (0: none; see `shape::cached`).
    pub fn classify_shaped(&self, sql: &[u8]) -> (Intent, u64) {
        shape::cached(sql, |sql| self.classify_text(sql))
    }

    fn classify_text(&self, sql: &[u8]) -> Intent {
        let mut intent = classify(sql);
        if intent.kind == Kind::Undecided {
            intent.kind = self.decide(sql, intent.digest);
        }
        intent
    }

    fn decide(&self, sql: &[u8], digest: u64) -> Kind {
        if let Some(k) = self.cache.read().get(&digest) {
            return *k;
        }
        let kind = parse_kind(sql);
        let mut cache = self.cache.write();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(digest, kind);
        kind
    }

    pub fn cached_shapes(&self) -> usize {
        self.cache.read().len()
    }

    pub fn clear_cache(&self) {
        self.cache.write().clear();
    }
}

/// Full parse: a read only if every statement is a query without locking clauses; anything
/// the parser rejects goes to the primary.
fn parse_kind(sql: &[u8]) -> Kind {
    let Ok(text) = std::str::from_utf8(sql) else {
        return Kind::Write;
    };
    match Parser::parse_sql(&MySqlDialect {}, text) {
        Ok(stmts) if !stmts.is_empty() => {
            let read = stmts
                .iter()
                .all(|s| matches!(s, Statement::Query(q) if is_read_query(q)));
            if read {
                Kind::Read
            } else {
                Kind::Write
            }
        }
        _ => Kind::Write,
    }
}

fn is_read_query(q: &Query) -> bool {
    q.locks.is_empty() && is_read_body(&q.body)
}

fn is_read_body(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(s) => s.into.is_none(),
        SetExpr::Values(_) | SetExpr::Table(_) => true,
        SetExpr::Query(q) => is_read_query(q),
        SetExpr::SetOperation { left, right, .. } => is_read_body(left) && is_read_body(right),
        _ => false,
    }
}

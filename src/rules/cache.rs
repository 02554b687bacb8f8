//! Per worker thread: for each statement shape, the rules whose shape-only matches (kind,
//! digest, `digest_pattern`) hold. A reload compiles a new `RuleSet` with a new version,
//! which empties the cache on the thread's next statement.

use std::cell::RefCell;
use std::collections::HashMap;

/// Past this many shapes a thread's cache starts over (as the shape cache does).
const MAX_ENTRIES: usize = 4096;

/// A shape's candidate rules, in file order.
pub struct Candidates {
    pub all: Box<[u16]>,
    /// Those without a `pattern` (all that can match when no pattern does).
    pub plain: Box<[u16]>,
}

struct Cache {
    version: u64,
    map: HashMap<u64, Candidates, ahash::RandomState>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache {
        version: 0,
        map: HashMap::with_hasher(ahash::RandomState::new()),
    });
}

/// Calls `f` with the candidate rules of shape `shape` under rule set `version`, computing
/// them with `compute` on a miss (`shape` 0: no shape, never cached).
pub fn with_candidates<R>(
    (version, shape): (u64, u64),
    compute: impl FnOnce() -> Candidates,
    f: impl FnOnce(&Candidates) -> R,
) -> R {
    if shape == 0 {
        return f(&compute());
    }
    CACHE.with(|cell| {
        let Ok(mut c) = cell.try_borrow_mut() else {
            return f(&compute());
        };
        if c.version != version {
            c.map.clear();
            c.version = version;
        }
        if let Some(hit) = c.map.get(&shape) {
            return f(hit);
        }
        if c.map.len() >= MAX_ENTRIES {
            c.map.clear();
        }
        let computed = compute();
        let r = f(&computed);
        c.map.insert(shape, computed);
        r
    })
}

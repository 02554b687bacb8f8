//! Per worker thread: for each statement shape, the rules whose shape-only matches (kind,
//! digest, `digest_pattern`) hold. A reload compiles a new `RuleSet` with a new version,
//! which makes every cached entry a miss on the thread's next statement.

use std::cell::RefCell;

/// Slots of the table: shape ids are handed out in sequence per thread, so the newest 4096
/// shapes each have a slot of their own (an older shape's slot is reused, and recomputed
/// when it comes back).
const SLOTS: usize = 4096;

/// A shape's candidate rules, in file order.
pub struct Candidates {
    pub all: Box<[u16]>,
    /// Those without a `pattern` (all that can match when no pattern does).
    pub plain: Box<[u16]>,
}

/// What a slot holds: the shape id and rule set version it was computed for.
struct Slot {
    shape: u64,
    version: u64,
    candidates: Candidates,
}

thread_local! {
    /// Direct-mapped by shape id: one index and one comparison per statement, no hashing.
    static CACHE: RefCell<Vec<Option<Slot>>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with the candidate rules of shape `shape` under rule set `version`, computing
/// them with `compute` on a miss (`shape` 0: no shape, never cached). A reload's new version
/// makes every slot a miss.
pub fn with_candidates<R>(
    (version, shape): (u64, u64),
    compute: impl FnOnce() -> Candidates,
    f: impl FnOnce(&Candidates) -> R,
) -> R {
    if shape == 0 {
        return f(&compute());
    }
    CACHE.with(|cell| {
        let Ok(mut slots) = cell.try_borrow_mut() else {
            return f(&compute());
        };
        if slots.is_empty() {
            slots.resize_with(SLOTS, || None);
        }
        let slot = &mut slots[shape as usize % SLOTS];
        match slot {
            Some(s) if s.shape == shape && s.version == version => f(&s.candidates),
            _ => {
                let s = slot.insert(Slot {
                    shape,
                    version,
                    candidates: compute(),
                });
                f(&s.candidates)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(version: u64, shape: u64, rule: u16, computed: &mut u32) -> Vec<u16> {
        with_candidates(
            (version, shape),
            || {
                *computed += 1;
                Candidates {
                    all: vec![rule].into(),
                    plain: Box::default(),
                }
            },
            |c| c.all.to_vec(),
        )
    }

    #[test]
    fn a_slot_serves_its_shape_and_version_only() {
        let mut n = 0;
        assert_eq!(get(1, 7, 1, &mut n), [1]);
        assert_eq!(get(1, 7, 2, &mut n), [1], "cached");
        assert_eq!(n, 1);
        assert_eq!(get(2, 7, 3, &mut n), [3], "a reload's version");
        assert_eq!(
            get(2, 7 + SLOTS as u64, 4, &mut n),
            [4],
            "another shape, same slot"
        );
        assert_eq!(get(2, 7, 5, &mut n), [5]);
        assert_eq!(get(2, 0, 6, &mut n), [6]);
        assert_eq!(get(2, 0, 7, &mut n), [7], "no shape: never cached");
        assert_eq!(n, 6);
    }
}

//! Per-user connection limits (`[[users]] max_connections`, like MySQL's
//! `max_user_connections`): a guard counts the user's sessions and gives its slot back on drop,
//! whatever way the session ends.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
pub struct UserCounts {
    open: Mutex<HashMap<String, usize>>,
}

pub struct UserSlot {
    counts: Arc<UserCounts>,
    user: String,
}

impl UserCounts {
    /// Takes a slot for `user`, or `None` when it already has `limit` sessions (0: no limit).
    pub fn take(self: &Arc<Self>, user: &str, limit: usize) -> Option<UserSlot> {
        let mut open = self.open.lock();
        let n = open.entry(user.to_string()).or_insert(0);
        if limit != 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            counts: self.clone(),
            user: user.to_string(),
        })
    }

    pub fn open(&self, user: &str) -> usize {
        self.open.lock().get(user).copied().unwrap_or(0)
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock();
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_and_release() {
        let c = Arc::new(UserCounts::default());
        let a = c.take("u", 2).unwrap();
        let _b = c.take("u", 2).unwrap();
        assert!(c.take("u", 2).is_none());
        assert!(c.take("v", 2).is_some());
        drop(a);
        assert!(c.take("u", 2).is_some());
        assert_eq!(c.open("u"), 1);
        assert!(c.take("w", 0).is_some(), "0 means no limit");
    }
}

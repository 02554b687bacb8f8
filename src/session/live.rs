//! A session's cached views of the values reloads replace (configuration, backend list,
//! metrics handles, rules): one atomic load per use, no guard or clone per statement.

use crate::shared::Shared;
use std::sync::Arc;

/// A session's view of a value reloads replace: one atomic load per use sees the latest.
pub(super) type Live<T> = arc_swap::Cache<Arc<arc_swap::ArcSwap<T>>, Arc<T>>;

/// An `ArcSwap` field of `Shared`, for a session's `arc_swap::Cache` of it (one atomic load
/// per use instead of a guarded load).
pub(super) struct Field<T>(pub Arc<Shared>, pub fn(&Shared) -> &arc_swap::ArcSwap<T>);

impl<T> std::ops::Deref for Field<T> {
    type Target = arc_swap::ArcSwap<T>;
    fn deref(&self) -> &Self::Target {
        (self.1)(&self.0)
    }
}

pub(super) type Watched<T> = arc_swap::Cache<Field<T>, Arc<T>>;

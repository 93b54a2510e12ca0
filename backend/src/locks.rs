//! Locking the server's small shared tables.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, carrying on if a holder panicked. Every table behind these locks is
/// updated one field or one map operation at a time, so a panic elsewhere cannot leave
/// it half-changed, and losing the whole server over it would be worse.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

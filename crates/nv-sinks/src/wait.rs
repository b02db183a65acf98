//! The one way sinks wait for their background side: a condvar, a predicate, a deadline.

use std::time::Instant;

use parking_lot::{Condvar, MutexGuard};

/// Waits on `cond` until `done(state)` holds or `deadline` passes; returns whether it held.
pub(crate) fn wait_until<T>(
    cond: &Condvar,
    guard: &mut MutexGuard<'_, T>,
    deadline: Instant,
    mut done: impl FnMut(&T) -> bool,
) -> bool {
    while !done(guard) {
        if cond.wait_until(guard, deadline).timed_out() {
            return done(guard);
        }
    }
    true
}

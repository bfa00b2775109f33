//! The region's locks: `std::sync` primitives that ignore poisoning.
//!
//! Why not `parking_lot`: its internal word lock turns integers into
//! pointers, which Miri refuses under `-Zmiri-strict-provenance` as soon as
//! two threads contend, and the region's blocking paths are exactly what the
//! Miri tests exercise. The standard futex-based mutex is as fast for a
//! lock held for a few instructions.
//!
//! Poisoning is ignored: no code path leaves region state half-updated while
//! holding a lock (the one deliberate panic, a bad free, releases the lock
//! first), so a panic elsewhere must not turn every later call into a panic.

use super::{MutexGuard, PoisonError};

/// A mutex whose `lock` cannot fail.
#[derive(Debug, Default)]
pub(super) struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(super) fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }

    #[inline]
    pub(super) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A condition variable paired with a [`Mutex`].
#[derive(Debug, Default)]
pub(super) struct Signal(std::sync::Condvar);

impl Signal {
    pub(super) fn new() -> Self {
        Signal(std::sync::Condvar::new())
    }

    /// Releases `guard`'s lock, sleeps until notified (or spuriously), and
    /// takes the lock again.
    pub(super) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// [`wait`](Self::wait), giving up after `timeout`.
    pub(super) fn wait_for<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'a, T> {
        match self.0.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    pub(super) fn notify_one(&self) {
        self.0.notify_one();
    }
}

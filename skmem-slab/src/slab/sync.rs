//! The lock and condition variable the slab layer uses, behind one name.
//!
//! Normally `parking_lot`'s. Under Miri they are `std::sync`'s (poisoning
//! ignored) with the same shape: contended `parking_lot` turns integers
//! back into pointers in its parking queue (parking_lot issue #477, fixed
//! upstream but unreleased), which Miri refuses under
//! `-Zmiri-strict-provenance`. The slab code itself is the same in both
//! builds.

use std::time::Duration;

#[cfg(not(miri))]
pub(super) use parking_lot::{Mutex, MutexGuard};

#[cfg(miri)]
pub(super) use self::std_sync::Mutex;
#[cfg(miri)]
pub(super) use std::sync::MutexGuard;

/// A condition variable paired with [`Mutex`].
#[derive(Debug, Default)]
pub(super) struct Condvar {
    #[cfg(not(miri))]
    inner: parking_lot::Condvar,
    #[cfg(miri)]
    inner: std::sync::Condvar,
}

impl Condvar {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Releases the lock, waits for a notification or `timeout`, and takes
    /// the lock again.
    #[cfg(not(miri))]
    pub(super) fn wait_for<'a, T>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        let _ = self.inner.wait_for(&mut guard, timeout);
        guard
    }

    /// Releases the lock, waits for a notification or `timeout`, and takes
    /// the lock again.
    #[cfg(miri)]
    pub(super) fn wait_for<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        match self.inner.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    /// Wakes every waiter.
    pub(super) fn notify_all(&self) {
        self.inner.notify_all();
    }
}

#[cfg(miri)]
mod std_sync {
    use std::sync::{MutexGuard, PoisonError};

    /// `std::sync::Mutex` with `parking_lot`'s signatures.
    #[derive(Debug, Default)]
    pub(in crate::slab) struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(in crate::slab) fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }

        pub(in crate::slab) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }

        pub(in crate::slab) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

//! The lock the slab layer uses, behind one name.
//!
//! Normally `parking_lot::Mutex`. Under Miri it is `std::sync::Mutex`
//! (poisoning ignored) with the same `lock()` / `get_mut()` shape:
//! contended `parking_lot` turns integers back into pointers in its parking
//! queue (parking_lot issue #477, fixed upstream but unreleased), which Miri
//! refuses under `-Zmiri-strict-provenance`. The slab code itself is the same
//! in both builds.

#[cfg(not(miri))]
pub(super) use parking_lot::Mutex;

#[cfg(miri)]
pub(super) use self::std_mutex::Mutex;

#[cfg(miri)]
mod std_mutex {
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

//! The synchronisation primitives of the magazine layer, behind one name.
//!
//! Normal builds use `parking_lot` locks and `std` atomics; builds with
//! `RUSTFLAGS="--cfg loom"` swap in `loom`'s, so that the loom models in
//! `tests/loom_*.rs` explore every interleaving of the CPU-layer, depot and
//! resize-perimeter code (the crossbeam / sharded-slab arrangement). Only
//! the primitives that guard magazine state go through here; process-wide
//! registries stay on `parking_lot`, which loom does not need to see.
//!
//! The facade gives both back ends the same small surface: `lock`,
//! `try_lock` returning an `Option`, and a condition variable whose `wait`
//! takes the guard by value.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicU64, Ordering};

    /// A mutual-exclusion lock (parking_lot).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    /// The guard of [`Mutex`].
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new unlocked mutex.
        pub(crate) fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }

        /// Blocks until the lock is held.
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }

        /// Takes the lock if it is free.
        #[inline]
        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock()
        }
    }

    /// A condition variable (parking_lot).
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        /// A new condition variable.
        pub(crate) fn new() -> Self {
            Condvar(parking_lot::Condvar::new())
        }

        /// Releases the guard's lock, waits for a notification, retakes it.
        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// Wakes every waiter.
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// An identity of the calling thread, comparable for equality.
    pub(crate) type ThreadId = std::thread::ThreadId;

    /// The calling thread's identity.
    pub(crate) fn current_thread() -> ThreadId {
        std::thread::current().id()
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

    /// A mutual-exclusion lock (loom).
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// The guard of [`Mutex`].
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new unlocked mutex.
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        /// Blocks until the lock is held.
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().expect("loom mutex poisoned")
        }

        /// Takes the lock if it is free.
        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok()
        }
    }

    /// A condition variable (loom).
    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        /// A new condition variable.
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }

        /// Releases the guard's lock, waits for a notification, retakes it.
        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).expect("loom mutex poisoned")
        }

        /// Wakes every waiter.
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// An identity of the calling (loom) thread, comparable for equality.
    pub(crate) type ThreadId = usize;

    loom::thread_local! {
        static ID: core::cell::Cell<usize> = core::cell::Cell::new(0);
    }

    loom::lazy_static! {
        static ref NEXT: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(1);
    }

    /// The calling loom thread's identity (assigned on first use).
    pub(crate) fn current_thread() -> ThreadId {
        ID.with(|c| {
            if c.get() == 0 {
                c.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            c.get()
        })
    }
}

pub(crate) use imp::*;

//! The synchronisation primitives of the magazine layer, behind one name.
//!
//! Normal builds use `parking_lot` locks, `std` atomics, `core`'s
//! `UnsafeCell` and `std` thread-locals; builds with
//! `RUSTFLAGS="--cfg loom"` swap in `loom`'s, so that the loom models in
//! `tests/loom_*.rs` explore every interleaving of the CPU-layer, depot,
//! per-thread slot and resize-perimeter code (the crossbeam / sharded-slab
//! arrangement).
//!
//! # What goes through here
//!
//! Every lock, atomic, shared cell and thread-local that guards or reaches
//! magazine state, slot state or the objects of a layer: the depot and
//! slot locks, the per-thread tables and memo, the owner-slot handshake,
//! the debug magazine (the tests' `HeapObjects`, in `skmem-testkit`, puts
//! its live set behind loom's lock the same way). Loom sees only its own
//! primitives, so a `std` or `parking_lot` one left in that set would hide
//! its synchronisation (and its interleavings) from the models.
//!
//! What stays on `std` / `parking_lot`, and why it may:
//!
//! * process-wide registries with no loom operation inside their critical
//!   sections (the registry of caches, the per-thread `TABLES` / `IDS`,
//!   which under loom are one per model, in a `std` thread-local of the OS
//!   thread running it). Loom runs its threads one at a time on one OS
//!   thread, so a plain lock is safe there exactly when nothing under it
//!   can switch loom threads; and loom's statics are dropped before the
//!   model's main thread runs its thread-local destructors, which still
//!   reach these registries;
//! * counters that are only reported or only need to be unique
//!   (`BACKOFFS`, cache generations): no ordering rests on them.
//!
//! # Surface
//!
//! Both back ends have the same small surface: `lock`, `try_lock`
//! returning an `Option`, `get_mut`; a condition variable whose `wait`
//! takes the guard by value; [`UnsafeCell::with_mut`] (loom's checked
//! access); and [`thread_locals!`](crate::sync::thread_locals) taking plain
//! initialisers (`const` ones on `std`, where they cost no lazy check).

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{
        AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering,
    };

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

        /// The value, through exclusive access (no locking).
        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut()
        }
    }

    /// A cell whose value its users reach one at a time by their own
    /// protocol (`core::cell::UnsafeCell`).
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// A new cell.
        pub(crate) fn new(v: T) -> Self {
            UnsafeCell(core::cell::UnsafeCell::new(v))
        }

        /// The value, from its sole owner.
        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner()
        }

        /// Runs `f` on the value.
        ///
        /// # Safety
        ///
        /// The caller has exclusive access to the value for the call.
        #[inline(always)]
        pub(crate) unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            // SAFETY: caller's contract.
            f(unsafe { &mut *self.0.get() })
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
    pub(crate) use loom::sync::atomic::{
        fence, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering,
    };

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

        /// The value, through exclusive access (no locking).
        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().expect("loom mutex poisoned")
        }
    }

    /// A cell whose value its users reach one at a time by their own
    /// protocol (loom's, which flags accesses not ordered with each other).
    pub(crate) struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// A new cell.
        pub(crate) fn new(v: T) -> Self {
            UnsafeCell(loom::cell::UnsafeCell::new(v))
        }

        /// The value, from its sole owner.
        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner()
        }

        /// Runs `f` on the value.
        ///
        /// # Safety
        ///
        /// The caller has exclusive access to the value for the call.
        pub(crate) unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            // SAFETY: caller's contract; loom checks it.
            self.0.with_mut(|p| f(unsafe { &mut *p }))
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

/// Declares thread-locals: `std::thread_local!` in normal builds (`const`
/// initialisers stay `const`: no lazy check on access),
/// `loom::thread_local!` under loom (one value per loom thread, dropped
/// when that thread ends; `const { .. }` becomes a plain block). Code that
/// may run from thread-local destructors reads them with `try_with`: under
/// loom a thread's thread-locals are all gone once its destructors start.
#[cfg(not(loom))]
macro_rules! thread_locals {
    () => {};
    ($(#[$attr:meta])* static $name:ident: $t:ty = const $init:block; $($rest:tt)*) => {
        std::thread_local! { $(#[$attr])* static $name: $t = const $init; }
        crate::sync::thread_locals!($($rest)*);
    };
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        std::thread_local! { $(#[$attr])* static $name: $t = $init; }
        crate::sync::thread_locals!($($rest)*);
    };
}

/// Declares thread-locals (see the non-loom definition).
#[cfg(loom)]
macro_rules! thread_locals {
    () => {};
    ($(#[$attr:meta])* static $name:ident: $t:ty = const $init:block; $($rest:tt)*) => {
        loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
        crate::sync::thread_locals!($($rest)*);
    };
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
        crate::sync::thread_locals!($($rest)*);
    };
}

pub(crate) use thread_locals;

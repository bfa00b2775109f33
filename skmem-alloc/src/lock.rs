//! A spin lock that never allocates and can be taken and released by hand
//! around `fork()`.
//!
//! The allocator's slow paths cannot use `std` or `parking_lot` mutexes:
//! the latter allocate their parking table on first contention, and the
//! `pthread_atfork` handlers must hold a lock across a call boundary (taken
//! in *prepare*, released in *parent* and *child*), which a guard cannot
//! express. Critical sections here are short (one batch into or out of a
//! cache), so spinning and then yielding the CPU is enough.
//!
//! # Invariants
//!
//! `locked` is `true` exactly while one holder is between `acquire` and
//! `release`; acquire has `Acquire` ordering and release `Release`, so the
//! data a lock protects is published to the next holder.

use core::hint::spin_loop;
use core::sync::atomic::{AtomicBool, Ordering};

/// A test-and-test-and-set lock with a yielding back-off.
#[derive(Debug)]
pub(crate) struct SpinLock {
    locked: AtomicBool,
}

impl SpinLock {
    /// An unlocked lock.
    pub(crate) const fn new() -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
        }
    }

    /// Takes the lock, spinning and then yielding while another holds it.
    pub(crate) fn acquire(&self) {
        let mut spins = 0u32;
        loop {
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            while self.locked.load(Ordering::Relaxed) {
                if spins < 128 {
                    spins += 1;
                    spin_loop();
                } else {
                    // SAFETY: sched_yield has no preconditions.
                    unsafe { libc::sched_yield() };
                }
            }
        }
    }

    /// Takes the lock if it is free.
    pub(crate) fn try_acquire(&self) -> bool {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases the lock.
    ///
    /// The caller holds it (took it with `acquire` or `try_acquire`), or is
    /// the only thread left after `fork()` of the thread that held it.
    pub(crate) fn release(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// Takes the lock for the duration of the returned guard.
    pub(crate) fn lock(&self) -> SpinGuard<'_> {
        self.acquire();
        SpinGuard(self)
    }
}

/// Holds a [`SpinLock`]; releases it when dropped (also on unwind).
pub(crate) struct SpinGuard<'a>(&'a SpinLock);

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

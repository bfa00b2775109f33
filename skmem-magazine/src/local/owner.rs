//! An owner-only slot: one thread uses the value with plain loads and
//! stores; any other thread first *stops* the slot and waits for the owner.
//!
//! [`PerThread`](super::PerThread) keeps each thread's magazines in one
//! [`OwnerSlot`]. The owning thread's alloc and free run through
//! [`OwnerSlot::with_owned`], which executes no locked instruction; purge,
//! reap, resize, stats and cache teardown run through
//! [`OwnerSlot::visit_all`] from any thread.
//!
//! # The handshake: an asymmetric Dekker
//!
//! Every slot has an owner-written `busy` flag, a remote-written `stop`
//! flag and a one-byte lock that only remote parties and the owner's slow
//! path take.
//!
//! * Owner ([`with_owned`](OwnerSlot::with_owned)): `busy = 1` (relaxed);
//!   *light barrier*; load `stop` (acquire). If it is 0, use the value and
//!   then `busy = 0` (release, also on unwind). If it is not 0, set
//!   `busy = 0` (release) and take the slow path: lock, use the value,
//!   unlock. The lock blocks until the remote party is done.
//! * Remote ([`visit_all`](OwnerSlot::visit_all)): take the lock of every
//!   slot and set `stop = 1` (relaxed) in each; one *heavy barrier*; then,
//!   slot by slot, wait until `busy == 0` (acquire), use the value, set
//!   `stop = 0` (release) and unlock. One heavy barrier covers a whole walk.
//!
//! The light barrier is a compiler fence; the heavy barrier is
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, registered once per
//! process. This is folly's `asymmetricLightBarrier` /
//! `asymmetricHeavyBarrier` pair. The kernel makes every running thread of
//! the process execute a full memory barrier inside the syscall, and a
//! thread that is not running has passed through a context switch, which
//! is a full barrier too. So in the owner's instruction stream there is a
//! point P ordered with the remote's `membarrier`. Take the owner's
//! operation whose `busy = 1` store and `stop` load lie around that point
//! (the compiler fence keeps them in program order):
//!
//! * the store is before P: it is globally visible when `membarrier`
//!   returns, so the remote reads `busy == 1` and waits for the release
//!   store `busy = 0`, which also publishes the owner's writes to the value;
//! * the store is after P: so is the load, which then reads `stop == 1`
//!   (the remote stored it before the syscall, which begins with a full
//!   barrier); the owner backs off to the lock, which the remote holds.
//!
//! Either way owner and remote never use the value at once. The owner reads
//! `stop` with acquire, so when it reads the 0 a remote stored on leaving
//! (release) it also sees that remote's writes to the value. Remotes
//! exclude each other and the owner's slow path with the lock.
//!
//! # Fallback: the locked mode
//!
//! Where membarrier is unavailable (kernel without it, seccomp, Miri,
//! non-Linux), or when `SKMEM_MEMBARRIER=off` is set in the environment at
//! the first use, slots are created *locked*: `stop` holds the permanent
//! value [`LOCKED`], so the owner always takes the slow path (an uncontended
//! lock, as before this handshake existed) and remote parties only lock.
//! This puts no mode test on the fast path: the owner's `stop` check already
//! sends it to the lock. [`Mode`] says which mode is active; the mode is
//! decided once per process, before the first slot exists, and never
//! changes.
//!
//! # Loom
//!
//! Under `--cfg loom` both barriers are `fence(SeqCst)`: the owner's light
//! barrier becomes a real fence and the remote's `membarrier` is modelled
//! by a fence of its own. Two `SeqCst` fences give the same "one of the two
//! sees the other's store" guarantee the argument above needs (C++
//! [atomics.fences]), which is as far as loom can express the asymmetric
//! pair. `tests/loom_owner.rs` checks the handshake that way.
//!
//! # Safety and correctness
//!
//! * Only one thread, the *owner*, calls the owner-side methods
//!   ([`with_owned`](OwnerSlot::with_owned),
//!   [`with_owned_locked`](OwnerSlot::with_owned_locked)) of a slot; this is
//!   their `# Safety` contract. `busy` is 1 exactly while the owner is inside
//!   one (also in the slow path, under the lock), so a nested call from the
//!   closure is detected and panics rather than aliasing the value.
//! * `busy` is written only by the owner, `stop` only under the lock.
//! * The value is used by the owner with `busy == 1 && stop == 0` observed,
//!   or under the lock; by a remote only under the lock, with `stop` set,
//!   after the heavy barrier, and after `busy == 0` observed (membarrier
//!   mode), or under the lock alone (locked mode, where the owner never
//!   touches the value without the lock).

use core::sync::atomic::compiler_fence;

#[cfg(loom)]
use crate::sync::fence;
#[cfg(not(loom))]
use crate::sync::AtomicBool;
use crate::sync::{AtomicU32, AtomicU8, Ordering, UnsafeCell};

/// Owner back-offs to the lock because a remote party had stopped the slot
/// (locked-mode slots, which always take the lock, are not counted).
static BACKOFFS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times, process-wide, an owner found its slot stopped by a
/// remote party and waited for the lock: shows the hand-off path running.
pub fn owner_slot_backoffs() -> u64 {
    BACKOFFS.load(std::sync::atomic::Ordering::Relaxed)
}

/// `stop` value: no remote party is here.
const GO: u8 = 0;
/// `stop` value: a remote party holds the lock and wants the value.
const STOPPED: u8 = 1;
/// `stop` value, permanent: the slot runs in [`Mode::Locked`].
const LOCKED: u8 = 2;

/// How the owner/remote handshake of [`OwnerSlot`]s runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Owner: plain stores and a compiler fence; remote:
    /// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`.
    Membarrier,
    /// Every party takes the slot's lock (membarrier unavailable or
    /// disabled with `SKMEM_MEMBARRIER=off`).
    Locked,
    /// Loom builds: both barriers are `fence(SeqCst)`.
    Fenced,
}

impl Mode {
    /// The handshake mode of this process, decided (and membarrier
    /// registered) on the first call.
    pub fn current() -> Mode {
        imp::mode()
    }

    /// Short name: `membarrier`, `locked` or `fenced`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Membarrier => "membarrier",
            Mode::Locked => "locked",
            Mode::Fenced => "fenced",
        }
    }
}

#[cfg(not(loom))]
mod imp {
    use super::Mode;
    use std::sync::OnceLock;

    static MODE: OnceLock<Mode> = OnceLock::new();

    pub(super) fn mode() -> Mode {
        *MODE.get_or_init(detect)
    }

    fn detect() -> Mode {
        if std::env::var_os("SKMEM_MEMBARRIER").is_some_and(|v| v == "off") {
            return Mode::Locked;
        }
        #[cfg(all(target_os = "linux", not(miri)))]
        {
            use rustix::thread::{membarrier, membarrier_query, MembarrierCommand as Cmd};
            let q = membarrier_query();
            if q.contains_command(Cmd::PrivateExpedited)
                && q.contains_command(Cmd::RegisterPrivateExpedited)
                && membarrier(Cmd::RegisterPrivateExpedited).is_ok()
            {
                return Mode::Membarrier;
            }
        }
        Mode::Locked
    }

    /// The remote side's barrier in [`Mode::Membarrier`].
    pub(super) fn heavy_barrier() {
        #[cfg(all(target_os = "linux", not(miri)))]
        {
            use rustix::thread::{membarrier, MembarrierCommand as Cmd};
            if let Err(e) = membarrier(Cmd::PrivateExpedited) {
                // Registration succeeded, so this cannot fail; if it did,
                // owners would race with us on plain stores. Stopping the
                // process is the only safe answer.
                eprintln!("skmem: membarrier(PRIVATE_EXPEDITED) failed after registration: {e}");
                std::process::abort();
            }
        }
        #[cfg(not(all(target_os = "linux", not(miri))))]
        unreachable!("Mode::Membarrier is only chosen on Linux")
    }

    /// Waits a little while another party finishes.
    pub(super) struct Spin(crossbeam_utils::Backoff);

    impl Spin {
        pub(super) fn new() -> Spin {
            Spin(crossbeam_utils::Backoff::new())
        }

        #[inline]
        pub(super) fn spin(&self) {
            self.0.snooze();
        }
    }
}

#[cfg(loom)]
mod imp {
    use super::Mode;

    pub(super) fn mode() -> Mode {
        Mode::Fenced
    }

    pub(super) fn heavy_barrier() {
        crate::sync::fence(crate::sync::Ordering::SeqCst);
    }

    pub(super) struct Spin;

    impl Spin {
        pub(super) fn new() -> Spin {
            Spin
        }

        pub(super) fn spin(&self) {
            loom::thread::yield_now();
        }
    }
}

/// The owner's half of the barrier pair (see the module docs).
#[inline(always)]
fn light_barrier() {
    compiler_fence(Ordering::SeqCst);
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// A value its owning thread uses without locked instructions and other
/// threads reach through a stop/barrier handshake (module docs).
///
/// `repr(C)` with `busy` first: the slot's address is the flag the fast
/// path stores to.
#[repr(C)]
pub struct OwnerSlot<T> {
    busy: BusyFlag,
    stop: AtomicU8,
    lock: SlotLock,
    value: UnsafeCell<T>,
}

impl<T> core::fmt::Debug for OwnerSlot<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OwnerSlot")
            .field("busy", &self.busy.load(Ordering::Relaxed))
            .field("stop", &self.stop.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

// SAFETY: the value is reached by one thread at a time (module docs), so
// sharing the slot only moves `T`s between threads, which `T: Send` allows.
unsafe impl<T: Send> Sync for OwnerSlot<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for OwnerSlot<T> {}

/// An owner-side method was called from inside another on the same slot.
#[cold]
#[inline(never)]
fn reentered() -> ! {
    panic!("OwnerSlot: owner-side use re-entered from its own closure (a cache operation called from inside another on the same thread and cache)")
}

/// The owner's `busy` flag, kept in a whole aligned word: byte-wide stores
/// to it measured about 2 ns slower per alloc+free pair on AMD Zen 3 than
/// word-wide ones (the owner stores it twice per operation).
struct BusyFlag(AtomicU32);

impl BusyFlag {
    fn new() -> Self {
        BusyFlag(AtomicU32::new(0))
    }

    #[inline(always)]
    fn load(&self, order: Ordering) -> bool {
        self.0.load(order) != 0
    }

    #[inline(always)]
    fn store(&self, busy: bool, order: Ordering) {
        self.0.store(u32::from(busy), order);
    }
}

/// Clears `busy` when the owner leaves the fast path, also on unwind.
struct Busy<'a>(&'a BusyFlag);

impl Drop for Busy<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Release: publishes the owner's writes to a remote that reads 0.
        self.0.store(false, Ordering::Release);
    }
}

/// The slot's one-byte lock: taken only by remote parties and by the
/// owner's slow path. Under loom a loom mutex, which loom schedules as a
/// blocking lock instead of exploring every spin.
#[cfg(not(loom))]
struct SlotLock(AtomicBool);

/// Holds a slot's lock; gives it back on drop, also on unwind.
#[cfg(not(loom))]
struct Locked<'a>(&'a AtomicBool);

#[cfg(not(loom))]
impl Drop for Locked<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(not(loom))]
impl SlotLock {
    fn new() -> Self {
        SlotLock(AtomicBool::new(false))
    }

    fn lock(&self) -> Locked<'_> {
        if self
            .0
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        Locked(&self.0)
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let spin = imp::Spin::new();
        loop {
            while self.0.load(Ordering::Relaxed) {
                spin.spin();
            }
            if self
                .0
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    #[cfg(test)]
    fn is_locked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(loom)]
struct SlotLock(crate::sync::Mutex<()>);

#[cfg(loom)]
struct Locked<'a>(#[allow(dead_code)] crate::sync::MutexGuard<'a, ()>);

#[cfg(loom)]
impl SlotLock {
    fn new() -> Self {
        SlotLock(crate::sync::Mutex::new(()))
    }

    fn lock(&self) -> Locked<'_> {
        Locked(self.0.lock())
    }
}

/// A slot a remote party has locked and (in membarrier mode) stopped;
/// unstops and unlocks on drop, also on unwind.
struct Stopped<'a, T> {
    slot: &'a OwnerSlot<T>,
    /// `stop` was set (not a locked-mode slot): wait for `busy` and clear
    /// `stop` again.
    stopped: bool,
    _lock: Locked<'a>,
}

impl<T> Drop for Stopped<'_, T> {
    fn drop(&mut self) {
        if self.stopped {
            // Release: the owner that reads this 0 sees our writes.
            self.slot.stop.store(GO, Ordering::Release);
        }
        // `_lock` unlocks after this.
    }
}

impl<T> OwnerSlot<T> {
    /// A slot holding `value`, in this process's [`Mode`].
    pub fn new(value: T) -> Self {
        match Mode::current() {
            Mode::Locked => Self::new_locked(value),
            Mode::Membarrier | Mode::Fenced => Self::with_stop(value, GO),
        }
    }

    /// A slot that always runs in [`Mode::Locked`] (the fallback; for tests
    /// and for values whose owner is not fixed).
    pub fn new_locked(value: T) -> Self {
        Self::with_stop(value, LOCKED)
    }

    fn with_stop(value: T, stop: u8) -> Self {
        OwnerSlot {
            busy: BusyFlag::new(),
            stop: AtomicU8::new(stop),
            lock: SlotLock::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// This slot runs in [`Mode::Locked`].
    pub fn is_locked_mode(&self) -> bool {
        // `LOCKED` is set at construction and never changes; other values
        // are never `LOCKED`.
        self.stop.load(Ordering::Relaxed) == LOCKED
    }

    /// Runs `f` on the value from the owning thread: no locked instruction
    /// unless a remote party is visiting this slot or the slot is in
    /// locked mode, in which case it waits for the lock.
    ///
    /// Panics if `f` calls an owner-side method of this slot again.
    ///
    /// # Safety
    ///
    /// Only one thread ever calls the owner-side methods of this slot
    /// (`with_owned`, `with_owned_locked`).
    #[inline(always)]
    pub unsafe fn with_owned<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // Only the owner writes `busy`, and it is 1 only while the owner is
        // inside an owner-side method: reading 1 here means re-entry, which
        // would hand out a second `&mut T`.
        if self.busy.load(Ordering::Relaxed) {
            reentered();
        }
        self.busy.store(true, Ordering::Relaxed);
        light_barrier();
        if self.stop.load(Ordering::Acquire) != GO {
            // SAFETY: forwarded from the caller.
            return unsafe { self.with_owned_slow(f) };
        }
        let _busy = Busy(&self.busy);
        // SAFETY: `busy == 1` was stored before and `stop == 0` read after
        // the light barrier: no remote party uses the value until `_busy`
        // clears the flag (module docs).
        unsafe { self.value.with_mut(f) }
    }

    /// The owner's path while a remote party holds the slot (or in locked
    /// mode): back off, then wait for the lock.
    ///
    /// # Safety
    ///
    /// As [`with_owned`](Self::with_owned); `busy` is set by the caller.
    #[cold]
    #[inline(never)]
    unsafe fn with_owned_slow<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // Release: a remote waiting for 0 also sees our earlier writes.
        self.busy.store(false, Ordering::Release);
        if !self.is_locked_mode() {
            BACKOFFS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.with_owned_locked(f) }
    }

    /// Runs `f` on the value from the owning thread under the slot's lock
    /// (no barrier dance; for the thread's exit). Panics if called from
    /// inside an owner-side method of the same slot.
    ///
    /// # Safety
    ///
    /// Only one thread ever calls the owner-side methods of this slot
    /// (`with_owned`, `with_owned_locked`).
    pub unsafe fn with_owned_locked<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        if self.busy.load(Ordering::Relaxed) {
            reentered();
        }
        let _lock = self.lock();
        // Under the lock no remote party looks at `busy`; setting it only
        // makes a nested owner call panic instead of aliasing the value.
        self.busy.store(true, Ordering::Relaxed);
        let _busy = Busy(&self.busy);
        // SAFETY: remote parties take the lock before touching the value,
        // and the owner (the caller, by contract) is not inside another
        // owner-side method (checked above).
        unsafe { self.value.with_mut(f) }
    }

    /// Runs `f` on the value of every slot from any thread: stops them all,
    /// issues one heavy barrier, then visits each and lets it go. Blocks
    /// while an owner is inside [`with_owned`](Self::with_owned) on a slot
    /// and while another party holds a slot's lock.
    ///
    /// Slots are locked in iteration order; callers that walk concurrently
    /// must agree on an order (or exclude each other, as `PerThread`'s list
    /// lock does).
    pub fn visit_all<'a, I>(slots: I, mut f: impl FnMut(&mut T))
    where
        T: 'a,
        I: IntoIterator<Item = &'a OwnerSlot<T>>,
    {
        let stopped: Vec<Stopped<'a, T>> = slots.into_iter().map(OwnerSlot::stop).collect();
        if stopped.iter().any(|s| s.stopped) {
            imp::heavy_barrier();
        }
        // A panic in `f` drops the rest unvisited, which unstops them.
        for s in stopped {
            if s.stopped {
                let spin = imp::Spin::new();
                // Acquire: pairs with the owner's release of `busy`.
                while s.slot.busy.load(Ordering::Acquire) {
                    spin.spin();
                }
            }
            // SAFETY: we hold the lock and, in membarrier mode, stopped the
            // slot, fenced, and saw `busy == 0` (module docs); in locked
            // mode the owner only uses the value under the lock.
            unsafe { s.slot.value.with_mut(&mut f) };
        }
    }

    /// Runs `f` on this slot's value from any thread
    /// ([`visit_all`](Self::visit_all) of one slot).
    pub fn visit(&self, f: impl FnOnce(&mut T)) {
        let mut f = Some(f);
        Self::visit_all([self], |v| {
            if let Some(f) = f.take() {
                f(v);
            }
        });
    }

    /// Takes the lock and, outside locked mode, raises `stop`.
    fn stop(&self) -> Stopped<'_, T> {
        let lock = self.lock();
        let stopped = !self.is_locked_mode();
        if stopped {
            // Relaxed: the heavy barrier that follows orders it.
            self.stop.store(STOPPED, Ordering::Relaxed);
        }
        Stopped {
            slot: self,
            stopped,
            _lock: lock,
        }
    }

    fn lock(&self) -> Locked<'_> {
        self.lock.lock()
    }

    /// The value, from its sole owner.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn owner_and_visitor_see_each_others_writes() {
        let slot = OwnerSlot::new(0u64);
        // SAFETY: this test thread is the only owner.
        unsafe { slot.with_owned(|v| *v += 1) };
        slot.visit(|v| *v += 10);
        // SAFETY: as above.
        assert_eq!(unsafe { slot.with_owned(|v| *v) }, 11);
        // Without membarrier (e.g. under Miri) the slot is born in the
        // permanent locked mode, which a visit must leave as it was.
        let resting = if slot.is_locked_mode() { LOCKED } else { GO };
        assert_eq!(
            slot.stop.load(Ordering::Relaxed),
            resting,
            "visit unstopped"
        );
        assert!(!slot.lock.is_locked(), "visit unlocked");
        assert_eq!(slot.into_inner(), 11);
    }

    #[test]
    fn locked_mode_is_permanent_and_still_works() {
        let slot = OwnerSlot::new_locked(5u32);
        assert!(slot.is_locked_mode());
        slot.visit(|v| *v *= 2);
        // SAFETY: sole owner.
        unsafe { slot.with_owned(|v| *v += 1) };
        assert!(slot.is_locked_mode(), "a visit must not clear LOCKED");
        assert_eq!(slot.into_inner(), 11);
    }

    #[test]
    fn a_panicking_visit_releases_every_slot() {
        let slots: Vec<OwnerSlot<u32>> = (0..3).map(OwnerSlot::new).collect();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            OwnerSlot::visit_all(&slots, |v| {
                if *v == 1 {
                    panic!("boom");
                }
                *v += 100;
            })
        }));
        assert!(r.is_err());
        for (i, s) in slots.iter().enumerate() {
            assert!(!s.lock.is_locked(), "slot {i} unlocked");
            assert_ne!(s.stop.load(Ordering::Relaxed), STOPPED, "slot {i}");
        }
        // SAFETY: sole owner of each.
        let vals: Vec<u32> = slots
            .iter()
            .map(|s| unsafe { s.with_owned(|v| *v) })
            .collect();
        assert_eq!(vals, [100, 1, 2], "slot 0 visited, 1 panicked, 2 skipped");
    }

    #[test]
    fn a_panicking_owner_clears_busy() {
        let slot = OwnerSlot::new(0u8);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: sole owner.
            unsafe { slot.with_owned(|_| panic!("boom")) }
        }));
        assert!(r.is_err());
        assert!(!slot.busy.load(Ordering::Relaxed));
        // A visitor would spin forever on a stuck `busy`.
        slot.visit(|v| *v = 3);
        assert_eq!(slot.into_inner(), 3);
    }

    #[test]
    fn reentry_panics_instead_of_aliasing() {
        for locked in [false, true] {
            let slot = if locked {
                OwnerSlot::new_locked(0u8)
            } else {
                OwnerSlot::new(0u8)
            };
            let try_nested = |outer_locked: bool, inner_locked: bool| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let inner = |_: &mut u8| {
                        // SAFETY: this thread is the only owner; the nested
                        // call is exactly what the check must catch.
                        unsafe {
                            if inner_locked {
                                slot.with_owned_locked(|v| *v += 1)
                            } else {
                                slot.with_owned(|v| *v += 1)
                            }
                        }
                    };
                    // SAFETY: as above.
                    unsafe {
                        if outer_locked {
                            slot.with_owned_locked(inner)
                        } else {
                            slot.with_owned(inner)
                        }
                    }
                }))
            };
            let nested = [
                try_nested(false, false),
                try_nested(false, true),
                try_nested(true, false),
            ];
            for (i, r) in nested.iter().enumerate() {
                assert!(r.is_err(), "nested call {i} (locked: {locked}) must panic");
            }
            // Nothing was incremented, and flag and lock were released on
            // unwind: a visit neither spins nor deadlocks.
            slot.visit(|v| assert_eq!(*v, 0));
            assert!(!slot.busy.load(Ordering::Relaxed));
        }
    }

    #[test]
    fn visitor_waits_for_a_busy_owner() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Barrier;
        let slot = OwnerSlot::new(0u64);
        let inside = Barrier::new(2);
        let visited = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: this thread is the slot's only owner.
                unsafe {
                    slot.with_owned(|v| {
                        inside.wait();
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        // The visitor stopped the slot by now, but must not
                        // have run: we are still busy.
                        assert_eq!(visited.load(Ordering::Relaxed), 0);
                        *v += 1;
                    })
                }
            });
            inside.wait();
            slot.visit(|v| {
                assert_eq!(*v, 1, "the owner's write is visible");
                visited.fetch_add(1, Ordering::Relaxed);
                *v += 1;
            });
        });
        assert_eq!(slot.into_inner(), 2);
    }
}

//! One cache-padded, locked slot per CPU, found through the CPU id, with
//! a lock-free rseq front per CPU in front of it where the platform allows
//! (see the `front` module for the protocol).

use crossbeam_utils::CachePadded;
#[cfg(rseq_front)]
use skmem_traits::FastPath;
use skmem_traits::{CpuLocal, SlotHooks};
#[cfg(rseq_front)]
use std::mem::MaybeUninit;
#[cfg(rseq_front)]
use std::ptr::NonNull;

use crate::sync::Mutex;

/// One slot per CPU, each behind its own mutex (the seed's per-CPU cache),
/// and, on x86-64 Linux with glibc's rseq area, a lock-free *front* of up
/// to [`FRONT_CAP`](super::FRONT_CAP) objects per CPU that single-object
/// alloc and free use with restartable sequences: no atomic
/// read-modify-write on that path. The locality name in stats says which
/// mode a cache runs in: `per-cpu(rseq)` or `per-cpu(locked)`.
///
/// # Why a front, not an rseq-visible magazine
///
/// The front is a fixed, `#[repr(C)]` block the assembly can index with a
/// shift; the magazines, their swap and the depot exchange keep their locked
/// code unchanged (and shared with the other policies). A miss costs one
/// trip through the locked slot for half a front of objects, so the lock's
/// cost is spread over about half of `FRONT_CAP`
/// operations. A front is one 1 KiB block (127 objects, about a magazine of
/// 64-byte objects per refill): with 31 objects, a burst of 4096 single
/// allocations paid the locked refill every 16 and ran about 1.3 ns per
/// object slower on this project's AMD EPYC machine. The price is up to `FRONT_CAP` more cached objects per CPU,
/// which the residency sizing (`magazine_max_objs_for`) includes.
///
/// The mode is decided once per process (see [`rseq_mode`](super::rseq_mode));
/// setting `SKMEM_RSEQ=0` in the environment forces the locked mode.
/// [`rseq_aborts`](super::rseq_aborts) counts the critical sections the
/// kernel restarted.
///
/// The calling thread's CPU comes, on Linux, from the rseq area glibc
/// registers (one inline `fs`-relative load on x86-64), or else from
/// `sched_getcpu` refreshed every few calls and cached per thread (see the
/// `rseq` module); other platforms and Miri use slot 0, loom a per-thread
/// index. The id may be stale: a thread migrated between reading its CPU
/// and taking the slot's lock (or still using its cached fallback id)
/// merely uses another CPU's slot; the slot's lock keeps that correct.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerCpu;

/// The slots of a [`PerCpu`] cache: [`ncpus`] rounded up to a power of
/// two, so that a CPU id maps to its slot with a mask (ids below `ncpus`
/// map to themselves; the extra slots only serve ids of CPUs that came
/// online later, and never hold magazines otherwise).
pub struct PerCpuSlots<T> {
    slots: Box<[CachePadded<Mutex<T>>]>,
    /// `slots.len() - 1`.
    mask: usize,
    /// The rseq fronts, one per slot (none in locked mode).
    #[cfg(rseq_front)]
    fronts: super::front::Fronts,
}

impl<T> core::fmt::Debug for PerCpuSlots<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("PerCpuSlots");
        d.field("slots", &self.slots.len());
        #[cfg(rseq_front)]
        d.field("fronts", &self.fronts);
        d.finish()
    }
}

/// Number of CPUs the per-CPU policy makes slots for (configured CPUs, so
/// every id `sched_getcpu` can return has its own slot).
pub fn ncpus() -> usize {
    #[cfg(any(miri, loom))]
    {
        if cfg!(loom) {
            2
        } else {
            1
        }
    }
    #[cfg(not(any(miri, loom)))]
    {
        static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *N.get_or_init(|| {
            #[cfg(unix)]
            {
                // SAFETY: `sysconf` has no preconditions; it reads a constant.
                let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
                if n > 0 {
                    return n as usize;
                }
            }
            std::thread::available_parallelism().map_or(1, |n| n.get())
        })
    }
}

/// The calling thread's CPU id (any value; callers reduce it).
#[inline(always)]
fn cpu_id() -> usize {
    #[cfg(all(target_os = "linux", not(miri), not(loom)))]
    {
        super::rseq::cpu_id()
    }
    #[cfg(loom)]
    {
        crate::sync::current_thread()
    }
    #[cfg(not(any(all(target_os = "linux", not(miri)), loom)))]
    {
        0
    }
}

// SAFETY: every slot is created by `init` in `new_slots`, before the slots
// are shared, and each is guarded by its own mutex that `with_slot` and
// `for_each_slot` both take; there are no exit hooks; dropping the boxed
// slice drops every value.
unsafe impl CpuLocal for PerCpu {
    const NAME: &'static str = "per-cpu";
    type Slots<T: Send + 'static> = PerCpuSlots<T>;

    fn slot_hint() -> usize {
        ncpus()
    }

    fn new_slots<T: Send + 'static>(hooks: SlotHooks<T>) -> PerCpuSlots<T> {
        #[cfg(all(target_os = "linux", not(miri), not(loom)))]
        super::rseq::init();
        let n = ncpus().next_power_of_two();
        let slots: Box<[_]> = (0..n)
            .map(|_| CachePadded::new(Mutex::new((hooks.init)())))
            .collect();
        PerCpuSlots {
            mask: slots.len() - 1,
            #[cfg(rseq_front)]
            fronts: super::front::Fronts::new(slots.len()),
            slots,
        }
    }

    #[inline]
    fn with_slot<T: Send + 'static, R>(
        slots: &PerCpuSlots<T>,
        f: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        let i = cpu_id() & slots.mask;
        // SAFETY: `mask == len - 1` with `len` a power of two, so `i < len`.
        let slot = unsafe { slots.slots.get_unchecked(i) };
        Some(f(&mut slot.lock()))
    }

    fn for_each_slot<T: Send + 'static>(slots: &PerCpuSlots<T>, mut f: impl FnMut(&mut T)) {
        for s in slots.slots.iter() {
            f(&mut s.lock());
        }
    }

    #[cfg(rseq_front)]
    const FRONT_OBJS_PER_SLOT: usize = super::FRONT_CAP;

    fn locality<T: Send + 'static>(slots: &PerCpuSlots<T>) -> &'static str {
        let _ = slots;
        #[cfg(rseq_front)]
        if slots.fronts.is_on() {
            return "per-cpu(rseq)";
        }
        "per-cpu(locked)"
    }

    #[cfg(rseq_front)]
    #[inline(always)]
    fn fast_pop<T: Send + 'static>(slots: &PerCpuSlots<T>) -> FastPath<NonNull<u8>> {
        match slots.fronts.pop() {
            Some(Some(obj)) => FastPath::Hit(obj),
            Some(None) => FastPath::Miss,
            None => FastPath::Off,
        }
    }

    #[cfg(rseq_front)]
    #[inline(always)]
    fn fast_push<T: Send + 'static>(slots: &PerCpuSlots<T>, obj: NonNull<u8>) -> FastPath<()> {
        match slots.fronts.push(obj) {
            Some(true) => FastPath::Hit(()),
            Some(false) => FastPath::Miss,
            None => FastPath::Off,
        }
    }

    #[cfg(rseq_front)]
    fn fast_refill<T: Send + 'static>(slots: &PerCpuSlots<T>, objs: &[NonNull<u8>]) -> usize {
        slots.fronts.push_batch(objs)
    }

    #[cfg(rseq_front)]
    fn fast_take<T: Send + 'static>(
        slots: &PerCpuSlots<T>,
        out: &mut [MaybeUninit<NonNull<u8>>],
    ) -> usize {
        slots.fronts.pop_batch(out)
    }

    #[cfg(rseq_front)]
    fn fast_drain_all<T: Send + 'static>(slots: &PerCpuSlots<T>, out: &mut Vec<NonNull<u8>>) {
        slots.fronts.drain_all(out);
    }

    #[cfg(rseq_front)]
    fn fast_cached<T: Send + 'static>(slots: &PerCpuSlots<T>) -> usize {
        slots.fronts.cached()
    }

    #[cfg(rseq_front)]
    fn fast_disable<T: Send + 'static>(slots: &PerCpuSlots<T>) {
        slots.fronts.disable();
    }
}

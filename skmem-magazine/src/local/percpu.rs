//! One cache-padded, locked slot per CPU, found through the CPU id.

use crossbeam_utils::CachePadded;
use skmem_traits::{CpuLocal, SlotHooks};

use crate::sync::Mutex;

/// One slot per CPU, each behind its own mutex (the seed's per-CPU cache).
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
}

impl<T> core::fmt::Debug for PerCpuSlots<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PerCpuSlots")
            .field("slots", &self.slots.len())
            .finish()
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
}

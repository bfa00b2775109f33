//! One locked slot shared by every thread.

use crossbeam_utils::CachePadded;
use skmem_traits::{CpuLocal, SlotHooks};

use crate::sync::Mutex;

/// One slot for all threads, behind a mutex: the baseline policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Global;

/// The slot of a [`Global`] cache.
pub struct GlobalSlots<T>(CachePadded<Mutex<T>>);

impl<T> core::fmt::Debug for GlobalSlots<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("GlobalSlots")
    }
}

// SAFETY: the single slot is created by `init` in `new_slots` (before any
// walk can exist) and guarded by a mutex that `with_slot` and
// `for_each_slot` both take; there are no exit hooks; dropping the slots
// drops the value.
unsafe impl CpuLocal for Global {
    const NAME: &'static str = "global";
    type Slots<T: Send + 'static> = GlobalSlots<T>;

    fn slot_hint() -> usize {
        1
    }

    fn new_slots<T: Send + 'static>(hooks: SlotHooks<T>) -> GlobalSlots<T> {
        GlobalSlots(CachePadded::new(Mutex::new((hooks.init)())))
    }

    #[inline]
    fn with_slot<T: Send + 'static, R>(
        slots: &GlobalSlots<T>,
        f: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        Some(f(&mut slots.0.lock()))
    }

    fn for_each_slot<T: Send + 'static>(slots: &GlobalSlots<T>, mut f: impl FnMut(&mut T)) {
        f(&mut slots.0.lock());
    }
}

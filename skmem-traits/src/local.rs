//! Where the magazine layer keeps its per-CPU state.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

/// Builds the value of a slot the first time a thread (or CPU) needs one.
pub type SlotInit<T> = Box<dyn Fn() -> T + Send + Sync>;

/// Work a slot's exit hook hands back, run on the exiting thread after the
/// locality policy has released every lock it held.
pub type ExitJob = Box<dyn FnOnce() + Send>;

/// Called, under the slot's exclusion, when the thread that owns a slot
/// exits. Returning `Some(job)` says "I took what I needed out of the slot":
/// the policy then forgets the slot (drops its value) and runs `job` once
/// its locks are released. Returning `None` leaves the slot, value and all,
/// where [`CpuLocal::for_each_slot`] will still find it.
pub type ExitHook<T> = Box<dyn Fn(&mut T) -> Option<ExitJob> + Send + Sync>;

/// The callbacks a locality policy needs from the layer that owns the slots.
pub struct SlotHooks<T> {
    /// Creates a slot's value. Policies that create slots lazily call it
    /// under the same exclusion that [`CpuLocal::for_each_slot`] takes
    /// while it walks the slots, so a walk either sees the new slot or
    /// happens entirely before `init` ran.
    pub init: SlotInit<T>,
    /// Thread-exit hook, for policies whose slots belong to threads.
    pub on_exit: Option<ExitHook<T>>,
}

impl<T> core::fmt::Debug for SlotHooks<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SlotHooks")
            .field("on_exit", &self.on_exit.is_some())
            .finish_non_exhaustive()
    }
}

/// A locality policy: how many slots of per-CPU state a cache keeps, and
/// which slot the calling thread uses.
///
/// Implementations live in `skmem-magazine` (`PerCpu`, `PerThread`,
/// `Global`); the trait is here so that every layer can name it. The
/// magazine layer keeps a loaded and a previous magazine in each slot; the
/// policy decides how a thread finds its slot (the CPU it runs on, its own
/// thread-local storage, or one shared slot) and how the slot is guarded.
///
/// # Safety
///
/// The magazine layer hands out the objects it finds in a slot, so an
/// implementation must guarantee:
///
/// * [`with_slot`](Self::with_slot) gives the closure exclusive access to
///   one slot: no other `with_slot` or `for_each_slot` call, on any thread,
///   reaches the same slot until the closure returns (a lock, or a lock that
///   only the owning thread and walkers ever take);
/// * `with_slot` returns `None` only without calling the closure (the
///   calling thread can have no slot, e.g. during its own exit);
/// * every slot value is created by [`SlotHooks::init`]; creation of a slot
///   and a concurrent [`for_each_slot`](Self::for_each_slot) are ordered:
///   the walk visits the new slot or `init` runs after the walk began to
///   hold its exclusion (see [`SlotHooks::init`]);
/// * `for_each_slot` visits every slot that holds a value, each under the
///   same exclusion, except values handed to an exit hook that returned
///   `Some` (those are never reached again), so that a purge reaches every
///   cached object;
/// * an exit hook runs at most once per slot, under the slot's exclusion,
///   and the job it returns runs exactly once, after the policy released
///   its locks;
/// * dropping the slots drops every value still held, and nothing reaches
///   a slot afterwards;
/// * the optional *front* (the `fast_*` methods, for policies with a
///   lock-free per-CPU array in front of the slots): every pointer handed to
///   [`fast_push`](Self::fast_push) or [`fast_refill`](Self::fast_refill)
///   comes back exactly once, from [`fast_pop`](Self::fast_pop),
///   [`fast_take`](Self::fast_take) or
///   [`fast_drain_all`](Self::fast_drain_all), and never to two callers;
///   `fast_drain_all` returns every pointer resting in the front when it
///   began, and the front holds at most
///   [`FRONT_OBJS_PER_SLOT`](Self::FRONT_OBJS_PER_SLOT) pointers per slot.
pub unsafe trait CpuLocal: Send + Sync + Sized + 'static {
    /// Human-readable name for stats and benchmark labels.
    const NAME: &'static str;

    /// The storage of one cache's slots, each holding a `T`.
    type Slots<T: Send + 'static>: Send + Sync;

    /// How many slots typically hold state at once (CPUs for a per-CPU
    /// policy, 1 for a global one, the hardware parallelism for a per-thread
    /// one). The magazine layer sizes its worst-case object residency
    /// with it.
    fn slot_hint() -> usize;

    /// Creates the slots of one cache.
    fn new_slots<T: Send + 'static>(hooks: SlotHooks<T>) -> Self::Slots<T>;

    /// Runs `f` on the calling thread's slot, exclusively; `None` when the
    /// calling thread can have no slot (then `f` was not called).
    fn with_slot<T: Send + 'static, R>(
        slots: &Self::Slots<T>,
        f: impl FnOnce(&mut T) -> R,
    ) -> Option<R>;

    /// Runs `f` on every slot in turn, each exclusively.
    fn for_each_slot<T: Send + 'static>(slots: &Self::Slots<T>, f: impl FnMut(&mut T));

    /// Most objects a front holds per slot (0: the policy has no front).
    /// The magazine layer's residency sizing reserves a fixed number per
    /// slot (`skmem_magazine::local::FRONT_CAP`) and refuses, at compile
    /// time, a policy that declares more.
    const FRONT_OBJS_PER_SLOT: usize = 0;

    /// The locality name a cache reports in its stats; a policy whose mode
    /// is chosen at run time says which (e.g. `per-cpu(rseq)`).
    fn locality<T: Send + 'static>(slots: &Self::Slots<T>) -> &'static str {
        let _ = slots;
        Self::NAME
    }

    /// Pops one object from the calling CPU's front without a lock.
    /// [`FastPath::Off`] when the policy has no front (or it is switched
    /// off): the caller uses [`with_slot`](Self::with_slot) instead.
    #[inline(always)]
    fn fast_pop<T: Send + 'static>(slots: &Self::Slots<T>) -> FastPath<NonNull<u8>> {
        let _ = slots;
        FastPath::Off
    }

    /// Pushes one object onto the calling CPU's front without a lock;
    /// [`FastPath::Miss`] (front full or stopped) leaves `obj` with the
    /// caller.
    #[inline(always)]
    fn fast_push<T: Send + 'static>(slots: &Self::Slots<T>, obj: NonNull<u8>) -> FastPath<()> {
        let _ = (slots, obj);
        FastPath::Off
    }

    /// Pushes a prefix of `objs` onto the calling CPU's front in one
    /// commit; returns its length (the rest stays with the caller).
    fn fast_refill<T: Send + 'static>(slots: &Self::Slots<T>, objs: &[NonNull<u8>]) -> usize {
        let _ = (slots, objs);
        0
    }

    /// Pops up to `out.len()` objects from the calling CPU's front in one
    /// commit into a prefix of `out`; returns how many.
    fn fast_take<T: Send + 'static>(
        slots: &Self::Slots<T>,
        out: &mut [MaybeUninit<NonNull<u8>>],
    ) -> usize {
        let _ = (slots, out);
        0
    }

    /// Empties every front (of every CPU, from any thread) into `out`.
    /// Purge, resize and drop call it next to [`for_each_slot`](Self::for_each_slot).
    fn fast_drain_all<T: Send + 'static>(slots: &Self::Slots<T>, out: &mut Vec<NonNull<u8>>) {
        let _ = (slots, out);
    }

    /// Objects resting in the fronts now (a racy sum, exact when quiet).
    fn fast_cached<T: Send + 'static>(slots: &Self::Slots<T>) -> usize {
        let _ = slots;
        0
    }

    /// Switches the fronts off for good (a cache without magazines); call
    /// before the slots are shared.
    fn fast_disable<T: Send + 'static>(slots: &Self::Slots<T>) {
        let _ = slots;
    }
}

/// The outcome of a lock-free front operation ([`CpuLocal::fast_pop`],
/// [`CpuLocal::fast_push`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastPath<T> {
    /// Done on the calling CPU's front.
    Hit(T),
    /// The front exists but could not serve (empty, full, or stopped by a
    /// remote operation): refill or spill through the locked slot.
    Miss,
    /// No front: use the locked slot.
    Off,
}

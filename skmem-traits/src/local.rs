//! Where the magazine layer keeps its per-CPU state.

/// A locality policy: how many slots of per-CPU state a cache keeps, and
/// which slot the calling thread uses.
///
/// Implementations live in `skmem-magazine` (`PerCpu`, `PerThread`,
/// `Global`); the trait is here so that every layer can name it.
///
/// # Safety
///
/// * [`with_slot`](Self::with_slot) gives the closure exclusive access to
///   one slot: no other call, on any thread, sees the same slot until the
///   closure returns (a lock, or a slot only this thread can reach);
/// * [`for_each_slot`](Self::for_each_slot) visits every slot that ever held
///   state, each under the same exclusion, so that a purge reaches every
///   cached object.
pub unsafe trait CpuLocal: Send + Sync + Sized + 'static {
    /// Human-readable name for stats and benchmark labels.
    const NAME: &'static str;

    /// The storage of one cache's slots, each holding a `T`.
    type Slots<T: Send + 'static>: Send + Sync;

    /// Creates the slots of one cache, each initialised lazily by `init`.
    fn new_slots<T: Send + 'static>() -> Self::Slots<T>
    where
        T: Default;

    /// Runs `f` on the calling thread's slot, exclusively.
    fn with_slot<T: Send + Default + 'static, R>(
        slots: &Self::Slots<T>,
        f: impl FnOnce(&mut T) -> R,
    ) -> R;

    /// Runs `f` on every slot in turn, each exclusively.
    fn for_each_slot<T: Send + Default + 'static>(slots: &Self::Slots<T>, f: impl FnMut(&mut T));
}

//! The three [`CpuLocal`](skmem_traits::CpuLocal) policies.
//!
//! | policy | slot of a thread | guard | when to use |
//! |---|---|---|---|
//! | [`PerCpu`] | the CPU it runs on (glibc's rseq area, else `sched_getcpu` cached per thread) | single alloc/free: a lock-free rseq front per CPU (`per-cpu(rseq)`); misses, batches and the locked fallback (`per-cpu(locked)`): one `parking_lot` mutex per cache-padded slot | many threads, few CPUs; the seed's arrangement |
//! | [`PerThread`] | its own, in thread-local storage, created on first use; a one-entry memo of the last cache used makes finding it one compare | owner-only: plain stores and a compiler fence for the owner; walkers stop the slot and issue `membarrier` ([`OwnerSlot`]); a lock where membarrier is unavailable (`per-thread(membarrier)` / `per-thread(locked)`) | no locked instruction on the fast path; slots flushed to the depot at thread exit |
//! | [`Global`] | one slot for everybody | one mutex | baseline, tests |
//!
//! # Safety and correctness
//!
//! Each policy upholds the bullet contract of `CpuLocal`: one closure at a
//! time per slot, every slot visible to `for_each_slot`, slot creation
//! ordered with walks by a lock that both take.

#[cfg(rseq_front)]
mod front;
mod global;
mod owner;
mod percpu;
#[cfg(all(target_os = "linux", not(miri), not(loom)))]
mod rseq;
mod thread;

#[cfg(rseq_front)]
pub use front::{rseq_aborts, rseq_mode};
pub use global::{Global, GlobalSlots};
pub use owner::{owner_slot_backoffs, Mode as OwnerSlotMode, OwnerSlot};
pub use percpu::{ncpus, PerCpu, PerCpuSlots};

/// Objects one CPU's rseq front holds at most (see [`PerCpu`]).
pub const FRONT_CAP: usize = 127;

/// How many rseq critical sections the kernel aborted so far: always 0
/// where the per-CPU fronts cannot run (this build has no rseq).
#[cfg(not(rseq_front))]
pub fn rseq_aborts() -> u64 {
    0
}

/// Whether per-CPU caches run their fronts on rseq: never in this build
/// (not x86-64 Linux, or Miri / loom).
#[cfg(not(rseq_front))]
pub fn rseq_mode() -> bool {
    false
}
pub use thread::{per_thread_mode, PerThread, PerThreadSlots};

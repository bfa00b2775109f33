//! The magazine layer of skmem: per-CPU caches of constructed objects.
//!
//! # The problem
//!
//! A slab allocator ([`SlabCache`](skmem_slab::SlabCache)) hands out
//! constructed objects, but every allocation and free takes the slab's
//! lock: on many CPUs that lock becomes the bottleneck, and the cache lines
//! it guards bounce between CPUs. Bonwick and Adams' answer (USENIX 2001),
//! which XNU's Skywalk keeps in `skmem_cache.c`, is a *magazine layer*:
//!
//! * each CPU keeps two **magazines** (small stacks of object pointers), a
//!   *loaded* one it pops from and pushes to, and a *previous* one it swaps
//!   with when the loaded one runs empty or full, so a CPU alternating
//!   between allocation and free never leaves its own slot;
//! * a **depot** holds full and empty magazines shared by all CPUs; a CPU
//!   trades a whole magazine with it at a time, and it tracks its working
//!   set so that a reap gives back only what was not used lately;
//! * objects resting in magazines stay **constructed**: the constructor runs
//!   when an object leaves the slab layer, the destructor when it returns.
//!
//! # The layers here
//!
//! ```text
//!   Cache<B, L, G>          this crate: CPU layer (L) + depot, magazines of ladder G
//!     └─ B: ObjectLayer     normally SlabCache<S, C, M> (skmem-slab)
//!          └─ Region<S, M>  segments from a SegmentSource S (skmem_slab::Heap, skmem-backends)
//! ```
//!
//! * [`Cache`] is generic over the layer beneath ([`ObjectLayer`]), the CPU
//!   locality policy ([`CpuLocal`]: [`PerCpu`],
//!   [`PerThread`], [`Global`]) and the magazine [`Ladder`]. No boxing, no
//!   dynamic dispatch on the fast path: only taking the calling thread's
//!   slot and popping or pushing there is generic and inline; the depot,
//!   the slow paths and maintenance are one non-generic core, compiled once
//!   and reached through trait objects, and magazines are sized at run time
//!   to their ladder step. On x86-64 Linux, [`PerCpu`]'s
//!   single-object alloc and free run as restartable sequences on a small
//!   per-CPU front (no atomic read-modify-write); elsewhere, and where the
//!   process has no rseq, it falls back to locked slots at run time (stats
//!   say `per-cpu(rseq)` or `per-cpu(locked)`).
//! * Front doors: the raw `alloc` / `unsafe free` pair, batches,
//!   [`allocator_api2::alloc::Allocator`] through [`Cache::allocator`] (for
//!   `Vec`, `Box`, `hashbrown`; plain private memory only),
//!   and [`TypedCache`] handing out [`CachedBox`]es of constructed `T`s.
//! * Maintenance: [`Cache::update`] (working set, contention, resize),
//!   [`Cache::reap_now`], [`Cache::reclaim`], the global [`update_all`] /
//!   [`reap_all`] / [`all_stats`] over a registry of live caches, and a
//!   [`Maintenance`] thread running them on an interval.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use skmem_magazine::{magazine_max_objs_for, Cache, CacheConfig, PerThread, SeedLadder};
//! use skmem_slab::{Heap, Region, RegionParams, SlabCache, SlabConfig};
//! use skmem_traits::NoCtor;
//!
//! // A region of 64-byte objects on the heap, with room for what the
//! // magazines may hold, a slab cache on it and a magazine cache on that
//! // (`Cache::builder` does the same in one call).
//! let allowance = magazine_max_objs_for::<SeedLadder>(64, 4);
//! let params = RegionParams::new("example", 64, 256).magazine_max_objs(allowance);
//! let region: Arc<Region<Heap>> = Region::new(params, Default::default())?;
//! let slab = SlabCache::new(region, SlabConfig::new("example", 64), NoCtor)?;
//! let cache: Cache<_, PerThread> = Cache::new(slab, CacheConfig::default())?;
//! let obj = cache.alloc().expect("memory");
//! // SAFETY: `obj` came from `cache` and is not used afterwards.
//! unsafe { cache.free(obj) };
//! assert_eq!(cache.stats().cached_objs, 1, "the object rests in a magazine");
//! cache.purge();
//! assert_eq!(cache.stats().cached_objs, 0);
//! # Ok::<(), skmem_traits::Error>(())
//! ```
//!
//! # Safety and correctness
//!
//! The invariants of each part are stated in its module: [`local`] for the
//! slot protocols, `cache` for the CPU layer and depot, `magazine` for the
//! magazine itself. Loom models in `tests/loom_*.rs` (run by
//! `ci/loom.sh`) check the CPU-layer / depot exchange, resize racing alloc
//! and free, the owner-slot handshake, [`PerThread`] caches (owners racing
//! a purge, a thread's exit racing a reap or the cache's drop, a
//! [`TypedCache`] box crossing threads: `loom_per_thread.rs`) and the
//! per-CPU front's stop / membarrier handshake (`loom_rseq_stop.rs`).
//! Every lock, atomic, shared cell and thread-local these paths use goes
//! through one `sync` facade that swaps in loom's under `--cfg loom`, so
//! the whole layer, [`PerThread`], [`TypedCache`] and the builders
//! included, compiles and runs under loom with the same [`DefaultLocal`].

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod alloc_api;
mod builder;
mod cache;
mod debug;
mod depot;
pub mod ladder;
mod layer;
pub mod local;
mod magazine;
mod registry;
mod sync;
mod typed;

pub use alloc_api::CacheAllocator;
pub use builder::{CacheBuilder, Capacity, MirrorWith};
pub use cache::{Cache, CacheConfig};
pub use ladder::{
    magazine_max_objs, magazine_max_objs_for, magazine_max_objs_local, Ladder, MagType, SeedLadder,
    TinyLadder,
};
pub use layer::{ObjectLayer, RawObjects};
pub use local::{per_thread_mode, PerThread};
pub use local::{Global, PerCpu};
pub use registry::{all_stats, reap_all, update_all, Maintenance, MaintenanceConfig};
pub use typed::{CachedBox, OwnedBox, TypedCache, TypedCacheBuilder, TypedCtor, TypedInner};

/// The locality every layer defaults to ([`Cache`], [`TypedCache`], the
/// packet pool, the `skmem` builders): [`PerThread`].
///
/// Why per thread: its fast path touches only the calling thread's own slot
/// (no lock, no atomic read-modify-write, no restartable sequence), so it
/// needs no `rseq` support from the kernel and stays correct when threads
/// migrate between CPUs; a thread's magazines go back to the depot when it
/// exits. [`PerCpu`] bounds the cached objects by the CPU count instead of
/// the thread count: pick it with `locality::<PerCpu>()` for many
/// short-lived or mostly idle threads.
pub type DefaultLocal = PerThread;

pub use skmem_slab::DebugFlags;
pub use skmem_traits::stats::CacheStats;
pub use skmem_traits::{AllocFlags, CpuLocal, Error, Result};

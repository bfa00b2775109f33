//! **skmem**: slab and magazine memory for user space, after the memory
//! subsystem of Apple XNU's Skywalk. This crate is the front door: it
//! re-exports every layer and their builders, so one dependency and one
//! `use` line are enough.
//!
//! ```
//! let cache = skmem::Cache::builder("objects", 128).capacity(1024).build()?;
//! let obj = cache.alloc().expect("memory");
//! // SAFETY: `obj` came from `cache` and is not used afterwards.
//! unsafe { cache.free(obj) };
//! # Ok::<(), skmem::Error>(())
//! ```
//!
//! # What is here
//!
//! * The builders: [`Cache::builder`] (a magazine cache over a slab cache
//!   over a region, with the magazine allowance computed; see
//!   [`CacheBuilder`] for what `capacity` and `max_capacity` mean) and
//!   [`TypedCache::builder`] (constructed `T`s, a reset hook, boxes that own
//!   a handle to their cache: [`OwnedBox`]).
//! * The layers, for stacking by hand: [`Region`] / [`RegionParams`],
//!   [`SlabCache`] / [`SlabConfig`], [`Cache`] / [`CacheConfig`], and the
//!   whole crates as modules ([`traits`], [`backends`], [`slab`],
//!   [`magazine`], and `packet` and `arena` with their features).
//! * The policies: segment sources ([`Heap`], and on Linux [`Mmap`],
//!   [`Vfio`], [`Pagemap`]), localities ([`PerThread`], [`PerCpu`],
//!   [`Global`]), constructors ([`ObjectCtor`], [`NoCtor`]), mirrors
//!   ([`Mirror`], [`NoMirror`], [`Shadow`]).
//! * Packets (feature `packet`, on by default): `PacketPool`,
//!   `OwnedPacket` (freed on drop, safe accessors) next to the raw
//!   `Packet` / `Buflet` handles. Arenas (feature `arena`, on by
//!   default, Linux; the `skmem-arena` crate): `Arena`, `ArenaConfig`,
//!   `UserView`, and the whole crate as `skmem::arena`.
//!
//! The DMA backends (`Vfio`, `Pagemap`) are always compiled on Linux:
//! their only extra dependency is `vfio-bindings` (plain structs and
//! constants), so they sit behind no feature.
//!
//! # One default locality
//!
//! Every layer defaults to [`DefaultLocal`], which is [`PerThread`]: its
//! fast path touches only the calling thread's own slot (no lock, no
//! atomic read-modify-write) and needs no `rseq` support from the kernel,
//! and a thread's magazines go back to the shared depot when it exits.
//! [`PerCpu`] bounds what magazines hold by the CPU count rather than the
//! thread count; choose it with `.locality::<PerCpu>()`.
//!
//! # Names
//!
//! The same words mean the same thing at every layer:
//!
//! | name | takes | returns |
//! |------|-------|---------|
//! | `alloc()` | nothing: never waits ([`AllocFlags::NoSleep`]) | `Option<_>` (`None`: out of memory) |
//! | `alloc_with(flags)` | [`AllocFlags`] | `Result<_>` naming what ran out or failed |
//! | `alloc_batch(out, flags)` / `free_batch(objs)` | many at once | how many were handed out |
//! | `alloc_owned*` | as above | an owning handle, freed on drop |
//! | `unsafe free(obj)` | one object of this cache | nothing (a foreign object panics) |
//! | `unsafe try_free(ptr)` | an address from untrusted input | `Result<()>`: a bad one is an error, not a panic |
//!
//! [`SlabCache`], [`Cache`] and [`TypedCache`] have the `alloc` /
//! `alloc_with` pair; the layers' shared interface
//! ([`ObjectLayer`](magazine::ObjectLayer)) has `alloc_with`. Packet pools
//! always take flags (a packet also needs its buflet count), so their
//! calls name what they allocate: `alloc_packet`, `alloc_buflet`,
//! `alloc_buffer`, and `alloc_batch_each` for a batch that calls back per
//! packet. [`AllocFlags::Sleep`] may wait forever;
//! [`AllocFlags::SleepFor`] bounds the wait.
//!
//! # Safety and correctness
//!
//! This crate has no code of its own beyond re-exports: each layer states
//! its invariants in its own crate's module docs.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]
#![forbid(unsafe_code)]

/// Arenas: a pool's regions mapped into other processes (the
/// `skmem-arena` crate; Linux only).
#[cfg(all(feature = "arena", target_os = "linux"))]
pub use skmem_arena as arena;
pub use skmem_backends as backends;
pub use skmem_magazine as magazine;
#[cfg(feature = "packet")]
pub use skmem_packet as packet;
pub use skmem_slab as slab;
/// Statistics for people and other processes: the registry dump,
/// `SKMEM_SHOW_STATS`, and publishing for `skmem-top`
/// (`skmem::stats::publish(interval)`).
pub use skmem_stats as stats;
pub use skmem_traits as traits;

pub use skmem_traits::stats::{CacheStats, RegionStats, SlabStats};
pub use skmem_traits::{
    AllocFlags, CpuLocal, Error, Mirror, NoCtor, NoMirror, ObjectCtor, ObjectInfo, RegionMode,
    Result, SegmentSource,
};

#[cfg(target_os = "linux")]
pub use skmem_backends::{
    FakeIommu, Iommu, Mmap, MmapConfig, Pagemap, PagemapConfig, Vfio, VfioConfig, VfioContainer,
};
pub use skmem_backends::{Heap, HeapConfig};

pub use skmem_slab::{Region, RegionLayout, RegionParams, Shadow, SlabCache, SlabConfig};

pub use skmem_magazine::{
    all_stats, reap_all, update_all, Cache, CacheBuilder, CacheConfig, CachedBox, Capacity,
    DefaultLocal, Global, Maintenance, MaintenanceConfig, MirrorWith, OwnedBox, PerCpu, PerThread,
    TypedCache, TypedCacheBuilder,
};

#[cfg(feature = "packet")]
pub use skmem_packet::{
    Buflet, BufletRef, MetadataType, OwnedPacket, Packet, PacketPool, PacketPoolConfig,
    PacketQueue, PoolStats,
};

#[cfg(all(feature = "arena", target_os = "linux"))]
pub use skmem_arena::{Arena, ArenaConfig, ArenaStats, UserView};

/// The repository README, compiled as doctests (its first example is the
/// builder above).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

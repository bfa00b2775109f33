//! The slab layer: objects carved out of a region's segments (Bonwick's slab
//! allocator, as the seed's cache file drives it).
//!
//! A [`SlabCache`] turns the whole segments a [`Region`] hands out into
//! equally sized objects. Each segment becomes one **slab**; the chunk size
//! (distance between objects) and the objects per slab are the region's
//! layout, so object `i` of segment `s` is at `base(s) + i * chunk` and its
//! index in the region is `s * objs_per_slab + i`.
//!
//! # How it works
//!
//! * **Discrete bufctls.** Every object has a bufctl kept *outside* the
//!   segment, in an array owned by its slab; a free object's bufctl holds the
//!   index of the next free object of the slab. Nothing is ever written into
//!   a free object, because the object may be mapped into another process
//!   (an [`MMAPOK`](RegionMode::MMAPOK) region) or visible to a device.
//! * **Three slab lists.** A slab is on the *partial* list (some objects
//!   out), the *empty* list (none out) or the *full* list (all out).
//!   Allocation takes from the first partial slab, then from an empty one,
//!   and only then asks the region for a new segment. A slab that becomes
//!   empty stays cached only if no other empty slab is; otherwise the
//!   oldest empty slab's segment goes back to the region at once.
//!   [`reap`](SlabCache::reap) returns every empty slab.
//! * **Allocated-address lookup.** Freeing (and [`object_info`]) maps an
//!   address to its bufctl. When the region's source is one contiguous span
//!   ([`Region::span`]), the segment index is `(addr - span) / seg_size`, the
//!   slab comes from a table indexed by segment and the object index is
//!   `(addr - base) / chunk`: no hashing. Otherwise a `hashbrown` map holds
//!   the address of every allocated object (Bonwick's allocated-buffer hash).
//! * **Construction.** Objects are built by the cache's [`ObjectCtor`] on
//!   the way out and torn down on the way back, with the cache lock dropped.
//!   With [`ObjectCtor::ACTIVE`] `false` ([`NoCtor`]) the calls are
//!   compiled out. A constructor error puts the object back and fails the
//!   allocation. [`SlabConfig::clear_on_free`] zeroes an object (and its
//!   shadow) after the destructor, before it rejoins the slab.
//! * **Chains.** A cache in [`SlabConfig::batch`] mode also hands out and
//!   takes back chains of objects linked through each object's first word
//!   ([`alloc_chain`](SlabCache::alloc_chain),
//!   [`free_chain`](SlabCache::free_chain)). That stores pointers inside
//!   objects, so it is refused on regions another process may map
//!   ([`MMAPOK`](RegionMode::MMAPOK), [`SHAREOK`](RegionMode::SHAREOK)). The
//!   slice-based [`alloc_batch`](SlabCache::alloc_batch) and
//!   [`free_batch`](SlabCache::free_batch) work everywhere.
//!
//! # Locking
//!
//! One `parking_lot` mutex guards the slabs, lists and lookup. It is never
//! held while calling the constructor, the destructor, or the region:
//! growing drops the lock, calls [`Region::alloc_segment`] (which may block
//! and ask reapers — possibly this very cache — to give memory back), then
//! takes the lock again to insert the slab. A free is two short critical
//! sections around the destructor: the first marks the object as *being
//! freed* (so a concurrent second free of it is caught), the second puts it
//! on its slab's free list. With nothing to run in between (no constructor,
//! no clearing) a single free does both halves in one critical section.
//! Batches take the lock once per group of up to 32 objects.
//!
//! # Safety and correctness
//!
//! Invariants, all maintained under the cache lock:
//!
//! * Every object of every slab is in exactly one state: *free* (on its
//!   slab's bufctl free list, exactly once), *allocated* (handed out; in the
//!   address hash when lookup is by hash), or *being freed* (between the two
//!   halves of a free). Only an allocated object can be freed, so a double
//!   or concurrent free is detected, never executed twice.
//! * A slab's `in_use` counts its allocated and being-freed objects; the
//!   slab is on exactly one of the empty / partial / full lists, the one its
//!   `in_use` and free list call for.
//! * Each slab owns one live segment of the region, listed once in the
//!   lookup; a segment is given back to the region only when its slab is
//!   empty (no allocated or being-freed object) and has been removed from
//!   every table, so no later lookup can reach its memory.
//! * Object addresses are computed from the segment base with in-bounds
//!   pointer offsets (`idx < objs_per_slab`, `objs_per_slab * chunk <=
//!   seg_size`), so they keep the segment's provenance; no integer is ever
//!   turned back into a pointer.
//! * Objects are touched only through raw pointers (clearing, chain links):
//!   no Rust reference is formed into memory another process may write.
//! * Counters: `sl_alloc - sl_free == sl_bufinuse` and
//!   `sl_create - sl_destroy == partial + empty + full` at every snapshot.
//!   A constructor failure counts as one allocation, one free and one
//!   allocation failure; `ctor` counts successful constructions only, so
//!   `ctor == dtor` once every object is back.
//! * A constructor that panics is caught: its object goes back to its slab
//!   unconstructed (counted as a constructor failure), and so does the rest
//!   of a batch, including the objects the batch had already constructed
//!   (destructed first); then the panic goes on. A destructor that panics is caught:
//!   the object still goes back to its slab (the constructor rebuilds it
//!   before it is handed out again), the rest of a batch is freed as well,
//!   and the panic is resumed once every object of the call is back, with
//!   no lock held. A destructor panic therefore loses no object and leaves
//!   the cache fully usable.
//! * A cache dropped with objects out keeps (leaks) the slabs holding them,
//!   so that memory stays valid for whoever still uses it, and logs the
//!   count; empty slabs go back to the region.
//!
//! [`object_info`]: SlabCache::object_info

mod debug;
mod inner;
mod sync;

use std::any::Any;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skmem_traits::stats::SlabStats;
use skmem_traits::{
    AllocFlags, Error, Mirror, NoCtor, NoMirror, ObjectCtor, ObjectInfo, RegionMode, Result,
    SegmentSource, CACHE_LINE_SIZE,
};

use self::inner::{Fault, Geometry, Obj, Slab, State, MAX_OBJS_PER_SLAB};
use self::sync::{Condvar, Mutex};
use crate::debug::DebugFlags;
use crate::region::{Reap, Region, Segment};

/// Empty slabs kept cached after frees (more are returned to the region).
const KEEP_EMPTY: u64 = 1;

/// Objects moved per lock acquisition in batch operations.
const GROUP: usize = 32;

/// Why a batch allocation stopped short: an error to return, or a panic
/// (from a constructor, or a destructor the region's reap ran) to resume
/// once the batch's objects are back.
enum BatchStop {
    Error(Error),
    Panic(Box<dyn Any + Send>),
}

/// Longest pause between two attempts of a sleeping allocation to take a
/// segment from an exhausted region.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(64);

/// What a slab cache is asked to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlabConfig {
    /// Cache name, used in stats, logs and panics.
    pub name: String,
    /// Requested object size; at most the region's chunk size.
    pub obj_size: usize,
    /// Requested object alignment: a power of two, at most the alignment
    /// the region's chunks have.
    pub align: usize,
    /// Zero each object (and its shadow) when it returns to its slab, after
    /// the destructor.
    pub clear_on_free: bool,
    /// Allow chain batch operations, which link objects through their first
    /// word. Refused on regions another process may map.
    pub batch: bool,
    /// Debug checks (see [`crate::debug`]); [`SlabConfig::new`] starts from
    /// the process-wide `SKMEM_DEBUG` flags.
    pub debug: DebugFlags,
}

impl SlabConfig {
    /// A configuration for objects of `obj_size` bytes, aligned to their
    /// natural alignment (the largest power of two dividing `obj_size`,
    /// capped at the cache line), without clearing or batching.
    pub fn new(name: impl Into<String>, obj_size: usize) -> Self {
        let natural = if obj_size == 0 {
            1
        } else {
            1usize
                << obj_size
                    .trailing_zeros()
                    .min(CACHE_LINE_SIZE.trailing_zeros())
        };
        SlabConfig {
            name: name.into(),
            obj_size,
            align: natural,
            clear_on_free: false,
            batch: false,
            debug: crate::debug::env_flags(),
        }
    }

    /// Sets the debug flags (replacing the process-wide ones).
    pub fn debug(mut self, flags: DebugFlags) -> Self {
        self.debug = flags;
        self
    }

    /// Sets the alignment.
    pub fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// Sets clear-on-free.
    pub fn clear_on_free(mut self, clear: bool) -> Self {
        self.clear_on_free = clear;
        self
    }

    /// Sets batch (chain) mode.
    pub fn batch(mut self, batch: bool) -> Self {
        self.batch = batch;
        self
    }
}

/// A cache of equally sized objects carved from a region's segments, one
/// slab per segment. See the [module docs](self).
///
/// `SlabCache` is `Send + Sync`; every method takes `&self`.
pub struct SlabCache<S: SegmentSource, C: ObjectCtor = NoCtor, M: Mirror = NoMirror> {
    region: Arc<Region<S, M>>,
    ctor: C,
    config: SlabConfig,
    chunk: usize,
    objs: u32,
    max_align: usize,
    state: Mutex<State>,
    /// Signalled when objects are freed while someone waits for one.
    freed: Condvar,
    ctor_calls: AtomicU64,
    dtor_calls: AtomicU64,
    /// Debug mode: the real bookkeeping and the object records. `state`
    /// then stays empty, so every operation falls into the cold paths.
    debug: Option<Arc<debug::SlabDebug>>,
    /// The registry entry of a cache built by [`new_shared`](Self::new_shared)
    /// (a cache inside a magazine cache is listed through that cache).
    registration: std::sync::OnceLock<skmem_traits::registry::Registration>,
}

impl<S: SegmentSource, C: ObjectCtor, M: Mirror> std::fmt::Debug for SlabCache<S, C, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlabCache")
            .field("name", &self.config.name)
            .field("region", &self.region.name())
            .field("chunk", &self.chunk)
            .field("objs_per_slab", &self.objs)
            .finish_non_exhaustive()
    }
}

impl<S: SegmentSource, C: ObjectCtor, M: Mirror> skmem_traits::registry::Registered
    for SlabCache<S, C, M>
{
    fn stats(&self) -> skmem_traits::registry::Stats {
        skmem_traits::registry::Stats::Slab(SlabCache::stats(self))
    }

    fn reclaim(&self, _lowmem: bool) {
        // Empty slabs are all a slab cache on its own can give back.
        self.reap();
    }
}

impl<S: SegmentSource, C: ObjectCtor, M: Mirror> SlabCache<S, C, M> {
    /// Creates a cache on `region`, building objects with `ctor`.
    ///
    /// Fails with [`Error::InvalidParam`] naming the parameter when
    /// `obj_size` is 0 or larger than the region's chunk, `align` is not a
    /// power of two or exceeds the chunks' alignment, `batch` is asked on a
    /// region another process may map ([`RegionMode::MMAPOK`] /
    /// [`RegionMode::SHAREOK`]) or read-only to its owner, or for objects
    /// smaller than a pointer, `clear_on_free` on a region read-only to its
    /// owner, or the region is a guard region.
    pub fn new(region: Arc<Region<S, M>>, config: SlabConfig, ctor: C) -> Result<Self> {
        let layout = *region.layout();
        let mode = region.mode();
        let chunk = layout.obj_size;
        let max_align = layout.align.min(1usize << chunk.trailing_zeros());
        if config.obj_size == 0 {
            return Err(Error::invalid_param("obj_size", 0, "must be non-zero"));
        }
        if config.obj_size > chunk {
            return Err(Error::invalid_param(
                "obj_size",
                config.obj_size as u64,
                "larger than the region's chunk (object) size",
            ));
        }
        if !config.align.is_power_of_two() {
            return Err(Error::invalid_param(
                "align",
                config.align as u64,
                "must be a power of two",
            ));
        }
        if config.align > max_align {
            return Err(Error::invalid_param(
                "align",
                config.align as u64,
                "larger than the alignment of the region's chunks",
            ));
        }
        if mode.contains(RegionMode::GUARD) {
            return Err(Error::invalid_param(
                "region",
                mode.bits() as u64,
                "a guard region holds no objects",
            ));
        }
        if config.batch {
            if mode.intersects(RegionMode::MMAPOK | RegionMode::SHAREOK) {
                return Err(Error::invalid_param(
                    "batch",
                    mode.bits() as u64,
                    "chains store pointers in objects; refused on regions another process may map (MMAPOK/SHAREOK)",
                ));
            }
            if mode.contains(RegionMode::KREADONLY) {
                return Err(Error::invalid_param(
                    "batch",
                    mode.bits() as u64,
                    "chains write into objects; the region is read-only to its owner",
                ));
            }
            if config.obj_size < size_of::<*mut u8>() {
                return Err(Error::invalid_param(
                    "batch",
                    config.obj_size as u64,
                    "objects smaller than a pointer cannot carry a chain link",
                ));
            }
        }
        if config.clear_on_free && mode.contains(RegionMode::KREADONLY) {
            return Err(Error::invalid_param(
                "clear_on_free",
                mode.bits() as u64,
                "the region is read-only to its owner",
            ));
        }
        if layout.objs_per_seg == 0 || layout.objs_per_seg > MAX_OBJS_PER_SLAB {
            return Err(Error::invalid_param(
                "region",
                layout.objs_per_seg as u64,
                "objects per segment out of the slab layer's range",
            ));
        }
        let geometry = Geometry {
            chunk,
            objs: layout.objs_per_seg,
            seg_size: layout.seg_size,
            seg_count: layout.seg_count,
            span: region.span(),
        };
        let state = State::new(geometry);
        let debug = debug::SlabDebug::new(&config, geometry, mode, C::ACTIVE);
        tracing::debug!(
            cache = %config.name,
            region = %region.name(),
            chunk,
            objs_per_slab = layout.objs_per_seg,
            arithmetic = region.span().is_some(),
            "slab cache created"
        );
        Ok(SlabCache {
            chunk,
            objs: layout.objs_per_seg,
            max_align,
            region,
            ctor,
            config,
            state: Mutex::new(state),
            freed: Condvar::new(),
            ctor_calls: AtomicU64::new(0),
            dtor_calls: AtomicU64::new(0),
            debug,
            registration: std::sync::OnceLock::new(),
        })
    }

    /// [`new`](Self::new) for a slab cache used on its own: shared behind
    /// an [`Arc`] and listed in the process-wide
    /// [registry](skmem_traits::registry) as [`Kind::Slab`] until it is
    /// dropped, so that dumps, `SKMEM_SHOW_STATS` and `skmem-top` show it
    /// (a slab cache under a magazine cache is shown through that cache's
    /// stats instead, so `new` does not list it).
    ///
    /// [`Kind::Slab`]: skmem_traits::registry::Kind::Slab
    pub fn new_shared(region: Arc<Region<S, M>>, config: SlabConfig, ctor: C) -> Result<Arc<Self>>
    where
        S: 'static,
        C: 'static,
        M: 'static,
    {
        let cache = Arc::new(Self::new(region, config, ctor)?);
        let entry =
            skmem_traits::registry::register_arc(skmem_traits::registry::Kind::Slab, &cache);
        let _ = cache.registration.set(entry);
        Ok(cache)
    }

    /// The lock holding the real bookkeeping: the debug state in debug
    /// mode. For the paths that are not fast paths.
    fn book(&self) -> &Mutex<State> {
        match &self.debug {
            Some(d) => &d.state,
            None => &self.state,
        }
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The region the slabs come from.
    pub fn region(&self) -> &Arc<Region<S, M>> {
        &self.region
    }

    /// The object constructor.
    pub fn ctor(&self) -> &C {
        &self.ctor
    }

    /// The configuration the cache was created with.
    pub fn config(&self) -> &SlabConfig {
        &self.config
    }

    /// Requested object size.
    pub fn obj_size(&self) -> usize {
        self.config.obj_size
    }

    /// Alignment every object is guaranteed to have: the largest that the
    /// region's chunks give (at least the requested
    /// [`SlabConfig::align`]).
    pub fn obj_align(&self) -> usize {
        self.max_align
    }

    /// Distance between objects in a slab (the region's object size); the
    /// usable size of an object.
    pub fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Objects per slab (per segment).
    pub fn objs_per_slab(&self) -> u32 {
        self.objs
    }

    /// `true` when addresses find their slab by arithmetic on the region's
    /// contiguous span, `false` when through the allocated-address hash.
    pub fn lookup_is_arithmetic(&self) -> bool {
        self.region.span().is_some()
    }

    /// `true` when chain operations are enabled.
    pub fn is_batch(&self) -> bool {
        self.config.batch
    }

    // ------------------------------------------------------------------
    // Allocation
    // ------------------------------------------------------------------

    /// Allocates one constructed object without waiting
    /// ([`AllocFlags::NoSleep`]); `None` when the region is exhausted or the
    /// constructor failed. [`alloc_with`](Self::alloc_with) says why and
    /// takes flags (the same pair as the magazine layer's `Cache`).
    #[inline]
    pub fn alloc(&self) -> Option<NonNull<u8>> {
        self.alloc_with(AllocFlags::NoSleep).ok()
    }

    /// Allocates one object and constructs it, with `flags`.
    ///
    /// When no slab has a free object, a segment is taken from the region.
    /// When the region is exhausted, [`AllocFlags::Sleep`] waits until an
    /// object is freed to this cache or the region has a segment again
    /// (with no limit: see its docs), [`AllocFlags::SleepFor`] does the same
    /// for at most its limit; then, and at once with the other flags, the
    /// call fails with [`Error::Exhausted`]. A constructor error is
    /// returned as is, after the object went back to its slab.
    #[inline]
    pub fn alloc_with(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        let taken = self.state.lock().take();
        let obj = match taken {
            Some(obj) => obj,
            None => self.alloc_grow(flags)?,
        };
        if C::ACTIVE {
            match catch_unwind(AssertUnwindSafe(|| self.construct(&obj, flags))) {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    self.ctor_failed(&[obj]);
                    return Err(err);
                }
                Err(payload) => {
                    // The object goes back unconstructed before the
                    // constructor's panic goes on: nothing is lost.
                    self.ctor_failed(&[obj]);
                    resume_unwind(payload);
                }
            }
        }
        Ok(obj.addr)
    }

    #[cold]
    #[inline(never)]
    fn alloc_grow(&self, flags: AllocFlags) -> Result<Obj> {
        let mut one = [None];
        match self.grow(flags, &mut one) {
            Ok(_) => Ok(one[0].expect("a new slab yields an object")),
            Err(err) => {
                self.state.lock().counters.alloc_fail += 1;
                Err(err)
            }
        }
    }

    /// Takes a segment from the region (lock dropped), makes it a slab, and
    /// fills `out` from it; returns how many were taken (at least one).
    ///
    /// With [`AllocFlags::Sleep`] (or `SleepFor`, until its deadline) the region is asked with
    /// [`AllocFlags::FailOk`] (it reaps, but does not block), and while it
    /// stays exhausted this thread waits for an object to be freed to this
    /// cache (woken at once) or retries the region after a growing pause
    /// (up to [`MAX_RETRY_PAUSE`]), for segments freed by other users of the
    /// region. Blocking inside the region instead would miss objects freed
    /// to this cache's partial slabs and could wait forever.
    ///
    /// With the other flags an exhausted region is not the last word
    /// either: its reap may have returned objects to this cache's slabs, so
    /// the free lists are checked once more before `Exhausted` is returned.
    #[cold]
    #[inline(never)]
    fn grow(&self, flags: AllocFlags, out: &mut [Option<Obj>]) -> Result<usize> {
        if let Some(d) = &self.debug {
            return self.debug_take(d, flags, out);
        }
        self.grow_in(&self.state, flags, out)
    }

    /// [`grow`](Self::grow)'s work on the bookkeeping behind `book`.
    fn grow_in(
        &self,
        book: &Mutex<State>,
        flags: AllocFlags,
        out: &mut [Option<Obj>],
    ) -> Result<usize> {
        let sleep = flags.may_wait_for_free();
        let region_flags = if sleep { AllocFlags::FailOk } else { flags };
        let deadline = flags.wait_limit().map(|limit| Instant::now() + limit);
        let mut pause = Duration::from_millis(1);
        loop {
            match self.region.alloc_segment(region_flags) {
                Ok(seg) => {
                    let slab = Slab::new(seg, self.objs);
                    tracing::trace!(cache = %self.config.name, segment = seg.index, "slab created");
                    return Ok(book.lock().insert_and_take(slab, out));
                }
                Err(err @ Error::Exhausted { .. }) if sleep => {
                    let mut state = book.lock();
                    let n = state.take_into(out);
                    if n != 0 {
                        return Ok(n);
                    }
                    let wait = match deadline {
                        None => pause,
                        Some(deadline) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                // `SleepFor`'s limit is spent: the region's
                                // own error names what ran out (the caller
                                // counts the failure).
                                return Err(err);
                            }
                            pause.min(left)
                        }
                    };
                    state.waiters += 1;
                    state = self.freed.wait_for(state, wait);
                    state.waiters -= 1;
                    let n = state.take_into(out);
                    if n != 0 {
                        return Ok(n);
                    }
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
                Err(err @ Error::Exhausted { .. }) => {
                    // An exhausted region asked its reapers (possibly the
                    // magazine cache above this very slab cache) to give
                    // memory back before failing: objects may be on this
                    // cache's free lists now, although no segment came free.
                    let n = book.lock().take_into(out);
                    return if n != 0 { Ok(n) } else { Err(err) };
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Wakes allocations waiting for an object, if there were any when the
    /// objects were freed.
    #[inline]
    fn wake(&self, had_waiters: bool) {
        if had_waiters {
            self.freed.notify_all();
        }
    }

    /// Allocates up to `out.len()` constructed objects into a prefix of
    /// `out` and returns how many (0 when none could be had).
    ///
    /// Only the first growth of the cache uses `flags`; once one object is
    /// in hand, further slabs are asked for with [`AllocFlags::NoSleep`],
    /// so the call never blocks after the first object. A constructor
    /// failure ends the batch early (the failed object goes back).
    ///
    /// A constructor's panic, or one from a destructor that the region's
    /// reap ran while this batch grew the cache, goes on to the caller
    /// after every object the batch took is back: those already written to
    /// `out` are freed (destructed) first, since the caller never learns of
    /// them.
    pub fn alloc_batch(&self, out: &mut [MaybeUninit<NonNull<u8>>], flags: AllocFlags) -> usize {
        let mut n = 0;
        let (_, stop) = self.alloc_bulk(out.len(), flags, |obj| {
            out[n].write(obj.addr);
            n += 1;
        });
        if let Some(BatchStop::Panic(payload)) = stop {
            // SAFETY: `emit` initialised the prefix `n` of `out`;
            // `MaybeUninit<T>` has `T`'s layout.
            let taken =
                unsafe { core::slice::from_raw_parts(out.as_ptr().cast::<NonNull<u8>>(), n) };
            self.give_back_and_resume(
                || {
                    // SAFETY: constructed objects of this cache, allocated
                    // by this call and handed to nobody.
                    unsafe { self.free_batch(taken) }
                },
                payload,
            );
        }
        n
    }

    /// Runs `give_back` (the objects a panicking batch allocation had
    /// taken), then resumes `payload`. A second panic from a destructor
    /// in `give_back` is logged and dropped: the first one goes on.
    #[cold]
    #[inline(never)]
    fn give_back_and_resume(&self, give_back: impl FnOnce(), payload: Box<dyn Any + Send>) -> ! {
        if catch_unwind(AssertUnwindSafe(give_back)).is_err() {
            tracing::error!(cache = %self.config.name, "a destructor panicked while a panicking batch allocation gave its objects back");
        }
        resume_unwind(payload)
    }

    /// The common part of the batch allocations: up to `want` objects,
    /// constructed, each passed to `emit`. Returns the count, and the error
    /// that stopped the batch when it stopped short.
    fn alloc_bulk(
        &self,
        want: usize,
        flags: AllocFlags,
        mut emit: impl FnMut(Obj),
    ) -> (usize, Option<BatchStop>) {
        let mut done = 0;
        while done < want {
            let mut group = [None; GROUP];
            let limit = GROUP.min(want - done);
            let mut n = self.state.lock().take_into(&mut group[..limit]);
            if n == 0 {
                let grow_flags = if done == 0 {
                    flags
                } else {
                    AllocFlags::NoSleep
                };
                // The region's reap may run a destructor that panics; no
                // object of `group` is taken then.
                match catch_unwind(AssertUnwindSafe(|| {
                    self.grow(grow_flags, &mut group[..limit])
                })) {
                    Ok(Ok(taken)) => n = taken,
                    Ok(Err(err)) => {
                        if done == 0 {
                            self.state.lock().counters.alloc_fail += 1;
                        }
                        return (done, Some(BatchStop::Error(err)));
                    }
                    Err(payload) => return (done, Some(BatchStop::Panic(payload))),
                }
            }
            let mut failed = [None; GROUP];
            let mut nfailed = 0;
            let mut first_err = None;
            for obj in group[..n].iter().flatten() {
                if first_err.is_none() {
                    match catch_unwind(AssertUnwindSafe(|| self.construct(obj, flags))) {
                        Ok(Ok(())) => {
                            emit(*obj);
                            done += 1;
                            continue;
                        }
                        Ok(Err(err)) => first_err = Some(BatchStop::Error(err)),
                        Err(payload) => first_err = Some(BatchStop::Panic(payload)),
                    }
                }
                // After a constructor failure, the rest of the group goes
                // back unconstructed as well.
                failed[nfailed] = Some(*obj);
                nfailed += 1;
            }
            if let Some(err) = first_err {
                let failed: Vec<Obj> = failed[..nfailed].iter().flatten().copied().collect();
                self.ctor_failed_partial(&failed, done == 0);
                return (done, Some(err));
            }
        }
        (done, None)
    }

    #[inline]
    fn construct(&self, obj: &Obj, flags: AllocFlags) -> Result<()> {
        if !C::ACTIVE {
            return Ok(());
        }
        let (info, shadow) = inner::info(obj, self.chunk, self.objs);
        self.ctor.construct(info, shadow, flags)?;
        self.ctor_calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Puts back objects whose construction failed (or was not attempted)
    /// and counts one allocation failure.
    #[cold]
    #[inline(never)]
    fn ctor_failed(&self, objs: &[Obj]) {
        self.ctor_failed_partial(objs, true)
    }

    #[cold]
    #[inline(never)]
    fn ctor_failed_partial(&self, objs: &[Obj], count_failure: bool) {
        tracing::debug!(cache = %self.config.name, objects = objs.len(), "constructor failed");
        if let Some(d) = &self.debug {
            return self.debug_put_back(d, objs, count_failure);
        }
        if self.config.clear_on_free {
            for obj in objs {
                // SAFETY: the object is allocated to this call (not handed
                // out), its segment is live, and it spans `chunk` bytes.
                unsafe { self.clear(obj) };
            }
        }
        let mut segs = Vec::new();
        let wake = {
            let mut state = self.state.lock();
            // In reverse, so the free lists end up as they were before the
            // objects were taken.
            for obj in objs.iter().rev() {
                let obj = state
                    .begin_free(obj.addr.as_ptr())
                    .expect("an object just taken is allocated");
                segs.extend(state.finish_free(&obj, KEEP_EMPTY));
            }
            if count_failure {
                state.counters.alloc_fail += 1;
            }
            state.waiters != 0
        };
        self.wake(wake);
        self.release_segments(segs);
    }

    // ------------------------------------------------------------------
    // Free
    // ------------------------------------------------------------------

    /// Destructs an object and returns it to its slab.
    ///
    /// # Safety
    ///
    /// If `obj` is an object currently allocated from this cache, the caller
    /// owns it and nothing uses it after this call (other threads included).
    /// Any other address is detected and rejected with a panic.
    ///
    /// # Panics
    ///
    /// When `obj` is not an allocated object of this cache (a double free, a
    /// foreign or interior pointer), naming the cache and the address. The
    /// cache is left unchanged.
    #[inline]
    pub unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: forwarded from the caller.
        if let Err(fault) = unsafe { self.free_one(obj.as_ptr()) } {
            // SAFETY: forwarded from the caller.
            unsafe { self.free_missed(obj.as_ptr(), fault) };
        }
    }

    /// A free the fast bookkeeping refused: a debug cache's every free (its
    /// fast state is empty), else a bad address.
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free).
    #[cold]
    #[inline(never)]
    #[track_caller]
    unsafe fn free_missed(&self, addr: *mut u8, fault: Fault) {
        match &self.debug {
            // SAFETY: forwarded from the caller.
            Some(d) => unsafe { self.debug_free(d, addr) },
            None => self.bad_free(addr, fault),
        }
    }

    /// Like [`free`](Self::free), but an address that is not an allocated
    /// object of this cache (null, foreign, interior, already freed) is
    /// refused with [`Error::Invalid`] instead of a panic, and nothing
    /// changes. For addresses that come from untrusted input.
    ///
    /// # Safety
    ///
    /// If `obj` is an object currently allocated from this cache, the caller
    /// owns it and nothing uses it after this call.
    pub unsafe fn try_free(&self, obj: *mut u8) -> Result<()> {
        if obj.is_null() {
            return Err(self.invalid_free(obj, Fault::Foreign));
        }
        // SAFETY: forwarded from the caller.
        match unsafe { self.free_one(obj) } {
            Ok(()) => Ok(()),
            // SAFETY: forwarded from the caller.
            Err(_) if self.debug.is_some() => unsafe { self.debug_try_free(obj) },
            Err(fault) => Err(self.invalid_free(obj, fault)),
        }
    }

    /// # Safety
    ///
    /// As [`free`](Self::free).
    #[inline]
    unsafe fn free_one(&self, addr: *mut u8) -> Result<(), Fault> {
        if !C::ACTIVE && !self.config.clear_on_free {
            // Nothing to run between the halves: one critical section.
            let (seg, wake) = {
                let mut state = self.state.lock();
                (state.free_now(addr, KEEP_EMPTY)?, state.waiters != 0)
            };
            self.wake(wake);
            if let Some(seg) = seg {
                self.release_segments([seg]);
            }
            return Ok(());
        }
        let obj = self.state.lock().begin_free(addr)?;
        // SAFETY: `obj` is being freed by this call alone (its bufctl says
        // so), its slab cannot go away while it is counted in use, and the
        // caller gave up the object.
        let dtor_panic = unsafe { self.destruct_and_clear(&obj) };
        let (seg, wake) = {
            let mut state = self.state.lock();
            (state.finish_free(&obj, KEEP_EMPTY), state.waiters != 0)
        };
        self.wake(wake);
        if let Some(seg) = seg {
            self.release_segments([seg]);
        }
        if let Err(payload) = dtor_panic {
            resume_unwind(payload);
        }
        Ok(())
    }

    /// Destructs and returns every object of `objs` to its slab.
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free), for each element.
    ///
    /// # Panics
    ///
    /// When an element is not an allocated object of this cache (including
    /// an address repeated in `objs`), naming the cache and the address.
    /// Elements of earlier groups of 32 are freed by then; those of the
    /// failing group are left allocated.
    ///
    /// A destructor's panic is resumed after every element is back.
    pub unsafe fn free_batch(&self, objs: &[NonNull<u8>]) {
        if self.debug.is_some() {
            // SAFETY: forwarded from the caller.
            return unsafe { self.debug_free_slice(objs) };
        }
        let mut iter = objs.iter();
        // SAFETY: forwarded from the caller; the addresses come from a slice
        // and no object memory is read to find the next one.
        unsafe {
            self.free_many(|_| iter.next().copied());
        }
    }

    /// The common part of the batch frees. `next(None)` yields the first
    /// address to free; `next(Some(obj))` is called as soon as `obj` has
    /// been validated and marked as being freed (before its destructor
    /// runs), and yields the address after it. That is when a chain reads
    /// its link.
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free) for every address `next` yields.
    unsafe fn free_many(&self, mut next: impl FnMut(Option<&Obj>) -> Option<NonNull<u8>>) {
        let mut pending = next(None);
        // The first destructor panic, resumed once every object is back.
        let mut dtor_panic = None;
        loop {
            let mut group = [None; GROUP];
            let mut n = 0;
            {
                let mut state = self.state.lock();
                while n < GROUP {
                    let Some(addr) = pending else { break };
                    match state.begin_free(addr.as_ptr()) {
                        Ok(obj) => {
                            group[n] = Some(obj);
                            n += 1;
                            pending = next(Some(&obj));
                        }
                        Err(fault) => {
                            for obj in group[..n].iter().flatten() {
                                state.undo_begin_free(obj);
                            }
                            drop(state);
                            self.bad_free(addr.as_ptr(), fault);
                        }
                    }
                }
            }
            if C::ACTIVE || self.config.clear_on_free {
                for obj in group[..n].iter().flatten() {
                    // SAFETY: each object is being freed by this call alone
                    // and its slab stays while it counts in use; the caller
                    // gave it up.
                    if let Err(payload) = unsafe { self.destruct_and_clear(obj) } {
                        dtor_panic.get_or_insert(payload);
                    }
                }
            }
            let mut segs = Vec::new();
            let wake = {
                let mut state = self.state.lock();
                for obj in group[..n].iter().flatten() {
                    segs.extend(state.finish_free(obj, KEEP_EMPTY));
                }
                state.waiters != 0
            };
            self.wake(wake);
            self.release_segments(segs);
            if pending.is_none() {
                if let Some(payload) = dtor_panic {
                    resume_unwind(payload);
                }
                return;
            }
        }
    }

    /// Runs the destructor, then clears when configured. A destructor
    /// panic is caught and returned, for the caller to resume once the
    /// object (and the rest of its batch) is back in its slab.
    ///
    /// # Safety
    ///
    /// `obj` is being freed by the caller alone and its segment is live.
    #[inline]
    unsafe fn destruct_and_clear(&self, obj: &Obj) -> std::thread::Result<()> {
        let mut outcome = Ok(());
        if C::ACTIVE {
            let (info, shadow) = inner::info(obj, self.chunk, self.objs);
            // The object is ours alone and no lock is held: unwinding out of
            // the destructor cannot leave shared state half-updated.
            outcome = catch_unwind(AssertUnwindSafe(|| self.ctor.destruct(info, shadow)));
            self.dtor_calls.fetch_add(1, Ordering::Relaxed);
        }
        if self.config.clear_on_free {
            // SAFETY: forwarded from the caller.
            unsafe { self.clear(obj) };
        }
        outcome
    }

    /// Zeroes an object and its shadow.
    ///
    /// # Safety
    ///
    /// The caller has exclusive use of `obj`, whose segment is live.
    unsafe fn clear(&self, obj: &Obj) {
        let (_, shadow) = inner::info(obj, self.chunk, self.objs);
        // SAFETY:
        // * the object spans `chunk` bytes inside its live segment;
        // * the caller has exclusive use of it;
        // * the region is writable to its owner (clear_on_free is refused on
        //   KREADONLY regions).
        unsafe { ptr::write_bytes(obj.addr.as_ptr(), 0, self.chunk) };
        if let Some(shadow) = shadow {
            // SAFETY: the shadow object is at the same offset of a live
            // shadow segment of the same size, and is used with its master.
            unsafe { ptr::write_bytes(shadow.addr.as_ptr(), 0, self.chunk) };
        }
    }

    /// Gives segments of removed (empty) slabs back to the region.
    fn release_segments(&self, segs: impl IntoIterator<Item = Segment>) {
        for seg in segs {
            if let Some(d) = &self.debug {
                d.forget_segment(seg.index);
            }
            tracing::trace!(cache = %self.config.name, segment = seg.index, "slab destroyed");
            // SAFETY: the segment came from this region's `alloc_segment`;
            // its slab was empty and has been removed from every table under
            // the lock, so nothing in this cache reaches its memory again.
            unsafe { self.region.free_segment(seg) };
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn bad_free(&self, addr: *const u8, fault: Fault) -> ! {
        panic!(
            "slab cache `{}`: free of {:p}, which {}",
            self.config.name,
            addr,
            fault.describe()
        )
    }

    #[cold]
    fn invalid_free(&self, addr: *const u8, fault: Fault) -> Error {
        Error::Invalid {
            field: "obj",
            reason: format!(
                "slab cache `{}`: {:p} {}",
                self.config.name,
                addr,
                if addr.is_null() {
                    "is null"
                } else {
                    fault.describe()
                }
            ),
        }
    }

    // ------------------------------------------------------------------
    // Chains
    // ------------------------------------------------------------------

    /// Allocates up to `count` constructed objects as a chain: each
    /// object's first word (a `*mut u8`, possibly unaligned) holds the
    /// address of the next, and the last holds null. Returns the head and
    /// the length (at least 1).
    ///
    /// The link overwrites whatever the constructor wrote in the first word.
    /// As with [`alloc_batch`](Self::alloc_batch), only the first growth uses
    /// `flags`.
    ///
    /// Fails with [`Error::Invalid`] (field `batch`) when the cache is not in
    /// batch mode, [`Error::InvalidParam`] (`count`) for a zero count, and
    /// with the growth or constructor error when no object could be had.
    pub fn alloc_chain(&self, count: usize, flags: AllocFlags) -> Result<(NonNull<u8>, usize)> {
        if !self.config.batch {
            return Err(self.not_batch());
        }
        if count == 0 {
            return Err(Error::invalid_param("count", 0, "must be non-zero"));
        }
        let mut head: Option<NonNull<u8>> = None;
        let mut tail: Option<NonNull<u8>> = None;
        let (n, stop) = self.alloc_bulk(count, flags, |obj| {
            match tail {
                // SAFETY: `tail` is a constructed object of this call's
                // chain, at least pointer-sized (checked in `new`), writable
                // (batch is refused on read-only regions), and not yet
                // handed out; the write is unaligned-tolerant.
                Some(t) => unsafe {
                    ptr::write_unaligned(t.as_ptr().cast::<*mut u8>(), obj.addr.as_ptr())
                },
                None => head = Some(obj.addr),
            }
            tail = Some(obj.addr);
        });
        if let (Some(tail), Some(BatchStop::Panic(_))) = (tail, &stop) {
            // SAFETY: as above, for the last object: the chain built so far
            // is terminated so that it can be given back.
            unsafe { ptr::write_unaligned(tail.as_ptr().cast::<*mut u8>(), ptr::null_mut()) };
        }
        let err = match stop {
            Some(BatchStop::Panic(payload)) => match head {
                // SAFETY: a terminated chain of constructed objects of this
                // cache, allocated by this call and handed to nobody.
                Some(head) => self.give_back_and_resume(
                    || {
                        // SAFETY: as above.
                        let _ = unsafe { self.free_chain(head) };
                    },
                    payload,
                ),
                None => resume_unwind(payload),
            },
            Some(BatchStop::Error(err)) => Some(err),
            None => None,
        };
        match (head, tail) {
            (Some(head), Some(tail)) => {
                // SAFETY: as above, for the last object.
                unsafe { ptr::write_unaligned(tail.as_ptr().cast::<*mut u8>(), ptr::null_mut()) };
                Ok((head, n))
            }
            _ => Err(err.unwrap_or_else(|| self.exhausted())),
        }
    }

    /// Frees a chain built as [`alloc_chain`](Self::alloc_chain) builds them
    /// (first word = next object, null at the end); returns the number of
    /// objects freed.
    ///
    /// Each object is validated before its link is read, so a chain that
    /// runs into a foreign or freed object (or loops) is caught by the
    /// panic below without reading that object.
    ///
    /// # Safety
    ///
    /// Every object of the chain that is currently allocated from this cache
    /// is owned by the caller and not used after this call; each link word
    /// holds the next object or null.
    ///
    /// # Panics
    ///
    /// When the cache is not in batch mode, or an object of the chain is
    /// not an allocated object of this cache (naming the cache and address;
    /// the objects before it, in groups of 32, are freed by then).
    pub unsafe fn free_chain(&self, head: NonNull<u8>) -> usize {
        if !self.config.batch {
            panic!(
                "slab cache `{}`: free_chain on a cache not in batch mode",
                self.config.name
            );
        }
        let mut count = 0usize;
        let next = |prev: Option<&Obj>| match prev {
            None => Some(head),
            Some(obj) => {
                count += 1;
                // SAFETY: `obj` was just validated as an allocated object of
                // this cache and marked as being freed by this call, so it
                // is live and ours; its destructor has not run yet; objects
                // are at least pointer-sized (checked in `new`); the read
                // tolerates misalignment.
                NonNull::new(unsafe { ptr::read_unaligned(obj.addr.as_ptr().cast::<*mut u8>()) })
            }
        };
        if self.debug.is_some() {
            let mut next = next;
            // SAFETY: forwarded from the caller; `next` reads each link only
            // after the object holding it was validated.
            unsafe { self.debug_free_many(head, &mut next, true) };
            return count;
        }
        // SAFETY: forwarded from the caller; `next` reads each link only
        // after the object holding it was validated.
        unsafe { self.free_many(next) };
        count
    }

    #[cold]
    fn not_batch(&self) -> Error {
        Error::Invalid {
            field: "batch",
            reason: format!(
                "slab cache `{}` was not created in batch mode",
                self.config.name
            ),
        }
    }

    #[cold]
    fn exhausted(&self) -> Error {
        Error::Exhausted {
            name: self.config.name.clone(),
            capacity: self.region.layout().obj_count as u64,
            unit: "objects",
        }
    }

    // ------------------------------------------------------------------
    // Lookup, reap, stats
    // ------------------------------------------------------------------

    /// What the cache knows about the allocated object at `obj`; `None` for
    /// any address that is not the start of an allocated object of this
    /// cache (free objects included).
    pub fn object_info(&self, obj: *const u8) -> Option<ObjectInfo> {
        let found = self.book().lock().lookup(obj)?;
        Some(inner::info(&found, self.chunk, self.objs).0)
    }

    /// Like [`object_info`](Self::object_info), with the shadow object's
    /// info on mirrored regions.
    pub fn object_info_with_shadow(
        &self,
        obj: *const u8,
    ) -> Option<(ObjectInfo, Option<ObjectInfo>)> {
        let found = self.book().lock().lookup(obj)?;
        Some(inner::info(&found, self.chunk, self.objs))
    }

    /// Returns every empty slab's segment to the region.
    pub fn reap(&self) {
        let segs = self.book().lock().take_empty_slabs(0);
        if !segs.is_empty() {
            tracing::debug!(cache = %self.config.name, slabs = segs.len(), "reaped empty slabs");
        }
        self.release_segments(segs);
    }

    /// A snapshot of the slab layer's statistics.
    pub fn stats(&self) -> SlabStats {
        // The name is copied before the lock is taken: copying allocates,
        // and when skmem is the process's allocator that allocation may need
        // this very cache's slab layer (a self-deadlock under the lock).
        let name = self.config.name.clone();
        let state = self.book().lock();
        let (partial, empty, full) = state.list_lens();
        let mut c = state.counters;
        if self.debug.is_some() {
            // Failures are counted on the fast state.
            c.alloc_fail += self.state.lock().counters.alloc_fail;
        }
        SlabStats {
            name,
            objsize: self.config.obj_size as u64,
            objalign: self.config.align as u64,
            chunksize: self.chunk as u64,
            slabsize: self.region.layout().seg_size as u64,
            chunks_per_slab: self.objs,
            sl_create: c.create,
            sl_destroy: c.destroy,
            sl_alloc: c.alloc,
            sl_free: c.free,
            sl_alloc_fail: c.alloc_fail,
            sl_partial: partial,
            sl_full: full,
            sl_empty: empty,
            sl_bufinuse: state.in_use(),
            sl_hash_size: state.hash_size(),
            ctor: self.ctor_calls.load(Ordering::Relaxed),
            dtor: self.dtor_calls.load(Ordering::Relaxed),
        }
    }

    /// Walks every slab, bufctl, list and lookup entry and checks the
    /// invariants of the [module docs](self); `Err` names the first broken
    /// one. Costs time linear in the objects of all slabs: for tests and
    /// debugging.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        self.book().lock().check()
    }

    /// The debug flags in force (empty when the cache is not in debug
    /// mode; guards and poison are dropped on regions read-only to their
    /// owner).
    pub fn debug_flags(&self) -> DebugFlags {
        self.debug.as_ref().map_or(DebugFlags::empty(), |d| d.flags)
    }
}

impl<S: SegmentSource, C: ObjectCtor, M: Mirror> Reap for SlabCache<S, C, M> {
    /// Returns the empty slabs (the slab layer holds no other cached memory).
    fn reap_now(&self, _purge: bool) {
        self.reap();
    }
}

impl<S: SegmentSource, C: ObjectCtor, M: Mirror> Drop for SlabCache<S, C, M> {
    fn drop(&mut self) {
        if let Some(d) = &self.debug {
            if d.flags.contains(DebugFlags::LEAKS) {
                d.report_outstanding_now("at drop");
            }
        }
        let state = self.book().lock();
        let outstanding = state.in_use();
        let mut empty = Vec::new();
        let mut leaked = 0u64;
        for (seg, in_use) in state.live_segments() {
            if in_use == 0 {
                empty.push(seg);
            } else {
                leaked += 1;
            }
        }
        drop(state);
        for seg in empty {
            // SAFETY: an empty slab's segment came from this region and no
            // object of it is out; the cache is going away, so nothing
            // reaches the memory again.
            unsafe { self.region.free_segment(seg) };
        }
        if outstanding != 0 {
            tracing::error!(
                cache = %self.config.name,
                outstanding,
                slabs = leaked,
                "slab cache dropped with objects outstanding; their slabs are leaked"
            );
        }
    }
}

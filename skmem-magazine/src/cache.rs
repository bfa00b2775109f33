//! The magazine cache: CPU layer, depot, purge, resize, reap.
//!
//! # The CPU layer
//!
//! Each slot (see [`CpuLocal`]) holds a *loaded* and a *previous* magazine
//! with their round counts (`-1` = no magazine) and the slot's magazine
//! size (`0` = magazines disabled in this slot). Allocation pops from the
//! loaded magazine; when it is empty and the previous one is full the two
//! are swapped; only when both are empty does the slot go to the depot for
//! a full magazine (two when the request is larger than one magazine), and
//! only when the depot has none does it go to the layer beneath. Free is
//! the mirror image with empty magazines; when the depot has no empty
//! magazine a new one is allocated (with the slot's lock released), and
//! when that fails the object goes to the layer beneath. This is the seed's
//! `skmem_cache_batch_alloc` / `skmem_cache_batch_free_common`.
//!
//! # The front
//!
//! A policy may keep a lock-free *front* before its slots (`PerCpu` on
//! rseq: see `local/front.rs`). Single-object [`Cache::alloc`] and
//! [`Cache::free`] try it first; a miss *refills* it (half a front popped
//! from the slot's magazines under the slot's lock, pushed with one front
//! commit; what does not fit goes back through the slot) or *spills* it
//! (half a front taken out with one commit and freed through the slot
//! with the object). Purge (and so resize and drop) drains every front
//! before it empties the slots; stats count front objects in `cpu_rounds`.
//! Batches use the slots directly.
//!
//! # Generic shell, non-generic core
//!
//! [`Cache`] and its `Inner` are the generic shell: they own the layer
//! beneath (`B`) and the slots of the locality policy (`L`), and keep
//! inline only taking the calling thread's slot and popping or pushing
//! there. Everything else (depot, counters, perimeter, slow paths, purge,
//! resize, reap, stats) lives in the non-generic core ([`slow`]), which
//! reaches the layer and the slots as trait objects and is compiled once
//! for all caches. The ladder (`G`) is only a marker here: the core takes
//! its steps as a slice, and magazines are sized at run time.
//!
//! # Safety and correctness
//!
//! * A slot's `rounds >= 0` exactly when `loaded` is `Some`, and then
//!   `rounds <= loaded.cap`; likewise `prounds` / `ploaded`. A non-zero
//!   `magsize` equals the `cap` of both magazines (and the depot's size at
//!   the time the slot was enabled). The previous magazine is always
//!   either full or empty.
//! * Every object pointer in a magazine's valid rounds is an object this
//!   cache took from its layer and nobody else holds: the fast paths move
//!   pointers between users and magazines under the slot's exclusion, the
//!   slow paths move whole magazines under the depot lock.
//! * The depot only accepts magazines whose `cap` is its current size; a
//!   resize drains it under its lock when it changes the size, so no
//!   magazine of another size is ever loaded into a slot.
//! * Nothing calls into the layer beneath while holding a slot or the depot
//!   lock: an exhausted region calls back into the cache (`Reap`), which
//!   takes those locks.
//! * Purge and enable run inside the resize perimeter (or from `Drop`),
//!   set the enabled size (read by lazily created slots) *before* walking
//!   the slots, so a slot created during a walk is either visited or
//!   created with the new size.
//! * Unwinding (a destructor of the layer beneath that panics while purge,
//!   reap, resize or drop gives objects back) leaves the cache whole: the
//!   perimeter is left by a guard, the slots are re-enabled by a guard, and
//!   every magazine taken out of a slot or the depot sits in an owing guard
//!   that gives all of them back (catching further panics) before the first
//!   panic is resumed. No slot or depot lock is held while objects go back.

use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};

use skmem_slab::Reap;
use skmem_traits::stats::CacheStats;
use skmem_traits::{AllocFlags, CpuLocal, ExitJob, FastPath, Result, SlotHooks};

use crate::ladder::{Ladder, LadderExt, SeedLadder};
use crate::layer::ObjectLayer;
use crate::local::FRONT_CAP;
use crate::magazine::MagBox;
use crate::sync::Ordering;
use skmem_traits::registry;

mod slow;

use slow::{CacheCore, CoreRef, SlotSet};

/// How a [`Cache`] behaves (the seed's `SKMEM_CR_*` creation flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Grow the magazine size along the ladder when depot contention in an
    /// update interval passes `contention_threshold` (`SKMEM_CR_DYNAMIC`).
    pub dynamic: bool,
    /// No CPU layer: every alloc and free goes to the layer beneath
    /// (`SKMEM_CR_NOMAGAZINES`).
    pub no_magazines: bool,
    /// Every reap purges the CPU layer too (`SKMEM_CR_RECLAIM`).
    pub purge_on_reap: bool,
    /// Failed depot try-locks per update interval above which a dynamic
    /// cache grows its magazines (the seed's default is 3).
    pub contention_threshold: u64,
    /// List the cache in the global registry (for [`update_all`],
    /// [`reap_all`], [`all_stats`] and the maintenance thread).
    ///
    /// [`update_all`]: crate::update_all
    /// [`reap_all`]: crate::reap_all
    /// [`all_stats`]: crate::all_stats
    pub register: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            dynamic: false,
            no_magazines: false,
            purge_on_reap: false,
            contention_threshold: 3,
            register: true,
        }
    }
}

impl CacheConfig {
    /// Sets [`dynamic`](Self::dynamic).
    pub fn dynamic(mut self, on: bool) -> Self {
        self.dynamic = on;
        self
    }
    /// Sets [`no_magazines`](Self::no_magazines).
    pub fn no_magazines(mut self, on: bool) -> Self {
        self.no_magazines = on;
        self
    }
    /// Sets [`purge_on_reap`](Self::purge_on_reap).
    pub fn purge_on_reap(mut self, on: bool) -> Self {
        self.purge_on_reap = on;
        self
    }
    /// Sets [`contention_threshold`](Self::contention_threshold).
    pub fn contention_threshold(mut self, n: u64) -> Self {
        self.contention_threshold = n;
        self
    }
    /// Sets [`register`](Self::register).
    pub fn register(mut self, on: bool) -> Self {
        self.register = on;
        self
    }
}

/// The CPU-layer state of one slot (the seed's `skmem_cpu_cache`).
pub(crate) struct CpuCache {
    rounds: i32,
    magsize: u32,
    loaded: Option<MagBox>,
    alloc: u64,
    free: u64,
    prounds: i32,
    ploaded: Option<MagBox>,
}

impl fmt::Debug for CpuCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuCache")
            .field("rounds", &self.rounds)
            .field("prounds", &self.prounds)
            .field("magsize", &self.magsize)
            .finish_non_exhaustive()
    }
}

impl CpuCache {
    fn new(magsize: u32) -> Self {
        CpuCache {
            rounds: -1,
            magsize,
            loaded: None,
            alloc: 0,
            free: 0,
            prounds: -1,
            ploaded: None,
        }
    }

    #[inline(always)]
    fn pop(&mut self) -> Option<NonNull<u8>> {
        if self.rounds > 0 {
            self.rounds -= 1;
            // SAFETY: `rounds >= 0` implies `loaded` is `Some` (module invariants).
            let mag = unsafe { self.loaded.as_ref().unwrap_unchecked() };
            let obj = mag.round(self.rounds as usize);
            self.alloc += 1;
            // SAFETY: valid rounds hold object addresses, never null.
            Some(unsafe { NonNull::new_unchecked(obj) })
        } else {
            None
        }
    }

    #[inline(always)]
    fn push(&mut self, obj: NonNull<u8>) -> bool {
        // `-1 as u32` is larger than any size, and a size of 0 refuses all.
        let r = self.rounds as u32;
        if r < self.magsize {
            // SAFETY: `rounds >= 0` implies `loaded` is `Some`.
            let mag = unsafe { self.loaded.as_mut().unwrap_unchecked() };
            mag.set_round(r as usize, obj.as_ptr());
            self.rounds = r as i32 + 1;
            self.free += 1;
            true
        } else {
            false
        }
    }

    /// Fills all of `out` from the loaded magazine if it holds enough.
    #[inline(always)]
    fn pop_all(&mut self, out: &mut [MaybeUninit<NonNull<u8>>]) -> bool {
        let n = out.len();
        if self.rounds as usize >= n && self.rounds > 0 {
            let top = self.rounds as usize;
            // SAFETY: `rounds > 0` implies `loaded` is `Some`.
            let mag = unsafe { self.loaded.as_ref().unwrap_unchecked() };
            mag.copy_out(top - n, out);
            self.rounds -= n as i32;
            self.alloc += n as u64;
            true
        } else {
            false
        }
    }

    /// Stores all of `objs` in the loaded magazine if it has room.
    #[inline(always)]
    fn push_all(&mut self, objs: &[NonNull<u8>]) -> bool {
        // `-1 as u32` is larger than any size, and a size of 0 refuses all.
        let r = self.rounds as u32;
        if r < self.magsize && (self.magsize - r) as usize >= objs.len() {
            // SAFETY: `rounds >= 0` implies `loaded` is `Some`.
            let mag = unsafe { self.loaded.as_mut().unwrap_unchecked() };
            mag.copy_in(r as usize, objs);
            self.rounds += objs.len() as i32;
            self.free += objs.len() as u64;
            true
        } else {
            false
        }
    }

    fn swap(&mut self) {
        core::mem::swap(&mut self.loaded, &mut self.ploaded);
        core::mem::swap(&mut self.rounds, &mut self.prounds);
    }

    /// Takes both magazines with their valid counts, and disables the slot.
    fn take_all(&mut self, out: &mut Vec<(MagBox, usize)>) {
        if let Some(m) = self.loaded.take() {
            out.push((m, self.rounds.max(0) as usize));
        }
        if let Some(m) = self.ploaded.take() {
            out.push((m, self.prounds.max(0) as usize));
        }
        self.rounds = -1;
        self.prounds = -1;
        self.magsize = 0;
    }
}

/// A cache's slots under locality policy `L`, seen by the core as a
/// [`SlotSet`] (the only code compiled per policy besides the fast paths).
pub(crate) struct LocalSlots<L: CpuLocal>(L::Slots<CpuCache>);

impl<L: CpuLocal> SlotSet for LocalSlots<L> {
    fn with_current(&self, f: &mut dyn FnMut(&mut CpuCache)) -> bool {
        L::with_slot(&self.0, f).is_some()
    }
    fn for_each(&self, f: &mut dyn FnMut(&mut CpuCache)) {
        L::for_each_slot(&self.0, f);
    }
    fn front_refill(&self, objs: &[NonNull<u8>]) -> usize {
        L::fast_refill(&self.0, objs)
    }
    fn front_take(&self, out: &mut [MaybeUninit<NonNull<u8>>]) -> usize {
        L::fast_take(&self.0, out)
    }
    fn front_drain_all(&self, out: &mut Vec<NonNull<u8>>) {
        L::fast_drain_all(&self.0, out);
    }
    fn front_cached(&self) -> usize {
        L::fast_cached(&self.0)
    }
    fn locality(&self) -> &'static str {
        L::locality(&self.0)
    }
}

/// The shared state behind every clone of a [`Cache`]: the layer beneath,
/// the slots and the non-generic core. Not generic over the ladder (the
/// core holds its steps).
pub(crate) struct Inner<B: ObjectLayer, L: CpuLocal> {
    slots: LocalSlots<L>,
    pub(crate) below: B,
    core: CacheCore,
}

impl<B: ObjectLayer, L: CpuLocal> Inner<B, L> {
    /// The core with this cache's layer and slots, for the slow paths.
    #[inline(always)]
    fn core(&self) -> CoreRef<'_> {
        CoreRef {
            core: &self.core,
            below: &self.below,
            slots: &self.slots,
        }
    }

    // The fast paths' exits: out of line, so that a fast path only passes
    // `&self` (not the core's trait objects) on its cold branch.

    /// [`CoreRef::alloc_slow`].
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        self.core().alloc_slow(flags)
    }

    /// [`CoreRef::alloc_refill`].
    #[cold]
    #[inline(never)]
    fn alloc_refill(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        self.core().alloc_refill(flags)
    }

    /// [`CoreRef::free_spill`].
    ///
    /// # Safety
    ///
    /// As [`Cache::free`].
    #[cold]
    #[inline(never)]
    unsafe fn free_spill(&self, obj: NonNull<u8>) {
        // SAFETY: forwarded from the caller.
        unsafe { self.core().free_spill(obj) }
    }

    /// [`CoreRef::free_slow`].
    ///
    /// # Safety
    ///
    /// As [`Cache::free_batch`].
    #[cold]
    #[inline(never)]
    unsafe fn free_slow(&self, objs: &[NonNull<u8>]) {
        // SAFETY: forwarded from the caller.
        unsafe { self.core().free_slow(objs) }
    }
}

/// A magazine cache stacked on an object layer `B` (normally a
/// [`SlabCache`](skmem_slab::SlabCache)), with CPU locality `L` and
/// magazine ladder `G`.
///
/// A `Cache` is a handle: cloning it is cheap and every clone is the same
/// cache. Objects handed out stay constructed while they rest in magazines;
/// the layer beneath constructs them when they leave it and destructs them
/// when they go back (on purge, reap, `free_nocache`, a full CPU layer
/// without spare magazines, or when the cache is dropped).
pub struct Cache<B: ObjectLayer, L: CpuLocal = crate::DefaultLocal, G: Ladder = SeedLadder> {
    inner: Arc<Inner<B, L>>,
    ladder: PhantomData<G>,
}

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> Clone for Cache<B, L, G> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            ladder: PhantomData,
        }
    }
}

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> fmt::Debug for Cache<B, L, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.name())
            .field("locality", &self.inner.slots.locality())
            .field("magazine_size", &self.magazine_size())
            .finish_non_exhaustive()
    }
}

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> Cache<B, L, G> {
    /// Stacks a magazine cache on `below`.
    ///
    /// The starting magazine size comes from the layer's chunk size and the
    /// ladder. The cache registers with the layer as a reaper (a region
    /// asks it to give objects back when it runs out) and, unless
    /// `config.register` is off, in the global registry.
    pub fn new(below: B, config: CacheConfig) -> Result<Self> {
        let () = <G as LadderExt>::VALID;
        const {
            assert!(
                L::FRONT_OBJS_PER_SLOT <= FRONT_CAP,
                "residency sizing reserves FRONT_CAP front objects per slot"
            )
        };
        let core = CacheCore::new(&below, G::STEPS, config)?;
        let init_rounds = core.enabled_rounds();
        let inner = Arc::new_cyclic(|weak: &Weak<Inner<B, L>>| {
            let exit_owner = weak.clone();
            let hooks = SlotHooks {
                init: Box::new(move || CpuCache::new(init_rounds.load(Ordering::Acquire))),
                on_exit: Some(Box::new(move |cp: &mut CpuCache| {
                    let inner = exit_owner.upgrade()?;
                    let taken = core::mem::replace(cp, CpuCache::new(0));
                    Some(Box::new(move || inner.core().flush_exited(taken)) as ExitJob)
                })),
            };
            Inner {
                slots: LocalSlots(L::new_slots(hooks)),
                below,
                core,
            }
        });
        if inner.core.magazines_off() {
            L::fast_disable(&inner.slots.0);
        }
        inner.core().enable();
        let reaper: Weak<dyn Reap> = Arc::downgrade(&inner) as Weak<dyn Reap>;
        inner.below.add_reaper(reaper);
        if inner.core.config.register {
            let entry = registry::register_arc(registry::Kind::Cache, &inner);
            let _ = inner.core.registration.set(entry);
        }
        inner.core().created(L::NAME);
        Ok(Cache {
            inner,
            ladder: PhantomData,
        })
    }

    /// The cache's name (its layer's).
    pub fn name(&self) -> &str {
        self.inner.below.name()
    }

    /// The layer beneath.
    pub fn layer(&self) -> &B {
        &self.inner.below
    }

    /// The configuration the cache was made with.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.core.config
    }

    /// Usable bytes of each object.
    pub fn obj_size(&self) -> usize {
        self.inner.below.obj_size()
    }

    /// Alignment of each object.
    pub fn obj_align(&self) -> usize {
        self.inner.below.obj_align()
    }

    /// Bytes between neighbouring objects in the layer beneath.
    pub fn chunk_size(&self) -> usize {
        self.inner.core.chunk
    }

    /// Current magazine capacity (0 with no magazines).
    pub fn magazine_size(&self) -> u32 {
        self.inner.core.magazine_size()
    }

    /// Failed depot try-locks so far.
    pub fn contention(&self) -> u64 {
        self.inner.core.contention()
    }

    /// Allocates one constructed object without waiting for memory; `None`
    /// when the cache and the layer beneath have nothing.
    ///
    /// The fast path pops from the policy's lock-free front when it has one
    /// (`PerCpu` on rseq), else takes the slot and pops a pointer from its
    /// loaded magazine. Only the hit is inline: a policy with a front takes
    /// everything else (refill, the locked fallback) out of line, so that
    /// the caller's fast path is the front's section and one branch.
    #[inline(always)]
    pub fn alloc(&self) -> Option<NonNull<u8>> {
        if L::FRONT_OBJS_PER_SLOT != 0 {
            return match L::fast_pop(&self.inner.slots.0) {
                FastPath::Hit(obj) => Some(obj),
                FastPath::Miss => self.alloc_refill_nosleep(),
                FastPath::Off => self.alloc_from_slot(),
            };
        }
        self.alloc_from_slot_inline()
    }

    /// The slot path of `alloc`: pop from the loaded magazine.
    #[inline(always)]
    fn alloc_from_slot_inline(&self) -> Option<NonNull<u8>> {
        match L::with_slot(&self.inner.slots.0, CpuCache::pop) {
            Some(Some(obj)) => Some(obj),
            _ => self.alloc_slow_nosleep(),
        }
    }

    /// The slot path of `alloc` out of line: a policy with a front uses it
    /// where its front is off (the locked fallback).
    #[inline(never)]
    fn alloc_from_slot(&self) -> Option<NonNull<u8>> {
        self.alloc_from_slot_inline()
    }

    /// `alloc`'s front refill, error dropped, out of line.
    #[cold]
    #[inline(never)]
    fn alloc_refill_nosleep(&self) -> Option<NonNull<u8>> {
        self.inner.alloc_refill(AllocFlags::NoSleep).ok()
    }

    /// `alloc`'s slow path, error dropped out of line (keeps `alloc` small
    /// enough to inline into callers).
    #[cold]
    #[inline(never)]
    fn alloc_slow_nosleep(&self) -> Option<NonNull<u8>> {
        self.inner.alloc_slow(AllocFlags::NoSleep).ok()
    }

    /// Allocates one constructed object; `flags` say whether the layer
    /// beneath may wait for memory. The error says why nothing was had.
    #[inline]
    pub fn alloc_with(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        match L::fast_pop(&self.inner.slots.0) {
            FastPath::Hit(obj) => return Ok(obj),
            FastPath::Miss => return self.inner.alloc_refill(flags),
            FastPath::Off => {}
        }
        match L::with_slot(&self.inner.slots.0, CpuCache::pop) {
            Some(Some(obj)) => Ok(obj),
            _ => self.inner.alloc_slow(flags),
        }
    }

    /// Allocates up to `out.len()` constructed objects into a prefix of
    /// `out` and returns how many: first from the CPU layer and the depot
    /// (two full magazines at once when more than a magazine is wanted),
    /// then from the layer beneath.
    #[inline]
    pub fn alloc_batch(&self, out: &mut [MaybeUninit<NonNull<u8>>], flags: AllocFlags) -> usize {
        if out.is_empty() {
            return 0;
        }
        if L::with_slot(&self.inner.slots.0, |cp| cp.pop_all(out)) == Some(true) {
            return out.len();
        }
        self.alloc_batch_slow(out, flags)
    }

    /// `alloc_batch`'s slow path, the one slow path left in the shell: it
    /// gives back through [`free_batch`](Self::free_batch), and with that
    /// call gone (the body in the core) LLVM inlined `free_batch` into its
    /// one remaining caller in `ci/iai.sh`'s harness, 5 instructions per
    /// batch of 32 dearer (measured).
    #[cold]
    #[inline(never)]
    fn alloc_batch_slow(&self, out: &mut [MaybeUninit<NonNull<u8>>], flags: AllocFlags) -> usize {
        let n = self.inner.core().alloc_cpu_layer(out);
        if n == out.len() {
            return n;
        }
        let (from_cpu, rest) = out.split_at_mut(n);
        // The layer beneath may panic (a constructor, or a destructor run by
        // the region's reap); the caller then never learns of the objects
        // already taken from the CPU layer, so they go back first.
        match catch_unwind(AssertUnwindSafe(|| {
            self.inner.below.alloc_batch(rest, flags)
        })) {
            Ok(m) => n + m,
            Err(payload) => {
                // SAFETY: `alloc_cpu_layer` initialised this prefix;
                // `MaybeUninit<T>` has `T`'s layout.
                let taken = unsafe {
                    core::slice::from_raw_parts(from_cpu.as_ptr().cast::<NonNull<u8>>(), n)
                };
                let give_back = || {
                    // SAFETY: constructed objects of this cache, taken by
                    // this call and handed to nobody.
                    unsafe { self.free_batch(taken) }
                };
                if catch_unwind(AssertUnwindSafe(give_back)).is_err() {
                    tracing::error!(cache = %self.name(), "a destructor panicked while a panicking batch allocation gave its objects back");
                }
                resume_unwind(payload)
            }
        }
    }

    /// Frees a constructed object into the cache. It stays constructed in
    /// a magazine, or goes back to the layer beneath (destructed) when the
    /// CPU layer and depot have no room.
    ///
    /// # Safety
    ///
    /// `obj` was allocated from this cache (any clone of it), is not freed
    /// yet, and is not used after this call. It must be in its constructed
    /// state, as the constructor left it or as the user restored it.
    #[inline(always)]
    pub unsafe fn free(&self, obj: NonNull<u8>) {
        if L::FRONT_OBJS_PER_SLOT != 0 {
            match L::fast_push(&self.inner.slots.0, obj) {
                FastPath::Hit(()) => {}
                // SAFETY: forwarded from the caller.
                FastPath::Miss => unsafe { self.inner.free_spill(obj) },
                // SAFETY: forwarded from the caller.
                FastPath::Off => unsafe { self.free_to_slot(obj) },
            }
            return;
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.free_to_slot_inline(obj) }
    }

    /// The slot path of `free`: push onto the loaded magazine.
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free).
    #[inline(always)]
    unsafe fn free_to_slot_inline(&self, obj: NonNull<u8>) {
        if L::with_slot(&self.inner.slots.0, |cp| cp.push(obj)) != Some(true) {
            // SAFETY: forwarded from the caller.
            unsafe { self.inner.free_slow(&[obj]) }
        }
    }

    /// The slot path of `free` out of line: a policy with a front uses it
    /// where its front is off (the locked fallback).
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free).
    #[inline(never)]
    unsafe fn free_to_slot(&self, obj: NonNull<u8>) {
        // SAFETY: forwarded from the caller.
        unsafe { self.free_to_slot_inline(obj) }
    }

    /// Frees many constructed objects (two empty magazines at once when
    /// more than a magazine's worth is freed).
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free), for every element; no element repeats.
    #[inline]
    pub unsafe fn free_batch(&self, objs: &[NonNull<u8>]) {
        if !objs.is_empty()
            && L::with_slot(&self.inner.slots.0, |cp| cp.push_all(objs)) != Some(true)
        {
            // SAFETY: forwarded from the caller.
            unsafe { self.inner.free_slow(objs) }
        }
    }

    /// Frees an object straight to the layer beneath (destructing it),
    /// bypassing the magazines (the seed's `skmem_cache_free_nocache`).
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free).
    pub unsafe fn free_nocache(&self, obj: NonNull<u8>) {
        // SAFETY: forwarded from the caller.
        unsafe { self.inner.below.free(obj) }
    }

    /// Periodic maintenance: starts a new working-set interval and, in
    /// dynamic mode, grows the magazines if depot contention in the interval
    /// passed the threshold. Normally run by [`update_all`](crate::update_all)
    /// or the [`Maintenance`](crate::Maintenance) thread.
    pub fn update(&self) {
        self.inner.core().update();
    }

    /// Reaps now (the seed's `skmem_cache_reap_now`): with `purge` (or in
    /// purge-on-reap mode) every magazine goes back to the layer beneath and
    /// the CPU layer is re-enabled; otherwise the working set is zeroed, the
    /// whole depot and every slot's previous magazine go back. A purge
    /// already in progress on another thread makes this a no-op.
    pub fn reap_now(&self, purge: bool) {
        self.inner.core().reap_now(purge);
    }

    /// The periodic reap (the seed's `skmem_cache_reclaim`): runs the
    /// owner's reclaim callback, then with `lowmem` purges, otherwise gives
    /// back the depot magazines outside the working set; finally asks the
    /// layer beneath to return empty slabs.
    pub fn reclaim(&self, lowmem: bool) {
        self.inner.core().reclaim(lowmem);
    }

    /// Purges the CPU layer and depot, then re-enables magazines.
    pub fn purge(&self) {
        self.inner.core().reap_now(true);
    }

    /// A snapshot of the cache's statistics, its layer's included.
    pub fn stats(&self) -> CacheStats {
        self.inner.core().stats()
    }

    /// Test hook: climbs one ladder step now, as an update that judged the
    /// depot contended would (purge, switch, re-enable in the perimeter).
    #[doc(hidden)]
    pub fn debug_resize(&self) {
        self.inner.core().resize();
    }

    /// Test hook: runs `f` while holding the depot lock, so that another
    /// thread's depot access fails its try-lock (contention).
    #[doc(hidden)]
    pub fn debug_hold_depot<R>(&self, f: impl FnOnce() -> R) -> R {
        self.inner.core.hold_depot(f)
    }
}

impl<B: ObjectLayer, L: CpuLocal> Reap for Inner<B, L> {
    fn reap_now(&self, purge: bool) {
        self.core().reap_now(purge);
        self.below.reap();
    }
}

impl<B: ObjectLayer, L: CpuLocal> registry::Registered for Inner<B, L> {
    fn update(&self) {
        self.core().update();
    }
    fn reclaim(&self, lowmem: bool) {
        self.core().reclaim(lowmem);
    }
    fn stats(&self) -> registry::Stats {
        registry::Stats::Cache(self.core().stats())
    }
}

impl<B: ObjectLayer, L: CpuLocal> Drop for Inner<B, L> {
    fn drop(&mut self) {
        self.core().drop_all();
    }
}

// Loom's primitives only work inside a loom model.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::local::Global;
    use skmem_slab::{Heap, SlabCache};

    #[test]
    fn enable_accepts_a_slot_born_enabled_holding_magazines() {
        // A slot created after `enable` published the size is born enabled
        // and, before `enable`'s walk reaches it, may load magazines: the
        // state a new thread allocating during a purge loop produces. The
        // single `Global` slot is in exactly that state after a free.
        let cache = Cache::builder("born-enabled", 64)
            .capacity(64)
            .locality::<Global>()
            .config(CacheConfig::default().register(false))
            .build()
            .unwrap();
        let obj = cache.alloc().unwrap();
        // SAFETY: allocated above, freed once.
        unsafe { cache.free(obj) };
        let rounds = cache.magazine_size();
        with_the_slot(&cache, |cp| {
            assert!(cp.loaded.is_some() && cp.magsize == rounds)
        });
        cache.inner.core().enable();
        with_the_slot(&cache, |cp| {
            assert_eq!(
                (cp.rounds, cp.magsize),
                (1, rounds),
                "the slot keeps its magazine"
            )
        });
        assert_eq!(cache.alloc(), Some(obj), "and serves it from there");
        // SAFETY: allocated above, freed once.
        unsafe { cache.free(obj) };
        cache.purge();
        assert_eq!(cache.layer().stats().sl_bufinuse, 0);
    }

    fn with_the_slot(cache: &Cache<SlabCache<Heap>, Global>, f: impl FnMut(&mut CpuCache)) {
        Global::for_each_slot(&cache.inner.slots.0, f);
    }
}

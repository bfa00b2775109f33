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
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};

use generic_array::ArrayLength;
use skmem_slab::Reap;
use skmem_traits::stats::CacheStats;
use skmem_traits::{AllocFlags, CpuLocal, Error, ExitJob, FastPath, Result, SlotHooks};

use crate::depot::Depot;
use crate::ladder::{Ladder, LadderExt, SeedLadder};
use crate::layer::ObjectLayer;
use crate::local::FRONT_CAP;
use crate::magazine::{Chain, MagBox, Magazine};
use crate::sync::{
    current_thread, AtomicU32, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, ThreadId,
};
use skmem_traits::registry;

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
pub(crate) struct CpuCache<N: ArrayLength> {
    rounds: i32,
    magsize: u32,
    loaded: Option<MagBox<N>>,
    alloc: u64,
    free: u64,
    prounds: i32,
    ploaded: Option<MagBox<N>>,
}

impl<N: ArrayLength> fmt::Debug for CpuCache<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuCache")
            .field("rounds", &self.rounds)
            .field("prounds", &self.prounds)
            .field("magsize", &self.magsize)
            .finish_non_exhaustive()
    }
}

impl<N: ArrayLength> CpuCache<N> {
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
            let mag = unsafe { self.loaded.as_deref().unwrap_unchecked() };
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
            let mag = unsafe { self.loaded.as_deref_mut().unwrap_unchecked() };
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
            let mag = unsafe { self.loaded.as_deref().unwrap_unchecked() };
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
            let mag = unsafe { self.loaded.as_deref_mut().unwrap_unchecked() };
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
    fn take_all(&mut self, out: &mut Vec<(MagBox<N>, usize)>) {
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

enum FreeStep {
    Done,
    ToLayer,
    NeedMagazine(u32),
}

/// The resize perimeter: one purge / resize / re-enable at a time, with
/// re-entry for the thread inside (the seed's `skm_rs_busy`).
struct Perimeter {
    state: Mutex<PerimeterState>,
    cv: Condvar,
}

struct PerimeterState {
    busy: u32,
    owner: Option<ThreadId>,
}

impl Perimeter {
    fn new() -> Self {
        Perimeter {
            state: Mutex::new(PerimeterState {
                busy: 0,
                owner: None,
            }),
            cv: Condvar::new(),
        }
    }

    /// Enters, waiting for another thread inside to leave.
    fn enter(&self) -> PerimeterGuard<'_> {
        self.enter_impl(true)
            .expect("a waiting entry into the perimeter always succeeds")
    }

    /// Enters unless another thread is inside.
    fn try_enter(&self) -> Option<PerimeterGuard<'_>> {
        self.enter_impl(false)
    }

    fn enter_impl(&self, can_sleep: bool) -> Option<PerimeterGuard<'_>> {
        let me = current_thread();
        let mut st = self.state.lock();
        if st.owner == Some(me) {
            st.busy += 1;
            return Some(PerimeterGuard(self));
        }
        while st.busy != 0 {
            if !can_sleep {
                return None;
            }
            st = self.cv.wait(st);
        }
        st.busy = 1;
        st.owner = Some(me);
        Some(PerimeterGuard(self))
    }

    fn exit(&self) {
        let mut st = self.state.lock();
        debug_assert!(st.busy > 0 && st.owner == Some(current_thread()));
        st.busy -= 1;
        if st.busy == 0 {
            st.owner = None;
            drop(st);
            self.cv.notify_all();
        }
    }
}

/// Inside the resize perimeter; dropping it (on return or on unwind)
/// leaves.
struct PerimeterGuard<'a>(&'a Perimeter);

impl Drop for PerimeterGuard<'_> {
    fn drop(&mut self) {
        self.0.exit();
    }
}

/// Re-enables the CPU layer when dropped: a purge inside the perimeter
/// leaves the slots disabled until then, also when it unwinds.
struct EnableOnDrop<'a, B: ObjectLayer, L: CpuLocal, G: Ladder>(&'a Inner<B, L, G>);

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> Drop for EnableOnDrop<'_, B, L, G> {
    fn drop(&mut self) {
        self.0.enable();
    }
}

/// Magazines taken out of slots or the depot, with their valid round
/// counts, owed to the layer beneath. Dropping the guard gives every one
/// back, whatever happens: a panic from the layer (a destructor) is caught,
/// the remaining magazines are still given back, and the first panic is
/// resumed afterwards (or dropped when the thread is already unwinding).
/// No lock of the cache is held while it gives back.
struct Owed<'a, B: ObjectLayer, L: CpuLocal, G: Ladder> {
    inner: &'a Inner<B, L, G>,
    mags: Vec<(MagBox<G::MaxRounds>, usize)>,
}

impl<'a, B: ObjectLayer, L: CpuLocal, G: Ladder> Owed<'a, B, L, G> {
    fn new(inner: &'a Inner<B, L, G>) -> Self {
        Owed {
            inner,
            mags: Vec::new(),
        }
    }

    /// Owes a chain of full (`full`) or empty magazines.
    fn chain(&mut self, mut chain: Chain<G::MaxRounds>, full: bool) {
        while let Some(mag) = chain.pop() {
            let n = if full { mag.cap as usize } else { 0 };
            self.mags.push((mag, n));
        }
    }
}

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> Drop for Owed<'_, B, L, G> {
    fn drop(&mut self) {
        let mut first_panic = None;
        while let Some((mag, n)) = self.mags.pop() {
            let inner = self.inner;
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| inner.destroy(&mag, n))) {
                first_panic.get_or_insert(payload);
            }
        }
        if let Some(payload) = first_panic {
            if std::thread::panicking() {
                tracing::error!(cache = %self.inner.below.name(), "a destructor panicked while unwinding; its panic is dropped");
            } else {
                resume_unwind(payload);
            }
        }
    }
}

pub(crate) type Slots<L, G> = <L as CpuLocal>::Slots<CpuCache<<G as Ladder>::MaxRounds>>;

pub(crate) struct Inner<B: ObjectLayer, L: CpuLocal, G: Ladder> {
    slots: Slots<L, G>,
    pub(crate) below: B,
    depot: Mutex<Depot<G::MaxRounds>>,
    /// Size new slots start with (0 while purged / disabled).
    enabled_rounds: Arc<AtomicU32>,
    contention: AtomicU64,
    resizes: AtomicU64,
    purges: AtomicU64,
    reaps: AtomicU64,
    retired_alloc: AtomicU64,
    retired_free: AtomicU64,
    perimeter: Perimeter,
    chunk: usize,
    config: CacheConfig,
    /// The cache's entry in the process registry (none when
    /// `config.register` is off); dropped with the cache.
    registration: std::sync::OnceLock<skmem_traits::registry::Registration>,
    /// Debug path (the layer beneath is in debug mode): see `debug.rs`.
    debug: Option<crate::debug::DebugMags>,
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
    inner: Arc<Inner<B, L, G>>,
}

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> Clone for Cache<B, L, G> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
        }
    }
}

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> fmt::Debug for Cache<B, L, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.name())
            .field("locality", &L::locality(&self.inner.slots))
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
        let chunk = below.chunk_size();
        if chunk == 0 || chunk < below.obj_size() {
            return Err(Error::invalid_param(
                "chunk_size",
                chunk as u64,
                "the layer's chunk is smaller than its objects",
            ));
        }
        if !below.obj_align().is_power_of_two() {
            return Err(Error::invalid_param(
                "obj_align",
                below.obj_align() as u64,
                "not a power of two",
            ));
        }
        let step = G::start_step(chunk);
        let rounds = G::rounds(step);
        let enabled_rounds = Arc::new(AtomicU32::new(0));
        let debug = crate::debug::DebugMags::for_layer(&below, rounds, &config);
        let inner = Arc::new_cyclic(|weak: &Weak<Inner<B, L, G>>| {
            let init_rounds = enabled_rounds.clone();
            let exit_owner = weak.clone();
            let hooks = SlotHooks {
                init: Box::new(move || CpuCache::new(init_rounds.load(Ordering::Acquire))),
                on_exit: Some(Box::new(move |cp: &mut CpuCache<G::MaxRounds>| {
                    let inner = exit_owner.upgrade()?;
                    let taken = core::mem::replace(cp, CpuCache::new(0));
                    Some(Box::new(move || inner.flush_exited(taken)) as ExitJob)
                })),
            };
            Inner {
                slots: L::new_slots(hooks),
                below,
                depot: Mutex::new(Depot::new(step, rounds)),
                enabled_rounds,
                contention: AtomicU64::new(0),
                resizes: AtomicU64::new(0),
                purges: AtomicU64::new(0),
                reaps: AtomicU64::new(0),
                retired_alloc: AtomicU64::new(0),
                retired_free: AtomicU64::new(0),
                perimeter: Perimeter::new(),
                chunk,
                config,
                registration: std::sync::OnceLock::new(),
                debug,
            }
        });
        if inner.config.no_magazines || inner.debug.is_some() {
            L::fast_disable(&inner.slots);
        }
        inner.enable();
        let reaper: Weak<dyn Reap> = Arc::downgrade(&inner) as Weak<dyn Reap>;
        inner.below.add_reaper(reaper);
        if inner.config.register {
            let entry = registry::register_arc(registry::Kind::Cache, &inner);
            let _ = inner.registration.set(entry);
        }
        tracing::debug!(cache = %inner.below.name(), chunk, rounds, locality = L::NAME, "magazine cache created");
        Ok(Cache { inner })
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
        &self.inner.config
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
        self.inner.chunk
    }

    /// Current magazine capacity (0 with no magazines).
    pub fn magazine_size(&self) -> u32 {
        if self.inner.config.no_magazines {
            0
        } else {
            self.inner.depot.lock().rounds
        }
    }

    /// Failed depot try-locks so far.
    pub fn contention(&self) -> u64 {
        self.inner.contention.load(Ordering::Relaxed)
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
            return match L::fast_pop(&self.inner.slots) {
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
        match L::with_slot(&self.inner.slots, CpuCache::pop) {
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
        match L::fast_pop(&self.inner.slots) {
            FastPath::Hit(obj) => return Ok(obj),
            FastPath::Miss => return self.inner.alloc_refill(flags),
            FastPath::Off => {}
        }
        match L::with_slot(&self.inner.slots, CpuCache::pop) {
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
        if L::with_slot(&self.inner.slots, |cp| cp.pop_all(out)) == Some(true) {
            return out.len();
        }
        self.alloc_batch_slow(out, flags)
    }

    #[cold]
    #[inline(never)]
    fn alloc_batch_slow(&self, out: &mut [MaybeUninit<NonNull<u8>>], flags: AllocFlags) -> usize {
        let n = self.inner.alloc_cpu_layer(out);
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
            match L::fast_push(&self.inner.slots, obj) {
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
        if L::with_slot(&self.inner.slots, |cp| cp.push(obj)) != Some(true) {
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
        if !objs.is_empty() && L::with_slot(&self.inner.slots, |cp| cp.push_all(objs)) != Some(true)
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
        self.inner.update();
    }

    /// Reaps now (the seed's `skmem_cache_reap_now`): with `purge` (or in
    /// purge-on-reap mode) every magazine goes back to the layer beneath and
    /// the CPU layer is re-enabled; otherwise the working set is zeroed, the
    /// whole depot and every slot's previous magazine go back. A purge
    /// already in progress on another thread makes this a no-op.
    pub fn reap_now(&self, purge: bool) {
        self.inner.reap_now(purge);
    }

    /// The periodic reap (the seed's `skmem_cache_reclaim`): runs the
    /// owner's reclaim callback, then with `lowmem` purges, otherwise gives
    /// back the depot magazines outside the working set; finally asks the
    /// layer beneath to return empty slabs.
    pub fn reclaim(&self, lowmem: bool) {
        self.inner.reclaim(lowmem);
    }

    /// Purges the CPU layer and depot, then re-enables magazines.
    pub fn purge(&self) {
        self.inner.reap_now(true);
    }

    /// A snapshot of the cache's statistics, its layer's included.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats()
    }

    /// Test hook: climbs one ladder step now, as an update that judged the
    /// depot contended would (purge, switch, re-enable in the perimeter).
    #[doc(hidden)]
    pub fn debug_resize(&self) {
        self.inner.resize();
    }

    /// Test hook: runs `f` while holding the depot lock, so that another
    /// thread's depot access fails its try-lock (contention).
    #[doc(hidden)]
    pub fn debug_hold_depot<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.inner.depot.lock();
        f()
    }
}

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> Inner<B, L, G> {
    #[inline]
    fn lock_depot(&self) -> MutexGuard<'_, Depot<G::MaxRounds>> {
        if let Some(g) = self.depot.try_lock() {
            return g;
        }
        self.contention.fetch_add(1, Ordering::Relaxed);
        self.depot.lock()
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        let mut one = [MaybeUninit::uninit()];
        if self.alloc_cpu_layer(&mut one) == 1 {
            // SAFETY: `alloc_cpu_layer` initialised the prefix it counted.
            return Ok(unsafe { one[0].assume_init() });
        }
        self.below.alloc_with(flags)
    }

    /// The front missed: pops up to half a front (plus the object to hand
    /// out) from the slot's magazines and the depot under the slot's lock,
    /// pushes the extra into the front with one commit, and gives back
    /// through the slot whatever the front did not take (another thread on
    /// this CPU filled it meanwhile, or a remote operation stopped it).
    #[cold]
    #[inline(never)]
    fn alloc_refill(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        let mut buf = [MaybeUninit::uninit(); FRONT_CAP / 2 + 1];
        let n = self.alloc_cpu_layer(&mut buf);
        if n == 0 {
            return self.below.alloc_with(flags);
        }
        // SAFETY: `alloc_cpu_layer` initialised the prefix `n` it counted;
        // `MaybeUninit<T>` has `T`'s layout.
        let got = unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<NonNull<u8>>(), n) };
        let (&obj, extra) = got.split_last().expect("n > 0");
        let placed = L::fast_refill(&self.slots, extra);
        if placed < extra.len() {
            // SAFETY: the objects came from this cache's CPU layer and are
            // held by no one else (nor by the front, which refused them).
            unsafe { self.free_slow(&extra[placed..]) };
        }
        Ok(obj)
    }

    /// The front is full (or stopped): takes half of it out with one
    /// commit and frees that and `obj` through the slot.
    ///
    /// # Safety
    ///
    /// As [`Cache::free`].
    #[cold]
    #[inline(never)]
    unsafe fn free_spill(&self, obj: NonNull<u8>) {
        let mut buf = [MaybeUninit::uninit(); FRONT_CAP / 2 + 1];
        let n = L::fast_take(&self.slots, &mut buf[..FRONT_CAP / 2]);
        buf[n].write(obj);
        // SAFETY: `fast_take` initialised the prefix `n`, and `buf[n]` was
        // just written.
        let objs =
            unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<NonNull<u8>>(), n + 1) };
        // SAFETY: the front's objects belong to this cache and left the
        // front (the trait's contract); `obj` is forwarded from the caller.
        unsafe { self.free_slow(objs) }
    }

    fn alloc_cpu_layer(&self, out: &mut [MaybeUninit<NonNull<u8>>]) -> usize {
        if let Some(d) = &self.debug {
            return d.take(&self.below, out);
        }
        if self.config.no_magazines {
            return 0;
        }
        L::with_slot(&self.slots, |cp| self.cpu_alloc(cp, out)).unwrap_or(0)
    }

    /// The CPU-layer half of batch allocation, under the slot's exclusion.
    fn cpu_alloc(
        &self,
        cp: &mut CpuCache<G::MaxRounds>,
        out: &mut [MaybeUninit<NonNull<u8>>],
    ) -> usize {
        let mut got = 0;
        loop {
            if cp.rounds > 0 {
                let k = (cp.rounds as usize).min(out.len() - got);
                let top = cp.rounds as usize;
                let mag = cp
                    .loaded
                    .as_deref()
                    .expect("rounds > 0 without a loaded magazine");
                // The top `k` rounds, in one copy (the batch gets them in
                // stored order; which object lands where does not matter).
                mag.copy_out(top - k, &mut out[got..got + k]);
                cp.rounds -= k as i32;
                cp.alloc += k as u64;
                got += k;
                if got == out.len() {
                    return got;
                }
            }
            if cp.prounds > 0 {
                cp.swap();
                continue;
            }
            if cp.magsize == 0 {
                return got;
            }
            let want = if out.len() - got <= cp.magsize as usize {
                1
            } else {
                2
            };
            let mut full = Chain::new();
            let mut depot = self.lock_depot();
            if depot.rounds != cp.magsize {
                return got;
            }
            depot.full.take(want, &mut full);
            let Some(m1) = full.pop() else { return got };
            let size = cp.magsize as i32;
            if let Some(p) = cp.ploaded.take() {
                debug_assert!(cp.prounds == 0);
                depot.empty.put(p);
            }
            match full.pop() {
                None => {
                    // One full magazine: the empty loaded one becomes previous.
                    cp.ploaded = cp.loaded.take();
                    cp.prounds = if cp.ploaded.is_some() { cp.rounds } else { -1 };
                }
                Some(m2) => {
                    // Two: both of ours (empty) go back to the depot.
                    if let Some(l) = cp.loaded.take() {
                        depot.empty.put(l);
                    }
                    cp.ploaded = Some(m2);
                    cp.prounds = size;
                }
            }
            cp.loaded = Some(m1);
            cp.rounds = size;
        }
    }

    /// # Safety
    ///
    /// As [`Cache::free_batch`].
    #[cold]
    #[inline(never)]
    unsafe fn free_slow(&self, objs: &[NonNull<u8>]) {
        if let Some(d) = &self.debug {
            // SAFETY: forwarded from the caller.
            return unsafe { d.free(&self.below, objs) };
        }
        let mut rest = objs;
        if !self.config.no_magazines {
            loop {
                match L::with_slot(&self.slots, |cp| self.cpu_free(cp, &mut rest)) {
                    Some(FreeStep::Done) => return,
                    Some(FreeStep::NeedMagazine(cap)) => {
                        if self.add_empty_magazine(cap) {
                            continue;
                        }
                        break;
                    }
                    Some(FreeStep::ToLayer) | None => break,
                }
            }
        }
        // SAFETY: forwarded from the caller; `rest` are the objects that
        // found no room in the magazines.
        unsafe { self.below.free_batch(rest) }
    }

    /// The CPU-layer half of batch free, under the slot's exclusion.
    fn cpu_free(&self, cp: &mut CpuCache<G::MaxRounds>, objs: &mut &[NonNull<u8>]) -> FreeStep {
        loop {
            if (cp.rounds as u32) < cp.magsize {
                let r = cp.rounds as usize;
                let k = (cp.magsize as usize - r).min(objs.len());
                let mag = cp
                    .loaded
                    .as_deref_mut()
                    .expect("rounds >= 0 without a loaded magazine");
                mag.copy_in(r, &objs[..k]);
                cp.rounds += k as i32;
                cp.free += k as u64;
                *objs = &objs[k..];
                if objs.is_empty() {
                    return FreeStep::Done;
                }
            }
            if cp.prounds == 0 {
                cp.swap();
                continue;
            }
            if cp.magsize == 0 {
                return FreeStep::ToLayer;
            }
            let want = if objs.len() > cp.magsize as usize {
                2
            } else {
                1
            };
            let mut empty = Chain::new();
            let mut depot = self.lock_depot();
            if depot.rounds != cp.magsize {
                return FreeStep::ToLayer;
            }
            depot.empty.take(want, &mut empty);
            let Some(m1) = empty.pop() else {
                return FreeStep::NeedMagazine(cp.magsize);
            };
            if let Some(p) = cp.ploaded.take() {
                debug_assert!(cp.prounds == cp.magsize as i32);
                depot.full.put(p);
            }
            match empty.pop() {
                None => {
                    // One empty magazine: the full loaded one becomes previous.
                    cp.ploaded = cp.loaded.take();
                    cp.prounds = if cp.ploaded.is_some() { cp.rounds } else { -1 };
                }
                Some(m2) => {
                    if let Some(l) = cp.loaded.take() {
                        depot.full.put(l);
                    }
                    cp.ploaded = Some(m2);
                    cp.prounds = 0;
                }
            }
            cp.loaded = Some(m1);
            cp.rounds = 0;
        }
    }

    /// Allocates an empty magazine of `cap` rounds into the depot; `false`
    /// when memory is short or the size changed meanwhile.
    #[cold]
    fn add_empty_magazine(&self, cap: u32) -> bool {
        let Some(mag) = Magazine::new(cap) else {
            return false;
        };
        let mut depot = self.lock_depot();
        if depot.rounds != cap {
            return false;
        }
        depot.empty.put(mag);
        true
    }

    /// Gives a magazine's first `n` rounds back to the layer beneath.
    fn destroy(&self, mag: &Magazine<G::MaxRounds>, n: usize) {
        if n > 0 {
            // SAFETY: the first `n` rounds are objects of this cache that no
            // one else holds (module invariants); the caller drops the
            // magazine right after, so none is used again.
            unsafe { self.below.free_batch(mag.valid(n)) };
        }
    }

    /// Sends an exited thread's magazines back to the depot.
    fn flush_exited(&self, mut cp: CpuCache<G::MaxRounds>) {
        self.retired_alloc.fetch_add(cp.alloc, Ordering::Relaxed);
        self.retired_free.fetch_add(cp.free, Ordering::Relaxed);
        let mut mags = Vec::new();
        cp.take_all(&mut mags);
        let mut rejected = Owed::new(self);
        let mut depot = self.lock_depot();
        for (mag, n) in mags {
            if mag.cap != depot.rounds || (n != 0 && n != mag.cap as usize) {
                rejected.mags.push((mag, n));
            } else if n == 0 {
                depot.empty.put(mag);
            } else {
                depot.full.put(mag);
            }
        }
        drop(depot);
        // `rejected` goes back to the layer with no lock held. This runs on
        // a thread's exit path, where a panic would abort the process: a
        // destructor's panic is logged instead (every object still goes
        // back, see `Owed`).
        if catch_unwind(AssertUnwindSafe(|| drop(rejected))).is_err() {
            tracing::error!(cache = %self.below.name(), "a destructor panicked while an exited thread's magazines went back");
        }
    }

    /// Takes every magazine of every slot into `owed` and gives every
    /// object in the per-CPU fronts back to the layer beneath; slots
    /// disabled.
    fn purge_cpu_layer(&self, owed: &mut Owed<'_, B, L, G>) -> bool {
        self.enabled_rounds.store(0, Ordering::Release);
        if let Some(d) = &self.debug {
            d.drain(&self.below);
        }
        let mut front = Vec::new();
        L::fast_drain_all(&self.slots, &mut front);
        let before = owed.mags.len();
        L::for_each_slot(&self.slots, |cp| cp.take_all(&mut owed.mags));
        if !front.is_empty() {
            // SAFETY: the drained objects belong to this cache and left the
            // front (the trait's contract); nobody else holds them. A
            // destructor panic here still frees the whole batch (the layer's
            // contract) and `owed` returns the magazines on the way out.
            unsafe { self.below.free_batch(&front) };
        }
        owed.mags.len() != before || !front.is_empty()
    }

    /// Purges the CPU layer and the whole depot (the seed's
    /// `skmem_cache_magazine_purge`): every magazine goes into `owed`, which
    /// the caller drops to give the objects back.
    fn purge(&self, owed: &mut Owed<'_, B, L, G>) {
        tracing::debug!(cache = %self.below.name(), "purging magazines");
        if self.purge_cpu_layer(owed) {
            self.purges.fetch_add(1, Ordering::Relaxed);
        }
        self.lock_depot().ws_zero();
        self.ws_reap_into(owed);
    }

    /// Re-enables magazines at the depot's current size.
    ///
    /// Slots that already hold magazines are left alone: they can only have
    /// been created after the new size was published (purge empties every
    /// slot it walks, and slots created while the size is 0 hold none), so
    /// they already run at that size.
    fn enable(&self) {
        if self.config.no_magazines || self.debug.is_some() {
            return;
        }
        let rounds = self.depot.lock().rounds;
        self.enabled_rounds.store(rounds, Ordering::Release);
        L::for_each_slot(&self.slots, |cp| {
            // A slot created after the store above was born with `rounds`
            // and may already hold magazines of that size (its thread
            // allocated and freed before this walk reached it); it is
            // enabled already. Any other slot holding magazines would break
            // the module invariants.
            let holds = cp.loaded.is_some() || cp.ploaded.is_some();
            debug_assert!(
                !holds || cp.magsize == rounds,
                "slot holds magazines of {} rounds while enabling {rounds}",
                cp.magsize
            );
            if !holds {
                cp.magsize = rounds;
            }
        });
    }

    /// Gives back the depot magazines outside the working set.
    fn ws_reap(&self) {
        let mut owed = Owed::new(self);
        self.ws_reap_into(&mut owed);
    }

    /// Takes the depot magazines outside the working set into `owed`.
    fn ws_reap_into(&self, owed: &mut Owed<'_, B, L, G>) {
        let (mut full, mut empty) = (Chain::new(), Chain::new());
        let (f, e) = self.lock_depot().take_reapable(&mut full, &mut empty);
        owed.chain(full, true);
        owed.chain(empty, false);
        if f + e != 0 {
            self.reaps.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(cache = %self.below.name(), full = f, empty = e, "reaped depot");
        }
    }

    fn update(&self) {
        let grow = {
            let mut d = self.depot.lock();
            d.ws_update();
            let c = self.contention.load(Ordering::Relaxed);
            let judge = !core::mem::replace(&mut d.skip_next_judgement, false);
            let grow = judge
                && self.config.dynamic
                && !self.config.no_magazines
                && G::can_grow(d.step, self.chunk)
                && c.wrapping_sub(d.contention_prev) > self.config.contention_threshold;
            d.contention_prev = c;
            grow
        };
        if grow {
            self.resize();
        }
    }

    /// Climbs one ladder step (the seed's `skmem_cache_magazine_resize`):
    /// purge, switch, re-enable, inside the resize perimeter.
    ///
    /// Guards leave the perimeter, re-enable the slots and give every taken
    /// magazine back also when a destructor panics on the way.
    #[cold]
    fn resize(&self) {
        // Dropped in reverse order: the magazines go back first (no lock
        // held), then the slots are re-enabled, then the perimeter is left.
        let _inside = self.perimeter.enter();
        let _enable = EnableOnDrop(self);
        let mut owed = Owed::new(self);
        self.purge(&mut owed);
        let mut d = self.depot.lock();
        if G::can_grow(d.step, self.chunk) {
            d.step += 1;
            d.rounds = G::rounds(d.step);
            d.skip_next_judgement = true;
            let (mut full, mut empty) = (Chain::new(), Chain::new());
            d.full.drain(&mut full);
            d.empty.drain(&mut empty);
            let rounds = d.rounds;
            drop(d);
            owed.chain(full, true);
            owed.chain(empty, false);
            self.resizes.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(cache = %self.below.name(), rounds, "magazines resized");
        }
    }

    fn reap_now(&self, purge: bool) {
        if purge || self.config.purge_on_reap {
            if let Some(_inside) = self.perimeter.try_enter() {
                let _enable = EnableOnDrop(self);
                let mut owed = Owed::new(self);
                self.purge(&mut owed);
            }
        } else {
            let mut owed = Owed::new(self);
            self.lock_depot().ws_zero();
            self.ws_reap_into(&mut owed);
            L::for_each_slot(&self.slots, |cp| {
                if let Some(m) = cp.ploaded.take() {
                    owed.mags.push((m, cp.prounds.max(0) as usize));
                }
                cp.prounds = -1;
            });
        }
    }

    fn reclaim(&self, lowmem: bool) {
        self.below.reclaim();
        if lowmem {
            self.reap_now(true);
        } else {
            self.ws_reap();
        }
        self.below.reap();
    }

    fn stats(&self) -> CacheStats {
        let (mut rounds, mut prounds, mut alloc, mut free, mut slots) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        L::for_each_slot(&self.slots, |cp| {
            rounds += cp.rounds.max(0) as u64;
            prounds += cp.prounds.max(0) as u64;
            alloc += cp.alloc;
            free += cp.free;
            slots += 1;
        });
        rounds += L::fast_cached(&self.slots) as u64;
        rounds += self.debug.as_ref().map_or(0, |d| d.len()) as u64;
        let (depot_full, depot_empty, full_alloc, empty_alloc, ws_zero, mag_size) = {
            let d = self.depot.lock();
            (
                d.full.total(),
                d.empty.total(),
                d.full.alloc,
                d.empty.alloc,
                d.ws_zero,
                d.rounds,
            )
        };
        CacheStats {
            name: self.below.name().to_owned(),
            locality: L::locality(&self.slots).into(),
            cpu_mag_size: if self.config.no_magazines {
                0
            } else {
                mag_size
            },
            cpu_mag_resize: self.resizes.load(Ordering::Relaxed),
            cpu_mag_purge: self.purges.load(Ordering::Relaxed),
            cpu_mag_reap: self.reaps.load(Ordering::Relaxed),
            depot_full,
            depot_empty,
            depot_ws_zero: ws_zero,
            depot_contention: self.contention.load(Ordering::Relaxed),
            cpu_rounds: rounds,
            cpu_prounds: prounds,
            cpu_alloc: alloc + self.retired_alloc.load(Ordering::Relaxed),
            cpu_free: free + self.retired_free.load(Ordering::Relaxed),
            depot_full_alloc: full_alloc,
            depot_empty_alloc: empty_alloc,
            cpu_slots: slots,
            cached_objs: rounds + prounds + depot_full * mag_size as u64,
            slab: self.below.stats(),
        }
    }
}

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> Reap for Inner<B, L, G> {
    fn reap_now(&self, purge: bool) {
        Inner::reap_now(self, purge);
        self.below.reap();
    }
}

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> registry::Registered for Inner<B, L, G> {
    fn update(&self) {
        Inner::update(self);
    }
    fn reclaim(&self, lowmem: bool) {
        Inner::reclaim(self, lowmem);
    }
    fn stats(&self) -> registry::Stats {
        registry::Stats::Cache(Inner::stats(self))
    }
}

impl<B: ObjectLayer, L: CpuLocal, G: Ladder> Drop for Inner<B, L, G> {
    fn drop(&mut self) {
        let mut owed = Owed::new(self);
        self.purge_cpu_layer(&mut owed);
        let (mut full, mut empty) = (Chain::new(), Chain::new());
        {
            let mut d = self.depot.lock();
            d.full.drain(&mut full);
            d.empty.drain(&mut empty);
        }
        owed.chain(full, true);
        owed.chain(empty, false);
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
        cache.inner.enable();
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

    fn with_the_slot(
        cache: &Cache<SlabCache<Heap>, Global>,
        f: impl FnMut(&mut CpuCache<<SeedLadder as Ladder>::MaxRounds>),
    ) {
        Global::for_each_slot(&cache.inner.slots, f);
    }
}

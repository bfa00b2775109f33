//! The layer beneath a magazine cache.
//!
//! A [`Cache`](crate::Cache) takes constructed objects from, and gives them
//! back to, an [`ObjectLayer`]: normally a [`SlabCache`], which constructs
//! an object when it leaves a slab and destructs it when it returns.
//! [`HeapObjects`] is a second, much simpler layer on the global allocator
//! (one allocation per object, a live set to catch bad frees), for tests,
//! Miri runs and loom models that should not depend on regions.

use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::collections::HashSet;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;

use crate::sync::Mutex;
use skmem_slab::{DebugFlags, Reap, SlabCache};
use skmem_traits::stats::SlabStats;
use skmem_traits::{
    AllocFlags, Capabilities, Error, Mirror, NoCtor, ObjectCtor, ObjectInfo, RegionMode, Result,
    SegmentSource,
};

/// A source of constructed, fixed-size objects beneath a magazine cache.
///
/// # Safety
///
/// The magazine layer hands out what this layer returns and trusts it:
///
/// * `alloc` / `alloc_batch` return distinct objects, each `obj_size()`
///   bytes (at least), aligned to `obj_align()`, not handed out again until
///   freed, and constructed (as the layer's constructor defines it);
/// * `free` / `free_batch` accept every object this layer handed out and
///   not yet got back, destruct it, and take it back;
/// * `chunk_size() >= obj_size()` and `obj_align()` is a power of two; the
///   three never change;
/// * the layer is safe to use from several threads.
pub unsafe trait ObjectLayer: Send + Sync + 'static {
    /// Name for stats and errors.
    fn name(&self) -> &str;
    /// Usable bytes of each object.
    fn obj_size(&self) -> usize;
    /// Alignment of each object.
    fn obj_align(&self) -> usize;
    /// Bytes between neighbouring objects; picks the magazine ladder step.
    fn chunk_size(&self) -> usize;
    /// One constructed object.
    fn alloc(&self, flags: AllocFlags) -> Result<NonNull<u8>>;
    /// Up to `out.len()` constructed objects into a prefix of `out`; the count.
    fn alloc_batch(&self, out: &mut [MaybeUninit<NonNull<u8>>], flags: AllocFlags) -> usize;
    /// Destructs and takes back one object.
    ///
    /// # Safety
    ///
    /// `obj` came from this layer, is not freed yet, and is not used again.
    unsafe fn free(&self, obj: NonNull<u8>);
    /// Destructs and takes back many objects.
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free), for each element (no repeats).
    unsafe fn free_batch(&self, objs: &[NonNull<u8>]);
    /// Gives unused memory back to whatever lies beneath (empty slabs to the
    /// region).
    fn reap(&self);
    /// The owner's advisory reclaim callback (the constructor's `reclaim`).
    fn reclaim(&self);
    /// Statistics of this layer.
    fn stats(&self) -> SlabStats;
    /// Called once when a cache is stacked on this layer, with a handle the
    /// layer may ask to reap (a region on exhaustion).
    fn add_reaper(&self, reaper: Weak<dyn Reap>) {
        let _ = reaper;
    }
    /// The layer's debug flags (see `skmem_slab::debug`); empty (the
    /// default) when it has no debug mode. A cache over a layer in debug
    /// mode runs its debug path.
    fn debug_flags(&self) -> DebugFlags {
        DebugFlags::empty()
    }
    /// `true` when objects carry constructed state between `alloc` and
    /// `free` (an active constructor).
    fn is_constructed(&self) -> bool {
        false
    }
    /// Validates a user's free of `obj` into a magazine and marks it as
    /// resting there; `false` when refused (reported). Called only when
    /// [`debug_flags`](Self::debug_flags) is not empty.
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free); the caller then keeps `obj` until it hands
    /// it out after [`debug_from_magazine`](Self::debug_from_magazine).
    unsafe fn debug_to_magazine(&self, obj: NonNull<u8>) -> bool {
        let _ = obj;
        true
    }
    /// Checks an object leaving a magazine (taken in by
    /// [`debug_to_magazine`](Self::debug_to_magazine)) and marks it held.
    ///
    /// # Safety
    ///
    /// The caller alone holds `obj`, taken in by `debug_to_magazine`.
    unsafe fn debug_from_magazine(&self, obj: NonNull<u8>) {
        let _ = obj;
    }
}

/// Marks layers whose objects carry no constructed state, so that handing
/// them out as raw bytes (through `Allocator`) cannot break a destructor's
/// assumptions.
///
/// # Safety
///
/// The layer's destructor (if any) must be sound on objects whose bytes
/// were arbitrarily overwritten between construction and destruction, and
/// [`check_plain_memory`](Self::check_plain_memory) must return `Ok` only
/// when every object is memory this process may read and write at will
/// and that no other process or device may write.
pub unsafe trait RawObjects: ObjectLayer {
    /// `Ok` when the objects are plain private writable memory; otherwise
    /// an error naming what makes them unfit for safe code to write
    /// through ([`Cache::allocator`](crate::Cache::allocator) refuses them).
    fn check_plain_memory(&self) -> Result<()>;
}

// SAFETY: `SlabCache`'s documented contract: `alloc`/`alloc_batch` return
// distinct constructed objects of `obj_size()` bytes aligned to
// `obj_align()` within chunks of `chunk_size()`; `free`/`free_batch`
// destruct and take back what it handed out (panicking on anything else);
// it is `Send + Sync`.
unsafe impl<S: SegmentSource, C: ObjectCtor + 'static, M: Mirror + 'static> ObjectLayer
    for SlabCache<S, C, M>
{
    fn name(&self) -> &str {
        SlabCache::name(self)
    }
    fn obj_size(&self) -> usize {
        SlabCache::obj_size(self)
    }
    fn obj_align(&self) -> usize {
        SlabCache::obj_align(self)
    }
    fn chunk_size(&self) -> usize {
        SlabCache::chunk_size(self)
    }
    #[inline]
    fn alloc(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        SlabCache::alloc(self, flags)
    }
    fn alloc_batch(&self, out: &mut [MaybeUninit<NonNull<u8>>], flags: AllocFlags) -> usize {
        SlabCache::alloc_batch(self, out, flags)
    }
    #[inline]
    unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: forwarded from the caller.
        unsafe { SlabCache::free(self, obj) }
    }
    unsafe fn free_batch(&self, objs: &[NonNull<u8>]) {
        // SAFETY: forwarded from the caller.
        unsafe { SlabCache::free_batch(self, objs) }
    }
    fn reap(&self) {
        SlabCache::reap(self)
    }
    fn reclaim(&self) {
        self.ctor().reclaim()
    }
    fn stats(&self) -> SlabStats {
        SlabCache::stats(self)
    }
    fn add_reaper(&self, reaper: Weak<dyn Reap>) {
        self.region().add_reaper(reaper)
    }
    fn debug_flags(&self) -> DebugFlags {
        SlabCache::debug_flags(self)
    }
    fn is_constructed(&self) -> bool {
        C::ACTIVE
    }
    unsafe fn debug_to_magazine(&self, obj: NonNull<u8>) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe { SlabCache::debug_to_magazine(self, obj) }
    }
    unsafe fn debug_from_magazine(&self, obj: NonNull<u8>) {
        // SAFETY: forwarded from the caller.
        unsafe { SlabCache::debug_from_magazine(self, obj) }
    }
}

// SAFETY: `NoCtor` has no destructor at all; `check_plain_memory` refuses
// regions read-only to their owner, regions another process may map, and
// sources that map segments for a device.
unsafe impl<S: SegmentSource, M: Mirror + 'static> RawObjects for SlabCache<S, NoCtor, M> {
    fn check_plain_memory(&self) -> Result<()> {
        let region = self.region();
        let mode = region.mode();
        let why = if mode.contains(RegionMode::KREADONLY) {
            "is read-only to its owner (KREADONLY): the first write would fault"
        } else if mode.intersects(RegionMode::MMAPOK | RegionMode::SHAREOK) {
            "may be mapped by another process (MMAPOK/SHAREOK): safe code would hold references into memory a peer may write"
        } else if region.source().capabilities().contains(Capabilities::IOVA) {
            "is mapped for a device (IOVA source): safe code would hold references into memory a device may write"
        } else {
            return Ok(());
        };
        Err(Error::Invalid {
            field: "mode",
            reason: format!(
                "region `{}` ({:?}, source `{}`) {why}; it cannot back an Allocator",
                region.name(),
                mode,
                S::NAME
            ),
        })
    }
}

/// An [`ObjectLayer`] on the global allocator: one allocation per object,
/// an optional constructor, an optional limit on live objects, and a live
/// set that turns a double or foreign free into a panic naming the address.
///
/// It exists so that the magazine layer can be tested (and run under Miri
/// and loom) without regions; it counts what the slab layer counts.
pub struct HeapObjects<C: ObjectCtor = NoCtor> {
    name: String,
    layout: Layout,
    ctor: C,
    limit: usize,
    state: Mutex<HeapState>,
    ctors: AtomicU64,
    dtors: AtomicU64,
    reclaims: AtomicU64,
}

/// An object address, as a key (never dereferenced).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Addr(*const u8);

// SAFETY: the address is only compared and hashed, never dereferenced.
unsafe impl Send for Addr {}

#[derive(Default)]
struct HeapState {
    live: HashSet<Addr>,
    alloc: u64,
    free: u64,
    fail: u64,
    next_index: u32,
}

impl<C: ObjectCtor> core::fmt::Debug for HeapObjects<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapObjects")
            .field("name", &self.name)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl HeapObjects<NoCtor> {
    /// Objects of `size` bytes aligned to `align`, without a constructor.
    pub fn new(name: impl Into<String>, size: usize, align: usize) -> Result<Self> {
        Self::with_ctor(name, size, align, NoCtor)
    }
}

impl<C: ObjectCtor> HeapObjects<C> {
    /// Objects of `size` bytes aligned to `align`, built by `ctor`.
    pub fn with_ctor(name: impl Into<String>, size: usize, align: usize, ctor: C) -> Result<Self> {
        if size == 0 {
            return Err(Error::invalid_param(
                "size",
                0,
                "objects must have at least one byte",
            ));
        }
        let layout = Layout::from_size_align(size, align).map_err(|_| {
            Error::invalid_param(
                "align",
                align as u64,
                "must be a power of two and keep size in range",
            )
        })?;
        Ok(HeapObjects {
            name: name.into(),
            layout,
            ctor,
            limit: usize::MAX,
            state: Mutex::new(HeapState::default()),
            ctors: AtomicU64::new(0),
            dtors: AtomicU64::new(0),
            reclaims: AtomicU64::new(0),
        })
    }

    /// Caps the number of objects out at once; further allocations fail
    /// with [`Error::Exhausted`].
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The constructor.
    pub fn ctor(&self) -> &C {
        &self.ctor
    }

    /// Objects currently out of this layer (in caches or with users).
    pub fn live(&self) -> usize {
        self.state.lock().live.len()
    }

    /// Whether `obj` is currently out of this layer.
    pub fn is_live(&self, obj: *const u8) -> bool {
        self.state.lock().live.contains(&Addr(obj))
    }

    /// Times the owner's reclaim callback ran.
    pub fn reclaims(&self) -> u64 {
        self.reclaims.load(Ordering::Relaxed)
    }

    fn alloc_one(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        let index = {
            let mut st = self.state.lock();
            if st.live.len() >= self.limit {
                st.fail += 1;
                return Err(Error::Exhausted {
                    name: self.name.clone(),
                    capacity: self.limit as u64,
                    unit: "objects",
                });
            }
            st.next_index = st.next_index.wrapping_add(1);
            st.next_index
        };
        // SAFETY: the layout has a non-zero size (checked in `with_ctor`).
        let raw = unsafe { std::alloc::alloc(self.layout) };
        let Some(obj) = NonNull::new(raw) else {
            self.state.lock().fail += 1;
            return Err(Error::Exhausted {
                name: self.name.clone(),
                capacity: self.limit as u64,
                unit: "objects",
            });
        };
        if C::ACTIVE {
            let info = self.info(obj, index);
            if let Err(e) = self.ctor.construct(info, None, flags) {
                // SAFETY: `obj` was allocated above with `self.layout`.
                unsafe { std::alloc::dealloc(obj.as_ptr(), self.layout) };
                self.state.lock().fail += 1;
                return Err(e);
            }
            self.ctors.fetch_add(1, Ordering::Relaxed);
        }
        let mut st = self.state.lock();
        assert!(
            st.live.insert(Addr(obj.as_ptr())),
            "{}: allocator returned live {:p}",
            self.name,
            obj
        );
        st.alloc += 1;
        Ok(obj)
    }

    fn info(&self, obj: NonNull<u8>, index: u32) -> ObjectInfo {
        ObjectInfo {
            addr: obj,
            size: self.layout.size(),
            index_in_region: index,
            segment_index: 0,
            index_in_segment: index,
        }
    }
}

// SAFETY: every object is a fresh global-allocator block of `layout`
// (size `obj_size`, alignment `obj_align`), constructed before it is
// returned and recorded in the live set; `free` refuses (panics on) any
// address not in the live set, destructs, and deallocates with the same
// layout; chunk size equals the object size; the state is behind a mutex.
unsafe impl<C: ObjectCtor + 'static> ObjectLayer for HeapObjects<C> {
    fn name(&self) -> &str {
        &self.name
    }
    fn obj_size(&self) -> usize {
        self.layout.size()
    }
    fn obj_align(&self) -> usize {
        self.layout.align()
    }
    fn chunk_size(&self) -> usize {
        self.layout.size()
    }
    fn alloc(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        self.alloc_one(flags)
    }
    fn alloc_batch(&self, out: &mut [MaybeUninit<NonNull<u8>>], flags: AllocFlags) -> usize {
        let mut n = 0;
        for slot in out.iter_mut() {
            match self.alloc_one(if n == 0 { flags } else { AllocFlags::NoSleep }) {
                Ok(obj) => {
                    slot.write(obj);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        n
    }
    unsafe fn free(&self, obj: NonNull<u8>) {
        {
            let mut st = self.state.lock();
            if !st.live.remove(&Addr(obj.as_ptr())) {
                drop(st);
                panic!(
                    "{}: free of {:p}, which is not an object allocated from it",
                    self.name, obj
                );
            }
            st.free += 1;
        }
        let mut dtor = Ok(());
        if C::ACTIVE {
            // Caught so that the memory still goes back (as the slab layer
            // does); resumed below.
            dtor = catch_unwind(AssertUnwindSafe(|| {
                self.ctor.destruct(self.info(obj, 0), None)
            }));
            self.dtors.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `obj` was in the live set, so it came from `alloc_one`
        // with `self.layout`, and the caller gave it up.
        unsafe { std::alloc::dealloc(obj.as_ptr(), self.layout) };
        if let Err(payload) = dtor {
            resume_unwind(payload);
        }
    }
    unsafe fn free_batch(&self, objs: &[NonNull<u8>]) {
        // Every object goes back even when a destructor panics; the first
        // panic is resumed at the end.
        let mut dtor_panic = None;
        for &obj in objs {
            // SAFETY: forwarded from the caller, element by element.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| unsafe { self.free(obj) })) {
                dtor_panic.get_or_insert(payload);
            }
        }
        if let Some(payload) = dtor_panic {
            resume_unwind(payload);
        }
    }
    fn reap(&self) {}
    fn reclaim(&self) {
        self.reclaims.fetch_add(1, Ordering::Relaxed);
        self.ctor.reclaim();
    }
    fn stats(&self) -> SlabStats {
        let st = self.state.lock();
        SlabStats {
            name: self.name.clone(),
            objsize: self.layout.size() as u64,
            objalign: self.layout.align() as u64,
            chunksize: self.layout.size() as u64,
            sl_alloc: st.alloc,
            sl_free: st.free,
            sl_alloc_fail: st.fail,
            sl_bufinuse: st.live.len() as u64,
            ctor: self.ctors.load(Ordering::Relaxed),
            dtor: self.dtors.load(Ordering::Relaxed),
            ..SlabStats::default()
        }
    }
}

// SAFETY: `NoCtor` has no destructor; every object is a private block of
// the global allocator.
unsafe impl RawObjects for HeapObjects<NoCtor> {
    fn check_plain_memory(&self) -> Result<()> {
        Ok(())
    }
}

impl<C: ObjectCtor> Drop for HeapObjects<C> {
    fn drop(&mut self) {
        // Objects still out were leaked by their users (the live set keeps
        // addresses only, so their memory cannot be given back): report it.
        let live = self.state.get_mut().live.len();
        if live != 0 {
            tracing::warn!(layer = %self.name, objects = live, "dropping HeapObjects with objects still out");
        }
    }
}

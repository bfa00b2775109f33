//! The layer beneath a magazine cache.
//!
//! A [`Cache`](crate::Cache) takes constructed objects from, and gives them
//! back to, an [`ObjectLayer`]: normally a [`SlabCache`], which constructs
//! an object when it leaves a slab and destructs it when it returns. (The
//! tests' simpler layer on the global allocator, `HeapObjects`, lives in
//! the unpublished `skmem-testkit` crate.)

use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::sync::Weak;

use skmem_slab::{DebugFlags, Reap, SlabCache};
use skmem_traits::stats::SlabStats;
use skmem_traits::{
    AllocFlags, Capabilities, Error, Mirror, NoCtor, ObjectCtor, RegionMode, Result, SegmentSource,
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
    fn alloc_with(&self, flags: AllocFlags) -> Result<NonNull<u8>>;
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
    fn alloc_with(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        SlabCache::alloc_with(self, flags)
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

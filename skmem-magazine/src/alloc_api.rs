//! `allocator_api2::alloc::Allocator` for caches of raw objects.
//!
//! A cache is a fixed-size allocator: a layout fits when its size is at
//! most the object size and its alignment at most the object alignment.
//! Such requests get a whole object (the returned slice is `obj_size`
//! long); others get `AllocError`. `grow` and `shrink` stay in place when
//! the new layout still fits and fail cleanly otherwise (a `Vec` that
//! outgrows its object reports a capacity overflow / allocation error).
//!
//! Zero-sized requests never reach the cache: `allocate` of size 0 returns
//! a dangling pointer aligned to the layout (allocator-api2's `Box` of a
//! zero-sized type, or an empty boxed slice, asks for one), `deallocate` of
//! size 0 does nothing, growing from size 0 allocates afresh and shrinking
//! to size 0 frees the object. Pushing such a dangling pointer into a
//! magazine would hand it out later as an object.
//!
//! Only caches over [`RawObjects`] layers can be allocators: objects
//! handed out as raw bytes may be overwritten at will, which would break a
//! constructor's state. For constructed objects use
//! [`TypedCache`](crate::TypedCache).
//!
//! # Only plain private memory
//!
//! Safe code writes through, and forms references into, what an allocator
//! hands out. That is only sound for memory this process alone may write
//! and may write at will, and a region's mode is a run-time property. So
//! the `Allocator` is not the cache itself but a [`CacheAllocator`], made
//! by [`Cache::allocator`], which checks the layer once
//! ([`RawObjects::check_plain_memory`]) and refuses with
//! [`Error::Invalid`](skmem_traits::Error::Invalid) (field `mode`, naming
//! the region and its mode) a region that is read-only to its owner
//! (`KREADONLY`: the first write would fault), that another process may map
//! (`MMAPOK`/`SHAREOK`: references into memory a peer may write), or whose
//! source maps it for a device (IOVA).
//!
//! `CacheAllocator` is a cloneable handle (clones share the cache), and so
//! `&CacheAllocator` is an allocator too (allocator-api2's blanket impl).

use core::ptr::NonNull;

use core::fmt;

use allocator_api2::alloc::{AllocError, Allocator, Layout};
use skmem_traits::{CpuLocal, Result};

use crate::cache::Cache;
use crate::ladder::{Ladder, SeedLadder};
use crate::layer::RawObjects;

/// An [`Allocator`] handing out the objects of a cache whose memory is
/// plain private writable memory. Made by [`Cache::allocator`], which
/// refuses regions read-only to their owner, regions another process may
/// map and device-mapped sources.
///
/// A layout fits when its size is at most the object size and its
/// alignment at most the object alignment; it gets a whole object. Others
/// get `AllocError`. `grow`/`shrink` stay in place while the layout fits.
/// Zero-sized requests get a dangling aligned block and never reach the
/// cache. Clones share the cache, and `&CacheAllocator` is an allocator
/// too.
pub struct CacheAllocator<B: RawObjects, L: CpuLocal = crate::DefaultLocal, G: Ladder = SeedLadder>
{
    cache: Cache<B, L, G>,
}

impl<B: RawObjects, L: CpuLocal, G: Ladder> Clone for CacheAllocator<B, L, G> {
    fn clone(&self) -> Self {
        CacheAllocator {
            cache: self.cache.clone(),
        }
    }
}

impl<B: RawObjects, L: CpuLocal, G: Ladder> fmt::Debug for CacheAllocator<B, L, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CacheAllocator").field(&self.cache).finish()
    }
}

impl<B: RawObjects, L: CpuLocal, G: Ladder> Cache<B, L, G> {
    /// This cache as an [`Allocator`] (for allocator-api2's `Box`, `Vec`,
    /// hashbrown, ...).
    ///
    /// Fails with [`Error::Invalid`](skmem_traits::Error::Invalid) (field
    /// `mode`) when the layer's memory is not plain private writable
    /// memory: a region read-only to its owner, one another process may map
    /// (`MMAPOK` / `SHAREOK`), or one a device may write (an IOVA source).
    pub fn allocator(&self) -> Result<CacheAllocator<B, L, G>> {
        self.layer().check_plain_memory()?;
        Ok(CacheAllocator {
            cache: self.clone(),
        })
    }
}

impl<B: RawObjects, L: CpuLocal, G: Ladder> CacheAllocator<B, L, G> {
    /// The cache the objects come from.
    pub fn cache(&self) -> &Cache<B, L, G> {
        &self.cache
    }

    #[inline]
    fn fits(&self, layout: Layout) -> bool {
        layout.size() <= self.cache.obj_size() && layout.align() <= self.cache.obj_align()
    }

    #[inline]
    fn block(&self, ptr: NonNull<u8>) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(ptr, self.cache.obj_size())
    }

    /// The block returned for zero-sized requests: dangling, aligned to
    /// `layout`, no provenance (it must never be dereferenced).
    #[inline]
    fn zero_sized(layout: Layout) -> NonNull<[u8]> {
        let dangling = core::ptr::null_mut::<u8>().wrapping_add(layout.align());
        // SAFETY: `layout.align()` is a power of two, hence non-zero, so the
        // address is not null.
        let ptr = unsafe { NonNull::new_unchecked(dangling) };
        NonNull::slice_from_raw_parts(ptr, 0)
    }

    #[inline]
    fn allocate_impl(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(Self::zero_sized(layout));
        }
        if !self.fits(layout) {
            return Err(AllocError);
        }
        self.cache.alloc().map(|p| self.block(p)).ok_or(AllocError)
    }

    fn allocate_zeroed_impl(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(Self::zero_sized(layout));
        }
        let block = self.allocate_impl(layout)?;
        // SAFETY: the block is `obj_size` writable bytes owned by the caller.
        unsafe {
            block
                .cast::<u8>()
                .as_ptr()
                .write_bytes(0, self.cache.obj_size())
        };
        Ok(block)
    }

    /// # Safety
    ///
    /// `Allocator::grow`'s contract (with `zero` for `grow_zeroed`).
    unsafe fn grow_impl(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
        zero: bool,
    ) -> Result<NonNull<[u8]>, AllocError> {
        debug_assert!(new.size() >= old.size());
        if old.size() == 0 {
            // `ptr` is a dangling zero-sized block: there is nothing to keep,
            // so this is a fresh allocation.
            return if zero {
                self.allocate_zeroed_impl(new)
            } else {
                self.allocate_impl(new)
            };
        }
        if !self.fits(new) {
            return Err(AllocError);
        }
        if zero {
            // SAFETY: `ptr` is a live object of `obj_size` bytes (it fits
            // `old`, which the caller allocated here); we zero its tail.
            unsafe {
                ptr.as_ptr()
                    .add(old.size())
                    .write_bytes(0, self.cache.obj_size() - old.size())
            };
        }
        Ok(self.block(ptr))
    }
}

// SAFETY:
// * a zero-sized request gets a dangling block aligned to its layout, which
//   `deallocate`/`grow`/`shrink` recognise by the layout's size 0 and never
//   pass to the cache;
// * a successful `allocate` returns a whole object of this cache, which no
//   one else holds until it is deallocated, `obj_size >= layout.size()`
//   bytes aligned to `obj_align >= layout.align()`;
// * `deallocate` gives the object back (the caller guarantees it came from
//   this allocator, i.e. this cache or a clone of it);
// * `grow`/`shrink` return the same object when the new layout fits it (its
//   contents are preserved trivially) and fail otherwise, leaving the block
//   untouched;
// * `RawObjects` layers have no constructed state that raw use could break,
//   and `Cache::allocator` checked that the memory is plain private
//   writable memory, so writes and references into it are sound;
// * clones of a `CacheAllocator` share one cache, so a block allocated
//   through one clone may be deallocated through another (and
//   `&CacheAllocator` is an allocator through allocator-api2's blanket
//   impl).
unsafe impl<B: RawObjects, L: CpuLocal, G: Ladder> Allocator for CacheAllocator<B, L, G> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.allocate_impl(layout)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.allocate_zeroed_impl(layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            // A dangling zero-sized block: not an object of this cache.
            return;
        }
        // SAFETY: the caller allocated `ptr` from this cache with a non-zero
        // size, so it is an object of this cache, and gives it up.
        unsafe { self.cache.free(ptr) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.grow_impl(ptr, old, new, false) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.grow_impl(ptr, old, new, true) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if new.size() == 0 {
            if old.size() != 0 {
                // SAFETY: a non-zero-sized block of this cache is an object
                // of it; the caller gives it up in exchange for the new block.
                unsafe { self.cache.free(ptr) };
            }
            return Ok(Self::zero_sized(new));
        }
        if self.fits(new) {
            Ok(self.block(ptr))
        } else {
            Err(AllocError)
        }
    }
}

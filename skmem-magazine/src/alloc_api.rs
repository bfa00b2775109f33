//! `allocator_api2::alloc::Allocator` for caches of raw objects.
//!
//! A cache is a fixed-size allocator: a layout fits when its size is at
//! most the object size and its alignment at most the object alignment.
//! Such requests get a whole object (the returned slice is `obj_size`
//! long); others get `AllocError`. `grow` and `shrink` stay in place when
//! the new layout still fits and fail cleanly otherwise (a `Vec` that
//! outgrows its object reports a capacity overflow / allocation error).
//!
//! Only caches over [`RawObjects`] layers implement `Allocator`: objects
//! handed out as raw bytes may be overwritten at will, which would break a
//! constructor's state. For constructed objects use
//! [`TypedCache`](crate::TypedCache).
//!
//! `Cache` (a cloneable handle) is an allocator, and so is `&Cache`
//! (allocator-api2's blanket impl).

use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Layout};
use skmem_traits::CpuLocal;

use crate::cache::Cache;
use crate::ladder::Ladder;
use crate::layer::RawObjects;

impl<B: RawObjects, L: CpuLocal, G: Ladder> Cache<B, L, G> {
    #[inline]
    fn fits(&self, layout: Layout) -> bool {
        layout.size() <= self.obj_size() && layout.align() <= self.obj_align()
    }

    #[inline]
    fn block(&self, ptr: NonNull<u8>) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(ptr, self.obj_size())
    }

    #[inline]
    fn allocate_impl(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if !self.fits(layout) {
            return Err(AllocError);
        }
        self.alloc().map(|p| self.block(p)).ok_or(AllocError)
    }

    fn allocate_zeroed_impl(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let block = self.allocate_impl(layout)?;
        // SAFETY: the block is `obj_size` writable bytes owned by the caller.
        unsafe { block.cast::<u8>().as_ptr().write_bytes(0, self.obj_size()) };
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
        if !self.fits(new) {
            return Err(AllocError);
        }
        if zero {
            // SAFETY: `ptr` is a live object of `obj_size` bytes (it fits
            // `old`, which the caller allocated here); we zero its tail.
            unsafe {
                ptr.as_ptr()
                    .add(old.size())
                    .write_bytes(0, self.obj_size() - old.size())
            };
        }
        Ok(self.block(ptr))
    }
}

// SAFETY:
// * a successful `allocate` returns a whole object of this cache, which no
//   one else holds until it is deallocated, `obj_size >= layout.size()`
//   bytes aligned to `obj_align >= layout.align()`;
// * `deallocate` gives the object back (the caller guarantees it came from
//   this allocator, i.e. this cache or a clone of it);
// * `grow`/`shrink` return the same object when the new layout fits it (its
//   contents are preserved trivially) and fail otherwise, leaving the block
//   untouched;
// * `RawObjects` layers have no constructed state that raw use could break;
// * clones of a `Cache` share one cache, so a block allocated through one
//   clone may be deallocated through another (and `&Cache` is an allocator
//   through allocator-api2's blanket impl).
unsafe impl<B: RawObjects, L: CpuLocal, G: Ladder> Allocator for Cache<B, L, G> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.allocate_impl(layout)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.allocate_zeroed_impl(layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: the caller allocated `ptr` from this cache and gives it up.
        unsafe { self.free(ptr) }
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
        _old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if self.fits(new) {
            Ok(self.block(ptr))
        } else {
            Err(AllocError)
        }
    }
}

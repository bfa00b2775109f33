//! The address-space reservation every size class, the large-object table
//! and the internal metadata live in, and the segment source that carves
//! class regions out of it.
//!
//! # Layout
//!
//! One anonymous private mapping of [`RESERVE`] bytes, readable and
//! writable, `MAP_NORESERVE` (nothing is committed or accounted until a
//! page is touched, and untouched pages cost no memory):
//!
//! ```text
//!   slice c (0 <= c < NCLASSES)    class c's region: segment i at slice + i * seg
//!   slice LARGE_TABLE_SLICE        the large-object table (large.rs)
//!   slices META_FIRST_SLICE..128   the internal metadata allocator (meta.rs)
//! ```
//!
//! A slice is `1 << SLICE_SHIFT` bytes, so the owner of an address is
//! `(addr - base) >> SLICE_SHIFT`: one subtraction, one shift, no lock.
//!
//! # Invariants
//!
//! * [`base`] is 0 until the reservation exists and never changes after;
//!   the mapping is never unmapped (the allocator lives as long as the
//!   process).
//! * Each class slice is opened by at most one [`Carve`] source at a time
//!   (a per-slice flag, taken in `open`, given back on drop), so segments of
//!   two regions never overlap.
//! * A discarded or purged segment's pages are given back with
//!   `madvise(MADV_DONTNEED)` and read as zero afterwards.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use skmem_traits::{Capabilities, SegmentGeometry};
use skmem_traits::{Error, Result, SegmentSource};

use crate::classes::{NCLASSES, PAGE, SLICE, SLICE_SHIFT};

/// Bytes reserved: 128 slices of 1 GiB.
pub(crate) const RESERVE: usize = 128 << SLICE_SHIFT;
const _: () = assert!(NCLASSES <= LARGE_TABLE_SLICE && LARGE_TABLE_SLICE < META_FIRST_SLICE);

/// Bytes of the reservation holding class regions.
pub(crate) const CLASS_SPAN: usize = NCLASSES << SLICE_SHIFT;
/// The slice holding the large-object table.
pub(crate) const LARGE_TABLE_SLICE: usize = 108;
/// First slice of the metadata allocator.
pub(crate) const META_FIRST_SLICE: usize = 112;

static BASE: AtomicUsize = AtomicUsize::new(0);

/// One flag per class slice: `true` while a [`Carve`] source has it open.
static OPEN: [AtomicBool; NCLASSES] = [const { AtomicBool::new(false) }; NCLASSES];

/// The reservation's base address, or 0 before [`reserve`] succeeded.
#[inline(always)]
pub(crate) fn base() -> usize {
    BASE.load(Ordering::Relaxed)
}

/// Maps the reservation (once; later calls return the same base). Called
/// by the one thread initialising the allocator. `None` when the kernel
/// refuses the mapping or the page size is not the one the layout assumes.
pub(crate) fn reserve() -> Option<usize> {
    let current = base();
    if current != 0 {
        return Some(current);
    }
    // SAFETY: sysconf has no preconditions.
    if unsafe { libc::sysconf(libc::_SC_PAGESIZE) } != PAGE as libc::c_long {
        return None;
    }
    // SAFETY: a fresh anonymous mapping at an address of the kernel's
    // choice overlaps nothing; the result is checked.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            RESERVE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    BASE.store(p as usize, Ordering::Release);
    Some(p as usize)
}

/// Base address of slice `slice` (the reservation exists).
#[inline]
pub(crate) fn slice_base(slice: usize) -> usize {
    base() + (slice << SLICE_SHIFT)
}

/// Gives the pages of `[addr, addr + len)` back to the system; they read as
/// zero afterwards.
///
/// # Safety
///
/// The range lies in the reservation (or another private anonymous mapping
/// of ours) and nothing needs its contents.
pub(crate) unsafe fn discard_pages(addr: usize, len: usize) {
    // SAFETY: by the caller's contract the range is ours and unneeded.
    // Failure (impossible for a valid private anonymous range) only leaves
    // the pages resident.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// Which class slice a [`Carve`] source serves.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CarveConfig {
    /// The class index (`< NCLASSES`).
    pub(crate) class: usize,
}

/// A segment source carving one class's region out of the reservation:
/// segment `i` is at `slice + i * seg_size`, already mapped; create is free,
/// discard and purge are `madvise(MADV_DONTNEED)`.
#[derive(Debug)]
pub(crate) struct Carve {
    geometry: SegmentGeometry,
    class: usize,
    span: NonNull<u8>,
}

// SAFETY:
// * segment `i` is `[span + i * seg_size, + seg_size)`, inside the class's
//   slice (open checks `span_len <= SLICE` and `i < seg_count` is the
//   caller's contract), page aligned (the slice is, `seg_size` is a page
//   multiple and `align <= PAGE` is checked), readable and writable (the
//   reservation is), and overlaps nothing else: the slice belongs to this
//   source alone (`OPEN` flag) and the reservation is never unmapped;
// * CONTIGUOUS holds by that arithmetic; `span` returns its base;
// * Send + Sync: the source holds only addresses and constants.
unsafe impl SegmentSource for Carve {
    type Config = CarveConfig;
    const NAME: &'static str = "skmem-alloc";

    fn open(geometry: &SegmentGeometry, config: &CarveConfig) -> Result<Self> {
        if config.class >= NCLASSES {
            return Err(Error::invalid_param(
                "class",
                config.class as u64,
                "no such size class",
            ));
        }
        if geometry.span_len()? > SLICE
            || geometry.seg_size % PAGE != 0
            || geometry.align > PAGE
            || !geometry.align.is_power_of_two()
        {
            return Err(Error::invalid_param(
                "seg_size",
                geometry.seg_size as u64,
                "the class region does not fit its 1 GiB slice in whole, page-aligned segments",
            ));
        }
        let span = NonNull::new(slice_base(config.class) as *mut u8)
            .filter(|_| base() != 0)
            .ok_or(Error::invalid_param(
                "class",
                config.class as u64,
                "the address-space reservation does not exist",
            ))?;
        if OPEN[config.class].swap(true, Ordering::AcqRel) {
            return Err(Error::invalid_param(
                "class",
                config.class as u64,
                "this class slice already has a region",
            ));
        }
        Ok(Carve {
            geometry: *geometry,
            class: config.class,
            span,
        })
    }

    fn geometry(&self) -> &SegmentGeometry {
        &self.geometry
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::CONTIGUOUS | Capabilities::PURGE
    }

    fn span(&self) -> Option<NonNull<u8>> {
        Some(self.span)
    }

    unsafe fn create(&self, index: u32) -> Result<NonNull<u8>> {
        // SAFETY: index < seg_count (caller), so the offset stays inside
        // the slice (open checked the span).
        Ok(unsafe { self.span.add(index as usize * self.geometry.seg_size) })
    }

    unsafe fn discard(&self, _index: u32, base: NonNull<u8>) {
        // SAFETY: a live segment of this source that nobody uses any more.
        unsafe { discard_pages(base.as_ptr() as usize, self.geometry.seg_size) };
    }

    unsafe fn purge(&self, _index: u32, base: NonNull<u8>) -> Result<()> {
        // SAFETY: a live segment whose contents nobody needs (caller).
        unsafe { discard_pages(base.as_ptr() as usize, self.geometry.seg_size) };
        Ok(())
    }
}

// SAFETY: `span` is an address in the process-wide reservation, valid for
// every thread; the source has no thread-affine state.
unsafe impl Send for Carve {}
// SAFETY: as above; every method takes `&self` and only computes addresses
// or calls `madvise`.
unsafe impl Sync for Carve {}

impl Drop for Carve {
    fn drop(&mut self) {
        OPEN[self.class].store(false, Ordering::Release);
    }
}

//! Segments from the global allocator.
//!
//! Each segment is one `std::alloc::alloc_zeroed` allocation of the region's
//! segment size and alignment, at whatever address the allocator picks, so
//! the region finds segments from addresses through its hash map. The heap
//! backend is the portable default, and the one Miri can run.
//!
//! # Safety and correctness
//!
//! * `create(i)` allocates fresh memory, so segments never overlap;
//! * `discard(i, base)` deallocates with the same layout `create` used (the
//!   layout is a function of the geometry alone);
//! * wire/purge/protect are not offered: the global allocator owns the
//!   pages.

use std::alloc::Layout;
use std::ptr::NonNull;

use skmem_traits::{Capabilities, Error, Result, SegmentGeometry, SegmentSource};

/// Options for [`Heap`]. There are none yet; the struct keeps room for them
/// without breaking callers.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct HeapConfig {}

/// A segment source backed by the global allocator.
#[derive(Debug)]
pub struct Heap {
    geometry: SegmentGeometry,
    layout: Layout,
}

impl Heap {
    fn layout_for(geometry: &SegmentGeometry) -> Result<Layout> {
        geometry.check_common()?;
        Layout::from_size_align(geometry.seg_size, geometry.align).map_err(|_| {
            Error::invalid_param(
                "seg_size",
                geometry.seg_size as u64,
                "too large for its alignment",
            )
        })
    }
}

// SAFETY:
// * `create` returns a fresh global-allocator block of exactly `seg_size`
//   bytes aligned to `align`, readable and writable, overlapping nothing;
// * it stays valid until `discard`, which frees it with the same layout;
// * `CONTIGUOUS` is not reported and `span` is `None`;
// * no IOVA or shared backing is reported;
// * the global allocator is thread-safe and the struct is immutable.
unsafe impl SegmentSource for Heap {
    type Config = HeapConfig;
    const NAME: &'static str = "heap";

    fn open(geometry: &SegmentGeometry, _config: &HeapConfig) -> Result<Self> {
        Ok(Heap {
            geometry: *geometry,
            layout: Self::layout_for(geometry)?,
        })
    }

    fn geometry(&self) -> &SegmentGeometry {
        &self.geometry
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::empty()
    }

    unsafe fn create(&self, index: u32) -> Result<NonNull<u8>> {
        debug_assert!(index < self.geometry.seg_count);
        // SAFETY: `layout` has a non-zero size (checked in `open`).
        let ptr = unsafe { std::alloc::alloc_zeroed(self.layout) };
        NonNull::new(ptr).ok_or(Error::Os {
            operation: "heap segment allocation",
            errno: 12, // ENOMEM
        })
    }

    unsafe fn discard(&self, _index: u32, base: NonNull<u8>) {
        // SAFETY: the caller guarantees `base` came from `create` on this
        // source, which allocated it with `self.layout`.
        unsafe { std::alloc::dealloc(base.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skmem_traits::RegionMode;

    fn geometry(seg_size: usize, align: usize) -> SegmentGeometry {
        SegmentGeometry {
            seg_size,
            seg_count: 4,
            align,
            mode: RegionMode::empty(),
        }
    }

    #[test]
    fn segments_are_aligned_zeroed_and_disjoint() {
        let heap = Heap::open(&geometry(8192, 4096), &HeapConfig::default()).unwrap();
        let mut bases = Vec::new();
        for i in 0..4 {
            // SAFETY: index in range and not live.
            let base = unsafe { heap.create(i) }.unwrap();
            assert_eq!(base.as_ptr() as usize % 4096, 0);
            // SAFETY: the segment is live and 8192 bytes long.
            let bytes = unsafe { std::slice::from_raw_parts(base.as_ptr(), 8192) };
            assert!(bytes.iter().all(|&b| b == 0));
            bases.push((i, base));
        }
        bases.sort_unstable_by_key(|&(_, base)| base.as_ptr() as usize);
        for pair in bases.windows(2) {
            let gap = pair[1].1.as_ptr() as usize - pair[0].1.as_ptr() as usize;
            assert!(gap >= 8192, "segments overlap: {pair:?}");
        }
        for (i, base) in bases {
            // SAFETY: each base came from `create(i)` and is discarded once.
            unsafe { heap.discard(i, base) };
        }
    }

    #[test]
    fn bad_geometry_is_refused_by_name() {
        let err = Heap::open(&geometry(0, 64), &HeapConfig::default()).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidParam {
                param: "seg_size",
                ..
            }
        ));
        let err = Heap::open(&geometry(4096, 48), &HeapConfig::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidParam { param: "align", .. }));
        let huge = SegmentGeometry {
            seg_size: usize::MAX / 2,
            seg_count: 4,
            align: 64,
            mode: RegionMode::empty(),
        };
        let err = Heap::open(&huge, &HeapConfig::default()).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidParam {
                param: "seg_count",
                ..
            }
        ));
    }

    #[test]
    fn optional_operations_report_unsupported() {
        let heap = Heap::open(&geometry(4096, 64), &HeapConfig::default()).unwrap();
        // SAFETY: index 0 is in range and not live.
        let base = unsafe { heap.create(0) }.unwrap();
        // SAFETY: segment 0 is live at `base`.
        let err = unsafe { heap.wire(0, base) }.unwrap_err();
        assert_eq!(
            err,
            Error::Unsupported {
                source_name: "heap",
                operation: "wire"
            }
        );
        assert_eq!(heap.iova(base.as_ptr()), None);
        // SAFETY: created above, discarded once.
        unsafe { heap.discard(0, base) };
    }
}

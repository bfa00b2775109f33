//! Segment sources for skmem.
//!
//! A [`SegmentSource`](skmem_traits::SegmentSource) supplies the memory a
//! region carves into segments. This crate holds the backends:
//!
//! | backend | memory | address → segment | extras |
//! |---|---|---|---|
//! | [`Heap`] | the global allocator, one allocation per segment | hash map in the region | portable (any platform with `std`); defined in `skmem-slab` (so the layers above need not depend on this crate), re-exported here |
//! | [`Mmap`] | one memfd mapped as a contiguous span, reserved at open | arithmetic (`base + i * seg_size`) | wire, purge, protect, share (fd + offset); Linux |
//! | [`Vfio`] | one anonymous (or hugepage) mapping per segment, DMA-mapped in an IOMMU | hash map in the region | IOVA per segment from a shared [`DmaDomain`]; real [`VfioContainer`] or [`FakeIommu`]; Linux |
//! | [`Pagemap`] | one locked hugepage mapping per segment | hash map in the region | physical address (from `/proc/self/pagemap`) as IOVA, physically contiguous; root; Linux |
//!
//! Every backend states its invariants in its module docs; the region layer
//! relies on the bullet contract of `SegmentSource`.

#[cfg(target_os = "linux")]
mod dma_mem;
pub mod iova;
#[cfg(target_os = "linux")]
pub mod mmap;
#[cfg(target_os = "linux")]
pub mod pagemap;
#[cfg(target_os = "linux")]
pub mod vfio;

#[cfg(target_os = "linux")]
pub use dma_mem::HugepageSize;
pub use iova::IovaAllocator;
#[cfg(target_os = "linux")]
pub use mmap::{Mmap, MmapConfig};
#[cfg(target_os = "linux")]
pub use pagemap::{Pagemap, PagemapConfig};
pub use skmem_slab::heap;
pub use skmem_slab::{Heap, HeapConfig};
#[cfg(target_os = "linux")]
pub use vfio::{DmaDomain, FakeIommu, Iommu, SegmentMemory, Vfio, VfioConfig, VfioContainer};

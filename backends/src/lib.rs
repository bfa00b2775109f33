//! Segment sources for skmem.
//!
//! A [`SegmentSource`](skmem_traits::SegmentSource) supplies the memory a
//! region carves into segments. This crate holds the backends:
//!
//! | backend | memory | address → segment | extras |
//! |---|---|---|---|
//! | [`Heap`] | the global allocator, one allocation per segment | hash map in the region | portable (any platform with `std`) |
//! | [`Mmap`] | one memfd mapped as a contiguous span, reserved at open | arithmetic (`base + i * seg_size`) | wire, purge, protect, share (fd + offset); Linux |
//!
//! Every backend states its invariants in its module docs; the region layer
//! relies on the bullet contract of `SegmentSource`.

pub mod heap;
#[cfg(target_os = "linux")]
pub mod mmap;

pub use heap::{Heap, HeapConfig};
#[cfg(target_os = "linux")]
pub use mmap::{Mmap, MmapConfig};

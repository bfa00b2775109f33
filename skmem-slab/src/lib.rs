//! Regions of segments and the slab layer of skmem.
//!
//! * [`region`]: a [`Region`] is a bounded set of equally sized segments
//!   taken from a [`SegmentSource`](skmem_traits::SegmentSource), created
//!   lazily and handed out whole.
//! * [`slab`]: a [`SlabCache`] carves each segment of a region into equally
//!   sized objects (one slab per segment), with constructors, clear-on-free
//!   and batch operations.
//! * [`heap`]: [`Heap`], the plain segment source on the global allocator,
//!   portable and the one Miri runs. It lives here, with the layers that
//!   need a default source, so that they do not depend on `skmem-backends`
//!   (which holds the OS-specific sources and re-exports `Heap`).

pub mod debug;
pub mod heap;
pub mod region;
pub mod slab;

pub use debug::DebugFlags;
pub use heap::{Heap, HeapConfig};
pub use region::{
    leaked_segments, FaultInjection, Reap, Region, RegionLayout, RegionParams, Segment, Shadow,
};
pub use slab::{SlabCache, SlabConfig};

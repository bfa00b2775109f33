//! Regions of segments and the slab layer of skmem.
//!
//! * [`region`]: a [`Region`] is a bounded set of equally sized segments
//!   taken from a [`SegmentSource`](skmem_traits::SegmentSource), created
//!   lazily and handed out whole.

pub mod region;

pub use region::{
    leaked_segments, FaultInjection, Reap, Region, RegionLayout, RegionParams, Segment, Shadow,
};

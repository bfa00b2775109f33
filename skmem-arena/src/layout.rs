//! Where everything sits in a view: the layout the owner computes, sends
//! over the control socket, writes into the schema object, and every view
//! maps and checks its accesses against.
//!
//! These are the definitions the owner side (`arena`, `wire`) and the user
//! side (`view`) share, kept apart from both so that neither has to reach
//! into the other.
//!
//! # Invariants
//!
//! A layout built by the owner or accepted by the decoder has its regions
//! in [`RegionId`] order at increasing, page-aligned offsets, each
//! `offset + len <= total_len`; [`ViewRegion::object_offset`] stays inside
//! its region for every index it accepts.

use skmem_packet::{MetadataType, PacketPool};
use skmem_traits::{CpuLocal, Protection, SegmentSource};

use crate::id::RegionId;

/// One region of a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewRegion {
    /// Which region.
    pub id: RegionId,
    /// Offset of the region's first byte from the view's base.
    pub offset: usize,
    /// Length in bytes (the region's whole span).
    pub len: usize,
    /// Access users get: none for guards, read-only for `UREADONLY`.
    pub prot: Protection,
    /// Replaced by zero pages when the view is redirected.
    pub redirectable: bool,
    /// Object (chunk) size.
    pub obj_size: usize,
    /// Objects in the region.
    pub obj_count: usize,
    /// Segment size.
    pub seg_size: usize,
    /// Objects per segment.
    pub objs_per_seg: u32,
}

impl ViewRegion {
    /// Offset, from the region's start, of object `index` (segment
    /// `index / objs_per_seg`, slot `index % objs_per_seg`), when in range.
    #[inline]
    pub fn object_offset(&self, index: u32) -> Option<usize> {
        let index = index as usize;
        if index >= self.obj_count {
            return None;
        }
        let per = self.objs_per_seg as usize;
        Some((index / per) * self.seg_size + (index % per) * self.obj_size)
    }
}

/// Where every mappable region sits in a view (the seed's
/// `skmem_arena_get_region_offset` for each region).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArenaLayout {
    /// Length of the whole view.
    pub total_len: usize,
    /// The regions, in [`RegionId`] order, at increasing offsets.
    pub regions: Vec<ViewRegion>,
}

impl ArenaLayout {
    /// The region `id`, if the view has it.
    pub fn region(&self, id: RegionId) -> Option<&ViewRegion> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// Offset of region `id` in the view.
    pub fn offset_of(&self, id: RegionId) -> Option<usize> {
        self.region(id).map(|r| r.offset)
    }
}

/// What a user of a view needs to know about the packet pool behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PoolInfo {
    /// Metadata type.
    pub md_type: MetadataType,
    /// Largest buflets per packet.
    pub max_frags: u16,
    /// Buffers on demand.
    pub on_demand: bool,
    /// Default buffer size in bytes (the window a user may fill).
    pub buf_size: u32,
    /// Large buffer size (0: none).
    pub large_buf_size: u32,
    /// Metadata objects in all (metadata indices are below this).
    pub md_capacity: u32,
    /// Buflet objects in all (0 unless on demand).
    pub buflet_capacity: u32,
}

impl PoolInfo {
    pub(crate) fn of<S: SegmentSource, L: CpuLocal>(pool: &PacketPool<S, L>) -> PoolInfo {
        PoolInfo {
            md_type: pool.md_type(),
            max_frags: pool.max_frags(),
            on_demand: pool.is_on_demand(),
            buf_size: pool.buf_size() as u32,
            large_buf_size: pool.large_buf_size() as u32,
            md_capacity: pool.capacity(),
            buflet_capacity: pool.buflet_capacity(),
        }
    }
}

//! Regions of different types behind one object-safe trait.
//!
//! An arena holds regions whose types differ (plain, mirrored with a
//! shadow, wrapped in the pool's segment hooks) but which all sit on one
//! memfd-backed [`Mmap`] span. [`ArenaRegion`] is what the arena needs of
//! each: identity, mode, layout, statistics and the memfd span.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use skmem_backends::Mmap;
use skmem_slab::{Region, RegionLayout};
use skmem_traits::stats::RegionStats;
use skmem_traits::{Mirror, RegionMode, SegmentSource};

use skmem_packet::Hooked;

/// A segment source whose memory is one memfd-backed [`Mmap`] span.
pub(crate) trait MemfdSource: SegmentSource {
    /// The span's backend.
    fn memfd(&self) -> &Mmap;
}

impl MemfdSource for Mmap {
    fn memfd(&self) -> &Mmap {
        self
    }
}

impl MemfdSource for Hooked<Mmap> {
    fn memfd(&self) -> &Mmap {
        self.inner()
    }
}

/// What an arena needs of one of its regions, whatever its type.
pub(crate) trait ArenaRegion: Send + Sync {
    fn name(&self) -> &str;
    fn mode(&self) -> RegionMode;
    fn layout(&self) -> RegionLayout;
    fn stats(&self) -> RegionStats;
    /// The memfd span holding every segment at `index * seg_size`.
    fn memfd(&self) -> &Mmap;
    /// Where this region's span starts in the owner's address space.
    fn span_base(&self) -> *const u8 {
        self.memfd()
            .span()
            .map_or(core::ptr::null(), |p| p.as_ptr().cast_const())
    }
    /// The memfd itself.
    fn fd(&self) -> BorrowedFd<'_> {
        self.memfd().as_fd()
    }
}

impl<S: MemfdSource, M: Mirror> ArenaRegion for Region<S, M> {
    fn name(&self) -> &str {
        Region::name(self)
    }
    fn mode(&self) -> RegionMode {
        Region::mode(self)
    }
    fn layout(&self) -> RegionLayout {
        *Region::layout(self)
    }
    fn stats(&self) -> RegionStats {
        Region::stats(self)
    }
    fn memfd(&self) -> &Mmap {
        self.source().memfd()
    }
}

/// A shared, type-erased region.
pub(crate) type DynRegion = Arc<dyn ArenaRegion>;

//! The regions behind a pool, by role: what a layer above the pool (an
//! arena mapping them into other address spaces, a stats reader, a test)
//! needs to reach them without knowing how the pool stacks its caches.
//!
//! Every region is handed out as an `Arc`: holding one keeps the region
//! (and its memory) alive after the pool is dropped, never the other way
//! round, so nothing here can make the pool's own accesses dangle.

use std::sync::Arc;

use skmem_slab::{Region, Shadow};
use skmem_traits::{CpuLocal, SegmentSource};

use super::{Hooked, PacketPool};

/// A region of constructed objects (packet metadata or buflets). Whether
/// it drives a user mirror is decided at run time: its
/// [`mirror()`](Region::mirror) is `Some(Shadow(user))` for a pool shared
/// with user processes (the user region at the same offsets), `None` for
/// a kernel-only pool.
pub type ObjectRegion<S> = Arc<Region<S, Option<Shadow<S>>>>;

/// The regions of a [`PacketPool`], from [`PacketPool::regions`].
pub struct PoolRegions<S: SegmentSource> {
    /// Default buffers (behind the pool's segment hooks).
    pub buf_def: Arc<Region<Hooked<S>>>,
    /// Large buffers, when the pool has them.
    pub buf_large: Option<Arc<Region<Hooked<S>>>>,
    /// Packet metadata.
    pub md: ObjectRegion<S>,
    /// Buflets (pools with buffers on demand only).
    pub bft: Option<ObjectRegion<S>>,
}

impl<S: SegmentSource> Clone for PoolRegions<S> {
    fn clone(&self) -> Self {
        PoolRegions {
            buf_def: Arc::clone(&self.buf_def),
            buf_large: self.buf_large.clone(),
            md: self.md.clone(),
            bft: self.bft.clone(),
        }
    }
}

impl<S: SegmentSource> core::fmt::Debug for PoolRegions<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PoolRegions")
            .field("buf_def", &self.buf_def.name())
            .field("buf_large", &self.buf_large.as_ref().map(|r| r.name()))
            .field("md", &self.md)
            .field("bft", &self.bft)
            .finish()
    }
}

impl<S: SegmentSource, L: CpuLocal> PacketPool<S, L> {
    /// The regions the pool's buffers, metadata and buflets live in, each
    /// shared with the pool (the default and large buflet caches share one
    /// buflet region).
    pub fn regions(&self) -> PoolRegions<S> {
        let i = &self.inner;
        let md = Arc::clone(i.md.layer().region());
        let bft = i.bft.as_ref().map(|b| Arc::clone(b.def.layer().region()));
        PoolRegions {
            buf_def: Arc::clone(i.bufs.def.cache.layer().region()),
            buf_large: i
                .bufs
                .large
                .as_ref()
                .map(|l| Arc::clone(l.cache.layer().region())),
            md,
            bft,
        }
    }
}

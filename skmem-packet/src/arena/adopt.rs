//! Adopting the regions of a packet pool (the seed's `skmem_arena_pp_setup`).
//!
//! A [`PacketPool`] owns its regions; an arena takes a reference (`Arc`) on
//! each of them and on the pool itself, so the regions outlive neither the
//! arena nor the pool. The pool may have been created by the arena or
//! elsewhere (an *external* pool, possibly shared by several arenas).

use std::any::Any;
use std::sync::Arc;

use skmem_backends::Mmap;
use skmem_traits::{CpuLocal, Error, Result};

use super::id::RegionId;
use super::region::DynRegion;
use crate::pool::{MetadataType, PacketPool};

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
    pub(crate) fn of<L: CpuLocal>(pool: &PacketPool<Mmap, L>) -> PoolInfo {
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

/// The regions of a pool, by arena id.
pub(crate) fn pool_regions<L: CpuLocal>(pool: &PacketPool<Mmap, L>) -> Vec<(RegionId, DynRegion)> {
    let i = &pool.inner;
    let mut out: Vec<(RegionId, DynRegion)> = Vec::with_capacity(6);
    out.push((RegionId::BufDef, i.bufs.def.cache.layer().region().clone()));
    if let Some(l) = &i.bufs.large {
        out.push((RegionId::BufLarge, l.cache.layer().region().clone()));
    }
    let md = i.md.layer().region();
    if let Some(user) = md.mirror() {
        out.push((RegionId::Umd, user.0.clone()));
    }
    out.push((RegionId::Kmd, md.clone()));
    if let Some(b) = &i.bft {
        let bft = b.def.layer().region();
        if let Some(user) = bft.mirror() {
            out.push((RegionId::Ubft, user.0.clone()));
        }
        out.push((RegionId::Kbft, bft.clone()));
    }
    out
}

/// A packet pool with its locality erased: what the arena does with it
/// (reap, purge) without knowing `L`, and a way back to the typed handle.
pub(crate) trait ErasedPool: Send + Sync {
    fn reap(&self, purge: bool);
    fn as_any(&self) -> &dyn Any;
}

impl<L: CpuLocal + 'static> ErasedPool for PacketPool<Mmap, L> {
    fn reap(&self, purge: bool) {
        if purge {
            self.purge();
        } else {
            PacketPool::reap(self);
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Checks that an external pool can back a user-mappable arena.
pub(crate) fn check_pool<L: CpuLocal>(pool: &PacketPool<Mmap, L>) -> Result<()> {
    if pool.is_kernel_only() {
        return Err(Error::Invalid {
            field: "pool",
            reason: format!(
                "pool `{}` is kernel-only: it has no user metadata to map into a view",
                pool.name()
            ),
        });
    }
    if pool.is_closed() {
        return Err(Error::Busy {
            name: pool.name().to_owned(),
            reason: "the pool is closed",
        });
    }
    Ok(())
}

/// Keeps the typed pool alive behind the erased trait.
pub(crate) fn erase<L: CpuLocal + 'static>(pool: PacketPool<Mmap, L>) -> Arc<dyn ErasedPool> {
    Arc::new(pool)
}

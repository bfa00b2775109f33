//! Adopting the regions of a packet pool (the seed's `skmem_arena_pp_setup`).
//!
//! A [`PacketPool`] owns its regions; an arena takes a reference (`Arc`) on
//! each of them and on the pool itself, so the regions outlive neither the
//! arena nor the pool. The pool may have been created by the arena or
//! elsewhere (an *external* pool, possibly shared by several arenas).

use std::any::Any;
use std::sync::Arc;

use skmem_backends::Mmap;
use skmem_packet::{ObjectRegion, PacketPool};
use skmem_traits::{CpuLocal, Error, Result};

use crate::id::RegionId;
use crate::region::DynRegion;

/// The regions of a pool, by arena id: buffers, then metadata and buflets,
/// each user mirror before its kernel region.
pub(crate) fn pool_regions<L: CpuLocal>(pool: &PacketPool<Mmap, L>) -> Vec<(RegionId, DynRegion)> {
    let regions = pool.regions();
    let mut out: Vec<(RegionId, DynRegion)> = Vec::with_capacity(6);
    out.push((RegionId::BufDef, regions.buf_def));
    if let Some(l) = regions.buf_large {
        out.push((RegionId::BufLarge, l));
    }
    let mut objects = |r: ObjectRegion<Mmap>, user: RegionId, kernel: RegionId| {
        if let Some(shadow) = r.mirror() {
            out.push((user, shadow.0.clone()));
        }
        out.push((kernel, r));
    };
    objects(regions.md, RegionId::Umd, RegionId::Kmd);
    if let Some(b) = regions.bft {
        objects(b, RegionId::Ubft, RegionId::Kbft);
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

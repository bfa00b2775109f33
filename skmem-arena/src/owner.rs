//! The non-generic core of an arena: its regions, caches, pool and table
//! of views behind one lock, shared (`Arc`) by the [`Arena`](crate::Arena)
//! handles and the local views.
//!
//! # Invariants
//!
//! * Every mutable field sits in [`State`], behind [`Core::lock`]; local
//!   views are remapped (redirect) and unmapped (drop) only with it held.
//! * A slot holds a region until defunct or drop; the singletons free their
//!   segments before the slots (and the regions) go.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use skmem_backends::Mmap;
use skmem_slab::{Region, Segment, Shadow, SlabCache};
use skmem_traits::{AllocFlags, Error, NoCtor, Protection, Result};

use crate::adopt::ErasedPool;
use crate::id::{RegionId, ViewId, REGION_COUNT};
use crate::layout::{ArenaLayout, PoolInfo};
use crate::region::DynRegion;
use crate::stats::{ArenaRegionStats, ArenaStats, ViewCounts};
use crate::sys;

/// A slab cache on one of the arena's plain regions (schema, rings).
pub type ArenaCache = SlabCache<Mmap>;
/// A slab cache of kernel slot descriptors, each with its user mirror.
pub type SlotDescCache = SlabCache<Mmap, NoCtor, Shadow<Mmap>>;

/// One region of the arena with what views need of it.
pub(crate) struct Slot {
    pub(crate) region: DynRegion,
    /// The memfd reopened read-only, for `UREADONLY` regions.
    pub(crate) ro_fd: Option<OwnedFd>,
    /// The peer seals are on the memfd (see the crate docs).
    pub(crate) sealed: bool,
}

/// An address of memory the arena owns.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) NonNull<u8>);
// SAFETY: an address; the memory it names is reached only under the
// arena's lock or the contracts of the accessors that hand it out.
unsafe impl Send for SendPtr {}

/// One whole-segment object of a monolithic region.
pub(crate) struct Singleton {
    pub(crate) region: Arc<Region<Mmap>>,
    pub(crate) seg: Segment,
}

impl Singleton {
    pub(crate) fn alloc(region: Arc<Region<Mmap>>) -> Result<Singleton> {
        let seg = region.alloc_segment(AllocFlags::NoSleep)?;
        Ok(Singleton { region, seg })
    }
}

impl Drop for Singleton {
    fn drop(&mut self) {
        // SAFETY: the segment came from this region and the arena hands
        // its address out only under `stats_object`'s contract, which ends
        // when the arena releases the region (defunct or drop).
        unsafe { self.region.free_segment(self.seg) };
    }
}

pub(crate) enum MapKind {
    Local {
        base: SendPtr,
        flag: Arc<AtomicBool>,
    },
    Remote {
        socket: OwnedFd,
        acked: bool,
    },
}

pub(crate) struct MapEntry {
    pub(crate) id: ViewId,
    pub(crate) redirected: bool,
    pub(crate) kind: MapKind,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) local_created: u64,
    pub(crate) remote_sent: u64,
    pub(crate) redirects: u64,
    pub(crate) redirects_acked: u64,
    pub(crate) remote_closed: u64,
    pub(crate) remote_lost: u64,
}

pub(crate) struct State {
    pub(crate) active: bool,
    pub(crate) defunct: bool,
    pub(crate) slots: [Option<Slot>; REGION_COUNT],
    pub(crate) pool: Option<Arc<dyn ErasedPool>>,
    pub(crate) schema_cache: Option<Arc<ArenaCache>>,
    pub(crate) schema_obj: Option<SendPtr>,
    pub(crate) ring_cache: Option<Arc<ArenaCache>>,
    pub(crate) txa_cache: Option<Arc<SlotDescCache>>,
    pub(crate) rxf_cache: Option<Arc<SlotDescCache>>,
    pub(crate) ustats: Option<Singleton>,
    pub(crate) flowadv: Option<Singleton>,
    pub(crate) maps: Vec<MapEntry>,
    pub(crate) next_view: u64,
    pub(crate) counters: Counters,
}

impl State {
    pub(crate) fn redirected(&self) -> usize {
        self.maps.iter().filter(|m| m.redirected).count()
    }

    /// Forgets view `idx`, with the seed's deferred deactivation: when the
    /// view was not redirected but every remaining one is, the arena turns
    /// inactive now.
    pub(crate) fn remove(&mut self, idx: usize) -> MapEntry {
        let entry = self.maps.swap_remove(idx);
        if !entry.redirected && !self.maps.is_empty() && self.redirected() == self.maps.len() {
            self.active = false;
        }
        entry
    }

    pub(crate) fn find(&self, id: ViewId) -> Option<usize> {
        self.maps.iter().position(|m| m.id == id)
    }
}

/// The non-generic core of an arena.
pub(crate) struct Core {
    pub(crate) name: String,
    pub(crate) layout: ArenaLayout,
    pub(crate) info: PoolInfo,
    pub(crate) schema_offset: Option<usize>,
    pub(crate) user_packet_pool: bool,
    pub(crate) external_pool: bool,
    pub(crate) state: Mutex<State>,
    /// The arena's entry in the process registry; dropped with it.
    pub(crate) registration: std::sync::OnceLock<skmem_traits::registry::Registration>,
}

impl skmem_traits::registry::Registered for Core {
    fn stats(&self) -> skmem_traits::registry::Stats {
        let st = self.stats(self.view_counts());
        skmem_traits::registry::Stats::Arena(skmem_traits::stats::ArenaSummary {
            name: st.name,
            mem_total: st.mem_total,
            mem_inuse: st.mem_inuse,
            map_size: st.map_size,
            local_views: u64::from(st.views.local),
            remote_views: u64::from(st.views.remote),
            redirects: st.redirects,
            defunct: st.defunct,
        })
    }
    fn as_any(&self) -> Option<&dyn core::any::Any> {
        Some(self)
    }
}

impl Core {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    #[cold]
    pub(crate) fn busy(&self, reason: &'static str) -> Error {
        Error::Busy {
            name: self.name.clone(),
            reason,
        }
    }

    pub(crate) fn check_mappable(&self, st: &State) -> Result<()> {
        if st.defunct {
            return Err(self.busy("the arena is defunct"));
        }
        if !st.active {
            return Err(self.busy("the arena is inactive: its views were redirected"));
        }
        Ok(())
    }

    /// The descriptor each view region is mapped from (`None`: guard).
    pub(crate) fn view_fds<'a>(&self, st: &'a State) -> Vec<Option<BorrowedFd<'a>>> {
        self.layout
            .regions
            .iter()
            .map(|r| {
                if r.prot == Protection::None {
                    return None;
                }
                let slot = st.slots[r.id.index()]
                    .as_ref()
                    .expect("an active arena has every region of its layout");
                Some(match (&slot.ro_fd, r.prot) {
                    (Some(ro), Protection::ReadOnly) => ro.as_fd(),
                    _ => slot.region.fd(),
                })
            })
            .collect()
    }

    /// Called by a local view's `drop`.
    pub(crate) fn unmap_local(&self, id: ViewId, base: NonNull<u8>) {
        let mut st = self.lock();
        if let Some(idx) = st.find(id) {
            st.remove(idx);
        }
        // SAFETY: the view is being dropped, so nothing uses it; the lock
        // is held, so no redirect remaps it concurrently.
        unsafe { sys::unmap(base, self.layout.total_len) };
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let st = self.state.get_mut();
        if let (Some(cache), Some(obj)) = (&st.schema_cache, st.schema_obj.take()) {
            // SAFETY: allocated from this cache at creation and never
            // handed out.
            unsafe { cache.free(obj.0) };
        }
        // Singletons free their segments as they drop, before the slots
        // (and with them the regions) go.
        st.ustats = None;
        st.flowadv = None;
    }
}

impl Core {
    pub(crate) fn view_counts(&self) -> ViewCounts {
        let st = self.lock();
        let mut c = ViewCounts::default();
        for m in &st.maps {
            match m.kind {
                MapKind::Local { .. } => c.local += 1,
                MapKind::Remote { .. } => c.remote += 1,
            }
            c.redirected += u32::from(m.redirected);
        }
        c
    }

    pub(crate) fn stats(&self, views: ViewCounts) -> ArenaStats {
        let st = self.lock();
        let mut regions = Vec::new();
        let (mut total, mut inuse) = (0, 0);
        for id in RegionId::ALL {
            let Some(s) = &st.slots[id.index()] else {
                continue;
            };
            let r = s.region.stats();
            total += r.memtotal;
            inuse += r.meminuse;
            regions.push(ArenaRegionStats {
                id,
                view_offset: self.layout.offset_of(id).map(|o| o as u64),
                sealed: s.sealed,
                region: r,
            });
        }
        ArenaStats {
            name: self.name.clone(),
            active: st.active,
            defunct: st.defunct,
            external_pool: self.external_pool,
            map_size: if st.maps.is_empty() {
                0
            } else {
                self.layout.total_len as u64
            },
            mem_total: total,
            mem_inuse: inuse,
            views,
            local_views_created: st.counters.local_created,
            remote_views_sent: st.counters.remote_sent,
            redirects: st.counters.redirects,
            redirects_acked: st.counters.redirects_acked,
            remote_closed: st.counters.remote_closed,
            remote_lost: st.counters.remote_lost,
            regions,
        }
    }
}

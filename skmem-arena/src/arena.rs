//! [`Arena`]: creating an arena (its own regions, the adopted pool's,
//! the layout every view gets), handing out views, redirect and defunct.
//! See the [crate docs](crate) for what each does and why.

use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rustix::io::Errno;
use skmem_backends::{Mmap, MmapConfig};
use skmem_magazine::PerThread;
use skmem_packet::PacketPool;
use skmem_slab::{Region, Shadow, SlabCache, SlabConfig};
use skmem_traits::{AllocFlags, CpuLocal, Error, NoCtor, Protection, RegionMode, Result};

use crate::adopt;
use crate::config::{memfd_name, ArenaConfig};
use crate::id::{RegionId, ViewId, REGION_COUNT};
use crate::layout::{ArenaLayout, PoolInfo, ViewRegion};
use crate::owner::{
    ArenaCache, Core, Counters, MapEntry, MapKind, SendPtr, Singleton, Slot, SlotDescCache, State,
};
use crate::region::DynRegion;
use crate::stats::{ArenaStats, ViewCounts};
use crate::sys;
use crate::view::UserView;
use crate::wire::{self, Kind};

/// A kernel slot descriptor region driving its user mirror.
type SdRegion = Region<Mmap, Shadow<Mmap>>;

/// Which ring direction a slot descriptor region serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotDir {
    /// Transmit rings (`txa_ksd` / `txa_usd`).
    Tx,
    /// Receive rings (`rxf_ksd` / `rxf_usd`).
    Rx,
}

/// An arena: regions, caches, a packet pool, and the views mapped from
/// them. See the [crate docs](crate).
///
/// `Arena` is a handle: `clone` takes another reference; views hold one
/// too, and the last reference tears everything down.
pub struct Arena<L: CpuLocal = PerThread> {
    core: Arc<Core>,
    _locality: PhantomData<fn() -> L>,
}

impl<L: CpuLocal> Clone for Arena<L> {
    fn clone(&self) -> Self {
        Arena {
            core: Arc::clone(&self.core),
            _locality: PhantomData,
        }
    }
}

impl<L: CpuLocal> core::fmt::Debug for Arena<L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let st = self.core.lock();
        f.debug_struct("Arena")
            .field("name", &self.core.name)
            .field("active", &st.active)
            .field("defunct", &st.defunct)
            .field("views", &st.maps.len())
            .field("map_size", &self.core.layout.total_len)
            .finish_non_exhaustive()
    }
}

impl ArenaConfig {
    /// Builds the arena and its own packet pool, with the default locality.
    pub fn build(&self) -> Result<Arena> {
        self.build_with::<PerThread>()
    }

    /// Builds the arena and its own packet pool with locality `L`.
    pub fn build_with<L: CpuLocal>(&self) -> Result<Arena<L>> {
        // Cheap checks first, so a bad arena parameter does not cost a pool.
        self.plan()?;
        let pool = self.pool_config().build_with::<Mmap, L>(
            MmapConfig::default().with_name(memfd_name(&self.name, "pool")),
        )?;
        Arena::create(self, pool, false)
    }

    /// Builds the arena on an existing pool (an *external* pool: the arena
    /// takes a reference on it and on each of its regions).
    pub fn build_with_pool<L: CpuLocal>(&self, pool: &PacketPool<Mmap, L>) -> Result<Arena<L>> {
        Arena::create(self, pool.retain(), true)
    }
}

impl<L: CpuLocal> Arena<L> {
    fn create(cfg: &ArenaConfig, pool: PacketPool<Mmap, L>, external: bool) -> Result<Arena<L>> {
        adopt::check_pool(&pool)?;
        let plan = cfg.plan()?;
        let pool_regions = adopt::pool_regions(&pool);
        for (id, r) in &pool_regions {
            id.validate(r.mode(), cfg.user_packet_pool)
                .map_err(|e| match e {
                    Error::Invalid { field, reason } => Error::Invalid {
                        field,
                        reason: format!("{reason} (pool `{}` region `{}`)", pool.name(), r.name()),
                    },
                    other => other,
                })?;
        }
        let info = PoolInfo::of(&pool);

        // Create the arena's own regions.
        let mut slots: [Option<Slot>; REGION_COUNT] = std::array::from_fn(|_| None);
        let mut plain: Vec<(RegionId, Arc<Region<Mmap>>)> = Vec::new();
        let mut sd: Vec<(RegionId, Arc<SdRegion>)> = Vec::new();
        let mut pending_shadow: Option<Arc<Region<Mmap>>> = None;
        for (id, p) in plan {
            let src = MmapConfig::default().with_name(memfd_name(&cfg.name, id.name()));
            match id {
                RegionId::TxaUsd | RegionId::RxfUsd => {
                    let r = Region::<Mmap>::new(p, src)?;
                    plain.push((id, Arc::clone(&r)));
                    pending_shadow = Some(r);
                }
                RegionId::TxaKsd | RegionId::RxfKsd => {
                    let shadow = pending_shadow.take().expect("plan pairs usd before ksd");
                    sd.push((id, Region::with_mirror(p, src, Shadow(shadow))?));
                }
                _ => plain.push((id, Region::<Mmap>::new(p, src)?)),
            }
        }
        let page = rustix::param::page_size();
        let all: Vec<(RegionId, DynRegion)> = plain
            .iter()
            .map(|(id, r)| (*id, Arc::clone(r) as DynRegion))
            .chain(sd.iter().map(|(id, r)| (*id, Arc::clone(r) as DynRegion)))
            .chain(pool_regions)
            .collect();
        for (id, region) in all {
            if region.memfd().page_size() != page {
                return Err(Error::Invalid {
                    field: id.name(),
                    reason: format!(
                        "region `{}` is backed by huge pages; views map regions at page offsets",
                        region.name()
                    ),
                });
            }
            let mode = region.mode();
            let ro_fd = if mode.contains(RegionMode::MMAPOK | RegionMode::UREADONLY) {
                Some(sys::reopen_read_only(region.fd())?)
            } else {
                None
            };
            let sealed = mode.contains(RegionMode::MMAPOK);
            if sealed {
                region
                    .memfd()
                    .seal_for_peers(mode.contains(RegionMode::UREADONLY))
                    .map_err(|e| Error::Invalid {
                        field: id.name(),
                        reason: format!(
                            "region `{}` cannot be sealed against its peers: {e}",
                            region.name()
                        ),
                    })?;
            }
            slots[id.index()] = Some(Slot {
                region,
                ro_fd,
                sealed,
            });
        }

        // The layout of every view.
        let mut layout = ArenaLayout::default();
        for id in RegionId::ALL.iter().filter(|i| !i.is_kernel_only()) {
            let Some(slot) = &slots[id.index()] else {
                continue;
            };
            let (mode, l) = (slot.region.mode(), slot.region.layout());
            let prot = if mode.contains(RegionMode::GUARD) {
                Protection::None
            } else if mode.contains(RegionMode::UREADONLY) {
                Protection::ReadOnly
            } else {
                Protection::ReadWrite
            };
            let len = slot.region.memfd().span_len();
            layout.regions.push(ViewRegion {
                id: *id,
                offset: layout.total_len,
                len,
                prot,
                redirectable: !mode.contains(RegionMode::NOREDIRECT),
                obj_size: l.obj_size,
                obj_count: l.obj_count,
                seg_size: l.seg_size,
                objs_per_seg: l.objs_per_seg,
            });
            layout.total_len = layout.total_len.checked_add(len).ok_or_else(|| {
                Error::invalid_param("regions", len as u64, "the view exceeds the address space")
            })?;
        }

        // Caches (no magazines, as in the seed) and singletons.
        let find = |id: RegionId| {
            plain
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, r)| Arc::clone(r))
        };
        let cache = |id: RegionId, size: usize| -> Result<Option<Arc<ArenaCache>>> {
            find(id)
                .map(|r| {
                    SlabCache::new(
                        r,
                        SlabConfig::new(format!("{}.{}", id.name(), cfg.name), size),
                        NoCtor,
                    )
                    .map(Arc::new)
                })
                .transpose()
        };
        let schema_cache = cache(RegionId::Schema, cfg.schema_size)?;
        let ring_cache = cache(RegionId::Ring, cfg.ring_size)?;
        let sd_cache = |id: RegionId| -> Result<Option<Arc<SlotDescCache>>> {
            sd.iter()
                .find(|(i, _)| *i == id)
                .map(|(_, r)| {
                    SlabCache::new(
                        Arc::clone(r),
                        SlabConfig::new(format!("{}.{}", id.name(), cfg.name), cfg.slot_desc_size),
                        NoCtor,
                    )
                    .map(Arc::new)
                })
                .transpose()
        };
        let txa_cache = sd_cache(RegionId::TxaKsd)?;
        let rxf_cache = sd_cache(RegionId::RxfKsd)?;
        let ustats = find(RegionId::UStats).map(Singleton::alloc).transpose()?;
        let flowadv = find(RegionId::FlowAdv).map(Singleton::alloc).transpose()?;

        // The schema object: the layout, for users that only have the map.
        let schema = schema_cache.as_ref().expect("every arena has a schema");
        let obj = schema.alloc_with(AllocFlags::NoSleep)?;
        let span = find(RegionId::Schema)
            .expect("schema")
            .span()
            .expect("contiguous");
        let schema_offset = obj.as_ptr() as usize - span.as_ptr() as usize;
        let body = wire::encode_layout(&cfg.name, &layout, &info, Some(schema_offset));
        assert!(
            body.len() <= cfg.schema_size,
            "schema_size checked against MAX_LAYOUT"
        );
        // SAFETY: `obj` is a freshly allocated schema object of at least
        // `schema_size >= body.len()` bytes, private to the arena until a
        // view maps it (read-only); `body` is our own buffer.
        unsafe { core::ptr::copy_nonoverlapping(body.as_ptr(), obj.as_ptr(), body.len()) };

        let core = Arc::new(Core {
            name: cfg.name.clone(),
            layout,
            info,
            schema_offset: Some(schema_offset),
            user_packet_pool: cfg.user_packet_pool,
            external_pool: external,
            state: Mutex::new(State {
                active: true,
                defunct: false,
                slots,
                pool: Some(adopt::erase(pool)),
                schema_cache,
                schema_obj: Some(SendPtr(obj)),
                ring_cache,
                txa_cache,
                rxf_cache,
                ustats,
                flowadv,
                maps: Vec::new(),
                next_view: 1,
                counters: Counters::default(),
            }),
            registration: std::sync::OnceLock::new(),
        });
        let entry =
            skmem_traits::registry::register_arc(skmem_traits::registry::Kind::Arena, &core);
        let _ = core.registration.set(entry);
        tracing::debug!(arena = %core.name, map_size = core.layout.total_len, external, "arena created");
        Ok(Arena {
            core,
            _locality: PhantomData,
        })
    }

    // ------------------------------------------------------------------
    // Properties
    // ------------------------------------------------------------------

    /// The arena's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Where every mappable region sits in a view.
    pub fn layout(&self) -> &ArenaLayout {
        &self.core.layout
    }

    /// Offset of region `id` in every view (the seed's
    /// `skmem_arena_get_region_offset`); `None` for regions not in views.
    pub fn region_offset(&self, id: RegionId) -> Option<usize> {
        self.core.layout.offset_of(id)
    }

    /// What views learn about the packet pool.
    pub fn pool_info(&self) -> PoolInfo {
        self.core.info
    }

    /// `true` when the arena holds region `id` now.
    pub fn has_region(&self, id: RegionId) -> bool {
        self.core.lock().slots[id.index()].is_some()
    }

    /// `true` while the arena accepts new views.
    pub fn is_active(&self) -> bool {
        self.core.lock().active
    }

    /// `true` after [`defunct`](Self::defunct).
    pub fn is_defunct(&self) -> bool {
        self.core.lock().defunct
    }

    /// `true` when the pool was supplied from outside.
    pub fn is_external_pool(&self) -> bool {
        self.core.external_pool
    }

    /// `true` when users write their own slot descriptors.
    pub fn is_user_packet_pool(&self) -> bool {
        self.core.user_packet_pool
    }

    /// References to the arena alive now (handles and local views).
    pub fn refcount(&self) -> usize {
        Arc::strong_count(&self.core)
    }

    /// The packet pool (`None` after defunct).
    pub fn pool(&self) -> Option<PacketPool<Mmap, L>> {
        let st = self.core.lock();
        let p = st.pool.as_ref()?;
        Some(
            p.as_any()
                .downcast_ref::<PacketPool<Mmap, L>>()
                .expect("the pool has the arena's locality")
                .clone(),
        )
    }

    /// The schema cache (users' schema objects; the first object holds the
    /// arena's layout).
    pub fn schema_cache(&self) -> Option<Arc<ArenaCache>> {
        self.core.lock().schema_cache.clone()
    }

    /// The ring cache (`None` without rings or after defunct).
    pub fn ring_cache(&self) -> Option<Arc<ArenaCache>> {
        self.core.lock().ring_cache.clone()
    }

    /// The slot descriptor cache of one direction: kernel descriptors whose
    /// user mirror (same offset of the `usd` region) a view sees.
    pub fn slot_desc_cache(&self, dir: SlotDir) -> Option<Arc<SlotDescCache>> {
        let st = self.core.lock();
        match dir {
            SlotDir::Tx => st.txa_cache.clone(),
            SlotDir::Rx => st.rxf_cache.clone(),
        }
    }

    /// The shared stats object and its size (`None` without one or after
    /// defunct). Users see it at offset 0 of the `ustats` region.
    ///
    /// The address is valid until the arena is defunct or dropped; write
    /// it with raw pointer stores only (views read it concurrently).
    pub fn stats_object(&self) -> Option<(NonNull<u8>, usize)> {
        let st = self.core.lock();
        st.ustats
            .as_ref()
            .map(|s| (s.seg.base, s.region.layout().obj_size))
    }

    /// The flow advisory table and its size (read-only to users, at offset
    /// 0 of the `flowadv` region); same validity as
    /// [`stats_object`](Self::stats_object).
    pub fn flowadv_object(&self) -> Option<(NonNull<u8>, usize)> {
        let st = self.core.lock();
        st.flowadv
            .as_ref()
            .map(|s| (s.seg.base, s.region.layout().obj_size))
    }

    /// Where the owner's address `addr` (inside a mappable region, e.g. a
    /// buffer) appears in every view: the region and the offset from the
    /// view's base. This is how the owner names memory to a peer.
    pub fn view_offset_of(&self, addr: *const u8) -> Option<(RegionId, usize)> {
        let st = self.core.lock();
        self.core.layout.regions.iter().find_map(|r| {
            let slot = st.slots[r.id.index()].as_ref()?;
            let base = slot.region.span_base() as usize;
            let off = (addr as usize).checked_sub(base)?;
            (off < r.len).then_some((r.id, r.offset + off))
        })
    }

    // ------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------

    /// Maps a view into this process (the seed's `skmem_arena_mmap`).
    /// Refused with [`Error::Busy`] once the arena is inactive or defunct.
    pub fn map_local(&self) -> Result<UserView> {
        let mut st = self.core.lock();
        self.core.check_mappable(&st)?;
        let base = {
            let fds = self.core.view_fds(&st);
            sys::map(&self.core.layout, &fds)?
        };
        let id = ViewId(st.next_view);
        st.next_view += 1;
        let flag = Arc::new(AtomicBool::new(false));
        st.maps.push(MapEntry {
            id,
            redirected: false,
            kind: MapKind::Local {
                base: SendPtr(base),
                flag: Arc::clone(&flag),
            },
        });
        st.counters.local_created += 1;
        drop(st);
        Ok(UserView::new_local(Arc::clone(&self.core), base, id, flag))
    }

    /// Sends a view to the process at the other end of `socket` (a
    /// `SOCK_SEQPACKET` Unix socket, see [`socketpair`](crate::socketpair)): the layout
    /// descriptor and the memfds (read-only ones for `UREADONLY` regions,
    /// none for guards) in one message. The peer maps it with
    /// [`UserView::receive`]. The view counts as live from now on; see the
    /// [crate docs](crate#views) for how it is released.
    pub fn send_view(&self, socket: impl AsFd) -> Result<ViewId> {
        let socket = socket.as_fd();
        wire::check_socket(socket)?;
        let mine = wire::dup(socket)?;
        let mut st = self.core.lock();
        self.core.check_mappable(&st)?;
        let id = ViewId(st.next_view);
        {
            let fds: Vec<BorrowedFd<'_>> = self.core.view_fds(&st).into_iter().flatten().collect();
            let body = wire::encode_layout(
                &self.core.name,
                &self.core.layout,
                &self.core.info,
                self.core.schema_offset,
            );
            wire::send_view(socket, id.0, &body, &fds)?;
        }
        st.next_view += 1;
        st.maps.push(MapEntry {
            id,
            redirected: false,
            kind: MapKind::Remote {
                socket: mine,
                acked: false,
            },
        });
        st.counters.remote_sent += 1;
        Ok(id)
    }

    /// Reads what peers said, without blocking: views they unmapped, and
    /// acknowledgements of redirects; a peer whose socket reached
    /// end-of-file (it exited) has its view released too. Returns how many
    /// views were released.
    pub fn poll_peers(&self) -> Result<usize> {
        let mut st = self.core.lock();
        let mut released = 0;
        let mut first_err = None;
        let mut i = 0;
        while i < st.maps.len() {
            let mut remove = None;
            if let MapKind::Remote { socket, .. } = &st.maps[i].kind {
                let id = st.maps[i].id;
                let mut acked = false;
                loop {
                    let mut closed = false;
                    match wire::recv(socket.as_fd(), false, &mut closed) {
                        Ok(Some(m)) if m.kind == Kind::Closed && m.view == id.0 => {
                            remove = Some(true);
                            break;
                        }
                        Ok(Some(m)) if m.kind == Kind::Redirected && m.view == id.0 => acked = true,
                        Ok(Some(m)) => {
                            first_err.get_or_insert(Error::Invalid {
                                field: "control message",
                                reason: format!(
                                    "peer of view {} sent {:?} for view {}",
                                    id.0, m.kind, m.view
                                ),
                            });
                        }
                        Ok(None) if closed => {
                            remove = Some(false);
                            break;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            first_err.get_or_insert(e);
                            break;
                        }
                    }
                }
                if acked {
                    st.counters.redirects_acked += 1;
                    if let MapKind::Remote { acked, .. } = &mut st.maps[i].kind {
                        *acked = true;
                    }
                }
            }
            match remove {
                Some(said_closed) => {
                    st.remove(i);
                    if said_closed {
                        st.counters.remote_closed += 1;
                    } else {
                        st.counters.remote_lost += 1;
                    }
                    released += 1;
                }
                None => i += 1,
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(released),
        }
    }

    /// Forgets remote view `id` (the owner knows the peer is gone).
    pub fn release_remote(&self, id: ViewId) -> Result<()> {
        let mut st = self.core.lock();
        let idx = st.find(id).ok_or_else(|| no_view(id))?;
        if !matches!(st.maps[idx].kind, MapKind::Remote { .. }) {
            return Err(Error::Invalid {
                field: "view",
                reason: format!("view {} is local: it is released by dropping it", id.0),
            });
        }
        st.remove(idx);
        st.counters.remote_lost += 1;
        Ok(())
    }

    /// Live views.
    pub fn views(&self) -> ViewCounts {
        self.core.view_counts()
    }

    /// Redirects view `id` (the seed's `skmem_arena_mredirect`): local
    /// views are remapped to zero pages here and now; remote views are sent
    /// the redirect message (cooperative, see the [crate
    /// docs](crate#redirect-and-peers-that-do-not-cooperate)). Returns
    /// `true` when this made the arena inactive (every view redirected:
    /// time to [`defunct`](Self::defunct)).
    ///
    /// Errors: no such view ([`Error::Invalid`], the seed's `ENXIO`), view
    /// already redirected ([`Error::Busy`], `EALREADY`).
    pub fn redirect(&self, id: ViewId) -> Result<bool> {
        let mut st = self.core.lock();
        let idx = st.find(id).ok_or_else(|| no_view(id))?;
        self.redirect_locked(&mut st, idx)?;
        let now_inactive = st.active && !st.maps.is_empty() && st.redirected() == st.maps.len();
        if now_inactive {
            st.active = false;
        }
        Ok(now_inactive)
    }

    fn redirect_locked(&self, st: &mut State, idx: usize) -> Result<()> {
        let entry = &mut st.maps[idx];
        if entry.redirected {
            return Err(self.core.busy("the view is already redirected"));
        }
        match &entry.kind {
            MapKind::Local { base, flag } => {
                // SAFETY: the view is live (it is in the table, and local
                // views leave the table under this lock before they are
                // unmapped); we hold the lock.
                unsafe { sys::redirect(base.0, &self.core.layout) }?;
                flag.store(true, Ordering::Release);
            }
            MapKind::Remote { socket, .. } => {
                match wire::send_simple(socket.as_fd(), Kind::Redirect, entry.id.0) {
                    Ok(()) => {}
                    Err(Error::Os { errno, .. })
                        if errno == Errno::PIPE.raw_os_error()
                            || errno == Errno::CONNRESET.raw_os_error() =>
                    {
                        // The peer is gone, and its mappings with it: the
                        // view no longer exists.
                        st.remove(idx);
                        st.counters.remote_lost += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        entry.redirected = true;
        st.counters.redirects += 1;
        Ok(())
    }

    /// Redirects every view not yet redirected and makes the arena
    /// inactive, even when it has no view (the owner is shutting users
    /// out). Returns how many views were redirected.
    pub fn redirect_all(&self) -> Result<usize> {
        let mut st = self.core.lock();
        let mut n = 0;
        let mut i = 0;
        while i < st.maps.len() {
            if st.maps[i].redirected {
                i += 1;
                continue;
            }
            let before = st.maps.len();
            self.redirect_locked(&mut st, i)?;
            if st.maps.len() == before {
                n += 1;
                i += 1;
            }
        }
        st.active = false;
        Ok(n)
    }

    // ------------------------------------------------------------------
    // Maintenance
    // ------------------------------------------------------------------

    /// Reaps every cache of the arena (the seed's `skmem_arena_reap`): the
    /// slab caches return empty slabs, the pool gives back what is outside
    /// its working set, or everything with `purge`.
    pub fn reap(&self, purge: bool) {
        let (pool, caches, sds) = {
            let st = self.core.lock();
            (
                st.pool.clone(),
                [st.schema_cache.clone(), st.ring_cache.clone()],
                [st.txa_cache.clone(), st.rxf_cache.clone()],
            )
        };
        for c in caches.iter().flatten() {
            c.reap();
        }
        for c in sds.iter().flatten() {
            c.reap();
        }
        if let Some(p) = pool {
            p.reap(purge);
        }
    }

    /// Defuncts the arena (the seed's `skmem_arena_defunct`): purges the
    /// caches and releases every redirectable region — pool, rings, slot
    /// descriptors, stats, flow advisories — keeping guards and schema.
    ///
    /// Refused with [`Error::Busy`] while the arena is active (redirect its
    /// views first) and, changing nothing, when it is already defunct
    /// (reason `"already defunct"`).
    pub fn defunct(&self) -> Result<()> {
        let mut st = self.core.lock();
        if st.defunct {
            return Err(self.core.busy("already defunct"));
        }
        if st.active {
            return Err(self
                .core
                .busy("the arena is active: its views are not all redirected"));
        }
        // Purge the caches (without the lock: the pool's purge runs its
        // destructors), then tear down.
        let pool = st.pool.take();
        let ring = st.ring_cache.take();
        let txa = st.txa_cache.take();
        let rxf = st.rxf_cache.take();
        let ustats = st.ustats.take();
        let flowadv = st.flowadv.take();
        let mut released: Vec<Slot> = Vec::new();
        for id in RegionId::ALL {
            let keep = st.slots[id.index()]
                .as_ref()
                .is_some_and(|s| s.region.mode().contains(RegionMode::NOREDIRECT));
            if !keep {
                if let Some(s) = st.slots[id.index()].take() {
                    released.push(s);
                }
            }
        }
        st.defunct = true;
        drop(st);
        if let Some(p) = &pool {
            p.reap(true);
        }
        if let Some(c) = &ring {
            c.reap();
        }
        for c in [&txa, &rxf].into_iter().flatten() {
            c.reap();
        }
        // Order: objects, then caches, then the pool, then the regions.
        drop((ustats, flowadv));
        drop((ring, txa, rxf));
        drop(pool);
        let n = released.len();
        drop(released);
        tracing::debug!(arena = %self.core.name, regions = n, "arena defunct");
        Ok(())
    }

    // ------------------------------------------------------------------
    // Statistics
    // ------------------------------------------------------------------

    /// Total and in-use bytes of the arena's regions (the seed's
    /// `skmem_arena_get_stats`).
    pub fn mem_stats(&self) -> (u64, u64) {
        let st = self.core.lock();
        st.slots.iter().flatten().fold((0, 0), |(t, u), s| {
            let r = s.region.stats();
            (t + r.memtotal, u + r.meminuse)
        })
    }

    /// A snapshot of the arena.
    pub fn stats(&self) -> ArenaStats {
        self.core.stats(self.core.view_counts())
    }
}

/// Snapshots of every arena alive in this process (the seed's
/// `kern.skywalk.stats.arena` list), in creation order: the arenas of the
/// process registry ([`skmem_traits::registry`], where each arena lists
/// itself with an [`ArenaSummary`](skmem_traits::stats::ArenaSummary)),
/// each with its whole [`ArenaStats`].
pub fn all_stats() -> Vec<ArenaStats> {
    let mut out = Vec::new();
    skmem_traits::registry::for_each(|_, kind, object| {
        if kind != skmem_traits::registry::Kind::Arena {
            return;
        }
        if let Some(core) = object.as_any().and_then(|a| a.downcast_ref::<Core>()) {
            out.push(core.stats(core.view_counts()));
        }
    });
    out
}

#[cold]
fn no_view(id: ViewId) -> Error {
    Error::Invalid {
        field: "view",
        reason: format!("the arena has no view {}", id.0),
    }
}

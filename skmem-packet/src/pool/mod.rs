//! The packet-buffer pool (the seed's `pbufpool.c`).
//!
//! # Layers
//!
//! ```text
//!  PacketPool
//!   ├─ metadata cache   Cache<SlabCache<S, MdCtor, Shadow?>>   kmd region (+ umd mirror)
//!   │     constructed objects keep a buffer attached (or none, on demand)
//!   ├─ buflet caches    Cache<SlabCache<S, BftCtor, Shadow?>>  kbft region (+ ubft mirror)
//!   │     default and large: buflets with a buffer attached (on demand only)
//!   └─ buffer caches    Cache<SlabCache<Hooked<S>>>            default / large buffer regions
//!         no magazines (buffers rest in constructed metadata), unless striding-sized
//! ```
//!
//! The fast path of allocation is a magazine pop of constructed metadata
//! (a buffer already attached), a reset of three fields, and a tag in the
//! handle's low bits; freeing is the reverse. Everything else — on-demand
//! buflets, attached packets, completion callbacks, shared buffers — takes
//! a per-packet slow path.
//!
//! # Safety and correctness
//!
//! * Kernel metadata and buflet objects are private memory of this process:
//!   the pool reads and writes them through raw pointers only, and only for
//!   objects it handed out (the contract of the `unsafe` functions taking
//!   [`Packet`] / [`Buflet`] handles) or is constructing.
//! * User metadata, user buflets and buffers may be written by another
//!   process or a device at any time: they are touched only with volatile
//!   reads and writes of plain integers or raw byte copies; indices read
//!   from them are used as keys into the pool's own tables, never as
//!   addresses (see [`PacketPool::upp_remove`]).
//! * A buffer is owned by the buflets that hold it (use count). A constructed
//!   object goes back into a magazine only when no other buflet shares its
//!   buffer; otherwise it is freed with `free_nocache`, so its destructor
//!   drops its share at once.
//! * Handles of packets handed to a user (tracked by [`PacketPool::upp_insert`])
//!   stay allocated; the kernel chain of external buflets is detached at
//!   hand-off and rebuilt, after full validation, at hand-back, so a
//!   buflet is linked into at most one kernel chain at any time.

mod config;
mod ctor;
mod hooks;
mod meta;
mod ops;
mod owned;
mod regions;
mod report;
mod upp;

use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use skmem_magazine::{Cache, CacheConfig, DefaultLocal};
use skmem_slab::{Reap, Region, RegionParams, Shadow, SlabCache, SlabConfig};
use skmem_traits::{AllocFlags, CpuLocal, Error, Result, SegmentSource};

pub use config::{IoDirection, PacketPoolConfig, PoolPlan, MAX_FRAGS_LIMIT, MIN_STRIDING_BUF_SIZE};
pub use hooks::{BufferKind, BufferSegmentHooks, Hooked, HookedConfig, SegmentEvent};
pub use meta::{
    ubft, umd, Buflet, BufletIter, MetadataType, Packet, PacketQueue, IDX_NONE, NO_OWNER,
};
pub use ops::RawBuffer;
pub use owned::{BufletRef, OwnedPacket};
pub use regions::{ObjectRegion, PoolRegions};
pub use report::{Outstanding, OutstandingBuflet, OutstandingPacket, PoolStats};

use ctor::{BftCtor, BufClass, Buffers, MdCtor};
use meta::{KBUF_SIZE, KMD_SIZE, MD_INTERNALIZED, MD_SLOW};

/// The mirror of a pool's object regions, decided at run time: `None` for
/// a kernel-only pool, the user region (umd or ubft) otherwise. One cache
/// type serves both; only segment creation and teardown look at it.
pub(crate) type UserMirror<S> = Option<Shadow<S>>;

pub(crate) type MdCache<S, L> = Cache<SlabCache<S, MdCtor<S, L>, UserMirror<S>>, L>;
pub(crate) type BftCache<S, L> = Cache<SlabCache<S, BftCtor<S, L>, UserMirror<S>>, L>;

/// The buflet caches of an on-demand pool.
pub(crate) struct Bfts<S: SegmentSource, L: CpuLocal> {
    pub(crate) def: BftCache<S, L>,
    pub(crate) large: Option<BftCache<S, L>>,
    pub(crate) capacity: u32,
}

impl<S: SegmentSource, L: CpuLocal> Bfts<S, L> {
    #[inline]
    pub(crate) fn cache(&self, large: bool) -> &BftCache<S, L> {
        if large {
            self.large.as_ref().expect("large buffers are configured")
        } else {
            &self.def
        }
    }
}

/// Purges the metadata and buflet caches when a buffer region runs out:
/// their constructed objects hold buffers.
struct PoolReaper<S: SegmentSource, L: CpuLocal> {
    md: MdCache<S, L>,
    bft: Option<BftPair<S, L>>,
}

impl<S: SegmentSource, L: CpuLocal> Reap for PoolReaper<S, L> {
    fn reap_now(&self, purge: bool) {
        self.md.reap_now(purge);
        if let Some((d, l)) = &self.bft {
            d.reap_now(purge);
            if let Some(l) = l {
                l.reap_now(purge);
            }
        }
    }
}

type BftPair<S, L> = (BftCache<S, L>, Option<BftCache<S, L>>);

type TxCallback = Arc<dyn Fn(Packet) + Send + Sync>;

pub(crate) struct Inner<S: SegmentSource, L: CpuLocal> {
    pub(crate) name: String,
    pub(crate) md_type: MetadataType,
    pub(crate) max_frags: u16,
    pub(crate) on_demand: bool,
    pub(crate) kernel_only: bool,
    pub(crate) md_capacity: u32,
    pub(crate) secret: u64,
    pub(crate) closed: AtomicBool,
    pub(crate) upp: Mutex<upp::Upp>,
    pub(crate) tx_compl: RwLock<Vec<TxCallback>>,
    pub(crate) md: MdCache<S, L>,
    pub(crate) bft: Option<Bfts<S, L>>,
    pub(crate) bufs: Arc<Buffers<S, L>>,
    _reaper: Arc<PoolReaper<S, L>>,
    purged: bool,
    /// The pool's entry in the process registry and the object it lists
    /// (see [`report::PoolProbe`]); dropped with the pool.
    probe: std::sync::OnceLock<(
        Arc<report::PoolProbe<S, L>>,
        skmem_traits::registry::Registration,
    )>,
}

impl<S: SegmentSource, L: CpuLocal> Drop for PacketPool<S, L> {
    fn drop(&mut self) {
        // SAFETY: `inner` is taken exactly once, here, and not used again.
        let arc = unsafe { ManuallyDrop::take(&mut self.inner) };
        // The last reference: whatever users still hold is the pool's
        // again (the seed's `pp_destroy_upp_locked`), then the caches go,
        // metadata first (its destructors return buffers), buffers last.
        if let Some(mut inner) = Arc::into_inner(arc) {
            if !inner.purged {
                inner.purged = true;
                let pool = PacketPool {
                    inner: ManuallyDrop::new(Arc::new(inner)),
                };
                let (p, b) = pool.purge_upp(None);
                if p + b > 0 {
                    tracing::debug!(pool = %pool.inner.name, packets = p, buflets = b, "purged user-held objects at teardown");
                }
            }
        }
    }
}

/// A packet-buffer pool: constructed packet metadata with buffers
/// attached, handed out one at a time or in batches, on any
/// [`SegmentSource`] `S`, with magazine locality `L`.
///
/// `PacketPool` is a handle: [`retain`](Self::retain) (or `clone`) takes
/// another reference, the last one dropped tears the pool down (after
/// purging what users still hold). The default locality is
/// [`DefaultLocal`] (per thread), whose fast path is the shortest.
pub struct PacketPool<S: SegmentSource, L: CpuLocal = DefaultLocal> {
    pub(crate) inner: ManuallyDrop<Arc<Inner<S, L>>>,
}

impl<S: SegmentSource, L: CpuLocal> Clone for PacketPool<S, L> {
    fn clone(&self) -> Self {
        PacketPool {
            inner: ManuallyDrop::new(Arc::clone(&self.inner)),
        }
    }
}

impl<S: SegmentSource, L: CpuLocal> core::fmt::Debug for PacketPool<S, L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PacketPool")
            .field("name", &self.inner.name)
            .field("source", &S::NAME)
            .field("locality", &L::NAME)
            .field("md_type", &self.inner.md_type)
            .field("on_demand", &self.inner.on_demand)
            .field("kernel_only", &self.inner.kernel_only)
            .finish_non_exhaustive()
    }
}

impl PacketPoolConfig {
    /// Builds a pool on source `S` (every region opened with
    /// `source_config`), with the default locality.
    pub fn build<S: SegmentSource>(&self, source_config: S::Config) -> Result<PacketPool<S>> {
        self.build_with::<S, DefaultLocal>(source_config)
    }

    /// Builds a pool on source `S` with locality `L`.
    pub fn build_with<S: SegmentSource, L: CpuLocal>(
        &self,
        source_config: S::Config,
    ) -> Result<PacketPool<S, L>> {
        PacketPool::create(self, source_config)
    }
}

fn random_secret() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(core::ptr::addr_of!(h) as usize);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() | 1
}

fn cache_config(magazines: bool) -> CacheConfig {
    CacheConfig::default().no_magazines(!magazines)
}

/// The buflet caches of a pool over one buflet region (kernel-only or
/// mirrored, as `M` says): the default one, and, when the pool has large
/// buffers, the large one, whose magazines are purged on reap.
#[allow(clippy::type_complexity)]
fn bft_caches<S: SegmentSource, L: CpuLocal>(
    region: Arc<Region<S, UserMirror<S>>>,
    pool_name: &str,
    bufs: &Arc<Buffers<S, L>>,
    magazines: bool,
    debug: skmem_slab::DebugFlags,
) -> Result<(BftCache<S, L>, Option<BftCache<S, L>>)> {
    let slab = |name: String| SlabConfig::new(name, KBUF_SIZE).align(64).debug(debug);
    let ctor = |large: bool| BftCtor {
        bufs: Arc::clone(bufs),
        large,
    };
    let def = Cache::new(
        SlabCache::new(
            Arc::clone(&region),
            slab(format!("kbft_def.{pool_name}")),
            ctor(false),
        )?,
        cache_config(magazines),
    )?;
    let large = if bufs.large.is_some() {
        Some(Cache::new(
            SlabCache::new(region, slab(format!("kbft_large.{pool_name}")), ctor(true))?,
            cache_config(magazines).purge_on_reap(true),
        )?)
    } else {
        None
    };
    Ok((def, large))
}

impl<S: SegmentSource, L: CpuLocal> PacketPool<S, L> {
    fn create(cfg: &PacketPoolConfig, src: S::Config) -> Result<Self> {
        let plan = cfg.plan(L::slot_hint())?;
        let n = &cfg.name;

        // Buffers first: the metadata constructors attach them.
        let buf_class =
            |params: &RegionParams, size: usize, kind: BufferKind| -> Result<BufClass<S, L>> {
                let region = Region::<Hooked<S>>::new(
                    params.clone(),
                    HookedConfig {
                        inner: src.clone(),
                        hooks: cfg.hooks.clone(),
                        kind,
                    },
                )?;
                let count = region.layout().obj_count;
                let slab = SlabCache::new(
                    region,
                    SlabConfig::new(params.name.clone(), size)
                        .align(64)
                        .debug(cfg.debug),
                    skmem_traits::NoCtor,
                )?;
                let cache = Cache::new(slab, cache_config(size >= MIN_STRIDING_BUF_SIZE))?;
                let uses = (0..count)
                    .map(|_| std::sync::atomic::AtomicU32::new(0))
                    .collect();
                Ok(BufClass {
                    cache,
                    uses,
                    size: size as u32,
                })
            };
        let def = buf_class(&plan.buf.0, cfg.buf_size, BufferKind::Default)?;
        let large = match &plan.lbuf {
            Some((p, _)) => Some(buf_class(p, cfg.large_buf_size, BufferKind::Large)?),
            None => None,
        };
        let bufs = Arc::new(Buffers { def, large });
        let secret = cfg.redzone_secret.unwrap_or_else(random_secret);

        // Metadata.
        let md_ctor = MdCtor {
            bufs: Arc::clone(&bufs),
            md_type: cfg.md_type,
            max_frags: cfg.max_frags,
            on_demand: cfg.on_demand,
            secret,
            seg_size: plan.kmd.1.seg_size,
        };
        let md_slab_cfg = SlabConfig::new(format!("kmd.{n}"), KMD_SIZE)
            .align(64)
            .debug(cfg.debug);
        let umd = match &plan.umd {
            None => None,
            Some((up, _)) => Some(Shadow(Region::<S>::new(up.clone(), src.clone())?)),
        };
        let region = Region::with_mirror(plan.kmd.0.clone(), src.clone(), umd)?;
        let md: MdCache<S, L> = Cache::new(
            SlabCache::new(region, md_slab_cfg, md_ctor)?,
            cache_config(cfg.md_magazines),
        )?;

        // Buflets (on demand).
        let bft = match &plan.kbft {
            None => None,
            Some((kp, kl)) => {
                let ubft = match &plan.ubft {
                    None => None,
                    Some((up, _)) => Some(Shadow(Region::<S>::new(up.clone(), src.clone())?)),
                };
                let region = Region::with_mirror(kp.clone(), src.clone(), ubft)?;
                let (def, lg) = bft_caches(region, n, &bufs, cfg.md_magazines, cfg.debug)?;
                Some(Bfts {
                    def,
                    large: lg,
                    capacity: kl.obj_count as u32,
                })
            }
        };

        let reaper = Arc::new(PoolReaper {
            md: md.clone(),
            bft: bft.as_ref().map(|b| (b.def.clone(), b.large.clone())),
        });
        let weak: Weak<dyn Reap> = Arc::downgrade(&reaper) as Weak<dyn Reap>;
        bufs.def.cache.layer().region().add_reaper(weak.clone());
        if let Some(l) = &bufs.large {
            l.cache.layer().region().add_reaper(weak);
        }

        tracing::debug!(pool = %n, source = S::NAME, locality = L::NAME, ?plan, "packet pool created");
        let pool = PacketPool {
            inner: ManuallyDrop::new(Arc::new(Inner {
                name: n.clone(),
                md_type: cfg.md_type,
                max_frags: cfg.max_frags,
                on_demand: cfg.on_demand,
                kernel_only: cfg.kernel_only,
                md_capacity: plan.kmd.1.obj_count as u32,
                secret,
                closed: AtomicBool::new(false),
                upp: Mutex::new(upp::Upp::default()),
                tx_compl: RwLock::new(Vec::new()),
                md,
                bft,
                bufs,
                _reaper: reaper,
                purged: false,
                probe: std::sync::OnceLock::new(),
            })),
        };
        report::PoolProbe::register(&pool.inner);
        Ok(pool)
    }

    // ------------------------------------------------------------------
    // Properties
    // ------------------------------------------------------------------

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The metadata type.
    pub fn md_type(&self) -> MetadataType {
        self.inner.md_type
    }

    /// Largest buflets per packet.
    pub fn max_frags(&self) -> u16 {
        self.inner.max_frags
    }

    /// Metadata objects the pool holds in all (the computed count).
    pub fn capacity(&self) -> u32 {
        self.inner.md_capacity
    }

    /// Buflet objects the pool holds in all (0 unless on demand).
    pub fn buflet_capacity(&self) -> u32 {
        self.inner.bft.as_ref().map_or(0, |b| b.capacity)
    }

    /// Default buffer size.
    pub fn buf_size(&self) -> usize {
        self.inner.bufs.def.size as usize
    }

    /// Large buffer size (0: none).
    pub fn large_buf_size(&self) -> usize {
        self.inner
            .bufs
            .large
            .as_ref()
            .map_or(0, |l| l.size as usize)
    }

    /// `true` with buffers on demand.
    pub fn is_on_demand(&self) -> bool {
        self.inner.on_demand
    }

    /// `true` when metadata has no user mirror.
    pub fn is_kernel_only(&self) -> bool {
        self.inner.kernel_only
    }

    /// Takes another reference to the pool (the seed's `pp_retain`).
    pub fn retain(&self) -> Self {
        self.clone()
    }

    /// References to the pool alive now.
    pub fn refcount(&self) -> usize {
        Arc::strong_count(&*self.inner)
    }

    /// Closes the pool (the seed's `pp_close`): later allocations fail with
    /// [`Error::Busy`]; frees and user hand-backs still work. The pool is
    /// torn down when the last reference goes.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
    }

    /// `true` after [`close`](Self::close).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Registers a transmit-completion callback: it runs (on the freeing
    /// thread, the packet still valid) for every packet freed after
    /// [`Packet::request_tx_completion`].
    pub fn on_tx_completion(&self, cb: impl Fn(Packet) + Send + Sync + 'static) {
        self.inner.tx_compl.write().push(Arc::new(cb));
    }

    /// The device address of `addr` inside a buffer, when the source maps
    /// buffers for DMA.
    pub fn iova(&self, addr: *const u8) -> Option<u64> {
        let b = &self.inner.bufs;
        b.def
            .cache
            .layer()
            .region()
            .source()
            .iova(addr)
            .or_else(|| {
                b.large
                    .as_ref()
                    .and_then(|l| l.cache.layer().region().source().iova(addr))
            })
    }

    /// The device address of a buflet's data (`addr + data_offset`).
    ///
    /// # Safety
    ///
    /// See [`Packet`]'s accessor contract.
    pub unsafe fn buflet_iova(&self, b: Buflet) -> Option<u64> {
        // SAFETY: forwarded.
        let (a, off) = unsafe { (b.addr(), b.data_offset()) };
        if a.is_null() {
            return None;
        }
        self.iova(a.wrapping_add(off))
    }

    // ------------------------------------------------------------------
    // Allocation
    // ------------------------------------------------------------------

    #[inline]
    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(self.closed_error());
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn closed_error(&self) -> Error {
        Error::Busy {
            name: self.inner.name.clone(),
            reason: "the pool is closed",
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn exhausted(&self) -> Error {
        Error::Exhausted {
            name: self.inner.name.clone(),
            capacity: self.inner.md_capacity as u64,
            unit: "packets",
        }
    }

    #[cold]
    #[inline(never)]
    fn bad_bufcnt(&self, bufcnt: u16) -> Error {
        if self.inner.on_demand {
            Error::OutOfRange {
                field: "bufcnt",
                value: bufcnt as u64,
                limit: self.inner.max_frags as u64 + 1,
            }
        } else {
            Error::invalid_param(
                "bufcnt",
                bufcnt as u64,
                "a pool without buffers on demand has exactly 1 buflet per packet",
            )
        }
    }

    /// Resets a freshly allocated, constructed metadata object (the seed's
    /// `pp_metadata_init` without buflets) and tags it.
    #[inline(always)]
    fn init_one(&self, kmd: NonNull<u8>) -> Packet {
        let k = meta::as_kmd(kmd.as_ptr());
        // SAFETY: `kmd` was just handed to us by the metadata cache:
        // constructed, allocated, ours.
        unsafe {
            (*k).flags = MD_INTERNALIZED;
            (*k).len = 0;
            (*k).buf.doff = 0;
            (*k).buf.dlen = 0;
        }
        Packet::encode(kmd, self.inner.md_type)
    }

    /// Allocates one packet with `bufcnt` buflets (exactly 1 unless buffers
    /// are on demand; 0 to `max_frags` then).
    #[inline]
    pub fn alloc_packet(&self, bufcnt: u16, flags: AllocFlags) -> Result<Packet> {
        self.check_open()?;
        if !self.inner.on_demand && bufcnt == 1 {
            let k = self
                .inner
                .md
                .alloc_with(flags)
                .map_err(|e| self.map_exhausted(e))?;
            return Ok(self.init_one(k));
        }
        let mut one = [MaybeUninit::uninit()];
        self.alloc_batch(bufcnt, &mut one, flags)?;
        // SAFETY: `alloc_batch` returned Ok, so it filled at least one.
        Ok(unsafe { one[0].assume_init() })
    }

    #[cold]
    fn map_exhausted(&self, e: Error) -> Error {
        if e.is_exhaustion() {
            self.exhausted()
        } else {
            e
        }
    }

    /// Allocates up to `out.len()` packets with `bufcnt` buflets each into
    /// a prefix of `out`. `Ok(n)` with `n < out.len()` is a partial batch
    /// (the seed's `EAGAIN`); [`Error::Exhausted`] means none (`ENOMEM`).
    #[inline]
    pub fn alloc_batch(
        &self,
        bufcnt: u16,
        out: &mut [MaybeUninit<Packet>],
        flags: AllocFlags,
    ) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        self.check_open()?;
        if self.inner.on_demand || bufcnt != 1 {
            return self.alloc_batch_slow(bufcnt, out, flags);
        }
        // SAFETY: `Packet` is `repr(transparent)` over `NonNull<u8>`, so the
        // two slices have the same layout; the cache writes addresses.
        let raw =
            unsafe { &mut *(out as *mut [MaybeUninit<Packet>] as *mut [MaybeUninit<NonNull<u8>>]) };
        let n = self.inner.md.alloc_batch(raw, flags);
        if n == 0 {
            return Err(self.exhausted());
        }
        for slot in &mut raw[..n] {
            // SAFETY: the cache initialised the first `n` entries.
            let k = unsafe { slot.assume_init() };
            let p = self.init_one(k);
            // SAFETY: same layout (see above); overwrite with the handle.
            unsafe { slot.as_mut_ptr().cast::<Packet>().write(p) };
        }
        Ok(n)
    }

    /// [`alloc_batch`](Self::alloc_batch) appending `n` packets to a `Vec`.
    pub fn alloc_batch_vec(
        &self,
        bufcnt: u16,
        n: usize,
        out: &mut Vec<Packet>,
        flags: AllocFlags,
    ) -> Result<usize> {
        out.reserve(n);
        let len = out.len();
        let got = self.alloc_batch(bufcnt, &mut out.spare_capacity_mut()[..n], flags)?;
        // SAFETY: `alloc_batch` initialised `got` entries after `len`.
        unsafe { out.set_len(len + got) };
        Ok(got)
    }

    /// [`alloc_batch`](Self::alloc_batch), calling `cb(i, packet)` for each
    /// packet allocated (the seed's `alloc_cb_func_t`).
    pub fn alloc_batch_each(
        &self,
        bufcnt: u16,
        out: &mut [MaybeUninit<Packet>],
        flags: AllocFlags,
        mut cb: impl FnMut(usize, Packet),
    ) -> Result<usize> {
        let n = self.alloc_batch(bufcnt, out, flags)?;
        for (i, p) in out[..n].iter().enumerate() {
            // SAFETY: the first `n` are initialised.
            cb(i, unsafe { p.assume_init() });
        }
        Ok(n)
    }

    /// Allocates up to `n` packets onto the back of `queue` (the seed's
    /// `pp_alloc_pktq`); partial and empty results as
    /// [`alloc_batch`](Self::alloc_batch).
    pub fn alloc_queue(
        &self,
        bufcnt: u16,
        n: usize,
        queue: &mut PacketQueue,
        flags: AllocFlags,
    ) -> Result<usize> {
        let mut done = 0;
        let mut tmp = [MaybeUninit::<Packet>::uninit(); 64];
        while done < n {
            let want = (n - done).min(tmp.len());
            let got = match self.alloc_batch(bufcnt, &mut tmp[..want], flags) {
                Ok(g) => g,
                Err(e) if done > 0 && e.is_exhaustion() => break,
                Err(e) => return Err(e),
            };
            for p in &tmp[..got] {
                // SAFETY: initialised by `alloc_batch`; fresh packets are in
                // no queue, and the queue now owns them.
                unsafe { queue.push_back(p.assume_init()) };
            }
            done += got;
            if got < want {
                break;
            }
        }
        Ok(done)
    }

    /// Allocates a packet big enough for `size` bytes of default buffers
    /// (the seed's `pp_alloc_packet_by_size`).
    pub fn alloc_by_size(&self, size: usize, flags: AllocFlags) -> Result<Packet> {
        let buf = self.buf_size();
        let bufcnt = if self.inner.on_demand {
            size.div_ceil(buf)
        } else {
            1
        };
        let limit = if self.inner.on_demand {
            buf * self.inner.max_frags as usize
        } else {
            buf
        };
        if size > limit {
            return Err(Error::OutOfRange {
                field: "size",
                value: size as u64,
                limit: limit as u64 + 1,
            });
        }
        self.alloc_packet(bufcnt as u16, flags)
    }

    // ------------------------------------------------------------------
    // Free
    // ------------------------------------------------------------------

    /// Refuses to free `p` when a user process still holds it or it is
    /// attached to another packet: freeing it would leave the user-tracking
    /// table (or the parent) pointing at a free object, later handed out or
    /// freed a second time.
    ///
    /// # Safety
    ///
    /// `p` is an allocated packet of this pool.
    #[inline]
    unsafe fn check_free(&self, p: Packet) -> Result<()> {
        let k = p.kmd();
        // SAFETY: the caller's contract: `p` is allocated.
        let (owner, flags) = unsafe { ((*k).owner, (*k).flags) };
        if owner != meta::NO_OWNER || flags & meta::MD_IS_ATTACHED != 0 {
            // SAFETY: as above.
            return Err(unsafe { self.refused_free(p) });
        }
        Ok(())
    }

    /// # Safety
    ///
    /// As [`check_free`](Self::check_free).
    #[cold]
    #[inline(never)]
    unsafe fn refused_free(&self, p: Packet) -> Error {
        let k = p.kmd();
        // SAFETY: the caller's contract: `p` is allocated.
        let (index, owner) = unsafe { ((*k).index, (*k).owner) };
        let reason = if owner != meta::NO_OWNER {
            format!(
                "packet {index} of pool `{}` is held by user process {owner}: take it back with upp_remove (or upp_purge) before freeing it",
                self.inner.name
            )
        } else {
            format!(
                "packet {index} of pool `{}` is attached to another packet: it is freed with its parent",
                self.inner.name
            )
        };
        Error::Invalid {
            field: "packet",
            reason,
        }
    }

    /// Frees one packet (and a packet attached to it).
    ///
    /// A packet a user process still holds ([`upp_insert`](Self::upp_insert)
    /// without [`upp_remove`](Self::upp_remove)) or one attached to another
    /// packet is refused with [`Error::Invalid`] naming the packet and its
    /// holder, and nothing changes.
    ///
    /// A panic from a transmit-completion callback does not lose the
    /// packet: it is freed first, then the panic goes on.
    ///
    /// # Safety
    ///
    /// `p` was allocated from this pool, is not freed yet, is not in a
    /// queue, and is not used afterwards (unless the call is refused).
    #[inline]
    pub unsafe fn free_packet(&self, p: Packet) -> Result<()> {
        let k = p.kmd();
        // SAFETY: the caller's contract: `p` is allocated and ours.
        unsafe { self.check_free(p) }?;
        // SAFETY: as above.
        if self.inner.on_demand || unsafe { (*k).flags } & MD_SLOW != 0 {
            // SAFETY: forwarded.
            unsafe { self.free_slow(&[p]) };
            return Ok(());
        }
        // SAFETY: constructed state restored (no chain; flags are reset at
        // the next allocation); the object came from this cache.
        unsafe { self.inner.md.free(p.kmd_nn()) };
        Ok(())
    }

    /// Frees packets (the seed's `pp_free_packet_array`).
    ///
    /// Every packet is checked first: when one is refused (as in
    /// [`free_packet`](Self::free_packet)) the error names it and **none**
    /// is freed. A panicking transmit-completion callback does not lose any
    /// packet of the batch: all are freed, then the first panic goes on.
    ///
    /// # Safety
    ///
    /// As [`free_packet`](Self::free_packet), for every element; no
    /// element repeats.
    #[inline]
    pub unsafe fn free_batch(&self, pkts: &[Packet]) -> Result<()> {
        for &p in pkts {
            // SAFETY: the caller's contract.
            unsafe { self.check_free(p) }?;
        }
        // SAFETY: checked above; the caller's contract otherwise.
        unsafe { self.free_batch_checked(pkts) };
        Ok(())
    }

    /// [`free_batch`](Self::free_batch) once every packet was checked.
    ///
    /// # Safety
    ///
    /// As [`free_batch`](Self::free_batch), and every packet passed
    /// [`check_free`](Self::check_free).
    #[inline]
    pub(crate) unsafe fn free_batch_checked(&self, pkts: &[Packet]) {
        if self.inner.on_demand {
            // SAFETY: forwarded.
            return unsafe { self.free_slow(pkts) };
        }
        for chunk in pkts.chunks(64) {
            let mut tmp = [MaybeUninit::<NonNull<u8>>::uninit(); 64];
            let mut slow = false;
            for (slot, p) in tmp.iter_mut().zip(chunk) {
                // SAFETY: the caller's contract.
                if unsafe { (*p.kmd()).flags } & MD_SLOW != 0 {
                    slow = true;
                    break;
                }
                slot.write(p.kmd_nn());
            }
            if slow {
                // SAFETY: forwarded.
                unsafe { self.free_slow(chunk) };
                continue;
            }
            // SAFETY: all `chunk.len()` entries were written above.
            let objs = unsafe { meta::assume_init_slice(&tmp[..chunk.len()]) };
            // SAFETY: each is an allocated object of the metadata cache in
            // constructed state (caller's contract).
            unsafe { self.inner.md.free_batch(objs) };
        }
    }

    /// Frees a chain of packets linked with [`Packet::set_next`] (the
    /// seed's `pp_free_packet_chain`); returns how many. The whole chain
    /// is checked first, as in [`free_batch`](Self::free_batch): a refused
    /// packet frees none and leaves the chain linked.
    ///
    /// # Safety
    ///
    /// As [`free_packet`](Self::free_packet) for every packet of the chain;
    /// the chain ends (no cycle).
    pub unsafe fn free_chain(&self, head: Packet) -> Result<usize> {
        let mut cur = Some(head);
        while let Some(p) = cur {
            // SAFETY: the chain's packets are allocated (contract).
            unsafe {
                self.check_free(p)?;
                cur = p.next();
            }
        }
        let mut cur = Some(head);
        let mut count = 0;
        let mut tmp = [MaybeUninit::<Packet>::uninit(); 64];
        while cur.is_some() {
            let mut n = 0;
            while let Some(p) = cur {
                if n == tmp.len() {
                    break;
                }
                // SAFETY: the chain's packets are allocated (contract).
                unsafe {
                    cur = p.next();
                    (*p.kmd()).next_pkt = core::ptr::null_mut();
                }
                tmp[n].write(p);
                n += 1;
            }
            // SAFETY: `n` entries were written.
            let pkts = unsafe { meta::assume_init_slice(&tmp[..n]) };
            // SAFETY: forwarded; every packet was checked above.
            unsafe { self.free_batch_checked(pkts) };
            count += n;
        }
        Ok(count)
    }

    /// Frees every packet of `queue`, leaving it empty (the seed's
    /// `pp_free_pktq`).
    ///
    /// A refused packet (see [`free_batch`](Self::free_batch)) frees none
    /// and leaves the queue as it was.
    ///
    /// # Safety
    ///
    /// The queued packets were allocated from this pool.
    pub unsafe fn free_queue(&self, queue: &mut PacketQueue) -> Result<usize> {
        let Some(head) = queue.head() else {
            return Ok(0);
        };
        // SAFETY: queued packets are allocated and owned by the queue (its
        // push contract) and are this pool's (caller). On success they are
        // all freed, so the queue gives them up.
        let n = unsafe { self.free_chain(head) }?;
        queue.take();
        Ok(n)
    }
}

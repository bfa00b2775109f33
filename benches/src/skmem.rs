//! skmem's layers as contenders: the slab cache alone ([`SlabPool`]) and
//! the magazine cache over it, one per `CpuLocal` policy ([`MagPool`]).
//!
//! Both sit by default on a region backed by [`Mmap`] (one memfd span, so an
//! address maps to its segment by arithmetic — the Linux configuration);
//! [`MagPool::on_heap`] builds the magazine cache on the [`Heap`] source
//! instead (segments from the global allocator, found through a hash map:
//! the portable default, and what the wall-clock comparison with the malloc
//! peers uses). Regions are sized for [`POOL_CAPACITY`] objects plus the
//! worst-case magazine residency.

use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::borrow::Cow;

use skmem_backends::{Heap, HeapConfig, Mmap, MmapConfig};
use skmem_magazine::{Cache, CacheConfig, CpuLocal, Global, PerCpu, PerThread};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::{AllocFlags, NoCtor, ObjectCtor, ObjectInfo, Result, SegmentSource};

use crate::ctor::{self, CTOR_OBJ_SIZE};
use crate::{read_word, ObjPool, Ptr, POOL_CAPACITY};

/// The slab cache every skmem contender is built on (on source `S`).
pub type Slab<C, S = Mmap> = SlabCache<S, C>;

/// The magazine cache over a [`Slab`] with locality policy `L`.
pub type Mag<L, C, S = Mmap> = Cache<Slab<C, S>, L>;

/// Slots the region's magazine allowance is computed for (per-CPU slots,
/// or threads of the per-thread policy); generous on purpose.
const MAGAZINE_SLOTS: usize = 64;

/// The constructor of the constructed-object workload: builds the
/// [`Table`](crate::ctor::Table) in place.
#[derive(Debug, Default, Clone, Copy)]
pub struct TableCtor;

impl ObjectCtor for TableCtor {
    fn construct(&self, obj: ObjectInfo, _: Option<ObjectInfo>, _: AllocFlags) -> Result<()> {
        assert!(obj.size >= CTOR_OBJ_SIZE, "table object too small");
        // SAFETY: the `ObjectCtor` contract gives this call exclusive use of
        // `obj.size >= CTOR_OBJ_SIZE` bytes at `obj.addr`, cache-line aligned.
        unsafe { ctor::construct_at(obj.addr) };
        Ok(())
    }

    fn destruct(&self, _: ObjectInfo, _: Option<ObjectInfo>) {}
}

/// Builds a slab cache of `POOL_CAPACITY` objects of `size` bytes on an
/// mmap region.
pub fn slab_cache<C: ObjectCtor>(name: &str, size: usize, ctor: C) -> Slab<C> {
    let mut config = MmapConfig::default();
    config.name = Cow::Owned(name.to_owned());
    slab_cache_on::<Mmap, C>(name, size, ctor, config)
}

/// Builds a slab cache of `POOL_CAPACITY` objects of `size` bytes on a
/// region of source `S` configured by `config`.
pub fn slab_cache_on<S: SegmentSource, C: ObjectCtor>(
    name: &str,
    size: usize,
    ctor: C,
    config: S::Config,
) -> Slab<C, S> {
    let allowance = skmem_magazine::magazine_max_objs(size.next_multiple_of(64), MAGAZINE_SLOTS);
    let params = RegionParams::new(name, size, POOL_CAPACITY).magazine_max_objs(allowance);
    let region = Region::<S>::new(params, config).expect("bench region");
    SlabCache::new(region, SlabConfig::new(name, size), ctor).expect("bench slab cache")
}

/// The slab layer alone: every `get` takes the slab lock (and runs the
/// constructor, if any).
pub struct SlabPool<C: ObjectCtor = NoCtor>(pub Slab<C>);

impl SlabPool<NoCtor> {
    /// Objects of `size` bytes, no constructor.
    pub fn new(size: usize) -> Self {
        SlabPool(slab_cache(&format!("bench-slab-{size}"), size, NoCtor))
    }
}

impl SlabPool<TableCtor> {
    /// Constructed [`Table`](crate::ctor::Table) objects.
    pub fn constructed() -> Self {
        SlabPool(slab_cache("bench-slab-ctor", CTOR_OBJ_SIZE, TableCtor))
    }
}

/// The magazine layer over a slab cache on source `S`, with locality
/// policy `L`.
pub struct MagPool<L: CpuLocal, C: ObjectCtor + 'static = NoCtor, S: SegmentSource = Mmap>(
    pub Mag<L, C, S>,
);

impl<L: CpuLocal, C: ObjectCtor + 'static, S: SegmentSource> MagPool<L, C, S> {
    /// The locality the cache reports in its stats (e.g. `per-cpu`): which
    /// fast path a benchmark of this contender measured.
    pub fn locality(&self) -> String {
        self.0.stats().locality.to_string()
    }
}

impl<L: CpuLocal> MagPool<L, NoCtor, Heap> {
    /// Objects of `size` bytes, no constructor, on the [`Heap`] source.
    pub fn on_heap(size: usize) -> Self {
        let name = format!("bench-heap-{}-{size}", L::NAME);
        let slab = slab_cache_on::<Heap, _>(&name, size, NoCtor, HeapConfig::default());
        MagPool(Cache::new(slab, CacheConfig::default().register(false)).expect("bench cache"))
    }
}

impl<L: CpuLocal> MagPool<L, NoCtor> {
    /// Objects of `size` bytes, no constructor.
    pub fn new(size: usize) -> Self {
        let slab = slab_cache(&format!("bench-mag-{}-{size}", L::NAME), size, NoCtor);
        MagPool(Cache::new(slab, CacheConfig::default().register(false)).expect("bench cache"))
    }
}

impl<L: CpuLocal> MagPool<L, TableCtor> {
    /// Constructed [`Table`](crate::ctor::Table) objects, kept constructed
    /// in the magazines.
    pub fn constructed() -> Self {
        let slab = slab_cache(
            &format!("bench-mag-{}-ctor", L::NAME),
            CTOR_OBJ_SIZE,
            TableCtor,
        );
        MagPool(Cache::new(slab, CacheConfig::default().register(false)).expect("bench cache"))
    }
}

/// The magazine cache with per-CPU slots.
pub type MagPerCpu<C = NoCtor> = MagPool<PerCpu, C>;
/// The magazine cache with per-thread slots.
pub type MagPerThread<C = NoCtor> = MagPool<PerThread, C>;
/// The magazine cache with one global slot.
pub type MagGlobal<C = NoCtor> = MagPool<Global, C>;
/// [`MagPerCpu`] on the [`Heap`] source.
pub type HeapPerCpu = MagPool<PerCpu, NoCtor, Heap>;
/// [`MagPerThread`] on the [`Heap`] source.
pub type HeapPerThread = MagPool<PerThread, NoCtor, Heap>;
/// [`MagGlobal`] on the [`Heap`] source.
pub type HeapGlobal = MagPool<Global, NoCtor, Heap>;

/// Views the spare capacity of `out` as `n` uninitialised object pointers.
#[inline]
fn spare(out: &mut Vec<Ptr>, n: usize) -> &mut [MaybeUninit<NonNull<u8>>] {
    let spare = &mut out.spare_capacity_mut()[..n];
    // SAFETY: `Ptr` is `repr(transparent)` over `NonNull<u8>`, so
    // `MaybeUninit<Ptr>` and `MaybeUninit<NonNull<u8>>` have one layout;
    // the slice covers exactly the `n` spare elements borrowed above.
    unsafe { core::slice::from_raw_parts_mut(spare.as_mut_ptr().cast(), n) }
}

/// Views `hs` as object pointers.
#[inline]
fn ptrs(hs: &[Ptr]) -> &[NonNull<u8>] {
    // SAFETY: `Ptr` is `repr(transparent)` over `NonNull<u8>`; same length,
    // same borrow.
    unsafe { core::slice::from_raw_parts(hs.as_ptr().cast(), hs.len()) }
}

/// Records `got` objects written into the spare capacity of `out`.
#[inline]
fn commit(out: &mut Vec<Ptr>, got: usize, n: usize) {
    assert_eq!(got, n, "skmem cache exhausted in a benchmark");
    // SAFETY: the cache initialised the first `got` spare elements.
    unsafe { out.set_len(out.len() + got) };
}

impl<C: ObjectCtor> ObjPool for SlabPool<C> {
    type Handle<'a>
        = Ptr
    where
        Self: 'a;

    #[inline]
    fn get(&self) -> Ptr {
        Ptr(self
            .0
            .alloc_with(AllocFlags::NoSleep)
            .expect("skmem slab exhausted"))
    }

    #[inline]
    unsafe fn put(&self, h: Ptr) {
        // SAFETY: the caller guarantees `h` came from this cache, once.
        unsafe { self.0.free(h.0) }
    }

    #[inline]
    fn read(&self, h: &Ptr, word: usize) -> u32 {
        // SAFETY: `h` is a live object of this cache; the read stays inside it.
        unsafe { read_word(h.0, word) }
    }

    #[inline]
    fn get_batch(&self, out: &mut Vec<Ptr>, n: usize) {
        let got = self.0.alloc_batch(spare(out, n), AllocFlags::NoSleep);
        commit(out, got, n);
    }

    #[inline]
    unsafe fn put_batch(&self, hs: &mut Vec<Ptr>) {
        // SAFETY: the caller guarantees every handle came from this cache.
        unsafe { self.0.free_batch(ptrs(hs)) };
        hs.clear();
    }
}

impl<L: CpuLocal, C: ObjectCtor + 'static, S: SegmentSource> ObjPool for MagPool<L, C, S> {
    type Handle<'a>
        = Ptr
    where
        Self: 'a;

    #[inline]
    fn get(&self) -> Ptr {
        Ptr(self.0.alloc().expect("skmem cache exhausted"))
    }

    #[inline]
    unsafe fn put(&self, h: Ptr) {
        // SAFETY: the caller guarantees `h` came from this cache, once, and
        // the workloads never change an object's constructed state.
        unsafe { self.0.free(h.0) }
    }

    #[inline]
    fn read(&self, h: &Ptr, word: usize) -> u32 {
        // SAFETY: `h` is a live object of this cache; the read stays inside it.
        unsafe { read_word(h.0, word) }
    }

    #[inline]
    fn get_batch(&self, out: &mut Vec<Ptr>, n: usize) {
        let got = self.0.alloc_batch(spare(out, n), AllocFlags::NoSleep);
        commit(out, got, n);
    }

    #[inline]
    unsafe fn put_batch(&self, hs: &mut Vec<Ptr>) {
        // SAFETY: as for `put`, for every handle.
        unsafe { self.0.free_batch(ptrs(hs)) };
        hs.clear();
    }
}

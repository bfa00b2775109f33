//! One-call construction of a magazine cache over a slab cache and region.
//!
//! [`Cache::builder`] stacks the three layers a user otherwise stacks by
//! hand (region, slab cache, magazine cache) and computes what the user
//! would compute: the object count of the region, including the worst case
//! the magazines may hold.
//!
//! What `capacity` means is documented on [`CacheBuilder`], where
//! `cargo doc` shows it.
//!
//! # Safety and correctness
//!
//! No unsafe code: the builder only computes parameters and calls the
//! layers' constructors, which validate them (bad input is an
//! [`Error::InvalidParam`] naming the parameter; nothing is allocated
//! before all checks pass, except what the layers themselves release on
//! error by dropping).

use core::any::TypeId;
use core::marker::PhantomData;

use skmem_slab::Heap;
use skmem_slab::{DebugFlags, Region, RegionLayout, RegionParams, SlabCache, SlabConfig};
use skmem_traits::{CpuLocal, Error, Mirror, NoCtor, NoMirror, ObjectCtor, Result, SegmentSource};

use crate::cache::{Cache, CacheConfig};
use crate::ladder::{magazine_max_objs_local, SeedLadder};
use crate::local::PerThread;
use crate::DefaultLocal;

/// The sizing of a region under a magazine cache: the two meanings of
/// "capacity" (see [`CacheBuilder`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    /// At least this many objects usable with every magazine full.
    pub at_least: Option<usize>,
    /// Never more than this many objects in the region.
    pub at_most: Option<usize>,
    /// For [`PerThread`]: how many threads use the cache at once (default:
    /// the hardware parallelism).
    pub threads: Option<usize>,
}

impl Capacity {
    /// The region parameters for objects of `obj_size` bytes under a cache
    /// with locality `L` (`magazines: false`: no allowance), checked: the
    /// layout they give honours both bounds.
    pub fn region_params<L: CpuLocal>(
        &self,
        name: &str,
        obj_size: usize,
        magazines: bool,
    ) -> Result<RegionParams> {
        let count = match (self.at_least, self.at_most) {
            (Some(n), _) => n,
            (None, Some(max)) => max,
            (None, None) => {
                return Err(Error::invalid_param(
                    "capacity",
                    0,
                    "not set: call capacity(n) (a floor) or max_capacity(n) (a ceiling)",
                ))
            }
        };
        let allowance = if magazines {
            // The chunk size does not depend on the count: ask the region.
            let chunk = RegionParams::new(name, obj_size, count)
                .configure()?
                .obj_size;
            magazine_max_objs_local::<SeedLadder, L>(chunk, self.slots::<L>())
        } else {
            0
        };
        let mut params = RegionParams::new(name, obj_size, count).magazine_max_objs(allowance);
        if let Some(max) = self.at_most {
            params = params.max_capacity(max);
        }
        let layout = params.configure()?;
        if let (Some(n), Some(max)) = (self.at_least, self.at_most) {
            if layout.obj_count < n.saturating_add(allowance) {
                return Err(Error::invalid_param(
                    "max_capacity",
                    max as u64,
                    "leaves fewer whole-segment objects than capacity plus the magazine allowance",
                ));
            }
        }
        Ok(params)
    }

    /// The slot count the allowance is computed for.
    pub fn slots<L: CpuLocal>(&self) -> usize {
        match self.threads {
            Some(t) if TypeId::of::<L>() == TypeId::of::<PerThread>() => t.max(1),
            _ => L::slot_hint(),
        }
    }
}

/// Builds a [`Cache`] over a [`SlabCache`] over a [`Region`]; made by
/// [`Cache::builder`].
///
/// # What capacity means
///
/// * [`capacity(n)`](CacheBuilder::capacity) is a **floor**: at least `n`
///   objects can be allocated even while every magazine of the cache is
///   full. The builder adds the magazine allowance, two magazines of the
///   largest size the ladder can reach for this chunk size, per slot, plus
///   the policy's rseq front where it has one (`magazine_max_objs_local`),
///   with the slot count of the locality: the CPU
///   count for [`PerCpu`](crate::PerCpu), one for [`Global`](crate::Global),
///   and for [`PerThread`] the hardware parallelism or the
///   [`threads`](CacheBuilder::threads) hint. The region then rounds up to
///   whole segments, so the real count is usually higher.
/// * [`max_capacity(n)`](CacheBuilder::max_capacity) is a **ceiling**: the
///   region never holds more than `n` objects (whole segments rounded down,
///   see [`RegionParams::max_capacity`]). With both, the ceiling must leave
///   room for the floor plus the allowance, or the build fails naming
///   `max_capacity`.
///
/// Objects resting in the depot are not bounded by the allowance; a region
/// that runs out asks the caches above it to give them back (reap) before
/// failing.
///
#[must_use = "a builder does nothing until `build`"]
pub struct CacheBuilder<
    S: SegmentSource = Heap,
    L: CpuLocal = DefaultLocal,
    C = NoCtor,
    M = NoMirror,
> {
    name: String,
    obj_size: usize,
    align: Option<usize>,
    capacity: Capacity,
    source: S::Config,
    ctor: C,
    mirror: M,
    config: CacheConfig,
    debug: DebugFlags,
    _l: PhantomData<fn() -> L>,
}

impl<S: SegmentSource, L: CpuLocal, C, M> core::fmt::Debug for CacheBuilder<S, L, C, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("name", &self.name)
            .field("obj_size", &self.obj_size)
            .field("align", &self.align)
            .field("capacity", &self.capacity)
            .field("source", &S::NAME)
            .field("locality", &L::NAME)
            .field("config", &self.config)
            .field("debug", &self.debug)
            .finish_non_exhaustive()
    }
}

impl Cache<SlabCache<Heap>, DefaultLocal> {
    /// A builder of a magazine cache of `obj_size`-byte objects named
    /// `name`: heap segments, [`DefaultLocal`] locality, no constructor, no
    /// mirror, until told otherwise.
    ///
    /// ```
    /// let cache = skmem_magazine::Cache::builder("doc", 128).capacity(1024).build()?;
    /// let obj = cache.alloc().expect("memory");
    /// // SAFETY: `obj` came from `cache` and is not used afterwards.
    /// unsafe { cache.free(obj) };
    /// # Ok::<(), skmem_traits::Error>(())
    /// ```
    pub fn builder(name: impl Into<String>, obj_size: usize) -> CacheBuilder {
        CacheBuilder {
            name: name.into(),
            obj_size,
            align: None,
            capacity: Capacity::default(),
            source: Default::default(),
            ctor: NoCtor,
            mirror: NoMirror,
            config: CacheConfig::default(),
            debug: skmem_slab::debug::env_flags(),
            _l: PhantomData,
        }
    }
}

impl<S: SegmentSource, L: CpuLocal, C: ObjectCtor + 'static, M> CacheBuilder<S, L, C, M> {
    /// At least `n` objects usable even with every magazine full (a floor).
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity.at_least = Some(n);
        self
    }

    /// Never more than `n` objects in the region (a ceiling).
    pub fn max_capacity(mut self, n: usize) -> Self {
        self.capacity.at_most = Some(n);
        self
    }

    /// How many threads use a [`PerThread`] cache at once (sizes the
    /// magazine allowance; ignored by other localities, whose slot count is
    /// fixed).
    pub fn threads(mut self, n: usize) -> Self {
        self.capacity.threads = Some(n);
        self
    }

    /// Object alignment (a power of two, at most a cache line).
    pub fn align(mut self, align: usize) -> Self {
        self.align = Some(align);
        self
    }

    /// Debug checks of the cache (see `skmem_slab::debug`), replacing the
    /// process-wide `SKMEM_DEBUG` flags. With
    /// [`GUARDS`](DebugFlags::GUARDS) the region's object stride grows by
    /// the redzone.
    pub fn debug(mut self, flags: DebugFlags) -> Self {
        self.debug = flags;
        self
    }

    /// The magazine cache's behaviour (dynamic sizing, no magazines, ...).
    pub fn config(mut self, config: CacheConfig) -> Self {
        self.config = config;
        self
    }

    /// Segments from source `S2`, opened with `config`.
    pub fn source<S2: SegmentSource>(self, config: S2::Config) -> CacheBuilder<S2, L, C, M> {
        CacheBuilder {
            name: self.name,
            obj_size: self.obj_size,
            align: self.align,
            capacity: self.capacity,
            source: config,
            ctor: self.ctor,
            mirror: self.mirror,
            config: self.config,
            debug: self.debug,
            _l: PhantomData,
        }
    }

    /// Magazine locality `L2` instead of [`DefaultLocal`].
    pub fn locality<L2: CpuLocal>(self) -> CacheBuilder<S, L2, C, M> {
        CacheBuilder {
            name: self.name,
            obj_size: self.obj_size,
            align: self.align,
            capacity: self.capacity,
            source: self.source,
            ctor: self.ctor,
            mirror: self.mirror,
            config: self.config,
            debug: self.debug,
            _l: PhantomData,
        }
    }

    /// Objects constructed by `ctor` on their way up from the slab layer.
    pub fn ctor<C2: ObjectCtor>(self, ctor: C2) -> CacheBuilder<S, L, C2, M> {
        CacheBuilder {
            name: self.name,
            obj_size: self.obj_size,
            align: self.align,
            capacity: self.capacity,
            source: self.source,
            ctor,
            mirror: self.mirror,
            config: self.config,
            debug: self.debug,
            _l: PhantomData,
        }
    }

    /// A shadow region driven segment for segment by the cache's region,
    /// made by `make` from the computed layout (a shadow must have the same
    /// segment size and at least as many segments, which only the layout
    /// tells).
    pub fn mirror<M2, F2>(self, make: F2) -> CacheBuilder<S, L, C, MirrorWith<F2>>
    where
        M2: Mirror + 'static,
        F2: FnOnce(&RegionLayout) -> Result<M2>,
    {
        CacheBuilder {
            name: self.name,
            obj_size: self.obj_size,
            align: self.align,
            capacity: self.capacity,
            source: self.source,
            ctor: self.ctor,
            mirror: MirrorWith(make),
            config: self.config,
            debug: self.debug,
            _l: PhantomData,
        }
    }

    /// The region parameters `build` will use (sizes computed, checked).
    pub fn region_params(&self) -> Result<RegionParams> {
        let stride = skmem_slab::debug::region_obj_size(self.obj_size, self.debug);
        self.capacity
            .region_params::<L>(&self.name, stride, !self.config.no_magazines)
    }

    /// Stacks the region (with the mirror `mirror` makes from the layout),
    /// the slab cache and the magazine cache.
    fn stack<M2: Mirror + 'static>(
        self,
        params: RegionParams,
        mirror: impl FnOnce(M, &RegionLayout) -> Result<M2>,
    ) -> Result<Cache<SlabCache<S, C, M2>, L>> {
        let layout = params.configure()?;
        let mirror = mirror(self.mirror, &layout)?;
        let region = Region::<S, M2>::with_mirror(params, self.source, mirror)?;
        let mut slab = SlabConfig::new(self.name, self.obj_size).debug(self.debug);
        if let Some(align) = self.align {
            slab = slab.align(align);
        }
        Cache::new(SlabCache::new(region, slab, self.ctor)?, self.config)
    }
}

impl<S: SegmentSource, L: CpuLocal, C: ObjectCtor + 'static> CacheBuilder<S, L, C, NoMirror> {
    /// Stacks the region, the slab cache and the magazine cache.
    pub fn build(self) -> Result<Cache<SlabCache<S, C>, L>> {
        let params = self.region_params()?;
        self.stack(params, |m, _| Ok(m))
    }
}

impl<S, L, C, M2, F2> CacheBuilder<S, L, C, MirrorWith<F2>>
where
    S: SegmentSource,
    L: CpuLocal,
    C: ObjectCtor + 'static,
    M2: Mirror + 'static,
    F2: FnOnce(&RegionLayout) -> Result<M2>,
{
    /// Stacks the region (with the shadow made for its layout), the slab
    /// cache and the magazine cache.
    pub fn build(self) -> Result<Cache<SlabCache<S, C, M2>, L>> {
        let params = self.region_params()?;
        self.stack(params, |MirrorWith(make), layout| make(layout))
    }
}

/// A shadow-region maker handed to [`CacheBuilder::mirror`].
#[derive(Debug)]
pub struct MirrorWith<F>(F);

//! A typed cache of constructed `T`s and its RAII box.
//!
//! [`TypedCache<T, F>`] stacks a region, a slab cache whose constructor is
//! `F` (a closure building a `T`, or `T::default`) and a magazine cache.
//! [`CachedBox`] owns one constructed `T` and, when dropped, gives it back
//! *constructed*: `T`'s destructor runs only when the object later returns
//! to the slab layer (purge, reap, or the cache's drop). That is the
//! difference from `Box<T, A>`: a `Vec` inside a `T` keeps its capacity
//! across uses, a mutex stays initialised, and so on.
//!
//! # Safety and correctness
//!
//! * Objects of a `TypedCache` are only reachable through `CachedBox`, which
//!   exposes `&T` / `&mut T`, so an object always holds a valid `T` between
//!   construction and destruction; the slab's destructor (`drop_in_place`)
//!   relies on it.
//! * `T: Send` is required: an object built on one thread may be dropped on
//!   another (by a purge there). `CachedBox<T>` is `Send` like `Box<T>`
//!   (given `T: Send`) and `Sync` when `T: Sync`.
//! * A panic in the constructor closure is caught inside the slab layer
//!   (whose locks must not unwind), reported as a failed construction, and
//!   resumed in the caller of `alloc`. A panic in `T::drop` is caught and
//!   logged; the object's memory goes back regardless.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use skmem_slab::Heap;
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::stats::CacheStats;
use skmem_traits::{
    AllocFlags, CpuLocal, Error, ObjectCtor, ObjectInfo, Result, SegmentSource, CACHE_LINE_SIZE,
};

use crate::builder::Capacity;
use crate::cache::{Cache, CacheConfig};
use crate::DefaultLocal;

crate::sync::thread_locals! {
    static CTOR_PANIC: Cell<Option<Box<dyn Any + Send>>> = const { Cell::new(None) };
}

/// The slab constructor of a [`TypedCache`]: builds a `T` with `F`,
/// drops it in place on destruction.
pub struct TypedCtor<T, F> {
    make: F,
    _t: PhantomData<fn() -> T>,
}

impl<T, F> fmt::Debug for TypedCtor<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCtor")
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Send + 'static, F: Fn() -> T + Send + Sync> ObjectCtor for TypedCtor<T, F> {
    fn construct(&self, obj: ObjectInfo, _: Option<ObjectInfo>, _: AllocFlags) -> Result<()> {
        match catch_unwind(AssertUnwindSafe(|| (self.make)())) {
            Ok(value) => {
                debug_assert!(
                    obj.size >= size_of::<T>() && obj.addr.as_ptr().cast::<T>().is_aligned()
                );
                // SAFETY: the constructor owns `obj.size >= size_of::<T>()`
                // bytes at `obj.addr`, aligned for `T` (the slab was made with
                // `T`'s size and alignment in `TypedCache::with_source`).
                unsafe { obj.addr.as_ptr().cast::<T>().write(value) };
                Ok(())
            }
            Err(payload) => {
                CTOR_PANIC.with(|p| p.set(Some(payload)));
                Err(Error::CtorFailed {
                    name: std::any::type_name::<T>().to_owned(),
                })
            }
        }
    }

    fn destruct(&self, obj: ObjectInfo, _: Option<ObjectInfo>) {
        // SAFETY: `construct` wrote a `T` here, and a typed cache's objects
        // hold a valid `T` until now (module invariants).
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe {
            obj.addr.as_ptr().cast::<T>().drop_in_place()
        }));
        if dropped.is_err() {
            tracing::error!(
                ty = std::any::type_name::<T>(),
                "a cached object's destructor panicked"
            );
        }
    }
}

/// The magazine cache under a [`TypedCache`].
pub type TypedInner<T, F, S, L> = Cache<SlabCache<S, TypedCtor<T, F>>, L>;

/// The reset hook of a [`TypedCache`]: runs on every object given back,
/// before it re-enters a magazine.
type ResetFn<T> = Arc<dyn Fn(&mut T) + Send + Sync>;

/// A cache of constructed `T`s (see the module docs), on segment source `S`
/// (default: the heap) with locality `L` (default: [`DefaultLocal`]).
///
/// A `TypedCache` is a handle: `clone` shares the same cache (the last
/// handle dropped tears it down), and an [`OwnedBox`] holds one.
pub struct TypedCache<T, F = fn() -> T, S: SegmentSource = Heap, L: CpuLocal = DefaultLocal>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
{
    cache: TypedInner<T, F, S, L>,
    reset: Option<ResetFn<T>>,
}

impl<T, F, S, L> Clone for TypedCache<T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    fn clone(&self) -> Self {
        TypedCache {
            cache: self.cache.clone(),
            reset: self.reset.clone(),
        }
    }
}

impl<T, F, S, L> fmt::Debug for TypedCache<T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCache")
            .field("cache", &self.cache)
            .field("reset", &self.reset.is_some())
            .finish()
    }
}

impl<T, S, L> TypedCache<T, fn() -> T, S, L>
where
    T: Default + Send + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    /// A cache of up to `capacity` objects (plus what the magazines may
    /// hold), built with `T::default()`.
    pub fn new(name: impl Into<String>, capacity: usize) -> Result<Self> {
        Self::with_ctor(name, capacity, T::default)
    }
}

impl<T, F, S, L> TypedCache<T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    /// A cache of up to `capacity` objects built by `make`.
    pub fn with_ctor(name: impl Into<String>, capacity: usize, make: F) -> Result<Self> {
        Self::with_source(
            name,
            capacity,
            make,
            S::Config::default(),
            CacheConfig::default(),
        )
    }

    /// Full control: the source's configuration and the cache's.
    pub fn with_source(
        name: impl Into<String>,
        capacity: usize,
        make: F,
        source: S::Config,
        config: CacheConfig,
    ) -> Result<Self> {
        let name = name.into();
        let sizing = Capacity {
            at_least: Some(capacity),
            ..Capacity::default()
        };
        Self::stack(name, sizing, make, source, config, None)
    }

    /// The region, slab cache and magazine cache of a typed cache sized by
    /// `sizing`.
    fn stack(
        name: String,
        sizing: Capacity,
        make: F,
        source: S::Config,
        config: CacheConfig,
        reset: Option<ResetFn<T>>,
    ) -> Result<Self> {
        let size = size_of::<T>().max(1);
        let align = align_of::<T>();
        if align > CACHE_LINE_SIZE {
            return Err(Error::invalid_param(
                "align_of::<T>()",
                align as u64,
                "larger than a cache line",
            ));
        }
        // The process-wide debug flags; with guards the stride grows by the
        // redzone.
        let stride = skmem_slab::debug::region_obj_size(size, skmem_slab::debug::env_flags());
        let params: RegionParams =
            sizing.region_params::<L>(&name, stride, !config.no_magazines)?;
        let region = Region::<S>::new(params, source)?;
        let slab = SlabCache::new(
            region,
            SlabConfig::new(name, size).align(align),
            TypedCtor {
                make,
                _t: PhantomData,
            },
        )?;
        Ok(TypedCache {
            cache: Cache::new(slab, config)?,
            reset,
        })
    }

    /// A constructed object, without waiting for memory; `None` when the
    /// cache is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<CachedBox<'_, T, F, S, L>> {
        match self.cache.alloc() {
            Some(p) => Some(CachedBox {
                ptr: p.cast(),
                cache: self,
            }),
            None => {
                Self::resume_ctor_panic();
                None
            }
        }
    }

    /// A constructed object; the error says why there was none. A panic in
    /// the constructor is resumed here.
    pub fn alloc_with(&self, flags: AllocFlags) -> Result<CachedBox<'_, T, F, S, L>> {
        match self.cache.alloc_with(flags) {
            Ok(p) => Ok(CachedBox {
                ptr: p.cast(),
                cache: self,
            }),
            Err(e) => {
                Self::resume_ctor_panic();
                Err(e)
            }
        }
    }

    /// A constructed object in a box that owns a handle to this cache, so it
    /// can outlive the borrow and cross threads; `None` when the cache is
    /// exhausted.
    #[inline]
    pub fn alloc_owned(&self) -> Option<OwnedBox<T, F, S, L>> {
        match self.cache.alloc() {
            Some(p) => Some(OwnedBox {
                ptr: p.cast(),
                cache: self.clone(),
            }),
            None => {
                Self::resume_ctor_panic();
                None
            }
        }
    }

    /// [`alloc_owned`](Self::alloc_owned) with flags; the error says why
    /// there was no object.
    pub fn alloc_owned_with(&self, flags: AllocFlags) -> Result<OwnedBox<T, F, S, L>> {
        match self.cache.alloc_with(flags) {
            Ok(p) => Ok(OwnedBox {
                ptr: p.cast(),
                cache: self.clone(),
            }),
            Err(e) => {
                Self::resume_ctor_panic();
                Err(e)
            }
        }
    }

    /// Gives an object back: runs the reset hook, then frees it into the
    /// magazines. A panicking hook leaves the object in an unknown state,
    /// so it is destructed and its memory returned (`free_nocache`) before
    /// the panic goes on (or is logged, when already unwinding).
    ///
    /// # Safety
    ///
    /// `ptr` is a constructed object of this cache, owned by the caller and
    /// not used afterwards.
    #[inline]
    unsafe fn give_back(&self, ptr: NonNull<T>) {
        if let Some(reset) = &self.reset {
            // SAFETY: the caller owns the constructed `T` exclusively.
            let obj = unsafe { &mut *ptr.as_ptr() };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| reset(obj))) {
                // SAFETY: as above; the object is freed exactly once, here.
                unsafe { self.cache.free_nocache(ptr.cast()) };
                if std::thread::panicking() {
                    tracing::error!(
                        ty = std::any::type_name::<T>(),
                        "a reset hook panicked during unwinding; the object was destructed"
                    );
                    return;
                }
                resume_unwind(payload);
            }
        }
        // SAFETY: the caller's contract; the object is a valid `T`.
        unsafe { self.cache.free(ptr.cast()) }
    }

    #[cold]
    fn resume_ctor_panic() {
        if let Some(payload) = CTOR_PANIC.with(Cell::take) {
            resume_unwind(payload);
        }
    }

    /// The magazine cache beneath.
    pub fn cache(&self) -> &TypedInner<T, F, S, L> {
        &self.cache
    }

    /// The region beneath.
    pub fn region(&self) -> &Arc<Region<S>> {
        self.cache.layer().region()
    }

    /// Statistics.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }
}

/// One constructed `T` from a [`TypedCache`]; dropping it gives the object
/// back to the cache, still constructed.
pub struct CachedBox<'c, T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    ptr: NonNull<T>,
    cache: &'c TypedCache<T, F, S, L>,
}

// SAFETY: a `CachedBox` owns its `T` exclusively (like `Box<T>`), and the
// cache reference is `Sync` (a `TypedCache` is shared by design); moving the
// box moves the `T`.
unsafe impl<T, F, S, L> Send for CachedBox<'_, T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
}

// SAFETY: `&CachedBox` only gives `&T`, which is shareable when `T: Sync`.
unsafe impl<T, F, S, L> Sync for CachedBox<'_, T, F, S, L>
where
    T: Send + Sync + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
}

impl<'c, T, F, S, L> CachedBox<'c, T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    /// The object's address.
    pub fn as_ptr(this: &Self) -> *mut T {
        this.ptr.as_ptr()
    }

    /// Gives the object back to the slab layer right away (destructing it),
    /// bypassing the magazines.
    pub fn free_nocache(this: Self) {
        let me = core::mem::ManuallyDrop::new(this);
        // SAFETY: the box owns a constructed object of `me.cache`, forgotten
        // here so it is freed exactly once.
        unsafe { me.cache.cache.free_nocache(me.ptr.cast()) }
    }

    /// Leaks the box, returning the object's address; give it back with
    /// [`from_raw`](Self::from_raw).
    pub fn into_raw(this: Self) -> NonNull<T> {
        core::mem::ManuallyDrop::new(this).ptr
    }

    /// Rebuilds a box from [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    ///
    /// `ptr` came from `into_raw` on a box of this same `cache`, and is not
    /// owned by another box.
    pub unsafe fn from_raw(cache: &'c TypedCache<T, F, S, L>, ptr: NonNull<T>) -> Self {
        CachedBox { ptr, cache }
    }
}

impl<T, F, S, L> Deref for CachedBox<'_, T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the box owns a constructed `T` (module invariants).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T, F, S, L> DerefMut for CachedBox<'_, T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T, F, S, L> fmt::Debug for CachedBox<'_, T, F, S, L>
where
    T: Send + fmt::Debug + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T, F, S, L> Drop for CachedBox<'_, T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the box owns a constructed object of this cache and is
        // going away; the object stays a valid `T`.
        unsafe { self.cache.give_back(self.ptr) }
    }
}

/// One constructed `T` from a [`TypedCache`], holding its own handle to the
/// cache: it can be stored anywhere and moved into `thread::spawn`.
/// Dropping it runs the cache's reset hook and gives the object back,
/// still constructed, on whichever thread drops it.
pub struct OwnedBox<T, F = fn() -> T, S = Heap, L = DefaultLocal>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    ptr: NonNull<T>,
    cache: TypedCache<T, F, S, L>,
}

// SAFETY: the box owns its `T` exclusively (like `Box<T>`), so moving it
// moves the `T` (`T: Send`); its cache handle is an `Arc` of a cache that is
// shared by design (`TypedCache: Send`), and freeing into it from any thread
// is allowed (objects are fungible; the freeing thread's slot takes it).
unsafe impl<T, F, S, L> Send for OwnedBox<T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
    TypedCache<T, F, S, L>: Send,
{
}

// SAFETY: `&OwnedBox` only gives `&T` and `&TypedCache`.
unsafe impl<T, F, S, L> Sync for OwnedBox<T, F, S, L>
where
    T: Send + Sync + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
    TypedCache<T, F, S, L>: Sync,
{
}

impl<T, F, S, L> OwnedBox<T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    /// The cache the object belongs to.
    pub fn cache(this: &Self) -> &TypedCache<T, F, S, L> {
        &this.cache
    }

    /// The object's address.
    pub fn as_ptr(this: &Self) -> *mut T {
        this.ptr.as_ptr()
    }

    /// Gives the object back to the slab layer right away (destructing it),
    /// bypassing the reset hook and the magazines.
    pub fn free_nocache(this: Self) {
        let me = core::mem::ManuallyDrop::new(this);
        // SAFETY: the box owns a constructed object of `me.cache`, forgotten
        // here so it is freed exactly once.
        unsafe { me.cache.cache.free_nocache(me.ptr.cast()) };
        // SAFETY: `me` is not used again; its cache handle is dropped once.
        drop(unsafe { core::ptr::read(&me.cache) });
    }
}

impl<T, F, S, L> Deref for OwnedBox<T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the box owns a constructed `T` (module invariants).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T, F, S, L> DerefMut for OwnedBox<T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T, F, S, L> fmt::Debug for OwnedBox<T, F, S, L>
where
    T: Send + fmt::Debug + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T, F, S, L> Drop for OwnedBox<T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the box owns a constructed object of this cache and is
        // going away; the cache handle it holds keeps the cache alive
        // through the free.
        unsafe { self.cache.give_back(self.ptr) }
    }
}

/// Builds a [`TypedCache`]: [`TypedCache::builder`] (for `T: Default`) or
/// [`TypedCache::builder_ctor`].
#[must_use = "a builder does nothing until `build`"]
pub struct TypedCacheBuilder<T, F = fn() -> T, S: SegmentSource = Heap, L = DefaultLocal> {
    name: String,
    sizing: Capacity,
    make: F,
    source: S::Config,
    config: CacheConfig,
    reset: Option<ResetFn<T>>,
    _l: PhantomData<fn() -> L>,
}

impl<T, F, S: SegmentSource, L: CpuLocal> fmt::Debug for TypedCacheBuilder<T, F, S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCacheBuilder")
            .field("name", &self.name)
            .field("type", &std::any::type_name::<T>())
            .field("sizing", &self.sizing)
            .field("source", &S::NAME)
            .field("locality", &L::NAME)
            .field("reset", &self.reset.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Default + Send + 'static> TypedCache<T> {
    /// A builder of a cache of `T`s made by `T::default()`, on the heap,
    /// with the [`DefaultLocal`] locality.
    ///
    /// ```
    /// use skmem_magazine::TypedCache;
    /// let cache = TypedCache::<Vec<u8>>::builder("bufs")
    ///     .capacity(64)
    ///     .reset(|v: &mut Vec<u8>| v.clear())
    ///     .build()?;
    /// let mut buf = cache.alloc_owned().expect("memory");
    /// buf.extend_from_slice(b"hello");
    /// std::thread::spawn(move || drop(buf)).join().unwrap();
    /// assert!(cache.alloc().expect("memory").is_empty(), "reset on free");
    /// # Ok::<(), skmem_traits::Error>(())
    /// ```
    pub fn builder(name: impl Into<String>) -> TypedCacheBuilder<T> {
        TypedCache::builder_ctor(name, T::default)
    }
}

impl<T: Send + 'static> TypedCache<T> {
    /// A builder of a cache of `T`s made by `make`.
    pub fn builder_ctor<F: Fn() -> T + Send + Sync + 'static>(
        name: impl Into<String>,
        make: F,
    ) -> TypedCacheBuilder<T, F> {
        TypedCacheBuilder {
            name: name.into(),
            sizing: Capacity::default(),
            make,
            source: Default::default(),
            config: CacheConfig::default(),
            reset: None,
            _l: PhantomData,
        }
    }
}

impl<T, F, S, L> TypedCacheBuilder<T, F, S, L>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
    S: SegmentSource,
    L: CpuLocal,
{
    /// At least `n` objects usable even with every magazine full (see
    /// [`CacheBuilder::capacity`](crate::CacheBuilder::capacity)).
    pub fn capacity(mut self, n: usize) -> Self {
        self.sizing.at_least = Some(n);
        self
    }

    /// Never more than `n` objects (see
    /// [`CacheBuilder::max_capacity`](crate::CacheBuilder::max_capacity)).
    pub fn max_capacity(mut self, n: usize) -> Self {
        self.sizing.at_most = Some(n);
        self
    }

    /// How many threads use a [`PerThread`](crate::PerThread) cache at once.
    pub fn threads(mut self, n: usize) -> Self {
        self.sizing.threads = Some(n);
        self
    }

    /// The magazine cache's behaviour.
    pub fn config(mut self, config: CacheConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs `reset` on every object given back (box dropped), before it
    /// re-enters a magazine: the next user gets a constructed *and* reset
    /// `T`. Not run on objects destructed instead (`free_nocache`, purge).
    pub fn reset(mut self, reset: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.reset = Some(Arc::new(reset));
        self
    }

    /// Objects made by `make` instead.
    pub fn ctor<F2: Fn() -> T + Send + Sync + 'static>(
        self,
        make: F2,
    ) -> TypedCacheBuilder<T, F2, S, L> {
        TypedCacheBuilder {
            name: self.name,
            sizing: self.sizing,
            make,
            source: self.source,
            config: self.config,
            reset: self.reset,
            _l: PhantomData,
        }
    }

    /// Segments from source `S2`, opened with `config`.
    pub fn source<S2: SegmentSource>(self, config: S2::Config) -> TypedCacheBuilder<T, F, S2, L> {
        TypedCacheBuilder {
            name: self.name,
            sizing: self.sizing,
            make: self.make,
            source: config,
            config: self.config,
            reset: self.reset,
            _l: PhantomData,
        }
    }

    /// Magazine locality `L2`.
    pub fn locality<L2: CpuLocal>(self) -> TypedCacheBuilder<T, F, S, L2> {
        TypedCacheBuilder {
            name: self.name,
            sizing: self.sizing,
            make: self.make,
            source: self.source,
            config: self.config,
            reset: self.reset,
            _l: PhantomData,
        }
    }

    /// Stacks the region, the slab cache and the magazine cache.
    pub fn build(self) -> Result<TypedCache<T, F, S, L>> {
        TypedCache::stack(
            self.name,
            self.sizing,
            self.make,
            self.source,
            self.config,
            self.reset,
        )
    }
}

//! Test doubles for skmem's layers; not published.
//!
//! [`HeapObjects`] is an [`ObjectLayer`] on the global allocator: one
//! allocation per object, an optional constructor, an optional limit on
//! live objects, and a live set that turns a double or foreign free into a
//! panic naming the address. It lets the magazine layer's tests, examples,
//! Miri runs and loom models run without regions, and it counts what the
//! slab layer counts. It is a dev-dependency only, so it is no part of any
//! library's public API.
//!
//! # Invariants
//!
//! * An address is in the live set exactly while the object is out of the
//!   layer: inserted after construction, removed before destruction.
//! * Every object is a global-allocator block of `layout`; it goes back
//!   with the same layout, also when its destructor panics.
//!
//! Under `--cfg loom` the live set's lock is loom's, so the loom models
//! see the synchronisation every alloc and free goes through.

use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::collections::HashSet;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use skmem_magazine::{ObjectLayer, RawObjects};
use skmem_traits::stats::SlabStats;
use skmem_traits::{AllocFlags, Error, NoCtor, ObjectCtor, ObjectInfo, Result};

use sync::Mutex;

/// The live set's lock: `parking_lot`, or loom's under `--cfg loom`.
mod sync {
    /// A mutual-exclusion lock.
    #[cfg(not(loom))]
    #[derive(Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    #[cfg(not(loom))]
    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, T> {
            self.0.lock()
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut()
        }
    }

    /// A mutual-exclusion lock (loom).
    #[cfg(loom)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    #[cfg(loom)]
    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().expect("loom mutex poisoned")
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().expect("loom mutex poisoned")
        }
    }
}

/// An [`ObjectLayer`] on the global allocator (see the crate docs).
pub struct HeapObjects<C: ObjectCtor = NoCtor> {
    name: String,
    layout: Layout,
    ctor: C,
    limit: usize,
    state: Mutex<HeapState>,
    ctors: AtomicU64,
    dtors: AtomicU64,
    reclaims: AtomicU64,
}

/// An object address, as a key (never dereferenced).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Addr(*const u8);

// SAFETY: the address is only compared and hashed, never dereferenced.
unsafe impl Send for Addr {}

#[derive(Default)]
struct HeapState {
    live: HashSet<Addr>,
    alloc: u64,
    free: u64,
    fail: u64,
    next_index: u32,
}

impl<C: ObjectCtor> core::fmt::Debug for HeapObjects<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapObjects")
            .field("name", &self.name)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl HeapObjects<NoCtor> {
    /// Objects of `size` bytes aligned to `align`, without a constructor.
    pub fn new(name: impl Into<String>, size: usize, align: usize) -> Result<Self> {
        Self::with_ctor(name, size, align, NoCtor)
    }
}

impl<C: ObjectCtor> HeapObjects<C> {
    /// Objects of `size` bytes aligned to `align`, built by `ctor`.
    pub fn with_ctor(name: impl Into<String>, size: usize, align: usize, ctor: C) -> Result<Self> {
        if size == 0 {
            return Err(Error::invalid_param(
                "size",
                0,
                "objects must have at least one byte",
            ));
        }
        let layout = Layout::from_size_align(size, align).map_err(|_| {
            Error::invalid_param(
                "align",
                align as u64,
                "must be a power of two and keep size in range",
            )
        })?;
        Ok(HeapObjects {
            name: name.into(),
            layout,
            ctor,
            limit: usize::MAX,
            state: Mutex::new(HeapState::default()),
            ctors: AtomicU64::new(0),
            dtors: AtomicU64::new(0),
            reclaims: AtomicU64::new(0),
        })
    }

    /// Caps the number of objects out at once; further allocations fail
    /// with [`Error::Exhausted`].
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The constructor.
    pub fn ctor(&self) -> &C {
        &self.ctor
    }

    /// Objects currently out of this layer (in caches or with users).
    pub fn live(&self) -> usize {
        self.state.lock().live.len()
    }

    /// Whether `obj` is currently out of this layer.
    pub fn is_live(&self, obj: *const u8) -> bool {
        self.state.lock().live.contains(&Addr(obj))
    }

    /// Times the owner's reclaim callback ran.
    pub fn reclaims(&self) -> u64 {
        self.reclaims.load(Ordering::Relaxed)
    }

    fn alloc_one(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        let index = {
            let mut st = self.state.lock();
            if st.live.len() >= self.limit {
                st.fail += 1;
                return Err(Error::Exhausted {
                    name: self.name.clone(),
                    capacity: self.limit as u64,
                    unit: "objects",
                });
            }
            st.next_index = st.next_index.wrapping_add(1);
            st.next_index
        };
        // SAFETY: the layout has a non-zero size (checked in `with_ctor`).
        let raw = unsafe { std::alloc::alloc(self.layout) };
        let Some(obj) = NonNull::new(raw) else {
            self.state.lock().fail += 1;
            return Err(Error::Exhausted {
                name: self.name.clone(),
                capacity: self.limit as u64,
                unit: "objects",
            });
        };
        if C::ACTIVE {
            let info = self.info(obj, index);
            if let Err(e) = self.ctor.construct(info, None, flags) {
                // SAFETY: `obj` was allocated above with `self.layout`.
                unsafe { std::alloc::dealloc(obj.as_ptr(), self.layout) };
                self.state.lock().fail += 1;
                return Err(e);
            }
            self.ctors.fetch_add(1, Ordering::Relaxed);
        }
        let mut st = self.state.lock();
        assert!(
            st.live.insert(Addr(obj.as_ptr())),
            "{}: allocator returned live {:p}",
            self.name,
            obj
        );
        st.alloc += 1;
        Ok(obj)
    }

    fn info(&self, obj: NonNull<u8>, index: u32) -> ObjectInfo {
        ObjectInfo {
            addr: obj,
            size: self.layout.size(),
            index_in_region: index,
            segment_index: 0,
            index_in_segment: index,
        }
    }
}

// SAFETY: every object is a fresh global-allocator block of `layout`
// (size `obj_size`, alignment `obj_align`), constructed before it is
// returned and recorded in the live set; `free` refuses (panics on) any
// address not in the live set, destructs, and deallocates with the same
// layout; chunk size equals the object size; the state is behind a mutex.
unsafe impl<C: ObjectCtor + 'static> ObjectLayer for HeapObjects<C> {
    fn name(&self) -> &str {
        &self.name
    }
    fn obj_size(&self) -> usize {
        self.layout.size()
    }
    fn obj_align(&self) -> usize {
        self.layout.align()
    }
    fn chunk_size(&self) -> usize {
        self.layout.size()
    }
    fn alloc_with(&self, flags: AllocFlags) -> Result<NonNull<u8>> {
        self.alloc_one(flags)
    }
    fn alloc_batch(&self, out: &mut [MaybeUninit<NonNull<u8>>], flags: AllocFlags) -> usize {
        let mut n = 0;
        for slot in out.iter_mut() {
            match self.alloc_one(if n == 0 { flags } else { AllocFlags::NoSleep }) {
                Ok(obj) => {
                    slot.write(obj);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        n
    }
    unsafe fn free(&self, obj: NonNull<u8>) {
        {
            let mut st = self.state.lock();
            if !st.live.remove(&Addr(obj.as_ptr())) {
                drop(st);
                panic!(
                    "{}: free of {:p}, which is not an object allocated from it",
                    self.name, obj
                );
            }
            st.free += 1;
        }
        let mut dtor = Ok(());
        if C::ACTIVE {
            // Caught so that the memory still goes back (as the slab layer
            // does); resumed below.
            dtor = catch_unwind(AssertUnwindSafe(|| {
                self.ctor.destruct(self.info(obj, 0), None)
            }));
            self.dtors.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `obj` was in the live set, so it came from `alloc_one`
        // with `self.layout`, and the caller gave it up.
        unsafe { std::alloc::dealloc(obj.as_ptr(), self.layout) };
        if let Err(payload) = dtor {
            resume_unwind(payload);
        }
    }
    unsafe fn free_batch(&self, objs: &[NonNull<u8>]) {
        // Every object goes back even when a destructor panics; the first
        // panic is resumed at the end.
        let mut dtor_panic = None;
        for &obj in objs {
            // SAFETY: forwarded from the caller, element by element.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| unsafe { self.free(obj) })) {
                dtor_panic.get_or_insert(payload);
            }
        }
        if let Some(payload) = dtor_panic {
            resume_unwind(payload);
        }
    }
    fn reap(&self) {}
    fn reclaim(&self) {
        self.reclaims.fetch_add(1, Ordering::Relaxed);
        self.ctor.reclaim();
    }
    fn stats(&self) -> SlabStats {
        let st = self.state.lock();
        SlabStats {
            name: self.name.clone(),
            objsize: self.layout.size() as u64,
            objalign: self.layout.align() as u64,
            chunksize: self.layout.size() as u64,
            sl_alloc: st.alloc,
            sl_free: st.free,
            sl_alloc_fail: st.fail,
            sl_bufinuse: st.live.len() as u64,
            ctor: self.ctors.load(Ordering::Relaxed),
            dtor: self.dtors.load(Ordering::Relaxed),
            ..SlabStats::default()
        }
    }
}

// SAFETY: `NoCtor` has no destructor; every object is a private block of
// the global allocator.
unsafe impl RawObjects for HeapObjects<NoCtor> {
    fn check_plain_memory(&self) -> Result<()> {
        Ok(())
    }
}

impl<C: ObjectCtor> Drop for HeapObjects<C> {
    fn drop(&mut self) {
        // Objects still out were leaked by their users (the live set keeps
        // addresses only, so their memory cannot be given back): report it.
        let live = self.state.get_mut().live.len();
        if live != 0 {
            tracing::warn!(layer = %self.name, objects = live, "dropping HeapObjects with objects still out");
        }
    }
}

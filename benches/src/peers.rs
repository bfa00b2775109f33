//! The peers skmem is measured against, each wrapped as an [`ObjPool`].
//!
//! * [`Malloc`]: any [`GlobalAlloc`] called *directly* with a fixed layout —
//!   [`System`](std::alloc::System) (glibc malloc on Linux),
//!   [`MiMalloc`](mimalloc::MiMalloc), [`Jemalloc`](tikv_jemallocator::Jemalloc).
//!   None of them is the bench binary's `#[global_allocator]`.
//! * [`ShardedPool`]: `sharded_slab::Pool`, objects reached through keys.
//! * [`LockfreePool`]: `lockfree_object_pool::LinearObjectPool`, objects
//!   reached through RAII guards.
//! * [`VecStack`]: a `Vec` of free pointers into one preallocated buffer, as
//!   ixy.rs's `Mempool` does (single thread, `RefCell`);
//!   [`MutexVecStack`] is the same behind a `Mutex`, for the two-thread
//!   workload.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::RefCell;
use core::ptr::NonNull;
use std::alloc::handle_alloc_error;
use std::sync::Mutex;

use crate::ctor::{self, Table, CTOR_OBJ_SIZE};
use crate::{read_word, ObjPool, Ptr};

/// Objects whose `u32` words the workloads can read.
pub trait Words {
    /// The `i`-th word.
    fn word(&self, i: usize) -> u32;
}

impl Words for Table {
    #[inline]
    fn word(&self, i: usize) -> u32 {
        self.words[i]
    }
}

/// A plain object of `W` words (`4 * W` bytes) for the pools that store
/// values: `Blob<16>` is 64 B, `Blob<64>` is 256 B.
#[repr(C, align(8))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob<const W: usize>(pub [u32; W]);

impl<const W: usize> Default for Blob<W> {
    #[inline]
    fn default() -> Self {
        Blob([0; W])
    }
}

impl<const W: usize> sharded_slab::Clear for Blob<W> {
    /// Pooled blobs keep their contents, as pooled buffers do.
    #[inline]
    fn clear(&mut self) {}
}

impl<const W: usize> Words for Blob<W> {
    #[inline]
    fn word(&self, i: usize) -> u32 {
        self.0[i]
    }
}

/// A general-purpose allocator called through [`GlobalAlloc`] with one
/// fixed layout. With `CONSTRUCT`, every `get` also runs the expensive
/// constructor of [`Table`] (a malloc user has no constructed state to reuse).
#[derive(Debug)]
pub struct Malloc<A: GlobalAlloc, const CONSTRUCT: bool = false> {
    alloc: A,
    layout: Layout,
}

impl<A: GlobalAlloc> Malloc<A, false> {
    /// Objects of `size` bytes, 8-byte aligned (the allocators' best case).
    pub fn new(alloc: A, size: usize) -> Self {
        let layout = Layout::from_size_align(size, 8).expect("object layout");
        Malloc { alloc, layout }
    }
}

impl<A: GlobalAlloc> Malloc<A, true> {
    /// [`Table`]-sized objects, constructed on every `get`.
    pub fn constructing(alloc: A) -> Self {
        let layout = Layout::from_size_align(CTOR_OBJ_SIZE, 8).expect("object layout");
        Malloc { alloc, layout }
    }
}

impl<A: GlobalAlloc, const CONSTRUCT: bool> ObjPool for Malloc<A, CONSTRUCT> {
    type Handle<'a>
        = Ptr
    where
        Self: 'a;

    #[inline]
    fn get(&self) -> Ptr {
        // SAFETY: the layout has a non-zero size (checked by `Layout` users:
        // every size here is 64 or more).
        let p = unsafe { self.alloc.alloc(self.layout) };
        let Some(p) = NonNull::new(p) else {
            handle_alloc_error(self.layout)
        };
        if CONSTRUCT {
            // SAFETY: `p` is a fresh allocation of `CTOR_OBJ_SIZE` bytes,
            // 8-byte aligned, owned by this call.
            unsafe { ctor::construct_at(p) };
        }
        Ptr(p)
    }

    #[inline]
    unsafe fn put(&self, h: Ptr) {
        // SAFETY: the caller guarantees `h` came from `get` on this pool,
        // i.e. from `self.alloc` with `self.layout`.
        unsafe { self.alloc.dealloc(h.0.as_ptr(), self.layout) }
    }

    #[inline]
    fn read(&self, h: &Ptr, word: usize) -> u32 {
        // SAFETY: `h` is a live object of this pool; the workloads only read
        // words inside the object (and constructed objects are fully written).
        unsafe { read_word(h.0, word) }
    }
}

/// `sharded_slab::Pool`: values created once per slot and reused; handles
/// are keys.
pub struct ShardedPool<T: Default + sharded_slab::Clear>(sharded_slab::Pool<T>);

impl<T: Default + sharded_slab::Clear> ShardedPool<T> {
    /// An empty pool.
    pub fn new() -> Self {
        ShardedPool(sharded_slab::Pool::new())
    }
}

impl<T: Default + sharded_slab::Clear> Default for ShardedPool<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Default + sharded_slab::Clear + Words> ObjPool for ShardedPool<T> {
    type Handle<'a>
        = usize
    where
        Self: 'a;

    #[inline]
    fn get(&self) -> usize {
        self.0.create_with(|_| {}).expect("sharded-slab pool full")
    }

    #[inline]
    unsafe fn put(&self, h: usize) {
        let cleared = self.0.clear(h);
        debug_assert!(cleared, "sharded-slab key {h} was not live");
    }

    #[inline]
    fn read(&self, h: &usize, word: usize) -> u32 {
        self.0.get(*h).expect("live sharded-slab key").word(word)
    }
}

/// `lockfree_object_pool::LinearObjectPool`: values created on demand and
/// reused; handles are RAII guards (dropping one gives the object back).
pub struct LockfreePool<T: 'static>(lockfree_object_pool::LinearObjectPool<T>);

impl<T: Default + 'static> LockfreePool<T> {
    /// An empty pool whose objects are built with `T::default()` and not
    /// reset on reuse.
    pub fn new() -> Self {
        LockfreePool(lockfree_object_pool::LinearObjectPool::new(
            T::default,
            |_| {},
        ))
    }
}

impl<T: Default + 'static> Default for LockfreePool<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Words + 'static> ObjPool for LockfreePool<T> {
    type Handle<'a>
        = lockfree_object_pool::LinearReusable<'a, T>
    where
        Self: 'a;

    #[inline]
    fn get(&self) -> Self::Handle<'_> {
        self.0.pull()
    }

    #[inline]
    unsafe fn put<'a>(&'a self, h: Self::Handle<'a>) {
        drop(h);
    }

    #[inline]
    fn read(&self, h: &Self::Handle<'_>, word: usize) -> u32 {
        h.word(word)
    }
}

/// One preallocated buffer of `capacity` objects of `size` bytes (64-byte
/// aligned) and the list of their addresses.
struct Backing {
    base: NonNull<u8>,
    layout: Layout,
    ptrs: Vec<Ptr>,
}

impl Backing {
    fn new(size: usize, capacity: usize, construct: bool) -> Self {
        let stride = size.next_multiple_of(64);
        let layout = Layout::from_size_align(stride * capacity, 64).expect("buffer layout");
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        let Some(base) = NonNull::new(base) else {
            handle_alloc_error(layout)
        };
        let ptrs: Vec<Ptr> = (0..capacity)
            .rev()
            .map(|i| {
                // SAFETY: `i * stride` is inside the `stride * capacity`
                // bytes just allocated.
                let p = unsafe { base.add(i * stride) };
                if construct {
                    assert!(size >= CTOR_OBJ_SIZE, "object too small to construct");
                    // SAFETY: `p` starts `size >= CTOR_OBJ_SIZE` bytes of the
                    // fresh buffer, 64-byte aligned, owned by this function.
                    unsafe { ctor::construct_at(p) };
                }
                Ptr(p)
            })
            .collect();
        Backing { base, layout, ptrs }
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        // SAFETY: `base` was allocated in `new` with `layout`.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

/// A free stack of pointers into one preallocated buffer, as ixy.rs's
/// `Mempool` (`RefCell<Vec<_>>`, one thread).
pub struct VecStack {
    free: RefCell<Vec<Ptr>>,
    _backing: Backing,
}

impl VecStack {
    /// `capacity` objects of `size` bytes.
    pub fn new(size: usize, capacity: usize) -> Self {
        Self::build(size, capacity, false)
    }

    /// `capacity` [`Table`] objects, each constructed once up front.
    pub fn constructed(capacity: usize) -> Self {
        Self::build(CTOR_OBJ_SIZE, capacity, true)
    }

    fn build(size: usize, capacity: usize, construct: bool) -> Self {
        let mut backing = Backing::new(size, capacity, construct);
        let free = RefCell::new(std::mem::take(&mut backing.ptrs));
        VecStack {
            free,
            _backing: backing,
        }
    }
}

impl ObjPool for VecStack {
    type Handle<'a>
        = Ptr
    where
        Self: 'a;

    #[inline]
    fn get(&self) -> Ptr {
        self.free.borrow_mut().pop().expect("vec-stack pool empty")
    }

    #[inline]
    unsafe fn put(&self, h: Ptr) {
        // Never reallocates: the vector was built holding every object.
        self.free.borrow_mut().push(h);
    }

    #[inline]
    fn read(&self, h: &Ptr, word: usize) -> u32 {
        // SAFETY: `h` is a live object of the backing buffer, which outlives
        // every handle (they borrow `self`); the read stays inside it.
        unsafe { read_word(h.0, word) }
    }
}

/// [`VecStack`] behind a `Mutex`, so two threads can share it.
pub struct MutexVecStack {
    free: Mutex<Vec<Ptr>>,
    _backing: Backing,
}

// SAFETY: the backing buffer is only reached through pointers handed out
// under the mutex, each to one owner at a time.
unsafe impl Sync for MutexVecStack {}
// SAFETY: as above; the buffer is plain memory owned by the pool.
unsafe impl Send for MutexVecStack {}

impl MutexVecStack {
    /// `capacity` objects of `size` bytes.
    pub fn new(size: usize, capacity: usize) -> Self {
        let mut backing = Backing::new(size, capacity, false);
        let free = Mutex::new(std::mem::take(&mut backing.ptrs));
        MutexVecStack {
            free,
            _backing: backing,
        }
    }
}

impl ObjPool for MutexVecStack {
    type Handle<'a>
        = Ptr
    where
        Self: 'a;

    #[inline]
    fn get(&self) -> Ptr {
        self.free
            .lock()
            .expect("vec-stack lock")
            .pop()
            .expect("vec-stack pool empty")
    }

    #[inline]
    unsafe fn put(&self, h: Ptr) {
        self.free.lock().expect("vec-stack lock").push(h);
    }

    #[inline]
    fn read(&self, h: &Ptr, word: usize) -> u32 {
        // SAFETY: as for `VecStack::read`.
        unsafe { read_word(h.0, word) }
    }
}

/// A contender that does nothing: `get` hands out one dangling address and
/// `put` drops it. Its instruction count is the harness overhead (loop,
/// `black_box`) that the instruction-count report subtracts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Null;

impl ObjPool for Null {
    type Handle<'a>
        = Ptr
    where
        Self: 'a;

    #[inline]
    fn get(&self) -> Ptr {
        Ptr(NonNull::dangling())
    }

    #[inline]
    unsafe fn put(&self, _h: Ptr) {}

    #[inline]
    fn read(&self, _h: &Ptr, _word: usize) -> u32 {
        0
    }
}

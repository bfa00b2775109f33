//! **skmem-alloc**: a general-purpose allocator made of skmem's layers —
//! the `kmem_alloc` that kmem and libumem put on top of their caches.
//!
//! ```
//! use skmem_alloc::SkmemAlloc;
//! use allocator_api2::vec::Vec;
//!
//! // As `#[global_allocator] static A: SkmemAlloc = SkmemAlloc::new();`, or
//! // for one collection through allocator_api2:
//! let mut v: Vec<u64, SkmemAlloc> = Vec::new_in(SkmemAlloc::new());
//! v.extend(0..1000);
//! assert_eq!(v.iter().sum::<u64>(), 499_500);
//! ```
//!
//! # Layers
//!
//! ```text
//!   malloc / free / GlobalAlloc / Allocator          (this crate)
//!     ├─ size ≤ 256 KiB: class = table[size]         (classes.rs: 104 classes, < 12.5 % waste)
//!     │    thread front: per-class intrusive list     (front.rs: no lock, no atomic RMW)
//!     │      └─ Cache<_, Global>  batch refill/flush  (skmem-magazine)
//!     │           └─ SlabCache                        (skmem-slab)
//!     │                └─ Region<Carve>               (class c's 1 GiB slice of the reservation)
//!     ├─ larger, or aligned beyond a page: own mmap  (large.rs, address → length table)
//!     └─ while inside a slow path: metadata blocks   (meta.rs)
//! ```
//!
//! # Free without a size
//!
//! Everything the allocator hands out lives in one address-space
//! reservation (module `reserve` in the source) or in the
//! large-object table. `free(p)` computes `(p - base) >> 30`: a class index
//! (then the offset in the slice must lie in the region's span and on the
//! class's object grid, `offset mod size == 0`: segments are whole numbers
//! of objects; the remainder is computed exactly by multiplication), or the
//! metadata slices, or else a lookup in the large-object table. A pointer
//! that passes none of these — foreign, or inside an object — is reported
//! on stderr with its address and the process aborts; it is never followed.
//! All of it is O(1) and takes no lock.
//!
//! # Re-entrancy and process life
//!
//! See the docs of module `front` (source): a const-initialised
//! thread-local front, a busy flag routing the framework's own allocations
//! to an internal metadata allocator, a `pthread_key_t` destructor for
//! thread exit, `pthread_atfork` handlers, and maintenance from the slow
//! path (no helper thread).
//!
//! # Alignment
//!
//! `malloc(n)` returns memory aligned to the largest power of two dividing
//! its class size (at least 8, and 16 for every class that is a multiple
//! of 16, as every class from 128 up is): what C's "suitably aligned for
//! any object that fits" needs, as in mimalloc. Any alignment up to the
//! page is served natively by the smallest class whose objects have it;
//! larger ones by the large-object path (mapped with slack and trimmed).
//!
//! # Statistics
//!
//! Every class cache is registered in skmem's registry under the name
//! `skmem-alloc.<size>`, so `skmem::all_stats()` (and whatever reads the
//! registry) lists it with its magazine and slab counters. [`class_stats`]
//! adds what only this crate knows (objects resting in thread fronts, so
//! objects and bytes the program holds, refills, flushes); [`summary`]
//! totals it with the large objects and the metadata; [`print_summary`]
//! writes that as one line on stderr without allocating (what
//! `SKMEM_SHOW_STATS=1` prints at exit in the C library).
//!
//! # `realloc(p, 0)`
//!
//! Frees `p` and returns a fresh minimal object (never null on success):
//! the C layer decides whether to expose glibc's "free and return NULL".
//!
//! # What is not detected
//!
//! A block freed twice in a row by the same thread is reported and aborts
//! (it is the head of the thread's front list: one compare). Other double
//! frees, or the free of a grid-aligned address in a class segment the
//! region has not handed out, pass the O(1) checks; the slab layer catches
//! them when the object goes back to it (it keeps an allocated/free state
//! per object), and a panic inside a class cache ends the process with a
//! message (unwinding out of an allocator is not allowed). Between the two,
//! such a block may be handed out twice.
//!
//! Run with `SKMEM_DEBUG` (e.g. `SKMEM_DEBUG=all`) to have every free
//! checked when it is made: the thread fronts are then bypassed and each
//! double, foreign or interior free, overrun (with `guards`) or write
//! after free (with `poison`) is reported by the slab layer's debug mode,
//! naming the address, and aborts; see "Debug mode" in the `front` module.
//!
//! # Safety
//!
//! Each module states its invariants: `classes` (the
//! ladder), `reserve` (the reservation and its source), `front` (the
//! fronts, the busy flag, fork), `meta`, `large`, `lock`.

mod classes;
mod front;
mod large;
mod lock;
mod meta;
mod report;
mod reserve;

use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write as _;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator};

pub use classes::{class_align, class_index, class_size, MAX_SMALL, NCLASSES};
pub use front::{class_stats, reclaim, ClassStats};

use classes::{class_of, fast_mod, INFO, PAGE, SLICE, SLICE_SHIFT};
use reserve::{base, CLASS_SPAN};

/// The alignment every `malloc` result has at least.
const MIN_ALIGN: usize = 8;

/// The process-wide general-purpose allocator (size classes over skmem
/// caches). Zero-sized: every value is the same allocator.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();
/// # fn main() { let v = vec![1, 2, 3]; assert_eq!(v.len(), 3); }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SkmemAlloc;

impl SkmemAlloc {
    /// The allocator (usable in a `static`).
    pub const fn new() -> Self {
        SkmemAlloc
    }
}

/// Where an address belongs.
enum Home {
    Class(usize),
    Meta(usize),
    Large(usize),
}

/// The class of `ptr` when it is an object on the plain grid of a class
/// region (the common case, decided without a branch to a cold path);
/// `None` for everything else, which [`home_of`] sorts out.
#[inline(always)]
fn class_of_block(ptr: *mut u8) -> Option<usize> {
    let b = base();
    let off = (ptr as usize).wrapping_sub(b);
    // Null, and every address before the reservation exists, fail here.
    if off < CLASS_SPAN && b != 0 {
        let c = off >> SLICE_SHIFT;
        let o = off & (SLICE - 1);
        let info = &INFO[c];
        if o < info.span
            // A segment is a whole number of objects, so the offset in the
            // slice is on the object grid exactly when it is a multiple of
            // the size.
            && fast_mod(o, info.m_size, info.size) == 0
            && front::class_ready(c)
        {
            return Some(c);
        }
    }
    None
}

/// Finds where `ptr` (not null) belongs, or reports it and aborts.
#[inline(always)]
fn home_of(ptr: *mut u8, what: &str) -> Home {
    match class_of_block(ptr) {
        Some(c) => Home::Class(c),
        None => home_slow(ptr as usize, what),
    }
}

/// [`home_of`] for an address off the plain class grid.
#[cold]
#[inline(never)]
fn home_slow(addr: usize, what: &str) -> Home {
    let b = base();
    let off = addr.wrapping_sub(b);
    if off < CLASS_SPAN && b != 0 {
        return class_cold(addr, off >> SLICE_SHIFT, off & (SLICE - 1), what);
    }
    home_cold(addr, what)
}

/// An address in class `c`'s slice off the plain layout's grid: a block of
/// the redzoned debug layout (whose stride is not the class size), or a
/// bad pointer (reported, abort).
#[cold]
#[inline(never)]
fn class_cold(addr: usize, c: usize, o: usize, what: &str) -> Home {
    let info = front::region_layout(c);
    if info.stride != info.size
        && o < info.span
        && fast_mod(o, info.m_size, info.stride) == 0
        && front::class_ready(c)
    {
        return Home::Class(c);
    }
    if o >= info.span || !front::class_ready(c) {
        report::die(format_args!(
            "{what}({addr:#x}): not a block of this allocator (unused part of the {}-byte class region)",
            info.size
        ));
    }
    report::die(format_args!(
        "{what}({addr:#x}): interior pointer, {} bytes into a {}-byte object of size class {c}",
        o % info.stride,
        info.size
    ))
}

#[cold]
#[inline(never)]
fn home_cold(addr: usize, what: &str) -> Home {
    if meta::contains(addr) {
        match meta::block_of(addr) {
            Some((size, true)) => return Home::Meta(size),
            Some((size, false)) => report::die(format_args!(
                "{what}({addr:#x}): interior pointer into a {size}-byte internal block"
            )),
            None => {}
        }
    } else if let Some(len) = large::len_of(addr) {
        return Home::Large(len);
    }
    report::die(format_args!(
        "{what}({addr:#x}): pointer not allocated by skmem-alloc (foreign, interior or already freed)"
    ))
}

/// Allocates `size` bytes (at least 8-aligned); null on failure.
/// `malloc(0)` returns a unique minimal object.
#[inline]
pub fn malloc(size: usize) -> *mut u8 {
    if size <= MAX_SMALL {
        // SAFETY: class_of returns a valid class for size <= MAX_SMALL.
        unsafe { front::alloc_class(class_of(size)) }
    } else {
        large_alloc(size, PAGE, false)
    }
}

#[cold]
fn large_alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    if !front::initialised() {
        return ptr::null_mut();
    }
    large::alloc(size, align, zero)
}

/// Allocates `size` bytes aligned to `align` (a power of two, any size up
/// to `isize::MAX`); null on failure or when `align` is not a power of two.
#[inline]
pub fn aligned(size: usize, align: usize) -> *mut u8 {
    aligned_in(size, align, false)
}

/// [`aligned`]; with `zero`, a large object comes back zeroed (a class
/// block is the caller's to clear).
#[inline]
fn aligned_in(size: usize, align: usize, zero: bool) -> *mut u8 {
    if !align.is_power_of_two() {
        return ptr::null_mut();
    }
    if align <= MIN_ALIGN && size <= MAX_SMALL {
        return malloc(size);
    }
    if align <= PAGE && size <= MAX_SMALL {
        let mut c = class_of(size.max(align));
        // Terminates within the ladder: the power-of-two class at or above
        // max(size, align) has the alignment.
        while INFO[c].align < align {
            c += 1;
        }
        // SAFETY: c < NCLASSES (see above).
        return unsafe { front::alloc_class(c) };
    }
    if size > isize::MAX as usize - align {
        return ptr::null_mut();
    }
    large_alloc(size, align.max(PAGE), zero)
}

/// Allocates `n * size` zeroed bytes; null on overflow or failure. Fresh
/// large objects are known zero and not cleared again (one reused from the
/// cache of freed large objects is).
pub fn calloc(n: usize, size: usize) -> *mut u8 {
    let Some(total) = n.checked_mul(size) else {
        return ptr::null_mut();
    };
    zeroed(total, MIN_ALIGN)
}

fn zeroed(size: usize, align: usize) -> *mut u8 {
    let p = aligned_in(size, align, true);
    if !p.is_null() && size <= MAX_SMALL && align <= PAGE {
        // SAFETY: a fresh block of at least `size` bytes.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// Frees a block; null is a no-op.
///
/// # Safety
///
/// `ptr` is null or a block from this allocator not freed since, not used
/// afterwards. A foreign or interior pointer is reported on stderr (naming
/// it) and aborts the process.
// Always inlined: `free` is the hottest call of a C program after
// `malloc`, and the C library's `free` would otherwise be a call to a call.
#[inline(always)]
pub unsafe fn free(ptr: *mut u8) {
    if let Some(c) = class_of_block(ptr) {
        // SAFETY: a block of class c (checked), the caller's to give up.
        unsafe { front::free_class(ptr, c) };
    } else if !ptr.is_null() {
        // SAFETY: forwarded from the caller.
        unsafe { free_other(ptr) };
    }
}

/// `free` of anything but a plain-grid class object: a metadata block, a
/// large object, a block of the redzoned debug layout, or a bad pointer
/// (reported, abort). Out of line, so that the common path needs no stack
/// frame.
///
/// # Safety
///
/// As [`free`], `ptr` not null.
#[cold]
#[inline(never)]
unsafe fn free_other(ptr: *mut u8) {
    match home_slow(ptr as usize, "free") {
        // SAFETY: a block of class c (checked), the caller's to give up.
        Home::Class(c) => unsafe { front::free_class(ptr, c) },
        // SAFETY: the start of a metadata block (checked).
        Home::Meta(size) => unsafe { meta::free(ptr, size) },
        // SAFETY: forwarded from the caller.
        Home::Large(_) => unsafe { free_large(ptr) },
    }
}

/// `free` of a large object, out of line so that the small-object path
/// needs no stack frame for the report's formatting.
///
/// # Safety
///
/// As [`free`], for a large object.
#[cold]
#[inline(never)]
unsafe fn free_large(ptr: *mut u8) {
    // SAFETY: the caller gives the object up.
    if !unsafe { large::free(ptr as usize) } {
        report::die(format_args!(
            "free({:#x}): large object freed twice concurrently",
            ptr as usize
        ));
    }
}

/// The usable size of a block (at least what was asked); 0 for null.
///
/// # Safety
///
/// `ptr` is null or a live block of this allocator (else: report, abort).
pub unsafe fn usable_size(ptr: *mut u8) -> usize {
    if ptr.is_null() {
        return 0;
    }
    match home_of(ptr, "malloc_usable_size") {
        Home::Class(c) => INFO[c].size,
        Home::Meta(size) => size,
        Home::Large(len) => len,
    }
}

/// Resizes a block, C style: null `ptr` allocates; `new_size` 0 frees `ptr`
/// and returns a fresh minimal object; on failure returns null and leaves
/// `ptr` intact. Stays in place when the class allows.
///
/// # Safety
///
/// As [`free`] for `ptr`; on success the old pointer is not used again
/// (unless returned).
pub unsafe fn realloc(ptr: *mut u8, new_size: usize) -> *mut u8 {
    if new_size == 0 && !ptr.is_null() {
        // SAFETY: forwarded.
        unsafe { free(ptr) };
        return malloc(0);
    }
    // SAFETY: forwarded.
    unsafe { realloc_aligned(ptr, new_size, MIN_ALIGN) }
}

/// `realloc` keeping alignment `align` (a power of two).
///
/// # Safety
///
/// As [`realloc`]; `ptr`, if not null, is aligned to `align`.
unsafe fn realloc_aligned(ptr: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    if ptr.is_null() {
        return aligned(new_size, align);
    }
    let old = match home_of(ptr, "realloc") {
        Home::Class(c) => {
            let size = INFO[c].size;
            // In place when it fits and does not waste more than half.
            if new_size <= size && (new_size > size / 2 || size <= 16) {
                return ptr;
            }
            size
        }
        Home::Large(len) => {
            if new_size > MAX_SMALL && align <= PAGE {
                // SAFETY: a live large object of `len` bytes, the caller's.
                return unsafe { large::remap(ptr as usize, len, new_size) };
            }
            if new_size <= len && new_size > len / 2 {
                return ptr;
            }
            len
        }
        Home::Meta(size) => size,
    };
    let q = aligned(new_size, align);
    if !q.is_null() {
        // SAFETY: both blocks hold at least the copied bytes and are
        // distinct live blocks; the old one is the caller's to give up.
        unsafe {
            ptr::copy_nonoverlapping(ptr, q, old.min(new_size));
            free(ptr);
        }
    }
    q
}

/// `true` when `ptr` is inside memory this allocator manages: a class
/// region's handed-out span, a metadata block, or the start of a live
/// large object (interior pointers of large objects are not recognised).
/// O(1), lock-free; never dereferences `ptr`.
pub fn owns(ptr: *const u8) -> bool {
    let addr = ptr as usize;
    let b = base();
    if b == 0 || ptr.is_null() {
        return false;
    }
    let off = addr.wrapping_sub(b);
    if off < CLASS_SPAN {
        let c = off >> SLICE_SHIFT;
        return (off & (SLICE - 1)) < front::region_layout(c).span && front::class_ready(c);
    }
    if meta::contains(addr) {
        return meta::block_of(addr).is_some();
    }
    large::len_of(addr).is_some()
}

/// Totals over every class, the large objects and the metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Classes whose cache exists.
    pub classes_used: usize,
    /// Objects the program holds in classes.
    pub objects_in_use: i64,
    /// Their bytes (class sizes).
    pub bytes_in_use: i64,
    /// Bytes of live class segments.
    pub slab_bytes: u64,
    /// Live large objects and their mapped bytes.
    pub large_objects: usize,
    /// See `large_objects`.
    pub large_bytes: usize,
    /// Mapped bytes of freed large objects kept for reuse (at most 16 MiB;
    /// [`reclaim`] gives them back).
    pub large_cached_bytes: usize,
    /// Bytes of internal metadata blocks in use.
    pub meta_bytes: usize,
    /// Magazine hits (CPU-layer allocations and frees of the class caches).
    pub magazine_hits: u64,
    /// Front refills and flushes.
    pub refills: u64,
    /// See `refills`.
    pub flushes: u64,
}

/// The current [`Summary`].
pub fn summary() -> Summary {
    let mut s = Summary {
        large_objects: large::LIVE.load(core::sync::atomic::Ordering::Relaxed),
        large_bytes: large::LIVE_BYTES.load(core::sync::atomic::Ordering::Relaxed),
        large_cached_bytes: large::CACHED_BYTES.load(core::sync::atomic::Ordering::Relaxed),
        meta_bytes: meta::IN_USE.load(core::sync::atomic::Ordering::Relaxed),
        ..Summary::default()
    };
    for c in 0..NCLASSES {
        if !front::class_ready(c) {
            continue;
        }
        let Some(cs) = class_stats(c) else { continue };
        s.classes_used += 1;
        s.objects_in_use += cs.objects_in_use;
        s.bytes_in_use += cs.bytes_in_use;
        s.slab_bytes += cs.slab_bytes;
        s.magazine_hits += cs.magazine_allocs + cs.magazine_frees;
        s.refills += cs.refills;
        s.flushes += cs.flushes;
    }
    s
}

/// Writes the one-line summary (`SKMEM_SHOW_STATS=1`) to stderr, without
/// allocating through the global allocator.
pub fn print_summary() {
    let s = summary();
    let mut b = report::StackBuf::new();
    let _ = writeln!(
        b,
        "skmem-alloc: {} classes, {} B in use in {} objects, {} B of slabs, {} large objects ({} B), {} B metadata, {} magazine hits, {} refills, {} flushes",
        s.classes_used,
        s.bytes_in_use,
        s.objects_in_use,
        s.slab_bytes,
        s.large_objects,
        s.large_bytes,
        s.meta_bytes,
        s.magazine_hits,
        s.refills,
        s.flushes
    );
    b.flush_to_stderr();
}

// SAFETY: every block returned is valid for the layout's size and aligned
// to its alignment (class alignment, or the large path's), and stays so
// until freed; `dealloc` and `realloc` accept exactly these blocks; nothing
// unwinds.
unsafe impl GlobalAlloc for SkmemAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            malloc(layout.size())
        } else {
            aligned(layout.size(), layout.align())
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc contract).
        unsafe { free(ptr) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        zeroed(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is a live block of `layout` (contract), so aligned
        // to `layout.align()`; new_size > 0.
        unsafe { realloc_aligned(ptr, new_size, layout.align()) }
    }
}

fn block(ptr: *mut u8) -> Result<NonNull<[u8]>, AllocError> {
    let p = NonNull::new(ptr).ok_or(AllocError)?;
    // SAFETY: a live block just returned by this allocator.
    let len = unsafe { usable_size(ptr) };
    Ok(NonNull::slice_from_raw_parts(p, len))
}

fn dangling(layout: Layout) -> NonNull<[u8]> {
    // A zero-sized block: an aligned, non-null address never dereferenced.
    let p = NonNull::new(layout.align() as *mut u8).unwrap_or(NonNull::dangling());
    NonNull::slice_from_raw_parts(p, 0)
}

// SAFETY: blocks stay valid until deallocated, for any clone of the
// (zero-sized) allocator; the returned slices are at least the layout's
// size and aligned to it; zero-sized layouts get a dangling aligned
// pointer that `deallocate` ignores.
unsafe impl Allocator for SkmemAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        // SAFETY: non-zero size.
        block(unsafe { GlobalAlloc::alloc(self, layout) })
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        let p = NonNull::new(zeroed(layout.size(), layout.align())).ok_or(AllocError)?;
        // Only `layout.size()` bytes are known zero.
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: allocated by this allocator (contract).
            unsafe { free(ptr.as_ptr()) }
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() == 0 {
            return self.allocate(new);
        }
        // SAFETY: a live block of `old` (contract).
        unsafe { self.resize(ptr, old, new) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() == 0 {
            return self.allocate_zeroed(new);
        }
        // SAFETY: a live block of `old` (contract).
        let p = unsafe { self.resize(ptr, old, new) }?;
        // SAFETY: the block holds at least `new.size()` bytes; the bytes
        // past the old size are the caller's to see zeroed.
        unsafe {
            ptr::write_bytes(
                p.cast::<u8>().as_ptr().add(old.size()),
                0,
                new.size() - old.size(),
            )
        };
        Ok(NonNull::slice_from_raw_parts(p.cast(), new.size()))
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if new.size() == 0 {
            // SAFETY: a live block of `old`.
            unsafe { self.deallocate(ptr, old) };
            return Ok(dangling(new));
        }
        // SAFETY: a live block of `old` (contract).
        unsafe { self.resize(ptr, old, new) }
    }
}

impl SkmemAlloc {
    /// Grow or shrink: in place when the block already has the room and the
    /// alignment (and does not waste more than half), else moved.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of `old`, `new.size() > 0`.
    unsafe fn resize(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let p = ptr.as_ptr();
        if p as usize % new.align() == 0 {
            // SAFETY: a live block, aligned to new.align() as checked.
            return block(unsafe { realloc_aligned(p, new.size(), new.align()) });
        }
        let q = aligned(new.size(), new.align());
        if q.is_null() {
            return Err(AllocError);
        }
        // SAFETY: distinct live blocks, each holding the copied bytes.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old.size().min(new.size()));
            free(p);
        }
        block(q)
    }
}

/// Test hook: how many times this process ran the allocator's atfork
/// child handler (1 in a child forked once, after the allocator's first use).
#[doc(hidden)]
pub fn debug_fork_children() -> u64 {
    front::fork_children()
}

/// Test hook: `true` while the calling thread is inside a slow path.
#[doc(hidden)]
pub fn debug_thread_is_busy() -> bool {
    front::thread_is_busy()
}

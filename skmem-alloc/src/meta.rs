//! The internal metadata allocator: where the framework's own `Box`, `Vec`
//! and `Arc` allocations go while the allocator is inside one of its slow
//! paths (and so cannot call itself).
//!
//! # Design
//!
//! Power-of-two blocks from 16 bytes to [`META_MAX`], one 512 MiB sub-slice
//! of the metadata slices of the reservation per power: block size is
//! known from the address alone, so a C `free` of a metadata block (say,
//! glibc's TLS-destructor record allocated while we were busy) works like
//! any other. Each power has a bump pointer and a free list (linked through
//! the blocks' first word) under one spin lock for all powers: the
//! metadata allocator only runs on slow paths.
//!
//! Freed blocks of 16 KiB or more give their pages but the first back to
//! the system.
//!
//! # Invariants
//!
//! * A block of power `k` starts at `sub-slice(k) + j * 2^k` for some `j`
//!   below the bump index, so it is naturally aligned to `2^k`.
//! * A block is on its free list at most once, only after `free`, and never
//!   handed out while on it; the lock guards bump indices and lists.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::lock::SpinLock;
use crate::reserve::{base, discard_pages, slice_base, META_FIRST_SLICE, RESERVE};

/// log2 of the smallest block.
const MIN_SHIFT: usize = 4;
/// log2 of the sub-slice per power.
const SUB_SHIFT: u32 = 29;
/// The largest metadata block (256 MiB).
pub(crate) const META_MAX: usize = 1 << 28;
const POWERS: usize = 29;

static LOCK: SpinLock = SpinLock::new();
/// Per power: bytes bumped so far, and the free-list head (an address, 0
/// for none). Guarded by `LOCK`.
static BUMP: [AtomicUsize; POWERS] = [const { AtomicUsize::new(0) }; POWERS];
static FREE: [AtomicUsize; POWERS] = [const { AtomicUsize::new(0) }; POWERS];
/// Bytes of metadata handed out and not freed (statistics).
pub(crate) static IN_USE: AtomicUsize = AtomicUsize::new(0);

fn power_of(size: usize) -> usize {
    size.max(1 << MIN_SHIFT)
        .next_power_of_two()
        .trailing_zeros() as usize
}

fn sub_base(power: usize) -> usize {
    slice_base(META_FIRST_SLICE) + (power << SUB_SHIFT)
}

/// Allocates a block of at least `size` bytes aligned to `align` (a power
/// of two); null when too large or exhausted, or before the reservation.
pub(crate) fn alloc(size: usize, align: usize) -> *mut u8 {
    let want = size.max(align);
    if want > META_MAX || base() == 0 {
        return core::ptr::null_mut();
    }
    let k = power_of(want);
    let _g = LOCK.lock();
    let head = FREE[k].load(Ordering::Relaxed);
    if head != 0 {
        // SAFETY: `head` is a free block of power k (invariant), at least
        // 16 bytes and 16-aligned; its first word is the next link.
        let next = unsafe { (head as *const usize).read() };
        FREE[k].store(next, Ordering::Relaxed);
        IN_USE.fetch_add(1 << k, Ordering::Relaxed);
        return head as *mut u8;
    }
    let used = BUMP[k].load(Ordering::Relaxed);
    if used + (1 << k) > 1 << SUB_SHIFT {
        return core::ptr::null_mut();
    }
    BUMP[k].store(used + (1 << k), Ordering::Relaxed);
    IN_USE.fetch_add(1 << k, Ordering::Relaxed);
    (sub_base(k) + used) as *mut u8
}

/// `true` when `addr` lies in the metadata slices.
#[inline]
pub(crate) fn contains(addr: usize) -> bool {
    let b = base();
    b != 0
        && addr.wrapping_sub(slice_base(META_FIRST_SLICE))
            < RESERVE - (META_FIRST_SLICE << crate::classes::SLICE_SHIFT)
}

/// The block size of the metadata block holding `addr`, and whether `addr`
/// is its start; `None` when `addr` is in no block ever handed out.
pub(crate) fn block_of(addr: usize) -> Option<(usize, bool)> {
    let off = addr.wrapping_sub(slice_base(META_FIRST_SLICE));
    let k = off >> SUB_SHIFT;
    if !(MIN_SHIFT..POWERS).contains(&k) {
        return None;
    }
    let within = off & ((1 << SUB_SHIFT) - 1);
    if within >= BUMP[k].load(Ordering::Relaxed) {
        return None;
    }
    Some((1 << k, within & ((1 << k) - 1) == 0))
}

/// Frees a metadata block.
///
/// # Safety
///
/// `ptr` is the start of a block `alloc` returned and not freed since
/// (checked by the caller with [`block_of`]); nothing uses it afterwards.
#[allow(clippy::cast_ptr_alignment)] // blocks are at least 16-aligned
pub(crate) unsafe fn free(ptr: *mut u8, size: usize) {
    let k = power_of(size);
    if size >= 16 * 1024 {
        // SAFETY: the block's pages past the first are ours and unneeded.
        unsafe { discard_pages(ptr as usize + 4096, size - 4096) };
    }
    let _g = LOCK.lock();
    let head = FREE[k].load(Ordering::Relaxed);
    // SAFETY: the block is ours, at least 16 bytes, 16-aligned.
    unsafe { ptr.cast::<usize>().write(head) };
    FREE[k].store(ptr as usize, Ordering::Relaxed);
    IN_USE.fetch_sub(1 << k, Ordering::Relaxed);
}

/// Takes the lock (fork prepare).
pub(crate) fn lock_for_fork() {
    LOCK.acquire();
}

/// Releases it (fork parent and child).
pub(crate) fn unlock_after_fork() {
    LOCK.release();
}

//! The large-object path: requests above [`MAX_SMALL`](crate::MAX_SMALL)
//! (or aligned beyond the page) get whole pages of their own from `mmap`,
//! given back with `munmap` on free, or first kept a while for reuse (see
//! the cache below).
//!
//! # Finding a large object from its address
//!
//! Every live large object is recorded in an open-addressing hash table
//! (start address → mapped length) living in its own slice of the
//! reservation: lookup, insert and remove are a few atomic operations,
//! O(1) expected, without a lock. A pointer that is not the start of a
//! live large object is not in the table, so it is never followed.
//!
//! # The cache of freed large objects
//!
//! A program that frees and allocates large blocks in a loop (a buffer per
//! request, a growing array per iteration) would otherwise pay for an
//! `mmap`, a page fault per page touched and an `munmap` (with its TLB
//! shootdown) every time. So a freed large object of up to
//! [`CACHE_MAX_OBJ`] bytes is kept, pages populated, in a small cache of
//! [`CACHE_SLOTS`] mappings and at most [`CACHE_MAX_BYTES`] in all (the
//! oldest goes back to the system first), and a later request of up to
//! that size is served from it: by the smallest cached mapping of at most
//! twice the size (whole: its usable size is then the whole mapping), or
//! else by the largest smaller one, grown with `mremap` (only the added
//! pages fault in); a fresh mapping only when every cached one is more
//! than twice too large. So a loop of differently sized large buffers
//! cycles a few mappings instead of collecting many, and rarely faults
//! pages in again. Objects handed out oversized came out of the cache, so
//! the memory they waste is bounded by its limit.
//! A reused mapping is not zero: `calloc`'s path asks for zeroed memory and
//! gets it cleared. [`trim`] (from `reclaim`) empties the cache.
//!
//! # Invariants
//!
//! * A key is 0 (never used), [`TOMB`] (was used) or the start address of a
//!   live mapping of `len` bytes recorded in the same entry. Keys only go
//!   0 → address → TOMB → address …, never back to 0, so a probe sequence
//!   never breaks: a lookup stops at the first 0.
//! * Only the thread that removes a key (by compare-and-swap, so at most
//!   one) unmaps its memory.
//! * The length is stored after the key is claimed and before the pointer
//!   is returned to the caller; anyone who can legitimately free or measure
//!   the object learnt of it through the caller, after that store.
//! * A cached mapping is in the cache's slots (under [`CACHE_LOCK`]) and in
//!   no live table entry: it became unreachable from the program when its
//!   key was removed, and becomes live again only by a fresh `insert`
//!   after it left the slots.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::classes::PAGE;
use crate::lock::SpinLock;
use crate::reserve::{slice_base, LARGE_TABLE_SLICE};

/// Freed mappings kept for reuse, at most.
pub(crate) const CACHE_SLOTS: usize = 16;
/// Largest freed mapping kept (bigger ones go straight back).
pub(crate) const CACHE_MAX_OBJ: usize = 4 << 20;
/// Bytes the cache may hold in all.
pub(crate) const CACHE_MAX_BYTES: usize = 16 << 20;

/// Mapped bytes resting in the cache (statistics).
pub(crate) static CACHED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Guards [`CACHE`]; a leaf lock (nothing else is taken while holding it,
/// no system call is made under it), taken last by the fork handlers.
static CACHE_LOCK: SpinLock = SpinLock::new();

/// Slots `0..len` hold `(address, mapped length)`, oldest first.
struct Cache {
    slots: [(usize, usize); CACHE_SLOTS],
    len: usize,
    bytes: usize,
}

struct CacheCell(UnsafeCell<Cache>);

// SAFETY: the cache is only accessed with CACHE_LOCK held (`with_cache`).
unsafe impl Sync for CacheCell {}

static CACHE: CacheCell = CacheCell(UnsafeCell::new(Cache {
    slots: [(0, 0); CACHE_SLOTS],
    len: 0,
    bytes: 0,
}));

fn with_cache<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    let _g = CACHE_LOCK.lock();
    // SAFETY: CACHE_LOCK is held for the whole borrow, and every access to
    // CACHE goes through here, so this is the only reference.
    f(unsafe { &mut *CACHE.0.get() })
}

impl Cache {
    /// Takes the cached mapping that best serves `len` bytes: the smallest
    /// of `len..=2 * len` bytes, or else the largest below `len` (to be
    /// grown). Mappings more than twice too large stay for larger requests.
    fn take(&mut self, len: usize) -> Option<(usize, usize)> {
        let fits = |l: usize| l >= len && l / 2 <= len;
        let mut best: Option<usize> = None;
        for (i, &(_, l)) in self.slots[..self.len].iter().enumerate() {
            let better = match best.map(|b| self.slots[b].1) {
                None => fits(l) || l < len,
                Some(have) if fits(have) => fits(l) && l < have,
                Some(have) => fits(l) || (l < len && l > have),
            };
            if better {
                best = Some(i);
            }
        }
        let i = best?;
        let got = self.slots[i];
        self.slots.copy_within(i + 1..self.len, i);
        self.len -= 1;
        self.bytes -= got.1;
        Some(got)
    }

    /// Keeps `(addr, len)`, evicting the oldest mappings into `evicted`
    /// while over a limit. Returns how many were evicted.
    fn keep(
        &mut self,
        addr: usize,
        len: usize,
        evicted: &mut [(usize, usize); CACHE_SLOTS],
    ) -> usize {
        let mut n = 0;
        while self.len == CACHE_SLOTS || (self.len > 0 && self.bytes + len > CACHE_MAX_BYTES) {
            evicted[n] = self.slots[0];
            self.bytes -= self.slots[0].1;
            self.slots.copy_within(1..self.len, 0);
            self.len -= 1;
            n += 1;
        }
        self.slots[self.len] = (addr, len);
        self.len += 1;
        self.bytes += len;
        n
    }
}

/// 2^16 entries of 16 bytes: 1 MiB of address space, touched a page at a
/// time as entries are used; linear probing stays short below ~48 K live
/// large objects (each at least 256 KiB, so 12 GiB and more).
const TABLE_BITS: u32 = 16;
const TABLE_LEN: usize = 1 << TABLE_BITS;
const TOMB: usize = 1;

/// Live large objects and their mapped bytes (statistics).
pub(crate) static LIVE: AtomicUsize = AtomicUsize::new(0);
pub(crate) static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

#[repr(C)]
struct Entry {
    key: AtomicUsize,
    len: AtomicUsize,
}

fn table() -> &'static [Entry] {
    // SAFETY: the table slice is part of the reservation (which exists:
    // callers only get here after initialisation), readable and writable,
    // zero until written, never unmapped, and used for nothing else; all
    // accesses are atomic. 2^16 entries of 16 bytes fit its 1 GiB.
    unsafe { core::slice::from_raw_parts(slice_base(LARGE_TABLE_SLICE) as *const Entry, TABLE_LEN) }
}

fn home(addr: usize) -> usize {
    (addr >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TABLE_BITS)
}

fn insert(addr: usize, len: usize) -> bool {
    let t = table();
    let h = home(addr);
    for i in 0..TABLE_LEN {
        let e = &t[(h + i) & (TABLE_LEN - 1)];
        let k = e.key.load(Ordering::Relaxed);
        if (k == 0 || k == TOMB)
            && e.key
                .compare_exchange(k, addr, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            e.len.store(len, Ordering::Release);
            return true;
        }
    }
    false
}

fn find(addr: usize) -> Option<&'static Entry> {
    if addr == 0 || addr == TOMB || addr % PAGE != 0 || crate::reserve::base() == 0 {
        return None;
    }
    let t = table();
    let h = home(addr);
    for i in 0..TABLE_LEN {
        let e = &t[(h + i) & (TABLE_LEN - 1)];
        match e.key.load(Ordering::Acquire) {
            0 => return None,
            k if k == addr => return Some(e),
            _ => {}
        }
    }
    None
}

/// The mapped length of the large object starting at `addr`, if it is one.
pub(crate) fn len_of(addr: usize) -> Option<usize> {
    find(addr).map(|e| e.len.load(Ordering::Acquire))
}

fn map(len: usize) -> *mut u8 {
    // SAFETY: a fresh anonymous mapping of the kernel's choice; checked.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        core::ptr::null_mut()
    } else {
        p.cast()
    }
}

/// A large object of at least `size` bytes aligned to `align` (a power of
/// two), from the cache of freed ones or freshly mapped; null on failure.
/// With `zero` its first `size` bytes are zero.
pub(crate) fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    let Some(len) = size.max(1).checked_next_multiple_of(PAGE) else {
        return core::ptr::null_mut();
    };
    if len > isize::MAX as usize / 2 {
        return core::ptr::null_mut();
    }
    if align <= PAGE && len <= CACHE_MAX_OBJ {
        if let Some(p) = reuse(size, len, zero) {
            return p;
        }
    }
    let p = if align <= PAGE {
        map(len)
    } else {
        let Some(total) = len.checked_add(align) else {
            return core::ptr::null_mut();
        };
        let raw = map(total);
        if raw.is_null() {
            return raw;
        }
        let start = (raw as usize).next_multiple_of(align);
        let head = start - raw as usize;
        let tail = total - head - len;
        // SAFETY: both trimmed ranges are whole pages of the mapping just
        // made, outside `[start, start + len)`.
        unsafe {
            if head != 0 {
                libc::munmap(raw.cast(), head);
            }
            if tail != 0 {
                libc::munmap((start + len) as *mut libc::c_void, tail);
            }
        }
        start as *mut u8
    };
    if p.is_null() {
        return p;
    }
    track(p, len)
}

/// Serves `size` bytes (`len`, whole pages) from a cached mapping: one of
/// at most twice that, whole, or a smaller one grown by `mremap` (only the
/// added pages fault in). Its populated pages are what saves the page
/// faults. `None` when nothing cached fits (then nothing changed) or the
/// growth failed (then the mapping was given back).
fn reuse(size: usize, len: usize, zero: bool) -> Option<*mut u8> {
    let (addr, mapped) = with_cache(|c| c.take(len))?;
    CACHED_BYTES.fetch_sub(mapped, Ordering::Relaxed);
    let (addr, mapped) = if mapped >= len {
        (addr, mapped)
    } else {
        // SAFETY: `[addr, addr + mapped)` is a mapping of ours that left
        // the cache above; nobody uses it, so it may move.
        let p =
            unsafe { libc::mremap(addr as *mut libc::c_void, mapped, len, libc::MREMAP_MAYMOVE) };
        if p == libc::MAP_FAILED {
            // SAFETY: as above; it stays where it was and is given back.
            unsafe { libc::munmap(addr as *mut libc::c_void, mapped) };
            return None;
        }
        (p as usize, len)
    };
    if zero {
        // SAFETY: `[addr, addr + mapped)` is ours alone (above) and
        // `size <= len <= mapped`. Pages mremap added are zero already, but
        // one pass over all is simpler than tracking which.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, size) };
    }
    Some(track(addr as *mut u8, mapped))
}

/// Records the mapping `[p, p + len)` as a live large object and returns
/// `p`; unmaps it and returns null when the table is full.
fn track(p: *mut u8, len: usize) -> *mut u8 {
    if !insert(p as usize, len) {
        // SAFETY: the mapping is ours (fresh or out of the cache) and was
        // never handed out.
        unsafe { libc::munmap(p.cast(), len) };
        return core::ptr::null_mut();
    }
    LIVE.fetch_add(1, Ordering::Relaxed);
    LIVE_BYTES.fetch_add(len, Ordering::Relaxed);
    p
}

/// Gives every cached mapping back to the system.
pub(crate) fn trim() {
    let mut out = [(0usize, 0usize); CACHE_SLOTS];
    let n = with_cache(|c| {
        let n = c.len;
        out[..n].copy_from_slice(&c.slots[..n]);
        c.len = 0;
        c.bytes = 0;
        n
    });
    for &(addr, len) in &out[..n] {
        CACHED_BYTES.fetch_sub(len, Ordering::Relaxed);
        // SAFETY: a mapping of ours that left the cache above; nobody
        // else can reach it.
        unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    }
}

/// Takes the cache's lock before `fork()` (the last lock taken).
pub(crate) fn lock_for_fork() {
    CACHE_LOCK.acquire();
}

/// Releases what [`lock_for_fork`] took, in the parent or the child.
pub(crate) fn unlock_after_fork() {
    CACHE_LOCK.release();
}

/// Frees the large object at `addr`; `false` (nothing done) when `addr` is
/// not the start of a live large object.
///
/// # Safety
///
/// When `addr` is a live large object, nobody uses it afterwards.
pub(crate) unsafe fn free(addr: usize) -> bool {
    let Some(e) = find(addr) else {
        return false;
    };
    let len = e.len.load(Ordering::Acquire);
    if e.key
        .compare_exchange(addr, TOMB, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    LIVE.fetch_sub(1, Ordering::Relaxed);
    LIVE_BYTES.fetch_sub(len, Ordering::Relaxed);
    let mut evicted = [(0usize, 0usize); CACHE_SLOTS];
    let n = if len <= CACHE_MAX_OBJ {
        CACHED_BYTES.fetch_add(len, Ordering::Relaxed);
        with_cache(|c| c.keep(addr, len, &mut evicted))
    } else {
        evicted[0] = (addr, len);
        1
    };
    for &(addr, len) in &evicted[..n] {
        if len <= CACHE_MAX_OBJ {
            CACHED_BYTES.fetch_sub(len, Ordering::Relaxed);
        }
        // SAFETY: the mapping `[addr, addr + len)` was made by `alloc`; the
        // key removal above (or its eviction from the cache) made this call
        // its only owner, and the caller does not use it again.
        unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    }
    true
}

/// Resizes the page-aligned large object at `addr` (mapped `len` bytes) to
/// hold `new_size` bytes, moving it if the kernel must; null (the old
/// object intact) on failure.
///
/// # Safety
///
/// `addr` is a live large object of `len` bytes aligned to no more than a
/// page (mremap may move it to any page), not used concurrently.
pub(crate) unsafe fn remap(addr: usize, len: usize, new_size: usize) -> *mut u8 {
    let Some(new_len) = new_size.max(1).checked_next_multiple_of(PAGE) else {
        return core::ptr::null_mut();
    };
    if new_len > isize::MAX as usize / 2 {
        return core::ptr::null_mut();
    }
    if new_len == len {
        return addr as *mut u8;
    }
    // SAFETY: `[addr, addr + len)` is our mapping (caller).
    let p = unsafe {
        libc::mremap(
            addr as *mut libc::c_void,
            len,
            new_len,
            libc::MREMAP_MAYMOVE,
        )
    };
    if p == libc::MAP_FAILED {
        return core::ptr::null_mut();
    }
    let Some(e) = find(addr) else {
        unreachable!("a live large object is in the table")
    };
    if p as usize == addr {
        e.len.store(new_len, Ordering::Release);
    } else {
        e.key.store(TOMB, Ordering::Release);
        if !insert(p as usize, new_len) {
            // The old slot was just freed, so the table has room unless a
            // million other large objects raced for it: the moved object
            // can be neither returned untracked nor given back.
            crate::report::die(format_args!(
                "realloc({addr:#x}): the large-object table is full after the move to {:#x}",
                p as usize
            ));
        }
    }
    LIVE_BYTES.fetch_add(new_len, Ordering::Relaxed);
    LIVE_BYTES.fetch_sub(len, Ordering::Relaxed);
    p.cast()
}

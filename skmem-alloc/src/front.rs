//! The thread fronts, the class caches behind them, and process life
//! (first use, thread exit, `fork`, giving idle memory back).
//!
//! # Why an own thread-local front (and `Global` class caches)
//!
//! The allocator *is* the global allocator, so nothing it runs may allocate
//! through it while it is in the middle of an operation. Two things follow:
//!
//! * **The fast path is a const-initialised thread-local** ([`Front`]): one
//!   intrusive free list per class (head pointer, count, limit), linked
//!   through the free objects' first word. `thread_local!` with a `const`
//!   initialiser and no `Drop` compiles to a plain TLS access with no lazy
//!   initialisation and no destructor registration, so the first malloc on
//!   a thread allocates nothing and the fast path has no "first use" branch:
//!   a fresh front has empty lists and **limit 0**, so the first alloc (empty
//!   list) and the first free (count ≥ limit) both fall into the slow path,
//!   which registers the thread; a bin's limit is set by its first refill.
//!   Alloc is: class from a table, pop; free is: class from the address,
//!   check, push. No lock, no atomic read-modify-write. Refills start at a
//!   cache line's worth of objects (one object for classes of 64 bytes and
//!   up) per thread and class and double up to the class's batch, so a
//!   class a thread touches once costs little rather than a front of
//!   touched pages.
//! * **No passive false sharing**: a thread's first free of a class it has
//!   never allocated (limit still 0) is an object another thread allocated,
//!   whose neighbours that thread may be writing. The slow path refills the
//!   bin with the thread's own objects first and keeps the foreign one
//!   beneath them, so the thread's next allocations do not write into the
//!   other thread's cache line (Hoard's cache-scratch pattern; mimalloc gets
//!   the same by returning remote frees to the owning page).
//! * **Behind the fronts, each class is a [`Cache`] with [`Global`]
//!   locality** over a [`SlabCache`] over a [`Region`] carved from the
//!   reservation ([`Carve`]): a front refills with
//!   [`Cache::alloc_batch`] and flushes with [`Cache::free_batch`], half its
//!   limit at a time. `Global` needs no per-thread slot (`PerThread` would
//!   `Box` one on each thread's first use, the recursion that sank the last
//!   adapter); its mutex is cheap here because a thread visits it once per
//!   batch, not per object.
//!
//! # Chains: whole lists from one thread to another
//!
//! When memory flows one way (a producer allocates, a consumer frees), the
//! consumer's bin overflows and the producer's runs dry over and over.
//! Through the cache each batch would be unlinked and copied into a
//! magazine, copied out again and relinked by writing every object's first
//! word on the producer's side (a write miss per object). Instead, an
//! overflowing bin keeps its `limit / 2` most recently freed objects and
//! hands the rest, still linked, to its class's *chain depot* (a few
//! chains under the class lock); a bin past its slow start that runs empty
//! takes a whole chain as its list. Only when the depot is full (or empty)
//! does the batch go through the cache. Maintenance gives every chain back
//! to the cache, so idle memory is reclaimed as before; debug mode and
//! dead fronts never make chains (their objects go through the cache one
//! at a time).
//!
//! # Re-entrancy
//!
//! Every slow path runs with the thread's `busy` flag set ([`Busy`]). While
//! it is set, an allocation that the front cannot serve goes to the
//! internal metadata allocator ([`meta`](crate::meta)), and a free that
//! would overflow the front is kept in the front anyway (flushed later):
//! so the framework's own `Box`/`Vec`/`Arc`/`String` allocations during a
//! refill, a flush, a class's creation, `pthread_atfork` registration,
//! glibc's TLS bookkeeping or a stats snapshot never re-enter a class
//! cache. Front lists are only relinked before or after a framework call,
//! never across one, so a re-entrant pop or push sees them consistent.
//!
//! # Thread exit
//!
//! The slow path registers each thread once with a `pthread_key_t` whose
//! destructor ([`thread_exit`]) flushes every list back to the class caches
//! and marks the front *dead* (limits 0: from then on each free goes
//! straight to its cache and each alloc takes one object). A pthread key is
//! used rather than a Rust TLS destructor because registering the latter
//! can call `calloc` inside glibc; `pthread_setspecific` does not for the
//! first 32 keys (and if it does, the call is made while busy).
//!
//! # fork
//!
//! Every call into a class cache holds that class's [`SpinLock`]; class
//! creation holds `INIT_LOCK`; maintenance holds `RECLAIM_LOCK`; the
//! metadata allocator has its own, and the cache of freed large objects a
//! leaf lock. The `pthread_atfork` handlers (installed at first use) take
//! all of them in that order in *prepare* (the order every other path
//! nests them in: reclaim → class → meta, init → meta; the large cache's
//! lock is never held while taking another), so
//! no thread is inside the framework when the process forks, and release
//! them in *parent* and *child*. The child's other threads are gone; the
//! objects their fronts held are lost to it (bounded by the limits).
//!
//! # Debug mode (`SKMEM_DEBUG`)
//!
//! The process's `SKMEM_DEBUG` flags ([`skmem_slab::debug::env_flags`])
//! are read once, by the initialisation (after the reservation, before any
//! class exists; the slab caches of the classes pick them up themselves
//! through [`SlabConfig::new`]). When they ask for any check, correctness
//! comes before speed, as in libumem:
//!
//! * **The fronts are bypassed.** A bin's limit stays 0 and every refill
//!   takes one object, so the fast paths (unchanged: no new branch) always
//!   miss and every `malloc`/`free` reaches the class [`Cache`] one object
//!   at a time, through its checked paths: a double free (also `free(a);
//!   free(b); free(a)`), a foreign or interior free is reported with its
//!   address and aborts, instead of being kept on a list and handed out
//!   twice; no free object carries the list link (which the poison check
//!   would see as a write after free); and no object rests in a front, so
//!   the exit leak report lists as "held by a user" only what the program
//!   really holds. Frees made re-entrantly while the thread is busy still
//!   go on its list (the class lock may be held) and are flushed by the
//!   thread's next slow path on that class, or at thread exit.
//! * **With `guards`, the class regions get a redzone.** Each region is
//!   laid out with [`GUARDED`]'s stride (the class size plus at least
//!   [`GUARD_BYTES`](skmem_slab::debug::GUARD_BYTES), rounded up to the
//!   class's alignment, so objects stay as aligned as in the plain
//!   layout), while the slab cache's object size, and `usable_size`, stay
//!   the class size: the bytes between are the slab layer's redzone. The
//!   O(1) address check of `free` tests the plain grid first; an address
//!   off it goes to a cold path that accepts the redzoned grid
//!   ([`region_layout`]), so the debug-off path is unchanged.
//!
//! With no flags, nothing here differs from the description above.
//!
//! # Giving memory back without a helper thread
//!
//! Every 256th slow path of a thread reads the coarse monotonic clock; at
//! most once a second one thread (try-lock) runs maintenance: classes with
//! no refill or flush since the last round are purged (every magazine back
//! to the slab layer), the others get the cache's working-set reclaim, and
//! each slab layer returns its empty slabs, whose segments the region
//! discards (`madvise(MADV_DONTNEED)`). [`reclaim`] does it all now.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

use skmem_magazine::{Cache, CacheConfig, Global};
use skmem_slab::debug::{env_flags, DebugFlags};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::{AllocFlags, Error, NoCtor};

use crate::classes::{ClassInfo, GUARDED, INFO, MAX_BATCH, NCLASSES};
use crate::lock::SpinLock;
use crate::meta;
use crate::report::say;
use crate::reserve::{reserve, Carve, CarveConfig};

type ClassCache = Cache<SlabCache<Carve, NoCtor>, Global>;

const NOT_BUILT: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;

/// One size class: its cache (built on first use) and counters.
pub(crate) struct ClassState {
    /// Held around every call into `cache` (and taken by fork prepare).
    lock: SpinLock,
    ready: AtomicU8,
    cache: UnsafeCell<MaybeUninit<ClassCache>>,
    /// Objects resting in thread fronts, as of each thread's last slow path
    /// on this class.
    in_fronts: AtomicI64,
    refills: AtomicU64,
    flushes: AtomicU64,
    /// `refills + flushes` at the last maintenance round.
    idle_mark: AtomicU64,
    /// Whole front lists handed over between threads (guarded by `lock`;
    /// see "Chains" in the module docs).
    chains: UnsafeCell<ChainDepot>,
}

/// How many chains a class keeps beside its cache. With 4, a
/// producer/consumer pair (benches/malloc/prodcons.c) still sent over a
/// third of its objects through the magazines (the depot was full when the
/// consumer ran ahead); with 16, fewer than 0.1 %. Idle objects stay
/// bounded: see [`DEPOT_BYTES`]; maintenance gives them back.
const DEPOT_CHAINS: usize = 16;

/// The most bytes of objects a class's chains hold, at full chains (a
/// chain is at most `limit - limit / 2 + 1` objects): 16 chains of small
/// objects, fewer of large ones, always at least one.
const DEPOT_BYTES: usize = 1 << 20;

/// How many chains class `c` keeps (see [`DEPOT_BYTES`]).
fn depot_cap(c: usize) -> usize {
    let info = &INFO[c];
    let chain_bytes = info.size * (info.limit - info.limit / 2 + 1) as usize;
    (DEPOT_BYTES / chain_bytes).clamp(1, DEPOT_CHAINS)
}

/// A null-terminated front list cut off a thread's bin.
#[derive(Clone, Copy)]
struct Chain {
    head: *mut u8,
    count: u32,
}

/// A class's chains: `chains[..len]` are live.
struct ChainDepot {
    len: usize,
    chains: [Chain; DEPOT_CHAINS],
}

// SAFETY: `cache` is written once, by the thread that moves `ready` from
// NOT_BUILT to READY under INIT_LOCK, before the Release store; it is read
// only after an Acquire load saw READY, and never written again. The cache
// itself is Send + Sync; `chains` is read and written only under `lock`
// (its raw pointers are free objects owned by the depot); everything else
// is atomic.
unsafe impl Sync for ClassState {}

impl ClassState {
    const fn new() -> Self {
        ClassState {
            lock: SpinLock::new(),
            ready: AtomicU8::new(NOT_BUILT),
            cache: UnsafeCell::new(MaybeUninit::uninit()),
            in_fronts: AtomicI64::new(0),
            refills: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            idle_mark: AtomicU64::new(0),
            chains: UnsafeCell::new(ChainDepot {
                len: 0,
                chains: [Chain {
                    head: ptr::null_mut(),
                    count: 0,
                }; DEPOT_CHAINS],
            }),
        }
    }

    /// The cache, if built.
    #[inline]
    fn built(&self) -> Option<&ClassCache> {
        if self.ready.load(Ordering::Acquire) == READY {
            // SAFETY: READY was published after the cache was written (see
            // the Sync impl); it is never written again.
            Some(unsafe { (*self.cache.get()).assume_init_ref() })
        } else {
            None
        }
    }
}

pub(crate) static CLASSES: [ClassState; NCLASSES] = [const { ClassState::new() }; NCLASSES];

/// Class `c` has a region (its addresses can be ours): a copy of
/// `CLASSES[c].ready == READY` that every `free` reads. It lives apart from
/// [`ClassState`] because that one's cache line also holds the class lock
/// and counters, which other threads' refills and flushes write: reading
/// the flag there made frees miss the cache whenever another thread had
/// just taken the lock. This array is written once per class.
static CLASS_READY: [AtomicBool; NCLASSES] = [const { AtomicBool::new(false) }; NCLASSES];

/// `true` once class `c` has a region (its addresses can be ours).
#[inline(always)]
pub(crate) fn class_ready(c: usize) -> bool {
    CLASS_READY[c].load(Ordering::Relaxed)
}

static INIT_LOCK: SpinLock = SpinLock::new();
static RECLAIM_LOCK: SpinLock = SpinLock::new();

const INIT_NONE: u8 = 0;
const INIT_RUNNING: u8 = 1;
const INIT_DONE: u8 = 2;
const INIT_FAILED: u8 = 3;
static INIT: AtomicU8 = AtomicU8::new(INIT_NONE);
/// The process's `SKMEM_DEBUG` flags (bits of [`DebugFlags`]), read once by
/// the initialisation, before any class exists; only the slow paths and
/// class creation read them (see "Debug mode" in the module docs).
static DEBUG_FLAGS: AtomicU32 = AtomicU32::new(0);
static KEY: AtomicU32 = AtomicU32::new(0);
/// Coarse milliseconds of the last maintenance round.
static LAST_MAINTENANCE: AtomicU64 = AtomicU64::new(0);

const NEW: u8 = 0;
const LIVE: u8 = 1;
const DEAD: u8 = 2;

/// One class's list in a thread front.
#[derive(Clone, Copy)]
struct Bin {
    head: *mut u8,
    count: u32,
    /// Pushes beyond this go to the slow path (0 until the bin's first
    /// refill, and after thread exit).
    limit: u32,
    /// `count` as last added to the class's `in_fronts`.
    synced: u32,
    /// Objects the next refill takes: 1 at first, doubling per refill up
    /// to the class's batch (slow start: a class a thread uses once costs
    /// it one object, not a batch of touched pages).
    burst: u32,
}

/// A thread's front: per-class lists and the slow-path state.
pub(crate) struct Front {
    bins: [Bin; NCLASSES],
    busy: bool,
    state: u8,
    slow_paths: u32,
}

impl Front {
    const NEW: Front = Front {
        bins: [Bin {
            head: ptr::null_mut(),
            count: 0,
            limit: 0,
            synced: 0,
            burst: 1,
        }; NCLASSES],
        busy: false,
        state: NEW,
        slow_paths: 0,
    };
}

thread_local! {
    static FRONT: UnsafeCell<Front> = const { UnsafeCell::new(Front::NEW) };
}

/// The calling thread's front. Always accessible: it has a const
/// initialiser and no destructor.
#[inline(always)]
fn front() -> *mut Front {
    FRONT.with(|f| f.get())
}

/// The thread's busy flag, set for the guard's life; `None` when it was
/// already set (a re-entrant call).
struct Busy(*mut Front);

impl Busy {
    /// # Safety
    ///
    /// `f` is the calling thread's front.
    #[inline]
    unsafe fn enter(f: *mut Front) -> Option<Busy> {
        // SAFETY: the thread's own front; no reference into it is live.
        unsafe {
            if (*f).busy {
                None
            } else {
                (*f).busy = true;
                Some(Busy(f))
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // SAFETY: the front of the thread that created the guard (a guard
        // never leaves its thread: it holds a raw pointer, so it is !Send).
        unsafe { (*self.0).busy = false };
    }
}

/// The list link stored in a free object's first word.
///
/// # Safety
///
/// `p` is a free object on (or being put on) a front list: at least 8
/// bytes, 8-aligned (every class size is a multiple of 8 and segments are
/// page aligned), owned by the list.
#[inline(always)]
#[allow(clippy::cast_ptr_alignment)] // 8-aligned by the class layout (above)
unsafe fn read_link(p: *mut u8) -> *mut u8 {
    // SAFETY: per the contract.
    unsafe { p.cast::<*mut u8>().read() }
}

/// Stores the list link in a free object's first word.
///
/// # Safety
///
/// As [`read_link`].
#[inline(always)]
#[allow(clippy::cast_ptr_alignment)] // 8-aligned by the class layout
unsafe fn write_link(p: *mut u8, next: *mut u8) {
    // SAFETY: per the contract.
    unsafe { p.cast::<*mut u8>().write(next) }
}

/// Pushes `p` on a bin (no limit check).
///
/// # Safety
///
/// `bin` is a bin of the calling thread's front; `p` is a free object of
/// the bin's class, at least 8 bytes, 8-aligned, owned by the caller.
#[inline(always)]
unsafe fn push(bin: *mut Bin, p: *mut u8) {
    // SAFETY: per the contract.
    unsafe {
        write_link(p, (*bin).head);
        (*bin).head = p;
        (*bin).count += 1;
    }
}

/// The fast allocation path: pops an object of class `c` from the thread's
/// front, or takes the slow path.
///
/// # Safety
///
/// `c < NCLASSES`.
#[inline(always)]
pub(crate) unsafe fn alloc_class(c: usize) -> *mut u8 {
    let f = front();
    // SAFETY: the thread's own front; `c` is in range; objects on a list
    // are free objects whose first word is the link.
    unsafe {
        let bin = ptr::addr_of_mut!((*f).bins).cast::<Bin>().add(c);
        let head = (*bin).head;
        if !head.is_null() {
            (*bin).head = read_link(head);
            (*bin).count -= 1;
            return head;
        }
        alloc_slow(c)
    }
}

/// The fast free path for an object already located in class `c`.
///
/// # Safety
///
/// `p` is an object of class `c` handed out by this allocator and not
/// freed since; nobody uses it afterwards.
#[inline(always)]
pub(crate) unsafe fn free_class(p: *mut u8, c: usize) {
    let f = front();
    // SAFETY: the thread's own front; `p` is a free object of class c.
    unsafe {
        let bin = ptr::addr_of_mut!((*f).bins).cast::<Bin>().add(c);
        if (*bin).head == p {
            // The commonest double free (`free(p); free(p)`), caught for
            // one compare: pushing it again would make the list a cycle.
            double_free(p, c);
        }
        if (*bin).count < (*bin).limit {
            push(bin, p);
            return;
        }
        free_slow(p, c)
    }
}

#[cold]
#[inline(never)]
fn double_free(p: *mut u8, c: usize) -> ! {
    crate::report::die(format_args!(
        "free({:#x}): double free of a {}-byte object (it is the last block this thread freed)",
        p as usize, INFO[c].size
    ))
}

/// The process's debug flags (empty unless `SKMEM_DEBUG` asks for checks).
fn debug_flags() -> DebugFlags {
    DebugFlags::from_bits_truncate(DEBUG_FLAGS.load(Ordering::Relaxed))
}

/// `true` when the class caches run the slab layer's debug checks: the
/// thread fronts are then bypassed (every object goes through the cache).
fn debug_mode() -> bool {
    debug_flags().enabled()
}

/// The layout of class `c`'s region: [`GUARDED`]'s when the debug mode has
/// redzones, else [`INFO`]'s (whose stride is the class size).
pub(crate) fn region_layout(c: usize) -> &'static ClassInfo {
    if debug_flags().contains(DebugFlags::GUARDS) {
        &GUARDED[c]
    } else {
        &INFO[c]
    }
}

/// Runs the one-time initialisation (reservation, thread-exit key, fork
/// handlers) if needed. Must be called with the thread busy, so that the
/// allocations `pthread_atfork` may make do not come back here.
fn ensure_init() -> bool {
    match INIT.load(Ordering::Acquire) {
        INIT_DONE => true,
        INIT_FAILED => false,
        _ => init_slow(),
    }
}

#[cold]
fn init_slow() -> bool {
    if INIT
        .compare_exchange(
            INIT_NONE,
            INIT_RUNNING,
            Ordering::Acquire,
            Ordering::Acquire,
        )
        .is_ok()
    {
        let ok = reserve().is_some()
            && {
                // Read once, here, before any class exists; after the
                // reservation, because reading the environment allocates
                // (from the metadata allocator: the thread is busy).
                let flags = env_flags();
                if flags.enabled() {
                    DEBUG_FLAGS.store(flags.bits(), Ordering::Relaxed);
                }
                true
            }
            && {
                let mut key: libc::pthread_key_t = 0;
                // SAFETY: `key` is a valid out-pointer; the destructor is an
                // `extern "C"` function that never unwinds.
                let made = unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } == 0;
                if made {
                    KEY.store(key, Ordering::Relaxed);
                }
                made
            }
            && {
                // SAFETY: the handlers are `extern "C"` functions that never
                // unwind and allocate nothing.
                let rc = unsafe {
                    libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child))
                };
                rc == 0
            };
        if !ok {
            say(format_args!(
                "initialisation failed (address-space reservation, pthread key or atfork); every allocation will fail"
            ));
        }
        INIT.store(if ok { INIT_DONE } else { INIT_FAILED }, Ordering::Release);
        return ok;
    }
    loop {
        match INIT.load(Ordering::Acquire) {
            INIT_DONE => return true,
            INIT_FAILED => return false,
            // SAFETY: sched_yield has no preconditions.
            _ => unsafe {
                libc::sched_yield();
            },
        }
    }
}

/// Initialises the allocator if needed (making the calling thread busy for
/// it); `false` when it cannot be, or when called re-entrantly before the
/// reservation exists.
pub(crate) fn initialised() -> bool {
    if INIT.load(Ordering::Acquire) == INIT_DONE {
        return true;
    }
    // SAFETY: the calling thread's front.
    match unsafe { Busy::enter(front()) } {
        Some(_busy) => ensure_init(),
        None => crate::reserve::base() != 0,
    }
}

/// Builds class `c`'s cache on first use (under INIT_LOCK); `None` when it
/// cannot be built (reported once on stderr).
fn class_cache(c: usize) -> Option<&'static ClassCache> {
    let st = &CLASSES[c];
    if let Some(cache) = st.built() {
        return Some(cache);
    }
    build_class(c)
}

#[cold]
#[inline(never)]
fn build_class(c: usize) -> Option<&'static ClassCache> {
    let st = &CLASSES[c];
    let _g = INIT_LOCK.lock();
    match st.ready.load(Ordering::Acquire) {
        READY => return st.built(),
        FAILED => return None,
        _ => {}
    }
    match make_cache(c, region_layout(c)) {
        Ok(cache) => {
            // SAFETY: NOT_BUILT under INIT_LOCK: nobody reads or writes
            // the cell until READY is published below.
            unsafe { (*st.cache.get()).write(cache) };
            st.ready.store(READY, Ordering::Release);
            CLASS_READY[c].store(true, Ordering::Release);
            st.built()
        }
        Err(err) => {
            say(format_args!(
                "size class {c} ({} bytes) cannot be built: {err}",
                INFO[c].size
            ));
            st.ready.store(FAILED, Ordering::Release);
            None
        }
    }
}

/// The layers of one class: a region over its slice of the reservation
/// with exactly the layout's object stride and segment size, a slab cache
/// of the class's object size (the rest of the stride, in the guarded
/// layout, is the debug redzone), a magazine cache (registered, so it
/// shows in `skmem::all_stats`).
fn make_cache(c: usize, info: &ClassInfo) -> skmem_traits::Result<ClassCache> {
    let name = format!("skmem-alloc.{}", info.size);
    let params = RegionParams::new(name.clone(), info.stride, info.objs * info.seg_count)
        .seg_size(info.seg)
        .align(info.align.min(skmem_traits::CACHE_LINE_SIZE));
    let layout = params.configure()?;
    if layout.obj_size != info.stride
        || layout.seg_size != info.seg
        || layout.seg_count as usize != info.seg_count
    {
        return Err(Error::invalid_param(
            "seg_size",
            layout.seg_size as u64,
            "the region layout differs from the size class's (object, segment or count)",
        ));
    }
    let region = Region::<Carve>::new(params, CarveConfig { class: c })?;
    let slab = SlabCache::new(region, SlabConfig::new(name, info.size), NoCtor)?;
    Cache::new(slab, CacheConfig::default())
}

/// Runs a call into a class cache. The layers panic only on a broken
/// invariant (a double free the slab layer catches, a corrupted block);
/// unwinding out of an allocator is undefined behaviour, so such a panic
/// ends the process here, after the panic hook has printed its message.
#[inline(always)]
fn in_cache<R>(c: usize, what: &str, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => crate::report::die(format_args!(
            "the {}-byte size class panicked during {what} (double free or corrupted block?)",
            INFO[c].size
        )),
    }
}

/// Makes the thread known: its exit key is set (so [`thread_exit`] runs).
/// A bin's limit comes into force at its first refill (see [`refill`]).
///
/// # Safety
///
/// `f` is the calling thread's front; the thread is busy.
unsafe fn register(f: *mut Front) {
    // SAFETY: KEY was created by the initialisation (done: callers checked
    // it); any non-null value makes the destructor run at thread exit.
    unsafe { libc::pthread_setspecific(KEY.load(Ordering::Relaxed), 1 as *const libc::c_void) };
    // SAFETY: the thread's own front.
    unsafe { (*f).state = LIVE };
}

/// Brings class `c`'s `in_fronts` up to date with this thread's count.
///
/// # Safety
///
/// `bin` is class `c`'s bin of the calling thread's front.
unsafe fn sync_count(bin: *mut Bin, c: usize) {
    // SAFETY: the thread's own front.
    unsafe {
        let delta = (*bin).count as i64 - (*bin).synced as i64;
        if delta != 0 {
            CLASSES[c].in_fronts.fetch_add(delta, Ordering::Relaxed);
            (*bin).synced = (*bin).count;
        }
    }
}

#[cold]
#[inline(never)]
unsafe fn alloc_slow(c: usize) -> *mut u8 {
    let f = front();
    let info = &INFO[c];
    // SAFETY: the thread's own front.
    let Some(busy) = (unsafe { Busy::enter(f) }) else {
        // Re-entered from inside a slow path: internal metadata.
        return meta::alloc(info.size, info.align);
    };
    if !ensure_init() {
        return ptr::null_mut();
    }
    // SAFETY: the thread's own front, busy.
    let p = unsafe {
        if (*f).state == NEW {
            register(f);
        }
        let p = refill(f, c);
        if p.is_null() {
            fallback(c)
        } else {
            p
        }
    };
    drop(busy);
    // SAFETY: the thread's own front, not busy.
    unsafe { maintain(f) };
    p
}

/// Takes a batch of class `c` from its cache: returns one object and puts
/// the rest on the thread's list. Null when the class has nothing.
///
/// # Safety
///
/// `f` is the calling thread's front; the thread is busy.
unsafe fn refill(f: *mut Front, c: usize) -> *mut u8 {
    let Some(cache) = class_cache(c) else {
        return ptr::null_mut();
    };
    let st = &CLASSES[c];
    // SAFETY: the thread's own front. In debug mode the bin keeps limit 0
    // and takes one object at a time, as after thread exit.
    let dead = unsafe { (*f).state } == DEAD || debug_mode();
    // SAFETY: the thread's own front.
    let bin = unsafe { ptr::addr_of_mut!((*f).bins[c]) };
    let want = if dead {
        1
    } else {
        // SAFETY: as above.
        unsafe {
            (*bin).limit = INFO[c].limit;
            let want = (*bin)
                .burst
                .clamp(INFO[c].first_refill, INFO[c].batch.max(1));
            (*bin).burst = (want * 2).min(INFO[c].batch.max(1));
            want as usize
        }
    };
    // A bin past its slow start that is empty takes a whole chain if one
    // waits: no object is copied or relinked.
    // SAFETY: the thread's own front.
    if !dead && want == INFO[c].batch as usize && unsafe { (*bin).head.is_null() } {
        // SAFETY: the bin is the thread's own and empty.
        let p = unsafe { take_chain(bin, c) };
        if !p.is_null() {
            return p;
        }
    }
    let mut buf = [MaybeUninit::<NonNull<u8>>::uninit(); MAX_BATCH];
    let n = {
        let _g = st.lock.lock();
        in_cache(c, "a refill", || {
            cache.alloc_batch(&mut buf[..want], AllocFlags::NoSleep)
        })
    };
    if n == 0 {
        return ptr::null_mut();
    }
    st.refills.fetch_add(1, Ordering::Relaxed);
    // SAFETY: `alloc_batch` initialised the first n; the bin is the
    // thread's own; each object is a free object of class c, which the
    // list now owns. The bin is relinked only now, after the framework call.
    unsafe {
        for slot in &buf[1..n] {
            push(bin, slot.assume_init().as_ptr());
        }
        sync_count(bin, c);
        buf[0].assume_init().as_ptr()
    }
}

/// Class `c` is exhausted (its slice is full): one object from the next
/// classes up whose alignment is at least class c's, else a large object.
///
/// # Safety
///
/// The thread is busy and the allocator initialised.
unsafe fn fallback(c: usize) -> *mut u8 {
    let info = &INFO[c];
    for (up, upper) in INFO.iter().enumerate().skip(c + 1) {
        if upper.align < info.align {
            continue;
        }
        let Some(cache) = class_cache(up) else {
            continue;
        };
        let got = {
            let _g = CLASSES[up].lock.lock();
            in_cache(up, "a fallback allocation", || cache.alloc())
        };
        if let Some(p) = got {
            return p.as_ptr();
        }
    }
    crate::large::alloc(info.size, crate::classes::PAGE, false)
}

#[cold]
#[inline(never)]
unsafe fn free_slow(p: *mut u8, c: usize) {
    let f = front();
    // SAFETY: the thread's own front; `p` is a free object of class c
    // (caller).
    unsafe {
        let bin = ptr::addr_of_mut!((*f).bins[c]);
        let Some(busy) = Busy::enter(f) else {
            // Re-entered: keep it; a later slow path flushes the excess.
            push(bin, p);
            return;
        };
        if (*f).state == NEW {
            register(f);
        }
        if (*f).state == DEAD || debug_mode() {
            // After this thread's exit destructor, or in debug mode (where
            // the cache's checked free must see every free): straight to
            // the cache.
            if let Some(cache) = CLASSES[c].built() {
                {
                    let _g = CLASSES[c].lock.lock();
                    let obj = NonNull::new_unchecked(p);
                    // SAFETY: forwarded from the caller.
                    in_cache(c, "a free", || cache.free(obj));
                }
                // Frees made re-entrantly (while busy) were kept on the
                // list; they go to the cache now.
                let count = (*bin).count as usize;
                if count != 0 {
                    flush(f, c, count);
                }
            }
            return;
        }
        if (*bin).limit == 0 {
            // The thread's first free of this class, before it ever
            // allocated one: `p` was allocated by another thread, which
            // may still be writing its neighbours. Handing it out here
            // would have two threads writing one cache line (passive
            // false sharing), so the thread takes its own objects first
            // and keeps `p` beneath them, used only once they are all out.
            push(bin, p);
            let own = refill(f, c);
            if !own.is_null() {
                push(bin, own);
                sync_count(bin, c);
            }
            drop(busy);
            maintain(f);
            return;
        }
        push(bin, p);
        let keep = (*bin).limit / 2;
        if !give_chain(bin, c, keep) {
            flush(f, c, (*bin).count.saturating_sub(keep) as usize);
        }
        drop(busy);
        maintain(f);
    }
}

/// Cuts the bin's list after its first (most recently freed) `keep`
/// objects and puts the rest, still linked, in class `c`'s chain depot:
/// the walk reads only the links of objects this thread just freed, and
/// nothing is copied. `false`, with the bin unchanged, when the depot is
/// full or the bin has no more than `keep` objects.
///
/// # Safety
///
/// `bin` is class `c`'s bin of the calling thread's front, which is busy
/// and not in debug mode; class c is built (the bin holds its objects).
unsafe fn give_chain(bin: *mut Bin, c: usize, keep: u32) -> bool {
    let st = &CLASSES[c];
    // SAFETY: the thread's own bin; its first `count` objects are linked,
    // the list ends with null.
    unsafe {
        let count = (*bin).count;
        if keep == 0 || count <= keep {
            return false;
        }
        let mut last = (*bin).head;
        for _ in 1..keep {
            last = read_link(last);
        }
        let rest = read_link(last);
        let given = {
            let _g = st.lock.lock();
            let depot = &mut *st.chains.get();
            if depot.len >= depot_cap(c) {
                false
            } else {
                depot.chains[depot.len] = Chain {
                    head: rest,
                    count: count - keep,
                };
                depot.len += 1;
                true
            }
        };
        if given {
            // `last` stays the thread's: end its list there.
            write_link(last, ptr::null_mut());
            (*bin).count = keep;
            st.flushes.fetch_add(1, Ordering::Relaxed);
            sync_count(bin, c);
        }
        given
    }
}

/// Takes the newest chain of class `c`'s depot as the bin's list and pops
/// one object off it; null (bin unchanged) when the depot is empty.
///
/// # Safety
///
/// `bin` is class `c`'s bin of the calling thread's front, empty; the
/// thread is busy.
unsafe fn take_chain(bin: *mut Bin, c: usize) -> *mut u8 {
    let st = &CLASSES[c];
    let chain = {
        let _g = st.lock.lock();
        // SAFETY: under the class lock.
        let depot = unsafe { &mut *st.chains.get() };
        if depot.len == 0 {
            return ptr::null_mut();
        }
        depot.len -= 1;
        depot.chains[depot.len]
    };
    st.refills.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the chain is `count` free objects of class c linked through
    // their first word, now owned by the thread's (empty) bin.
    unsafe {
        let p = chain.head;
        (*bin).head = read_link(p);
        (*bin).count = chain.count - 1;
        sync_count(bin, c);
        p
    }
}

/// Objects resting in class `c`'s chains.
///
/// # Safety
///
/// The caller holds class c's lock.
unsafe fn chained(c: usize) -> u64 {
    // SAFETY: under the class lock (caller).
    let depot = unsafe { &*CLASSES[c].chains.get() };
    depot.chains[..depot.len]
        .iter()
        .map(|chain| u64::from(chain.count))
        .sum()
}

/// Gives every chain of class `c` back to its cache.
///
/// # Safety
///
/// The caller holds class c's lock and is busy; `cache` is class c's.
unsafe fn drain_chains(c: usize, cache: &ClassCache) {
    // SAFETY: under the class lock (caller).
    let depot = unsafe { &mut *CLASSES[c].chains.get() };
    let mut buf = [NonNull::<u8>::dangling(); MAX_BATCH];
    while depot.len > 0 {
        depot.len -= 1;
        let mut p = depot.chains[depot.len].head;
        while !p.is_null() {
            let mut k = 0;
            while k < MAX_BATCH && !p.is_null() {
                // SAFETY: a chain's objects are free objects of class c,
                // linked through their first word, ending with null.
                unsafe {
                    buf[k] = NonNull::new_unchecked(p);
                    p = read_link(p);
                }
                k += 1;
            }
            // SAFETY: objects of this cache, each once, no longer used.
            unsafe { cache.free_batch(&buf[..k]) };
        }
    }
}

/// Gives `n` objects of the thread's class-`c` list back to the cache.
///
/// # Safety
///
/// `f` is the calling thread's front; the thread is busy; the allocator is
/// initialised and class c built (the list holds its objects).
unsafe fn flush(f: *mut Front, c: usize, mut n: usize) {
    let Some(cache) = CLASSES[c].built() else {
        return;
    };
    // SAFETY: the thread's own front.
    let bin = unsafe { ptr::addr_of_mut!((*f).bins[c]) };
    let mut buf = [NonNull::<u8>::dangling(); MAX_BATCH];
    while n > 0 {
        let mut k = 0;
        // SAFETY: the list's objects are free objects of class c; they are
        // unlinked before the framework call, so a re-entrant push or pop
        // sees a consistent list.
        unsafe {
            while k < n.min(MAX_BATCH) && !(*bin).head.is_null() {
                let head = (*bin).head;
                (*bin).head = read_link(head);
                (*bin).count -= 1;
                buf[k] = NonNull::new_unchecked(head);
                k += 1;
            }
        }
        if k == 0 {
            break;
        }
        {
            let _g = CLASSES[c].lock.lock();
            // SAFETY: objects of this cache, each once, no longer used.
            in_cache(c, "a flush", || unsafe { cache.free_batch(&buf[..k]) });
        }
        CLASSES[c].flushes.fetch_add(1, Ordering::Relaxed);
        n -= k;
    }
    // SAFETY: class c's bin of this thread.
    unsafe { sync_count(bin, c) };
}

/// The `pthread_key_t` destructor: returns everything the exiting thread's
/// front holds and marks it dead.
unsafe extern "C" fn thread_exit(_value: *mut libc::c_void) {
    let f = front();
    // SAFETY: the exiting thread's own front (TLS stays valid through the
    // key destructors); it is not busy (destructors run outside malloc).
    unsafe {
        (*f).state = DEAD;
        for bin in (*f).bins.iter_mut() {
            bin.limit = 0;
        }
        let Some(_busy) = Busy::enter(f) else {
            return;
        };
        // Frees made by the framework during a flush land on the lists
        // again: a few rounds empty them.
        for _ in 0..4 {
            let mut any = false;
            for c in 0..NCLASSES {
                let count = (*f).bins[c].count as usize;
                if count != 0 {
                    any = true;
                    flush(f, c, count);
                }
            }
            if !any {
                break;
            }
        }
        // A bin emptied by allocations since its last slow path still
        // counts its old number in the class's `in_fronts`.
        for c in 0..NCLASSES {
            sync_count(ptr::addr_of_mut!((*f).bins[c]), c);
        }
    }
}

/// Counts a slow path; every 256th looks at the clock and, at most once a
/// second process-wide, runs maintenance.
///
/// # Safety
///
/// `f` is the calling thread's front, not busy.
unsafe fn maintain(f: *mut Front) {
    // SAFETY: the thread's own front.
    unsafe {
        (*f).slow_paths = (*f).slow_paths.wrapping_add(1);
        if (*f).slow_paths % 256 != 0 || (*f).state != LIVE {
            return;
        }
    }
    let now = coarse_millis();
    if now.wrapping_sub(LAST_MAINTENANCE.load(Ordering::Relaxed)) < 1000
        || !RECLAIM_LOCK.try_acquire()
    {
        return;
    }
    LAST_MAINTENANCE.store(now, Ordering::Relaxed);
    // SAFETY: the thread's own front, not busy.
    if let Some(_busy) = unsafe { Busy::enter(f) } {
        reclaim_classes(false);
    }
    RECLAIM_LOCK.release();
}

fn coarse_millis() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// One maintenance round over the built classes (RECLAIM_LOCK held, the
/// thread busy): idle classes (or all, with `purge_all`) are purged, the
/// others reclaimed; every slab layer returns its empty slabs.
fn reclaim_classes(purge_all: bool) {
    for (c, st) in CLASSES.iter().enumerate() {
        let Some(cache) = st.built() else {
            continue;
        };
        let activity = st.refills.load(Ordering::Relaxed) + st.flushes.load(Ordering::Relaxed);
        let idle = st.idle_mark.swap(activity, Ordering::Relaxed) == activity;
        let _g = st.lock.lock();
        in_cache(c, "maintenance", || {
            // SAFETY: under the class lock, busy (caller).
            unsafe { drain_chains(c, cache) };
            if purge_all || idle {
                cache.purge();
            } else {
                cache.update();
                cache.reclaim(false);
            }
            cache.layer().reap();
        });
    }
}

/// Flushes the calling thread's front, purges every class's magazines and
/// returns every empty slab's memory, and every cached freed large object,
/// to the system now.
pub fn reclaim() {
    if !initialised() {
        return;
    }
    let f = front();
    // SAFETY: the thread's own front.
    let Some(_busy) = (unsafe { Busy::enter(f) }) else {
        return;
    };
    // SAFETY: as above, busy.
    unsafe {
        if (*f).state == LIVE {
            for c in 0..NCLASSES {
                let count = (*f).bins[c].count as usize;
                flush(f, c, count);
            }
        }
    }
    RECLAIM_LOCK.acquire();
    reclaim_classes(true);
    RECLAIM_LOCK.release();
    crate::large::trim();
}

extern "C" fn fork_prepare() {
    INIT_LOCK.acquire();
    RECLAIM_LOCK.acquire();
    for st in CLASSES.iter() {
        st.lock.acquire();
    }
    meta::lock_for_fork();
    crate::large::lock_for_fork();
}

extern "C" fn fork_parent() {
    crate::large::unlock_after_fork();
    meta::unlock_after_fork();
    for st in CLASSES.iter().rev() {
        st.lock.release();
    }
    RECLAIM_LOCK.release();
    INIT_LOCK.release();
}

/// Times `fork_child` ran in this process (test hook).
static FORK_CHILDREN: AtomicU64 = AtomicU64::new(0);

extern "C" fn fork_child() {
    // The forking thread took every lock in prepare and is the only thread
    // of the child: releasing them leaves the child with consistent caches
    // (no thread was inside one) and its own front intact.
    fork_parent();
    FORK_CHILDREN.fetch_add(1, Ordering::Relaxed);
}

/// How many times the atfork child handler ran in this process.
pub(crate) fn fork_children() -> u64 {
    FORK_CHILDREN.load(Ordering::Relaxed)
}

/// What one class holds, from its cache's statistics and the fronts'
/// counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Object size of the class.
    pub size: usize,
    /// Objects the program holds: out of the slab layer, minus those in
    /// magazines and in thread fronts (fronts as of each thread's last slow
    /// path on the class).
    pub objects_in_use: i64,
    /// `objects_in_use * size`.
    pub bytes_in_use: i64,
    /// Objects resting in thread fronts.
    pub in_fronts: i64,
    /// Objects resting in the cache's magazines and depot, and in the
    /// class's chains (whole front lists waiting for another thread).
    pub in_magazines: u64,
    /// Bytes of live segments (slabs) of the class region.
    pub slab_bytes: u64,
    /// Allocations and frees served by the cache's CPU layer (magazine
    /// hits).
    pub magazine_allocs: u64,
    /// See `magazine_allocs`.
    pub magazine_frees: u64,
    /// Batches moved from the cache to fronts, and back.
    pub refills: u64,
    /// See `refills`.
    pub flushes: u64,
}

/// Statistics of class `index` (all zero but the size for a class never
/// used); `None` past the last class.
pub fn class_stats(index: usize) -> Option<ClassStats> {
    let info = INFO.get(index)?;
    let st = &CLASSES[index];
    let mut out = ClassStats {
        size: info.size,
        in_fronts: st.in_fronts.load(Ordering::Relaxed),
        refills: st.refills.load(Ordering::Relaxed),
        flushes: st.flushes.load(Ordering::Relaxed),
        ..ClassStats::default()
    };
    let Some(cache) = st.built() else {
        return Some(out);
    };
    // The snapshot allocates (names): keep those allocations internal when
    // called from inside the allocator.
    // SAFETY: the thread's own front.
    let _busy = unsafe { Busy::enter(front()) };
    let (s, chained) = {
        let _g = st.lock.lock();
        // SAFETY: under the class lock.
        let chained = unsafe { chained(index) };
        (
            in_cache(index, "a stats snapshot", || cache.stats()),
            chained,
        )
    };
    let out_of_slab = s.slab.sl_bufinuse as i64;
    out.in_magazines = s.cached_objs + chained;
    out.objects_in_use = out_of_slab - out.in_magazines as i64 - out.in_fronts;
    out.bytes_in_use = out.objects_in_use * info.size as i64;
    out.slab_bytes = s.slab.slabsize * s.slab.sl_create.saturating_sub(s.slab.sl_destroy);
    out.magazine_allocs = s.cpu_alloc;
    out.magazine_frees = s.cpu_free;
    Some(out)
}

/// `true` when the current thread is inside one of the allocator's slow
/// paths (tests use it to check the re-entrancy guard is released).
pub(crate) fn thread_is_busy() -> bool {
    // SAFETY: the thread's own front.
    unsafe { (*front()).busy }
}

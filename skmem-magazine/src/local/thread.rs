//! Thread-local slots, flushed through an exit hook when their thread ends.
//!
//! # How a thread finds its slot
//!
//! The fast path first asks a one-entry thread-local memo (`MEMO`): the
//! generation of the cache the thread used last and its slot there. Every
//! [`PerThreadSlots`] gets a process-wide generation number that is never
//! reused (a 64-bit counter from 1; 0 means "no cache"), so a memo hit is one
//! compare against the cache and one thread-local load, with no bounds check
//! and no table walk. A miss goes to the out-of-line slow path below, which
//! refills the memo.
//!
//! Behind the memo, every [`PerThreadSlots`] gets a small process-wide `id`
//! (reused once free). Every thread
//! that used a per-thread cache has a *table*: an array of slot pointers
//! indexed by `id`, published to the thread's fast path through a
//! `const`-initialised thread-local (`FAST`: pointer and length, no lazy
//! initialisation, no destructor). The fast path is a bounds check and one
//! relaxed load; a miss goes to the cold `register`, which creates the slot
//! (calling the `init` hook under the slot list's lock), files it in the
//! cache's list (for walkers) and in the thread's table.
//!
//! # Owner-only slots
//!
//! A slot is an [`OwnerSlot`](super::owner::OwnerSlot): the owning thread's
//! alloc and free store a `busy` flag, pass a compiler fence and check a
//! `stop` flag, all plain loads and stores; walkers (purge, reap, resize,
//! stats) lock every slot, raise `stop`, issue one
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` for the whole walk and
//! wait for each owner's `busy` to drop before touching its magazines. This
//! is an asymmetric Dekker handshake (folly's asymmetric barriers); the
//! [`owner`](super::owner) module gives the correctness argument and the
//! locked fallback used where membarrier is unavailable
//! ([`per_thread_mode`] says which one runs). The slots of idle or blocked
//! threads are reached like any other: a thread that is not running has
//! passed a context switch, which is a full barrier, and its `busy` is 0.
//!
//! # Loom
//!
//! Under `--cfg loom` the thread-locals are loom's (one per loom thread,
//! dropped when that thread ends, so the exit hook runs in the model), and
//! the slot list, the table locks and the fast table's pointers are loom
//! primitives (the `sync` facade); `tests/loom_per_thread.rs` checks owners
//! racing purges, exits racing reaps, and exits racing the cache's drop.
//! The registry of tables and the free ids are one per loom model (a `std`
//! thread-local of the OS thread running it), and nothing under their locks
//! is a loom operation. Loom's `join` does not wait for the joined thread's
//! thread-local destructors, so the models wait for the exit's effects.
//!
//! # Safety and correctness
//!
//! * A slot is a `Box` owned by its cache's list; only three parties reach
//!   it: the owning thread (through its table), walkers (under the list
//!   lock), and the owning thread's exit (under its table's lock). The
//!   owner uses the value through the owner side of the handshake
//!   (`with_owned`; the exit through `with_owned_locked`, which only takes
//!   the slot lock: it is the owner, so it is not inside `with_owned`);
//!   walkers through `visit_all`. A closure that calls back into the same
//!   slot from the owner panics instead of aliasing it.
//! * A table entry is written only under the table's lock: by the owner
//!   (register, exit) and by a dying cache (which nulls its entry in every
//!   live table before freeing its slots and giving its `id` back). So a
//!   non-null entry always points at a live slot of the cache that holds the
//!   `id`, and an exit that sees a non-null entry may call into that cache's
//!   hooks: the cache cannot finish dropping while the exit holds the lock.
//! * `id`s are reused only after every entry for them is null, so the fast
//!   path never follows a stale pointer into another cache's slot. The
//!   dying cache's nulling happens before its `id` is released, which
//!   happens before any new cache with that `id` can be handed to a thread.
//! * The exit hook runs from the thread's TLS destructors: a `join` of the
//!   thread (including an explicit join of a scoped thread) observes its
//!   magazines back in the depot; the mere end of a `thread::scope` does not.
//! * At exit the thread first points `FAST` at nothing, so destructors of
//!   other thread-locals that still use a cache take the slow path, find the
//!   table dead, and get `None` (the cache then bypasses its CPU layer).
//! * The memo is written only by its own thread, and only with a slot its
//!   table names for the cache of that generation. The slot then lives as
//!   long as that cache does, or until the thread's exit, which clears the
//!   memo first (and `register` refuses a dead table, so it is never filled
//!   again). A memo hit compares the generation of the cache being used,
//!   which the caller borrows and so keeps alive; generations are never
//!   reused, so a memo left over from a dropped cache never matches a live
//!   one and its dangling slot pointer is never followed.

use core::cell::Cell;
use core::ptr::{self, NonNull};
use std::sync::Arc;

use skmem_traits::{CpuLocal, ExitJob, SlotHooks};

use super::owner::{Mode, OwnerSlot};
use crate::sync::{AtomicPtr, Mutex, Ordering};

/// One slot per thread, in thread-local storage (fewest instructions on the
/// fast path). When a thread exits its slots are handed to the cache's exit
/// hook, which sends the magazines back to the depot.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerThread;

/// The slots of a [`PerThread`] cache.
pub struct PerThreadSlots<T: Send + 'static> {
    /// Never reused, never 0: the key of the thread-local memo.
    generation: u64,
    id: usize,
    shared: Box<Shared<T>>,
}

impl<T: Send + 'static> core::fmt::Debug for PerThreadSlots<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PerThreadSlots")
            .field("generation", &self.generation)
            .field("id", &self.id)
            .field("slots", &self.shared.list.lock().len())
            .finish()
    }
}

// SAFETY: the raw slot pointers are owned boxes; every access to a slot's
// value goes through its owner/remote handshake, so moving or sharing the container between
// threads only moves `T`s between threads, which `T: Send` allows.
unsafe impl<T: Send + 'static> Send for PerThreadSlots<T> {}
// SAFETY: as above; `&PerThreadSlots` only reaches values through the
// handshake, one party at a time.
unsafe impl<T: Send + 'static> Sync for PerThreadSlots<T> {}

struct Shared<T> {
    /// Every live slot of this cache (owned, from `Box::into_raw`).
    list: Mutex<Vec<*mut ThreadSlot<T>>>,
    hooks: SlotHooks<T>,
}

/// A thread's slot: owner-only fast path, stop/barrier handshake for
/// everyone else (see [`owner`](super::owner)).
type ThreadSlot<T> = OwnerSlot<T>;

/// How the slots of [`PerThread`] caches synchronise in this process:
/// `per-thread(membarrier)` (owner fast path without locked instructions)
/// or `per-thread(locked)` (the fallback, where membarrier is unavailable
/// or `SKMEM_MEMBARRIER=off`). Decided once per process, on first use.
pub fn per_thread_mode() -> &'static str {
    match Mode::current() {
        Mode::Membarrier => "per-thread(membarrier)",
        Mode::Locked => "per-thread(locked)",
        Mode::Fenced => "per-thread(fenced)",
    }
}

/// A thread's table of slot pointers.
struct Table {
    state: Mutex<TableState>,
}

struct TableState {
    /// Per id: who owns the slot and how to run its exit.
    entries: Vec<Option<Entry>>,
    /// Per id: the slot pointer the fast path reads.
    fast: Box<[AtomicPtr<u8>]>,
    /// The thread has exited (or is exiting).
    dead: bool,
}

struct Entry {
    owner: *const (),
    slot: *mut (),
    exit: unsafe fn(*const (), *mut ()) -> Option<ExitJob>,
}

// SAFETY: `Entry` pointers are only followed under the table's lock, and the
// protocol in the module docs keeps their targets alive while an entry is
// non-null; they carry no thread affinity.
unsafe impl Send for TableState {}

#[derive(Clone, Copy)]
struct FastView {
    ptr: *const AtomicPtr<u8>,
    len: usize,
}

impl FastView {
    const EMPTY: FastView = FastView {
        ptr: ptr::null(),
        len: 0,
    };
}

struct IdAlloc {
    next: usize,
    free: Vec<usize>,
}

/// The next cache generation (0 is the empty memo's). A `std` atomic also
/// under loom: only its uniqueness matters, never an ordering.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The last cache this thread used (`generation`) and its slot there.
struct Memo {
    generation: Cell<u64>,
    /// Dangling while `generation` is 0.
    slot: Cell<NonNull<u8>>,
}

impl Memo {
    const fn empty() -> Memo {
        Memo {
            generation: Cell::new(0),
            slot: Cell::new(NonNull::dangling()),
        }
    }
}

/// Every live thread's table, and the free cache ids. `parking_lot` locks
/// also under loom (see the `sync` module): nothing under them is a loom
/// operation, and the model's main thread reaches them from its
/// thread-local destructors, after loom's own statics are gone.
#[cfg(not(loom))]
static TABLES: parking_lot::Mutex<Vec<Arc<Table>>> = parking_lot::Mutex::new(Vec::new());
#[cfg(not(loom))]
static IDS: parking_lot::Mutex<IdAlloc> = parking_lot::Mutex::new(IdAlloc {
    next: 0,
    free: Vec::new(),
});

// Under loom, one registry per OS thread, that is per loom model: the test
// harness runs models side by side, and one model's tables hold loom
// objects that another model's execution must never touch. (Loom runs all
// threads of a model on the OS thread that called `model`.)
#[cfg(loom)]
std::thread_local! {
    static TABLES: parking_lot::Mutex<Vec<Arc<Table>>> = const { parking_lot::Mutex::new(Vec::new()) };
    static IDS: parking_lot::Mutex<IdAlloc> = const { parking_lot::Mutex::new(IdAlloc {
        next: 0,
        free: Vec::new(),
    }) };
}

/// Runs `f` on the registry of tables.
#[cfg(not(loom))]
fn with_tables<R>(f: impl FnOnce(&mut Vec<Arc<Table>>) -> R) -> R {
    f(&mut TABLES.lock())
}

/// Runs `f` on the registry of tables (this model's).
#[cfg(loom)]
fn with_tables<R>(f: impl FnOnce(&mut Vec<Arc<Table>>) -> R) -> R {
    TABLES.with(|t| f(&mut t.lock()))
}

/// Runs `f` on the free cache ids.
#[cfg(not(loom))]
fn with_ids<R>(f: impl FnOnce(&mut IdAlloc) -> R) -> R {
    f(&mut IDS.lock())
}

/// Runs `f` on the free cache ids (this model's).
#[cfg(loom)]
fn with_ids<R>(f: impl FnOnce(&mut IdAlloc) -> R) -> R {
    IDS.with(|t| f(&mut t.lock()))
}

crate::sync::thread_locals! {
    static FAST: Cell<FastView> = const { Cell::new(FastView::EMPTY) };
    static MEMO: Memo = const { Memo::empty() };
    static GUARD: ThreadGuard = ThreadGuard::new();
}

/// Owns the thread's table; its destructor is the thread-exit hook.
struct ThreadGuard {
    table: Arc<Table>,
}

impl ThreadGuard {
    fn new() -> Self {
        let table = Arc::new(Table {
            state: Mutex::new(TableState {
                entries: Vec::new(),
                fast: Box::new([]),
                dead: false,
            }),
        });
        with_tables(|t| t.push(table.clone()));
        ThreadGuard { table }
    }
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        // `MEMO` and `FAST` have no destructor, so with `std` they are
        // still reachable here; loom drops every thread-local of the thread
        // at once, and then a failed `try_with` means nobody can read them
        // any more either.
        let _ = MEMO.try_with(|m| m.generation.set(0));
        let _ = FAST.try_with(|f| f.set(FastView::EMPTY));
        let mut jobs = Vec::new();
        {
            let mut guard = self.table.state.lock();
            let st = &mut *guard;
            st.dead = true;
            for (i, e) in st.entries.iter_mut().enumerate() {
                if let Some(e) = e.take() {
                    st.fast[i].store(ptr::null_mut(), Ordering::Relaxed);
                    // SAFETY: the entry was non-null under the table lock, so
                    // its owner (`Shared<T>`) and slot are alive and of the
                    // type `exit` was instantiated for (module docs).
                    if let Some(job) = unsafe { (e.exit)(e.owner, e.slot) } {
                        jobs.push(job);
                    }
                }
            }
        }
        for job in jobs {
            job();
        }
        with_tables(|t| t.retain(|t| !Arc::ptr_eq(t, &self.table)));
    }
}

/// Runs a slot's exit hook; frees the slot when the hook took its value.
///
/// # Safety
///
/// `owner` is a live `Shared<T>` and `slot` one of its live slots, and the
/// caller holds the lock of the table whose entry named them.
unsafe fn exit_slot<T: Send + 'static>(owner: *const (), slot: *mut ()) -> Option<ExitJob> {
    // SAFETY: caller's contract.
    let shared = unsafe { &*owner.cast::<Shared<T>>() };
    let slot = slot.cast::<ThreadSlot<T>>();
    let hook = shared.hooks.on_exit.as_ref()?;
    // SAFETY: caller's contract: the slot is alive.
    let s = unsafe { &*slot };
    // SAFETY: the exit runs on the thread whose table named the slot, its
    // owner; walkers are excluded by the slot lock this takes.
    let job = unsafe { s.with_owned_locked(|v| hook(v)) };
    if job.is_some() {
        let mut list = shared.list.lock();
        if let Some(pos) = list.iter().position(|&p| p == slot) {
            list.swap_remove(pos);
        }
        drop(list);
        // SAFETY: the slot came from `Box::into_raw` in `register`; it is no
        // longer in the list (walkers cannot reach it) nor in any table (the
        // caller cleared this thread's entry, the only one naming it).
        drop(unsafe { Box::from_raw(slot) });
    }
    job
}

/// `with_slot` after a memo miss: finds (or creates) the slot through the
/// thread's table and refills the memo; `None` once the thread is exiting.
#[cold]
#[inline(never)]
fn slot_slow<T: Send + 'static>(slots: &PerThreadSlots<T>) -> Option<NonNull<ThreadSlot<T>>> {
    let p = lookup(slots.id).cast::<ThreadSlot<T>>();
    let p = match NonNull::new(p) {
        Some(p) => p,
        None => NonNull::new(register(slots)?)?,
    };
    // `FAST` (and so `lookup`) is reset before the exit clears the memo, and
    // `register` refuses a dead table: no slot is memoised after the exit.
    // (`try_with`: under loom the memo may be gone while other
    // thread-locals' destructors still run; then nothing reads it again.)
    let _ = MEMO.try_with(|m| {
        m.slot.set(p.cast());
        m.generation.set(slots.generation);
    });
    Some(p)
}

/// The calling thread's slot pointer for `id`, or null.
#[inline(always)]
fn lookup(id: usize) -> *mut u8 {
    // An empty view once `FAST` is gone (loom, during the thread's
    // thread-local destructors; with `std` it has no destructor).
    let v = FAST.try_with(Cell::get).unwrap_or(FastView::EMPTY);
    if id < v.len {
        // SAFETY: `v` describes this thread's `fast` array, which only this
        // thread replaces (in `register`) and which lives until the thread's
        // exit, which first resets `FAST`; `id < len`.
        unsafe { (*v.ptr.add(id)).load(Ordering::Relaxed) }
    } else {
        ptr::null_mut()
    }
}

#[cold]
#[inline(never)]
fn register<T: Send + 'static>(slots: &PerThreadSlots<T>) -> Option<*mut ThreadSlot<T>> {
    let table = GUARD.try_with(|g| g.table.clone()).ok()?;
    let mut guard = table.state.lock();
    let st = &mut *guard;
    if st.dead {
        return None;
    }
    let id = slots.id;
    let owner = ptr::from_ref::<Shared<T>>(&*slots.shared).cast::<()>();
    if let Some(Some(e)) = st.entries.get(id) {
        debug_assert!(e.owner == owner);
        return Some(e.slot.cast());
    }
    if id >= st.fast.len() {
        let len = (id + 1).max(st.fast.len() * 2).max(8);
        let fast: Box<[AtomicPtr<u8>]> = (0..len)
            .map(|i| {
                AtomicPtr::new(
                    st.fast
                        .get(i)
                        .map_or(ptr::null_mut(), |p| p.load(Ordering::Relaxed)),
                )
            })
            .collect();
        st.fast = fast;
        st.entries.resize_with(len, || None);
        FAST.with(|f| {
            f.set(FastView {
                ptr: st.fast.as_ptr(),
                len,
            })
        });
    }
    let slot = {
        let mut list = slots.shared.list.lock();
        let value = (slots.shared.hooks.init)();
        let slot = Box::into_raw(Box::new(OwnerSlot::new(value)));
        list.push(slot);
        slot
    };
    st.entries[id] = Some(Entry {
        owner,
        slot: slot.cast(),
        exit: exit_slot::<T>,
    });
    st.fast[id].store(slot.cast(), Ordering::Relaxed);
    Some(slot)
}

// SAFETY:
// * `with_slot` reaches the value through `OwnerSlot::with_owned` (the
//   calling thread is the slot's owner), `for_each_slot` and the exit
//   through `visit_all` / `with_owned_locked`: one party at a time (see the
//   `owner` module); `with_slot` returns `None` before calling `f` only
//   when the thread can have no slot (its table is dead or its guard gone);
// * slots are created in `register`, with `init` called under the list lock
//   that `for_each_slot` holds for its whole walk;
// * `for_each_slot` walks the list, which holds every slot except those
//   whose exit hook returned `Some` (removed and freed in `exit_slot`);
// * the exit hook runs once, from the exiting thread's table walk (the
//   slot's owner), under the slot lock; its job runs after the table lock is released;
// * `Drop` nulls the cache's entry in every table before freeing the slots.
unsafe impl CpuLocal for PerThread {
    const NAME: &'static str = "per-thread";
    type Slots<T: Send + 'static> = PerThreadSlots<T>;

    fn slot_hint() -> usize {
        // Read once: `available_parallelism` reads cgroup files (about
        // 30 µs), and this runs at every cache creation.
        static HINT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *HINT.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn locality<T: Send + 'static>(_slots: &PerThreadSlots<T>) -> &'static str {
        per_thread_mode()
    }

    fn new_slots<T: Send + 'static>(hooks: SlotHooks<T>) -> PerThreadSlots<T> {
        // Decide the handshake mode (registering membarrier) before any
        // slot of this cache can exist.
        let _ = Mode::current();
        let id = {
            with_ids(|ids| {
                ids.free.pop().unwrap_or_else(|| {
                    ids.next += 1;
                    ids.next - 1
                })
            })
        };
        PerThreadSlots {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            id,
            shared: Box::new(Shared {
                list: Mutex::new(Vec::new()),
                hooks,
            }),
        }
    }

    #[inline(always)]
    fn with_slot<T: Send + 'static, R>(
        slots: &PerThreadSlots<T>,
        f: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        let generation = slots.generation;
        let hit = MEMO.with(|m| (m.generation.get() == generation).then(|| m.slot.get()));
        let p = match hit {
            Some(p) => p.cast::<ThreadSlot<T>>(),
            None => slot_slow(slots)?,
        };
        // SAFETY: `p` is a memo hit or a non-null entry of this thread's
        // table; either names this thread's live slot of `slots`, which
        // cannot be dropped while borrowed (module docs).
        let s = unsafe { p.as_ref() };
        // SAFETY: the slot is this thread's (its memo and table are
        // thread-local), so this thread is its only owner-side user.
        Some(unsafe { s.with_owned(f) })
    }

    fn for_each_slot<T: Send + 'static>(slots: &PerThreadSlots<T>, f: impl FnMut(&mut T)) {
        let list = slots.shared.list.lock();
        // One heavy barrier for the whole walk; the list lock keeps walkers
        // apart, so slot locks are always taken by one walker at a time.
        OwnerSlot::visit_all(
            list.iter().map(|&p| {
                // SAFETY: slots in the list are alive (freed only after
                // removal under this lock, or when the cache drops).
                unsafe { &*p }
            }),
            f,
        );
    }
}

impl<T: Send + 'static> Drop for PerThreadSlots<T> {
    fn drop(&mut self) {
        let owner = ptr::from_ref::<Shared<T>>(&*self.shared).cast::<()>();
        {
            // A snapshot: a table created after it cannot name this cache
            // (registering needs `&self`, and we hold `&mut self`), and one
            // whose thread exits after it stays alive through its `Arc`.
            // Walking a copy keeps table locks (loom operations under loom)
            // out of `TABLES`' critical section.
            let tables = with_tables(|t| t.clone());
            for t in tables.iter() {
                let mut guard = t.state.lock();
                let st = &mut *guard;
                if let Some(e) = st.entries.get_mut(self.id) {
                    if e.as_ref().is_some_and(|e| e.owner == owner) {
                        *e = None;
                        st.fast[self.id].store(ptr::null_mut(), Ordering::Relaxed);
                    }
                }
            }
        }
        for p in self.shared.list.get_mut().drain(..) {
            // SAFETY: every pointer in the list came from `Box::into_raw` and
            // no table names it any more (cleared above), nor can a walker run
            // (we hold `&mut self`).
            drop(unsafe { Box::from_raw(p) });
        }
        with_ids(|ids| ids.free.push(self.id));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn hooks(inits: Arc<AtomicUsize>, exits: Arc<AtomicUsize>) -> SlotHooks<u64> {
        SlotHooks {
            init: Box::new(move || {
                inits.fetch_add(1, Ordering::Relaxed);
                0
            }),
            on_exit: Some(Box::new(move |v: &mut u64| {
                let taken = core::mem::take(v);
                let exits = exits.clone();
                Some(Box::new(move || {
                    exits.fetch_add(taken as usize, Ordering::Relaxed);
                }) as ExitJob)
            })),
        }
    }

    #[test]
    fn each_thread_gets_its_own_slot_and_exit_flushes_it() {
        let inits = Arc::new(AtomicUsize::new(0));
        let exits = Arc::new(AtomicUsize::new(0));
        let slots = Arc::new(PerThread::new_slots(hooks(inits.clone(), exits.clone())));
        PerThread::with_slot(&slots, |v| *v += 1).unwrap();
        PerThread::with_slot(&slots, |v| *v += 1).unwrap();
        // `join` (unlike the end of a `thread::scope`) waits for the thread's
        // TLS destructors, which is where the exit hook runs.
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let slots = slots.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        PerThread::with_slot(&slots, |v| *v += 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Threads' exits handed their counts (10 each) to the hook's job.
        assert_eq!(exits.load(Ordering::Relaxed), 30);
        assert_eq!(inits.load(Ordering::Relaxed), 4);
        let mut seen = Vec::new();
        PerThread::for_each_slot(&slots, |v| seen.push(*v));
        assert_eq!(seen, vec![2], "only the main thread's slot is left");
    }

    #[test]
    fn memo_follows_the_cache_in_use() {
        let a = PerThread::new_slots(hooks(Default::default(), Default::default()));
        let b = PerThread::new_slots(hooks(Default::default(), Default::default()));
        assert_ne!(a.generation, b.generation);
        // Alternating refills the one-entry memo each time; values stay apart.
        for i in 1..=5u64 {
            PerThread::with_slot(&a, |v| *v += i).unwrap();
            PerThread::with_slot(&b, |v| *v += 10 * i).unwrap();
        }
        assert_eq!(PerThread::with_slot(&a, |v| *v), Some(15));
        assert_eq!(PerThread::with_slot(&b, |v| *v), Some(150));
        // Drop the memoised cache; its successors (same id, quite possibly
        // the same addresses) must not hit the stale memo.
        let gen_b = b.generation;
        drop(b);
        for _ in 0..3 {
            let c = PerThread::new_slots(hooks(Default::default(), Default::default()));
            assert!(c.generation > gen_b);
            assert_eq!(
                PerThread::with_slot(&c, |v| core::mem::replace(v, 99)),
                Some(0)
            );
            assert_eq!(PerThread::with_slot(&c, |v| *v), Some(99));
        }
        assert_eq!(PerThread::with_slot(&a, |v| *v), Some(15));
    }

    #[test]
    fn tls_destructors_after_exit_bypass_the_slot() {
        struct Late(Arc<PerThreadSlots<u64>>, Arc<AtomicUsize>);
        impl Drop for Late {
            fn drop(&mut self) {
                // Runs among TLS destructors, possibly after the exit hook:
                // then the memo is cleared and the slot must not be reached.
                let r = PerThread::with_slot(&self.0, |v| *v += 1);
                self.1
                    .store(if r.is_some() { 1 } else { 2 }, Ordering::Relaxed);
            }
        }
        thread_local! {
            static LATE: core::cell::RefCell<Option<Late>> = const { core::cell::RefCell::new(None) };
        }
        let exits = Arc::new(AtomicUsize::new(0));
        let slots = Arc::new(PerThread::new_slots(hooks(
            Default::default(),
            exits.clone(),
        )));
        let seen = Arc::new(AtomicUsize::new(0));
        let (s2, seen2) = (slots.clone(), seen.clone());
        std::thread::spawn(move || {
            // Memoise the slot first, then register the late destructor.
            PerThread::with_slot(&s2, |v| *v += 5).unwrap();
            LATE.with(|l| *l.borrow_mut() = Some(Late(s2, seen2)));
        })
        .join()
        .unwrap();
        let how = seen.load(Ordering::Relaxed);
        assert_ne!(how, 0, "the late destructor ran");
        // Either the late use came before the exit hook (its +1 is flushed
        // too) or after it (bypassed); the exit flushed 5 or 6, never freed
        // twice and never touched a freed slot.
        let flushed = exits.load(Ordering::Relaxed);
        assert_eq!(flushed, if how == 1 { 6 } else { 5 });
        let mut left = Vec::new();
        PerThread::for_each_slot(&slots, |v| left.push(*v));
        assert!(
            left.is_empty(),
            "the thread's slot went with its exit: {left:?}"
        );
    }

    #[cfg(all(target_os = "linux", not(miri)))]
    #[test]
    fn mode_is_membarrier_where_the_kernel_offers_it() {
        use rustix::thread::{membarrier_query, MembarrierCommand as Cmd};
        let off = std::env::var_os("SKMEM_MEMBARRIER").is_some_and(|v| v == "off");
        let q = membarrier_query();
        let offered = q.contains_command(Cmd::PrivateExpedited)
            && q.contains_command(Cmd::RegisterPrivateExpedited);
        let slots = PerThread::new_slots(hooks(Default::default(), Default::default()));
        assert_eq!(
            per_thread_mode(),
            if offered && !off {
                "per-thread(membarrier)"
            } else {
                "per-thread(locked)"
            }
        );
        // Slots follow the process mode.
        PerThread::with_slot(&slots, |v| *v = 1).unwrap();
        let p = MEMO.with(|m| m.slot.get()).cast::<ThreadSlot<u64>>();
        // SAFETY: the memo names this thread's live slot of `slots`.
        let locked = unsafe { p.as_ref() }.is_locked_mode();
        assert_eq!(locked, per_thread_mode() == "per-thread(locked)");
    }

    #[test]
    fn ids_are_reused_only_after_entries_are_cleared() {
        let a = PerThread::new_slots(hooks(Default::default(), Default::default()));
        PerThread::with_slot(&a, |v| *v = 7).unwrap();
        let id = a.id;
        drop(a);
        let b = PerThread::new_slots(hooks(Default::default(), Default::default()));
        // Whether or not `b` reuses the id, it starts from a fresh slot.
        let v = PerThread::with_slot(&b, |v| *v).unwrap();
        assert_eq!(v, 0, "id {id} reuse must not leak a dead cache's slot");
    }
}

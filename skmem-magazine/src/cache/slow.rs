//! The non-generic core of a magazine cache: depot, counters, resize
//! perimeter and every path that is not the fast path.
//!
//! [`CacheCore`] holds the state that does not depend on the cache's type
//! parameters; [`CoreRef`] pairs it with the shell's layer beneath and
//! slots as trait objects ([`ObjectLayer`] and [`SlotSet`]), and runs the
//! slow paths (batch refills through the depot, frees into new magazines,
//! the front's refill and spill), purge, enable, resize, reap, update,
//! stats and the exited-thread flush on them. The generic shell in
//! [`super`] keeps only what must be inline for speed: taking the calling
//! thread's slot and popping or pushing there (`CpuCache::pop` and friends),
//! thin forwarding, the slot hooks and `alloc_batch`'s slow path (kept
//! there for its call to `Cache::free_batch`, see its docs). This part is compiled once, whatever the layer,
//! locality policy and ladder of the caches that use it (the shape of
//! hashbrown's `RawTable` over `RawTableInner`, and of `skmem_slab`'s
//! `slab/inner.rs`). A dynamic call costs a few instructions on paths that
//! take the depot lock or call the layer beneath anyway.
//!
//! The module invariants are the cache's: see [`super`].

use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use skmem_traits::registry;
use skmem_traits::stats::CacheStats;
use skmem_traits::{AllocFlags, Error, Result};

use super::{CacheConfig, CpuCache};
use crate::depot::Depot;
use crate::ladder::{can_grow, MagType};
use crate::layer::ObjectLayer;
use crate::local::FRONT_CAP;
use crate::magazine::{Chain, MagBox};
use crate::sync::{
    current_thread, AtomicU32, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, ThreadId,
};

/// A cache's slots as the core sees them: the shell implements this over
/// its locality policy's slots (`super::LocalSlots`), so that the core's
/// walks and slot visits are compiled once.
pub(crate) trait SlotSet: Sync {
    /// Runs `f` on the calling thread's slot, exclusively; `false` when
    /// the calling thread can have no slot (`f` was not called).
    fn with_current(&self, f: &mut dyn FnMut(&mut CpuCache)) -> bool;
    /// Runs `f` on every slot in turn, each exclusively
    /// ([`CpuLocal::for_each_slot`](skmem_traits::CpuLocal::for_each_slot)).
    fn for_each(&self, f: &mut dyn FnMut(&mut CpuCache));
    /// Pushes a prefix of `objs` onto the calling CPU's front; its length.
    fn front_refill(&self, objs: &[NonNull<u8>]) -> usize;
    /// Pops up to `out.len()` objects from the calling CPU's front.
    fn front_take(&self, out: &mut [MaybeUninit<NonNull<u8>>]) -> usize;
    /// Empties every front into `out`.
    fn front_drain_all(&self, out: &mut Vec<NonNull<u8>>);
    /// Objects resting in the fronts now.
    fn front_cached(&self) -> usize;
    /// The locality name for the stats.
    fn locality(&self) -> &'static str;
}

/// What a free under a slot's exclusion leaves to do.
enum FreeStep {
    Done,
    ToLayer,
    NeedMagazine(u32),
}

/// The resize perimeter: one purge / resize / re-enable at a time, with
/// re-entry for the thread inside (the seed's `skm_rs_busy`).
struct Perimeter {
    state: Mutex<PerimeterState>,
    cv: Condvar,
}

struct PerimeterState {
    busy: u32,
    owner: Option<ThreadId>,
}

impl Perimeter {
    fn new() -> Self {
        Perimeter {
            state: Mutex::new(PerimeterState {
                busy: 0,
                owner: None,
            }),
            cv: Condvar::new(),
        }
    }

    /// Enters, waiting for another thread inside to leave.
    fn enter(&self) -> PerimeterGuard<'_> {
        self.enter_impl(true)
            .expect("a waiting entry into the perimeter always succeeds")
    }

    /// Enters unless another thread is inside.
    fn try_enter(&self) -> Option<PerimeterGuard<'_>> {
        self.enter_impl(false)
    }

    fn enter_impl(&self, can_sleep: bool) -> Option<PerimeterGuard<'_>> {
        let me = current_thread();
        let mut st = self.state.lock();
        if st.owner == Some(me) {
            st.busy += 1;
            return Some(PerimeterGuard(self));
        }
        while st.busy != 0 {
            if !can_sleep {
                return None;
            }
            st = self.cv.wait(st);
        }
        st.busy = 1;
        st.owner = Some(me);
        Some(PerimeterGuard(self))
    }

    fn exit(&self) {
        let mut st = self.state.lock();
        debug_assert!(st.busy > 0 && st.owner == Some(current_thread()));
        st.busy -= 1;
        if st.busy == 0 {
            st.owner = None;
            drop(st);
            self.cv.notify_all();
        }
    }
}

/// Inside the resize perimeter; dropping it (on return or on unwind)
/// leaves.
struct PerimeterGuard<'a>(&'a Perimeter);

impl Drop for PerimeterGuard<'_> {
    fn drop(&mut self) {
        self.0.exit();
    }
}

/// Re-enables the CPU layer when dropped: a purge inside the perimeter
/// leaves the slots disabled until then, also when it unwinds.
struct EnableOnDrop<'a>(CoreRef<'a>);

impl Drop for EnableOnDrop<'_> {
    fn drop(&mut self) {
        self.0.enable();
    }
}

/// Magazines taken out of slots or the depot, with their valid round
/// counts, owed to the layer beneath. Dropping the guard gives every one
/// back, whatever happens: a panic from the layer (a destructor) is caught,
/// the remaining magazines are still given back, and the first panic is
/// resumed afterwards (or dropped when the thread is already unwinding).
/// No lock of the cache is held while it gives back.
struct Owed<'a> {
    below: &'a dyn ObjectLayer,
    mags: Vec<(MagBox, usize)>,
}

impl<'a> Owed<'a> {
    fn new(below: &'a dyn ObjectLayer) -> Self {
        Owed {
            below,
            mags: Vec::new(),
        }
    }

    /// Owes a chain of full (`full`) or empty magazines.
    fn chain(&mut self, mut chain: Chain, full: bool) {
        while let Some(mag) = chain.pop() {
            let n = if full { mag.cap() as usize } else { 0 };
            self.mags.push((mag, n));
        }
    }
}

impl Drop for Owed<'_> {
    fn drop(&mut self) {
        let mut first_panic = None;
        while let Some((mag, n)) = self.mags.pop() {
            let below = self.below;
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| destroy(below, &mag, n))) {
                first_panic.get_or_insert(payload);
            }
        }
        if let Some(payload) = first_panic {
            if std::thread::panicking() {
                tracing::error!(cache = %self.below.name(), "a destructor panicked while unwinding; its panic is dropped");
            } else {
                resume_unwind(payload);
            }
        }
    }
}

/// Gives a magazine's first `n` rounds back to the layer beneath.
fn destroy(below: &dyn ObjectLayer, mag: &MagBox, n: usize) {
    if n > 0 {
        // SAFETY: the first `n` rounds are objects of this cache that no
        // one else holds (module invariants); the caller drops the
        // magazine right after, so none is used again.
        unsafe { below.free_batch(mag.valid(n)) };
    }
}

/// The state of a magazine cache that does not depend on its type
/// parameters (see the module docs).
pub(crate) struct CacheCore {
    depot: Mutex<Depot>,
    /// Size new slots start with (0 while purged / disabled).
    enabled_rounds: Arc<AtomicU32>,
    contention: AtomicU64,
    resizes: AtomicU64,
    purges: AtomicU64,
    reaps: AtomicU64,
    retired_alloc: AtomicU64,
    retired_free: AtomicU64,
    perimeter: Perimeter,
    /// The ladder's steps, smallest magazine first.
    steps: &'static [MagType],
    pub(super) chunk: usize,
    pub(super) config: CacheConfig,
    /// The cache's entry in the process registry (none when
    /// `config.register` is off); dropped with the cache.
    pub(super) registration: std::sync::OnceLock<registry::Registration>,
    /// Debug path (the layer beneath is in debug mode): see `debug.rs`.
    debug: Option<crate::debug::DebugMags>,
}

impl CacheCore {
    /// The core of a cache over `below` on ladder `steps` (checked by the
    /// shell); an error when the layer's geometry does not suit a cache.
    pub(super) fn new(
        below: &dyn ObjectLayer,
        steps: &'static [MagType],
        config: CacheConfig,
    ) -> Result<Self> {
        let chunk = below.chunk_size();
        if chunk == 0 || chunk < below.obj_size() {
            return Err(Error::invalid_param(
                "chunk_size",
                chunk as u64,
                "the layer's chunk is smaller than its objects",
            ));
        }
        if !below.obj_align().is_power_of_two() {
            return Err(Error::invalid_param(
                "obj_align",
                below.obj_align() as u64,
                "not a power of two",
            ));
        }
        let step = crate::ladder::start_step(steps, chunk);
        let rounds = steps[step].rounds;
        let debug = crate::debug::DebugMags::for_layer(below, rounds, &config);
        Ok(CacheCore {
            depot: Mutex::new(Depot::new(step, rounds)),
            enabled_rounds: Arc::new(AtomicU32::new(0)),
            contention: AtomicU64::new(0),
            resizes: AtomicU64::new(0),
            purges: AtomicU64::new(0),
            reaps: AtomicU64::new(0),
            retired_alloc: AtomicU64::new(0),
            retired_free: AtomicU64::new(0),
            perimeter: Perimeter::new(),
            steps,
            chunk,
            config,
            registration: std::sync::OnceLock::new(),
            debug,
        })
    }

    /// The size new slots start with, shared with the slots' `init` hook.
    pub(super) fn enabled_rounds(&self) -> Arc<AtomicU32> {
        self.enabled_rounds.clone()
    }

    /// Whether the CPU layer never runs magazines (configured off, or the
    /// debug path): the shell switches the fronts off then.
    pub(super) fn magazines_off(&self) -> bool {
        self.config.no_magazines || self.debug.is_some()
    }

    /// Current magazine capacity (0 with no magazines).
    pub(super) fn magazine_size(&self) -> u32 {
        if self.config.no_magazines {
            0
        } else {
            self.depot.lock().rounds
        }
    }

    /// Failed depot try-locks so far.
    pub(super) fn contention(&self) -> u64 {
        self.contention.load(Ordering::Relaxed)
    }

    /// Runs `f` holding the depot lock (a test hook of the shell).
    pub(super) fn hold_depot<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.depot.lock();
        f()
    }

    #[inline]
    fn lock_depot(&self) -> MutexGuard<'_, Depot> {
        if let Some(g) = self.depot.try_lock() {
            return g;
        }
        self.contention.fetch_add(1, Ordering::Relaxed);
        self.depot.lock()
    }

    /// The CPU-layer half of batch allocation, under the slot's exclusion.
    fn cpu_alloc(&self, cp: &mut CpuCache, out: &mut [MaybeUninit<NonNull<u8>>]) -> usize {
        let mut got = 0;
        loop {
            if cp.rounds > 0 {
                let k = (cp.rounds as usize).min(out.len() - got);
                let top = cp.rounds as usize;
                let mag = cp
                    .loaded
                    .as_ref()
                    .expect("rounds > 0 without a loaded magazine");
                // The top `k` rounds, in one copy (the batch gets them in
                // stored order; which object lands where does not matter).
                mag.copy_out(top - k, &mut out[got..got + k]);
                cp.rounds -= k as i32;
                cp.alloc += k as u64;
                got += k;
                if got == out.len() {
                    return got;
                }
            }
            if cp.prounds > 0 {
                cp.swap();
                continue;
            }
            if cp.magsize == 0 {
                return got;
            }
            let want = if out.len() - got <= cp.magsize as usize {
                1
            } else {
                2
            };
            let mut full = Chain::new();
            let mut depot = self.lock_depot();
            if depot.rounds != cp.magsize {
                return got;
            }
            depot.full.take(want, &mut full);
            let Some(m1) = full.pop() else { return got };
            let size = cp.magsize as i32;
            if let Some(p) = cp.ploaded.take() {
                debug_assert!(cp.prounds == 0);
                depot.empty.put(p);
            }
            match full.pop() {
                None => {
                    // One full magazine: the empty loaded one becomes previous.
                    cp.ploaded = cp.loaded.take();
                    cp.prounds = if cp.ploaded.is_some() { cp.rounds } else { -1 };
                }
                Some(m2) => {
                    // Two: both of ours (empty) go back to the depot.
                    if let Some(l) = cp.loaded.take() {
                        depot.empty.put(l);
                    }
                    cp.ploaded = Some(m2);
                    cp.prounds = size;
                }
            }
            cp.loaded = Some(m1);
            cp.rounds = size;
        }
    }

    /// The CPU-layer half of batch free, under the slot's exclusion.
    fn cpu_free(&self, cp: &mut CpuCache, objs: &mut &[NonNull<u8>]) -> FreeStep {
        loop {
            if (cp.rounds as u32) < cp.magsize {
                let r = cp.rounds as usize;
                let k = (cp.magsize as usize - r).min(objs.len());
                let mag = cp
                    .loaded
                    .as_mut()
                    .expect("rounds >= 0 without a loaded magazine");
                mag.copy_in(r, &objs[..k]);
                cp.rounds += k as i32;
                cp.free += k as u64;
                *objs = &objs[k..];
                if objs.is_empty() {
                    return FreeStep::Done;
                }
            }
            if cp.prounds == 0 {
                cp.swap();
                continue;
            }
            if cp.magsize == 0 {
                return FreeStep::ToLayer;
            }
            let want = if objs.len() > cp.magsize as usize {
                2
            } else {
                1
            };
            let mut empty = Chain::new();
            let mut depot = self.lock_depot();
            if depot.rounds != cp.magsize {
                return FreeStep::ToLayer;
            }
            depot.empty.take(want, &mut empty);
            let Some(m1) = empty.pop() else {
                return FreeStep::NeedMagazine(cp.magsize);
            };
            if let Some(p) = cp.ploaded.take() {
                debug_assert!(cp.prounds == cp.magsize as i32);
                depot.full.put(p);
            }
            match empty.pop() {
                None => {
                    // One empty magazine: the full loaded one becomes previous.
                    cp.ploaded = cp.loaded.take();
                    cp.prounds = if cp.ploaded.is_some() { cp.rounds } else { -1 };
                }
                Some(m2) => {
                    if let Some(l) = cp.loaded.take() {
                        depot.full.put(l);
                    }
                    cp.ploaded = Some(m2);
                    cp.prounds = 0;
                }
            }
            cp.loaded = Some(m1);
            cp.rounds = 0;
        }
    }

    /// Allocates an empty magazine of `cap` rounds into the depot; `false`
    /// when memory is short or the size changed meanwhile.
    #[cold]
    fn add_empty_magazine(&self, cap: u32) -> bool {
        let Some(mag) = MagBox::new(cap) else {
            return false;
        };
        let mut depot = self.lock_depot();
        if depot.rounds != cap {
            return false;
        }
        depot.empty.put(mag);
        true
    }
}

/// A cache's core with its layer beneath and its slots, as trait objects:
/// what the slow paths run on (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct CoreRef<'a> {
    pub(super) core: &'a CacheCore,
    pub(super) below: &'a dyn ObjectLayer,
    pub(super) slots: &'a dyn SlotSet,
}

impl CoreRef<'_> {
    /// Logs the new cache (locality policy `locality`).
    pub(super) fn created(self, locality: &'static str) {
        let (chunk, rounds) = (self.core.chunk, self.core.magazine_size());
        tracing::debug!(cache = %self.below.name(), chunk, rounds, locality, "magazine cache created");
    }

    /// `alloc`'s slow path: the CPU layer and the depot, then the layer
    /// beneath.
    #[inline(never)]
    pub(super) fn alloc_slow(self, flags: AllocFlags) -> Result<NonNull<u8>> {
        let mut one = [MaybeUninit::uninit()];
        if self.alloc_cpu_layer(&mut one) == 1 {
            // SAFETY: `alloc_cpu_layer` initialised the prefix it counted.
            return Ok(unsafe { one[0].assume_init() });
        }
        self.below.alloc_with(flags)
    }

    /// The front missed: pops up to half a front (plus the object to hand
    /// out) from the slot's magazines and the depot under the slot's lock,
    /// pushes the extra into the front with one commit, and gives back
    /// through the slot whatever the front did not take (another thread on
    /// this CPU filled it meanwhile, or a remote operation stopped it).
    #[inline(never)]
    pub(super) fn alloc_refill(self, flags: AllocFlags) -> Result<NonNull<u8>> {
        let mut buf = [MaybeUninit::uninit(); FRONT_CAP / 2 + 1];
        let n = self.alloc_cpu_layer(&mut buf);
        if n == 0 {
            return self.below.alloc_with(flags);
        }
        // SAFETY: `alloc_cpu_layer` initialised the prefix `n` it counted;
        // `MaybeUninit<T>` has `T`'s layout.
        let got = unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<NonNull<u8>>(), n) };
        let (&obj, extra) = got.split_last().expect("n > 0");
        let placed = self.slots.front_refill(extra);
        if placed < extra.len() {
            // SAFETY: the objects came from this cache's CPU layer and are
            // held by no one else (nor by the front, which refused them).
            unsafe { self.free_slow(&extra[placed..]) };
        }
        Ok(obj)
    }

    /// The front is full (or stopped): takes half of it out with one
    /// commit and frees that and `obj` through the slot.
    ///
    /// # Safety
    ///
    /// As [`Cache::free`](super::Cache::free).
    #[inline(never)]
    pub(super) unsafe fn free_spill(self, obj: NonNull<u8>) {
        let mut buf = [MaybeUninit::uninit(); FRONT_CAP / 2 + 1];
        let n = self.slots.front_take(&mut buf[..FRONT_CAP / 2]);
        buf[n].write(obj);
        // SAFETY: `front_take` initialised the prefix `n`, and `buf[n]` was
        // just written.
        let objs =
            unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<NonNull<u8>>(), n + 1) };
        // SAFETY: the front's objects belong to this cache and left the
        // front (the trait's contract); `obj` is forwarded from the caller.
        unsafe { self.free_slow(objs) }
    }

    /// Fills a prefix of `out` from the calling thread's slot (and the
    /// depot); returns its length.
    #[inline(never)]
    pub(super) fn alloc_cpu_layer(self, out: &mut [MaybeUninit<NonNull<u8>>]) -> usize {
        let core = self.core;
        if let Some(d) = &core.debug {
            return d.take(self.below, out);
        }
        if core.config.no_magazines {
            return 0;
        }
        let mut got = 0;
        self.slots
            .with_current(&mut |cp| got = core.cpu_alloc(cp, &mut *out));
        got
    }

    /// Frees `objs` into the calling thread's slot, through the depot and
    /// new magazines, and what finds no room to the layer beneath.
    ///
    /// # Safety
    ///
    /// As [`Cache::free_batch`](super::Cache::free_batch).
    #[inline(never)]
    pub(super) unsafe fn free_slow(self, objs: &[NonNull<u8>]) {
        let core = self.core;
        if let Some(d) = &core.debug {
            // SAFETY: forwarded from the caller.
            return unsafe { d.free(self.below, objs) };
        }
        let mut rest = objs;
        if !core.config.no_magazines {
            loop {
                let mut step = FreeStep::ToLayer;
                self.slots
                    .with_current(&mut |cp| step = core.cpu_free(cp, &mut rest));
                match step {
                    FreeStep::Done => return,
                    FreeStep::NeedMagazine(cap) => {
                        if core.add_empty_magazine(cap) {
                            continue;
                        }
                        break;
                    }
                    FreeStep::ToLayer => break,
                }
            }
        }
        // SAFETY: forwarded from the caller; `rest` are the objects that
        // found no room in the magazines.
        unsafe { self.below.free_batch(rest) }
    }

    /// Sends an exited thread's magazines back to the depot.
    pub(super) fn flush_exited(self, mut cp: CpuCache) {
        let core = self.core;
        core.retired_alloc.fetch_add(cp.alloc, Ordering::Relaxed);
        core.retired_free.fetch_add(cp.free, Ordering::Relaxed);
        let mut mags = Vec::new();
        cp.take_all(&mut mags);
        let mut rejected = Owed::new(self.below);
        let mut depot = core.lock_depot();
        for (mag, n) in mags {
            if mag.cap() != depot.rounds || (n != 0 && n != mag.cap() as usize) {
                rejected.mags.push((mag, n));
            } else if n == 0 {
                depot.empty.put(mag);
            } else {
                depot.full.put(mag);
            }
        }
        drop(depot);
        // `rejected` goes back to the layer with no lock held. This runs on
        // a thread's exit path, where a panic would abort the process: a
        // destructor's panic is logged instead (every object still goes
        // back, see `Owed`).
        if catch_unwind(AssertUnwindSafe(|| drop(rejected))).is_err() {
            tracing::error!(cache = %self.below.name(), "a destructor panicked while an exited thread's magazines went back");
        }
    }

    /// Takes every magazine of every slot into `owed` and gives every
    /// object in the per-CPU fronts back to the layer beneath; slots
    /// disabled.
    fn purge_cpu_layer(self, owed: &mut Owed<'_>) -> bool {
        self.core.enabled_rounds.store(0, Ordering::Release);
        if let Some(d) = &self.core.debug {
            d.drain(self.below);
        }
        let mut front = Vec::new();
        self.slots.front_drain_all(&mut front);
        let before = owed.mags.len();
        self.slots.for_each(&mut |cp| cp.take_all(&mut owed.mags));
        if !front.is_empty() {
            // SAFETY: the drained objects belong to this cache and left the
            // front (the trait's contract); nobody else holds them. A
            // destructor panic here still frees the whole batch (the layer's
            // contract) and `owed` returns the magazines on the way out.
            unsafe { self.below.free_batch(&front) };
        }
        owed.mags.len() != before || !front.is_empty()
    }

    /// Purges the CPU layer and the whole depot (the seed's
    /// `skmem_cache_magazine_purge`): every magazine goes into `owed`, which
    /// the caller drops to give the objects back.
    fn purge(self, owed: &mut Owed<'_>) {
        tracing::debug!(cache = %self.below.name(), "purging magazines");
        if self.purge_cpu_layer(owed) {
            self.core.purges.fetch_add(1, Ordering::Relaxed);
        }
        self.core.lock_depot().ws_zero();
        self.ws_reap_into(owed);
    }

    /// Re-enables magazines at the depot's current size.
    ///
    /// Slots that already hold magazines are left alone: they can only have
    /// been created after the new size was published (purge empties every
    /// slot it walks, and slots created while the size is 0 hold none), so
    /// they already run at that size.
    pub(super) fn enable(self) {
        if self.core.magazines_off() {
            return;
        }
        let rounds = self.core.depot.lock().rounds;
        self.core.enabled_rounds.store(rounds, Ordering::Release);
        self.slots.for_each(&mut |cp| {
            // A slot created after the store above was born with `rounds`
            // and may already hold magazines of that size (its thread
            // allocated and freed before this walk reached it); it is
            // enabled already. Any other slot holding magazines would break
            // the module invariants.
            let holds = cp.loaded.is_some() || cp.ploaded.is_some();
            debug_assert!(
                !holds || cp.magsize == rounds,
                "slot holds magazines of {} rounds while enabling {rounds}",
                cp.magsize
            );
            if !holds {
                cp.magsize = rounds;
            }
        });
    }

    /// Gives back the depot magazines outside the working set.
    fn ws_reap(self) {
        let mut owed = Owed::new(self.below);
        self.ws_reap_into(&mut owed);
    }

    /// Takes the depot magazines outside the working set into `owed`.
    fn ws_reap_into(self, owed: &mut Owed<'_>) {
        let (mut full, mut empty) = (Chain::new(), Chain::new());
        let (f, e) = self.core.lock_depot().take_reapable(&mut full, &mut empty);
        owed.chain(full, true);
        owed.chain(empty, false);
        if f + e != 0 {
            self.core.reaps.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(cache = %self.below.name(), full = f, empty = e, "reaped depot");
        }
    }

    /// Periodic maintenance: a new working-set interval and, in dynamic
    /// mode under contention, a resize.
    pub(super) fn update(self) {
        let core = self.core;
        let grow = {
            let mut d = core.depot.lock();
            d.ws_update();
            let c = core.contention.load(Ordering::Relaxed);
            let judge = !core::mem::replace(&mut d.skip_next_judgement, false);
            let grow = judge
                && core.config.dynamic
                && !core.config.no_magazines
                && can_grow(core.steps, d.step, core.chunk)
                && c.wrapping_sub(d.contention_prev) > core.config.contention_threshold;
            d.contention_prev = c;
            grow
        };
        if grow {
            self.resize();
        }
    }

    /// Climbs one ladder step (the seed's `skmem_cache_magazine_resize`):
    /// purge, switch, re-enable, inside the resize perimeter.
    ///
    /// Guards leave the perimeter, re-enable the slots and give every taken
    /// magazine back also when a destructor panics on the way.
    #[cold]
    pub(super) fn resize(self) {
        let core = self.core;
        // Dropped in reverse order: the magazines go back first (no lock
        // held), then the slots are re-enabled, then the perimeter is left.
        let _inside = core.perimeter.enter();
        let _enable = EnableOnDrop(self);
        let mut owed = Owed::new(self.below);
        self.purge(&mut owed);
        let mut d = core.depot.lock();
        if can_grow(core.steps, d.step, core.chunk) {
            d.step += 1;
            d.rounds = core.steps[d.step].rounds;
            d.skip_next_judgement = true;
            let (mut full, mut empty) = (Chain::new(), Chain::new());
            d.full.drain(&mut full);
            d.empty.drain(&mut empty);
            let rounds = d.rounds;
            drop(d);
            owed.chain(full, true);
            owed.chain(empty, false);
            core.resizes.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(cache = %self.below.name(), rounds, "magazines resized");
        }
    }

    /// See [`Cache::reap_now`](super::Cache::reap_now).
    pub(super) fn reap_now(self, purge: bool) {
        if purge || self.core.config.purge_on_reap {
            if let Some(_inside) = self.core.perimeter.try_enter() {
                let _enable = EnableOnDrop(self);
                let mut owed = Owed::new(self.below);
                self.purge(&mut owed);
            }
        } else {
            let mut owed = Owed::new(self.below);
            self.core.lock_depot().ws_zero();
            self.ws_reap_into(&mut owed);
            self.slots.for_each(&mut |cp| {
                if let Some(m) = cp.ploaded.take() {
                    owed.mags.push((m, cp.prounds.max(0) as usize));
                }
                cp.prounds = -1;
            });
        }
    }

    /// See [`Cache::reclaim`](super::Cache::reclaim).
    pub(super) fn reclaim(self, lowmem: bool) {
        self.below.reclaim();
        if lowmem {
            self.reap_now(true);
        } else {
            self.ws_reap();
        }
        self.below.reap();
    }

    /// A snapshot of the cache's statistics, its layer's included.
    pub(super) fn stats(self) -> CacheStats {
        let core = self.core;
        let (mut rounds, mut prounds, mut alloc, mut free, mut slots) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        self.slots.for_each(&mut |cp| {
            rounds += cp.rounds.max(0) as u64;
            prounds += cp.prounds.max(0) as u64;
            alloc += cp.alloc;
            free += cp.free;
            slots += 1;
        });
        rounds += self.slots.front_cached() as u64;
        rounds += core.debug.as_ref().map_or(0, |d| d.len()) as u64;
        let (depot_full, depot_empty, full_alloc, empty_alloc, ws_zero, mag_size) = {
            let d = core.depot.lock();
            (
                d.full.total(),
                d.empty.total(),
                d.full.alloc,
                d.empty.alloc,
                d.ws_zero,
                d.rounds,
            )
        };
        CacheStats {
            name: self.below.name().to_owned(),
            locality: self.slots.locality().into(),
            cpu_mag_size: if core.config.no_magazines {
                0
            } else {
                mag_size
            },
            cpu_mag_resize: core.resizes.load(Ordering::Relaxed),
            cpu_mag_purge: core.purges.load(Ordering::Relaxed),
            cpu_mag_reap: core.reaps.load(Ordering::Relaxed),
            depot_full,
            depot_empty,
            depot_ws_zero: ws_zero,
            depot_contention: core.contention.load(Ordering::Relaxed),
            cpu_rounds: rounds,
            cpu_prounds: prounds,
            cpu_alloc: alloc + core.retired_alloc.load(Ordering::Relaxed),
            cpu_free: free + core.retired_free.load(Ordering::Relaxed),
            depot_full_alloc: full_alloc,
            depot_empty_alloc: empty_alloc,
            cpu_slots: slots,
            cached_objs: rounds + prounds + depot_full * mag_size as u64,
            slab: self.below.stats(),
        }
    }

    /// The cache is dropped: every magazine of the slots, fronts and depot
    /// goes back to the layer beneath.
    pub(super) fn drop_all(self) {
        let mut owed = Owed::new(self.below);
        self.purge_cpu_layer(&mut owed);
        let (mut full, mut empty) = (Chain::new(), Chain::new());
        {
            let mut d = self.core.depot.lock();
            d.full.drain(&mut full);
            d.empty.drain(&mut empty);
        }
        owed.chain(full, true);
        owed.chain(empty, false);
    }
}

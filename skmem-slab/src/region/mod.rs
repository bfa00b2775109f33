//! Regions: bounded sets of equally sized segments (the seed's
//! `skmem_region.c`).
//!
//! A [`Region`] owns a [`SegmentSource`] and hands out its segments whole.
//! Segment descriptors are created lazily: an index is taken from a bitmap of
//! vacant indices the first time it is needed, and after its first use the
//! index lives on a FIFO freelist (plus an index-ordered set, so a mirror can
//! ask for a specific index). Memory follows the descriptor: a segment's
//! backing is created when the segment is allocated and discarded when it is
//! freed, so an idle region holds no memory.
//!
//! When every index is in use, the region asks the caches registered on it
//! ([`Reap`]) to give memory back, then fails or waits as the caller's
//! [`AllocFlags`] say.
//!
//! # Safety and correctness
//!
//! * A segment index is in exactly one of: vacant (bitmap), free (freelist and
//!   free set together), live (the live map), or *reserved* by one thread
//!   that is creating or discarding its memory. Every transition happens
//!   under the region lock; the source and the shadow are called without it,
//!   only for indices the calling thread has reserved, so calls for one index
//!   never overlap (the source contract) and slow system calls do not
//!   serialise the region.
//! * An allocation that fails after reserving an index puts the index back
//!   at the front of the state it came from, so a failure (source error,
//!   shadow busy or exhausted, injected fault) leaves the region as it was,
//!   apart from the `alloc_fail` counter.
//! * Live segments' memory is valid (source contract) from allocation until
//!   [`Region::free_segment`]; `free_segment` checks the index and base against
//!   the live map before discarding, so a forged or repeated free panics
//!   naming the region instead of discarding memory that is in use.
//! * Waiting: a blocked [`AllocFlags::Sleep`] allocation raises `waiters`
//!   under the lock before the condition variable releases it, and every
//!   path that makes an index free again notifies under the same lock
//!   discipline, so no wake-up is lost. Reapers are called with no region
//!   lock held, so they may free segments.
//! * When the region is dropped with segments still out, it logs the count,
//!   adds it to [`leaked_segments`], and leaks its source, so memory that is
//!   still referenced stays mapped.
//! * No integer is ever turned into a pointer: segment addresses are the
//!   source's pointers, kept with their provenance (Miri runs the heap
//!   backend with `-Zmiri-strict-provenance`).

mod fault;
pub mod params;
mod sync;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use skmem_traits::stats::RegionStats;
use skmem_traits::{
    AllocFlags, Capabilities, Error, Mirror, NoMirror, RegionMode, Result, SegmentGeometry,
    SegmentSource,
};

pub use fault::FaultInjection;
pub use params::{
    RegionLayout, RegionParams, DEFAULT_SEG_SIZE, MAX_OBJ_COUNT, MAX_SEG_SIZE, MIN_PSEUDO_ALIGN,
};

use fault::Injector;
use sync::{Mutex, Signal};

/// How many times a blocking allocation retries a failing segment source
/// before it reports the failure. The seed retries forever (and panics after
/// a watchdog); a library should hand the error back instead.
const SOURCE_RETRIES: u32 = 4;

static LEAKED_SEGMENTS: AtomicU64 = AtomicU64::new(0);

/// Segments that dropped regions still had handed out (process-wide). A
/// non-zero value means some caller leaked segments; their memory was kept.
pub fn leaked_segments() -> u64 {
    LEAKED_SEGMENTS.load(Ordering::Relaxed)
}

/// Something above a region that holds cached memory and can give it back
/// when the region runs out (a cache's reap).
pub trait Reap: Send + Sync {
    /// Returns cached objects to the slab layer; with `purge`, everything.
    fn reap_now(&self, purge: bool);
}

/// One segment handed out by a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the segment in the region.
    pub index: u32,
    /// First byte of the segment.
    pub base: NonNull<u8>,
    /// First byte of the shadow segment, on mirrored regions.
    pub shadow: Option<NonNull<u8>>,
}

// SAFETY: a `Segment` is a description (index and addresses) with no access
// rights of its own; dereferencing its pointers is unsafe for the holder.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

#[derive(Debug, Clone, Copy)]
struct Live {
    base: NonNull<u8>,
    shadow: Option<NonNull<u8>>,
}

#[derive(Debug, Default)]
struct Counters {
    alloc: u64,
    free: u64,
    create: u64,
    destroy: u64,
    alloc_fail: u64,
    waits: u64,
}

/// Where a reserved index came from, so that a failed creation can put it
/// back exactly where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The vacant bitmap (never described, or torn down).
    Vacant,
    /// The freelist (described, not in use).
    Free,
}

#[derive(Debug)]
struct State {
    /// Bit set: the index has never been described (or was torn down).
    vacant: Vec<u64>,
    vacant_count: u32,
    /// No word of `vacant` before this one has a bit set.
    vacant_hint: usize,
    /// Described, not in use, in FIFO order.
    freelist: VecDeque<u32>,
    /// The same indices, ordered, for allocation of a given index.
    free_set: BTreeSet<u32>,
    /// Segments handed out.
    live: HashMap<u32, Live>,
    /// Base address → index, for interior lookups on non-contiguous sources.
    by_addr: BTreeMap<usize, u32>,
    injector: Option<Injector>,
    waiters: u32,
    counters: Counters,
}

// SAFETY: the raw pointers in `live` are descriptions of segments owned by
// the region's source; `State` is only reached under the region's mutex.
unsafe impl Send for State {}

impl State {
    fn take_vacant(&mut self) -> Option<u32> {
        for w in self.vacant_hint..self.vacant.len() {
            let word = &mut self.vacant[w];
            if *word != 0 {
                let bit = word.trailing_zeros();
                *word &= !(1u64 << bit);
                self.vacant_count -= 1;
                self.vacant_hint = w;
                return Some(w as u32 * 64 + bit);
            }
        }
        self.vacant_hint = self.vacant.len();
        None
    }

    fn take_vacant_at(&mut self, index: u32) -> bool {
        let (w, bit) = ((index / 64) as usize, index % 64);
        let set = self.vacant[w] & (1 << bit) != 0;
        if set {
            self.vacant[w] &= !(1 << bit);
            self.vacant_count -= 1;
        }
        set
    }

    fn take_free(&mut self) -> Option<u32> {
        let index = self.freelist.pop_front()?;
        self.free_set.remove(&index);
        Some(index)
    }

    fn take_free_at(&mut self, index: u32) -> bool {
        if self.free_set.remove(&index) {
            let pos = self
                .freelist
                .iter()
                .position(|&i| i == index)
                .expect("free set and freelist agree");
            self.freelist.remove(pos);
            true
        } else {
            false
        }
    }

    /// Reserves any index: a described one first (FIFO), else the lowest
    /// vacant one. A reserved index is in none of the three states until the
    /// caller makes it live or gives it back with [`untake`](Self::untake).
    fn take_any(&mut self) -> Option<(u32, Origin)> {
        if let Some(index) = self.take_free() {
            return Some((index, Origin::Free));
        }
        self.take_vacant().map(|index| (index, Origin::Vacant))
    }

    /// Reserves `index` if it is vacant or free.
    fn take_at(&mut self, index: u32) -> Option<Origin> {
        if self.take_free_at(index) {
            Some(Origin::Free)
        } else if self.take_vacant_at(index) {
            Some(Origin::Vacant)
        } else {
            None
        }
    }

    /// Gives back a reserved index that could not be made live, to the
    /// front of the state it came from: the next allocation takes it again,
    /// as if nothing had happened.
    fn untake(&mut self, index: u32, origin: Origin) {
        match origin {
            Origin::Free => {
                self.freelist.push_front(index);
                self.free_set.insert(index);
            }
            Origin::Vacant => {
                let w = (index / 64) as usize;
                debug_assert!(self.vacant[w] & (1 << (index % 64)) == 0);
                self.vacant[w] |= 1 << (index % 64);
                self.vacant_count += 1;
                self.vacant_hint = self.vacant_hint.min(w);
            }
        }
    }

    fn put_free(&mut self, index: u32) {
        self.freelist.push_back(index);
        self.free_set.insert(index);
    }

    fn has_free(&self) -> bool {
        !self.freelist.is_empty() || self.vacant_count != 0
    }
}

/// Whether a failed segment creation is worth retrying (transient), as
/// opposed to one that will fail the same way again.
fn is_transient(err: &Error) -> bool {
    matches!(
        err,
        Error::Exhausted { .. } | Error::InjectedFault { .. } | Error::Os { .. }
    )
}

/// A bounded set of equally sized segments from a [`SegmentSource`],
/// optionally driving a shadow region through a [`Mirror`].
///
/// Regions are shared (`Arc`): slab caches hold a reference, and the last
/// reference tears the region down.
pub struct Region<S: SegmentSource, M: Mirror = NoMirror> {
    params: RegionParams,
    layout: RegionLayout,
    source: ManuallyDrop<S>,
    mirror: M,
    span: Option<NonNull<u8>>,
    state: Mutex<State>,
    segment_freed: Signal,
    reapers: Mutex<Vec<Weak<dyn Reap>>>,
    /// The region's entry in the process registry; dropped with it.
    registration: std::sync::OnceLock<skmem_traits::registry::Registration>,
}

// SAFETY: `span` is an address description; the source is `Send + Sync` by
// its trait bound, the mirror likewise, and all mutable state is behind a
// mutex.
unsafe impl<S: SegmentSource, M: Mirror> Send for Region<S, M> {}
// SAFETY: as above.
unsafe impl<S: SegmentSource, M: Mirror> Sync for Region<S, M> {}

impl<S: SegmentSource, M: Mirror> std::fmt::Debug for Region<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.params.name)
            .field("source", &S::NAME)
            .field("layout", &self.layout)
            .field("mode", &self.params.mode)
            .finish_non_exhaustive()
    }
}

impl<S: SegmentSource> Region<S, NoMirror> {
    /// Creates a region from `params` on a source opened with `config`.
    pub fn new(params: RegionParams, config: S::Config) -> Result<Arc<Self>> {
        Self::with_mirror(params, config, NoMirror)
    }
}

impl<S: SegmentSource, M: Mirror> Region<S, M> {
    /// Creates a region that allocates segment `i` of `mirror` whenever it
    /// allocates its own segment `i`. The shadow's segment size must equal
    /// this region's and it must have at least as many segments.
    pub fn with_mirror(params: RegionParams, config: S::Config, mirror: M) -> Result<Arc<Self>> {
        let layout = params.configure()?;
        if mirror.is_active() {
            if mirror.segment_size() != layout.seg_size {
                return Err(Error::invalid_param(
                    "mirror",
                    mirror.segment_size() as u64,
                    "the shadow's segment size differs from the master's",
                ));
            }
            if mirror.segment_count() < layout.seg_count {
                return Err(Error::invalid_param(
                    "mirror",
                    mirror.segment_count() as u64,
                    "the shadow has fewer segments than the master",
                ));
            }
        }
        let geometry = SegmentGeometry {
            seg_size: layout.seg_size,
            seg_count: layout.seg_count,
            align: layout.align,
            mode: params.mode,
        };
        geometry.span_len()?;
        let source = S::open(&geometry, &config)?;
        let span = if source.capabilities().contains(Capabilities::CONTIGUOUS) {
            Some(source.span().expect("a CONTIGUOUS source reports its span"))
        } else {
            None
        };
        let words = (layout.seg_count as usize).div_ceil(64);
        let mut vacant = vec![u64::MAX; words];
        let tail = layout.seg_count % 64;
        if tail != 0 {
            vacant[words - 1] = (1u64 << tail) - 1;
        }
        let state = State {
            vacant,
            vacant_count: layout.seg_count,
            vacant_hint: 0,
            freelist: VecDeque::new(),
            free_set: BTreeSet::new(),
            live: HashMap::new(),
            by_addr: BTreeMap::new(),
            injector: None,
            waiters: 0,
            counters: Counters::default(),
        };
        tracing::debug!(
            region = %params.name,
            source = S::NAME,
            ?layout,
            "region created"
        );
        let region = Arc::new(Region {
            params,
            layout,
            source: ManuallyDrop::new(source),
            mirror,
            span,
            state: Mutex::new(state),
            segment_freed: Signal::new(),
            reapers: Mutex::new(Vec::new()),
            registration: std::sync::OnceLock::new(),
        });
        let entry =
            skmem_traits::registry::register_arc(skmem_traits::registry::Kind::Region, &region);
        let _ = region.registration.set(entry);
        Ok(region)
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.params.name
    }

    /// The parameters the region was created with.
    pub fn params(&self) -> &RegionParams {
        &self.params
    }

    /// The computed layout.
    pub fn layout(&self) -> &RegionLayout {
        &self.layout
    }

    /// The mode flags.
    pub fn mode(&self) -> RegionMode {
        self.params.mode
    }

    /// The segment source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The mirror (shadow) this region drives.
    pub fn mirror(&self) -> &M {
        &self.mirror
    }

    /// The contiguous span's base when the source has one.
    #[inline]
    pub fn span(&self) -> Option<NonNull<u8>> {
        self.span
    }

    /// The index of the segment that would hold `addr`, by arithmetic on the
    /// span, whether or not that segment is live. `None` when the source is
    /// not contiguous or `addr` is outside the span.
    #[inline]
    pub fn index_by_arithmetic(&self, addr: *const u8) -> Option<u32> {
        let base = self.span?.as_ptr() as usize;
        let offset = (addr as usize).checked_sub(base)?;
        let index = offset / self.layout.seg_size;
        (index < self.layout.seg_count as usize).then_some(index as u32)
    }

    /// Asks `reaper` to give memory back when the region runs out.
    pub fn add_reaper(&self, reaper: Weak<dyn Reap>) {
        let mut reapers = self.reapers.lock();
        reapers.retain(|r| r.strong_count() > 0);
        reapers.push(reaper);
    }

    /// Makes a fraction of segment creations fail, deterministically; `None`
    /// turns injection off.
    pub fn set_fault_injection(&self, config: Option<FaultInjection>) {
        self.state.lock().injector = config.map(Injector::new);
    }

    /// Allocates a segment, creating its memory.
    ///
    /// When no index is free, the caches registered with
    /// [`add_reaper`](Self::add_reaper) are asked to purge (without the
    /// region lock held, so they may free segments); if that freed nothing,
    /// [`AllocFlags::Sleep`] waits until another thread frees a segment
    /// (with no limit), [`AllocFlags::SleepFor`] waits at most its limit, and
    /// then, or at once with the other flags, the call fails with
    /// [`Error::Exhausted`].
    ///
    /// A transient failure of the source (or of the shadow, or an injected
    /// fault) is retried with exponential backoff (2, 4, 8, 16 ms) unless
    /// the flags are [`AllocFlags::NoSleep`]; after that, or for a permanent
    /// error, the error is returned. A failed attempt leaves the region as it
    /// was, apart from the `alloc_fail` counter.
    pub fn alloc_segment(&self, flags: AllocFlags) -> Result<Segment> {
        self.check_allocatable()?;
        let mut retries = 0;
        loop {
            let (index, origin, fault) = self.reserve(flags)?;
            match self.populate(index, origin, fault, flags) {
                Ok(segment) => return Ok(segment),
                Err(err) => {
                    if !flags.may_retry_source() || retries >= SOURCE_RETRIES || !is_transient(&err)
                    {
                        return Err(err);
                    }
                    retries += 1;
                    tracing::warn!(region = %self.params.name, %err, retries, "retrying segment creation");
                    std::thread::sleep(Duration::from_millis(1 << retries));
                }
            }
        }
    }

    /// Reserves an index for [`alloc_segment`](Self::alloc_segment): reaps,
    /// fails or waits when none is free. Returns the index, where it came
    /// from, and whether the fault injector wants this attempt to fail.
    fn reserve(&self, flags: AllocFlags) -> Result<(u32, Origin, Option<u64>)> {
        let deadline = flags.wait_limit().map(|limit| Instant::now() + limit);
        let mut state = self.state.lock();
        loop {
            if let Some((index, origin)) = state.take_any() {
                let fault = state.injector.as_mut().and_then(Injector::should_fail);
                return Ok((index, origin, fault));
            }
            drop(state);
            self.reap_caches();
            state = self.state.lock();
            if state.has_free() {
                continue;
            }
            let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if !flags.may_wait_for_free() || left.is_some_and(|left| left.is_zero()) {
                state.counters.alloc_fail += 1;
                return Err(self.exhausted());
            }
            // `free_segment` notifies under the same lock after it has
            // made an index free, and `waiters` is raised before the lock is
            // released by `wait`, so no wake-up is lost.
            state.waiters += 1;
            state.counters.waits += 1;
            state = match left {
                None => self.segment_freed.wait(state),
                Some(left) => self.segment_freed.wait_for(state, left),
            };
            state.waiters -= 1;
        }
    }

    /// Allocates the segment with a given index (what a master region asks
    /// of its shadow). Fails with [`Error::Busy`] when that index is in use
    /// and [`Error::OutOfRange`] when the region has no such index; never
    /// waits and never retries.
    pub fn alloc_segment_at(&self, index: u32, flags: AllocFlags) -> Result<Segment> {
        self.check_allocatable()?;
        if index >= self.layout.seg_count {
            return Err(Error::OutOfRange {
                field: "segment index",
                value: index as u64,
                limit: self.layout.seg_count as u64,
            });
        }
        let (origin, fault) = {
            let mut state = self.state.lock();
            let Some(origin) = state.take_at(index) else {
                state.counters.alloc_fail += 1;
                return Err(Error::Busy {
                    name: self.params.name.clone(),
                    reason: "the requested segment index is in use",
                });
            };
            (
                origin,
                state.injector.as_mut().and_then(Injector::should_fail),
            )
        };
        self.populate(index, origin, fault, flags)
    }

    fn check_allocatable(&self) -> Result<()> {
        if self.params.mode.contains(RegionMode::GUARD) {
            return Err(Error::Invalid {
                field: "region",
                reason: format!(
                    "`{}` is a guard region and holds no segments",
                    self.params.name
                ),
            });
        }
        Ok(())
    }

    /// Creates the memory of the reserved segment `index` (and its shadow),
    /// without the region lock, then records it as live. On error nothing
    /// is left created and `index` goes back where it came from.
    fn populate(
        &self,
        index: u32,
        origin: Origin,
        fault: Option<u64>,
        flags: AllocFlags,
    ) -> Result<Segment> {
        let created = match fault {
            Some(sequence) => Err(Error::InjectedFault {
                name: self.params.name.clone(),
                sequence,
            }),
            None => self.create_backing(index, flags),
        };
        let mut state = self.state.lock();
        match created {
            Ok(live) => {
                state.live.insert(index, live);
                if self.span.is_none() {
                    state.by_addr.insert(live.base.as_ptr() as usize, index);
                }
                state.counters.alloc += 1;
                state.counters.create += 1;
                Ok(Segment {
                    index,
                    base: live.base,
                    shadow: live.shadow,
                })
            }
            Err(err) => {
                state.untake(index, origin);
                state.counters.alloc_fail += 1;
                let wake = state.waiters != 0;
                drop(state);
                if wake {
                    // A waiter may have gone to sleep while this index was
                    // reserved; it is free again.
                    self.segment_freed.notify_one();
                }
                Err(err)
            }
        }
    }

    /// Creates segment `index` in the source and, on mirrored regions, in
    /// the shadow. Either both exist afterwards or neither does.
    fn create_backing(&self, index: u32, flags: AllocFlags) -> Result<Live> {
        // SAFETY: `index < seg_count` (it came from the bitmap, the freelist
        // or a range-checked request) and it is not live: the caller
        // reserved it, taking it out of the vacant or free state, and each
        // index is in exactly one state (or reserved by one thread).
        let base = unsafe { self.source.create(index) }?;
        let shadow = if self.mirror.is_active() {
            match self.mirror.alloc_segment(index, flags) {
                Ok(shadow) => Some(shadow),
                Err(err) => {
                    // SAFETY: created just above and never handed out.
                    unsafe { self.source.discard(index, base) };
                    return Err(err);
                }
            }
        } else {
            None
        };
        Ok(Live { base, shadow })
    }

    /// Frees a segment, discarding its memory (and its shadow's).
    ///
    /// The memory is discarded without the region lock held; the index only
    /// becomes free for reuse (and a waiting allocation is woken) afterwards.
    ///
    /// # Safety
    ///
    /// `segment` was returned by this region's `alloc_segment` and nothing
    /// accesses its memory (or its shadow's) afterwards.
    ///
    /// # Panics
    ///
    /// When `segment` is not live in this region (a double or forged free),
    /// naming the region and the address; the region is left unchanged.
    pub unsafe fn free_segment(&self, segment: Segment) {
        let live = {
            let mut state = self.state.lock();
            match state.live.get(&segment.index) {
                Some(live) if live.base == segment.base => {}
                _ => {
                    drop(state);
                    self.bad_free(segment);
                }
            }
            let live = state.live.remove(&segment.index).expect("checked above");
            if self.span.is_none() {
                state.by_addr.remove(&(live.base.as_ptr() as usize));
            }
            live
        };
        // The index is now reserved by this call: neither live nor free.
        if let Some(shadow) = live.shadow {
            // SAFETY: the shadow segment was allocated for this index when
            // the segment was populated; the caller no longer uses it.
            unsafe { self.mirror.free_segment(segment.index, shadow) };
        }
        // SAFETY: `live.base` was created for this index and was live until
        // just now; the caller promises no further access.
        unsafe { self.source.discard(segment.index, live.base) };
        let mut state = self.state.lock();
        state.put_free(segment.index);
        state.counters.free += 1;
        state.counters.destroy += 1;
        let wake = state.waiters != 0;
        drop(state);
        if wake {
            self.segment_freed.notify_one();
        }
    }

    #[cold]
    #[inline(never)]
    fn bad_free(&self, segment: Segment) -> ! {
        panic!(
            "region `{}`: free of segment {} at {:p}, which this region did not hand out (double free?)",
            self.params.name, segment.index, segment.base
        )
    }

    /// The live segment containing `addr`, if any.
    pub fn segment_of(&self, addr: *const u8) -> Option<Segment> {
        let state = self.state.lock();
        let index = match self.index_by_arithmetic(addr) {
            Some(index) => index,
            None if self.span.is_some() => return None,
            None => {
                let (&base, &index) = state.by_addr.range(..=addr as usize).next_back()?;
                if addr as usize - base >= self.layout.seg_size {
                    return None;
                }
                index
            }
        };
        let live = state.live.get(&index)?;
        Some(Segment {
            index,
            base: live.base,
            shadow: live.shadow,
        })
    }

    /// Every live segment, in index order (a snapshot).
    pub fn live_segments(&self) -> Vec<Segment> {
        let state = self.state.lock();
        let mut segments: Vec<_> = state
            .live
            .iter()
            .map(|(&index, live)| Segment {
                index,
                base: live.base,
                shadow: live.shadow,
            })
            .collect();
        drop(state);
        segments.sort_unstable_by_key(|s| s.index);
        segments
    }

    /// Number of segments handed out.
    pub fn segments_in_use(&self) -> u32 {
        self.state.lock().live.len() as u32
    }

    /// A snapshot of the region's statistics.
    ///
    /// `memtotal` is the capacity (`seg_size * seg_count`), `meminuse` the
    /// bytes of live segments (memory follows the segment: a free segment
    /// holds none). `w_meminuse` counts, segment by segment, the live
    /// segments the source reports as locked in memory
    /// ([`SegmentSource::is_wired`]): what the source did, not what the
    /// region's mode asked for (a persistent segment of a source configured
    /// not to wire is not counted; one wired later is).
    pub fn stats(&self) -> RegionStats {
        let state = self.state.lock();
        let in_use = state.live.len() as u64;
        let seg = self.layout.seg_size as u64;
        let wired = state
            .live
            .keys()
            .filter(|&&index| self.source.is_wired(index))
            .count() as u64;
        RegionStats {
            name: self.params.name.clone(),
            source: S::NAME.into(),
            mode: self.params.mode.bits(),
            r_seg_size: self.params.seg_size as u64,
            c_seg_size: seg,
            seg_cnt: self.layout.seg_count,
            seg_objs: self.layout.objs_per_seg,
            r_obj_size: self.params.obj_size as u64,
            r_obj_cnt: self.params.obj_count as u64,
            c_obj_size: self.layout.obj_size as u64,
            c_obj_cnt: self.layout.obj_count as u64,
            align: self.layout.align as u64,
            memtotal: seg * self.layout.seg_count as u64,
            meminuse: seg * in_use,
            w_meminuse: seg * wired,
            seginuse: in_use,
            alloc: state.counters.alloc,
            free: state.counters.free,
            create: state.counters.create,
            destroy: state.counters.destroy,
            alloc_fail: state.counters.alloc_fail,
            waits: state.counters.waits,
        }
    }

    #[cold]
    fn exhausted(&self) -> Error {
        Error::Exhausted {
            name: self.params.name.clone(),
            capacity: self.layout.seg_count as u64,
            unit: "segments",
        }
    }

    #[cold]
    fn reap_caches(&self) {
        let reapers: Vec<_> = self
            .reapers
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for reaper in reapers {
            reaper.reap_now(true);
        }
    }
}

impl<S: SegmentSource, M: Mirror> skmem_traits::registry::Registered for Region<S, M> {
    fn stats(&self) -> skmem_traits::registry::Stats {
        skmem_traits::registry::Stats::Region(Region::stats(self))
    }
}

impl<S: SegmentSource, M: Mirror> Drop for Region<S, M> {
    fn drop(&mut self) {
        let outstanding = self.state.get_mut().live.len() as u64;
        if outstanding != 0 {
            if crate::debug::env_flags().contains(crate::debug::DebugFlags::LEAKS) {
                crate::debug::leaks::report_region(&self.params.name, outstanding);
            }
            LEAKED_SEGMENTS.fetch_add(outstanding, Ordering::Relaxed);
            tracing::error!(
                region = %self.params.name,
                outstanding,
                "region dropped with segments still in use; their memory is leaked, not freed"
            );
            return;
        }
        // SAFETY: no segment is live (every freed segment was discarded), so
        // nothing refers to the source's memory; it is dropped exactly once.
        unsafe { ManuallyDrop::drop(&mut self.source) };
    }
}

/// A region used as the shadow of another (the seed's kernel/user pairs):
/// hand it to [`Region::with_mirror`] and the master allocates the same
/// segment index here whenever it allocates one of its own.
#[derive(Debug)]
pub struct Shadow<S: SegmentSource>(pub Arc<Region<S, NoMirror>>);

impl<S: SegmentSource> Clone for Shadow<S> {
    fn clone(&self) -> Self {
        Shadow(Arc::clone(&self.0))
    }
}

// SAFETY: a region is a valid shadow for a master of the same segment size:
// * `alloc_segment(i)` hands out segment `i` of this region, whose memory the
//   source keeps valid until `free_segment`;
// * `alloc_segment_at` refuses an index already live, so the same memory is
//   never handed out twice, and only the master calls it for this region.
unsafe impl<S: SegmentSource> Mirror for Shadow<S> {
    fn segment_size(&self) -> usize {
        self.0.layout.seg_size
    }

    fn segment_count(&self) -> u32 {
        self.0.layout.seg_count
    }

    fn alloc_segment(&self, index: u32, flags: AllocFlags) -> Result<NonNull<u8>> {
        self.0
            .alloc_segment_at(index, flags)
            .map(|segment| segment.base)
    }

    unsafe fn free_segment(&self, index: u32, base: NonNull<u8>) {
        // SAFETY: the master passes back what `alloc_segment` returned for
        // this index and stops using it.
        unsafe {
            self.0.free_segment(Segment {
                index,
                base,
                shadow: None,
            })
        }
    }
}

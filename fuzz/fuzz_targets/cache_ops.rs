//! Random operation sequences on a magazine `Cache` over a `SlabCache` over
//! a `Region` on the heap source, checked against a model after every step.
//!
//! Two caches share one locality policy (PerThread, PerCpu or Global, picked
//! by the input): one of constructed objects whose constructor and
//! destructor panic or fail when the input arms them, and one of raw
//! objects used through allocator-api2 (`Allocator` needs a layer without
//! constructed state; `Cache::allocator`), including zero-sized requests, a `Box` of `()` and an
//! empty boxed slice.
//!
//! The model holds every object the test owns. After each operation:
//!
//! * no object is handed out twice, every object lies in a live segment of
//!   its region and carries the constructor's mark;
//! * the slab's objects in use are exactly the objects the test holds and
//!   the objects resting in magazines (a panicking constructor's object goes
//!   back unconstructed, a panicking destructor's object goes back all the
//!   same, and so does the rest of their batch, including what the batch
//!   had already taken);
//! * the slab's constructor and destructor counts match the callbacks',
//!   and the objects constructed and not destructed are exactly those held
//!   and cached.
//!
//! At the end everything is freed, the caches purged and the slabs reaped:
//! no segment is still in use.
//!
//! Only panics carrying [`Injected`] are expected; any other panic (an
//! assertion here, a debug assertion or a bad-free check in the library)
//! reaches libFuzzer's hook and aborts: a finding.

#![no_main]

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::thread;

use allocator_api2::alloc::{Allocator, Layout};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use skmem_backends::{Heap, HeapConfig};
use skmem_magazine::{
    magazine_max_objs, AllocFlags, Cache, CacheAllocator, CacheConfig, Global, PerCpu, PerThread,
};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::{CpuLocal, Error, NoCtor, ObjectCtor, ObjectInfo};

/// What the constructor writes into the first word of every object and the
/// destructor checks and clears.
const MARK: u64 = 0x5eed_c0de_cafe_f00d;

/// At most this many injected panics per input (keeps inputs exploring
/// more than the unwind paths).
const MAX_INJECTED_PANICS: u32 = 3;

/// Payload of the panics this target injects.
struct Injected;

/// Lets injected panics unwind quietly; every other panic goes on to
/// libFuzzer's hook, which aborts (a crash to report).
fn install_panic_filter() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let next = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().is::<Injected>() {
                return;
            }
            next(info);
        }));
    });
}

/// Controls and counts of the constructor/destructor pair.
#[derive(Default)]
struct Ctl {
    /// `n > 0`: the `n`-th constructor call from now panics.
    ctor_panic_in: AtomicU32,
    /// `n > 0`: the `n`-th constructor call from now returns an error.
    ctor_fail_in: AtomicU32,
    /// `n > 0`: the `n`-th destructor call from now panics.
    dtor_panic_in: AtomicU32,
    ctor_ok: AtomicU64,
    dtor_ok: AtomicU64,
    /// Objects whose destructor panicked (taken back by the slab anyway).
    dtor_panics: AtomicU64,
    injected: AtomicU32,
}

/// `true` when this call is the one a countdown was armed for.
fn fires(countdown: &AtomicU32) -> bool {
    let n = countdown.load(Ordering::Relaxed);
    if n == 0 {
        return false;
    }
    countdown.store(n - 1, Ordering::Relaxed);
    n == 1
}

struct Ctor(Arc<Ctl>);

impl ObjectCtor for Ctor {
    fn construct(
        &self,
        obj: ObjectInfo,
        _shadow: Option<ObjectInfo>,
        _flags: AllocFlags,
    ) -> skmem_traits::Result<()> {
        assert!(obj.size >= 8, "objects are at least 8 bytes here");
        if fires(&self.0.ctor_fail_in) {
            return Err(Error::invalid_param(
                "fuzz",
                0,
                "injected constructor failure",
            ));
        }
        if fires(&self.0.ctor_panic_in) {
            self.0.injected.fetch_add(1, Ordering::Relaxed);
            panic::panic_any(Injected);
        }
        // SAFETY: the constructor owns the object's `size >= 8` bytes for
        // the call (ObjectCtor contract); objects are 8-aligned here.
        unsafe { obj.addr.as_ptr().cast::<u64>().write(MARK) };
        self.0.ctor_ok.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn destruct(&self, obj: ObjectInfo, _shadow: Option<ObjectInfo>) {
        // SAFETY: as in `construct`.
        let mark = unsafe { obj.addr.as_ptr().cast::<u64>().read() };
        assert_eq!(
            mark, MARK,
            "destructor given an object that is not constructed: {obj:?}"
        );
        if fires(&self.0.dtor_panic_in) {
            // The slab takes the object back all the same (its contract);
            // the constructor rebuilds it before it is handed out again.
            self.0.dtor_panics.fetch_add(1, Ordering::Relaxed);
            self.0.injected.fetch_add(1, Ordering::Relaxed);
            panic::panic_any(Injected);
        }
        // SAFETY: as in `construct`.
        unsafe { obj.addr.as_ptr().cast::<u64>().write(0) };
        self.0.dtor_ok.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    locality: u8,
    obj_size: u8,
    obj_count: u8,
    dynamic: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc {
        fail_ok: bool,
    },
    AllocBatch {
        n: u8,
        fail_ok: bool,
    },
    Free {
        pick: u16,
    },
    FreeBatch {
        start: u16,
        n: u8,
    },
    FreeNocache {
        pick: u16,
    },
    Purge,
    ReapNow {
        purge: bool,
    },
    Reclaim {
        lowmem: bool,
    },
    Update,
    DebugResize,
    LayerReap,
    ArmCtorPanic {
        after: u8,
    },
    ArmCtorFail {
        after: u8,
    },
    ArmDtorPanic {
        after: u8,
    },
    /// Allocates `allocs % 32` objects on another thread and frees
    /// `frees % 32` of ours there. That thread stays, with its slot and
    /// magazines, for the next such operation, of this input or of a later
    /// one (so a cache also dies under another thread's live slot), unless
    /// bit 6 of `allocs` is set: it then exits (its slots flush at exit)
    /// before the operation ends. See [`on_worker`].
    OtherThread {
        allocs: u8,
        frees: u8,
    },
    ApiAlloc {
        size: u16,
        align_log: u8,
        zeroed: bool,
    },
    ApiFree {
        pick: u16,
    },
    ApiResize {
        pick: u16,
        size: u16,
    },
    ZstBox,
    EmptyBoxedSlice,
}

/// A block held through allocator-api2.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    /// Inside the raw cache's region (a real object), not a dangling
    /// pointer for a zero-sized request.
    real: bool,
    fill: u8,
}

type ObjCache<L> = Cache<SlabCache<Heap, Ctor>, L>;
type RawCache<L> = Cache<SlabCache<Heap, NoCtor>, L>;
type RawAlloc<L> = CacheAllocator<SlabCache<Heap, NoCtor>, L>;

struct Harness<L: CpuLocal> {
    ctl: Arc<Ctl>,
    /// Shared with the jobs [`Harness::other_thread`] sends to the worker.
    cache: Arc<ObjCache<L>>,
    raw: RawCache<L>,
    api: RawAlloc<L>,
    live: Vec<usize>,
    live_set: HashSet<usize>,
    blocks: Vec<Block>,
    obj_size: usize,
}

fn flags(fail_ok: bool) -> AllocFlags {
    // Never `Sleep`: one thread waiting for a segment only it could free
    // would wait forever.
    if fail_ok {
        AllocFlags::FailOk
    } else {
        AllocFlags::NoSleep
    }
}

impl<L: CpuLocal> Harness<L> {
    fn new(input: &Input) -> Option<Self> {
        let obj_size = 8 + 8 * (input.obj_size as usize % 64);
        let count = 1 + input.obj_count as usize % 96;
        let mags = magazine_max_objs(obj_size.max(64), L::slot_hint());
        let ctl = Arc::new(Ctl::default());
        let params = RegionParams::new("fuzz-obj", obj_size, count).magazine_max_objs(mags);
        let region = Region::<Heap>::new(params, HeapConfig::default()).ok()?;
        let slab = SlabCache::new(
            region,
            SlabConfig::new("fuzz-obj", obj_size),
            Ctor(ctl.clone()),
        )
        .expect("slab over a fresh region");
        let config = CacheConfig::default()
            .register(false)
            .dynamic(input.dynamic);
        let cache = Cache::new(slab, config.clone()).expect("cache");
        let params = RegionParams::new("fuzz-raw", obj_size, count).magazine_max_objs(mags);
        let region = Region::<Heap>::new(params, HeapConfig::default()).expect("same params");
        let slab = SlabCache::new(region, SlabConfig::new("fuzz-raw", obj_size), NoCtor)
            .expect("slab over a fresh region");
        let raw: RawCache<L> = Cache::new(slab, config).expect("cache");
        let api = raw
            .allocator()
            .expect("a heap region is plain private memory");
        Some(Harness {
            ctl,
            cache: Arc::new(cache),
            raw,
            api,
            live: Vec::new(),
            live_set: HashSet::new(),
            blocks: Vec::new(),
            obj_size,
        })
    }

    /// Takes an object the cache handed out into the model.
    fn take(&mut self, obj: NonNull<u8>) {
        let addr = obj.as_ptr() as usize;
        assert!(
            self.cache
                .layer()
                .region()
                .segment_of(obj.as_ptr())
                .is_some(),
            "object {addr:#x} is not in a live segment of the region"
        );
        assert_eq!(addr % 8, 0, "object {addr:#x} misaligned");
        // SAFETY: a live, constructed object of the cache, ours alone.
        let mark = unsafe { obj.as_ptr().cast::<u64>().read() };
        assert_eq!(mark, MARK, "object {addr:#x} handed out unconstructed");
        assert!(
            self.live_set.insert(addr),
            "object {addr:#x} handed out twice"
        );
        self.live.push(addr);
    }

    fn give(&mut self, pick: u16) -> Option<NonNull<u8>> {
        if self.live.is_empty() {
            return None;
        }
        let addr = self.live.swap_remove(pick as usize % self.live.len());
        self.live_set.remove(&addr);
        NonNull::new(addr as *mut u8)
    }

    fn arm(&self, countdown: &AtomicU32, after: u8) {
        if self.ctl.injected.load(Ordering::Relaxed) < MAX_INJECTED_PANICS {
            countdown.store(1 + u32::from(after % 16), Ordering::Relaxed);
        }
    }

    fn disarm(&self) {
        self.ctl.ctor_panic_in.store(0, Ordering::Relaxed);
        self.ctl.ctor_fail_in.store(0, Ordering::Relaxed);
        self.ctl.dtor_panic_in.store(0, Ordering::Relaxed);
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Alloc { fail_ok } => {
                if let Ok(obj) = self.cache.alloc_with(flags(fail_ok)) {
                    self.take(obj);
                }
            }
            Op::AllocBatch { n, fail_ok } => {
                let mut out = vec![MaybeUninit::uninit(); n as usize % 80];
                let got = self.cache.alloc_batch(&mut out, flags(fail_ok));
                assert!(got <= out.len());
                for slot in &out[..got] {
                    // SAFETY: `alloc_batch` initialised the first `got`.
                    self.take(unsafe { slot.assume_init() });
                }
            }
            Op::Free { pick } => {
                if let Some(obj) = self.give(pick) {
                    // SAFETY: ours, from this cache, constructed, given up.
                    unsafe { self.cache.free(obj) };
                }
            }
            Op::FreeBatch { start, n } => {
                let mut objs = Vec::new();
                for _ in 0..n % 80 {
                    match self.give(start) {
                        Some(obj) => objs.push(obj),
                        None => break,
                    }
                }
                // SAFETY: ours, distinct, from this cache, given up.
                unsafe { self.cache.free_batch(&objs) };
            }
            Op::FreeNocache { pick } => {
                if let Some(obj) = self.give(pick) {
                    // SAFETY: as for `Free`.
                    unsafe { self.cache.free_nocache(obj) };
                }
            }
            Op::Purge => self.cache.purge(),
            Op::ReapNow { purge } => self.cache.reap_now(purge),
            Op::Reclaim { lowmem } => self.cache.reclaim(lowmem),
            Op::Update => self.cache.update(),
            Op::DebugResize => self.cache.debug_resize(),
            Op::LayerReap => self.cache.layer().reap(),
            Op::ArmCtorPanic { after } => self.arm(&self.ctl.ctor_panic_in, after),
            Op::ArmCtorFail { after } => {
                self.ctl
                    .ctor_fail_in
                    .store(1 + u32::from(after % 16), Ordering::Relaxed);
            }
            Op::ArmDtorPanic { after } => self.arm(&self.ctl.dtor_panic_in, after),
            Op::OtherThread { allocs, frees } => self.other_thread(allocs, frees),
            Op::ApiAlloc {
                size,
                align_log,
                zeroed,
            } => {
                let size = size as usize % (2 * self.obj_size + 1);
                let align = 1usize << (align_log % 8);
                let layout = Layout::from_size_align(size, align).expect("small layout");
                let fits = size <= self.raw.obj_size() && align <= self.raw.obj_align();
                let got = if zeroed {
                    (&self.api).allocate_zeroed(layout)
                } else {
                    (&self.api).allocate(layout)
                };
                match got {
                    Ok(block) => {
                        assert!(
                            fits || size == 0,
                            "{layout:?} does not fit {}-byte objects",
                            self.obj_size
                        );
                        assert!(block.len() >= size, "block shorter than asked");
                        let ptr = block.cast::<u8>();
                        self.take_block(ptr, layout, zeroed);
                    }
                    // Exhaustion or a layout that does not fit.
                    Err(_) => {}
                }
            }
            Op::ApiFree { pick } => {
                if !self.blocks.is_empty() {
                    let b = self.blocks.swap_remove(pick as usize % self.blocks.len());
                    check_fill(&b);
                    // SAFETY: allocated by `raw` with this layout, ours.
                    unsafe { (&self.api).deallocate(b.ptr, b.layout) };
                }
            }
            Op::ApiResize { pick, size } => {
                if !self.blocks.is_empty() {
                    let i = pick as usize % self.blocks.len();
                    let b = &self.blocks[i];
                    check_fill(b);
                    let size = size as usize % (2 * self.obj_size + 1);
                    if size == b.layout.size() || size == 0 || b.layout.size() == 0 {
                        return;
                    }
                    let new = Layout::from_size_align(size, b.layout.align()).expect("small");
                    // SAFETY: `b` was allocated by `raw` with `b.layout`.
                    let r = unsafe {
                        if size > b.layout.size() {
                            (&self.api).grow(b.ptr, b.layout, new)
                        } else {
                            (&self.api).shrink(b.ptr, b.layout, new)
                        }
                    };
                    if let Ok(block) = r {
                        let old = self.blocks.swap_remove(i);
                        assert_eq!(
                            block.cast::<u8>(),
                            old.ptr,
                            "a cache object resizes in place"
                        );
                        let keep = old.layout.size().min(size);
                        // SAFETY: `keep` bytes of the block are ours.
                        let bytes = unsafe { std::slice::from_raw_parts(old.ptr.as_ptr(), keep) };
                        assert!(bytes.iter().all(|&x| x == old.fill), "resize lost contents");
                        self.blocks.push(Block { layout: new, ..old });
                        let b = self.blocks.last().expect("just pushed");
                        // SAFETY: the block's `size` bytes are ours.
                        unsafe { b.ptr.as_ptr().write_bytes(b.fill, size) };
                    }
                }
            }
            Op::ZstBox => {
                let b = allocator_api2::boxed::Box::new_in((), &self.api);
                drop(b);
            }
            Op::EmptyBoxedSlice => {
                let v: allocator_api2::vec::Vec<u64, &RawAlloc<L>> =
                    allocator_api2::vec::Vec::new_in(&self.api);
                drop(v.into_boxed_slice());
            }
        }
    }

    fn take_block(&mut self, ptr: NonNull<u8>, layout: Layout, zeroed: bool) {
        let real = self.raw.layer().region().segment_of(ptr.as_ptr()).is_some();
        assert!(
            real || layout.size() == 0,
            "a {layout:?} block at {ptr:?} outside the cache's region"
        );
        assert_eq!(
            ptr.as_ptr() as usize % layout.align(),
            0,
            "misaligned block"
        );
        if real {
            for b in &self.blocks {
                assert!(!(b.real && b.ptr == ptr), "block {ptr:?} handed out twice");
            }
        }
        if zeroed && layout.size() > 0 {
            // SAFETY: the block's `size` bytes are ours.
            let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), layout.size()) };
            assert!(
                bytes.iter().all(|&x| x == 0),
                "allocate_zeroed gave dirty bytes"
            );
        }
        let fill = (ptr.as_ptr() as usize >> 3) as u8 | 1;
        // SAFETY: the block's `size` bytes are ours.
        unsafe { ptr.as_ptr().write_bytes(fill, layout.size()) };
        self.blocks.push(Block {
            ptr,
            layout,
            real,
            fill,
        });
    }

    fn other_thread(&mut self, allocs: u8, frees: u8) {
        // A destructor panic at thread exit (PerThread flushes the slot)
        // would abort by Rust's rules, so no injection while the other
        // thread runs.
        let saved = [
            self.ctl.ctor_panic_in.swap(0, Ordering::Relaxed),
            self.ctl.ctor_fail_in.swap(0, Ordering::Relaxed),
            self.ctl.dtor_panic_in.swap(0, Ordering::Relaxed),
        ];
        let mut gifts = Vec::new();
        for k in 0..frees % 32 {
            match self.give(u16::from(k)) {
                Some(obj) => gifts.push(obj.as_ptr() as usize),
                None => break,
            }
        }
        let cache = Arc::clone(&self.cache);
        let exit = allocs & 0x40 != 0;
        let got = on_worker(
            Box::new(move || {
                let mut got = Vec::new();
                for _ in 0..allocs % 32 {
                    if let Some(obj) = cache.alloc() {
                        got.push(obj.as_ptr() as usize);
                    }
                }
                for &addr in &gifts {
                    // SAFETY: handed over by the main thread, which gave
                    // it up; from this cache, constructed.
                    unsafe { cache.free(NonNull::new(addr as *mut u8).expect("non-null")) };
                }
                got
            }),
            exit,
        );
        for addr in got {
            self.take(NonNull::new(addr as *mut u8).expect("non-null"));
        }
        self.ctl.ctor_panic_in.store(saved[0], Ordering::Relaxed);
        self.ctl.ctor_fail_in.store(saved[1], Ordering::Relaxed);
        self.ctl.dtor_panic_in.store(saved[2], Ordering::Relaxed);
    }

    fn check(&self, after: &Op) {
        let s = self.cache.stats();
        assert_eq!(
            s.slab.sl_bufinuse,
            self.live.len() as u64 + s.cached_objs,
            "after {after:?}: objects out of the slab = held {} + cached {}\n{s:#?}",
            self.live.len(),
            s.cached_objs,
        );
        assert_eq!(
            s.slab.ctor,
            self.ctl.ctor_ok.load(Ordering::Relaxed),
            "ctor count"
        );
        // The slab counts a destructor call that panicked as a call.
        assert_eq!(
            s.slab.dtor,
            self.ctl.dtor_ok.load(Ordering::Relaxed) + self.ctl.dtor_panics.load(Ordering::Relaxed),
            "dtor count"
        );
        let constructed = self.ctl.ctor_ok.load(Ordering::Relaxed)
            - self.ctl.dtor_ok.load(Ordering::Relaxed)
            - self.ctl.dtor_panics.load(Ordering::Relaxed);
        assert_eq!(
            constructed,
            self.live.len() as u64 + s.cached_objs,
            "after {after:?}: constructed objects = held + cached"
        );
        let real = self.blocks.iter().filter(|b| b.real).count() as u64;
        let r = self.raw.stats();
        assert_eq!(
            r.slab.sl_bufinuse,
            real + r.cached_objs,
            "after {after:?}: raw objects out of the slab = held {real} + cached {}\n{r:#?}",
            r.cached_objs,
        );
    }

    fn finish(mut self) {
        self.disarm();
        while let Some(obj) = self.give(0) {
            // SAFETY: ours, from this cache, constructed, given up.
            unsafe { self.cache.free(obj) };
        }
        for b in std::mem::take(&mut self.blocks) {
            check_fill(&b);
            // SAFETY: allocated by `raw` with this layout, ours.
            unsafe { (&self.api).deallocate(b.ptr, b.layout) };
        }
        self.check(&Op::Purge);
        self.cache.purge();
        self.cache.layer().reap();
        self.raw.purge();
        self.raw.layer().reap();
        self.check(&Op::Purge);
        let s = self.cache.stats();
        assert_eq!(s.cached_objs, 0, "purge left objects in magazines:\n{s:#?}");
        assert_eq!(s.slab.sl_bufinuse, 0, "every object back in the slab");
        let region = self.cache.layer().region();
        assert_eq!(region.segments_in_use(), 0, "every segment back");
        assert_eq!(region.stats().seginuse, 0, "region stats");
        let r = self.raw.stats();
        assert_eq!(r.cached_objs, 0, "raw purge left objects:\n{r:#?}");
        assert_eq!(r.slab.sl_bufinuse, 0);
        assert_eq!(
            self.raw.layer().region().segments_in_use(),
            0,
            "raw segments back"
        );
    }
}

/// A job for the other thread: it owns what it uses (an `Arc` of the
/// cache) and drops it before it returns, so the cache never dies there.
type Job = Box<dyn FnOnce() -> Vec<usize> + Send>;

/// The other thread of [`Op::OtherThread`], kept between operations and
/// inputs: spawning a thread per operation (with ASan's per-thread setup)
/// took more than half of every execution.
struct Worker {
    jobs: mpsc::Sender<Job>,
    results: mpsc::Receiver<Vec<usize>>,
    thread: thread::JoinHandle<()>,
}

static WORKER: Mutex<Option<Worker>> = Mutex::new(None);

/// Runs `job` on the worker thread (spawned if there is none) and returns
/// its result; with `exit`, the worker then ends and is joined, so its
/// thread-exit hooks (PerThread slots flushing to the depot) have run when
/// this returns, as they had after the `join` of a short-lived thread.
fn on_worker(job: Job, exit: bool) -> Vec<usize> {
    let mut worker = WORKER.lock().unwrap_or_else(|e| e.into_inner());
    let w = worker.get_or_insert_with(|| {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (outbox, results) = mpsc::channel();
        let thread = thread::spawn(move || {
            for job in inbox {
                // The job's captures are dropped when the call returns,
                // before the result goes out.
                let got = job();
                if outbox.send(got).is_err() {
                    break;
                }
            }
        });
        Worker {
            jobs,
            results,
            thread,
        }
    });
    w.jobs.send(job).expect("the worker thread is alive");
    // A job panics only on a finding, which aborts through libFuzzer's hook.
    let got = w.results.recv().expect("the worker thread ran the job");
    if exit {
        let Worker { jobs, thread, .. } = worker.take().expect("just used");
        drop(jobs);
        thread.join().expect("the worker thread exits cleanly");
    }
    got
}

fn check_fill(b: &Block) {
    // SAFETY: the block's `size` bytes are ours.
    let bytes = unsafe { std::slice::from_raw_parts(b.ptr.as_ptr(), b.layout.size()) };
    assert!(
        bytes.iter().all(|&x| x == b.fill),
        "block {:?} was written by someone else",
        b.ptr
    );
}

fn run<L: CpuLocal>(input: &Input) {
    let Some(mut h) = Harness::<L>::new(input) else {
        return;
    };
    for op in input.ops.iter().take(256) {
        let before = h.ctl.injected.load(Ordering::Relaxed);
        let r = panic::catch_unwind(AssertUnwindSafe(|| h.step(op)));
        if let Err(payload) = r {
            assert!(payload.is::<Injected>(), "only injected panics are caught");
            assert!(
                h.ctl.injected.load(Ordering::Relaxed) > before,
                "an injected panic without an injection"
            );
        }
        h.check(op);
    }
    h.finish();
}

fuzz_target!(|input: Input| {
    install_panic_filter();
    match input.locality % 3 {
        0 => run::<PerThread>(&input),
        1 => run::<PerCpu>(&input),
        _ => run::<Global>(&input),
    }
});

//! The access patterns, generic over [`ObjPool`].
//!
//! Each function is one unit of work the harnesses repeat; the caller owns
//! any scratch vector (allocated once, outside the measured loop), so the
//! harness itself allocates nothing while measuring — which matters because
//! the harness's own allocations would go to the system allocator, one of
//! the contenders.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::ring::SpscRing;
use crate::{ObjPool, Ptr};

/// One `get` and one `put` of the same object (the fast path).
#[inline]
pub fn pair<P: ObjPool>(pool: &P) {
    let h = black_box(pool.get());
    // SAFETY: `h` was just taken from `pool`.
    unsafe { pool.put(h) };
}

/// `n` pairs in a loop (the instruction-count harness divides by `n`).
#[inline]
pub fn pairs<P: ObjPool>(pool: &P, n: usize) {
    for _ in 0..n {
        pair(pool);
    }
}

/// Takes `n` objects with the contender's batch call (a loop for those
/// without one), then gives them all back. `scratch` must be empty with
/// capacity for `n` handles.
#[inline]
pub fn batch<'a, P: ObjPool>(pool: &'a P, scratch: &mut Vec<P::Handle<'a>>, n: usize) {
    pool.get_batch(scratch, n);
    black_box(scratch.as_mut_ptr());
    // SAFETY: every handle in `scratch` was just taken from `pool`.
    unsafe { pool.put_batch(scratch) };
}

/// A burst: `n` single `get`s, then `n` single `put`s in allocation order.
/// With `n` larger than a magazine this runs through the depot and the
/// slab layer. `scratch` must be empty with capacity for `n` handles.
#[inline]
pub fn burst<'a, P: ObjPool>(pool: &'a P, scratch: &mut Vec<P::Handle<'a>>, n: usize) {
    for _ in 0..n {
        scratch.push(pool.get());
    }
    black_box(scratch.as_mut_ptr());
    for h in scratch.drain(..) {
        // SAFETY: `h` was taken from `pool` above and is given back once.
        unsafe { pool.put(h) };
    }
}

/// Constructed-object reuse: take an object, read one word of its
/// constructed state, give it back. Returns the word read.
#[inline]
pub fn use_constructed<P: ObjPool>(pool: &P, word: usize) -> u32 {
    let h = pool.get();
    let v = pool.read(&h, black_box(word));
    // SAFETY: `h` was just taken from `pool`.
    unsafe { pool.put(h) };
    v
}

/// Capacity of the ring of [`producer_consumer`]: at most this many
/// objects are in flight between the two threads.
pub const HANDOFF_RING: usize = 256;

/// Waits a little for the other thread: spins first (the other side is
/// usually a few nanoseconds away), then yields, because on a loaded
/// machine the other side may not be running at all.
#[inline]
fn backoff(spins: &mut u32) {
    if *spins < 64 {
        core::hint::spin_loop();
        *spins += 1;
    } else {
        std::thread::yield_now();
    }
}

/// Two threads: the caller's thread allocates `total` objects and pushes
/// each through a lock-free SPSC ring ([`SpscRing`], [`HANDOFF_RING`]
/// slots) to a consumer thread that pops and frees it (every free is a
/// cross-thread free). Returns the time from the first allocation to the
/// last free.
pub fn producer_consumer<P>(pool: &P, total: u64) -> Duration
where
    P: ObjPool + Sync,
    for<'a> P::Handle<'a>: Send,
{
    let mut ring = SpscRing::new(HANDOFF_RING);
    let (mut tx, mut rx) = ring.split();
    let ready = Barrier::new(2);
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            ready.wait();
            let mut freed = 0;
            let mut spins = 0;
            while freed < total {
                match rx.pop() {
                    Some(h) => {
                        // SAFETY: every handle in the ring was taken from
                        // `pool` by the producer and is given back exactly
                        // once, here.
                        unsafe { pool.put(h) };
                        freed += 1;
                        spins = 0;
                    }
                    None => backoff(&mut spins),
                }
            }
            Instant::now()
        });
        ready.wait();
        let start = Instant::now();
        for _ in 0..total {
            let mut h = pool.get();
            let mut spins = 0;
            while let Err(back) = tx.push(h) {
                h = back;
                backoff(&mut spins);
            }
        }
        let end = consumer.join().expect("consumer thread");
        end - start
    })
}

/// Two threads, each doing `iters` alloc+free pairs on the shared `pool`
/// at the same time. The threads are started (and, for a per-thread cache,
/// take their slots) before the clock starts; returns the time from the
/// common start until both are done, i.e. the time per pair *per thread*
/// is the result divided by `iters`.
pub fn pairs_two_threads<P: ObjPool + Sync>(pool: &P, iters: u64) -> Duration {
    let start_line = Barrier::new(3);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    pair(pool);
                    start_line.wait();
                    for _ in 0..iters {
                        pair(pool);
                    }
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        for w in workers {
            w.join().expect("pair thread");
        }
        start.elapsed()
    })
}

/// The size of the working set of [`replace`] (a power of two: the index
/// is a mask of a random number).
pub const WORKING_SET: usize = 8192;

/// One step of Marsaglia's xorshift64: a cheap, deterministic sequence of
/// random indices (`state` must start non-zero).
#[inline]
pub fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Fills a working set of `n` objects from `pool` (unmeasured setup of
/// [`replace`]).
pub fn fill<P>(pool: &P, n: usize) -> Vec<Ptr>
where
    for<'a> P: ObjPool<Handle<'a> = Ptr> + 'a,
{
    (0..n)
        .map(|i| {
            let h = pool.get();
            // SAFETY: a fresh object of at least 8 bytes, 8-aligned, ours.
            unsafe { h.0.cast::<u64>().write(i as u64) };
            h
        })
        .collect()
}

/// Random replacement in a working set: frees the object at a random
/// index of `set` (whose length is a power of two), allocates a new one in
/// its place and writes its first word (as a new object gets initialised),
/// so the allocator's reuse order meets a realistic, scattered access
/// pattern.
///
/// Always inlined, as [`pair`] is inlined by itself: left to the
/// heuristics, this became an out-of-line call that saved six registers on
/// the stack every replacement, and skmem's inline fast path then ran 5.3 or
/// 6.4 ns depending on where the kernel put the stack (one binary, the
/// environment padded by 16-byte steps under `setarch -R`: 5.27–6.44 ns,
/// bimodal, against 5.99–6.45 for jemalloc, whose fast path is a call into
/// its own library either way). Inlined, every contender's loop is the
/// workload itself and the spread across stack placements fell to
/// 4.03–4.38 (PerThread), 4.45–4.75 (PerCpu) and 5.77–6.02 ns (jemalloc)
/// on the project's AMD EPYC machine.
#[inline(always)]
pub fn replace<P>(pool: &P, set: &mut [Ptr], rng: &mut u64)
where
    for<'a> P: ObjPool<Handle<'a> = Ptr> + 'a,
{
    let r = xorshift(rng);
    let i = (r as usize) & (set.len() - 1);
    // SAFETY: every entry of `set` is a live object of `pool` (from `fill`
    // or an earlier `replace`), freed once here and replaced at once.
    unsafe { pool.put(set[i]) };
    let h = pool.get();
    // SAFETY: a fresh object of at least 8 bytes, 8-aligned, ours.
    unsafe { h.0.cast::<u64>().write(r) };
    set[i] = h;
}

/// Gives back every object of a working set (teardown of [`replace`]).
pub fn drain<P>(pool: &P, set: Vec<Ptr>)
where
    for<'a> P: ObjPool<Handle<'a> = Ptr> + 'a,
{
    for h in set {
        // SAFETY: every entry is a live object of `pool`, given back once.
        unsafe { pool.put(h) };
    }
}

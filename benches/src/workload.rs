//! The access patterns, generic over [`ObjPool`].
//!
//! Each function is one unit of work the harnesses repeat; the caller owns
//! any scratch vector (allocated once, outside the measured loop), so the
//! harness itself allocates nothing while measuring — which matters because
//! the harness's own allocations would go to the system allocator, one of
//! the contenders.

use std::hint::black_box;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use crate::ObjPool;

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

/// Objects sent per message in [`producer_consumer`].
pub const HANDOFF_BATCH: usize = 64;
/// Messages in flight at most in [`producer_consumer`] (so at most
/// `HANDOFF_BATCH * HANDOFF_DEPTH` objects are outstanding).
pub const HANDOFF_DEPTH: usize = 8;

/// Two threads: the caller's thread allocates `total` objects and hands
/// them, [`HANDOFF_BATCH`] per message, to a consumer thread that frees
/// them (every free is a cross-thread free). Message vectors are recycled
/// through a return channel, so the harness allocates nothing in the loop.
/// Returns the time from the first allocation to the last free.
pub fn producer_consumer<P>(pool: &P, total: u64) -> Duration
where
    P: ObjPool + Sync,
    for<'a> P::Handle<'a>: Send,
{
    std::thread::scope(|s| {
        let (full_tx, full_rx) = sync_channel::<Vec<P::Handle<'_>>>(HANDOFF_DEPTH);
        let (empty_tx, empty_rx) = sync_channel::<Vec<P::Handle<'_>>>(HANDOFF_DEPTH);
        for _ in 0..HANDOFF_DEPTH {
            empty_tx
                .send(Vec::with_capacity(HANDOFF_BATCH))
                .expect("prime the return channel");
        }
        let (ready_tx, ready_rx) = sync_channel::<()>(1);
        let consumer = s.spawn(move || {
            ready_tx.send(()).expect("consumer ready");
            for mut msg in full_rx {
                for h in msg.drain(..) {
                    // SAFETY: every handle in a message was taken from `pool`
                    // by the producer and is given back exactly once, here.
                    unsafe { pool.put(h) };
                }
                // The producer may have stopped waiting for vectors.
                let _ = empty_tx.send(msg);
            }
        });
        ready_rx.recv().expect("consumer started");
        let start = Instant::now();
        let mut left = total;
        while left > 0 {
            let mut msg = empty_rx.recv().expect("recycled message");
            let k = left.min(HANDOFF_BATCH as u64);
            for _ in 0..k {
                msg.push(pool.get());
            }
            full_tx.send(msg).expect("consumer alive");
            left -= k;
        }
        drop(full_tx);
        consumer.join().expect("consumer thread");
        start.elapsed()
    })
}

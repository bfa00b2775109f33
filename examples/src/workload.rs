//! A mixed object-cache workload: several threads allocate and free single
//! objects and batches, and hand some objects to a neighbour thread to free
//! (cross-thread frees). Every object carries a stamp written at allocation
//! and checked at free, so an object handed out twice is caught.

use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use skmem_magazine::{Cache, CpuLocal, ObjectLayer};
use skmem_traits::AllocFlags;

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixedReport {
    /// Objects allocated and freed in all (one alloc + one free = 2 ops).
    pub ops: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Objects freed by a thread other than the one that allocated them.
    pub cross_thread_frees: u64,
}

impl MixedReport {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// An object in flight between threads with the stamp it must carry.
struct Held {
    obj: NonNull<u8>,
    stamp: u64,
}

// SAFETY: a `Held` is an exclusively owned object of the cache (the cache is
// `Sync` and accepts frees from any thread); sending it moves that ownership.
unsafe impl Send for Held {}

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Writes `stamp` into the object's first 8 bytes.
///
/// # Safety
///
/// `obj` is an object of at least 8 bytes that the caller owns exclusively.
unsafe fn stamp(obj: NonNull<u8>, stamp: u64) {
    // SAFETY: the caller owns at least 8 bytes at `obj`; the write is
    // unaligned-tolerant.
    unsafe { obj.as_ptr().cast::<u64>().write_unaligned(stamp) }
}

/// Checks that the object still carries `stamp`.
///
/// # Safety
///
/// As [`stamp`].
unsafe fn check(obj: NonNull<u8>, expected: u64) {
    // SAFETY: as for `stamp`.
    let found = unsafe { obj.as_ptr().cast::<u64>().read_unaligned() };
    assert_eq!(
        found, expected,
        "object {obj:p} was changed while its owner held it: handed out twice?"
    );
}

/// Runs the mixed workload on `threads` threads for `duration`.
///
/// Each step a thread picks at random: allocate one object, free one,
/// allocate a batch of 32, free a batch of 32, or pass 16 objects to the next
/// thread, which frees them. At the end every object is freed, so the cache
/// holds everything again.
///
/// # Panics
///
/// When an object is found changed while held (a double hand-out), or the
/// object size is under 8 bytes.
pub fn run_mixed<B, L>(cache: &Cache<B, L>, threads: usize, duration: Duration) -> MixedReport
where
    B: ObjectLayer,
    L: CpuLocal,
{
    assert!(cache.obj_size() >= 8, "objects must hold an 8-byte stamp");
    let threads = threads.max(1);
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..threads).map(|_| mpsc::channel::<Vec<Held>>()).unzip();
    let start = Instant::now();
    let results: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(t, inbox)| {
                let outbox = senders[(t + 1) % threads].clone();
                scope.spawn(move || worker(cache, t as u64, duration, inbox, outbox))
            })
            .collect();
        drop(senders);
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    MixedReport {
        ops: results.iter().map(|r| r.0).sum(),
        elapsed: start.elapsed(),
        cross_thread_frees: results.iter().map(|r| r.1).sum(),
    }
}

fn worker<B: ObjectLayer, L: CpuLocal>(
    cache: &Cache<B, L>,
    id: u64,
    duration: Duration,
    inbox: mpsc::Receiver<Vec<Held>>,
    outbox: mpsc::Sender<Vec<Held>>,
) -> (u64, u64) {
    const MAX_HELD: usize = 512;
    let mut rng = 0x2545_F491_4F6C_DD1D ^ (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next_stamp = id << 48;
    let mut held: Vec<Held> = Vec::with_capacity(MAX_HELD + 64);
    let mut batch = [MaybeUninit::<NonNull<u8>>::uninit(); 32];
    let mut ptrs: Vec<NonNull<u8>> = Vec::with_capacity(32);
    let (mut ops, mut cross) = (0u64, 0u64);
    let deadline = Instant::now() + duration;
    let mut free_held = |held: &mut Vec<Held>, n: usize, ops: &mut u64| {
        ptrs.clear();
        for h in held.drain(held.len().saturating_sub(n)..) {
            // SAFETY: this thread owns `h.obj` (allocated here or received).
            unsafe { check(h.obj, h.stamp) };
            ptrs.push(h.obj);
        }
        *ops += ptrs.len() as u64;
        // SAFETY: every pointer came from `cache`, is owned by this thread
        // and appears once.
        unsafe { cache.free_batch(&ptrs) };
    };
    let mut step = 0u64;
    loop {
        step += 1;
        if step % 64 == 0 && Instant::now() >= deadline {
            break;
        }
        while let Ok(received) = inbox.try_recv() {
            cross += received.len() as u64;
            let mut received = received;
            free_held(&mut received, usize::MAX, &mut ops);
        }
        match xorshift(&mut rng) % 8 {
            0..=2 if held.len() < MAX_HELD => {
                if let Some(obj) = cache.alloc() {
                    next_stamp += 1;
                    // SAFETY: freshly allocated, owned by this thread.
                    unsafe { stamp(obj, next_stamp) };
                    held.push(Held {
                        obj,
                        stamp: next_stamp,
                    });
                    ops += 1;
                }
            }
            3 | 4 => {
                if let Some(h) = held.pop() {
                    // SAFETY: owned by this thread, stamped at allocation.
                    unsafe { check(h.obj, h.stamp) };
                    // SAFETY: came from `cache`, freed once.
                    unsafe { cache.free(h.obj) };
                    ops += 1;
                }
            }
            5 if held.len() < MAX_HELD => {
                let got = cache.alloc_batch(&mut batch, AllocFlags::NoSleep);
                for slot in &batch[..got] {
                    // SAFETY: `alloc_batch` initialised the first `got` slots.
                    let obj = unsafe { slot.assume_init() };
                    next_stamp += 1;
                    // SAFETY: freshly allocated, owned by this thread.
                    unsafe { stamp(obj, next_stamp) };
                    held.push(Held {
                        obj,
                        stamp: next_stamp,
                    });
                }
                ops += got as u64;
            }
            6 => free_held(&mut held, 32, &mut ops),
            _ => {
                let n = held.len().min(16);
                if n > 0 {
                    let parcel: Vec<Held> = held.drain(held.len() - n..).collect();
                    if let Err(mpsc::SendError(parcel)) = outbox.send(parcel) {
                        let mut parcel = parcel;
                        free_held(&mut parcel, usize::MAX, &mut ops);
                    }
                }
            }
        }
    }
    free_held(&mut held, usize::MAX, &mut ops);
    drop(outbox);
    // Drain what neighbours still send until they are all done.
    for received in inbox {
        cross += received.len() as u64;
        let mut received = received;
        free_held(&mut received, usize::MAX, &mut ops);
    }
    (ops, cross)
}

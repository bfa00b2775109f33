//! Set-up shared by the loom models (`loom_exchange`, `loom_resize`,
//! `loom_per_thread`): a small cache whose magazines hold 1, 2 or 4
//! rounds, so that every few operations swap magazines or trade with the
//! depot, and the round trip the models' threads make on it.
#![allow(dead_code, unreachable_pub)]

use std::ptr::NonNull;

use skmem_magazine::{Cache, CacheConfig, CpuLocal, Ladder, ObjectLayer, TinyLadder};
use skmem_testkit::HeapObjects;

/// A magazine cache over the test heap layer, with the tiny ladder.
pub type Tiny<L> = Cache<HeapObjects, L, TinyLadder>;

/// A cache of 8-byte objects named `name` with locality `L`, configured by
/// `config` and kept out of the process registry (loom models run many
/// times in one process).
pub fn tiny_cache<L: CpuLocal>(name: &str, config: CacheConfig) -> Tiny<L> {
    let layer = HeapObjects::new(name, 8, 8).unwrap();
    Cache::new(layer, config.register(false)).unwrap()
}

/// Two objects out at once and back: with 1-round magazines the frees
/// fill the loaded and the previous magazine. Returns the two objects
/// (distinct, asserted).
pub fn two_out_and_back<B: ObjectLayer, L: CpuLocal, G: Ladder>(
    cache: &Cache<B, L, G>,
) -> (NonNull<u8>, NonNull<u8>) {
    let x = cache.alloc().unwrap();
    let y = cache.alloc().unwrap();
    assert_ne!(x, y);
    // SAFETY: from `cache`, each freed once.
    unsafe {
        cache.free(x);
        cache.free(y);
    }
    (x, y)
}

/// [`two_out_and_back`], then one more round trip: the magazines just
/// filled are traded with the depot. Returns the first two objects.
pub fn round_trips<B: ObjectLayer, L: CpuLocal, G: Ladder>(
    cache: &Cache<B, L, G>,
) -> (NonNull<u8>, NonNull<u8>) {
    let pair = two_out_and_back(cache);
    let z = cache.alloc().unwrap();
    // SAFETY: from `cache`, freed once.
    unsafe { cache.free(z) };
    pair
}

//! Loom model of the CPU-layer / depot exchange: two threads allocate and
//! free through 1-round magazines (so every operation swaps magazines or
//! trades with the depot), sharing one slot (`Global`) or using two
//! (`PerCpu`), while the objects stay unique and all come back.
#![cfg(loom)]

use std::collections::HashSet;
use std::ptr::NonNull;

use loom::thread;
use skmem_magazine::{CacheConfig, CpuLocal, Global, PerCpu};

mod loom_common;
use loom_common::{round_trips, tiny_cache};

#[derive(Clone, Copy)]
struct P(NonNull<u8>);
// SAFETY: a plain address; each thread owns the objects it holds.
unsafe impl Send for P {}

fn model<L: CpuLocal>() {
    loom::model(|| {
        let cache = loom::sync::Arc::new(tiny_cache::<L>("loom-exchange", CacheConfig::default()));
        // Two cached objects to start with.
        let a = cache.alloc().unwrap();
        let b = cache.alloc().unwrap();
        // SAFETY: from `cache`.
        unsafe {
            cache.free(a);
            cache.free(b);
        }
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let cache = cache.clone();
                thread::spawn(move || {
                    let (x, y) = round_trips(&cache);
                    (P(x), P(y))
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for h in handles {
            let (x, y) = h.join().unwrap();
            seen.insert(x.0);
            seen.insert(y.0);
        }
        let s = cache.stats();
        assert_eq!(s.slab.sl_bufinuse, s.cached_objs, "{s:?}");
        assert!(s.slab.sl_bufinuse <= 4);
        cache.purge();
        assert_eq!(cache.layer().live(), 0);
    });
}

#[test]
fn loom_exchange_global() {
    model::<Global>();
}

#[test]
fn loom_exchange_per_cpu() {
    model::<PerCpu>();
}

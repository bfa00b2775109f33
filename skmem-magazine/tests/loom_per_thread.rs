//! Loom models of `PerThread` caches: each thread allocates and frees
//! through its own slot (thread-local table and memo, owner-only
//! handshake), while another thread purges, reaps, exits (its magazines go
//! back to the depot from its thread-local destructors) or drops the cache.
//!
//! Everything these paths synchronise with is a loom primitive (the `sync`
//! facade): the slot and table locks, the owner slots' `busy` / `stop`
//! flags and fences, the fast-path table, the depot lock, and the live set
//! of `HeapObjects`. The models check, through the layer's own counts, that
//! no object is lost (every object the layer handed out is cached or held,
//! and all come back on purge or drop) and none is handed out twice (a
//! checker set of the objects held right now; a second hand-out of a held
//! object fails its insert).
//!
//! Magazines are one round (`TinyLadder`), so every second operation
//! swaps magazines or trades with the depot.
//!
//! # Waiting for a thread's exit
//!
//! Loom's `join` returns once the thread's closure has returned, before its
//! thread-local destructors (where the exit hook runs) are done; `std`'s
//! waits for them. So after a join the models wait, yielding to loom, until
//! the exit's effect is visible ([`settle`]): the exited threads' slots are
//! gone from the cache and every object the layer has out is cached again
//! (an exit that has taken its slot's magazines but not yet put them in the
//! depot has them in hand, so both are needed), or every object constructed
//! was destructed. An exit that loses an object never gets there, and loom
//! fails the model when it runs out of branches.
#![cfg(loom)]

use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use loom::sync::Arc;
use loom::thread;
use skmem_magazine::{AllocFlags, Cache, CacheConfig, PerThread, TinyLadder, TypedCache};
use skmem_testkit::HeapObjects;

mod loom_common;
use skmem_traits::{ObjectCtor, ObjectInfo};

type Tiny = loom_common::Tiny<PerThread>;

/// The objects held by some thread right now. A `std` lock on purpose: an
/// observer, not part of the code under test, so it must add neither
/// interleavings nor happens-before edges (nothing under it is a loom
/// operation, so it never blocks a loom thread).
#[derive(Default)]
struct Held(std::sync::Mutex<HashSet<usize>>);

impl Held {
    fn took(&self, p: NonNull<u8>) {
        let fresh = self.0.lock().unwrap().insert(p.as_ptr() as usize);
        assert!(
            fresh,
            "object {p:p} handed out while another thread holds it"
        );
    }

    fn gives(&self, p: NonNull<u8>) {
        assert!(self.0.lock().unwrap().remove(&(p.as_ptr() as usize)));
    }
}

fn tiny(name: &str) -> Tiny {
    loom_common::tiny_cache(name, CacheConfig::default())
}

/// Two objects out at once, back, then one more round trip: with 1-round
/// magazines the frees fill the loaded and previous magazines and the
/// next operations trade with the depot.
fn owner_work(cache: &Tiny, held: &Held) {
    let x = cache.alloc().unwrap();
    held.took(x);
    let y = cache.alloc().unwrap();
    held.took(y);
    held.gives(x);
    held.gives(y);
    // SAFETY: from `cache`, each freed once.
    unsafe {
        cache.free(x);
        cache.free(y);
    }
    let z = cache.alloc().unwrap();
    held.took(z);
    held.gives(z);
    // SAFETY: from `cache`.
    unsafe { cache.free(z) };
}

/// Yields to the other loom threads until `done` holds (see the module
/// docs).
fn settle(mut done: impl FnMut() -> bool) {
    while !done() {
        thread::yield_now();
    }
}

/// Exited threads are done: `slots` slots are left (the live threads'),
/// and every object the layer has out is cached.
fn exits_done(cache: &Tiny, slots: u64) -> bool {
    let live = cache.layer().live() as u64;
    let s = cache.stats();
    s.cpu_slots == slots && live == s.cached_objs
}

/// Once exited threads are done (`slots` slots left), a purge gives every
/// object back.
fn all_back(cache: &Tiny, slots: u64) {
    settle(|| exits_done(cache, slots));
    let before = cache.stats();
    cache.purge();
    let after = cache.stats();
    assert_eq!(after.cached_objs, 0);
    assert_eq!(
        cache.layer().live(),
        0,
        "an object was lost: {before:?} then {after:?}"
    );
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    // Owners whose slot a purge has stopped wait on the slot lock, and the
    // purge spins on `busy`: more branches than loom's default allows.
    b.max_branches = 100_000;
    b
}

#[test]
fn two_owners_and_a_purge() {
    builder().check(|| {
        let cache = Arc::new(tiny("loom-pt-purge"));
        let held = Arc::new(Held::default());
        let owners: Vec<_> = (0..2)
            .map(|_| {
                let (cache, held) = (cache.clone(), held.clone());
                thread::spawn(move || owner_work(&cache, &held))
            })
            .collect();
        cache.purge();
        for o in owners {
            o.join().unwrap();
        }
        // Once both exits are done, their magazines are in the depot.
        all_back(&cache, 0);
    });
}

#[test]
fn exit_flush_races_a_reap() {
    builder().check(|| {
        let cache = Arc::new(tiny("loom-pt-exit"));
        let held = Arc::new(Held::default());
        let owner = {
            let (cache, held) = (cache.clone(), held.clone());
            thread::spawn(move || owner_work(&cache, &held))
        };
        // A reap that purges walks the slots while the owner works and
        // while its exit hands its magazines to the depot.
        cache.reap_now(true);
        owner.join().unwrap();
        // The exited thread's slot goes, its objects do not: another
        // thread finds them in the depot (if the reap left any) without
        // asking the layer for more.
        settle(|| exits_done(&cache, 0));
        let before = cache.layer().live();
        let o = cache.alloc().unwrap();
        // SAFETY: from `cache`.
        unsafe { cache.free(o) };
        assert_eq!(cache.layer().live(), before.max(1));
        all_back(&cache, 1);
    });
}

/// Counts constructions and destructions, which outlive the cache.
#[derive(Clone, Default)]
struct Counted(std::sync::Arc<(AtomicUsize, AtomicUsize)>);

impl ObjectCtor for Counted {
    fn construct(
        &self,
        _: ObjectInfo,
        _: Option<ObjectInfo>,
        _: AllocFlags,
    ) -> skmem_magazine::Result<()> {
        self.0 .0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn destruct(&self, _: ObjectInfo, _: Option<ObjectInfo>) {
        self.0 .1.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn cache_dropped_while_its_thread_exits() {
    // The dying cache clears its entry in every thread's table while the
    // owner's exit walks that table: whichever comes first, the owner's
    // magazines end in the layer, every object is destructed exactly once.
    builder().check(|| {
        let counts = Counted::default();
        let layer = HeapObjects::with_ctor("loom-pt-drop", 8, 8, counts.clone()).unwrap();
        let cache: Cache<_, PerThread, TinyLadder> =
            Cache::new(layer, CacheConfig::default().register(false)).unwrap();
        let cache = Arc::new(cache);
        let owner = {
            let cache = cache.clone();
            thread::spawn(move || {
                loom_common::two_out_and_back(&cache);
                drop(cache);
            })
        };
        drop(cache);
        owner.join().unwrap();
        let made = || counts.0 .0.load(Ordering::Relaxed);
        let unmade = || counts.0 .1.load(Ordering::Relaxed);
        // Whoever drops the cache last (this thread, the owner's closure,
        // or the owner's exit job) destructs every object, once.
        settle(|| unmade() == made());
        assert_eq!(made(), 2);
    });
}

#[test]
fn typed_cache_boxes_cross_threads() {
    // The default locality is `PerThread` also under loom: a box made on
    // one thread is dropped on another, which caches it in its own slot;
    // that thread's exit hands it to the depot.
    builder().check(|| {
        let cache: TypedCache<u64> = TypedCache::builder("loom-pt-typed")
            .capacity(1)
            .config(CacheConfig::default().register(false))
            .build()
            .unwrap();
        let mut a = cache.alloc_owned().unwrap();
        *a = 7;
        let other = {
            let cache = cache.clone();
            thread::spawn(move || {
                drop(a);
                let b = cache.alloc_owned().unwrap();
                drop(b);
            })
        };
        let c = cache.alloc_owned().unwrap();
        other.join().unwrap();
        // `c` is held; everything else is cached once the exit is done
        // (only this thread's slot left).
        settle(|| {
            let s = cache.stats();
            s.cpu_slots == 1 && s.slab.sl_bufinuse == s.cached_objs + 1
        });
        drop(c);
        cache.cache().purge();
        assert_eq!(cache.stats().slab.sl_bufinuse, 0);
    });
}

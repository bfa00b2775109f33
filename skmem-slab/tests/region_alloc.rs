//! Segment allocation on a heap-backed region: lazy creation, index order,
//! reuse, allocation at an index, lookups, exhaustion, reapers, blocking,
//! bad frees and stats. Runs under Miri.

mod region_common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Weak};
use std::thread;

use region_common::{
    assert_filled, assert_stats_consistent, fill, heap_region, params, StashReaper, SEG,
};
use skmem_backends::{Heap, HeapConfig};
use skmem_slab::{FaultInjection, Reap, Region, Segment};
use skmem_traits::{AllocFlags, Error, RegionMode};

fn free<S: skmem_traits::SegmentSource, M: skmem_traits::Mirror>(r: &Region<S, M>, seg: Segment) {
    // SAFETY: every test passes a segment it allocated from `r` and no
    // longer touches.
    unsafe { r.free_segment(seg) }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn segments_are_created_lazily_in_index_order() {
    let r = heap_region("lazy", 4);
    let s = r.stats();
    assert_eq!((s.seginuse, s.create, s.meminuse), (0, 0, 0));
    assert_eq!(s.memtotal, 4 * SEG as u64);

    let segs: Vec<_> = (0..3)
        .map(|_| r.alloc_segment(AllocFlags::NoSleep).unwrap())
        .collect();
    assert_eq!(segs.iter().map(|s| s.index).collect::<Vec<_>>(), [0, 1, 2]);
    for seg in &segs {
        assert_eq!(seg.shadow, None);
        assert_eq!(seg.base.as_ptr() as usize % 64, 0, "cache-line aligned");
        // Fresh heap segments read as zero and are writable end to end.
        assert_filled(seg.base, SEG, 0);
        fill(seg.base, SEG, seg.index as u8 + 1);
    }
    for seg in &segs {
        assert_filled(seg.base, SEG, seg.index as u8 + 1);
    }
    let s = r.stats();
    assert_eq!((s.seginuse, s.alloc, s.create), (3, 3, 3));
    assert_stats_consistent(&r, 3);
    for seg in segs {
        free(&r, seg);
    }
    assert_stats_consistent(&r, 0);
}

#[test]
fn freed_indices_are_reused_first_in_fifo_order() {
    let r = heap_region("fifo", 4);
    let segs: Vec<_> = (0..3)
        .map(|_| r.alloc_segment(AllocFlags::NoSleep).unwrap())
        .collect();
    let (s0, s1, s2) = (segs[0], segs[1], segs[2]);
    free(&r, s1);
    free(&r, s0);
    // The freelist (1, then 0) is used before the vacant index 3.
    let a = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    let b = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    let c = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert_eq!([a.index, b.index, c.index], [1, 0, 3]);
    // Reused indices get fresh (zeroed) memory: the old segment was discarded.
    assert_filled(a.base, SEG, 0);
    let s = r.stats();
    assert_eq!((s.alloc, s.free, s.create, s.destroy), (6, 2, 6, 2));
    for seg in [a, b, c, s2] {
        free(&r, seg);
    }
    assert_stats_consistent(&r, 0);
}

#[test]
fn alloc_segment_at_takes_exactly_that_index() {
    let r = heap_region("at", 4);
    // From the vacant bitmap.
    let two = r.alloc_segment_at(2, AllocFlags::NoSleep).unwrap();
    assert_eq!(two.index, 2);
    // Busy while live.
    let err = r.alloc_segment_at(2, AllocFlags::NoSleep).unwrap_err();
    assert!(
        matches!(err, Error::Busy { ref name, .. } if name == "at"),
        "{err:?}"
    );
    // Out of range.
    let err = r.alloc_segment_at(4, AllocFlags::NoSleep).unwrap_err();
    assert_eq!(
        err,
        Error::OutOfRange {
            field: "segment index",
            value: 4,
            limit: 4
        }
    );
    // Ordinary allocation skips the live index.
    let others: Vec<_> = (0..3)
        .map(|_| r.alloc_segment(AllocFlags::NoSleep).unwrap())
        .collect();
    assert_eq!(
        others.iter().map(|s| s.index).collect::<Vec<_>>(),
        [0, 1, 3]
    );
    // From the free set: the freelist is (2, 0); take 0 from its back.
    free(&r, two);
    free(&r, others[0]);
    let zero = r.alloc_segment_at(0, AllocFlags::NoSleep).unwrap();
    assert_eq!(zero.index, 0);
    let next = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert_eq!(next.index, 2, "the rest of the freelist is intact");
    assert!(r.alloc_segment(AllocFlags::NoSleep).is_err());
    assert_eq!(
        r.live_segments()
            .iter()
            .map(|s| s.index)
            .collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    // A segment relabelled with another live index is refused...
    let relabelled = Segment { index: 0, ..next };
    let res = catch_unwind(AssertUnwindSafe(|| free(&r, relabelled)));
    let msg = panic_message(res.unwrap_err());
    assert!(msg.contains("region `at`: free of segment 0 at"), "{msg}");
    // ...and leaves the region intact.
    assert_stats_consistent(&r, 4);
    for seg in r.live_segments() {
        free(&r, seg);
    }
    assert_stats_consistent(&r, 0);
}

#[test]
fn segment_of_finds_interior_addresses_of_live_segments() {
    let r = heap_region("lookup", 3);
    let segs: Vec<_> = (0..3)
        .map(|_| r.alloc_segment(AllocFlags::NoSleep).unwrap())
        .collect();
    for seg in &segs {
        for off in [0, 1, 63, SEG / 2, SEG - 1] {
            let addr = seg.base.as_ptr().wrapping_add(off).cast_const();
            assert_eq!(r.segment_of(addr), Some(*seg), "offset {off}");
        }
    }
    // One past the end is not in the segment (it may be another's base).
    for seg in &segs {
        let end = seg.base.as_ptr().wrapping_add(SEG).cast_const();
        let other = segs
            .iter()
            .find(|s| s.base.as_ptr().cast_const() == end)
            .copied();
        assert_eq!(r.segment_of(end), other);
    }
    let outside = 0u64;
    assert_eq!(r.segment_of(std::ptr::addr_of!(outside).cast()), None);
    let gone = segs[1];
    free(&r, gone);
    assert_eq!(r.segment_of(gone.base.as_ptr()), None);
    for seg in [segs[0], segs[2]] {
        free(&r, seg);
    }
}

#[test]
fn exhaustion_fails_at_once_without_sleep() {
    let r = heap_region("full", 2);
    let a = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    let b = r.alloc_segment(AllocFlags::Sleep).unwrap();
    for flags in [AllocFlags::NoSleep, AllocFlags::FailOk] {
        let err = r.alloc_segment(flags).unwrap_err();
        assert_eq!(
            err,
            Error::Exhausted {
                name: "full".into(),
                capacity: 2,
                unit: "segments"
            }
        );
        assert!(err.is_exhaustion());
    }
    let s = r.stats();
    assert_eq!((s.alloc_fail, s.waits, s.seginuse), (2, 0, 2));
    free(&r, a);
    let again = r.alloc_segment(AllocFlags::FailOk).unwrap();
    assert_eq!(again.index, 0);
    free(&r, b);
    free(&r, again);
    assert_stats_consistent(&r, 0);
}

#[test]
fn reapers_are_asked_on_exhaustion_and_their_frees_count() {
    let r = heap_region("reap", 2);
    let reaper = StashReaper::new(&r);
    let a = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    let b = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert_eq!(reaper.calls(), 0, "not asked while segments are free");
    // The "cache" holds `b` idle; exhaustion makes the region ask for it.
    reaper.stash.lock().unwrap().push(b);
    let c = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert_eq!(c.index, b.index, "the reaped segment is the one handed out");
    assert_eq!(reaper.calls(), 1);
    assert_eq!(reaper.purges.load(Ordering::SeqCst), 1, "asked to purge");
    assert_eq!(r.stats().alloc_fail, 0);
    // Nothing left to reap: the reaper is asked again and the alloc fails.
    assert!(r.alloc_segment(AllocFlags::NoSleep).is_err());
    assert_eq!(reaper.calls(), 2);
    // A dropped reaper is skipped.
    drop(reaper);
    assert!(r.alloc_segment(AllocFlags::FailOk).is_err());
    free(&r, a);
    free(&r, c);
    assert_stats_consistent(&r, 0);
}

/// Reaper that reports each call on a channel and does nothing else.
struct SignalReaper(std::sync::Mutex<mpsc::Sender<()>>);

impl Reap for SignalReaper {
    fn reap_now(&self, _purge: bool) {
        let _ = self.0.lock().unwrap().send(());
    }
}

#[test]
fn blocked_allocation_is_woken_by_a_free_on_another_thread() {
    let r = heap_region("block", 1);
    let (reaped_tx, reaped_rx) = mpsc::channel();
    let reaper = Arc::new(SignalReaper(std::sync::Mutex::new(reaped_tx)));
    r.add_reaper(Arc::downgrade(&reaper) as Weak<dyn Reap>);
    let held = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    fill(held.base, SEG, 0xAB);

    let returned = Arc::new(AtomicBool::new(false));
    let (seg_tx, seg_rx) = mpsc::channel();
    let waiter = {
        let (r, returned) = (Arc::clone(&r), Arc::clone(&returned));
        thread::spawn(move || {
            let seg = r.alloc_segment(AllocFlags::Sleep).unwrap();
            returned.store(true, Ordering::SeqCst);
            seg_tx.send(seg).unwrap();
        })
    };
    // The blocked thread asks the reapers first...
    reaped_rx.recv().unwrap();
    // ...then registers as a waiter (counted under the region lock just
    // before it sleeps on the condition variable).
    while r.stats().waits == 0 {
        thread::yield_now();
    }
    assert!(
        !returned.load(Ordering::SeqCst),
        "cannot return while the only segment is held"
    );
    assert_eq!(r.stats().seginuse, 1);
    free(&r, held);
    let seg = seg_rx.recv().unwrap();
    waiter.join().unwrap();
    assert_eq!(seg.index, 0);
    // It got fresh memory, not the old contents.
    assert_filled(seg.base, SEG, 0);
    let s = r.stats();
    assert!(s.waits >= 1);
    assert_eq!(
        s.alloc_fail, 0,
        "a Sleep allocation never fails on exhaustion"
    );
    free(&r, seg);
    assert_stats_consistent(&r, 0);
}

#[test]
fn many_threads_share_few_segments_with_blocking_allocs() {
    let (threads, rounds) = if cfg!(miri) { (3, 4) } else { (6, 200) };
    let r = heap_region("mt", 2);
    let in_use = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (r, in_use, start) = (Arc::clone(&r), Arc::clone(&in_use), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                for i in 0..rounds {
                    let seg = r.alloc_segment(AllocFlags::Sleep).unwrap();
                    let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= 2, "{now} segments out of a 2-segment region");
                    let byte = (t * 31 + i) as u8;
                    fill(seg.base, 64, byte);
                    thread::yield_now();
                    assert_filled(seg.base, 64, byte);
                    in_use.fetch_sub(1, Ordering::SeqCst);
                    // SAFETY: allocated above, no longer touched.
                    unsafe { r.free_segment(seg) };
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = r.stats();
    assert_eq!(s.alloc, (threads * rounds) as u64);
    assert_eq!(s.alloc_fail, 0);
    assert_stats_consistent(&r, 0);
}

#[test]
fn source_failures_are_retried_only_when_the_flags_allow() {
    let r = heap_region("retry", 2);
    r.set_fault_injection(Some(FaultInjection { mtbf: 1, seed: 1 }));
    // NoSleep: one attempt.
    let err = r.alloc_segment(AllocFlags::NoSleep).unwrap_err();
    assert!(
        matches!(err, Error::InjectedFault { ref name, sequence: 1 } if name == "retry"),
        "{err:?}"
    );
    assert_eq!(r.stats().alloc_fail, 1);
    // FailOk and Sleep: the first attempt and four retries with backoff.
    let err = r.alloc_segment(AllocFlags::FailOk).unwrap_err();
    assert!(
        matches!(err, Error::InjectedFault { sequence: 6, .. }),
        "{err:?}"
    );
    let err = r.alloc_segment(AllocFlags::Sleep).unwrap_err();
    assert!(
        matches!(err, Error::InjectedFault { sequence: 11, .. }),
        "{err:?}"
    );
    let s = r.stats();
    assert_eq!((s.alloc_fail, s.alloc, s.create), (11, 0, 0));
    // Every failed attempt put its index back: the next success is index 0.
    r.set_fault_injection(None);
    let seg = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert_eq!(seg.index, 0);
    free(&r, seg);
    assert_stats_consistent(&r, 0);
}

#[test]
fn guard_regions_hand_out_nothing() {
    let r = Region::<Heap>::new(
        params("guard", 2).mode(RegionMode::GUARD),
        HeapConfig::default(),
    )
    .unwrap();
    for flags in [AllocFlags::Sleep, AllocFlags::NoSleep] {
        let err = r.alloc_segment(flags).unwrap_err();
        assert!(
            matches!(err, Error::Invalid { field: "region", ref reason } if reason.contains("guard")),
            "{err:?}"
        );
    }
    assert!(r.alloc_segment_at(0, AllocFlags::NoSleep).is_err());
    assert_stats_consistent(&r, 0);
}

#[test]
#[should_panic(expected = "region `twice`: free of segment 0 at")]
fn double_free_panics_naming_region_and_address() {
    let r = heap_region("twice", 2);
    let seg = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    free(&r, seg);
    free(&r, seg);
}

#[test]
#[should_panic(expected = "which this region did not hand out")]
fn forged_free_panics() {
    let r = heap_region("forged", 2);
    let mut local = [0u8; 64];
    let forged = Segment {
        index: 0,
        base: NonNull::from(&mut local).cast(),
        shadow: None,
    };
    free(&r, forged);
}

#[test]
fn free_into_the_wrong_region_panics_and_changes_nothing() {
    let a = heap_region("a", 2);
    let b = heap_region("b", 2);
    let seg = a.alloc_segment(AllocFlags::NoSleep).unwrap();
    let other = b.alloc_segment(AllocFlags::NoSleep).unwrap();
    let res = catch_unwind(AssertUnwindSafe(|| free(&b, seg)));
    let msg = panic_message(res.unwrap_err());
    assert!(
        msg.starts_with("region `b`: free of segment 0 at 0x"),
        "{msg}"
    );
    assert!(msg.contains(&format!("{:p}", seg.base)), "{msg}");
    // Same index live in `b`, different base: still refused, `b` intact.
    assert_stats_consistent(&b, 1);
    assert_eq!(b.segment_of(other.base.as_ptr()), Some(other));
    free(&a, seg);
    free(&b, other);
    assert_stats_consistent(&a, 0);
    assert_stats_consistent(&b, 0);
}

#[test]
fn stats_add_up_over_a_mixed_sequence() {
    let r = heap_region("stats", 5);
    let mut live = Vec::new();
    let mut fails = 0;
    for step in 0..40u32 {
        if step % 3 == 2 && !live.is_empty() {
            let seg = live.remove((step as usize * 7) % live.len());
            free(&r, seg);
        } else {
            match r.alloc_segment(AllocFlags::NoSleep) {
                Ok(seg) => live.push(seg),
                Err(_) => fails += 1,
            }
        }
        assert_stats_consistent(&r, live.len());
    }
    let s = r.stats();
    assert_eq!(s.alloc_fail, fails);
    assert!(fails > 0, "the sequence must hit exhaustion");
    assert_eq!(s.w_meminuse, 0, "the heap does not wire");
    assert_eq!((s.name.as_str(), &*s.source), ("stats", "heap"));
    assert_eq!(
        (s.c_seg_size, s.seg_cnt, s.seg_objs, s.c_obj_size),
        (SEG as u64, 5, 1, SEG as u64)
    );
    for seg in live {
        free(&r, seg);
    }
    assert_stats_consistent(&r, 0);
}

#[test]
fn regions_live_as_long_as_their_last_reference() {
    let r = heap_region("arc", 2);
    let weak = Arc::downgrade(&r);
    let clones: Vec<_> = (0..3).map(|_| Arc::clone(&r)).collect();
    let handles: Vec<_> = clones
        .into_iter()
        .map(|r| {
            thread::spawn(move || {
                let seg = r.alloc_segment(AllocFlags::Sleep).unwrap();
                // SAFETY: allocated above, not used afterwards.
                unsafe { r.free_segment(seg) };
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(Arc::strong_count(&r), 1);
    assert_stats_consistent(&r, 0);
    drop(r);
    assert!(
        weak.upgrade().is_none(),
        "the last reference tears the region down"
    );
}

#[test]
fn the_vacant_bitmap_spans_several_words() {
    // 130 segments: three bitmap words, the last one partial.
    let r = heap_region("wide", 130);
    let segs: Vec<_> = (0..130)
        .map(|_| r.alloc_segment(AllocFlags::NoSleep).unwrap())
        .collect();
    assert!(
        segs.iter().enumerate().all(|(i, s)| s.index == i as u32),
        "lowest vacant index first"
    );
    assert!(
        r.alloc_segment(AllocFlags::NoSleep).is_err(),
        "no index past 129"
    );
    // Free a few across words; the freelist hands them back in free order.
    for i in [129, 64, 3] {
        free(&r, segs[i]);
    }
    let again: Vec<_> = (0..3)
        .map(|_| r.alloc_segment(AllocFlags::NoSleep).unwrap().index)
        .collect();
    assert_eq!(again, [129, 64, 3]);
    for seg in r.live_segments() {
        free(&r, seg);
    }
    assert_stats_consistent(&r, 0);

    // A fresh region: take indices out of order with alloc_segment_at, then
    // ordinary allocation fills the gaps lowest first.
    let r = heap_region("gaps", 130);
    for i in [0, 1, 63, 64, 65, 128] {
        r.alloc_segment_at(i, AllocFlags::NoSleep).unwrap();
    }
    let next: Vec<_> = (0..4)
        .map(|_| r.alloc_segment(AllocFlags::NoSleep).unwrap().index)
        .collect();
    assert_eq!(next, [2, 3, 4, 5]);
    assert_stats_consistent(&r, 10);
    for seg in r.live_segments() {
        free(&r, seg);
    }
}

/// `SleepFor` waits for a free like `Sleep`, but gives up after its limit
/// with the region's own `Exhausted`, counted as a failure and a wait.
#[test]
fn sleep_for_gives_up_after_its_limit() {
    let r = heap_region("bounded", 1);
    let held = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    let limit = std::time::Duration::from_millis(30);
    let start = std::time::Instant::now();
    let err = r.alloc_segment(AllocFlags::SleepFor(limit)).unwrap_err();
    assert!(
        start.elapsed() >= limit,
        "gave up after {:?}, before its limit",
        start.elapsed()
    );
    assert_eq!(
        err,
        Error::Exhausted {
            name: "bounded".into(),
            capacity: 1,
            unit: "segments"
        }
    );
    let s = r.stats();
    assert_eq!((s.alloc_fail, s.seginuse), (1, 1));
    assert!(s.waits >= 1, "it waited before giving up");
    // A zero limit fails at once, like FailOk.
    assert!(r
        .alloc_segment(AllocFlags::SleepFor(std::time::Duration::ZERO))
        .is_err());
    free(&r, held);
    assert_stats_consistent(&r, 0);
}

/// Within its limit, `SleepFor` is woken by a free exactly like `Sleep`.
#[test]
fn sleep_for_is_woken_by_a_free_within_its_limit() {
    let r = heap_region("bounded-wake", 1);
    let held = r.alloc_segment(AllocFlags::NoSleep).unwrap();
    let waiter = {
        let r = Arc::clone(&r);
        thread::spawn(move || {
            r.alloc_segment(AllocFlags::SleepFor(std::time::Duration::from_secs(600)))
        })
    };
    while r.stats().waits == 0 {
        thread::yield_now();
    }
    free(&r, held);
    let seg = waiter.join().unwrap().expect("woken by the free");
    assert_eq!(seg.index, 0);
    assert_eq!(r.stats().alloc_fail, 0);
    free(&r, seg);
    assert_stats_consistent(&r, 0);
}

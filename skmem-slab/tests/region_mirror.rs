//! Mirrored regions: a master drives a shadow segment for segment (the
//! seed's kernel/user metadata pairs). Runs under Miri.

mod region_common;

use std::sync::Arc;

use region_common::{assert_filled, assert_stats_consistent, fill, heap_region, params, SEG};
use skmem_backends::{Heap, HeapConfig};
use skmem_slab::{FaultInjection, Region, Segment, Shadow};
use skmem_traits::{AllocFlags, Error};

type Master = Region<Heap, Shadow<Heap>>;

fn pair(n: usize) -> (Arc<Master>, Arc<Region<Heap>>) {
    let shadow = heap_region("umd", n);
    let master = Master::with_mirror(
        params("kmd", n),
        HeapConfig::default(),
        Shadow(Arc::clone(&shadow)),
    )
    .unwrap();
    (master, shadow)
}

fn free(r: &Master, seg: Segment) {
    // SAFETY: the tests free only segments they allocated from `r` and no
    // longer touch (nor their shadows).
    unsafe { r.free_segment(seg) }
}

#[test]
fn allocating_in_the_master_allocates_the_same_index_in_the_shadow() {
    let (master, shadow) = pair(4);
    let segs: Vec<_> = (0..3)
        .map(|_| master.alloc_segment(AllocFlags::NoSleep).unwrap())
        .collect();
    for seg in &segs {
        let sh = seg.shadow.expect("mirrored segments carry their shadow");
        // The shadow's segment at that address has the master's index.
        let in_shadow = shadow.segment_of(sh.as_ptr()).unwrap();
        assert_eq!(in_shadow.index, seg.index);
        assert_eq!(
            in_shadow.base, sh,
            "Segment.shadow is the shadow segment's base"
        );
        assert_ne!(sh, seg.base);
        // Interior addresses of the shadow map back too, and the two
        // segments are distinct memory.
        let last = sh.as_ptr().wrapping_add(SEG - 1);
        assert_eq!(shadow.segment_of(last).map(|s| s.index), Some(seg.index));
        fill(seg.base, SEG, 0x11);
        fill(sh, SEG, 0x22);
    }
    for seg in &segs {
        assert_filled(seg.base, SEG, 0x11);
        assert_filled(seg.shadow.unwrap(), SEG, 0x22);
    }
    // Shadow stats move with the master's.
    let (m, s) = (master.stats(), shadow.stats());
    assert_eq!((m.seginuse, m.alloc, m.create), (3, 3, 3));
    assert_eq!((s.seginuse, s.alloc, s.create), (3, 3, 3));
    assert_stats_consistent(&master, 3);
    assert_stats_consistent(&shadow, 3);

    // Freeing in the master frees both.
    let one = segs[1];
    free(&master, one);
    assert_eq!(master.segment_of(one.base.as_ptr()), None);
    assert_eq!(shadow.segment_of(one.shadow.unwrap().as_ptr()), None);
    assert_eq!((shadow.stats().seginuse, shadow.stats().free), (2, 1));
    // The freed index comes back in both, with fresh shadow memory.
    let again = master.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert_eq!(again.index, 1);
    assert_eq!(
        shadow
            .segment_of(again.shadow.unwrap().as_ptr())
            .unwrap()
            .index,
        1
    );
    assert_filled(again.shadow.unwrap(), SEG, 0);

    for seg in [segs[0], again, segs[2]] {
        free(&master, seg);
    }
    assert_stats_consistent(&master, 0);
    assert_stats_consistent(&shadow, 0);
    assert_eq!(shadow.stats().free, 4);
}

#[test]
fn a_busy_shadow_index_fails_the_master_and_leaves_it_unchanged() {
    let (master, shadow) = pair(2);
    // Someone holds index 0 of the shadow directly.
    let squatter = shadow.alloc_segment_at(0, AllocFlags::NoSleep).unwrap();
    let before = master.stats();
    for flags in [AllocFlags::NoSleep, AllocFlags::Sleep] {
        let err = master.alloc_segment(flags).unwrap_err();
        // Busy is permanent: not retried even with Sleep.
        assert!(
            matches!(err, Error::Busy { ref name, .. } if name == "umd"),
            "{err:?}"
        );
    }
    let after = master.stats();
    assert_eq!(after.alloc_fail, before.alloc_fail + 2);
    assert_eq!(
        (after.seginuse, after.alloc, after.create, after.destroy),
        (before.seginuse, before.alloc, before.create, before.destroy)
    );
    assert!(master.live_segments().is_empty());
    assert_eq!(shadow.stats().seginuse, 1);
    // Unchanged means the master still hands out index 0 first.
    // SAFETY: allocated from `shadow` above, not used.
    unsafe { shadow.free_segment(squatter) };
    let seg = master.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert_eq!(seg.index, 0);
    free(&master, seg);
    assert_stats_consistent(&master, 0);
    assert_stats_consistent(&shadow, 0);
}

#[test]
fn a_failing_shadow_fails_the_master_and_leaves_it_unchanged() {
    let (master, shadow) = pair(3);
    let first = master.alloc_segment(AllocFlags::NoSleep).unwrap();
    // The shadow can create nothing more.
    shadow.set_fault_injection(Some(FaultInjection { mtbf: 1, seed: 9 }));
    let err = master.alloc_segment(AllocFlags::NoSleep).unwrap_err();
    assert!(
        matches!(err, Error::InjectedFault { ref name, .. } if name == "umd"),
        "{err:?}"
    );
    // FailOk retries the transient failure (1 + 4 attempts), then gives up.
    let err = master.alloc_segment(AllocFlags::FailOk).unwrap_err();
    assert!(
        matches!(err, Error::InjectedFault { sequence: 6, .. }),
        "{err:?}"
    );
    let (m, s) = (master.stats(), shadow.stats());
    assert_eq!(
        (m.seginuse, m.alloc, m.create, m.destroy, m.alloc_fail),
        (1, 1, 1, 0, 6)
    );
    assert_eq!((s.seginuse, s.alloc, s.alloc_fail), (1, 1, 6));
    assert_eq!(master.live_segments(), vec![first]);
    // Recovered: the next master segment is index 1 in both.
    shadow.set_fault_injection(None);
    let second = master.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert_eq!(second.index, 1);
    assert_eq!(
        shadow
            .segment_of(second.shadow.unwrap().as_ptr())
            .unwrap()
            .index,
        1
    );
    free(&master, first);
    free(&master, second);
    assert_stats_consistent(&master, 0);
    assert_stats_consistent(&shadow, 0);
}

#[test]
fn shadows_that_do_not_fit_are_refused() {
    let small = heap_region("small", 2);
    let err =
        Master::with_mirror(params("m", 3), HeapConfig::default(), Shadow(small)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParam {
                param: "mirror",
                value: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let other_size = Region::<Heap>::new(params("big", 3).seg_size(8192), HeapConfig::default());
    let other_size = other_size.unwrap();
    assert_ne!(other_size.layout().seg_size, SEG);
    let err =
        Master::with_mirror(params("m", 3), HeapConfig::default(), Shadow(other_size)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParam {
                param: "mirror",
                ..
            }
        ),
        "{err:?}"
    );
    // A larger shadow is fine.
    let large = heap_region("large", 5);
    let m = Master::with_mirror(params("m", 3), HeapConfig::default(), Shadow(large)).unwrap();
    let seg = m.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert!(seg.shadow.is_some());
    free(&m, seg);
}

#[test]
#[should_panic(expected = "region `kmd`: free of segment 0")]
fn double_free_on_a_master_panics_naming_the_master() {
    let (master, _shadow) = pair(2);
    let seg = master.alloc_segment(AllocFlags::NoSleep).unwrap();
    free(&master, seg);
    free(&master, seg);
}

#[test]
fn threads_sharing_a_mirrored_region_keep_both_sides_in_step() {
    let (threads, rounds) = if cfg!(miri) { (3, 4) } else { (4, 150) };
    let (master, shadow) = pair(2);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (master, shadow) = (Arc::clone(&master), Arc::clone(&shadow));
            std::thread::spawn(move || {
                for i in 0..rounds {
                    let seg = master.alloc_segment(AllocFlags::Sleep).unwrap();
                    let sh = seg.shadow.unwrap();
                    assert_eq!(shadow.segment_of(sh.as_ptr()).unwrap().index, seg.index);
                    let byte = (t * 17 + i) as u8;
                    fill(sh, 64, byte);
                    std::thread::yield_now();
                    assert_filled(sh, 64, byte);
                    free(&master, seg);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let (m, s) = (master.stats(), shadow.stats());
    assert_eq!(m.alloc, (threads * rounds) as u64);
    assert_eq!((s.alloc, s.free), (m.alloc, m.free));
    assert_stats_consistent(&master, 0);
    assert_stats_consistent(&shadow, 0);
}

/// Mirroring decided at run time: one region type, `Option<Shadow>`,
/// mirrored with `Some` (a shadow segment per master segment, freed with
/// it) and plain with `None` (no shadow, no mismatch checks).
#[test]
fn an_optional_mirror_is_decided_at_run_time() {
    type Either = Region<Heap, Option<Shadow<Heap>>>;
    let shadow = heap_region("umd-opt", 2);
    let mirrored = Either::with_mirror(
        params("kmd-opt", 2),
        HeapConfig::default(),
        Some(Shadow(Arc::clone(&shadow))),
    )
    .unwrap();
    let plain = Either::with_mirror(params("kmd-plain", 2), HeapConfig::default(), None).unwrap();

    let m = mirrored.alloc_segment(AllocFlags::NoSleep).unwrap();
    let sh = m.shadow.expect("Some: the segment has a shadow");
    assert_eq!(
        shadow.segment_of(sh.as_ptr()).map(|s| s.index),
        Some(m.index)
    );
    assert_eq!(shadow.stats().seginuse, 1);
    let p = plain.alloc_segment(AllocFlags::NoSleep).unwrap();
    assert!(p.shadow.is_none(), "None: no shadow");
    assert_eq!(
        shadow.stats().seginuse,
        1,
        "the plain region never touches it"
    );

    // SAFETY: allocated above from these regions, not used afterwards.
    unsafe {
        mirrored.free_segment(m);
        plain.free_segment(p);
    }
    assert_eq!(shadow.stats().seginuse, 0, "freed with its master");

    // Some(shadow) of the wrong shape is refused as before.
    let small = heap_region("umd-small", 1);
    let err = Either::with_mirror(
        params("kmd-bad", 2),
        HeapConfig::default(),
        Some(Shadow(small)),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParam {
                param: "mirror",
                ..
            }
        ),
        "{err}"
    );
}

//! A thread's exit returns the objects its front held to the class cache,
//! as the class statistics show.

use std::thread;

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

/// One test function: the class counters are process-wide, and a second
/// test thread of the harness exiting mid-measurement would move them.
#[test]
fn thread_exit_returns_objects_for_one_thread_and_for_many_short_lived_ones() {
    thread_exit_returns_the_fronts_objects();
    many_short_lived_threads_leave_nothing_behind();
}

fn thread_exit_returns_the_fronts_objects() {
    // A class nothing else in this binary uses: 2560-byte objects.
    let size = 2500;
    let c = skmem_alloc::class_index(size).unwrap();
    assert_eq!(skmem_alloc::class_size(c), Some(2560));
    let before = skmem_alloc::class_stats(c).unwrap();
    let held_by_thread = thread::spawn(move || {
        let blocks: Vec<_> = (0..200).map(|_| skmem_alloc::malloc(size)).collect();
        assert!(blocks.iter().all(|p| !p.is_null()));
        for p in blocks {
            // SAFETY: live blocks, freed once.
            unsafe { skmem_alloc::free(p) };
        }
        // One more slow path brings the class's front count up to date.
        let s = skmem_alloc::class_stats(c).unwrap();
        s.in_fronts
    })
    .join()
    .unwrap();
    assert!(held_by_thread > 0, "the thread's front kept some objects");
    let after = skmem_alloc::class_stats(c).unwrap();
    assert_eq!(after.in_fronts, before.in_fronts, "{after:?}");
    assert_eq!(after.objects_in_use, 0, "{after:?}");
    assert!(after.in_magazines > 0 || after.slab_bytes == 0, "{after:?}");
    assert!(after.flushes > before.flushes);
}

fn many_short_lived_threads_leave_nothing_behind() {
    let size = 3500; // the 3584-byte class
    let c = skmem_alloc::class_index(size).unwrap();
    let before = skmem_alloc::class_stats(c).unwrap();
    for round in 0..20 {
        let threads: Vec<_> = (0..10)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut v: Vec<*mut u8> = (0..50).map(|_| skmem_alloc::malloc(size)).collect();
                    // Keep some, free the rest out of order.
                    v.rotate_left((round + t) % 50);
                    for p in v {
                        // SAFETY: live blocks, freed once.
                        unsafe { skmem_alloc::free(p) };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
    let after = skmem_alloc::class_stats(c).unwrap();
    assert_eq!(after.in_fronts, before.in_fronts, "{after:?}");
    assert_eq!(after.objects_in_use, before.objects_in_use, "{after:?}");
}

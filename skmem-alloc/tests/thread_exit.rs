//! A thread's exit returns the objects its front held to the class cache,
//! as the class statistics show.

use std::thread;

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

#[test]
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

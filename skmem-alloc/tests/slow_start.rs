//! A thread's first refill of a class takes one object, not a batch (slow
//! start): a class used once costs one object, not a front full of touched
//! pages; repeated refills grow to the class's batch.

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

#[test]
fn first_refill_takes_one_object_then_batches_grow() {
    let size = 12_000; // the 13312-byte class, unused by the harness
    let c = skmem_alloc::class_index(size).unwrap();
    std::thread::spawn(move || {
        let p = skmem_alloc::malloc(size);
        let s = skmem_alloc::class_stats(c).unwrap();
        assert_eq!(
            (s.in_fronts, s.objects_in_use, s.refills),
            (0, 1, 1),
            "{s:?}"
        );
        let q = skmem_alloc::malloc(size);
        let s = skmem_alloc::class_stats(c).unwrap();
        assert_eq!(
            (s.in_fronts, s.refills),
            (1, 2),
            "second refill: 2 objects, {s:?}"
        );
        // SAFETY: live blocks, freed once.
        unsafe {
            skmem_alloc::free(p);
            skmem_alloc::free(q);
        }
    })
    .join()
    .unwrap();
    let s = skmem_alloc::class_stats(c).unwrap();
    assert_eq!((s.in_fronts, s.objects_in_use), (0, 0), "after exit: {s:?}");
}

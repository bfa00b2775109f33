//! The large-object path: thousands of live large objects at once, found by
//! address (usable size, ownership), freed and their table slots reused
//! over rounds; page and beyond-page alignments.

#[test]
fn thousands_of_large_objects_are_tracked_freed_and_their_slots_reused() {
    for round in 0..3usize {
        let sizes: Vec<usize> = (0..3000)
            .map(|i| 300_000 + (i * 4099 + round) % 200_000)
            .collect();
        let blocks: Vec<*mut u8> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let p = skmem_alloc::malloc(n);
                assert!(!p.is_null(), "round {round} block {i}");
                // SAFETY: a live block of n bytes: mark its first and last.
                unsafe {
                    *p = i as u8;
                    *p.add(n - 1) = round as u8;
                }
                p
            })
            .collect();
        let live = skmem_alloc::summary();
        assert!(live.large_objects >= 3000, "{live:?}");
        for (i, (&p, &n)) in blocks.iter().zip(&sizes).enumerate() {
            assert!(skmem_alloc::owns(p));
            assert!(
                !skmem_alloc::owns(p.wrapping_add(4096)),
                "interior of a large object"
            );
            // SAFETY: live blocks.
            unsafe {
                // A fresh mapping is page-exact; one reused from the cache
                // of freed large objects may be up to a quarter larger.
                let pages = n.next_multiple_of(4096);
                let usable = skmem_alloc::usable_size(p);
                assert!(
                    usable >= pages && usable <= pages + pages / 4,
                    "{n} bytes: usable {usable}"
                );
                assert_eq!((*p, *p.add(n - 1)), (i as u8, round as u8));
            }
        }
        for p in blocks {
            // SAFETY: live blocks, freed once.
            unsafe { skmem_alloc::free(p) };
        }
        let after = skmem_alloc::summary();
        assert!(
            after.large_objects + 3000 <= live.large_objects,
            "{after:?}"
        );
    }
}

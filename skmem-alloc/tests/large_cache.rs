//! The cache of freed large objects: a freed large block is reused for a
//! later request (whole when at most twice as large, grown when smaller,
//! left alone when larger still), `calloc` of a reused block is zero, the cache stays within its limits, and
//! `reclaim` gives it back. One test function: the cache is process-wide,
//! so the steps must not interleave with another test's large frees.

const KIB: usize = 1024;

fn cached() -> usize {
    skmem_alloc::summary().large_cached_bytes
}

#[test]
fn freed_large_objects_are_reused_zeroed_on_calloc_bounded_and_reclaimed() {
    skmem_alloc::reclaim();
    assert_eq!(cached(), 0, "reclaim empties the cache");

    // Reuse: a freed 600 KB block serves a 590 KB request, whole.
    let p = skmem_alloc::malloc(600 * KIB);
    assert!(!p.is_null());
    // SAFETY: a live block of 600 KiB.
    unsafe { core::ptr::write_bytes(p, 0xAB, 600 * KIB) };
    // SAFETY: live, freed once.
    unsafe { skmem_alloc::free(p) };
    assert_eq!(cached(), 600 * KIB);
    assert!(!skmem_alloc::owns(p), "a cached block is not live");
    let q = skmem_alloc::malloc(590 * KIB);
    assert_eq!(q, p, "the cached mapping is reused");
    assert_eq!(cached(), 0);
    // SAFETY: live block.
    unsafe {
        assert_eq!(skmem_alloc::usable_size(q), 600 * KIB);
        assert_eq!(*q.add(600 * KIB - 1), 0xAB, "malloc does not clear it");
        skmem_alloc::free(q);
    }

    // More than twice too large: left for larger requests, a fresh
    // mapping serves.
    let small = skmem_alloc::malloc(272 * KIB);
    assert!(!small.is_null());
    assert_ne!(small, p, "a 600 KiB mapping is not spent on 272 KiB");
    assert_eq!(cached(), 600 * KIB);
    // SAFETY: live block, freed once.
    unsafe { skmem_alloc::free(small) };
    assert_eq!(cached(), 872 * KIB);
    // Larger than any cached: the largest smaller one is grown, its pages
    // kept; the 272 KiB one stays.
    let big = skmem_alloc::malloc(700 * KIB);
    assert_eq!(cached(), 272 * KIB, "the 600 KiB mapping was grown");
    // SAFETY: a live block of 700 KiB: the old pages moved with it.
    unsafe {
        assert_eq!(skmem_alloc::usable_size(big), 700 * KIB);
        assert_eq!(*big.add(600 * KIB - 1), 0xAB, "mremap kept the old pages");
        assert_eq!(*big.add(700 * KIB - 1), 0, "the new pages are fresh");
        skmem_alloc::free(big);
    }

    // calloc of a reused block is zero, every byte asked for.
    skmem_alloc::reclaim();
    let p = skmem_alloc::malloc(512 * KIB);
    // SAFETY: a live block of 512 KiB.
    unsafe {
        core::ptr::write_bytes(p, 0x5A, 512 * KIB);
        skmem_alloc::free(p);
    }
    let z = skmem_alloc::calloc(1, 500 * KIB);
    assert_eq!(z, p, "reused");
    // SAFETY: a live block of at least 500 KiB.
    let bytes = unsafe { core::slice::from_raw_parts(z, 500 * KIB) };
    assert!(
        bytes.iter().all(|&b| b == 0),
        "calloc clears a reused block"
    );
    // SAFETY: live, freed once.
    unsafe { skmem_alloc::free(z) };

    // Limits: at most 16 MiB and 16 mappings; above 4 MiB never cached.
    skmem_alloc::reclaim();
    let blocks: Vec<*mut u8> = (0..24).map(|_| skmem_alloc::malloc(1024 * KIB)).collect();
    assert!(blocks.iter().all(|p| !p.is_null()));
    for &b in &blocks {
        // SAFETY: live blocks, freed once.
        unsafe { skmem_alloc::free(b) };
        assert!(cached() <= 16 * 1024 * KIB, "{}", cached());
    }
    assert_eq!(cached(), 16 * 1024 * KIB, "the newest 16 kept");
    let huge = skmem_alloc::malloc(5 * 1024 * KIB);
    // SAFETY: live, freed once.
    unsafe { skmem_alloc::free(huge) };
    assert_eq!(cached(), 16 * 1024 * KIB, "5 MiB goes straight back");
    let small_ones: Vec<*mut u8> = (0..20).map(|_| skmem_alloc::malloc(260 * KIB)).collect();
    for &b in &small_ones {
        // SAFETY: live blocks, freed once.
        unsafe { skmem_alloc::free(b) };
    }
    let s = skmem_alloc::summary();
    assert!(s.large_cached_bytes <= 16 * 1024 * KIB);
    assert_eq!(
        s.large_cached_bytes,
        16 * (260 * KIB).next_multiple_of(4096),
        "16 mappings at most: the 1 MiB ones were evicted oldest first"
    );

    skmem_alloc::reclaim();
    assert_eq!(cached(), 0);
}

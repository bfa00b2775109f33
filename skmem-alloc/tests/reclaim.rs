//! Memory of idle classes goes back to the system: after a large working
//! set is freed and reclaimed, the class regions' slabs and the process's
//! resident set shrink.

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn freed_and_reclaimed_memory_leaves_the_slabs_and_the_resident_set() {
    // 1400 bytes: the 1408-byte class, which nothing else here uses (the
    // harness's 1 KiB stdout buffer would share the 1024-byte class).
    let size = 1400;
    let c = skmem_alloc::class_index(size).unwrap();
    let before = skmem_alloc::class_stats(c).unwrap();
    let rss0 = rss_bytes();
    let blocks: Vec<*mut u8> = (0..65_536)
        .map(|i| {
            let p = skmem_alloc::malloc(size);
            // SAFETY: a live block of `size` bytes: touch every page.
            unsafe { core::ptr::write_bytes(p, i as u8, size) };
            p
        })
        .collect();
    let full = skmem_alloc::class_stats(c).unwrap();
    let rss_full = rss_bytes();
    assert!(full.slab_bytes >= 64 << 20, "{full:?}");
    assert!(full.bytes_in_use >= 65_536 * 1400, "{full:?}");
    assert!(rss_full >= rss0 + (60 << 20), "rss {rss0} -> {rss_full}");
    for p in blocks {
        // SAFETY: live blocks, freed once.
        unsafe { skmem_alloc::free(p) };
    }
    skmem_alloc::reclaim();
    let after = skmem_alloc::class_stats(c).unwrap();
    let rss_after = rss_bytes();
    assert!(after.slab_bytes < 1 << 20, "{after:?}");
    assert_eq!(after.objects_in_use, before.objects_in_use, "{after:?}");
    assert_eq!(after.in_fronts, before.in_fronts, "{after:?}");
    assert!(
        rss_after + (50 << 20) < rss_full,
        "rss {rss_full} -> {rss_after}"
    );
    skmem_alloc::print_summary();
}

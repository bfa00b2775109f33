//! Without any helper thread and without an explicit `reclaim()`, the
//! memory of a class that went idle is returned by the maintenance the
//! slow path runs (at most once a second).

use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

#[test]
fn an_idle_class_gives_its_slabs_back_from_the_slow_path_alone() {
    let idle_size = 6000; // the 6144-byte class
    let c = skmem_alloc::class_index(idle_size).unwrap();
    let blocks: Vec<*mut u8> = (0..8192)
        .map(|i| {
            let p = skmem_alloc::malloc(idle_size);
            // SAFETY: a live block of `idle_size` bytes.
            unsafe { core::ptr::write_bytes(p, i as u8, idle_size) };
            p
        })
        .collect();
    let full = skmem_alloc::class_stats(c).unwrap();
    assert!(full.slab_bytes >= 48 << 20, "{full:?}");
    for p in blocks {
        // SAFETY: live blocks, freed once.
        unsafe { skmem_alloc::free(p) };
    }
    // Other work keeps taking slow paths (batches of a busy class bigger
    // than the front holds); class c sees nothing more.
    let busy = 700;
    let start = Instant::now();
    let mut last = full;
    while start.elapsed() < Duration::from_secs(10) {
        let held: Vec<*mut u8> = (0..512).map(|_| skmem_alloc::malloc(busy)).collect();
        for p in held {
            // SAFETY: live blocks, freed once.
            unsafe { skmem_alloc::free(p) };
        }
        last = skmem_alloc::class_stats(c).unwrap();
        if last.slab_bytes < 2 << 20 {
            break;
        }
    }
    assert!(
        last.slab_bytes < 2 << 20,
        "after {:?}: {last:?}",
        start.elapsed()
    );
}

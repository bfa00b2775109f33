//! No passive false sharing: a thread that frees an object another thread
//! allocated, then allocates from the same class, gets an object of its own
//! (not the freed one, not on the cache line the other thread's objects
//! share) — Hoard's cache-scratch pattern, where the allocator otherwise
//! makes two threads write one cache line for the rest of their lives.
//!
//! The test harness runs on the system allocator (no `#[global_allocator]`
//! here), so the 8-byte class is this test's alone.

const LINE: usize = 64;

#[test]
fn a_foreign_free_is_not_the_next_allocation_of_the_freeing_thread() {
    let size = 8;
    let handed_over = skmem_alloc::malloc(size) as usize;
    let neighbour = skmem_alloc::malloc(size) as usize;
    assert_ne!(handed_over, 0);
    assert_ne!(neighbour, 0);
    let (mine, later) = std::thread::spawn(move || {
        // SAFETY: a live block of this allocator, given up here.
        unsafe { skmem_alloc::free(handed_over as *mut u8) };
        let mine = skmem_alloc::malloc(size) as usize;
        // The freed object is still the thread's to use once its own run
        // out: it is kept, not lost.
        let mut taken = vec![mine];
        while !taken.contains(&handed_over) && taken.len() < 1000 {
            taken.push(skmem_alloc::malloc(size) as usize);
        }
        let later = taken.contains(&handed_over);
        for p in taken {
            // SAFETY: live blocks of this allocator, freed once.
            unsafe { skmem_alloc::free(p as *mut u8) };
        }
        (mine, later)
    })
    .join()
    .unwrap();
    assert_ne!(
        mine, handed_over,
        "the thread got the foreign object back first"
    );
    assert_ne!(
        mine / LINE,
        neighbour / LINE,
        "the thread's object {mine:#x} shares a cache line with the other thread's {neighbour:#x}"
    );
    assert_ne!(mine / LINE, handed_over / LINE);
    assert!(later, "the foreign object was never handed out again");
    // SAFETY: a live block, freed once.
    unsafe { skmem_alloc::free(neighbour as *mut u8) };
}

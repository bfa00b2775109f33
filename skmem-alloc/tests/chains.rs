//! Objects freed by one thread and allocated by another move as whole
//! front lists ("chains"), not through the class cache's magazines; the
//! statistics count them, and `reclaim` gives them back to the cache.

use std::sync::{mpsc, Mutex};

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

/// The 12288-byte class (unused by the test harness): front limit 10,
/// batch 5, so an overflowing bin keeps 5 objects and chains the rest.
const SIZE: usize = 12_000;

/// `reclaim` drains every class's chains: the tests run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn a_consumer_hands_its_frees_to_the_producer_as_chains() {
    let _serial = SERIAL.lock().unwrap();
    let c = skmem_alloc::class_index(SIZE).unwrap();
    let (to_consumer, from_producer) = mpsc::channel::<Vec<usize>>();
    let (to_producer, from_consumer) = mpsc::channel::<usize>();
    // The consumer's exit flushes its front into the cache: it waits until
    // the producer has measured.
    let (measured, wait_measured) = mpsc::channel::<()>();

    let consumer = std::thread::spawn(move || {
        // One refill gives this thread's bin its limit (10); the bin keeps
        // the object (count 1).
        let warm = skmem_alloc::malloc(SIZE);
        // SAFETY: a live block, freed once.
        unsafe { skmem_alloc::free(warm) };
        let blocks = from_producer.recv().unwrap();
        let before = skmem_alloc::class_stats(c).unwrap();
        for &p in &blocks {
            // SAFETY: live blocks of the producer, given up to this thread.
            unsafe { skmem_alloc::free(p as *mut u8) };
        }
        let after = skmem_alloc::class_stats(c).unwrap();
        // 20 frees onto a list of 1 with limit 10: the 10th and the 16th
        // overflow it (11 objects), each time 5 stay and 6 are chained.
        assert_eq!(
            after.magazine_frees, before.magazine_frees,
            "no object went through the magazines: {before:?} -> {after:?}"
        );
        assert_eq!(after.flushes - before.flushes, 2, "{after:?}");
        assert_eq!(
            after.in_magazines - before.in_magazines,
            12,
            "the chained objects count as cached: {after:?}"
        );
        // Front counts are as of the thread's last slow path: the list held
        // 5 after the second overflow (the 4 freed since are not counted
        // yet), so 17 of the 20 objects left "in use".
        assert_eq!(after.in_fronts, before.in_fronts + 5, "{after:?}");
        assert_eq!(after.objects_in_use, before.objects_in_use - 17);
        to_producer.send(warm as usize).unwrap();
        wait_measured.recv().unwrap();
    });

    let producer = std::thread::spawn(move || {
        // Refills of 1, 2, 4 and then 5 objects (the batch): slow start is
        // over well before the 20th allocation.
        let blocks: Vec<usize> = (0..20)
            .map(|_| skmem_alloc::malloc(SIZE) as usize)
            .collect();
        to_consumer.send(blocks.clone()).unwrap();
        let warm = from_consumer.recv().unwrap();
        let before = skmem_alloc::class_stats(c).unwrap();
        // Refills of 1, 2, 4, 5, 5, 5 served the 20: the bin still holds
        // 2, which come first, then the two chains (12 objects).
        let again: Vec<usize> = (0..14)
            .map(|_| skmem_alloc::malloc(SIZE) as usize)
            .collect();
        let after = skmem_alloc::class_stats(c).unwrap();
        // The oldest object of the consumer's list, at the bottom of its
        // first chain, is the one it freed first: its own warm-up block.
        let freed_by_consumer = |p: &usize| blocks.contains(p) || *p == warm;
        assert!(
            !again[..2].iter().any(freed_by_consumer) && again[2..].iter().all(freed_by_consumer),
            "{again:x?}: all but the first 2 were freed by the consumer"
        );
        assert_eq!(
            after.magazine_allocs, before.magazine_allocs,
            "no object came from the magazines: {before:?} -> {after:?}"
        );
        assert_eq!(after.refills - before.refills, 2, "{after:?}");
        assert_eq!(
            before.in_magazines - after.in_magazines,
            12,
            "both chains taken: {before:?} -> {after:?}"
        );
        measured.send(()).unwrap();
        for p in again {
            // SAFETY: live blocks, freed once.
            unsafe { skmem_alloc::free(p as *mut u8) };
        }
    });
    consumer.join().unwrap();
    producer.join().unwrap();
}

#[test]
fn reclaim_returns_the_chains_to_the_cache() {
    let _serial = SERIAL.lock().unwrap();
    let size = 20_000; // the 20480-byte class: limit 6, batch 3
    let c = skmem_alloc::class_index(size).unwrap();
    // Allocated by a thread that then exits, so that no other front holds
    // (or counts) objects of the class.
    let blocks: Vec<usize> = std::thread::spawn(move || {
        (0..12)
            .map(|_| skmem_alloc::malloc(size) as usize)
            .collect()
    })
    .join()
    .unwrap();
    std::thread::spawn(move || {
        let warm = skmem_alloc::malloc(size);
        // SAFETY: live blocks (the other thread's are given up to this
        // one), each freed once.
        unsafe {
            skmem_alloc::free(warm);
            for &p in &blocks {
                skmem_alloc::free(p as *mut u8);
            }
        }
        // 13 frees onto a list of 0 with limit 6: each overflow (7
        // objects) keeps 3 and chains 4; the front ends with 5, of which
        // 3 are counted (as of the last overflow) and 2 look in use.
        let s = skmem_alloc::class_stats(c).unwrap();
        assert_eq!(
            (s.in_fronts, s.in_magazines, s.objects_in_use),
            (3, 8, 2),
            "two chains of 4: {s:?}"
        );
        skmem_alloc::reclaim();
        let s = skmem_alloc::class_stats(c).unwrap();
        assert_eq!(
            (s.in_fronts, s.in_magazines, s.objects_in_use),
            (0, 0, 0),
            "front flushed, chains and magazines given back: {s:?}"
        );
        assert_eq!(s.slab_bytes, 0, "every slab returned: {s:?}");
    })
    .join()
    .unwrap();
}

#[test]
fn chains_of_large_objects_are_few() {
    let _serial = SERIAL.lock().unwrap();
    // The 212992-byte class: front limit 2, so an overflow keeps 1 and
    // chains 2 objects (416 KiB); the class keeps at most 2 such chains
    // (1 MiB of chains per class), then batches go through the cache.
    let size = 200_000;
    let c = skmem_alloc::class_index(size).unwrap();
    let blocks: Vec<usize> =
        std::thread::spawn(move || (0..6).map(|_| skmem_alloc::malloc(size) as usize).collect())
            .join()
            .unwrap();
    std::thread::spawn(move || {
        let warm = skmem_alloc::malloc(size);
        // SAFETY: a live block, freed once.
        unsafe { skmem_alloc::free(warm) };
        let before = skmem_alloc::class_stats(c).unwrap();
        for (i, &p) in blocks.iter().enumerate() {
            // SAFETY: live blocks given up to this thread, each freed once.
            unsafe { skmem_alloc::free(p as *mut u8) };
            let s = skmem_alloc::class_stats(c).unwrap();
            // The 2nd and 4th frees overflow the list into chains, the
            // 6th finds the chains full and goes to the magazines.
            let (flushes, magazine_frees) = match i + 1 {
                1 => (0, 0),
                2 | 3 => (1, 0),
                4 | 5 => (2, 0),
                _ => (3, 2),
            };
            assert_eq!(
                (
                    s.flushes - before.flushes,
                    s.magazine_frees - before.magazine_frees
                ),
                (flushes, magazine_frees),
                "after free {}: {s:?}",
                i + 1
            );
        }
    })
    .join()
    .unwrap();
}

//! The allocator as `#[global_allocator]` of this test binary: a
//! multi-threaded workload of collections, strings, maps and cross-thread
//! drops, with its results checked; then the allocator's own view of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

fn owned_by_us<T>(p: *const T) -> bool {
    skmem_alloc::owns(p.cast())
}

#[test]
fn multithreaded_collections_strings_maps_and_cross_thread_drops() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 2000;
    let barrier = Arc::new(Barrier::new(THREADS));
    let (tx, rx) = mpsc::channel::<(usize, Vec<String>, Box<[u64]>)>();
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let tx = tx.clone();
        let barrier = barrier.clone();
        handles.push(thread::spawn(move || {
            barrier.wait();
            let mut map: HashMap<String, Vec<u32>> = HashMap::new();
            let mut tree = BTreeMap::new();
            for i in 0..ROUNDS {
                let key = format!("t{t}-k{}", i % 97);
                map.entry(key.clone()).or_default().push(i as u32);
                tree.insert(i, key.repeat(1 + i % 5));
                if i % 10 == 0 {
                    // Objects of many sizes, dropped by the receiving thread.
                    let strings: Vec<String> =
                        (0..(i % 40)).map(|j| "x".repeat(j * 37 % 5000)).collect();
                    let big: Box<[u64]> = (0..(i as u64 * 31 % 20_000)).collect();
                    tx.send((t, strings, big)).unwrap();
                }
                if i % 7 == 0 {
                    tree.remove(&(i / 2));
                }
            }
            let total: usize = map.values().map(Vec::len).sum();
            assert_eq!(total, ROUNDS);
            assert_eq!(map.len(), 97);
            for (k, v) in &map {
                let residue: usize = k.rsplit('k').next().unwrap().parse().unwrap();
                assert!(v.iter().all(|&i| i as usize % 97 == residue), "{k}");
            }
            for (i, s) in &tree {
                assert_eq!(s.len(), format!("t{t}-k{}", i % 97).len() * (1 + i % 5));
            }
            assert!(owned_by_us(map.values().next().unwrap().as_ptr()));
            (t, map.len(), tree.len())
        }));
    }
    drop(tx);
    let mut received = 0;
    for (t, strings, big) in rx {
        assert!(t < THREADS);
        for (j, s) in strings.iter().enumerate() {
            assert_eq!(s.len(), j * 37 % 5000);
            assert!(s.bytes().all(|b| b == b'x'));
        }
        for (i, v) in big.iter().enumerate() {
            assert_eq!(*v, i as u64);
        }
        received += 1;
    }
    assert_eq!(received, THREADS * ROUNDS / 10);
    for h in handles {
        let (t, keys, _) = h.join().unwrap();
        assert!(t < THREADS);
        assert_eq!(keys, 97);
    }
    assert!(!skmem_alloc::debug_thread_is_busy());
}

#[test]
fn every_kind_of_block_is_ours_and_sized() {
    let small = Box::new(7u8);
    let mid = vec![1u8; 3000];
    let large = vec![2u8; 1 << 20];
    for (p, want) in [
        (std::ptr::addr_of!(*small), 1),
        (mid.as_ptr(), 3000),
        (large.as_ptr(), 1 << 20),
    ] {
        assert!(owned_by_us(p), "{p:p}");
        // SAFETY: live blocks of this allocator.
        let usable = unsafe { skmem_alloc::usable_size(p.cast_mut()) };
        assert!(usable >= want, "{usable} < {want}");
    }
    let on_stack = 5u8;
    assert!(!owned_by_us(&on_stack));
    // The registry lists the class caches.
    let names: Vec<String> = skmem_magazine::all_stats()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("skmem-alloc.")),
        "{names:?}"
    );
}

//! Callers that break the pool's rules, and callbacks that panic: the pool
//! refuses what it can detect, changing nothing, and loses no packet.

#![allow(missing_docs)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use skmem_backends::Heap;
use skmem_magazine::Global;
use skmem_packet::{AllocFlags, Error, Packet, PacketPool, PacketPoolConfig, PacketQueue};

const NS: AllocFlags = AllocFlags::NoSleep;

fn pool(name: &str, on_demand: bool) -> PacketPool<Heap, Global> {
    let cfg = PacketPoolConfig::new(name).md_count(64);
    let cfg = if on_demand {
        cfg.on_demand(true).max_frags(4)
    } else {
        cfg
    };
    cfg.build_with::<Heap, Global>(Default::default()).unwrap()
}

/// Packets allocated and not freed, from the pool's counters.
fn packets_out(pool: &PacketPool<Heap, Global>) -> u64 {
    pool.stats().packets_out
}

fn assert_refused_naming(e: &Error, md_index: u32, holder: u32) {
    let text = e.to_string();
    assert!(
        matches!(
            e,
            Error::Invalid {
                field: "packet",
                ..
            }
        ) && text.contains(&format!("packet {md_index} "))
            && text.contains(&format!("user process {holder}")),
        "error does not name packet {md_index} and holder {holder}: {text}"
    );
}

#[test]
fn freeing_a_packet_a_user_holds_is_refused_naming_packet_and_holder() {
    for on_demand in [false, true] {
        let pool = pool("hostile-held", on_demand);
        let held = pool.alloc_packet(1, NS).unwrap();
        let free = pool.alloc_packet(1, NS).unwrap();
        // SAFETY: allocated above; handed to user 42.
        let idx = unsafe { pool.upp_insert(42, held) }.unwrap();
        assert_eq!(packets_out(&pool), 2);
        let tracked = pool.upp_counts();
        assert_eq!(tracked.0, 1);

        // SAFETY: `held` is allocated; the pool must refuse it.
        let e = unsafe { pool.free_packet(held) }.unwrap_err();
        assert_refused_naming(&e, idx, 42);
        // A batch with one held packet frees none of them.
        // SAFETY: both allocated and listed once; refused as a whole.
        let e = unsafe { pool.free_batch(&[free, held]) }.unwrap_err();
        assert_refused_naming(&e, idx, 42);
        // A chain and a queue holding it are refused and left intact.
        let mut q = PacketQueue::new();
        // SAFETY: both allocated, in no queue.
        unsafe {
            q.push_back(free);
            q.push_back(held);
        }
        // SAFETY: the queued packets are this pool's.
        let e = unsafe { pool.free_queue(&mut q) }.unwrap_err();
        assert_refused_naming(&e, idx, 42);
        assert_eq!(q.len(), 2, "refused queue was emptied");
        assert_eq!(packets_out(&pool), 2, "a refused free freed something");
        assert_eq!(pool.upp_counts(), tracked);
        assert_eq!(pool.upp_find(idx), Some((held, 42)));

        // Once handed back, everything frees normally, exactly once.
        let back = pool.upp_remove(42, idx).unwrap();
        assert_eq!(back, held);
        // SAFETY: the queue holds both packets, ours again.
        assert_eq!(unsafe { pool.free_queue(&mut q) }.unwrap(), 2);
        assert!(q.is_empty());
        assert_eq!(packets_out(&pool), 0);
        assert!(pool.upp_is_empty());
        // No stale tracking entry hands the packet out again.
        assert!(pool.upp_remove(42, idx).is_err());
        let fresh: Vec<Packet> = (0..64).map(|_| pool.alloc_packet(1, NS).unwrap()).collect();
        // SAFETY: fresh packets of this pool, freed once.
        unsafe { pool.free_batch(&fresh) }.unwrap();
        // SAFETY: this thread is the only user of the pool.
        assert!(unsafe { pool.outstanding() }.is_empty());
    }
}

#[test]
fn panicking_completion_callback_mid_batch_loses_no_packet() {
    let pool = pool("hostile-panic", true);
    let seen = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&seen);
    pool.on_tx_completion(move |_| {
        // The third completion panics.
        if s.fetch_add(1, Ordering::SeqCst) == 2 {
            panic!("completion callback panics");
        }
    });
    let mut pkts = Vec::new();
    for i in 0..10u16 {
        // Packets of one and two buflets: the buflets must come back too.
        let p = pool.alloc_packet(1 + i % 2, NS).unwrap();
        // SAFETY: ours; asks for the callbacks on free.
        unsafe { p.request_tx_completion() };
        pkts.push(p);
    }
    // An attached packet rides along with the first one.
    let child = pool.alloc_packet(1, NS).unwrap();
    // SAFETY: both allocated and ours; the child is given up.
    unsafe { pool.attach_packet(pkts[0], child) }.unwrap();
    let before = pool.stats();
    assert_eq!(before.packets_out, 11);
    assert!(before.buflets_out > 0);

    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: every packet allocated above, listed once.
        unsafe { pool.free_batch(&pkts) }
    }));
    assert!(r.is_err(), "the callback's panic reaches the caller");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        10,
        "the other packets' callbacks ran"
    );
    let after = pool.stats();
    assert_eq!(after.packets_out, 0, "packets lost to the panic");
    assert_eq!(after.buflets_out, 0, "buflets lost to the panic");
    // SAFETY: this thread is the only user of the pool.
    assert!(unsafe { pool.outstanding() }.is_empty());
    // Every packet can be allocated again.
    let again: Vec<Packet> = (0..64).map(|_| pool.alloc_packet(1, NS).unwrap()).collect();
    // SAFETY: fresh packets, freed once (no completion requested).
    unsafe { pool.free_batch(&again) }.unwrap();
}

/// Found by the `packet_pool_ops` fuzz campaign: purging a user's packets
/// whose completion callback panicked lost the buflets of their chains
/// (already out of the user table, never freed).
#[test]
fn panicking_completion_callback_in_a_user_purge_loses_no_buflet() {
    let pool = pool("hostile-upp-purge-panic", true);
    pool.on_tx_completion(|_| panic!("completion callback panics"));
    let mut held = Vec::new();
    for _ in 0..5 {
        // Three buflets each: two of them go to the user's table at
        // hand-off.
        let p = pool.alloc_packet(3, NS).unwrap();
        // SAFETY: ours; asks for the callbacks on free, then given up.
        unsafe {
            p.request_tx_completion();
            held.push(pool.upp_insert(7, p).unwrap());
        }
    }
    let before = pool.stats();
    assert_eq!(before.packets_out, 5);
    assert_eq!(before.buflets_out, 15);

    let r = catch_unwind(AssertUnwindSafe(|| pool.upp_purge(7)));
    assert!(r.is_err(), "the callback's panic reaches the caller");
    let after = pool.stats();
    assert_eq!(after.packets_out, 0, "packets lost to the panic");
    assert_eq!(after.buflets_out, 0, "buflets lost to the panic");
    assert!(pool.upp_is_empty());
    // SAFETY: this thread is the only user of the pool.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

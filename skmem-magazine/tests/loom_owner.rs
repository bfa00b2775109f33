//! Loom models of the owner-only slot handshake behind `PerThread`
//! (`OwnerSlot`): owners pop and push values on a tiny stack in their slot
//! while a remote party stops and drains the slots; every value ends up
//! exactly once in a slot, an owner's hand, or the drained pile.
//!
//! The asymmetric barrier pair (compiler fence on the owner side,
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` on the remote side) is
//! modelled as a `fence(SeqCst)` on both sides: under `--cfg loom`,
//! `OwnerSlot` uses loom's fence for both. Loom's `UnsafeCell` flags any
//! access to a slot's value that is not ordered with another, so a broken
//! handshake fails as a causality violation even where the counts agree.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use skmem_magazine::local::OwnerSlot;

/// Owner operations: take the top value, put a fresh one, put the taken
/// one back. Returns what the owner still holds (nothing, if it pushed
/// everything back).
fn owner_ops(slot: &OwnerSlot<Vec<u32>>, fresh: u32) {
    // SAFETY (all three): this loom thread is the slot's only owner.
    let taken = unsafe { slot.with_owned(|v| v.pop()) };
    // SAFETY: as above.
    unsafe { slot.with_owned(|v| v.push(fresh)) };
    if let Some(x) = taken {
        // SAFETY: as above.
        unsafe { slot.with_owned(|v| v.push(x)) };
    }
}

fn check(mut all: Vec<u32>, expect: &[u32]) {
    all.sort_unstable();
    assert_eq!(all, expect, "values lost or duplicated");
}

#[test]
fn owner_against_a_draining_remote() {
    loom::model(|| {
        let slot = Arc::new(OwnerSlot::new(vec![10u32]));
        let remote = {
            let slot = slot.clone();
            thread::spawn(move || {
                let mut drained = Vec::new();
                slot.visit(|v| drained.append(v));
                drained
            })
        };
        owner_ops(&slot, 20);
        let mut all = remote.join().unwrap();
        slot.visit(|v| all.append(v));
        check(all, &[10, 20]);
    });
}

#[test]
fn two_owners_one_batched_walk() {
    // One heavy barrier for both slots (`visit_all`), as `for_each_slot`
    // does, while both owners work on their own slots. Owners that back
    // off spin on the slot lock the walker holds, and the walker spins on
    // `busy`: more branches than loom's default allows.
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    builder.check(|| {
        let a = Arc::new(OwnerSlot::new(vec![1u32]));
        let b = Arc::new(OwnerSlot::new(vec![2u32]));
        let owners: Vec<_> = [(a.clone(), 11u32), (b.clone(), 12u32)]
            .into_iter()
            .map(|(slot, fresh)| {
                thread::spawn(move || {
                    // One operation each keeps the model small enough.
                    // SAFETY: this loom thread is the slot's only owner.
                    unsafe { slot.with_owned(|v| v.push(fresh)) };
                })
            })
            .collect();
        let mut drained = Vec::new();
        OwnerSlot::visit_all([&*a, &*b], |v| drained.append(v));
        for o in owners {
            o.join().unwrap();
        }
        OwnerSlot::visit_all([&*a, &*b], |v| drained.append(v));
        check(drained, &[1, 2, 11, 12]);
    });
}

#[test]
fn two_remotes_and_an_owner() {
    // Remotes exclude each other with the slot lock; the second one may
    // find the slot stopped by the first, the owner may back off to the
    // lock in between.
    loom::model(|| {
        let slot = Arc::new(OwnerSlot::new(vec![5u32]));
        let remotes: Vec<_> = (0..2)
            .map(|_| {
                let slot = slot.clone();
                thread::spawn(move || {
                    let mut drained = Vec::new();
                    slot.visit(|v| drained.append(v));
                    drained
                })
            })
            .collect();
        // SAFETY: this thread is the slot's only owner.
        unsafe { slot.with_owned(|v| v.push(6)) };
        let mut all = Vec::new();
        for r in remotes {
            all.extend(r.join().unwrap());
        }
        slot.visit(|v| all.append(v));
        check(all, &[5, 6]);
    });
}

#[test]
fn locked_mode_owner_against_a_draining_remote() {
    // The fallback (no membarrier): the owner always takes the lock.
    loom::model(|| {
        let slot = Arc::new(OwnerSlot::new_locked(vec![10u32]));
        assert!(slot.is_locked_mode());
        let remote = {
            let slot = slot.clone();
            thread::spawn(move || {
                let mut drained = Vec::new();
                slot.visit(|v| drained.append(v));
                drained
            })
        };
        owner_ops(&slot, 20);
        let mut all = remote.join().unwrap();
        slot.visit(|v| all.append(v));
        check(all, &[10, 20]);
        assert!(slot.is_locked_mode(), "visits keep the slot locked-mode");
    });
}

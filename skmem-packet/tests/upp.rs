//! Item 7: packets and buflets handed to user processes; every user-written
//! field validated on the way back; a fuzz test of arbitrary user writes.

use std::collections::{HashMap, HashSet};
use std::ptr;

use proptest::prelude::*;
use skmem_backends::Heap;
use skmem_magazine::Global;
use skmem_packet::{ubft, umd, AllocFlags, Error, Packet, PacketPool, PacketPoolConfig, IDX_NONE};

const NS: AllocFlags = AllocFlags::NoSleep;

fn od_pool(n: usize) -> PacketPool<Heap, Global> {
    PacketPoolConfig::new("upp")
        .on_demand(true)
        .max_frags(4)
        .md_count(n)
        .redzone_secret(0x5eed_f00d)
        .build_with::<Heap, Global>(Default::default())
        .unwrap()
}

/// What a user process does: writes plain integers into its mapping
/// (fields are naturally aligned in the 64-aligned objects).
#[allow(clippy::cast_ptr_alignment)]
fn uw32(base: *mut u8, off: usize, v: u32) {
    // SAFETY: `base` is a user metadata object of a live pool, at least
    // `umd::SIZE` bytes; the test plays the user process.
    unsafe { ptr::write_volatile(base.add(off).cast::<u32>(), v) }
}
#[allow(clippy::cast_ptr_alignment)]
fn uw16(base: *mut u8, off: usize, v: u16) {
    // SAFETY: as `uw32`.
    unsafe { ptr::write_volatile(base.add(off).cast::<u16>(), v) }
}
#[allow(clippy::cast_ptr_alignment)]
fn ur32(base: *mut u8, off: usize) -> u32 {
    // SAFETY: as `uw32`.
    unsafe { ptr::read_volatile(base.add(off).cast::<u32>()) }
}

fn field_of(e: &Error) -> &'static str {
    match e {
        Error::Invalid { field, .. } | Error::OutOfRange { field, .. } => field,
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn insert_find_remove_round_trip() {
    let pool = od_pool(32);
    let p = pool.alloc_packet(2, NS).unwrap();
    // SAFETY: allocated above; handed to user 42.
    let idx = unsafe {
        p.write_payload(&[7u8; 3000]);
        pool.upp_insert(42, p).unwrap()
    };
    assert!(!pool.upp_is_empty());
    assert_eq!(pool.upp_counts(), (1, 2), "the packet and its two buflets");
    assert_eq!(pool.upp_find(idx), Some((p, 42)));
    let u = pool.user_metadata(idx).unwrap().as_ptr();
    assert_eq!(ur32(u, umd::MD_INDEX), idx);
    assert_eq!(ur32(u, umd::LEN), 3000);
    let first = ur32(u, umd::BUF + ubft::NEXT_INDEX);
    assert_ne!(first, IDX_NONE);
    let ub = pool.user_buflet(first).unwrap().as_ptr();
    assert_eq!(ur32(ub, ubft::DLEN), 2048);
    // The user trims the packet to 100 bytes in its first buflet.
    uw32(ub, ubft::DLEN, 100);
    uw32(u, umd::LEN, 100);
    // Wrong owner: refused, nothing changes.
    let e = pool.upp_remove(7, idx).unwrap_err();
    assert_eq!(field_of(&e), "owner");
    assert_eq!(pool.upp_counts(), (1, 2));
    let back = pool.upp_remove(42, idx).unwrap();
    assert_eq!(back, p);
    assert!(pool.upp_is_empty());
    // SAFETY: handed back, ours again.
    unsafe {
        assert_eq!(back.buflet_count(), 2);
        assert_eq!(back.len(), 100);
        assert_eq!(back.first_buflet().unwrap().data_len(), 100);
        assert_eq!(back.owner(), None);
        pool.free_packet(back).unwrap();
    }
    assert!(matches!(
        pool.upp_remove(42, idx).unwrap_err(),
        Error::Invalid {
            field: "md_index",
            ..
        }
    ));
    assert!(matches!(
        pool.upp_remove(42, 1 << 30).unwrap_err(),
        Error::OutOfRange {
            field: "md_index",
            ..
        }
    ));
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn every_bad_user_field_is_named_and_changes_nothing() {
    let pool = od_pool(32);
    let p = pool.alloc_packet(3, NS).unwrap();
    // SAFETY: allocated above; handed to user 1.
    let idx = unsafe { pool.upp_insert(1, p).unwrap() };
    let u = pool.user_metadata(idx).unwrap().as_ptr();
    let b0 = ur32(u, umd::BUF + ubft::NEXT_INDEX);
    let ub0 = pool.user_buflet(b0).unwrap().as_ptr();
    let b1 = ur32(ub0, ubft::NEXT_INDEX);
    let ub1 = pool.user_buflet(b1).unwrap().as_ptr();
    let b2 = ur32(ub1, ubft::NEXT_INDEX);
    let ub2 = pool.user_buflet(b2).unwrap().as_ptr();
    assert_eq!(ur32(ub2, ubft::NEXT_INDEX), IDX_NONE);

    let check = |what: &str, expect: &str, set: &dyn Fn(), undo: &dyn Fn()| {
        let before = pool.upp_counts();
        set();
        let e = pool.upp_remove(1, idx).expect_err(what);
        assert_eq!(field_of(&e), expect, "{what}: {e}");
        assert_eq!(pool.upp_counts(), before, "{what}: nothing changed");
        undo();
    };
    let _ = (ub2,);
    // The user cannot forge a redzone (it does not know the secret), so
    // this packet stays the user's until purged.
    check(
        "redzone",
        "redzone",
        &|| uw32(u, umd::REDZONE, 0xdead),
        &|| {},
    );
    assert_eq!(pool.upp_purge(1), (1, 3));
    assert!(pool.upp_is_empty());
    assert!(
        // SAFETY: no other thread uses the pool or its packets.
        unsafe { pool.outstanding() }.is_empty(),
        "purge freed the packet and its buflets"
    );

    let p = pool.alloc_packet(3, NS).unwrap();
    // SAFETY: as above.
    let idx = unsafe { pool.upp_insert(1, p).unwrap() };
    let u = pool.user_metadata(idx).unwrap().as_ptr();
    let b0 = ur32(u, umd::BUF + ubft::NEXT_INDEX);
    let ub0 = pool.user_buflet(b0).unwrap().as_ptr();
    let b1 = ur32(ub0, ubft::NEXT_INDEX);
    let ub1 = pool.user_buflet(b1).unwrap().as_ptr();
    let b2 = ur32(ub1, ubft::NEXT_INDEX);
    let ub2 = pool.user_buflet(b2).unwrap().as_ptr();
    let check = |what: &str, expect: &str, set: &dyn Fn(), undo: &dyn Fn()| {
        let before = pool.upp_counts();
        set();
        let e = pool.upp_remove(1, idx).expect_err(what);
        assert_eq!(field_of(&e), expect, "{what}: {e}");
        assert_eq!(pool.upp_counts(), before, "{what}: nothing changed");
        undo();
    };
    check(
        "md index",
        "md_index",
        &|| uw32(u, umd::MD_INDEX, idx + 1),
        &|| uw32(u, umd::MD_INDEX, idx),
    );
    check(
        "too many buflets",
        "bufs_cnt",
        &|| uw16(u, umd::BUFS_CNT, 5),
        &|| uw16(u, umd::BUFS_CNT, 3),
    );
    check(
        "count mismatch",
        "bufs_cnt",
        &|| uw16(u, umd::BUFS_CNT, 2),
        &|| uw16(u, umd::BUFS_CNT, 3),
    );
    check(
        "index out of range",
        "next_buflet_index",
        &|| uw32(ub0, ubft::NEXT_INDEX, 1 << 30),
        &|| uw32(ub0, ubft::NEXT_INDEX, b1),
    );
    let unheld = (0..).find(|i| ![b0, b1, b2].contains(i)).unwrap();
    check(
        "unheld buflet",
        "next_buflet_index",
        &|| uw32(ub0, ubft::NEXT_INDEX, unheld),
        &|| uw32(ub0, ubft::NEXT_INDEX, b1),
    );
    check(
        "loop",
        "next_buflet_index",
        &|| uw32(ub1, ubft::NEXT_INDEX, b0),
        &|| uw32(ub1, ubft::NEXT_INDEX, b2),
    );
    check(
        "self loop",
        "bufs_cnt",
        &|| uw32(ub2, ubft::NEXT_INDEX, b2),
        &|| uw32(ub2, ubft::NEXT_INDEX, IDX_NONE),
    );
    check(
        "buflet index",
        "buflet_index",
        &|| uw32(ub1, ubft::BFT_INDEX, b0),
        &|| uw32(ub1, ubft::BFT_INDEX, b1),
    );
    check(
        "data offset",
        "buflet_data_offset",
        &|| uw32(ub1, ubft::DOFF, 4096),
        &|| uw32(ub1, ubft::DOFF, 0),
    );
    check(
        "data len",
        "buflet_data_len",
        &|| uw32(ub1, ubft::DLEN, 2049),
        &|| uw32(ub1, ubft::DLEN, 0),
    );
    check(
        "native data",
        "data_len",
        &|| uw32(u, umd::BUF + ubft::DLEN, 1),
        &|| uw32(u, umd::BUF + ubft::DLEN, 0),
    );
    check(
        "length",
        "len",
        &|| uw32(u, umd::LEN, 3 * 2048 + 1),
        &|| uw32(u, umd::LEN, 0),
    );

    // A second owner's buflet cannot be stolen.
    let other = pool.alloc_buflet(false, NS).unwrap();
    // SAFETY: standalone buflet handed to user 2.
    let ob = unsafe { pool.upp_insert_buflet(2, other).unwrap() };
    check(
        "foreign buflet",
        "buflet_owner",
        &|| {
            uw32(ub2, ubft::NEXT_INDEX, ob);
            uw16(u, umd::BUFS_CNT, 4);
        },
        &|| {
            uw32(ub2, ubft::NEXT_INDEX, IDX_NONE);
            uw16(u, umd::BUFS_CNT, 3);
        },
    );

    // Everything restored: the hand-back works.
    let back = pool.upp_remove(1, idx).unwrap();
    // SAFETY: ours again.
    unsafe {
        assert_eq!(back.buflet_count(), 3);
        pool.free_packet(back).unwrap();
    }
    let b = pool.upp_remove_buflet(2, ob).unwrap();
    // SAFETY: ours again.
    unsafe { pool.free_buflet(b) };
    assert!(pool.upp_is_empty());
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn users_may_move_buflets_between_their_packets() {
    let pool = od_pool(32);
    let a = pool.alloc_packet(2, NS).unwrap();
    let b = pool.alloc_packet(1, NS).unwrap();
    // SAFETY: allocated above; handed to user 5.
    let (ia, ib) = unsafe {
        (
            pool.upp_insert(5, a).unwrap(),
            pool.upp_insert(5, b).unwrap(),
        )
    };
    let ua = pool.user_metadata(ia).unwrap().as_ptr();
    let ubm = pool.user_metadata(ib).unwrap().as_ptr();
    let a0 = ur32(ua, umd::BUF + ubft::NEXT_INDEX);
    let a1 = ur32(pool.user_buflet(a0).unwrap().as_ptr(), ubft::NEXT_INDEX);
    let b0 = ur32(ubm, umd::BUF + ubft::NEXT_INDEX);
    // Move a1 to the end of b.
    uw32(
        pool.user_buflet(a0).unwrap().as_ptr(),
        ubft::NEXT_INDEX,
        IDX_NONE,
    );
    uw16(ua, umd::BUFS_CNT, 1);
    uw32(pool.user_buflet(b0).unwrap().as_ptr(), ubft::NEXT_INDEX, a1);
    uw16(ubm, umd::BUFS_CNT, 2);
    let ra = pool.upp_remove(5, ia).unwrap();
    let rb = pool.upp_remove(5, ib).unwrap();
    // SAFETY: ours again.
    unsafe {
        assert_eq!(ra.buflet_count(), 1);
        assert_eq!(rb.buflet_count(), 2);
        assert_eq!(rb.buflets().nth(1).unwrap().index(), Some(a1));
        pool.free_batch(&[ra, rb]).unwrap();
    }
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn purge_by_owner_frees_exactly_that_owners_objects() {
    let pool = od_pool(64);
    let mut by_owner: HashMap<u32, Vec<u32>> = HashMap::new();
    for owner in [10u32, 11, 12] {
        for _ in 0..5 {
            let p = pool.alloc_packet(2, NS).unwrap();
            // SAFETY: allocated above; handed to `owner`.
            let i = unsafe { pool.upp_insert(owner, p).unwrap() };
            by_owner.entry(owner).or_default().push(i);
        }
        let b = pool.alloc_buflet(false, NS).unwrap();
        // SAFETY: handed to `owner`.
        unsafe { pool.upp_insert_buflet(owner, b).unwrap() };
    }
    let kept = pool.alloc_packet(1, NS).unwrap();
    assert_eq!(pool.stats().packets_out, 16);
    assert_eq!(pool.upp_counts(), (15, 33));
    assert_eq!(
        pool.upp_purge(11),
        (5, 11),
        "5 packets, 10 chain buflets + 1 standalone"
    );
    assert_eq!(pool.upp_counts(), (10, 22));
    for i in &by_owner[&11] {
        assert!(pool.upp_find(*i).is_none());
    }
    for o in [10, 12] {
        for i in &by_owner[&o] {
            assert_eq!(pool.upp_find(*i).map(|(_, w)| w), Some(o));
        }
    }
    // SAFETY: no other thread uses the pool or its packets during the check.
    let out = unsafe { pool.outstanding() };
    assert_eq!(out.packets.len(), 11, "10 held by users + 1 kept");
    assert_eq!(out.packets.iter().filter(|p| p.owner.is_none()).count(), 1);
    assert_eq!(out.buflets.len(), 22, "chains are detached at hand-off");
    assert!(out
        .buflets
        .iter()
        .all(|b| matches!(b.owner, Some(10) | Some(12))));
    assert_eq!(pool.upp_purge(99), (0, 0));
    pool.upp_purge_all();
    // SAFETY: allocated above.
    unsafe { pool.free_packet(kept) }.unwrap();
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn kernel_side_fields_survive_user_scribbles() {
    // A plain (not on-demand) mirrored pool: the user overwrites the whole
    // user object except the redzone; the kernel still frees the right
    // buffer.
    let pool = PacketPoolConfig::new("plain")
        .md_count(16)
        .build_with::<Heap, Global>(Default::default())
        .unwrap();
    let p = pool.alloc_packet(1, NS).unwrap();
    // SAFETY: allocated above.
    let buf = unsafe { p.buffer_addr() };
    // SAFETY: as above; handed to user 3.
    let i = unsafe { pool.upp_insert(3, p).unwrap() };
    let u = pool.user_metadata(i).unwrap().as_ptr();
    uw32(u, umd::BUF + ubft::BUF_INDEX, 12345); // ignored: kernel keeps the truth
    uw32(u, umd::BUF + ubft::DLEN, 10);
    let back = pool.upp_remove(3, i).unwrap();
    // SAFETY: ours again.
    unsafe {
        assert_eq!(back.buffer_addr(), buf);
        assert_eq!(back.first_buflet().unwrap().data_len(), 10);
        pool.free_packet(back).unwrap();
    }
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

/// One scribble: which object, at which byte offset, what bytes.
#[derive(Debug, Clone)]
struct Scribble {
    target: usize,
    buflet: bool,
    offset: usize,
    bytes: Vec<u8>,
}

fn scribble() -> impl Strategy<Value = Scribble> {
    (
        0usize..64,
        any::<bool>(),
        0usize..32,
        proptest::collection::vec(any::<u8>(), 1..8),
    )
        .prop_map(|(target, buflet, offset, bytes)| Scribble {
            target,
            buflet,
            offset,
            bytes,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Arbitrary bytes written into user metadata and user buflets before
    /// hand-back: the pool only ever answers with errors, never hands out
    /// an object twice, never loses one.
    #[test]
    fn user_scribbles_never_break_the_pool(
        counts in proptest::collection::vec(0u16..=4, 1..10),
        scribbles in proptest::collection::vec(scribble(), 0..24),
        extra_indices in proptest::collection::vec(any::<u32>(), 0..4),
    ) {
        let pool = od_pool(32);
        let owner = 77;
        let mut idxs = Vec::new();
        let mut bfts = Vec::new();
        for &c in &counts {
            let p = pool.alloc_packet(c, NS).unwrap();
            // SAFETY: allocated above; handed to the user.
            let i = unsafe { pool.upp_insert(owner, p).unwrap() };
            idxs.push(i);
        }
        let sb = pool.alloc_buflet(false, NS).unwrap();
        // SAFETY: handed to the user.
        bfts.push(unsafe { pool.upp_insert_buflet(owner, sb).unwrap() });
        // Every buflet index the user can see.
        let mut user_bufs: Vec<u32> = bfts.clone();
        for &i in &idxs {
            let u = pool.user_metadata(i).unwrap().as_ptr();
            let mut n = ur32(u, umd::BUF + ubft::NEXT_INDEX);
            while n != IDX_NONE {
                user_bufs.push(n);
                n = ur32(pool.user_buflet(n).unwrap().as_ptr(), ubft::NEXT_INDEX);
            }
        }
        // Scribble (never past the user object's used bytes).
        for s in &scribbles {
            let (base, size) = if s.buflet && !user_bufs.is_empty() {
                (pool.user_buflet(user_bufs[s.target % user_bufs.len()]).unwrap().as_ptr(), ubft::SIZE)
            } else {
                (pool.user_metadata(idxs[s.target % idxs.len()]).unwrap().as_ptr(), umd::SIZE)
            };
            for (k, &b) in s.bytes.iter().enumerate() {
                let off = (s.offset + k) % size;
                // SAFETY: inside the user object; the test is the user.
                unsafe { ptr::write_volatile(base.add(off), b) };
            }
        }
        // Hand everything back, including made-up indices.
        let mut live: HashSet<Packet> = HashSet::new();
        let mut live_bufs: HashSet<usize> = HashSet::new();
        let mut got = Vec::new();
        let mut got_bufs = Vec::new();
        for &i in idxs.iter().chain(extra_indices.iter()) {
            match pool.upp_remove(owner, i) {
                Ok(p) => {
                    prop_assert!(live.insert(p), "packet handed back twice");
                    // SAFETY: handed back, ours.
                    for b in unsafe { p.buflets() } {
                        // SAFETY: as above.
                        let a = unsafe { b.addr() } as usize;
                        prop_assert!(live_bufs.insert(a), "a buffer in two packets");
                    }
                    got.push(p);
                }
                Err(e) => {
                    prop_assert!(matches!(e, Error::Invalid { .. } | Error::OutOfRange { .. }), "{:?}", e);
                }
            }
        }
        for &b in user_bufs.iter().chain(extra_indices.iter()) {
            if let Ok(bf) = pool.upp_remove_buflet(owner, b) {
                // SAFETY: handed back, ours.
                let a = unsafe { bf.addr() } as usize;
                prop_assert!(live_bufs.insert(a), "a buffer handed back twice");
                got_bufs.push(bf);
            }
        }
        // New allocations never collide with what we hold.
        let mut fresh = Vec::new();
        let _ = pool.alloc_batch_vec(1, 8, &mut fresh, NS);
        for &p in &fresh {
            prop_assert!(!live.contains(&p));
            // SAFETY: fresh packets.
            for b in unsafe { p.buflets() } {
                // SAFETY: as above.
                prop_assert!(!live_bufs.contains(&(unsafe { b.addr() } as usize)), "fresh packet got a held buffer");
            }
        }
        // SAFETY: ours.
        unsafe {
            pool.free_batch(&fresh).unwrap();
            pool.free_batch(&got).unwrap();
            pool.free_buflet_batch(&got_bufs);
        }
        // The dead user's leftovers go, and nothing is lost.
        pool.upp_purge(owner);
        prop_assert!(pool.upp_is_empty());
        // SAFETY: no other thread uses the pool or its packets during the check.
        let out = unsafe { pool.outstanding() };
        prop_assert!(out.is_empty(), "leak: {:?}", out);
        let s = pool.stats();
        prop_assert_eq!(s.packets_out, 0);
        prop_assert_eq!(s.buflets_out, 0);
        pool.purge();
        let s = pool.stats();
        prop_assert_eq!(s.buf_def.slab.sl_bufinuse, 0, "every buffer back");
    }
}

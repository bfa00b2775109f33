//! Items 1–5 and 8: configuration, constructed metadata, allocation, free,
//! buffers and buflets, stats and teardown.

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use skmem_backends::Heap;
use skmem_magazine::Global;
use skmem_packet::{
    AllocFlags, Error, MetadataType, ObjectRegion, Packet, PacketPool, PacketPoolConfig,
    PacketQueue,
};
use skmem_slab::DebugFlags;

const NS: AllocFlags = AllocFlags::NoSleep;

fn param_of(e: Error) -> &'static str {
    match e {
        Error::InvalidParam { param, .. } => param,
        other => panic!("expected InvalidParam, got {other:?}"),
    }
}

#[test]
fn plan_derives_regions_like_the_seed() {
    let cfg = PacketPoolConfig::new("plan").md_count(100);
    let plan = cfg.plan(2).unwrap();
    let (kmd, kl) = &plan.kmd;
    let (_, ul) = plan.umd.as_ref().expect("mirrored by default");
    assert_eq!(ul.obj_count, kl.obj_count, "umd pairs with kmd");
    assert_eq!(ul.seg_size, kl.seg_size);
    assert!(kl.obj_count >= 100, "magazine residency only adds");
    assert!(!kmd.mode.contains(skmem_traits::RegionMode::NOMAGAZINES));
    let (bp, bl) = &plan.buf;
    assert!(
        bl.obj_count >= kl.obj_count,
        "each metadata object pairs with a buffer"
    );
    assert!(
        bp.mode.contains(skmem_traits::RegionMode::NOMAGAZINES),
        "2 KiB buffers rest in metadata"
    );
    assert!(bp.mode.contains(skmem_traits::RegionMode::MMAPOK));
    assert!(plan.kbft.is_none() && plan.ubft.is_none() && plan.lbuf.is_none());

    let od = PacketPoolConfig::new("od")
        .on_demand(true)
        .max_frags(4)
        .large_buf_size(16384)
        .md_magazines(false);
    let plan = od.plan(2).unwrap();
    let (_, kl) = &plan.kmd;
    let (kp, _) = &plan.kmd;
    assert!(kp.mode.contains(skmem_traits::RegionMode::NOMAGAZINES));
    assert_eq!(kl.obj_count, 1024, "no magazines: exactly what was asked");
    let bl = plan.buf.1;
    let ll = plan.lbuf.as_ref().unwrap().1;
    let (kbp, kbl) = plan.kbft.as_ref().unwrap();
    assert_eq!(
        kbp.obj_count,
        bl.obj_count + ll.obj_count,
        "one buflet per buffer of either size"
    );
    assert_eq!(plan.ubft.as_ref().unwrap().1.obj_count, kbl.obj_count);

    let ko = PacketPoolConfig::new("ko")
        .kernel_only(true)
        .plan(1)
        .unwrap();
    assert!(ko.umd.is_none());
    assert!(!ko.buf.0.mode.contains(skmem_traits::RegionMode::MMAPOK));

    let big = PacketPoolConfig::new("big")
        .buf_size(256 * 1024)
        .md_count(8)
        .plan(1)
        .unwrap();
    assert!(
        !big.buf
            .0
            .mode
            .contains(skmem_traits::RegionMode::NOMAGAZINES),
        "striding buffers get magazines"
    );
}

#[test]
fn every_bad_parameter_is_named() {
    let c = || PacketPoolConfig::new("bad");
    assert_eq!(
        param_of(c().md_count(0).validate().unwrap_err()),
        "md_count"
    );
    assert_eq!(
        param_of(c().max_frags(0).validate().unwrap_err()),
        "max_frags"
    );
    assert_eq!(
        param_of(c().max_frags(2).validate().unwrap_err()),
        "max_frags"
    );
    assert_eq!(
        param_of(c().on_demand(true).max_frags(65).validate().unwrap_err()),
        "max_frags"
    );
    assert_eq!(
        param_of(
            c().md_type(MetadataType::Quantum)
                .on_demand(true)
                .validate()
                .unwrap_err()
        ),
        "on_demand"
    );
    assert_eq!(
        param_of(c().buf_size(0).validate().unwrap_err()),
        "buf_size"
    );
    assert_eq!(
        param_of(
            c().on_demand(true)
                .large_buf_size(1024)
                .validate()
                .unwrap_err()
        ),
        "large_buf_size"
    );
    assert_eq!(
        param_of(c().large_buf_size(8192).validate().unwrap_err()),
        "large_buf_size"
    );
    assert_eq!(
        param_of(c().buf_seg_size(1000).validate().unwrap_err()),
        "buf_seg_size"
    );
    assert_eq!(
        param_of(
            c().kernel_only(true)
                .buf_user_readonly(true)
                .validate()
                .unwrap_err()
        ),
        "buf_user_readonly"
    );
    assert_eq!(
        param_of(c().buf_kernel_readonly(true).validate().unwrap_err()),
        "buf_kernel_readonly"
    );
    let e = c()
        .md_count(0)
        .build::<Heap>(Default::default())
        .unwrap_err();
    assert_eq!(param_of(e), "md_count");
}

fn exact_pool(n: usize) -> PacketPool<Heap, Global> {
    PacketPoolConfig::new("exact")
        .md_count(n)
        .md_magazines(false)
        .build_with::<Heap, Global>(Default::default())
        .unwrap()
}

#[test]
fn kernel_only_pool_hands_out_constructed_packets() {
    let pool = PacketPoolConfig::new("ko")
        .kernel_only(true)
        .md_count(128)
        // Asserts normal-mode magazine behaviour: debug mode pinned off, so
        // the suite also passes under SKMEM_DEBUG (which bypasses magazines
        // and grows strides).
        .debug(DebugFlags::empty())
        .build::<Heap>(Default::default())
        .unwrap();
    assert!(pool.is_kernel_only());
    let mut v = Vec::new();
    assert_eq!(pool.alloc_batch_vec(1, 32, &mut v, NS).unwrap(), 32);
    let mut bufs = HashSet::new();
    let mut idx = HashSet::new();
    for &p in &v {
        assert_eq!(p.md_type(), MetadataType::Packet);
        // SAFETY: allocated above, this thread only.
        unsafe {
            assert_eq!(p.buflet_count(), 1);
            assert_eq!(p.capacity(), 2048);
            assert!(p.is_empty());
            assert!(!p.buffer_addr().is_null());
            assert!(bufs.insert(p.buffer_addr() as usize), "distinct buffers");
            assert!(idx.insert(p.md_index()), "distinct metadata indices");
            assert!(p.md_index() < pool.capacity());
            let b = p.first_buflet().unwrap();
            assert_eq!(b.index(), None, "native buflet");
            assert_eq!(b.buffer_index() as usize, b.buffer_index() as usize);
        }
    }
    let msg = b"a payload that crosses nothing";
    for (i, &p) in v.iter().enumerate() {
        let mut data = msg.to_vec();
        data.push(i as u8);
        // SAFETY: as above.
        unsafe {
            assert_eq!(p.write_payload(&data), data.len());
            assert_eq!(p.len() as usize, data.len());
        }
    }
    for (i, &p) in v.iter().enumerate() {
        let mut out = [0u8; 64];
        // SAFETY: as above.
        let n = unsafe { p.read_payload(&mut out) };
        assert_eq!(&out[..n - 1], msg);
        assert_eq!(out[n - 1], i as u8);
    }
    assert_eq!(pool.stats().packets_out, 32);
    // SAFETY: allocated above; refused, so still ours.
    let e = unsafe { pool.upp_insert(7, v[0]) }.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Invalid {
                field: "kernel_only",
                ..
            }
        ),
        "{e:?}"
    );
    // SAFETY: all from `pool`, not used afterwards.
    unsafe { pool.free_batch(&v) }.unwrap();
    assert_eq!(pool.stats().packets_out, 0);
    // Constructed objects come back with their buffers: the same buffers
    // are handed out again, constructed, without new constructor calls.
    let ctor_before = pool.stats().md_cache.slab.ctor;
    let mut w = Vec::new();
    pool.alloc_batch_vec(1, 32, &mut w, NS).unwrap();
    // SAFETY: allocated above.
    let again: HashSet<usize> = w
        .iter()
        .map(|p| unsafe { p.buffer_addr() } as usize)
        .collect();
    assert_eq!(
        again, bufs,
        "the magazine returned the same constructed packets"
    );
    assert_eq!(pool.stats().md_cache.slab.ctor, ctor_before);
    // SAFETY: as above.
    unsafe { pool.free_batch(&w) }.unwrap();
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn quantum_pool() {
    let pool = PacketPoolConfig::new("q")
        .md_type(MetadataType::Quantum)
        .md_count(16)
        .build::<Heap>(Default::default())
        .unwrap();
    let p = pool.alloc_packet(1, NS).unwrap();
    assert_eq!(p.md_type(), MetadataType::Quantum);
    // SAFETY: allocated above.
    unsafe {
        assert_eq!(p.buflet_count(), 1);
        p.request_tx_completion(); // ignored for a quantum
        pool.free_packet(p).unwrap();
    }
    let e = pool.alloc_packet(2, NS).unwrap_err();
    assert_eq!(param_of(e), "bufcnt");
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn partial_batches_under_exhaustion() {
    let pool = exact_pool(64);
    let cap = pool.capacity() as usize;
    assert_eq!(cap, 64);
    let mut held = Vec::new();
    assert_eq!(
        pool.alloc_batch_vec(1, cap - 10, &mut held, NS).unwrap(),
        cap - 10
    );
    let mut slots = [MaybeUninit::<Packet>::uninit(); 32];
    let n = pool.alloc_batch(1, &mut slots, NS).unwrap();
    assert_eq!(n, 10, "partial batch: the seed's EAGAIN");
    for s in &slots[..n] {
        // SAFETY: initialised by alloc_batch.
        held.push(unsafe { s.assume_init() });
    }
    let e = pool.alloc_batch(1, &mut slots, NS).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Exhausted {
                unit: "packets",
                ..
            }
        ),
        "none: the seed's ENOMEM, got {e:?}"
    );
    assert!(pool.alloc_packet(1, NS).unwrap_err().is_exhaustion());
    let unique: HashSet<_> = held.iter().copied().collect();
    assert_eq!(unique.len(), cap, "no packet handed out twice");
    // SAFETY: all allocated from `pool`.
    unsafe { pool.free_batch(&held) }.unwrap();
    assert_eq!(pool.alloc_batch(1, &mut slots, NS).unwrap(), 32);
    for s in &slots {
        // SAFETY: initialised above.
        unsafe { pool.free_packet(s.assume_init()) }.unwrap();
    }
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn exhaustion_with_magazines_reaps_and_counts_right() {
    let pool = PacketPoolConfig::new("mags")
        .md_count(64)
        // Asserts normal-mode magazine behaviour: debug mode pinned off, so
        // the suite also passes under SKMEM_DEBUG (which bypasses magazines
        // and grows strides).
        .debug(DebugFlags::empty())
        .build_with::<Heap, Global>(Default::default())
        .unwrap();
    let cap = pool.capacity() as usize;
    let mut held = Vec::new();
    loop {
        match pool.alloc_batch_vec(1, 32, &mut held, NS) {
            Ok(_) => {}
            Err(e) => {
                assert!(e.is_exhaustion());
                break;
            }
        }
    }
    assert_eq!(held.len(), cap, "every object of the region, none twice");
    assert_eq!(held.iter().collect::<HashSet<_>>().len(), cap);
    // SAFETY: all from `pool`.
    unsafe { pool.free_batch(&held) }.unwrap();
    let s = pool.stats();
    assert_eq!(s.packets_out, 0);
    assert!(s.md_cache.cached_objs > 0, "frees went to magazines");
    pool.purge();
    let s = pool.stats();
    assert_eq!(s.md_cache.cached_objs, 0);
    assert_eq!(s.md_cache.slab.sl_bufinuse, 0);
    assert_eq!(
        s.md_cache.slab.ctor, s.md_cache.slab.dtor,
        "every constructed packet destructed"
    );
    assert_eq!(
        s.buf_def.slab.sl_bufinuse, 0,
        "destructors returned every buffer"
    );
}

#[test]
fn on_demand_multi_buflet_packets() {
    let pool = PacketPoolConfig::new("od")
        .on_demand(true)
        .max_frags(4)
        .md_count(64)
        .build::<Heap>(Default::default())
        .unwrap();
    assert!(pool.is_on_demand());
    let p = pool.alloc_packet(3, NS).unwrap();
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    // SAFETY: allocated above, this thread only.
    unsafe {
        assert_eq!(p.buflet_count(), 3);
        let bs: Vec<_> = p.buflets().collect();
        assert_eq!(bs.len(), 3);
        let addrs: HashSet<_> = bs.iter().map(|b| b.addr() as usize).collect();
        assert_eq!(addrs.len(), 3, "three distinct buffers");
        assert!(bs.iter().all(|b| b.index().is_some()), "external buflets");
        assert_eq!(p.write_payload(&data), 5000);
        assert_eq!(bs[0].data_len(), 2048);
        assert_eq!(bs[2].data_len(), 5000 - 4096);
        let mut out = vec![0u8; 6000];
        assert_eq!(p.read_payload(&mut out), 5000);
        assert_eq!(&out[..5000], &data[..]);
        pool.free_packet(p).unwrap();
    }
    // A packet with no buflets at all.
    let e = pool.alloc_packet(0, NS).unwrap();
    // SAFETY: as above.
    unsafe {
        assert_eq!(e.buflet_count(), 0);
        assert!(e.buffer_addr().is_null());
        pool.free_packet(e).unwrap();
    }
    // By size: ceil(size / 2048) buflets.
    let q = pool.alloc_by_size(4097, NS).unwrap();
    // SAFETY: as above.
    unsafe {
        assert_eq!(q.buflet_count(), 3);
        pool.free_packet(q).unwrap();
    }
    let e = pool.alloc_by_size(4 * 2048 + 1, NS).unwrap_err();
    assert!(
        matches!(e, Error::OutOfRange { field: "size", .. }),
        "{e:?}"
    );
    let e = pool.alloc_packet(5, NS).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfRange {
                field: "bufcnt",
                ..
            }
        ),
        "{e:?}"
    );
    // Batch with buflets.
    let mut v = Vec::new();
    assert_eq!(pool.alloc_batch_vec(2, 16, &mut v, NS).unwrap(), 16);
    // SAFETY: as above.
    unsafe {
        assert!(v.iter().all(|p| p.buflet_count() == 2));
        pool.free_batch(&v).unwrap();
    }
    // SAFETY: no other thread uses the pool or its packets during the check.
    let out = unsafe { pool.outstanding() };
    assert!(out.is_empty(), "{out:?}");
    let s = pool.stats();
    assert_eq!(s.buflets_out, 0);
}

#[test]
fn on_demand_partial_batch_when_buflets_run_out() {
    // 64 packets but buffers (hence buflets) for only the region's count.
    let pool = PacketPoolConfig::new("odx")
        .on_demand(true)
        .max_frags(4)
        .md_count(64)
        .md_magazines(false)
        .build_with::<Heap, Global>(Default::default())
        .unwrap();
    let bcap = pool.buflet_capacity() as usize;
    let mut v = Vec::new();
    // Each packet takes 4 buflets: the buflets run out first.
    let mut total = 0;
    loop {
        match pool.alloc_batch_vec(4, 8, &mut v, NS) {
            Ok(n) => total += n,
            Err(e) => {
                assert!(e.is_exhaustion(), "{e:?}");
                break;
            }
        }
    }
    assert_eq!(total, v.len());
    assert_eq!(
        total,
        bcap / 4,
        "every buflet used, none twice (buflets {bcap})"
    );
    // SAFETY: all from `pool`.
    unsafe { pool.free_batch(&v) }.unwrap();
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn large_buffers_and_buflet_batches() {
    let pool = PacketPoolConfig::new("lg")
        .on_demand(true)
        .max_frags(4)
        .md_count(32)
        .large_buf_size(16384)
        .build::<Heap>(Default::default())
        .unwrap();
    assert_eq!(pool.large_buf_size(), 16384);
    let lb = pool.alloc_buflet(true, NS).unwrap();
    let db = pool.alloc_buflet(false, NS).unwrap();
    // SAFETY: allocated above, this thread only.
    unsafe {
        assert!(lb.is_large());
        assert_eq!(lb.capacity(), 16384);
        assert!(!db.is_large());
        assert_eq!(db.capacity(), 2048);
        let big = vec![0xabu8; 16384];
        assert_eq!(lb.write(0, &big), 16384);
        let p = pool.alloc_packet(1, NS).unwrap();
        pool.packet_add_buflet(p, lb).unwrap();
        pool.packet_add_buflet(p, db).unwrap();
        assert_eq!(p.buflet_count(), 3);
        assert_eq!(p.capacity(), 2048 + 16384 + 2048);
        pool.free_packet(p).unwrap(); // frees the large and default buflets too
    }
    let mut v = Vec::new();
    assert_eq!(pool.alloc_buflet_batch(true, 8, &mut v, NS).unwrap(), 8);
    assert_eq!(pool.alloc_buflet_batch(false, 8, &mut v, NS).unwrap(), 8);
    assert_eq!(pool.stats().buflets_out, 16);
    // SAFETY: standalone buflets of `pool`.
    unsafe { pool.free_buflet_batch(&v) };
    // SAFETY: no other thread uses the pool or its packets during the check.
    let out = unsafe { pool.outstanding() };
    assert!(out.is_empty(), "{out:?}");
    // Without large buffers, asking for one is an error naming `large`.
    let small = PacketPoolConfig::new("sm")
        .on_demand(true)
        .md_count(8)
        .build::<Heap>(Default::default())
        .unwrap();
    assert!(matches!(
        small.alloc_buflet(true, NS).unwrap_err(),
        Error::Invalid { field: "large", .. }
    ));
    let plain = PacketPoolConfig::new("pl")
        .md_count(8)
        .build::<Heap>(Default::default())
        .unwrap();
    assert!(matches!(
        plain.alloc_buflet(false, NS).unwrap_err(),
        Error::Invalid {
            field: "on_demand",
            ..
        }
    ));
    assert!(matches!(
        plain.alloc_buffer(NS).unwrap_err(),
        Error::Invalid {
            field: "on_demand",
            ..
        }
    ));
}

#[test]
fn raw_buffers_on_demand() {
    let pool = PacketPoolConfig::new("raw")
        .on_demand(true)
        .md_count(16)
        .build::<Heap>(Default::default())
        .unwrap();
    let a = pool.alloc_buffer(NS).unwrap();
    let b = pool.alloc_buffer(NS).unwrap();
    assert_ne!(a.addr, b.addr);
    assert_ne!(a.index, b.index);
    assert_eq!(a.size, 2048);
    let before = pool.stats().buf_def.slab.sl_bufinuse;
    // SAFETY: from `alloc_buffer`, not used afterwards.
    unsafe {
        pool.free_buffer(a);
        pool.free_buffer(b);
    }
    assert_eq!(pool.stats().buf_def.slab.sl_bufinuse, before - 2);
}

#[test]
fn cloned_buffers_are_not_reused_while_shared() {
    let pool = PacketPoolConfig::new("clone")
        .on_demand(true)
        .md_count(32)
        .build_with::<Heap, Global>(Default::default())
        .unwrap();
    let a = pool.alloc_buflet(false, NS).unwrap();
    // SAFETY: buflets of `pool`, used by this thread only.
    unsafe {
        a.write(10, b"shared bytes");
        let b = pool.clone_buflet(a, NS).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.addr(), b.addr(), "the clone shares the buffer");
        assert_eq!(b.data_offset(), 10);
        assert_eq!(pool.buffer_use_count(a), 2);
        let shared = a.addr();
        pool.free_buflet(a); // shared: freed without caching
        assert_eq!(pool.buffer_use_count(b), 1);
        // Nothing handed out now may hold the shared buffer.
        let mut v = Vec::new();
        while pool.alloc_buflet_batch(false, 16, &mut v, NS).is_ok() {}
        assert!(!v.is_empty());
        assert!(
            v.iter().all(|x| x.addr() != shared),
            "shared buffer handed out again"
        );
        let mut out = [0u8; 12];
        assert_eq!(b.read(&mut out), 12);
        assert_eq!(&out, b"shared bytes");
        pool.free_buflet_batch(&v);
        pool.free_buflet(b); // last user: cached normally
                             // Clones of a native buflet are refused.
    }
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
    let s = pool.stats();
    assert_eq!(s.buflets_out, 0);
}

#[test]
fn queues_chains_and_callbacks() {
    let pool = PacketPoolConfig::new("q")
        .md_count(256)
        .build::<Heap>(Default::default())
        .unwrap();
    let mut q = PacketQueue::new();
    assert_eq!(pool.alloc_queue(1, 100, &mut q, NS).unwrap(), 100);
    assert_eq!(q.len(), 100);
    let first = q.pop_front().unwrap();
    // SAFETY: popped from the queue, ours.
    unsafe { pool.free_packet(first) }.unwrap();
    // SAFETY: the queue's packets are this pool's.
    assert_eq!(unsafe { pool.free_queue(&mut q) }.unwrap(), 99);
    assert!(q.is_empty());

    // A chain built by hand.
    let mut v = Vec::new();
    pool.alloc_batch_vec(1, 70, &mut v, NS).unwrap();
    // SAFETY: allocated above.
    unsafe {
        for w in v.windows(2) {
            w[0].set_next(Some(w[1]));
        }
        assert_eq!(pool.free_chain(v[0]).unwrap(), 70);
    }

    // Per-packet callback.
    let mut seen = Vec::new();
    let mut slots = [MaybeUninit::uninit(); 16];
    let n = pool
        .alloc_batch_each(1, &mut slots, NS, |i, p| seen.push((i, p)))
        .unwrap();
    assert_eq!(n, 16);
    assert_eq!(
        seen.iter().map(|&(i, _)| i).collect::<Vec<_>>(),
        (0..16).collect::<Vec<_>>()
    );
    let pkts: Vec<Packet> = seen.iter().map(|&(_, p)| p).collect();
    // SAFETY: allocated above.
    unsafe { pool.free_batch(&pkts) }.unwrap();
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn tx_completion_and_attached_packets() {
    let pool = PacketPoolConfig::new("tx")
        .md_count(64)
        .build::<Heap>(Default::default())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen_len = Arc::new(AtomicUsize::new(0));
    {
        let (c, l) = (calls.clone(), seen_len.clone());
        pool.on_tx_completion(move |p| {
            c.fetch_add(1, Ordering::SeqCst);
            // SAFETY: the packet is valid during the callback.
            l.store(unsafe { p.len() } as usize, Ordering::SeqCst);
        });
    }
    let a = pool.alloc_packet(1, NS).unwrap();
    let b = pool.alloc_packet(1, NS).unwrap();
    let c = pool.alloc_packet(1, NS).unwrap();
    // SAFETY: allocated above, this thread only.
    unsafe {
        a.write_payload(b"12345");
        a.request_tx_completion();
        pool.attach_packet(a, b).unwrap();
        assert_eq!(pool.attached(a), Some(b));
        assert!(
            matches!(pool.attach_packet(a, c), Err(Error::Busy { .. })),
            "one attachment"
        );
        assert!(
            matches!(pool.attach_packet(c, a), Err(Error::Busy { .. })),
            "one level"
        );
        assert!(
            matches!(pool.attach_packet(c, b), Err(Error::Busy { .. })),
            "b is taken"
        );
        assert!(matches!(
            pool.attach_packet(c, c),
            Err(Error::Invalid {
                field: "attached",
                ..
            })
        ));
        assert_eq!(pool.stats().packets_out, 3);
        pool.free_packet(a).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(seen_len.load(Ordering::SeqCst), 5);
        assert_eq!(
            pool.stats().packets_out,
            1,
            "a and its attachment b are freed"
        );
        // The flag does not survive a free.
        pool.free_packet(c).unwrap();
    }
    let again = pool.alloc_packet(1, NS).unwrap();
    // SAFETY: allocated above.
    unsafe { pool.free_packet(again) }.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "requests are per allocation"
    );
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn close_retain_and_outstanding_report() {
    let pool = PacketPoolConfig::new("life")
        .md_count(32)
        .build::<Heap>(Default::default())
        .unwrap();
    let other = pool.retain();
    assert_eq!(pool.refcount(), 2);
    let p = pool.alloc_packet(1, NS).unwrap();
    let q = pool.alloc_packet(1, NS).unwrap();
    // SAFETY: allocated above.
    unsafe { q.write_payload(b"xyz") };
    other.close();
    assert!(pool.is_closed());
    assert!(matches!(pool.alloc_packet(1, NS), Err(Error::Busy { .. })));
    // SAFETY: no other thread uses the pool or its packets during the check.
    let out = unsafe { pool.outstanding() };
    assert_eq!(out.packets.len(), 2);
    // SAFETY: allocated above.
    let (ip, iq) = unsafe { (p.md_index(), q.md_index()) };
    assert!(out
        .packets
        .iter()
        .any(|o| o.md_index == ip && o.len == 0 && o.owner.is_none()));
    assert!(out.packets.iter().any(|o| o.md_index == iq && o.len == 3));
    // SAFETY: from `pool`; frees work after close.
    unsafe { pool.free_batch(&[p, q]) }.unwrap();
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
    drop(other);
    assert_eq!(pool.refcount(), 1);
    let s = pool.stats();
    assert!(s.closed);
    assert!(s.table().contains("kmd.life"));
}

#[test]
fn dropping_a_pool_with_user_held_packets_purges_them() {
    let pool = PacketPoolConfig::new("drop")
        .md_count(16)
        .build::<Heap>(Default::default())
        .unwrap();
    let p = pool.alloc_packet(1, NS).unwrap();
    // SAFETY: allocated above, handed to user 9.
    unsafe { pool.upp_insert(9, p).unwrap() };
    drop(pool);
    assert_eq!(
        skmem_slab::leaked_segments(),
        0,
        "nothing leaked at teardown"
    );
}

#[cfg(feature = "serde")]
#[test]
fn stats_round_trip_through_json() {
    let pool = PacketPoolConfig::new("serde")
        .md_count(16)
        .build::<Heap>(Default::default())
        .unwrap();
    let p = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
    let stats = pool.stats();
    let json = serde_json::to_string(&stats).unwrap();
    assert!(json.contains("\"name\":\"serde\""));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["md_capacity"], pool.capacity() as u64);
    assert_eq!(v["md_cache"]["name"], "kmd.serde");
    // The per-thread policy names the mode its handshake runs in.
    let locality = skmem_magazine::per_thread_mode();
    assert!(locality.starts_with("per-thread("), "{locality}");
    assert_eq!(v["md_cache"]["locality"], locality);
    assert_eq!(v["regions"][0]["source"], "heap");
    // Read back from a buffer that does not outlive the call: every field,
    // the backend and locality names included, comes back equal.
    let back: skmem_packet::PoolStats = serde_json::from_str(&json.clone()).unwrap();
    assert_eq!(back, stats);
    assert_eq!(back.md_cache.locality, locality);
    assert_eq!(back.packets_out, 1);
    // SAFETY: allocated above, freed once.
    unsafe { pool.free_packet(p) }.unwrap();
}

/// `max_capacity` is a ceiling on packets, for mirrored and kernel-only
/// pools, with and without metadata magazines: the pool reports at most
/// that many, hands out exactly what it reports, and then says `Exhausted`;
/// `md_count` alone stays a floor.
#[test]
fn max_capacity_caps_the_packets_and_md_count_is_a_floor() {
    let floor = PacketPoolConfig::new("floor8")
        .md_count(8)
        .build::<Heap>(Default::default())
        .unwrap();
    assert!(
        floor.capacity() > 8,
        "a floor rounds up: {}",
        floor.capacity()
    );

    for (kernel_only, magazines) in [(false, true), (true, true), (false, false), (true, false)] {
        for max in [1usize, 8, 100] {
            let pool = PacketPoolConfig::new("ceiling")
                .max_capacity(max)
                .kernel_only(kernel_only)
                .md_magazines(magazines)
                .build_with::<Heap, Global>(Default::default())
                .unwrap();
            let cap = pool.capacity() as usize;
            assert!((1..=max).contains(&cap), "{max}: capacity {cap}");
            if max <= 8 {
                assert_eq!(cap, max, "a handful is honoured exactly");
            }
            let mut held = Vec::new();
            loop {
                match pool.alloc_packet(1, NS) {
                    Ok(p) => held.push(p),
                    Err(e) => {
                        assert!(matches!(e, Error::Exhausted { .. }), "{e}");
                        break;
                    }
                }
            }
            assert_eq!(held.len(), cap, "every reported packet, and no more");
            // Every packet has its own metadata.
            let addrs: HashSet<_> = held.iter().map(|p| p.raw()).collect();
            assert_eq!(addrs.len(), cap);
            for p in held {
                // SAFETY: allocated from `pool` above, freed once.
                unsafe { pool.free_packet(p) }.unwrap();
            }
        }
    }

    // A floor above the ceiling is refused by name; so is a zero ceiling.
    let e = PacketPoolConfig::new("clash")
        .md_count(100)
        .max_capacity(8)
        .build::<Heap>(Default::default())
        .unwrap_err();
    assert_eq!(param_of(e), "max_capacity");
    let e = PacketPoolConfig::new("zero")
        .max_capacity(0)
        .build::<Heap>(Default::default())
        .unwrap_err();
    assert_eq!(param_of(e), "max_capacity");
}

#[test]
fn regions_name_each_role_and_outlive_the_pool() {
    // Mirrored metadata, buffers on demand, large buffers: every role.
    let pool = PacketPoolConfig::new("roles")
        .md_count(64)
        // Asserts normal-mode magazine behaviour: debug mode pinned off, so
        // the suite also passes under SKMEM_DEBUG (which bypasses magazines
        // and grows strides).
        .debug(DebugFlags::empty())
        .on_demand(true)
        .large_buf_size(16384)
        .build::<Heap>(Default::default())
        .unwrap();
    let r = pool.regions();
    let large = r.buf_large.as_ref().expect("large buffers configured");
    assert_eq!(r.buf_def.layout().obj_size, pool.buf_size());
    assert_eq!(large.layout().obj_size, pool.large_buf_size());
    let kmd: &ObjectRegion<Heap> = &r.md;
    let umd = &kmd
        .mirror()
        .as_ref()
        .expect("metadata is mirrored by default")
        .0;
    assert_eq!(umd.layout().obj_count, kmd.layout().obj_count);
    assert!(kmd.layout().obj_count >= pool.capacity() as usize);
    let bft = r
        .bft
        .as_ref()
        .expect("buflets exist with buffers on demand");
    assert!(bft.mirror().is_some(), "buflets are mirrored like metadata");

    // The regions are shared: allocating through the pool shows in them,
    // and they stay alive after the pool is gone.
    let p = pool.alloc_packet(1, NS).unwrap();
    assert!(r.buf_def.stats().meminuse > 0 || large.stats().meminuse > 0);
    // SAFETY: allocated above, freed once.
    unsafe { pool.free_packet(p) }.unwrap();
    let weak = Arc::downgrade(&r.buf_def);
    drop(pool);
    assert!(
        weak.upgrade().is_some(),
        "`regions()` holds its own references"
    );
    drop(r);
    assert!(
        weak.upgrade().is_none(),
        "the pool and `regions()` were the only owners"
    );

    // A kernel-only pool has no user mirror and, without buffers on demand,
    // no buflet region.
    let kpool = PacketPoolConfig::new("roles.k")
        .md_count(64)
        .kernel_only(true)
        .build::<Heap>(Default::default())
        .unwrap();
    let k = kpool.regions();
    assert!(k.md.mirror().is_none(), "kernel-only: no user mirror");
    assert!(k.bft.is_none() && k.buf_large.is_none());
}

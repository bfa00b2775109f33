//! Owned handles: typed boxes that cross threads, the reset hook, and
//! owned packets freed on drop with safe accessors and IOVAs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use skmem::{AllocFlags, Error, OwnedBox, PacketPoolConfig, TypedCache};

const NS: AllocFlags = AllocFlags::NoSleep;

fn is_send<T: Send>(_: &T) {}

#[test]
fn the_reset_hook_runs_before_an_object_reenters_a_magazine() {
    let resets = Arc::new(AtomicUsize::new(0));
    let r = resets.clone();
    let cache = TypedCache::<Vec<u8>>::builder("vecs")
        .capacity(64)
        .reset(move |v: &mut Vec<u8>| {
            v.clear();
            r.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let mut b = cache.alloc_owned().unwrap();
    b.extend_from_slice(&[7; 100]);
    let addr = OwnedBox::as_ptr(&b);
    drop(b);
    assert_eq!(resets.load(Ordering::SeqCst), 1);
    assert_eq!(
        cache.stats().cached_objs,
        1,
        "resting in this thread's magazine"
    );
    let again = cache.alloc().unwrap();
    assert_eq!(skmem::CachedBox::as_ptr(&again), addr, "the same object");
    assert!(again.is_empty(), "reset on free");
    assert!(
        again.capacity() >= 100,
        "still constructed: its buffer kept"
    );
    drop(again);
    assert_eq!(
        resets.load(Ordering::SeqCst),
        2,
        "borrowing boxes reset too"
    );
}

#[test]
fn owned_boxes_move_into_threads_and_are_freed_there() {
    let resets = Arc::new(AtomicUsize::new(0));
    let r = resets.clone();
    let cache = TypedCache::<Vec<u8>>::builder("threads")
        .capacity(64)
        .threads(3)
        .reset(move |v: &mut Vec<u8>| {
            v.clear();
            r.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let boxes: Vec<OwnedBox<Vec<u8>>> = (0..16u8)
        .map(|i| {
            let mut b = cache.alloc_owned().unwrap();
            b.extend_from_slice(&[i; 100]);
            b
        })
        .collect();
    is_send(&boxes[0]);
    let dropped = Arc::new(std::sync::Barrier::new(3));
    let checked = Arc::new(std::sync::Barrier::new(3));
    let mut halves = [Vec::new(), Vec::new()];
    for (i, b) in boxes.into_iter().enumerate() {
        halves[i % 2].push((i, b));
    }
    let threads: Vec<_> = halves
        .into_iter()
        .map(|half| {
            let (dropped, checked) = (dropped.clone(), checked.clone());
            std::thread::spawn(move || {
                for (i, b) in half {
                    assert_eq!(b[..], [i as u8; 100][..], "contents travel with the box");
                    drop(b);
                }
                dropped.wait();
                checked.wait();
            })
        })
        .collect();
    dropped.wait();
    assert_eq!(resets.load(Ordering::SeqCst), 16);
    assert_eq!(
        cache.stats().cached_objs,
        16,
        "the objects rest in the freeing threads' magazines"
    );
    checked.wait();
    for t in threads {
        t.join().unwrap();
    }
    // Nothing was lost on the way: the whole floor is allocatable.
    let all: Vec<_> = (0..64).map(|_| cache.alloc().expect("room")).collect();
    assert!(all.iter().all(|b| b.is_empty()));
}

#[test]
fn an_owned_box_keeps_its_cache_alive() {
    let cache = TypedCache::<u64>::builder("alive")
        .capacity(8)
        .build()
        .unwrap();
    let mut b = cache.alloc_owned().unwrap();
    *b = 7;
    drop(cache);
    let t = std::thread::spawn(move || {
        assert_eq!(*b, 7);
        assert_eq!(OwnedBox::cache(&b).stats().cached_objs, 0);
        let c = OwnedBox::cache(&b).clone();
        drop(b);
        c.stats().cached_objs
    });
    assert_eq!(t.join().unwrap(), 1, "freed into the cache it kept alive");
}

struct Tracked(Arc<AtomicUsize>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panicking_reset_destructs_the_object_and_loses_nothing() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let cache = TypedCache::<Tracked>::builder_ctor("panicky", move || Tracked(d.clone()))
        .capacity(4)
        .reset(|_: &mut Tracked| panic!("reset failed"))
        .build()
        .unwrap();
    let b = cache.alloc_owned().unwrap();
    let before = cache.region().stats().seginuse;
    assert_eq!(before, 1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(b)));
    assert!(r.is_err(), "the reset panic goes on");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the object was destructed, not cached"
    );
    assert_eq!(cache.stats().cached_objs, 0);
    let c = cache.alloc().expect("the memory came back");
    // Dropping would run the panicking hook again.
    skmem::CachedBox::free_nocache(c);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn typed_cache_capacity_and_ceiling() {
    let cache = TypedCache::<[u8; 4096]>::builder_ctor("pages", || [0; 4096])
        .max_capacity(10)
        .build()
        .unwrap();
    let mut held = Vec::new();
    while let Some(b) = cache.alloc() {
        held.push(b);
    }
    assert!(held.len() <= 10 && !held.is_empty(), "{}", held.len());
    assert_eq!(held.len(), cache.region().layout().obj_count);
}

#[test]
fn owned_packets_go_back_to_their_pool() {
    let pool = PacketPoolConfig::new("owned")
        .md_count(16)
        .kernel_only(true)
        .build::<skmem::Heap>(Default::default())
        .unwrap();
    let mut pkts: Vec<_> = (0..8).map(|_| pool.alloc_owned(1, NS).unwrap()).collect();
    assert_eq!(pool.stats().packets_out, 8);
    for (i, p) in pkts.iter_mut().enumerate() {
        let payload = vec![i as u8; 60 + i];
        assert_eq!(p.write_payload(&payload), payload.len());
        assert_eq!(p.len(), payload.len());
        assert_eq!(p.buflet_count(), 1);
        assert_eq!(p.data().unwrap(), &payload[..]);
        p.data_mut().unwrap()[0] = 0xee;
        let mut out = vec![0; 200];
        assert_eq!(p.read_payload(&mut out), payload.len());
        assert_eq!(out[0], 0xee);
        assert_eq!(&out[1..payload.len()], &payload[1..]);
        assert_eq!(p.iova(), None, "heap buffers have no device address");
    }
    pkts[0].set_data(4, 10).unwrap();
    assert_eq!(pkts[0].len(), 10);
    assert!(pkts[0].set_data(0, 1 << 20).is_err());
    // Half are freed on another thread.
    let back = pkts.split_off(4);
    std::thread::spawn(move || drop(back)).join().unwrap();
    assert_eq!(pool.stats().packets_out, 4);
    drop(pkts);
    assert_eq!(
        pool.stats().packets_out,
        0,
        "every owned packet freed on drop"
    );
    // A raw handle can be taken out and owned again.
    let p = pool.alloc_owned(1, NS).unwrap();
    let raw = p.into_raw();
    assert_eq!(pool.stats().packets_out, 1);
    // SAFETY: `raw` was allocated from `pool` and nothing else uses it.
    let p = unsafe { skmem::OwnedPacket::from_raw(&pool, raw) };
    drop(p);
    assert_eq!(pool.stats().packets_out, 0);
}

#[test]
fn slices_are_refused_where_another_party_may_write() {
    let pool = PacketPoolConfig::new("mirrored")
        .md_count(8)
        .build::<skmem::Heap>(Default::default())
        .unwrap();
    assert!(!pool.is_kernel_only());
    let mut p = pool.alloc_owned(1, NS).unwrap();
    p.write_payload(b"abc");
    match p.data() {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "data"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut out = [0; 3];
    assert_eq!(p.read_payload(&mut out), 3);
    assert_eq!(&out, b"abc", "copies still work");
}

#[cfg(target_os = "linux")]
#[test]
fn owned_packets_report_iovas_on_vfio() {
    use skmem::backends::{DmaDomain, FakeIommu, Vfio, VfioConfig};
    let fake = Arc::new(FakeIommu::new());
    let domain = DmaDomain::new(fake.clone()).unwrap();
    let pool = PacketPoolConfig::new("dma")
        .md_count(8)
        .kernel_only(true)
        .build::<Vfio>(VfioConfig::new(domain.clone()))
        .unwrap();
    let mut p = pool.alloc_owned(1, NS).unwrap();
    p.write_payload(&[1; 32]);
    p.set_data(16, 16).unwrap();
    let b = p.buflets().next().unwrap();
    let addr = b.as_raw();
    // SAFETY: the buflet belongs to `p`, which is alive.
    let base = unsafe { addr.addr() };
    let expected = domain.iova_of(base).unwrap() + 16;
    assert_eq!(b.iova(), Some(expected), "the data window's device address");
    assert_eq!(p.iova(), Some(expected));
    // SAFETY: `p` is allocated from `pool` and used by no one else now.
    assert_eq!(unsafe { pool.packet_iova(p.as_raw()) }, Some(expected));
    drop(p);
    assert_eq!(pool.stats().packets_out, 0);
    drop(pool);
    assert!(fake.leftover().is_empty(), "every mapping undone");
}

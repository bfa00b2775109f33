//! Pools on the heap, memfd and VFIO (fake IOMMU) backends; buffer segment
//! hooks; a multi-threaded rx/tx pipeline.

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use skmem_backends::Heap;
use skmem_magazine::{Global, PerCpu, PerThread};
use skmem_packet::{AllocFlags, BufferSegmentHooks, Packet, PacketPoolConfig, SegmentEvent};
use skmem_slab::DebugFlags;
use skmem_traits::{CpuLocal, SegmentSource};

const NS: AllocFlags = AllocFlags::NoSleep;

fn round_trip<S: SegmentSource, L: CpuLocal>(cfg: &PacketPoolConfig, src: S::Config) {
    let pool = cfg.build_with::<S, L>(src).unwrap();
    let mut v = Vec::new();
    pool.alloc_batch_vec(1, 64, &mut v, NS).unwrap();
    for (i, &p) in v.iter().enumerate() {
        // SAFETY: allocated above, this thread only.
        unsafe { p.write_payload(&[i as u8; 100]) };
    }
    for (i, &p) in v.iter().enumerate() {
        let mut out = [0u8; 100];
        // SAFETY: as above.
        assert_eq!(unsafe { p.read_payload(&mut out) }, 100);
        assert!(out.iter().all(|&b| b == i as u8));
    }
    // SAFETY: all from `pool`.
    unsafe { pool.free_batch(&v) }.unwrap();
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[test]
fn pools_on_the_heap_with_every_locality() {
    let cfg = PacketPoolConfig::new("heap").md_count(128);
    round_trip::<Heap, PerThread>(&cfg, Default::default());
    round_trip::<Heap, PerCpu>(&cfg, Default::default());
    round_trip::<Heap, Global>(&cfg, Default::default());
    round_trip::<Heap, PerThread>(&cfg.clone().kernel_only(true), Default::default());
}

#[cfg(all(target_os = "linux", not(miri)))]
#[test]
fn pools_on_mmap() {
    use skmem_backends::Mmap;
    let cfg = PacketPoolConfig::new("mmap").md_count(256);
    round_trip::<Mmap, PerThread>(&cfg, Default::default());
    round_trip::<Mmap, PerThread>(&cfg.clone().kernel_only(true), Default::default());
    let od = PacketPoolConfig::new("mmap-od")
        .on_demand(true)
        .max_frags(3)
        .md_count(64)
        .large_buf_size(8192);
    let pool = od.build::<Mmap>(Default::default()).unwrap();
    let p = pool.alloc_packet(3, NS).unwrap();
    // SAFETY: allocated above.
    unsafe {
        assert_eq!(p.write_payload(&[1u8; 6000]), 6000);
        let i = pool.upp_insert(1, p).unwrap();
        let back = pool.upp_remove(1, i).unwrap();
        assert_eq!(back.len(), 6000);
        pool.free_packet(back).unwrap();
    }
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

#[derive(Default)]
struct Recorder {
    created: Mutex<Vec<SegmentEvent>>,
    discarded: AtomicUsize,
}

impl BufferSegmentHooks for Recorder {
    fn created(&self, e: &SegmentEvent) {
        self.created.lock().unwrap().push(*e);
    }
    fn discarded(&self, e: &SegmentEvent) {
        let created = self.created.lock().unwrap();
        assert!(created
            .iter()
            .any(|c| c.index == e.index && c.base == e.base && c.kind == e.kind));
        self.discarded.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn segment_hooks_see_every_buffer_segment() {
    let rec = Arc::new(Recorder::default());
    let pool = PacketPoolConfig::new("hooks")
        .md_count(64)
        .md_magazines(false)
        .segment_hooks(rec.clone())
        .build::<Heap>(Default::default())
        .unwrap();
    let mut v = Vec::new();
    pool.alloc_batch_vec(1, 64, &mut v, NS).unwrap();
    let created = rec.created.lock().unwrap().clone();
    assert!(!created.is_empty());
    let buf_region = pool
        .stats()
        .regions
        .into_iter()
        .find(|r| r.name.starts_with("buf_def"))
        .unwrap();
    assert_eq!(
        created.len() as u64,
        buf_region.seginuse,
        "one event per live buffer segment"
    );
    assert!(created
        .iter()
        .all(|e| e.iova.is_none() && e.size as u64 == buf_region.c_seg_size));
    // Every buffer lies in a segment the hooks saw.
    for &p in &v {
        // SAFETY: allocated above.
        let a = unsafe { p.buffer_addr() } as usize;
        assert!(created
            .iter()
            .any(|e| (e.base.as_ptr() as usize..e.base.as_ptr() as usize + e.size).contains(&a)));
    }
    // SAFETY: all from `pool`.
    unsafe { pool.free_batch(&v) }.unwrap();
    drop(pool);
    assert_eq!(
        rec.discarded.load(Ordering::SeqCst),
        created.len(),
        "every segment discarded at teardown"
    );
}

#[cfg(all(target_os = "linux", not(miri)))]
#[test]
fn vfio_pool_reports_iovas_through_hooks_and_buflets() {
    use skmem_backends::{DmaDomain, FakeIommu, Vfio, VfioConfig};
    let fake = Arc::new(FakeIommu::new());
    let domain = DmaDomain::new(fake.clone()).unwrap();
    let rec = Arc::new(Recorder::default());
    let pool = PacketPoolConfig::new("vfio")
        .md_count(32)
        .kernel_only(true)
        .segment_hooks(rec.clone())
        .build::<Vfio>(VfioConfig::new(domain.clone()))
        .unwrap();
    let p = pool.alloc_packet(1, NS).unwrap();
    // SAFETY: allocated above.
    unsafe {
        let b = p.first_buflet().unwrap();
        let iova = pool.buflet_iova(b).expect("buffers are DMA-mapped");
        assert_eq!(Some(iova), domain.iova_of(b.addr()));
        let created = rec.created.lock().unwrap();
        let seg = created
            .iter()
            .find(|e| {
                (e.base.as_ptr() as usize..e.base.as_ptr() as usize + e.size)
                    .contains(&(b.addr() as usize))
            })
            .unwrap();
        let seg_iova = seg.iova.expect("the hook sees the segment's iova");
        assert_eq!(
            iova,
            seg_iova + (b.addr() as usize - seg.base.as_ptr() as usize) as u64
        );
        drop(created);
        pool.free_packet(p).unwrap();
    }
    drop(pool);
    assert!(fake.leftover().is_empty(), "every mapping undone");
}

#[test]
fn rx_tx_pipeline_across_threads() {
    let pool = PacketPoolConfig::new("pipe")
        .md_count(512)
        // Asserts normal-mode magazine behaviour: debug mode pinned off, so
        // the suite also passes under SKMEM_DEBUG (which bypasses magazines
        // and grows strides).
        .debug(DebugFlags::empty())
        .build::<Heap>(Default::default())
        .unwrap();
    let (tx, rx) = mpsc::sync_channel::<Vec<Packet>>(4);
    const BATCHES: usize = 400;
    let producer = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let mut slots = [MaybeUninit::<Packet>::uninit(); 32];
            let mut seq = 0u32;
            let mut sent = 0;
            while sent < BATCHES {
                let n = match pool.alloc_batch(1, &mut slots, NS) {
                    Ok(n) => n,
                    Err(e) => {
                        assert!(e.is_exhaustion());
                        std::thread::yield_now();
                        continue;
                    }
                };
                let mut v = Vec::with_capacity(n);
                for s in &slots[..n] {
                    // SAFETY: initialised; fresh, ours until sent.
                    let p = unsafe { s.assume_init() };
                    // SAFETY: as above.
                    unsafe { p.write_payload(&seq.to_le_bytes()) };
                    seq += 1;
                    v.push(p);
                }
                tx.send(v).unwrap();
                sent += 1;
            }
            seq
        })
    };
    let consumer = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let mut expect = 0u32;
            let mut seen = HashSet::new();
            for v in rx {
                for &p in &v {
                    let mut b = [0u8; 4];
                    // SAFETY: the producer gave the packet up.
                    assert_eq!(unsafe { p.read_payload(&mut b) }, 4);
                    assert_eq!(u32::from_le_bytes(b), expect, "in order, intact");
                    expect += 1;
                    seen.insert(p);
                }
                // SAFETY: from `pool`, not used again.
                unsafe { pool.free_batch(&v) }.unwrap();
            }
            (expect, seen.len())
        })
    };
    let produced = producer.join().unwrap();
    let (consumed, distinct) = consumer.join().unwrap();
    assert_eq!(produced, consumed);
    assert!(
        distinct <= pool.capacity() as usize,
        "packets are recycled, never invented"
    );
    let s = pool.stats();
    assert_eq!(s.packets_out, 0);
    assert!(
        s.md_cache.cpu_alloc > 0 && s.md_cache.cpu_free > 0,
        "the magazines served the pipeline"
    );
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}

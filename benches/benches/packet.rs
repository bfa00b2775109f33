//! Packet pool (skmem-packet) wall-clock benchmarks: alloc+free of packets
//! with one buffer attached, one at a time and in batches of 32, against an
//! ixy-style free-stack pool and the magazine cache alone. Time per packet
//! (`Throughput::Elements`).
//!
//! ```text
//! cargo bench -p skmem-benches --bench packet
//! ```

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use skmem_backends::Heap;
use skmem_magazine::{Cache, CacheConfig, PerThread};
use skmem_packet::{AllocFlags, Packet, PacketPoolConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};

const BATCH: usize = 32;

/// The ixy driver's mempool: one array of 2 KiB buffers, each starting with
/// its packet header, and a stack of free buffer indices. Single-threaded,
/// no magazines, no construction beyond resetting the header.
struct IxyPool {
    /// `u64` words so that every buffer (a multiple of 8 bytes) is 8-aligned.
    mem: Vec<u64>,
    free: Vec<u32>,
    /// Buffer size in words.
    words: usize,
}

#[repr(C)]
struct IxyHeader {
    phys: u64,
    idx: u32,
    size: u32,
}

impl IxyPool {
    fn new(n: usize, buf_size: usize) -> Self {
        let words = buf_size / 8;
        let mut mem = vec![0u64; n * words];
        for i in 0..n {
            let h = mem[i * words..].as_mut_ptr().cast::<IxyHeader>();
            // SAFETY: inside `mem`, 8-aligned, ours.
            unsafe {
                h.write(IxyHeader {
                    phys: (i * buf_size) as u64,
                    idx: i as u32,
                    size: 0,
                })
            };
        }
        IxyPool {
            mem,
            free: (0..n as u32).collect(),
            words,
        }
    }

    #[inline]
    fn alloc(&mut self) -> Option<NonNull<IxyHeader>> {
        let i = self.free.pop()? as usize;
        let h = self.mem[i * self.words..].as_mut_ptr().cast::<IxyHeader>();
        // SAFETY: a header written in `new`, ours while allocated.
        unsafe { (*h).size = 0 };
        NonNull::new(h)
    }

    #[inline]
    fn free(&mut self, h: NonNull<IxyHeader>) {
        // SAFETY: a header handed out by `alloc`.
        self.free.push(unsafe { (*h.as_ptr()).idx });
    }
}

fn bench(c: &mut Criterion) {
    let pool = PacketPoolConfig::new("bench")
        .md_count(4096)
        .kernel_only(true)
        .build::<Heap>(Default::default())
        .unwrap();
    let mirrored = PacketPoolConfig::new("bench-m")
        .md_count(4096)
        .build::<Heap>(Default::default())
        .unwrap();
    let region = Region::<Heap>::new(
        RegionParams::new("mag", 128, 8192).magazine_max_objs(4096),
        Default::default(),
    )
    .unwrap();
    let slab = SlabCache::new(region, SlabConfig::new("mag", 128), skmem_traits::NoCtor).unwrap();
    let mag: Cache<_, PerThread> = Cache::new(slab, CacheConfig::default()).unwrap();
    let mut ixy = IxyPool::new(4096, 2048);

    let mut g = c.benchmark_group("packet/batch1");
    g.throughput(Throughput::Elements(1));
    g.bench_function("skmem-packet", |b| {
        b.iter(|| {
            let p = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
            // SAFETY: just allocated, not used afterwards.
            unsafe { pool.free_packet(black_box(p)) }.unwrap();
        })
    });
    g.bench_function("skmem-packet-mirrored", |b| {
        b.iter(|| {
            let p = mirrored.alloc_packet(1, AllocFlags::NoSleep).unwrap();
            // SAFETY: as above.
            unsafe { mirrored.free_packet(black_box(p)) }.unwrap();
        })
    });
    g.bench_function("magazine-cache", |b| {
        b.iter(|| {
            let o = mag.alloc().unwrap();
            // SAFETY: from `mag`, not used afterwards.
            unsafe { mag.free(black_box(o)) };
        })
    });
    g.bench_function("ixy-free-stack", |b| {
        b.iter(|| {
            let h = ixy.alloc().unwrap();
            ixy.free(black_box(h));
        })
    });
    g.finish();

    let mut g = c.benchmark_group("packet/batch32");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut slots = [MaybeUninit::<Packet>::uninit(); BATCH];
    g.bench_function("skmem-packet", |b| {
        b.iter(|| {
            let n = pool
                .alloc_batch(1, &mut slots, AllocFlags::NoSleep)
                .unwrap();
            // SAFETY: `n` packets initialised, freed once.
            unsafe {
                pool.free_batch(black_box(std::slice::from_raw_parts(
                    slots.as_ptr().cast::<Packet>(),
                    n,
                )))
            }
            .unwrap();
        })
    });
    g.bench_function("skmem-packet-mirrored", |b| {
        b.iter(|| {
            let n = mirrored
                .alloc_batch(1, &mut slots, AllocFlags::NoSleep)
                .unwrap();
            // SAFETY: as above.
            unsafe {
                mirrored.free_batch(black_box(std::slice::from_raw_parts(
                    slots.as_ptr().cast::<Packet>(),
                    n,
                )))
            }
            .unwrap();
        })
    });
    let mut raw = [MaybeUninit::<NonNull<u8>>::uninit(); BATCH];
    g.bench_function("magazine-cache", |b| {
        b.iter(|| {
            let n = mag.alloc_batch(&mut raw, AllocFlags::NoSleep);
            // SAFETY: `n` objects initialised, freed once.
            unsafe {
                mag.free_batch(black_box(std::slice::from_raw_parts(
                    raw.as_ptr().cast::<NonNull<u8>>(),
                    n,
                )))
            };
        })
    });
    let mut hs: Vec<NonNull<IxyHeader>> = Vec::with_capacity(BATCH);
    g.bench_function("ixy-free-stack", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                hs.push(ixy.alloc().unwrap());
            }
            for h in hs.drain(..) {
                ixy.free(black_box(h));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The packet pool (`skmem_packet::PacketPool`, kernel-only, one buffer per
//! packet, `Heap` source) per `CpuLocal` policy: alloc+free one packet at a
//! time, and batches of 32 (`alloc_batch`/`free_batch`). Time per packet.
//! The reference point is DPDK's `rte_pktmbuf_alloc` +
//! `rte_pktmbuf_free` at mempool cache 256 (11.3 ns on the Xeon it was
//! measured on).

use std::hint::black_box;
use std::mem::MaybeUninit;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use skmem_backends::Heap;
use skmem_magazine::{CpuLocal, PerCpu, PerThread};
use skmem_packet::{AllocFlags, Packet, PacketPool, PacketPoolConfig};

/// Packets per batch.
const BATCH: usize = 32;
/// Packets (and buffers) in each pool.
const PACKETS: usize = 4096;

/// Registers `packet-single` and `packet-batch32`, one pool per policy in
/// each.
pub(crate) fn register_benches(c: &mut Criterion) {
    {
        let mut g = c.benchmark_group("packet-single");
        bench_single(&mut g, "skmem-perthread", &pool::<PerThread>());
        bench_single(&mut g, "skmem-percpu", &pool::<PerCpu>());
        g.finish();
    }
    {
        let mut g = c.benchmark_group(format!("packet-batch{BATCH}"));
        bench_batch(&mut g, "skmem-perthread", &pool::<PerThread>());
        bench_batch(&mut g, "skmem-percpu", &pool::<PerCpu>());
        g.finish();
    }
}

/// A kernel-only pool of [`PACKETS`] packets on the heap, locality `L`.
fn pool<L: CpuLocal>() -> PacketPool<Heap, L> {
    PacketPoolConfig::new(format!("bench-pkt-{}", L::NAME))
        .md_count(PACKETS)
        .kernel_only(true)
        .build_with::<Heap, L>(Default::default())
        .expect("bench packet pool")
}

/// One packet (one buffer) allocated and freed.
fn bench_single<L: CpuLocal>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    pool: &PacketPool<Heap, L>,
) {
    let one = || {
        let p = pool
            .alloc_packet(1, AllocFlags::NoSleep)
            .expect("packet pool exhausted");
        // SAFETY: just allocated from `pool`, freed once, not used after.
        unsafe { pool.free_packet(black_box(p)) }.expect("free_packet");
    };
    for _ in 0..1000 {
        one();
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| b.iter(one));
}

/// [`BATCH`] packets allocated with one call and freed with one call.
fn bench_batch<L: CpuLocal>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    pool: &PacketPool<Heap, L>,
) {
    let mut slots = [const { MaybeUninit::<Packet>::uninit() }; BATCH];
    let mut round = || {
        let n = pool
            .alloc_batch(1, &mut slots, AllocFlags::NoSleep)
            .expect("packet batch");
        assert_eq!(n, BATCH, "packet pool exhausted");
        // SAFETY: `alloc_batch` initialised the first `n` slots; they are
        // freed once and not used after.
        unsafe {
            pool.free_batch(black_box(std::slice::from_raw_parts(
                slots.as_ptr().cast::<Packet>(),
                n,
            )))
        }
        .expect("free_batch");
    };
    for _ in 0..100 {
        round();
    }
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(id, |b| b.iter(&mut round));
}

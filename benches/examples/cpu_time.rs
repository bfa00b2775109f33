//! The single-threaded fast-path workloads timed in **thread CPU time**
//! (`CLOCK_THREAD_CPUTIME_ID`) instead of wall-clock time:
//!
//! ```text
//! cargo run --release -p skmem-benches --example cpu_time [rounds]
//! ```
//!
//! On a shared machine the criterion suite (`benches/wall.rs`) measures
//! wall-clock time, which includes the time the benchmark thread waits for
//! a CPU: at a load of 5 on 2 cores a sample can be inflated several times,
//! and differently for contenders measured seconds apart. Thread CPU time
//! counts only the time the thread ran, so ratios between contenders hold
//! up under load (cache pollution from other processes still remains).
//! This is a diagnostic next to the suite, not a replacement: the report
//! (`scripts/bench.sh`) stays wall-clock.
//!
//! Each workload gets a fresh contender, warmed up with 1000 pairs; each
//! round prints, per
//! workload, the fastest of [`REPS`] repetitions of [`ITERS`] operations
//! (the minimum is the estimate least disturbed by other processes):
//! `replace8192` (free a random member of a working set of 8192 and
//! allocate its replacement, object written), `pair`, and `batch32` (per
//! object) for skmem `PerThread`/`PerCpu` (magazine cache on the `Heap`
//! source), jemalloc and mimalloc; then one-packet alloc+free for
//! `PacketPool` (kernel-only, 4096 packets, `Heap`) per policy.

use std::hint::black_box;

use skmem_backends::Heap;
use skmem_benches::peers::Malloc;
use skmem_benches::skmem::{HeapPerCpu, HeapPerThread};
use skmem_benches::{workload, ObjPool, Ptr, OBJ_SIZE};
use skmem_magazine::{CpuLocal, PerCpu, PerThread};
use skmem_packet::{AllocFlags, PacketPool, PacketPoolConfig};

/// Operations per repetition.
const ITERS: usize = 2_000_000;
/// Repetitions per workload; the fastest is printed.
const REPS: usize = 7;
/// Objects per batch.
const BATCH: usize = 32;

/// The calling thread's CPU time so far, in nanoseconds.
fn thread_cpu_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`; the clock id is a
    // constant every Linux kernel supports.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// The fastest of [`REPS`] runs of `f`, in CPU nanoseconds per unit
/// (`units` per run).
fn fastest(units: usize, mut f: impl FnMut()) -> f64 {
    (0..REPS)
        .map(|_| {
            let t = thread_cpu_ns();
            f();
            (thread_cpu_ns() - t) / units as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Times `replace8192`, `pair` and `batch32`, each on a contender fresh
/// from `make` and warmed up with 1000 pairs (as the criterion suite does).
fn objects<P: 'static + for<'a> ObjPool<Handle<'a> = Ptr>>(id: &str, make: impl Fn() -> P) {
    let warm = |pool: &P| {
        for _ in 0..1000 {
            workload::pair(pool);
        }
    };
    let pool = make();
    warm(&pool);
    let mut set = workload::fill(&pool, workload::WORKING_SET);
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..workload::WORKING_SET {
        workload::replace(&pool, &mut set, &mut rng);
    }
    let replace = fastest(ITERS, || {
        for _ in 0..ITERS {
            workload::replace(&pool, &mut set, &mut rng);
        }
    });
    workload::drain(&pool, set);
    drop(pool);
    let pool = make();
    warm(&pool);
    let pair = fastest(ITERS, || {
        for _ in 0..ITERS {
            workload::pair(&pool);
        }
    });
    drop(pool);
    let pool = make();
    warm(&pool);
    let mut scratch = Vec::with_capacity(BATCH);
    let batch = fastest(ITERS, || {
        for _ in 0..ITERS / BATCH {
            workload::batch(&pool, &mut scratch, BATCH);
        }
    });
    println!(
        "{id:<16} replace8192 {replace:6.2} ns   pair {pair:6.2} ns   batch32 {batch:6.3} ns/object"
    );
}

/// Times one-packet alloc+free on a fresh packet pool.
fn packets<L: CpuLocal>(id: &str) {
    let pool: PacketPool<Heap, L> = PacketPoolConfig::new(format!("cpu-time-{}", L::NAME))
        .md_count(4096)
        .kernel_only(true)
        .build_with::<Heap, L>(Default::default())
        .expect("packet pool");
    let one = || {
        let p = pool
            .alloc_packet(1, AllocFlags::NoSleep)
            .expect("packet pool exhausted");
        // SAFETY: `p` was just allocated from `pool` and is freed once.
        unsafe { pool.free_packet(black_box(p)) }.expect("free_packet");
    };
    for _ in 0..1000 {
        one();
    }
    let single = fastest(ITERS, || {
        for _ in 0..ITERS {
            one();
        }
    });
    println!("{id:<16} packet alloc+free {single:6.2} ns");
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(2, |a| a.parse().expect("rounds: a number"));
    for round in 1..=rounds {
        println!("round {round} of {rounds} (thread CPU time, fastest of {REPS})");
        objects("skmem-perthread", || HeapPerThread::on_heap(OBJ_SIZE));
        objects("skmem-percpu", || HeapPerCpu::on_heap(OBJ_SIZE));
        objects("jemalloc", || {
            Malloc::new(tikv_jemallocator::Jemalloc, OBJ_SIZE)
        });
        objects("mimalloc", || Malloc::new(mimalloc::MiMalloc, OBJ_SIZE));
        packets::<PerThread>("skmem-perthread");
        packets::<PerCpu>("skmem-percpu");
    }
}

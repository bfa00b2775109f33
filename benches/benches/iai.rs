//! Instruction counts (iai-callgrind) of the fast paths: 1000 alloc+free
//! pairs and 100 batches of 32, for skmem's magazine cache per `CpuLocal`,
//! the slab cache, and mimalloc / jemalloc / system malloc, plus a `null`
//! contender whose count is the harness overhead.
//!
//! Each contender is built and warmed up in the setup expression (not
//! measured), so the measured calls hit the fast path. The reported count
//! covers all `PAIRS` pairs (or `BATCH_ROUNDS` batches); `scripts/bench.sh`
//! divides, and subtracts the `null` contender's count.
//!
//! Run with `ci/iai.sh` (installs the matching `iai-callgrind-runner`),
//! which gates the counts against `ci/iai-baseline.txt`. jemalloc's counts
//! vary from run to run (68 393 to 77 850 instructions for the pairs in
//! identical runs, even with its page decay switched off), so the gate
//! reports them without gating them; every other count here repeats
//! exactly.

// `#[library_benchmark]` generates undocumented public modules.
#![allow(missing_docs)]

use std::alloc::System;
use std::hint::black_box;

use iai_callgrind::{library_benchmark, library_benchmark_group, main};
use mimalloc::MiMalloc;
use skmem_benches::peers::{Malloc, Null};
use skmem_benches::skmem::{MagGlobal, MagPerCpu, MagPerThread, SlabPool};
use skmem_benches::{workload, ObjPool, Ptr, OBJ_SIZE};
use tikv_jemallocator::Jemalloc;

/// Pairs per measured call.
const PAIRS: usize = 1000;
/// Objects per batch.
const BATCH: usize = 32;
/// Batches per measured call.
const BATCH_ROUNDS: usize = 100;

/// Warms `pool` up (so the measured calls hit the fast path) and hands it
/// over with an empty scratch vector sized for one batch.
fn setup_warm<P>(pool: P) -> (P, Vec<Ptr>)
where
    for<'a> P: ObjPool<Handle<'a> = Ptr> + 'a,
{
    workload::pairs(&pool, PAIRS);
    let mut scratch = Vec::with_capacity(BATCH);
    for _ in 0..4 {
        workload::batch(&pool, &mut scratch, BATCH);
    }
    (pool, scratch)
}

/// Runs `PAIRS` pairs; returns the contender so that its drop is not measured.
fn run_pairs<P>(input: (P, Vec<Ptr>)) -> (P, Vec<Ptr>)
where
    for<'a> P: ObjPool<Handle<'a> = Ptr> + 'a,
{
    workload::pairs(&input.0, PAIRS);
    black_box(input)
}

/// Runs `BATCH_ROUNDS` batches of `BATCH`.
fn run_batches<P>(mut input: (P, Vec<Ptr>)) -> (P, Vec<Ptr>)
where
    for<'a> P: ObjPool<Handle<'a> = Ptr> + 'a,
{
    let (pool, scratch) = (&input.0, &mut input.1);
    for _ in 0..BATCH_ROUNDS {
        workload::batch(pool, scratch, BATCH);
    }
    black_box(input)
}

/// One `#[library_benchmark]` per contender type for each workload.
macro_rules! contender {
    ($pairs:ident, $batches:ident, $ty:ty, $make:expr) => {
        #[library_benchmark]
        #[bench::warmed(setup_warm($make))]
        fn $pairs(input: ($ty, Vec<Ptr>)) -> ($ty, Vec<Ptr>) {
            run_pairs(input)
        }

        #[library_benchmark]
        #[bench::warmed(setup_warm($make))]
        fn $batches(input: ($ty, Vec<Ptr>)) -> ($ty, Vec<Ptr>) {
            run_batches(input)
        }
    };
}

contender!(pairs_null, batch32_null, Null, Null);
contender!(
    pairs_system,
    batch32_system,
    Malloc<System>,
    Malloc::new(System, OBJ_SIZE)
);
contender!(
    pairs_mimalloc,
    batch32_mimalloc,
    Malloc<MiMalloc>,
    Malloc::new(MiMalloc, OBJ_SIZE)
);
contender!(
    pairs_jemalloc,
    batch32_jemalloc,
    Malloc<Jemalloc>,
    Malloc::new(Jemalloc, OBJ_SIZE)
);

contender!(
    pairs_mag_percpu,
    batch32_mag_percpu,
    MagPerCpu,
    MagPerCpu::new(OBJ_SIZE)
);
contender!(
    pairs_mag_perthread,
    batch32_mag_perthread,
    MagPerThread,
    MagPerThread::new(OBJ_SIZE)
);
contender!(
    pairs_mag_global,
    batch32_mag_global,
    MagGlobal,
    MagGlobal::new(OBJ_SIZE)
);
contender!(pairs_slab, batch32_slab, SlabPool, SlabPool::new(OBJ_SIZE));

library_benchmark_group!(
    name = fast_path;
    benchmarks =
        pairs_mag_percpu, batch32_mag_percpu,
        pairs_mag_perthread, batch32_mag_perthread,
        pairs_mag_global, batch32_mag_global,
        pairs_slab, batch32_slab,
        pairs_null, batch32_null,
        pairs_system, batch32_system,
        pairs_mimalloc, batch32_mimalloc,
        pairs_jemalloc, batch32_jemalloc
);

main!(library_benchmark_groups = fast_path);

//! Wall-clock benchmarks (criterion) of the single-object fast path: skmem's
//! magazine cache (`PerThread`, `PerCpu`, `Global`; 64-byte objects on the
//! `Heap` source) against jemalloc, mimalloc and glibc malloc, in the same
//! run and interleaved: each workload's group runs every contender back to
//! back, so load changes on a shared machine hit them alike.
//!
//! | group | workload (time per object, or per pair) |
//! |---|---|
//! | `pair/64B` | one alloc and one free of the same object |
//! | `replace8192/64B` | free a random member of a working set of 8192 objects, allocate its replacement and write it |
//! | `pairs2t/64B` | two threads, each doing pairs on the same contender (time per pair per thread) |
//! | `burst4096/64B` | 4096 single allocs, then 4096 single frees |
//! | `batch32/64B` | 32 allocs then 32 frees; skmem through `alloc_batch`/`free_batch` |
//! | `prodcons/64B` | one thread allocates and pushes through a lock-free SPSC ring, the other pops and frees |
//! | `packet-single`, `packet-batch32` | `PacketPool` (kernel-only, one buffer per packet) alloc+free, per `CpuLocal` |
//! | `calibration` | one uncontended `xchg` + release store, and a plain store pair |
//!
//! One module per workload family registers its groups
//! (`register_benches`); the function id names the contender.
//! `scripts/bench.sh` turns `target/criterion/**/new/estimates.json` into
//! the tables of `BENCHMARKS.md`. Before the benchmarks, the binary prints
//! one `skmem-locality <id> <locality>` line per skmem contender (the mode
//! its stats report), which the report copies.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use skmem_benches::skmem::{HeapGlobal, HeapPerCpu, HeapPerThread};
use skmem_benches::{workload, ObjPool, Ptr, OBJ_SIZE};

/// Warm-up pairs run on a fresh contender before it is measured, so the
/// first samples already hit its fast path.
const WARM_PAIRS: usize = 1000;

/// Runs `$bench(group, id, &contender, extra args...)` for every contender,
/// in a fixed order: the three skmem policies, then jemalloc, mimalloc and
/// glibc malloc (`system`). Each contender is built fresh for its benchmark
/// and dropped after it.
macro_rules! each_contender {
    ($g:expr, $bench:ident $(, $arg:expr)*) => {{
        use skmem_benches::peers::Malloc;
        $bench($g, "skmem-perthread", &skmem_benches::skmem::HeapPerThread::on_heap(skmem_benches::OBJ_SIZE) $(, $arg)*);
        $bench($g, "skmem-percpu", &skmem_benches::skmem::HeapPerCpu::on_heap(skmem_benches::OBJ_SIZE) $(, $arg)*);
        $bench($g, "skmem-global", &skmem_benches::skmem::HeapGlobal::on_heap(skmem_benches::OBJ_SIZE) $(, $arg)*);
        $bench($g, "jemalloc", &Malloc::new(tikv_jemallocator::Jemalloc, skmem_benches::OBJ_SIZE) $(, $arg)*);
        $bench($g, "mimalloc", &Malloc::new(mimalloc::MiMalloc, skmem_benches::OBJ_SIZE) $(, $arg)*);
        $bench($g, "system", &Malloc::new(std::alloc::System, skmem_benches::OBJ_SIZE) $(, $arg)*);
    }};
}

#[path = "wall/batch.rs"]
mod batch;
#[path = "wall/calibration.rs"]
mod calibration;
#[path = "wall/packet.rs"]
mod packet;
#[path = "wall/single.rs"]
mod single;
#[path = "wall/threads.rs"]
mod threads;

/// Opens the group for `workload` on objects of `size` bytes.
fn group<'c>(c: &'c mut Criterion, workload: &str, size: usize) -> BenchmarkGroup<'c, WallTime> {
    c.benchmark_group(format!("{workload}/{size}B"))
}

/// A contender handing out plain pointers, usable from several threads:
/// what every workload here needs. (`'static` because a handle type for
/// every lifetime `'a` needs `Self: 'a` for every `'a`.)
trait Contender: 'static + Sync + for<'a> ObjPool<Handle<'a> = Ptr> {}
impl<P: 'static + Sync + for<'a> ObjPool<Handle<'a> = Ptr>> Contender for P {}

/// The default configuration: short runs (two cores shared with builds),
/// so that the whole suite takes about three minutes; `scripts/bench.sh`
/// and the command line may lengthen them.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .without_plots()
}

/// Prints the locality each skmem contender's stats report (e.g. whether
/// `PerCpu` runs on restartable sequences or its locked fallback), so that
/// the report can say which fast path was measured.
fn print_localities() {
    let id_locality = [
        (
            "skmem-perthread",
            HeapPerThread::on_heap(OBJ_SIZE).locality(),
        ),
        ("skmem-percpu", HeapPerCpu::on_heap(OBJ_SIZE).locality()),
        ("skmem-global", HeapGlobal::on_heap(OBJ_SIZE).locality()),
    ];
    for (id, locality) in id_locality {
        println!("skmem-locality {id} {locality}");
    }
}

fn main() {
    print_localities();
    let mut c = config().configure_from_args();
    single::register_benches(&mut c);
    threads::register_benches(&mut c);
    batch::register_benches(&mut c);
    packet::register_benches(&mut c);
    calibration::register_benches(&mut c);
    c.final_summary();
}

/// Warms a fresh contender up, so the first samples already hit its fast
/// path.
fn warm<P: Contender>(pool: &P) {
    workload::pairs(pool, WARM_PAIRS);
}

//! The working-set replace workload (`replace8192/64B` of the wall suite)
//! in a plain loop, outside criterion, for `PerCpu`, `PerThread` and
//! jemalloc (the target's peer), with
//! the rseq aborts and the CPU migrations seen during each round: a probe
//! for why `PerCpu`'s replace varies inside the criterion suite (5.2–6.9
//! ns) when a plain loop gives it about 3.4 ns on the same machine.
//!
//! `cargo run --release -p skmem-benches --example replace_probe [ROUNDS]`

use std::time::Instant;

use skmem_benches::skmem::{HeapPerCpu, HeapPerThread};
use skmem_benches::{workload, ObjPool, Ptr};

const OPS: u64 = 40_000_000;

fn cpu() -> i32 {
    // SAFETY: `sched_getcpu` has no preconditions.
    unsafe { libc::sched_getcpu() }
}

fn run<P>(name: &str, pool: &P, rounds: usize)
where
    for<'a> P: ObjPool<Handle<'a> = Ptr> + 'a,
{
    let mut set = workload::fill(pool, workload::WORKING_SET);
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..workload::WORKING_SET {
        workload::replace(pool, &mut set, &mut rng);
    }
    for round in 0..rounds {
        let aborts = skmem_magazine::local::rseq_aborts();
        let (mut migrations, mut last) = (0, cpu());
        let start = Instant::now();
        for i in 0..OPS {
            workload::replace(pool, &mut set, &mut rng);
            if i & 0xffff == 0 {
                let now = cpu();
                migrations += usize::from(now != last);
                last = now;
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / OPS as f64;
        let aborts = skmem_magazine::local::rseq_aborts() - aborts;
        println!("{name} round {round}: {ns:.2} ns per replace, {aborts} rseq aborts, {migrations} migrations, on CPU {last}");
    }
    workload::drain(pool, set);
}

fn main() {
    let rounds = std::env::args()
        .nth(1)
        .map_or(3, |s| s.parse().expect("ROUNDS is a number"));
    run(
        "PerCpu",
        &HeapPerCpu::on_heap(skmem_benches::OBJ_SIZE),
        rounds,
    );
    run(
        "PerThread",
        &HeapPerThread::on_heap(skmem_benches::OBJ_SIZE),
        rounds,
    );
    let jemalloc =
        skmem_benches::peers::Malloc::new(tikv_jemallocator::Jemalloc, skmem_benches::OBJ_SIZE);
    run("jemalloc", &jemalloc, rounds);
}

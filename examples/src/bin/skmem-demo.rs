//! skmem's main job on its default backends.
//!
//! ```text
//! cargo run --release -p skmem-examples            # 1 s per configuration
//! cargo run --release -p skmem-examples -- 3       # 3 s per configuration
//! ```
//!
//! 1. **Packets**: a packet pool (constructed metadata with a buffer
//!    attached, on magazines) on the heap and on memfd-backed mmap; an "rx"
//!    thread allocates batches of 32 packets and writes payloads, a "tx"
//!    thread checks and frees them in batches. Prints packets/s and the
//!    pool's stats.
//! 2. **Objects**: for each backend and each locality policy (per-CPU,
//!    per-thread, global) it builds region → slab cache → magazine cache,
//!    runs two threads that allocate, free, batch and pass objects to each
//!    other, and prints throughput and stats tables.

use std::sync::Arc;
use std::time::Duration;

use skmem_backends::Heap;
#[cfg(target_os = "linux")]
use skmem_backends::Mmap;
use skmem_examples::rx_tx::{run_rx_tx, RxTxOptions, RxTxReport};
use skmem_examples::workload::{run_mixed, MixedReport};
use skmem_magazine::{magazine_max_objs, Cache, CacheConfig, CpuLocal, Global, PerCpu, PerThread};
use skmem_packet::PacketPoolConfig;
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::stats::{table, CacheStats, PoolSummary, RegionStats, Table};
use skmem_traits::{NoCtor, Result, SegmentSource};

const OBJ_SIZE: usize = 256;
const OBJ_COUNT: usize = 64 * 1024;
const THREADS: usize = 2;

struct Outcome {
    label: String,
    report: MixedReport,
    cache: CacheStats,
    region: RegionStats,
}

fn run<S: SegmentSource, L: CpuLocal>(backend: &str, duration: Duration) -> Result<Outcome> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let params = RegionParams::new(format!("demo.{backend}.{}", L::NAME), OBJ_SIZE, OBJ_COUNT)
        .magazine_max_objs(magazine_max_objs(OBJ_SIZE, cpus.max(THREADS)));
    let region: Arc<Region<S>> = Region::new(params, S::Config::default())?;
    let slab = SlabCache::new(
        Arc::clone(&region),
        SlabConfig::new(format!("demo.{backend}.{}", L::NAME), OBJ_SIZE),
        NoCtor,
    )?;
    let cache: Cache<_, L> = Cache::new(slab, CacheConfig::default().dynamic(true))?;
    let report = run_mixed(&cache, THREADS, duration);
    cache.update();
    let stats = cache.stats();
    let outcome = Outcome {
        label: format!("{backend}/{}", L::NAME),
        report,
        cache: stats,
        region: region.stats(),
    };
    // Everything is back in the cache: purge it and the region is empty.
    cache.purge();
    cache.layer().reap();
    let after = region.stats();
    assert_eq!(
        after.seginuse, 0,
        "{}: segments still in use after purge",
        outcome.label
    );
    Ok(outcome)
}

fn packets<S: SegmentSource>(backend: &str, duration: Duration) -> Result<(String, RxTxReport)> {
    let pool = PacketPoolConfig::new(format!("demo.packets.{backend}"))
        .md_count(4096)
        .build::<S>(S::Config::default())?;
    let report = run_rx_tx(
        &pool,
        RxTxOptions {
            duration,
            ..Default::default()
        },
    );
    assert_eq!(report.corrupt, 0, "{backend}: corrupt payloads");
    Ok((backend.to_string(), report))
}

fn main() -> Result<()> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|s| {
            s.parse()
                .expect("the argument is seconds per configuration")
        })
        .unwrap_or(1.0);
    let duration = Duration::from_secs_f64(seconds);
    // SKMEM_STATS=publish: `skmem-top PID` can watch this run;
    // SKMEM_SHOW_STATS=1: every registered object's tables at exit.
    if let Err(e) = skmem_stats::init_from_env() {
        eprintln!("SKMEM_STATS=publish failed: {e}");
    }
    if skmem_stats::is_publishing() {
        println!(
            "publishing stats: watch with `skmem-top {}`",
            std::process::id()
        );
    }
    println!("skmem demo: {THREADS} threads, {seconds} s per configuration\n");

    let mut packet_runs = vec![packets::<Heap>("heap", duration)?];
    #[cfg(target_os = "linux")]
    packet_runs.push(packets::<Mmap>("mmap", duration)?);
    let mut packets_table = Table::new([
        "packet pool",
        "Mpps",
        "ns/packet",
        "batches",
        "partial",
        "corrupt",
    ]);
    for (backend, r) in &packet_runs {
        packets_table.row([
            backend.clone(),
            format!("{:.2}", r.packets_per_sec() / 1e6),
            format!("{:.1}", 1e9 / r.packets_per_sec()),
            r.batches.to_string(),
            r.partial_batches.to_string(),
            r.corrupt.to_string(),
        ]);
    }
    println!(
        "Packets: rx thread allocates batches of 32 and writes payloads, tx thread checks and frees them\n{}",
        packets_table
    );
    let pools: Vec<PoolSummary> = packet_runs.iter().map(|(_, r)| (&r.stats).into()).collect();
    println!("Packet pools (after the run)\n{}", table(&pools));
    for (_, r) in &packet_runs {
        let s = &r.stats;
        let caches: Vec<CacheStats> = [
            Some(&s.md_cache),
            s.bft_def.as_ref(),
            s.bft_large.as_ref(),
            Some(&s.buf_def),
            s.buf_large.as_ref(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        println!("Caches of pool {}\n{}", s.name, table(&caches));
        println!("Regions of pool {}\n{}", s.name, table(&s.regions));
    }

    let mut outcomes = vec![
        run::<Heap, PerCpu>("heap", duration)?,
        run::<Heap, PerThread>("heap", duration)?,
        run::<Heap, Global>("heap", duration)?,
    ];
    #[cfg(target_os = "linux")]
    outcomes.extend([
        run::<Mmap, PerCpu>("mmap", duration)?,
        run::<Mmap, PerThread>("mmap", duration)?,
        run::<Mmap, Global>("mmap", duration)?,
    ]);

    let mut throughput = Table::new(["cache", "Mops/s", "ns/op", "cross-thread frees"]);
    for o in &outcomes {
        throughput.row([
            o.label.clone(),
            format!("{:.1}", o.report.ops_per_sec() / 1e6),
            format!("{:.1}", 1e9 / o.report.ops_per_sec()),
            o.report.cross_thread_frees.to_string(),
        ]);
    }
    println!(
        "Objects ({OBJ_SIZE} B, mixed single and batch of 32; alloc and free each count as one op)\n{}",
        throughput
    );

    let caches: Vec<CacheStats> = outcomes.iter().map(|o| o.cache.clone()).collect();
    println!(
        "Magazine caches (after the run, before purge)\n{}",
        table(&caches)
    );

    let regions: Vec<RegionStats> = outcomes.iter().map(|o| o.region.clone()).collect();
    println!("Regions (after the run, before purge)\n{}", table(&regions));
    println!("Every configuration returned all of its segments after purge.");
    Ok(())
}

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
use skmem_examples::table::Table;
use skmem_examples::workload::{run_mixed, MixedReport};
use skmem_magazine::{magazine_max_objs, Cache, CacheConfig, CpuLocal, Global, PerCpu, PerThread};
use skmem_packet::demo::{run_rx_tx, RxTxOptions, RxTxReport};
use skmem_packet::PacketPoolConfig;
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::stats::{CacheStats, RegionStats};
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
    println!("skmem demo: {THREADS} threads, {seconds} s per configuration\n");

    let mut packet_runs = vec![packets::<Heap>("heap", duration)?];
    #[cfg(target_os = "linux")]
    packet_runs.push(packets::<Mmap>("mmap", duration)?);
    let mut table = Table::new([
        "packet pool",
        "Mpps",
        "ns/packet",
        "batches",
        "partial",
        "corrupt",
    ]);
    for (backend, r) in &packet_runs {
        table.row([
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
        table.render()
    );
    for (_, r) in &packet_runs {
        println!("{}", r.stats.table());
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
        throughput.render()
    );

    let mut caches = Table::new([
        "cache",
        "mag size",
        "resizes",
        "cpu alloc",
        "cpu free",
        "depot full",
        "depot empty",
        "contention",
        "slab alloc",
        "slab free",
        "slabs",
        "cached",
    ]);
    for o in &outcomes {
        let c = &o.cache;
        caches.row([
            o.label.clone(),
            c.cpu_mag_size.to_string(),
            c.cpu_mag_resize.to_string(),
            c.cpu_alloc.to_string(),
            c.cpu_free.to_string(),
            c.depot_full.to_string(),
            c.depot_empty.to_string(),
            c.depot_contention.to_string(),
            c.slab.sl_alloc.to_string(),
            c.slab.sl_free.to_string(),
            c.slab.sl_create.to_string(),
            c.cached_objs.to_string(),
        ]);
    }
    println!(
        "Magazine caches (after the run, before purge)\n{}",
        caches.render()
    );

    let mut regions = Table::new([
        "region",
        "source",
        "obj size",
        "objs",
        "seg size",
        "segs",
        "segs in use",
        "MiB in use",
        "seg allocs",
        "seg frees",
    ]);
    for o in &outcomes {
        let r = &o.region;
        regions.row([
            r.name.clone(),
            r.source.to_string(),
            r.c_obj_size.to_string(),
            r.c_obj_cnt.to_string(),
            r.c_seg_size.to_string(),
            r.seg_cnt.to_string(),
            r.seginuse.to_string(),
            format!("{:.2}", r.meminuse as f64 / (1 << 20) as f64),
            r.alloc.to_string(),
            r.free.to_string(),
        ]);
    }
    println!(
        "Regions (after the run, before purge)\n{}",
        regions.render()
    );
    println!("Every configuration returned all of its segments after purge.");
    Ok(())
}

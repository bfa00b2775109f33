//! What the registry and the stats publisher cost (a plain `harness =
//! false` bench: `cargo bench -p skmem-top --bench stats [-- SECONDS]`).
//!
//! 1. **Readers do not block writers.** A thread creates and drops caches
//!    (each registers and unregisters) and another allocates and frees on
//!    a long-lived cache, first alone, then while a reader walks the
//!    registry taking every object's stats nonstop, then while a reader
//!    stalls inside a walk (pinned, 50 ms per object). Reported: caches
//!    created per second, the slowest single creation, allocations per
//!    second.
//! 2. **Publishing costs under 1 %.** The `skmem-top --demo` workload (two
//!    threads, three caches and a packet pool) for several rounds, publish
//!    off and on (1 s and 100 ms intervals) alternating; reported: median
//!    operations per second of each and the overhead.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skmem_top::demo::Demo;
use skmem_traits::registry;

#[derive(Debug, Clone, Copy)]
enum Reader {
    None,
    Walking,
    Stalled,
}

struct Outcome {
    creations: u64,
    slowest: Duration,
    allocs: u64,
    walks: u64,
}

fn registry_round(reader: Reader, secs: f64) -> Outcome {
    let stop = AtomicBool::new(false);
    let walks = AtomicU64::new(0);
    let long_lived = skmem::Cache::builder("bench.long-lived", 64)
        .capacity(4096)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        let reader_thread = s.spawn(|| match reader {
            Reader::None => {}
            Reader::Walking => {
                while !stop.load(Ordering::Relaxed) {
                    registry::for_each(|_, _, o| {
                        std::hint::black_box(o.stats());
                    });
                    walks.fetch_add(1, Ordering::Relaxed);
                }
            }
            Reader::Stalled => {
                while !stop.load(Ordering::Relaxed) {
                    registry::for_each(|_, _, o| {
                        std::hint::black_box(o.stats());
                        std::thread::sleep(Duration::from_millis(50));
                    });
                    walks.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let alloc_thread = s.spawn(|| {
            let mut ops = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..1024 {
                    let o = long_lived.alloc().unwrap();
                    // SAFETY: allocated just above from the same cache.
                    unsafe { long_lived.free(o) };
                }
                ops += 1024;
            }
            ops
        });
        let start = Instant::now();
        let (mut creations, mut slowest) = (0u64, Duration::ZERO);
        while start.elapsed().as_secs_f64() < secs {
            let t = Instant::now();
            let c = skmem::Cache::builder("bench.churn", 128)
                .capacity(64)
                .build()
                .unwrap();
            slowest = slowest.max(t.elapsed());
            drop(c);
            creations += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let allocs = alloc_thread.join().unwrap();
        reader_thread.join().unwrap();
        Outcome {
            creations,
            slowest,
            allocs,
            walks: walks.load(Ordering::Relaxed),
        }
    })
}

fn demo_round(demo: &Demo, publish: Option<Duration>, secs: f64) -> f64 {
    if let Some(interval) = publish {
        skmem_stats::publish(interval).unwrap();
    }
    let stop = AtomicBool::new(false);
    let ops = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
        });
        demo.run(2, &stop, &ops);
    });
    let rate = ops.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    skmem_stats::stop_publishing();
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2.0);
    println!("registry: {secs} s per configuration");
    println!(
        "{:<28} {:>12} {:>16} {:>14} {:>8}",
        "reader", "creations/s", "slowest create", "allocs/s", "walks"
    );
    for reader in [Reader::None, Reader::Walking, Reader::Stalled] {
        let o = registry_round(reader, secs);
        let label = match reader {
            Reader::None => "none",
            Reader::Walking => "walking nonstop",
            Reader::Stalled => "stalled in walk (50 ms/obj)",
        };
        println!(
            "{:<28} {:>12.0} {:>13.1} us {:>14.0} {:>8}",
            label,
            o.creations as f64 / secs,
            o.slowest.as_secs_f64() * 1e6,
            o.allocs as f64 / secs,
            o.walks
        );
    }

    let demo = Demo::new().unwrap();
    let rounds = 7;
    let (mut off, mut on_1s, mut on_100ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        off.push(demo_round(&demo, None, secs));
        on_1s.push(demo_round(&demo, Some(Duration::from_secs(1)), secs));
        on_100ms.push(demo_round(&demo, Some(Duration::from_millis(100)), secs));
    }
    let (off, on_1s, on_100ms) = (median(off), median(on_1s), median(on_100ms));
    println!("\npublish overhead on the demo workload: {rounds} rounds of {secs} s, medians");
    println!("{:<24} {:>14} {:>10}", "publish", "ops/s", "overhead");
    println!("{:<24} {:>14.0} {:>10}", "off", off, "-");
    for (label, on) in [("every 1 s", on_1s), ("every 100 ms", on_100ms)] {
        println!(
            "{:<24} {:>14.0} {:>9.2}%",
            label,
            on,
            100.0 * (off - on) / off
        );
    }
}

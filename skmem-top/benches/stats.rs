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
//!    off and on (1 s and 100 ms intervals) in rotating order; reported:
//!    median operations per second of each, the overhead, and the
//!    publisher thread's own CPU time (from `/proc/self/task/*/schedstat`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skmem_top::demo::Demo;
use skmem_traits::registry;

#[derive(Debug, Clone, Copy)]
enum Reader {
    None,
    /// Walks nonstop, touching only the entries (no stats calls).
    Walking,
    /// Walks nonstop and takes every object's stats.
    WalkingStats,
    /// Pinned inside a walk, 50 ms per object.
    Stalled,
}

struct Outcome {
    creations: u64,
    latencies: Vec<Duration>,
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
                    registry::for_each(|id, kind, _| {
                        std::hint::black_box((id, kind));
                    });
                    walks.fetch_add(1, Ordering::Relaxed);
                }
            }
            Reader::WalkingStats => {
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
        let (mut creations, mut latencies) = (0u64, Vec::new());
        while start.elapsed().as_secs_f64() < secs {
            let t = Instant::now();
            let c = skmem::Cache::builder("bench.churn", 128)
                .capacity(64)
                .build()
                .unwrap();
            latencies.push(t.elapsed());
            drop(c);
            creations += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let allocs = alloc_thread.join().unwrap();
        reader_thread.join().unwrap();
        Outcome {
            creations,
            latencies,
            allocs,
            walks: walks.load(Ordering::Relaxed),
        }
    })
}

/// CPU time (ns) the `skmem-stats` publisher thread has run, from
/// `/proc/self/task/*/schedstat`; 0 when it is not running.
fn publisher_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "skmem-stats" {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            return stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

/// Operations per second of one round, and the publisher's CPU time in it.
fn demo_round(demo: &Demo, publish: Option<Duration>, secs: f64) -> (f64, u64) {
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
    let cpu = publisher_cpu_ns();
    skmem_stats::stop_publishing();
    (rate, cpu)
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
        "{:<30} {:>12} {:>10} {:>10} {:>12} {:>14} {:>8}",
        "reader", "creations/s", "p50 us", "p99 us", "max us", "allocs/s", "walks"
    );
    for reader in [
        Reader::None,
        Reader::Walking,
        Reader::WalkingStats,
        Reader::Stalled,
    ] {
        let mut o = registry_round(reader, secs);
        o.latencies.sort();
        let at =
            |q: f64| o.latencies[((o.latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        let label = match reader {
            Reader::None => "none",
            Reader::Walking => "walking nonstop",
            Reader::WalkingStats => "walking nonstop + stats()",
            Reader::Stalled => "stalled in walk (50 ms/obj)",
        };
        println!(
            "{:<30} {:>12.0} {:>10.1} {:>10.1} {:>12.1} {:>14.0} {:>8}",
            label,
            o.creations as f64 / secs,
            at(0.5),
            at(0.99),
            at(1.0),
            o.allocs as f64 / secs,
            o.walks
        );
    }

    let demo = Demo::new().unwrap();
    // What one refresh costs the publisher thread: the registry snapshot
    // (every object's stats) it copies into the memfd.
    let n = 2000;
    let t = Instant::now();
    let mut entries = 0;
    for _ in 0..n {
        entries = std::hint::black_box(registry::snapshot()).len();
    }
    let per_refresh = t.elapsed() / n;
    println!(
        "\none refresh's registry snapshot ({entries} objects): {:.1} us",
        per_refresh.as_secs_f64() * 1e6
    );
    let rounds = 15;
    let (mut off, mut on_1s, mut on_100ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_1s, mut cpu_100ms) = (0u64, 0u64);
    for round in 0..rounds {
        // Rotate the order, so no setting always follows the same one.
        for k in 0..3 {
            match (round + k) % 3 {
                0 => off.push(demo_round(&demo, None, secs).0),
                1 => {
                    let (rate, cpu) = demo_round(&demo, Some(Duration::from_secs(1)), secs);
                    on_1s.push(rate);
                    cpu_1s += cpu;
                }
                _ => {
                    let (rate, cpu) = demo_round(&demo, Some(Duration::from_millis(100)), secs);
                    on_100ms.push(rate);
                    cpu_100ms += cpu;
                }
            }
        }
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
    // The publisher thread's own CPU time against the two workers' wall
    // time: the direct cost, free of run-to-run noise.
    let worker_ns = rounds as f64 * secs * 2.0 * 1e9;
    for (label, cpu) in [("every 1 s", cpu_1s), ("every 100 ms", cpu_100ms)] {
        println!(
            "publisher thread CPU, {label}: {:.0} us per second of run, {:.4} % of the workers' time",
            cpu as f64 / 1e3 / (rounds as f64 * secs),
            100.0 * cpu as f64 / worker_ns
        );
    }
}

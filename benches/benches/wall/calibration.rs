//! The calibration row: what one uncontended atomic exchange plus a release
//! store (a spin lock's acquire and release, the slot lock of a locked fast
//! path) costs on this machine, next to two plain stores. Instruction
//! counts weigh both alike; this row shows the wall-clock difference.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{Criterion, Throughput};

/// Registers `calibration` with `xchg+release-store` and `plain-store-pair`.
pub(crate) fn register_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("calibration");
    g.throughput(Throughput::Elements(1));
    let lock = AtomicBool::new(false);
    g.bench_function("xchg+release-store", |b| {
        b.iter(|| {
            let lock = black_box(&lock);
            // `swap` compiles to `xchg` on x86-64 (a locked read-modify-write).
            let was = lock.swap(true, Ordering::Acquire);
            lock.store(false, Ordering::Release);
            was
        })
    });
    let mut word = false;
    g.bench_function("plain-store-pair", |b| {
        b.iter(|| {
            let p = black_box(&raw mut word);
            // SAFETY: `p` points at `word`, a live local nobody else
            // accesses; volatile so that neither store is merged away.
            unsafe {
                p.write_volatile(true);
                p.write_volatile(false);
            }
        })
    });
    g.finish();
}

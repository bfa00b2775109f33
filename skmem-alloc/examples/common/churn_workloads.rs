//! Allocator workloads shared by `churn_skmem` (skmem-alloc as the global
//! allocator) and `churn_system` (the system allocator, or whatever
//! `LD_PRELOAD` puts in its place): the same code, timed, so one run
//! compares them.

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fill_alloc(size: usize) -> Box<[u8]> {
    let mut v = Vec::<u8>::with_capacity(size);
    // SAFETY: capacity is `size`; only the first byte is written, the rest
    // stays uninitialised-but-ours like a C program's malloc.
    unsafe {
        if size > 0 {
            v.as_mut_ptr().write(1);
        }
        v.set_len(size);
    }
    v.into_boxed_slice()
}

/// Single thread: malloc/free pairs of one small size.
fn pairs() {
    for _ in 0..20_000_000 {
        black_box(Box::new(black_box(7u64)));
    }
}

/// Larson-style server churn: each thread replaces random slots of its
/// array with blocks of random sizes (16..1024); halfway, arrays move to
/// another thread (frees of another thread's blocks).
fn larson(threads: usize) {
    let per = 12_000_000 / threads;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9 + t as u64);
                let mut slots: Vec<Box<[u8]>> = (0..1000).map(|_| fill_alloc(16)).collect();
                for _ in 0..per / 2 {
                    let i = rng.next() as usize % slots.len();
                    slots[i] = fill_alloc(16 + rng.next() as usize % 1008);
                }
                slots
            })
        })
        .collect();
    let arrays: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let handles: Vec<_> = arrays
        .into_iter()
        .enumerate()
        .map(|(t, mut slots)| {
            thread::spawn(move || {
                let mut rng = Rng(0x1234_5678 + t as u64);
                for _ in 0..per / 2 {
                    let i = rng.next() as usize % slots.len();
                    slots[i] = fill_alloc(16 + rng.next() as usize % 1008);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// Producer/consumer: one thread allocates, another frees, in batches.
fn producer_consumer() {
    let (tx, rx) = mpsc::sync_channel::<Vec<Box<[u8]>>>(64);
    let consumer = thread::spawn(move || {
        let mut n = 0usize;
        for batch in rx {
            n += batch.len();
        }
        n
    });
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let batch: Vec<_> = (0..256)
            .map(|_| fill_alloc(8 + rng.next() as usize % 512))
            .collect();
        tx.send(batch).unwrap();
    }
    drop(tx);
    assert_eq!(consumer.join().unwrap(), 20_000 * 256);
}

/// Many sizes: random log-uniform sizes 8 B .. 64 KiB, a working set of
/// 4096 blocks per thread.
fn many_sizes(threads: usize) {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng(77 + t as u64);
                let mut slots: Vec<Option<Box<[u8]>>> = (0..4096).map(|_| None).collect();
                for _ in 0..4_000_000 / threads {
                    let i = rng.next() as usize % slots.len();
                    let shift = 3 + rng.next() % 14;
                    let size = (1usize << shift) + rng.next() as usize % (1 << shift);
                    slots[i] = Some(fill_alloc(size));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// Runs every workload, printing `name seconds` lines and the peak RSS.
pub(crate) fn main_with(label: &str) {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let all: [(&str, fn()); 5] = [
        ("pairs", pairs),
        ("larson2", || larson(2)),
        ("larson4", || larson(4)),
        ("prodcons", producer_consumer),
        ("manysizes2", || many_sizes(2)),
    ];
    let mut product = 1.0f64;
    let mut n = 0;
    for (name, f) in all {
        if !which.is_empty() && !which.iter().any(|w| w == name) {
            continue;
        }
        let t0 = Instant::now();
        f();
        let s = t0.elapsed().as_secs_f64();
        product *= s;
        n += 1;
        println!("{label:8} {name:12} {s:8.3} s");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?")
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_owned();
    println!(
        "{label:8} geomean      {:8.3} s   peak RSS {hwm} kB",
        product.powf(1.0 / n.max(1) as f64)
    );
}

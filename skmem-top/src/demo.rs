//! The demo workload: three object caches of different sizes, a packet
//! pool and an arena (with a view mapped, and packets taken from its own
//! pool), worked by two threads whose allocation rates and holdings swing
//! over time, so that every column and panel of `skmem-top` moves.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skmem::backends::Mmap;
use skmem::{
    AllocFlags, Arena, ArenaConfig, Cache, Heap, HeapConfig, PacketPool, PacketPoolConfig,
    SlabCache, UserView,
};

/// The caches of the demo: name, object size, capacity. The names sort
/// in another order than the sizes, so sorting by size visibly reorders.
pub const CACHES: [(&str, usize, usize); 3] = [
    ("demo.alpha", 2048, 2048),
    ("demo.bravo", 64, 16384),
    ("demo.charlie", 512, 4096),
];

/// The demo's packet pool name.
pub const POOL: &str = "demo.packets";

/// The demo's arena name. It sorts after the caches' names, so that the
/// arena pool's caches list below the demo's own in the name order.
pub const ARENA: &str = "ipc.arena";

/// What the demo built.
#[derive(Debug)]
pub struct Demo {
    caches: Vec<Arc<Cache<SlabCache<Heap>>>>,
    pool: PacketPool<Heap>,
    arena_pool: PacketPool<Mmap>,
    // Field order is drop order: the view goes before the arena.
    _view: UserView,
    _arena: Arena,
}

impl Demo {
    /// Builds the caches and the pool (they register themselves).
    pub fn new() -> skmem::Result<Demo> {
        let caches = CACHES
            .iter()
            .map(|&(name, size, capacity)| {
                Cache::builder(name, size)
                    .capacity(capacity)
                    .build()
                    .map(Arc::new)
            })
            .collect::<skmem::Result<Vec<_>>>()?;
        let pool = PacketPoolConfig::new(POOL)
            .md_count(1024)
            .build::<Heap>(HeapConfig::default())?;
        let arena = ArenaConfig::new(ARENA)
            .pool(PacketPoolConfig::new(ARENA).md_count(256))
            .build()?;
        let arena_pool = arena.pool().expect("an arena built with a pool has one");
        let view = arena.map_local()?;
        Ok(Demo {
            caches,
            pool,
            arena_pool,
            _view: view,
            _arena: arena,
        })
    }

    /// Runs the workload on `threads` threads until `stop` is set, adding
    /// every allocation and free to `ops`.
    pub fn run(&self, threads: usize, stop: &AtomicBool, ops: &AtomicU64) {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads.max(1) {
                scope.spawn(move || self.worker(t as u64, start, stop, ops));
            }
        });
    }

    fn worker(&self, id: u64, start: Instant, stop: &AtomicBool, ops: &AtomicU64) {
        let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut held: Vec<VecDeque<NonNull<u8>>> = vec![VecDeque::new(); self.caches.len()];
        let mut packets = VecDeque::new();
        let mut arena_packets = VecDeque::new();
        let mut local_ops = 0u64;
        let mut step = 0u64;
        let mut targets = [0usize; 5];
        while !stop.load(Ordering::Relaxed) {
            step += 1;
            if step % 1024 == 0 {
                ops.fetch_add(local_ops, Ordering::Relaxed);
                local_ops = 0;
                // Holdings swing with a period of 10 s, each cache out of
                // phase with the others.
                let t = start.elapsed().as_secs_f64();
                for (i, target) in targets.iter_mut().enumerate() {
                    let phase = t / 10.0 * std::f64::consts::TAU + i as f64;
                    *target = (64.0 + 60.0 * phase.sin()) as usize * (i + 1);
                }
            }
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Cache i gets (i + 1) shares of the steps, packets of the
            // pool three, packets of the arena's pool one.
            let pick = (rng % 11) as usize;
            let i = match pick {
                0 => 0,
                1 | 2 => 1,
                3..=5 => 2,
                6..=9 => 3,
                _ => 4,
            };
            if i < self.caches.len() {
                let cache = &self.caches[i];
                let q = &mut held[i];
                if q.len() < targets[i] {
                    if let Some(obj) = cache.alloc() {
                        q.push_back(obj);
                        local_ops += 1;
                    }
                } else if let Some(obj) = q.pop_front() {
                    // SAFETY: `obj` came from `cache` and is freed once.
                    unsafe { cache.free(obj) };
                    local_ops += 1;
                }
            } else if i == 3 {
                if packets.len() < targets[3] {
                    if let Ok(p) = self.pool.alloc_owned(1, AllocFlags::NoSleep) {
                        packets.push_back(p);
                        local_ops += 1;
                    }
                } else if packets.pop_front().is_some() {
                    local_ops += 1;
                }
            } else if arena_packets.len() < targets[4] / 4 {
                if let Ok(p) = self.arena_pool.alloc_owned(1, AllocFlags::NoSleep) {
                    arena_packets.push_back(p);
                    local_ops += 1;
                }
            } else if arena_packets.pop_front().is_some() {
                local_ops += 1;
            }
        }
        for (cache, q) in self.caches.iter().zip(held) {
            for obj in q {
                // SAFETY: as above.
                unsafe { cache.free(obj) };
            }
        }
        ops.fetch_add(local_ops, Ordering::Relaxed);
    }
}

/// Runs the demo in this process until the parent process goes away (a
/// child started by `skmem-top --demo`), publishing its stats every
/// `interval`.
pub fn run_child(interval: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let demo = Demo::new()?;
    skmem_stats::publish(interval)?;
    let parent = std::os::unix::process::parent_id();
    let stop = AtomicBool::new(false);
    let ops = AtomicU64::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while std::os::unix::process::parent_id() == parent {
                std::thread::sleep(Duration::from_millis(100));
            }
            stop.store(true, Ordering::Relaxed);
        });
        demo.run(2, &stop, &ops);
    });
    skmem_stats::stop_publishing();
    Ok(())
}

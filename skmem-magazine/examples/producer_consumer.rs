//! Producer/consumer: objects allocated on one thread and freed on another,
//! through a typed cache of constructed buffers. Each buffer is built once
//! (its `Vec` keeps its capacity), cycles between the threads many times,
//! and is dropped only when the cache purges.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use skmem_magazine::{Maintenance, MaintenanceConfig, PerThread, TypedCache};
use skmem_slab::Heap;

static BUILT: AtomicUsize = AtomicUsize::new(0);

struct Buffer {
    bytes: Vec<u8>,
}

fn build() -> Buffer {
    BUILT.fetch_add(1, Ordering::Relaxed);
    Buffer {
        bytes: Vec::with_capacity(1500),
    }
}

fn main() -> skmem_traits::Result<()> {
    let cache: TypedCache<Buffer, fn() -> Buffer, Heap, PerThread> =
        TypedCache::with_ctor("buffers", 1024, build as fn() -> Buffer)?;
    // Periodic working-set updates and reaps while the threads run.
    let maintenance = Maintenance::start(MaintenanceConfig {
        update_interval: std::time::Duration::from_millis(5),
        reap_every: Some(4),
    })?;
    let (tx, rx) = mpsc::sync_channel(64);
    let produced = 100_000;
    std::thread::scope(|s| {
        let cache = &cache;
        s.spawn(move || {
            for i in 0..produced {
                let mut b = cache.alloc().expect("buffer");
                b.bytes.clear();
                b.bytes.extend_from_slice(&(i as u32).to_le_bytes());
                tx.send(b).unwrap();
            }
        });
        s.spawn(move || {
            let mut sum = 0u64;
            for b in rx {
                sum += u64::from(u32::from_le_bytes(b.bytes[..4].try_into().unwrap()));
                // `b` drops here: back to this thread's magazine, constructed.
            }
            println!("consumer summed {sum}");
        });
    });
    drop(maintenance);
    let s = cache.stats();
    println!(
        "{produced} buffers passed; {} built, {} cached, {} from the CPU layer",
        BUILT.load(Ordering::Relaxed),
        s.cached_objs,
        s.cpu_alloc
    );
    Ok(())
}

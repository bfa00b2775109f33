//! A `Vec<T, _>` whose buffer is one object of a skmem cache.
//!
//! A cache is a fixed-size allocator: the vector grows in place up to the
//! object size, and a growth beyond it fails cleanly (`try_reserve` errors).

use allocator_api2::vec::Vec;
use skmem_magazine::{magazine_max_objs, Cache, CacheAllocator, CacheConfig, PerCpu};
use skmem_slab::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::NoCtor;

fn main() -> skmem_traits::Result<()> {
    // 256-byte objects, room for 1024 of them (plus the magazines' share).
    let params = RegionParams::new("vec-buffers", 256, 1024)
        .magazine_max_objs(magazine_max_objs(256, skmem_magazine::local::ncpus()));
    let region = Region::<Heap>::new(params, HeapConfig::default())?;
    let slab = SlabCache::new(region, SlabConfig::new("vec-buffers", 256), NoCtor)?;
    let cache: Cache<_, PerCpu> = Cache::new(slab, CacheConfig::default())?;

    let alloc = cache.allocator()?;
    for round in 0..3 {
        let mut v: Vec<u64, &CacheAllocator<_, PerCpu>> = Vec::with_capacity_in(8, &alloc);
        v.extend((0..32).map(|i| i * round));
        println!(
            "round {round}: {} u64s, capacity {}, sum {}",
            v.len(),
            v.capacity(),
            v.iter().sum::<u64>()
        );
        assert!(v.try_reserve(1).is_err(), "33 u64s do not fit 256 bytes");
    }
    let s = cache.stats();
    println!(
        "slab allocations {} (the same buffer came back from the magazine each round), cached {}",
        s.slab.sl_alloc, s.cached_objs
    );
    Ok(())
}

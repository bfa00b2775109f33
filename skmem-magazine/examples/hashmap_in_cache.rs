//! A `hashbrown::HashMap` whose table lives in one 16 KiB object of a skmem
//! cache: a bounded map that refuses to grow past its object.

use skmem_magazine::{magazine_max_objs, Cache, CacheConfig, Global};
use skmem_slab::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::NoCtor;

fn main() -> skmem_traits::Result<()> {
    const TABLE: usize = 16 * 1024;
    let params =
        RegionParams::new("tables", TABLE, 8).magazine_max_objs(magazine_max_objs(TABLE, 1));
    let region = Region::<Heap>::new(params, HeapConfig::default())?;
    let slab = SlabCache::new(region, SlabConfig::new("tables", TABLE), NoCtor)?;
    let cache: Cache<_, Global> = Cache::new(slab, CacheConfig::default())?;

    let alloc = cache.allocator()?;
    let mut map =
        hashbrown::HashMap::with_hasher_in(hashbrown::DefaultHashBuilder::default(), &alloc);
    let mut n = 0u32;
    while map.try_reserve(1).is_ok() {
        map.insert(n, u64::from(n) * u64::from(n));
        n += 1;
    }
    println!("{n} entries fit one {TABLE}-byte object; the next growth was refused cleanly");
    println!("map[100] = {}", map[&100]);
    Ok(())
}

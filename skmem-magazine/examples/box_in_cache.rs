//! `Box<T, _>` on a skmem cache, through its owned `CacheAllocator` handle
//! (a cloneable allocator, so the boxes are `'static`).

use allocator_api2::boxed::Box;
use skmem_magazine::{magazine_max_objs, Cache, CacheAllocator, CacheConfig, PerThread};
use skmem_slab::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::NoCtor;

#[derive(Debug)]
struct Packet {
    len: u16,
    data: [u8; 120],
}

type PacketCache = Cache<SlabCache<Heap>, PerThread>;
type PacketAlloc = CacheAllocator<SlabCache<Heap>, PerThread>;

fn main() -> skmem_traits::Result<()> {
    let size = core::mem::size_of::<Packet>();
    let params =
        RegionParams::new("packets", size, 4096).magazine_max_objs(magazine_max_objs(128, 8));
    let region = Region::<Heap>::new(params, HeapConfig::default())?;
    let slab = SlabCache::new(region, SlabConfig::new("packets", size), NoCtor)?;
    let cache: PacketCache = Cache::new(slab, CacheConfig::default())?;
    // A private heap region: plain memory, so the cache may be an allocator.
    let alloc: PacketAlloc = cache.allocator()?;

    let boxes: Vec<Box<Packet, PacketAlloc>> = (0..10u16)
        .map(|i| {
            Box::new_in(
                Packet {
                    len: i,
                    data: [i as u8; 120],
                },
                alloc.clone(),
            )
        })
        .collect();
    let total: usize = boxes
        .iter()
        .map(|p| p.len as usize + p.data[0] as usize)
        .sum();
    println!("10 packets boxed in the cache, checksum {total}");
    drop(boxes);
    let s = cache.stats();
    println!(
        "after drop: {} objects resting in magazines, {} out of the slab layer",
        s.cached_objs, s.slab.sl_bufinuse
    );
    Ok(())
}

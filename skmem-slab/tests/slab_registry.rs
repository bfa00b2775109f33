//! A slab cache used on its own ([`SlabCache::new_shared`]) is listed in
//! the process-wide registry with live statistics while it exists, and
//! disappears when dropped; one built with `new` (the layer under a
//! magazine cache) is not listed by itself.

mod slab_common;

use skmem_slab::{SlabCache, SlabConfig};
use skmem_traits::registry::{self, Kind, Stats};
use skmem_traits::{AllocFlags, NoCtor};
use slab_common::heap_region;

/// The registry's slab entries with this name.
fn listed(name: &str) -> Vec<skmem_traits::stats::SlabStats> {
    registry::stats_of(Kind::Slab)
        .into_iter()
        .filter_map(|s| match s {
            Stats::Slab(s) if s.name == name => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn shared_slab_cache_is_listed_with_live_stats_until_dropped() {
    let region = heap_region("reg-slab-listed", 96, 64);
    let cache = SlabCache::new_shared(region, SlabConfig::new("slab-listed", 96), NoCtor).unwrap();
    let objs: Vec<_> = (0..5)
        .map(|_| cache.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    let entries = listed("slab-listed");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].objsize, 96);
    assert_eq!(entries[0].sl_bufinuse, 5);
    assert_eq!(entries[0].sl_alloc, 5);
    // The dump shows it too, under the slab table.
    assert!(registry::dump().contains("slab-listed"));

    for o in objs {
        // SAFETY: allocated above from this cache, freed once.
        unsafe { cache.free(o) };
    }
    assert_eq!(listed("slab-listed")[0].sl_bufinuse, 0);
    // `reap_all` reaches it: its empty slab goes back to the region.
    assert!(cache.region().stats().meminuse > 0);
    registry::reap_all(false);
    assert_eq!(cache.region().stats().meminuse, 0);

    drop(cache);
    assert!(listed("slab-listed").is_empty());
}

#[test]
fn slab_cache_built_with_new_is_not_listed_by_itself() {
    let region = heap_region("reg-slab-unlisted", 64, 64);
    let cache = SlabCache::new(region, SlabConfig::new("slab-unlisted", 64), NoCtor).unwrap();
    let o = cache.alloc_with(AllocFlags::NoSleep).unwrap();
    assert!(listed("slab-unlisted").is_empty());
    // SAFETY: allocated above from this cache, freed once.
    unsafe { cache.free(o) };
}

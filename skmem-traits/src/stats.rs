//! Plain statistics structs, one per layer.
//!
//! Each is a snapshot: the layer fills it on request from its counters. The
//! field names follow the seed's `sk_stats_region` / `sk_stats_cache` where a
//! field means the same thing here.
//!
//! With the `serde` feature every struct serialises and deserialises
//! (owned: `DeserializeOwned`); names taken from a type's `NAME` constant
//! are `Cow<'static, str>`, borrowed when the layer fills them and owned
//! when read back.

use alloc::borrow::Cow;
use alloc::string::String;

/// A snapshot of one region (the seed's `sk_stats_region`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RegionStats {
    /// Region name.
    pub name: String,
    /// Backend name ([`SegmentSource::NAME`](crate::SegmentSource::NAME)).
    /// A `Cow` so that a deserialised snapshot can own its copy: compare it
    /// with `==` against a `&str`.
    pub source: Cow<'static, str>,
    /// Mode flags, as bits of [`RegionMode`](crate::RegionMode).
    pub mode: u32,
    /// Requested segment size.
    pub r_seg_size: u64,
    /// Computed segment size.
    pub c_seg_size: u64,
    /// Number of segments the region may hold.
    pub seg_cnt: u32,
    /// Objects per segment.
    pub seg_objs: u32,
    /// Requested object size.
    pub r_obj_size: u64,
    /// Requested object count.
    pub r_obj_cnt: u64,
    /// Computed object size.
    pub c_obj_size: u64,
    /// Computed object count.
    pub c_obj_cnt: u64,
    /// Object alignment.
    pub align: u64,
    /// Bytes of all segments the region may hold.
    pub memtotal: u64,
    /// Bytes of segments currently created.
    pub meminuse: u64,
    /// Bytes of segments currently wired (locked).
    pub w_meminuse: u64,
    /// Segments handed out and not yet freed.
    pub seginuse: u64,
    /// Segment allocations so far.
    pub alloc: u64,
    /// Segment frees so far.
    pub free: u64,
    /// Segments created in the backend so far.
    pub create: u64,
    /// Segments discarded in the backend so far.
    pub destroy: u64,
    /// Allocations that found the region exhausted.
    pub alloc_fail: u64,
    /// Threads that blocked waiting for a segment.
    pub waits: u64,
}

/// A snapshot of one slab layer (the `sca_sl_*` part of `sk_stats_cache`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SlabStats {
    /// Cache name.
    pub name: String,
    /// Requested object size.
    pub objsize: u64,
    /// Requested object alignment.
    pub objalign: u64,
    /// Bytes between consecutive objects (the chunk size).
    pub chunksize: u64,
    /// Size of one slab (one segment).
    pub slabsize: u64,
    /// Objects per slab.
    pub chunks_per_slab: u32,
    /// Slabs created.
    pub sl_create: u64,
    /// Slabs destroyed (segments returned to the region).
    pub sl_destroy: u64,
    /// Objects allocated from slabs.
    pub sl_alloc: u64,
    /// Objects freed to slabs.
    pub sl_free: u64,
    /// Allocations that failed.
    pub sl_alloc_fail: u64,
    /// Slabs with some objects allocated and some free.
    pub sl_partial: u64,
    /// Slabs with every object allocated.
    pub sl_full: u64,
    /// Slabs with no object allocated, kept for reuse.
    pub sl_empty: u64,
    /// Objects currently allocated from slabs.
    pub sl_bufinuse: u64,
    /// Buckets of the address → bufctl hash (0 when lookup is arithmetic).
    pub sl_hash_size: u64,
    /// Constructor calls.
    pub ctor: u64,
    /// Destructor calls.
    pub dtor: u64,
}

/// A snapshot of one magazine cache (`sk_stats_cache`), including its slab
/// layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CacheStats {
    /// Cache name.
    pub name: String,
    /// Locality policy ([`CpuLocal::locality`](crate::CpuLocal::locality):
    /// its [`NAME`](crate::CpuLocal::NAME), or the mode it runs in, e.g.
    /// `per-cpu(rseq)` / `per-cpu(locked)`); a `Cow` for the same reason as
    /// [`RegionStats::source`].
    pub locality: Cow<'static, str>,
    /// Current magazine capacity (rounds).
    pub cpu_mag_size: u32,
    /// Times the magazine size grew.
    pub cpu_mag_resize: u64,
    /// Times the CPU layer was purged.
    pub cpu_mag_purge: u64,
    /// Times the depot was reaped.
    pub cpu_mag_reap: u64,
    /// Full magazines in the depot.
    pub depot_full: u64,
    /// Empty magazines in the depot.
    pub depot_empty: u64,
    /// Times the working set was zeroed.
    pub depot_ws_zero: u64,
    /// Failed try-locks on the depot (contention) in all.
    pub depot_contention: u64,
    /// Objects in loaded magazines of all CPU slots, plus those in the
    /// policy's lock-free per-CPU fronts ([`CpuLocal::fast_cached`](crate::CpuLocal::fast_cached)).
    pub cpu_rounds: u64,
    /// Objects in previous magazines of all CPU slots.
    pub cpu_prounds: u64,
    /// Allocations served by the CPU layer.
    pub cpu_alloc: u64,
    /// Frees absorbed by the CPU layer.
    pub cpu_free: u64,
    /// Full magazines handed out by the depot so far (`ml_alloc`).
    pub depot_full_alloc: u64,
    /// Empty magazines handed out by the depot so far (`ml_alloc`).
    pub depot_empty_alloc: u64,
    /// CPU-layer slots currently holding state.
    pub cpu_slots: u64,
    /// Constructed objects resting in the magazine layer (CPU slots and
    /// depot): `cpu_rounds + cpu_prounds + depot_full * cpu_mag_size`.
    pub cached_objs: u64,
    /// The slab layer beneath.
    pub slab: SlabStats,
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// JSON read back from a buffer that is gone once parsed: the names
    /// taken from `NAME` constants come back owned and equal.
    #[test]
    fn stats_round_trip_through_json_with_owned_names() {
        let region = RegionStats {
            name: "r".into(),
            source: Cow::Borrowed("mmap"),
            mode: 5,
            seg_cnt: 3,
            ..RegionStats::default()
        };
        let cache = CacheStats {
            name: "c".into(),
            locality: Cow::Borrowed("per-thread"),
            cpu_mag_size: 15,
            slab: SlabStats {
                sl_bufinuse: 7,
                ..SlabStats::default()
            },
            ..CacheStats::default()
        };
        let json = serde_json::to_string(&region).unwrap();
        let back: RegionStats = serde_json::from_str(&json.to_string()).unwrap();
        assert_eq!(back, region);
        assert!(matches!(back.source, Cow::Owned(_)));
        let json = serde_json::to_string(&cache).unwrap();
        let back: CacheStats = serde_json::from_str(&json.to_string()).unwrap();
        assert_eq!(back, cache);
        assert_eq!(back.locality, "per-thread");
    }
}

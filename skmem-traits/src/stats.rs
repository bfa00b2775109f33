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
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

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

/// A packet pool in the registry: what `skmem-top` and the dump show of
/// it (the pool's caches and regions are registered on their own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PoolSummary {
    /// Pool name.
    pub name: String,
    /// Backend name.
    pub source: String,
    /// Metadata objects in all.
    pub md_capacity: u64,
    /// Default buffer size.
    pub buf_size: u64,
    /// Packets handed out and not freed.
    pub packets_out: u64,
    /// Buflets handed out (standalone or in packets).
    pub buflets_out: u64,
    /// Packets user processes hold.
    pub upp_packets: u64,
    /// Standalone buflets user processes hold.
    pub upp_buflets: u64,
    /// Bytes of created segments of every region of the pool.
    pub meminuse: u64,
}

/// An arena in the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ArenaSummary {
    /// Arena name.
    pub name: String,
    /// Bytes of every region's span.
    pub mem_total: u64,
    /// Bytes of created segments.
    pub mem_inuse: u64,
    /// Bytes of one view while any view exists.
    pub map_size: u64,
    /// Live views in this process.
    pub local_views: u64,
    /// Live views sent to peers.
    pub remote_views: u64,
    /// Redirects so far.
    pub redirects: u64,
    /// Torn down.
    pub defunct: bool,
}

/// Statistics of anything else a layer registers (for example a size
/// class of a general-purpose allocator): a kind, a name and named
/// counters, in the order the tables show them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CustomStats {
    /// What the object is (`"size-class"`, ...).
    pub kind: Cow<'static, str>,
    /// Object name.
    pub name: String,
    /// Named counters.
    pub values: Vec<(Cow<'static, str>, u64)>,
}

/// A stats struct that prints as a row of a table.
pub trait TableRow {
    /// Column titles.
    fn header() -> Vec<Cow<'static, str>>;
    /// The cells of this row, as many as [`header`](Self::header) has.
    fn cells(&self) -> Vec<String>;
}

fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / (1u64 << 20) as f64)
}

fn cols(names: &[&'static str]) -> Vec<Cow<'static, str>> {
    names.iter().map(|n| Cow::Borrowed(*n)).collect()
}

impl TableRow for RegionStats {
    fn header() -> Vec<Cow<'static, str>> {
        cols(&[
            "region",
            "source",
            "obj size",
            "objs",
            "seg size",
            "segs",
            "segs in use",
            "MiB total",
            "MiB in use",
            "MiB wired",
            "seg allocs",
            "seg frees",
            "fails",
        ])
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.source.to_string(),
            self.c_obj_size.to_string(),
            self.c_obj_cnt.to_string(),
            self.c_seg_size.to_string(),
            self.seg_cnt.to_string(),
            self.seginuse.to_string(),
            mib(self.memtotal),
            mib(self.meminuse),
            mib(self.w_meminuse),
            self.alloc.to_string(),
            self.free.to_string(),
            self.alloc_fail.to_string(),
        ]
    }
}

impl TableRow for SlabStats {
    fn header() -> Vec<Cow<'static, str>> {
        cols(&[
            "slab cache",
            "obj size",
            "chunk",
            "per slab",
            "slabs",
            "partial",
            "full",
            "empty",
            "in use",
            "allocs",
            "frees",
            "fails",
            "ctor",
            "dtor",
        ])
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.objsize.to_string(),
            self.chunksize.to_string(),
            self.chunks_per_slab.to_string(),
            self.sl_create.saturating_sub(self.sl_destroy).to_string(),
            self.sl_partial.to_string(),
            self.sl_full.to_string(),
            self.sl_empty.to_string(),
            self.sl_bufinuse.to_string(),
            self.sl_alloc.to_string(),
            self.sl_free.to_string(),
            self.sl_alloc_fail.to_string(),
            self.ctor.to_string(),
            self.dtor.to_string(),
        ]
    }
}

impl CacheStats {
    /// Objects handed out to users and not freed: taken from the slab
    /// layer minus those resting in magazines.
    pub fn objs_in_use(&self) -> u64 {
        self.slab.sl_bufinuse.saturating_sub(self.cached_objs)
    }

    /// Bytes of the objects in use (their chunks), saturating: the
    /// counters may come from another process (a published region), so no
    /// product of them may overflow.
    pub fn mem_in_use(&self) -> u64 {
        self.objs_in_use().saturating_mul(self.slab.chunksize)
    }

    /// Objects the slab layer's slabs hold in all (in use, cached or free).
    pub fn objs_total(&self) -> u64 {
        self.slab
            .sl_create
            .saturating_sub(self.slab.sl_destroy)
            .saturating_mul(u64::from(self.slab.chunks_per_slab))
    }
}

impl TableRow for CacheStats {
    fn header() -> Vec<Cow<'static, str>> {
        cols(&[
            "cache",
            "locality",
            "obj size",
            "in use",
            "total",
            "MiB in use",
            "mag size",
            "resizes",
            "cpu alloc",
            "cpu free",
            "depot full",
            "depot empty",
            "contention",
            "slab allocs",
            "cached",
        ])
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.locality.to_string(),
            self.slab.objsize.to_string(),
            self.objs_in_use().to_string(),
            self.objs_total().to_string(),
            mib(self.mem_in_use()),
            self.cpu_mag_size.to_string(),
            self.cpu_mag_resize.to_string(),
            self.cpu_alloc.to_string(),
            self.cpu_free.to_string(),
            self.depot_full.to_string(),
            self.depot_empty.to_string(),
            self.depot_contention.to_string(),
            self.slab.sl_alloc.to_string(),
            self.cached_objs.to_string(),
        ]
    }
}

impl TableRow for PoolSummary {
    fn header() -> Vec<Cow<'static, str>> {
        cols(&[
            "packet pool",
            "source",
            "packets",
            "buf size",
            "packets out",
            "buflets out",
            "user packets",
            "user buflets",
            "MiB in use",
        ])
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.source.clone(),
            self.md_capacity.to_string(),
            self.buf_size.to_string(),
            self.packets_out.to_string(),
            self.buflets_out.to_string(),
            self.upp_packets.to_string(),
            self.upp_buflets.to_string(),
            mib(self.meminuse),
        ]
    }
}

impl TableRow for ArenaSummary {
    fn header() -> Vec<Cow<'static, str>> {
        cols(&[
            "arena",
            "MiB total",
            "MiB in use",
            "map size",
            "local views",
            "remote views",
            "redirects",
            "defunct",
        ])
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            mib(self.mem_total),
            mib(self.mem_inuse),
            self.map_size.to_string(),
            self.local_views.to_string(),
            self.remote_views.to_string(),
            self.redirects.to_string(),
            self.defunct.to_string(),
        ]
    }
}

impl TableRow for CustomStats {
    fn header() -> Vec<Cow<'static, str>> {
        cols(&["object", "kind", "counters"])
    }
    fn cells(&self) -> Vec<String> {
        let counters: Vec<String> = self
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        vec![self.name.clone(), self.kind.to_string(), counters.join(" ")]
    }
}

/// Rows of stats as a plain-text table: first column left-aligned, the
/// rest right-aligned, a rule under the header. `Display` of every stats
/// struct is this table with one row.
pub fn table<T: TableRow>(rows: &[T]) -> Table {
    let mut t = Table::new(T::header());
    for r in rows {
        t.row(r.cells());
    }
    t
}

/// A plain-text table of string cells (see [`table`]).
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<I, T>(header: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Cow<'static, str>>,
    {
        Table {
            header: header.into_iter().map(|h| h.into().into_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells print empty, extra cells are kept.
    pub fn row<I, T>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = T>,
        T: core::fmt::Display,
    {
        self.rows
            .push(cells.into_iter().map(|c| c.to_string()).collect());
        self
    }
}

impl core::fmt::Display for Table {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in core::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |f: &mut core::fmt::Formatter<'_>, row: &[String]| {
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                if i == 0 {
                    write!(f, "{cell:<width$}")?;
                } else {
                    write!(f, "  {cell:>width$}")?;
                }
            }
            writeln!(f)
        };
        line(f, &self.header)?;
        let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        for _ in 0..total {
            f.write_str("-")?;
        }
        writeln!(f)?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

macro_rules! display_as_table {
    ($($t:ty),*) => {$(
        impl core::fmt::Display for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Display::fmt(&table(core::slice::from_ref(self)), f)
            }
        }
    )*};
}
display_as_table!(
    RegionStats,
    SlabStats,
    CacheStats,
    PoolSummary,
    ArenaSummary,
    CustomStats
);

#[cfg(test)]
mod table_tests {
    use super::*;
    use alloc::string::ToString;

    /// Counters read from another process's published region are not
    /// trusted: a table of extreme values formats (saturating) instead of
    /// overflowing. Fails with "attempt to multiply with overflow" when
    /// the memory column multiplies plainly (the `stats_region` fuzz
    /// target's first find).
    #[test]
    fn extreme_counters_format_without_overflow() {
        let mut c = CacheStats {
            name: "hostile".into(),
            ..CacheStats::default()
        };
        c.slab.sl_bufinuse = u64::MAX;
        c.slab.chunksize = u64::MAX;
        c.slab.sl_create = u64::MAX;
        c.slab.chunks_per_slab = u32::MAX;
        c.cpu_alloc = u64::MAX;
        c.slab.sl_alloc = u64::MAX;
        assert_eq!(c.mem_in_use(), u64::MAX);
        let text = c.to_string();
        assert!(text.contains("hostile"), "{text}");
    }
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

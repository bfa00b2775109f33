//! The model behind the screen: one row per cache with its rates, sorted
//! and filtered, independent of the terminal.

use std::collections::HashMap;

use skmem_stats::Snapshot;
use skmem_traits::stats::{ArenaSummary, CacheStats, PoolSummary, RegionStats};

/// Samples of the allocation rate kept per cache (the sparkline).
pub const HISTORY: usize = 120;

/// A column of the cache table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Cache name.
    Name,
    /// Object size.
    Size,
    /// Objects in use.
    InUse,
    /// Objects in all slabs.
    Total,
    /// Bytes in use.
    Mem,
    /// Magazine size.
    Mag,
    /// CPU-layer hit rate.
    Hit,
    /// Full magazines in the depot.
    Full,
    /// Empty magazines in the depot.
    Empty,
    /// Depot lock contention.
    Contention,
    /// Magazine resizes.
    Resizes,
    /// Allocations so far.
    Allocs,
    /// Allocations per second.
    Rate,
}

impl Column {
    /// Every column, in screen order (and the order `s` cycles through).
    pub const ALL: [Column; 13] = [
        Column::Name,
        Column::Size,
        Column::InUse,
        Column::Total,
        Column::Mem,
        Column::Mag,
        Column::Hit,
        Column::Full,
        Column::Empty,
        Column::Contention,
        Column::Resizes,
        Column::Allocs,
        Column::Rate,
    ];

    /// The column's title.
    pub fn title(self) -> &'static str {
        match self {
            Column::Name => "CACHE",
            Column::Size => "SIZE",
            Column::InUse => "INUSE",
            Column::Total => "TOTAL",
            Column::Mem => "MEM_KIB",
            Column::Mag => "MAG",
            Column::Hit => "HIT%",
            Column::Full => "D_FULL",
            Column::Empty => "D_EMPTY",
            Column::Contention => "CONTEND",
            Column::Resizes => "RESIZE",
            Column::Allocs => "ALLOCS",
            Column::Rate => "ALLOC/S",
        }
    }

    /// The next column in [`ALL`](Self::ALL), wrapping.
    pub fn next(self) -> Column {
        let i = Column::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Column::ALL[(i + 1) % Column::ALL.len()]
    }
}

/// One cache as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheRow {
    /// Registry id in the watched process.
    pub id: u64,
    /// The cache's stats.
    pub stats: CacheStats,
    /// Allocations so far: served by the CPU layer plus taken from slabs.
    pub allocs: u64,
    /// CPU-layer hit rate, percent: CPU-layer allocations over all.
    pub hit_pct: f64,
    /// Allocations per second over the last refresh.
    pub rate: f64,
    /// Recent rates, oldest first.
    pub history: Vec<u64>,
}

impl CacheRow {
    /// The cell of `column`, as shown.
    pub fn cell(&self, column: Column) -> String {
        let s = &self.stats;
        match column {
            Column::Name => s.name.clone(),
            Column::Size => s.slab.objsize.to_string(),
            Column::InUse => s.objs_in_use().to_string(),
            Column::Total => s.objs_total().to_string(),
            Column::Mem => (s.mem_in_use() / 1024).to_string(),
            Column::Mag => s.cpu_mag_size.to_string(),
            Column::Hit => format!("{:.1}", self.hit_pct),
            Column::Full => s.depot_full.to_string(),
            Column::Empty => s.depot_empty.to_string(),
            Column::Contention => s.depot_contention.to_string(),
            Column::Resizes => s.cpu_mag_resize.to_string(),
            Column::Allocs => self.allocs.to_string(),
            Column::Rate => format!("{:.0}", self.rate),
        }
    }

    fn key(&self, column: Column) -> f64 {
        let s = &self.stats;
        match column {
            Column::Name => 0.0,
            Column::Size => s.slab.objsize as f64,
            Column::InUse => s.objs_in_use() as f64,
            Column::Total => s.objs_total() as f64,
            Column::Mem => s.mem_in_use() as f64,
            Column::Mag => f64::from(s.cpu_mag_size),
            Column::Hit => self.hit_pct,
            Column::Full => s.depot_full as f64,
            Column::Empty => s.depot_empty as f64,
            Column::Contention => s.depot_contention as f64,
            Column::Resizes => s.cpu_mag_resize as f64,
            Column::Allocs => self.allocs as f64,
            Column::Rate => self.rate,
        }
    }
}

#[derive(Debug, Clone)]
struct Track {
    allocs: u64,
    rate: f64,
    history: Vec<u64>,
}

/// What the screen shows, updated from snapshots.
#[derive(Debug, Clone)]
pub struct View {
    /// Sort column.
    pub sort: Column,
    /// Reverse the natural order (names ascending, numbers descending).
    pub reverse: bool,
    /// Only rows whose name contains this.
    pub filter: String,
    tracks: HashMap<u64, Track>,
    last: Option<(u64, u64)>,
    caches: Vec<(u64, CacheStats)>,
    regions: Vec<RegionStats>,
    pools: Vec<PoolSummary>,
    arenas: Vec<ArenaSummary>,
    /// The last snapshot's generation and writer pid.
    pub generation: u64,
}

impl Default for View {
    fn default() -> Self {
        View {
            sort: Column::Name,
            reverse: false,
            filter: String::new(),
            tracks: HashMap::new(),
            last: None,
            caches: Vec::new(),
            regions: Vec::new(),
            pools: Vec::new(),
            arenas: Vec::new(),
            generation: 0,
        }
    }
}

/// Allocations served (saturating: the counters come from another
/// process and are not trusted).
fn allocs(s: &CacheStats) -> u64 {
    s.cpu_alloc.saturating_add(s.slab.sl_alloc)
}

impl View {
    /// Takes a new snapshot: rates are per second of the writer's clock
    /// between this refresh and the previous one.
    pub fn update(&mut self, snap: &Snapshot) {
        let dt = match self.last {
            Some((generation, _)) if generation == snap.generation => None,
            Some((_, t)) if snap.time_ns > t => Some((snap.time_ns - t) as f64 / 1e9),
            _ => None,
        };
        self.caches = snap.entries_caches();
        self.regions = snap.regions().cloned().collect();
        self.pools = snap.pools().cloned().collect();
        self.arenas = snap.arenas().cloned().collect();
        self.generation = snap.generation;
        let mut alive = HashMap::with_capacity(self.caches.len());
        for (id, c) in &self.caches {
            let now = allocs(c);
            let mut track = self.tracks.remove(id).unwrap_or(Track {
                allocs: now,
                rate: 0.0,
                history: Vec::new(),
            });
            if let Some(dt) = dt {
                track.rate = now.saturating_sub(track.allocs) as f64 / dt;
                track.history.push(track.rate as u64);
                if track.history.len() > HISTORY {
                    track.history.remove(0);
                }
            }
            track.allocs = now;
            alive.insert(*id, track);
        }
        self.tracks = alive;
        self.last = Some((snap.generation, snap.time_ns));
    }

    /// Cache rows, filtered and sorted.
    pub fn cache_rows(&self) -> Vec<CacheRow> {
        let mut rows: Vec<CacheRow> = self
            .caches
            .iter()
            .filter(|(_, c)| c.name.contains(&self.filter))
            .map(|(id, c)| {
                let track = self.tracks.get(id);
                let all = allocs(c);
                CacheRow {
                    id: *id,
                    stats: c.clone(),
                    allocs: all,
                    hit_pct: if all == 0 {
                        0.0
                    } else {
                        100.0 * c.cpu_alloc as f64 / all as f64
                    },
                    rate: track.map_or(0.0, |t| t.rate),
                    history: track.map_or_else(Vec::new, |t| t.history.clone()),
                }
            })
            .collect();
        let sort = self.sort;
        rows.sort_by(|a, b| {
            let natural = if sort == Column::Name {
                a.stats.name.cmp(&b.stats.name)
            } else {
                b.key(sort)
                    .partial_cmp(&a.key(sort))
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.stats.name.cmp(&b.stats.name))
            };
            if self.reverse {
                natural.reverse()
            } else {
                natural
            }
        });
        rows
    }

    /// Regions, filtered by name.
    pub fn regions(&self) -> Vec<&RegionStats> {
        self.regions
            .iter()
            .filter(|r| r.name.contains(&self.filter))
            .collect()
    }

    /// Packet pools, filtered by name.
    pub fn pools(&self) -> Vec<&PoolSummary> {
        self.pools
            .iter()
            .filter(|p| p.name.contains(&self.filter))
            .collect()
    }

    /// Arenas, filtered by name.
    pub fn arenas(&self) -> Vec<&ArenaSummary> {
        self.arenas
            .iter()
            .filter(|a| a.name.contains(&self.filter))
            .collect()
    }
}

/// Snapshot helpers the view needs.
trait SnapshotExt {
    fn entries_caches(&self) -> Vec<(u64, CacheStats)>;
}

impl SnapshotExt for Snapshot {
    fn entries_caches(&self) -> Vec<(u64, CacheStats)> {
        self.entries
            .iter()
            .filter_map(|e| match &e.stats {
                skmem_stats::Stats::Cache(c) => Some((e.id, c.clone())),
                // A slab cache on its own is a row without a magazine
                // layer: its allocations are all slab allocations.
                skmem_stats::Stats::Slab(s) => Some((
                    e.id,
                    CacheStats {
                        name: s.name.clone(),
                        locality: "slab only".into(),
                        slab: s.clone(),
                        ..CacheStats::default()
                    },
                )),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skmem_stats::{SnapshotEntry, Stats};

    fn snap(generation: u64, secs: u64, caches: &[(u64, &str, u64, u64)]) -> Snapshot {
        Snapshot {
            pid: 1,
            generation,
            time_ns: secs * 1_000_000_000,
            interval_ns: 1_000_000_000,
            dropped: 0,
            entries: caches
                .iter()
                .map(|&(id, name, size, cpu_alloc)| SnapshotEntry {
                    id,
                    stats: Stats::Cache(CacheStats {
                        name: name.into(),
                        cpu_alloc,
                        slab: skmem_traits::stats::SlabStats {
                            objsize: size,
                            ..Default::default()
                        },
                        ..Default::default()
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn a_slab_cache_on_its_own_is_a_row() {
        let mut v = View::default();
        let mut snapshot = snap(1, 10, &[(1, "cache", 64, 5)]);
        snapshot.entries.push(SnapshotEntry {
            id: 2,
            stats: Stats::Slab(skmem_traits::stats::SlabStats {
                name: "lone-slab".into(),
                objsize: 96,
                sl_alloc: 40,
                sl_bufinuse: 7,
                ..Default::default()
            }),
        });
        v.update(&snapshot);
        let rows = v.cache_rows();
        let row = rows
            .iter()
            .find(|r| r.stats.name == "lone-slab")
            .expect("the slab cache is listed");
        assert_eq!(row.stats.slab.objsize, 96);
        assert_eq!(row.stats.objs_in_use(), 7);
        assert_eq!(row.stats.locality, "slab only");
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn rates_sorting_and_filter() {
        let mut v = View::default();
        v.update(&snap(1, 10, &[(1, "b", 64, 100), (2, "a", 512, 100)]));
        v.update(&snap(2, 12, &[(1, "b", 64, 700), (2, "a", 512, 300)]));
        let rows = v.cache_rows();
        assert_eq!(rows[0].stats.name, "a");
        assert_eq!(rows[1].rate, 300.0);
        assert_eq!(rows[0].history, vec![100]);
        v.sort = Column::Rate;
        assert_eq!(v.cache_rows()[0].stats.name, "b");
        v.sort = v.sort.next().next(); // wraps: Rate, Name, Size
        assert_eq!(v.sort, Column::Size);
        assert_eq!(v.cache_rows()[0].stats.name, "a");
        v.reverse = true;
        assert_eq!(v.cache_rows()[0].stats.name, "b");
        v.filter = "a".into();
        assert_eq!(v.cache_rows().len(), 1);
    }
}

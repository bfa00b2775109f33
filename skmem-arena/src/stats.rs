//! Snapshots of an arena: plain, serialisable data (with the `serde`
//! feature), filled in by the owner under its lock.

use skmem_traits::stats::RegionStats;

use crate::id::RegionId;

/// Live views of an arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ViewCounts {
    /// Views in this process.
    pub local: u32,
    /// Views sent to peers and not released yet.
    pub remote: u32,
    /// Views (of either kind) redirected.
    pub redirected: u32,
}

/// One region of an arena (serialisable and deserialisable with the
/// `serde` feature).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ArenaRegionStats {
    /// Which region.
    pub id: RegionId,
    /// Offset in user views (`None`: private to the owner).
    pub view_offset: Option<u64>,
    /// The memfd is sealed against peers (size, `F_SEAL_SEAL`, and
    /// `F_SEAL_FUTURE_WRITE` when read-only to users): every region in
    /// views is.
    pub sealed: bool,
    /// The region's own statistics.
    pub region: RegionStats,
}

/// A snapshot of an arena (the seed's `sk_stats_arena` and
/// `skmem_arena_get_stats`), serialisable and deserialisable with the
/// `serde` feature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ArenaStats {
    /// Arena name.
    pub name: String,
    /// Accepts new views.
    pub active: bool,
    /// Torn down by [`Arena::defunct`](crate::Arena::defunct).
    pub defunct: bool,
    /// The packet pool was supplied from outside.
    pub external_pool: bool,
    /// Bytes of one view while any view exists (0 otherwise).
    pub map_size: u64,
    /// Bytes of every region's span (memory the arena may use).
    pub mem_total: u64,
    /// Bytes of created segments.
    pub mem_inuse: u64,
    /// Live views.
    pub views: ViewCounts,
    /// Local views created so far.
    pub local_views_created: u64,
    /// Views sent to peers so far.
    pub remote_views_sent: u64,
    /// Redirects so far.
    pub redirects: u64,
    /// Redirects of remote views the peers acknowledged.
    pub redirects_acked: u64,
    /// Remote views the peers reported unmapped.
    pub remote_closed: u64,
    /// Remote views released because their socket closed (peer exited)
    /// or the owner said so.
    pub remote_lost: u64,
    /// Every region the arena holds now.
    pub regions: Vec<ArenaRegionStats>,
}

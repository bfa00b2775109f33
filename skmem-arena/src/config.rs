//! Building an arena: which regions it gets, with which modes.
//!
//! This module holds the configuration and the plan; `build` and friends
//! sit with [`Arena`](crate::Arena) (module `arena`), which uses this one.

use skmem_packet::PacketPoolConfig;
use skmem_slab::RegionParams;
use skmem_traits::{Error, RegionMode, Result};

use crate::id::RegionId;
use crate::wire;

use skmem_traits::__config_setter as setter;

/// How to build an [`Arena`](crate::Arena). Sizes are in bytes; a count or size of 0
/// leaves the region out (except the schema, which every arena has).
#[derive(Debug, Clone)]
pub struct ArenaConfig {
    pub(crate) name: String,
    guard_size: usize,
    pub(crate) schema_size: usize,
    pub(crate) ring_size: usize,
    ring_count: usize,
    pub(crate) slot_desc_size: usize,
    slot_count: usize,
    stats_size: usize,
    flowadv_size: usize,
    pub(crate) user_packet_pool: bool,
    pool: PacketPoolConfig,
    modes: Vec<(RegionId, RegionMode)>,
}

impl ArenaConfig {
    /// An arena named `name` with one guard page at each end, a 4 KiB
    /// schema, 8 rings of 256 bytes, 1024 slot descriptors of 64 bytes per
    /// direction, a 4 KiB stats object, a 16 KiB flow advisory table, and a
    /// packet pool of the default [`PacketPoolConfig`] named after the arena.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        ArenaConfig {
            pool: PacketPoolConfig::new(name.clone()),
            name,
            guard_size: rustix::param::page_size(),
            schema_size: 4096,
            ring_size: 256,
            ring_count: 8,
            slot_desc_size: 64,
            slot_count: 1024,
            stats_size: 4096,
            flowadv_size: 16 * 1024,
            user_packet_pool: false,
            modes: Vec::new(),
        }
    }

    setter!(
        /// Bytes of each guard region (a page multiple; 0: no guards).
        guard_size: usize
    );
    setter!(
        /// Size of a schema object (at least 1 KiB: the arena writes its
        /// layout into the first one).
        schema_size: usize
    );
    setter!(
        /// Size of a ring object.
        ring_size: usize
    );
    setter!(
        /// Number of ring objects (0: no ring region).
        ring_count: usize
    );
    setter!(
        /// Size of a kernel slot descriptor (its user mirror has the same
        /// chunk size).
        slot_desc_size: usize
    );
    setter!(
        /// Slot descriptors per direction (0: no slot descriptor regions).
        slot_count: usize
    );
    setter!(
        /// Size of the shared stats object (0: none).
        stats_size: usize
    );
    setter!(
        /// Size of the flow advisory table (0: none).
        flowadv_size: usize
    );
    setter!(
        /// Users write their own slot descriptors (the seed's
        /// `NAF_USER_PKT_POOL`): the user slot descriptor regions are then
        /// writable, otherwise read-only.
        user_packet_pool: bool
    );
    setter!(
        /// The packet pool to build ([`build`](Self::build) and
        /// [`build_with`](Self::build_with)).
        pool: PacketPoolConfig
    );

    /// Replaces the mode the arena would give one of its own regions
    /// (not the pool's: the pool decides those). Meant for special setups
    /// and for testing the creation checks: a mode that breaks the rules is
    /// refused by `build` with an error naming the region.
    pub fn region_mode(mut self, id: RegionId, mode: RegionMode) -> Self {
        self.modes.retain(|(i, _)| *i != id);
        self.modes.push((id, mode));
        self
    }

    /// The arena's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The packet pool the arena builds for itself.
    pub(crate) fn pool_config(&self) -> &PacketPoolConfig {
        &self.pool
    }

    fn mode_of(&self, id: RegionId, default: RegionMode) -> RegionMode {
        self.modes
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(default, |&(_, m)| m)
    }

    /// Parameters of the arena's own regions, checked against the rules.
    pub(crate) fn plan(&self) -> Result<Vec<(RegionId, RegionParams)>> {
        use RegionMode as M;
        let page = rustix::param::page_size();
        if let Some((id, _)) = self.modes.iter().find(|(i, _)| i.is_pool_region()) {
            return Err(Error::Invalid {
                field: id.name(),
                reason: format!("region `{id}` belongs to the packet pool; its mode is the pool's"),
            });
        }
        if self.guard_size % page != 0 {
            return Err(Error::invalid_param(
                "guard_size",
                self.guard_size as u64,
                "must be a multiple of the page size",
            ));
        }
        if self.schema_size < wire::MAX_LAYOUT {
            return Err(Error::invalid_param(
                "schema_size",
                self.schema_size as u64,
                "the schema object holds the arena's layout (at least 1264 bytes)",
            ));
        }
        let params = |id: RegionId, size: usize, count: usize, mode: RegionMode| {
            RegionParams::new(format!("{}.{}", id.name(), self.name), size, count)
                .mode(self.mode_of(id, mode))
        };
        let mut out = Vec::new();
        let guard = M::GUARD | M::MMAPOK | M::NOREDIRECT | M::MONOLITHIC | M::NOMAGAZINES;
        if self.guard_size != 0 {
            out.push((
                RegionId::GuardHead,
                params(RegionId::GuardHead, self.guard_size, 1, guard).seg_size(self.guard_size),
            ));
        }
        out.push((
            RegionId::Schema,
            params(
                RegionId::Schema,
                self.schema_size,
                1,
                M::UREADONLY | M::MMAPOK | M::NOREDIRECT | M::NOMAGAZINES,
            ),
        ));
        if self.ring_count != 0 {
            out.push((
                RegionId::Ring,
                params(
                    RegionId::Ring,
                    self.ring_size,
                    self.ring_count,
                    M::MMAPOK | M::NOMAGAZINES,
                ),
            ));
        }
        if self.slot_count != 0 {
            let ro = if self.user_packet_pool {
                M::empty()
            } else {
                M::UREADONLY
            };
            for (k, u) in [
                (RegionId::TxaKsd, RegionId::TxaUsd),
                (RegionId::RxfKsd, RegionId::RxfUsd),
            ] {
                let kp = params(k, self.slot_desc_size, self.slot_count, M::NOMAGAZINES);
                let kl = kp
                    .configure()
                    .map_err(|e| e.rename_param("slot_desc_size"))?;
                let up = params(
                    u,
                    kl.obj_size,
                    kl.obj_count,
                    M::MMAPOK | M::NOMAGAZINES | ro,
                )
                .seg_size(kl.seg_size);
                out.push((u, up));
                out.push((k, kp));
            }
        }
        if self.stats_size != 0 {
            out.push((
                RegionId::UStats,
                params(
                    RegionId::UStats,
                    self.stats_size,
                    1,
                    M::MMAPOK | M::MONOLITHIC | M::NOMAGAZINES,
                ),
            ));
        }
        if self.flowadv_size != 0 {
            out.push((
                RegionId::FlowAdv,
                params(
                    RegionId::FlowAdv,
                    self.flowadv_size,
                    1,
                    M::MMAPOK | M::UREADONLY | M::MONOLITHIC | M::NOMAGAZINES,
                ),
            ));
        }
        if self.guard_size != 0 {
            out.push((
                RegionId::GuardTail,
                params(RegionId::GuardTail, self.guard_size, 1, guard).seg_size(self.guard_size),
            ));
        }
        for (id, p) in &out {
            id.validate(p.mode, self.user_packet_pool)?;
            p.configure()?;
        }
        Ok(out)
    }
}

pub(crate) fn memfd_name(arena: &str, what: &str) -> String {
    let mut s = format!("skmem.{arena}");
    let mut cut = 200.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push('.');
    s.push_str(what);
    s
}

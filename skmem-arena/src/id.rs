//! Region identities and the rules each region's mode must obey (the
//! seed's `skmem_region_id_t` and the assertions of
//! `skmem_arena_create_for_nexus`), and the ids of views.

use skmem_traits::{Error, RegionMode, Result};

/// Which region of an arena (the seed's `SKMEM_REGION_*` ids that a nexus
/// arena uses).
///
/// The order is the order of a user view: every region up to
/// [`GuardTail`](RegionId::GuardTail) may be mapped into another address
/// space, in this order, each at a fixed offset; the ones after it are
/// private to the arena's owner and never appear in a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(u8)]
pub enum RegionId {
    /// Inaccessible pages in front of the view.
    GuardHead = 0,
    /// The schema: a description of the arena, read-only to users.
    Schema = 1,
    /// Ring descriptors.
    Ring = 2,
    /// Default packet buffers (from the packet pool).
    BufDef = 3,
    /// Large packet buffers (from the packet pool, when configured).
    BufLarge = 4,
    /// User metadata: the mirror of the pool's kernel metadata.
    Umd = 5,
    /// User buflets: the mirror of the pool's kernel buflets (buffers on
    /// demand).
    Ubft = 6,
    /// User slot descriptors of the transmit rings (mirror of
    /// [`TxaKsd`](RegionId::TxaKsd)).
    TxaUsd = 7,
    /// User slot descriptors of the receive rings (mirror of
    /// [`RxfKsd`](RegionId::RxfKsd)).
    RxfUsd = 8,
    /// Statistics shared with users (one object).
    UStats = 9,
    /// Flow advisories, read-only to users (one object).
    FlowAdv = 10,
    /// Inaccessible pages behind the view.
    GuardTail = 11,
    /// Kernel metadata of the packet pool (private).
    Kmd = 12,
    /// Kernel buflets of the packet pool (private).
    Kbft = 13,
    /// Kernel slot descriptors of the transmit rings (private).
    TxaKsd = 14,
    /// Kernel slot descriptors of the receive rings (private).
    RxfKsd = 15,
}

/// How many region ids there are.
pub(crate) const REGION_COUNT: usize = 16;

impl RegionId {
    /// Every id, in view order (user-mappable ones first).
    pub const ALL: [RegionId; REGION_COUNT] = [
        RegionId::GuardHead,
        RegionId::Schema,
        RegionId::Ring,
        RegionId::BufDef,
        RegionId::BufLarge,
        RegionId::Umd,
        RegionId::Ubft,
        RegionId::TxaUsd,
        RegionId::RxfUsd,
        RegionId::UStats,
        RegionId::FlowAdv,
        RegionId::GuardTail,
        RegionId::Kmd,
        RegionId::Kbft,
        RegionId::TxaKsd,
        RegionId::RxfKsd,
    ];

    /// The id with this number, if any.
    pub fn from_u8(v: u8) -> Option<RegionId> {
        RegionId::ALL.get(v as usize).copied()
    }

    /// Position in [`ALL`](Self::ALL).
    #[inline]
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Short name, as the seed's `skmem_region_id2name` spells it.
    pub fn name(self) -> &'static str {
        match self {
            RegionId::GuardHead => "guard_head",
            RegionId::Schema => "schema",
            RegionId::Ring => "ring",
            RegionId::BufDef => "buf_def",
            RegionId::BufLarge => "buf_large",
            RegionId::Umd => "umd",
            RegionId::Ubft => "ubft",
            RegionId::TxaUsd => "txa_usd",
            RegionId::RxfUsd => "rxf_usd",
            RegionId::UStats => "ustats",
            RegionId::FlowAdv => "flowadv",
            RegionId::GuardTail => "guard_tail",
            RegionId::Kmd => "kmd",
            RegionId::Kbft => "kbft",
            RegionId::TxaKsd => "txa_ksd",
            RegionId::RxfKsd => "rxf_ksd",
        }
    }

    /// `true` for regions private to the arena's owner: they are never
    /// mappable and never appear in a user view.
    pub fn is_kernel_only(self) -> bool {
        self > RegionId::GuardTail
    }

    /// `true` for the regions a packet pool brings (possibly external).
    pub fn is_pool_region(self) -> bool {
        matches!(
            self,
            RegionId::BufDef
                | RegionId::BufLarge
                | RegionId::Umd
                | RegionId::Ubft
                | RegionId::Kmd
                | RegionId::Kbft
        )
    }

    /// What the mode of this region must and must not contain.
    ///
    /// `user_packet_pool`: users write their own slot descriptors (the
    /// seed's `NAF_USER_PKT_POOL`), so those are not read-only.
    pub(crate) fn rules(self, user_packet_pool: bool) -> Rules {
        use RegionMode as M;
        let (must, must_not) = match self {
            // Never readable or writable, always mapped (so the view is
            // fenced), never replaced.
            RegionId::GuardHead | RegionId::GuardTail => {
                (M::GUARD | M::MMAPOK | M::NOREDIRECT, M::SHAREOK)
            }
            // Read-only to users, and kept across redirect and defunct.
            RegionId::Schema => (
                M::UREADONLY | M::MMAPOK | M::NOREDIRECT,
                M::SHAREOK | M::GUARD,
            ),
            RegionId::Ring | RegionId::Umd | RegionId::Ubft | RegionId::UStats => {
                (M::MMAPOK, M::SHAREOK | M::NOREDIRECT | M::GUARD)
            }
            // The seed also asks for SHAREOK here (one pool, several
            // arenas); `PacketPool` does not set it, so it is not required.
            RegionId::BufDef | RegionId::BufLarge => (M::MMAPOK, M::NOREDIRECT | M::GUARD),
            RegionId::TxaUsd | RegionId::RxfUsd => {
                if user_packet_pool {
                    (
                        M::MMAPOK,
                        M::UREADONLY | M::SHAREOK | M::NOREDIRECT | M::GUARD,
                    )
                } else {
                    (
                        M::MMAPOK | M::UREADONLY,
                        M::SHAREOK | M::NOREDIRECT | M::GUARD,
                    )
                }
            }
            RegionId::FlowAdv => (
                M::MMAPOK | M::UREADONLY | M::MONOLITHIC,
                M::SHAREOK | M::NOREDIRECT | M::GUARD,
            ),
            RegionId::Kmd | RegionId::Kbft | RegionId::TxaKsd | RegionId::RxfKsd => (
                M::empty(),
                M::MMAPOK | M::SHAREOK | M::GUARD | M::NOREDIRECT,
            ),
        };
        let must = if self == RegionId::UStats {
            must | M::MONOLITHIC
        } else {
            must
        };
        Rules { must, must_not }
    }

    /// Checks `mode` against [`rules`](Self::rules); the error names the
    /// region and the first flag that is wrong.
    pub(crate) fn validate(self, mode: RegionMode, user_packet_pool: bool) -> Result<()> {
        let rules = self.rules(user_packet_pool);
        let missing = rules.must - mode;
        if let Some((flag, _)) = missing.iter_names().next() {
            return Err(Error::Invalid {
                field: self.name(),
                reason: format!(
                    "region `{}` must be {flag} ({}); its mode is {mode:?}",
                    self.name(),
                    explain(flag, true)
                ),
            });
        }
        let extra = mode & rules.must_not;
        if let Some((flag, _)) = extra.iter_names().next() {
            return Err(Error::Invalid {
                field: self.name(),
                reason: format!(
                    "region `{}` must not be {flag} ({}); its mode is {mode:?}",
                    self.name(),
                    explain(flag, false)
                ),
            });
        }
        Ok(())
    }
}

impl core::fmt::Display for RegionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Flags a region's mode must have and must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    pub(crate) must: RegionMode,
    pub(crate) must_not: RegionMode,
}

fn explain(flag: &str, must: bool) -> &'static str {
    match (flag, must) {
        ("UREADONLY", true) => "users may only read it",
        ("UREADONLY", false) => "users write it",
        ("MMAPOK", true) => "it is part of every user view",
        ("MMAPOK", false) => "it is private to the arena's owner",
        ("SHAREOK", false) => "it belongs to this arena alone",
        ("NOREDIRECT", true) => "it must stay in place when a view is redirected",
        ("NOREDIRECT", false) => {
            "it is replaced by zero pages on redirect and torn down on defunct"
        }
        ("GUARD", true) => "it fences the view and is never accessible",
        ("GUARD", false) => "it holds data",
        ("MONOLITHIC", true) => "it holds one object, allocated straight from the region",
        _ => "required by the arena",
    }
}

/// Identifies a view of an arena (local or remote).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ViewId(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_order() {
        for (i, id) in RegionId::ALL.iter().enumerate() {
            assert_eq!(id.index(), i);
            assert_eq!(RegionId::from_u8(i as u8), Some(*id));
        }
        assert_eq!(RegionId::from_u8(REGION_COUNT as u8), None);
        assert!(!RegionId::GuardTail.is_kernel_only());
        assert!(RegionId::Kmd.is_kernel_only());
    }

    #[test]
    fn validation_names_region_and_flag() {
        let err = RegionId::Schema
            .validate(RegionMode::MMAPOK | RegionMode::NOREDIRECT, false)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("schema") && text.contains("UREADONLY"),
            "{text}"
        );
        let err = RegionId::Kmd
            .validate(RegionMode::MMAPOK, false)
            .unwrap_err();
        assert!(err.to_string().contains("must not be MMAPOK"), "{err}");
        RegionId::TxaUsd.validate(RegionMode::MMAPOK, true).unwrap();
        assert!(RegionId::TxaUsd
            .validate(RegionMode::MMAPOK, false)
            .is_err());
    }
}

//! An allocator of I/O virtual address ranges.
//!
//! A device behind an IOMMU sees memory through *I/O virtual addresses*
//! (IOVAs). Whoever maps memory for the device picks those addresses, and
//! must never hand the same IOVA to two mappings at once. [`IovaAllocator`]
//! keeps that bookkeeping for one IOVA space (one VFIO container).
//!
//! It is a first-fit allocator over a sorted set of free extents:
//!
//! * **alloc** walks the free extents in address order and takes the first
//!   one that holds `len` bytes at the requested alignment, splitting off
//!   what is left on either side;
//! * **free** returns a range and merges it with free neighbours, so a
//!   range given back is found again by the next allocation of its size
//!   (freed IOVAs are reused, lowest address first), and freeing everything
//!   leaves one extent covering the whole space;
//! * **reserve** carves a fixed range out of the free space (holes an IOMMU
//!   cannot translate, such as the x86 MSI window).
//!
//! Allocation is a slow path (once per segment), so a linear walk is fine.
//!
//! # Invariants
//!
//! * Free extents and live allocations are disjoint, lie inside the space,
//!   and start and end on multiples of the granule.
//! * No two free extents touch (they are merged on free).
//! * Every live allocation is recorded with its exact length; `free` accepts
//!   only a range that is exactly a live allocation, so a double free or a
//!   free of a range never handed out is an error, not corruption.

use std::collections::BTreeMap;
use std::ops::Range;

use skmem_traits::{Error, Result};

/// Hands out non-overlapping, aligned ranges of one I/O virtual address
/// space. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct IovaAllocator {
    space: Range<u64>,
    granule: u64,
    /// Free extents: start → end (exclusive).
    free: BTreeMap<u64, u64>,
    /// Live allocations and reservations: start → length.
    live: BTreeMap<u64, u64>,
    allocated: u64,
}

impl IovaAllocator {
    /// An allocator over `space` whose ranges start and end on multiples of
    /// `granule` (the IOMMU page size: a power of two). `space` must be
    /// non-empty and granule-aligned at both ends.
    pub fn new(space: Range<u64>, granule: u64) -> Result<Self> {
        if !granule.is_power_of_two() {
            return Err(Error::invalid_param(
                "granule",
                granule,
                "must be a power of two",
            ));
        }
        if space.start >= space.end {
            return Err(Error::invalid_param(
                "space.end",
                space.end,
                "the IOVA space must be non-empty (start < end)",
            ));
        }
        if space.start % granule != 0 {
            return Err(Error::invalid_param(
                "space.start",
                space.start,
                "must be a multiple of the granule",
            ));
        }
        if space.end % granule != 0 {
            return Err(Error::invalid_param(
                "space.end",
                space.end,
                "must be a multiple of the granule",
            ));
        }
        let mut free = BTreeMap::new();
        free.insert(space.start, space.end);
        Ok(IovaAllocator {
            space,
            granule,
            free,
            live: BTreeMap::new(),
            allocated: 0,
        })
    }

    /// The whole space this allocator manages.
    pub fn space(&self) -> Range<u64> {
        self.space.clone()
    }

    /// The granule every range is rounded to.
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// Bytes currently allocated or reserved.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated
    }

    /// Bytes still free (possibly fragmented).
    pub fn free_bytes(&self) -> u64 {
        (self.space.end - self.space.start) - self.allocated
    }

    /// Number of free extents (1 when nothing is allocated).
    pub fn free_extents(&self) -> usize {
        self.free.len()
    }

    /// Live allocations and reservations as `(start, len)`, in address order.
    pub fn allocations(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.live.iter().map(|(&s, &l)| (s, l))
    }

    /// The range rounded up to the granule, or `None` for zero or overflow.
    fn round_len(&self, len: u64) -> Option<u64> {
        if len == 0 {
            return None;
        }
        len.checked_add(self.granule - 1)
            .map(|l| l & !(self.granule - 1))
    }

    /// Allocates `len` bytes (rounded up to the granule) at an address
    /// aligned to `align` (a power of two; at least the granule is used).
    /// Returns the start, or `None` when no free extent is large enough (or
    /// `len` is zero, or `align` is not a power of two).
    pub fn alloc(&mut self, len: u64, align: u64) -> Option<u64> {
        let len = self.round_len(len)?;
        if !align.is_power_of_two() {
            return None;
        }
        let align = align.max(self.granule);
        let (ext_start, ext_end, start) = self.free.iter().find_map(|(&s, &e)| {
            let a = s.checked_add(align - 1)? & !(align - 1);
            let end = a.checked_add(len)?;
            (end <= e).then_some((s, e, a))
        })?;
        self.free.remove(&ext_start);
        if start > ext_start {
            self.free.insert(ext_start, start);
        }
        if start + len < ext_end {
            self.free.insert(start + len, ext_end);
        }
        self.live.insert(start, len);
        self.allocated += len;
        Some(start)
    }

    /// Takes the fixed range `[start, start + len)` (rounded out to the
    /// granule) out of the free space, so `alloc` never returns it. Fails,
    /// changing nothing, when any part of it is outside the space or not
    /// free.
    pub fn reserve(&mut self, start: u64, len: u64) -> Result<()> {
        let lo = start & !(self.granule - 1);
        let hi = start
            .checked_add(len)
            .and_then(|e| e.checked_add(self.granule - 1))
            .map(|e| e & !(self.granule - 1))
            .filter(|&hi| len != 0 && hi > lo)
            .ok_or(Error::invalid_param(
                "len",
                len,
                "reservation is empty or overflows",
            ))?;
        // The whole range must sit inside one free extent.
        let (ext_start, ext_end) = self
            .free
            .range(..=lo)
            .next_back()
            .map(|(&s, &e)| (s, e))
            .filter(|&(_, e)| e >= hi)
            .ok_or_else(|| Error::Invalid {
                field: "iova",
                reason: format!("cannot reserve {lo:#x}..{hi:#x}: not entirely free"),
            })?;
        self.free.remove(&ext_start);
        if lo > ext_start {
            self.free.insert(ext_start, lo);
        }
        if hi < ext_end {
            self.free.insert(hi, ext_end);
        }
        self.live.insert(lo, hi - lo);
        self.allocated += hi - lo;
        Ok(())
    }

    /// Gives back a range returned by [`alloc`](Self::alloc) (or taken by
    /// [`reserve`](Self::reserve)); `len` is the length that was asked for.
    /// A range that is not exactly a live allocation is refused, changing
    /// nothing.
    pub fn free(&mut self, start: u64, len: u64) -> Result<()> {
        let rounded = self.round_len(len);
        match (self.live.get(&start), rounded) {
            (Some(&live_len), Some(r)) if live_len == r => {}
            _ => {
                return Err(Error::Invalid {
                    field: "iova",
                    reason: format!(
                        "{start:#x} (+{len:#x}) is not a live IOVA allocation (double free?)"
                    ),
                })
            }
        }
        let len = rounded.unwrap_or(0);
        self.live.remove(&start);
        self.allocated -= len;
        let mut lo = start;
        let mut hi = start + len;
        if let Some((&ps, &pe)) = self.free.range(..start).next_back() {
            debug_assert!(pe <= start, "free extent overlaps a live allocation");
            if pe == start {
                self.free.remove(&ps);
                lo = ps;
            }
        }
        if let Some(ne) = self.free.remove(&hi) {
            hi = ne;
        }
        self.free.insert(lo, hi);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const G: u64 = 4096;

    #[test]
    fn first_fit_is_aligned_and_reuses_freed_ranges() {
        let mut a = IovaAllocator::new(0x1_0000_0000..0x1_0100_0000, G).unwrap();
        let x = a.alloc(3 * G, G).unwrap();
        let y = a.alloc(2 << 20, 2 << 20).unwrap();
        assert_eq!(x, 0x1_0000_0000);
        assert_eq!(y % (2 << 20), 0);
        assert!(y >= x + 3 * G);
        // The gap left by aligning `y` is still usable.
        let z = a.alloc(G, G).unwrap();
        assert_eq!(z, x + 3 * G);
        a.free(x, 3 * G).unwrap();
        assert_eq!(a.alloc(3 * G, G), Some(x), "freed range is reused first");
        assert_eq!(
            a.alloc(1, G),
            Some(x + 4 * G),
            "length rounds to the granule"
        );
    }

    #[test]
    fn exhaustion_and_bad_frees_are_reported() {
        let mut a = IovaAllocator::new(0..4 * G, G).unwrap();
        let x = a.alloc(4 * G, G).unwrap();
        assert_eq!(a.alloc(G, G), None);
        assert_eq!(a.free_bytes(), 0);
        assert!(a.free(x + G, G).is_err(), "interior of an allocation");
        assert!(a.free(x, 2 * G).is_err(), "wrong length");
        a.free(x, 4 * G).unwrap();
        assert!(a.free(x, 4 * G).is_err(), "double free");
        assert_eq!(a.free_extents(), 1);
        assert_eq!(a.alloc(0, G), None);
        assert_eq!(a.alloc(G, 3 * G), None, "alignment not a power of two");
    }

    #[test]
    fn reserve_carves_holes() {
        let mut a = IovaAllocator::new(0..16 * G, G).unwrap();
        a.reserve(4 * G, 4 * G).unwrap();
        assert!(a.reserve(6 * G, G).is_err(), "already reserved");
        assert_eq!(a.alloc(8 * G, G), Some(8 * G), "skips the hole");
        assert_eq!(a.alloc(4 * G, G), Some(0));
        assert_eq!(a.alloc(G, G), None);
    }

    #[test]
    fn bad_construction_is_refused_by_name() {
        let e = IovaAllocator::new(0..G, 3000).unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidParam {
                param: "granule",
                ..
            }
        ));
        let e = IovaAllocator::new(G..G, G).unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidParam {
                param: "space.end",
                ..
            }
        ));
        let e = IovaAllocator::new(1..G, G).unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidParam {
                param: "space.start",
                ..
            }
        ));
    }

    #[cfg(not(miri))]
    proptest! {
        #[test]
        fn random_alloc_free_never_overlaps(ops in proptest::collection::vec((1u64..40, 0u32..4, any::<bool>()), 1..200)) {
            let space = 0x4000_0000u64..0x4000_0000 + 256 * G;
            let mut a = IovaAllocator::new(space.clone(), G).unwrap();
            let mut live: Vec<(u64, u64)> = Vec::new();
            for (pages, align_shift, free_one) in ops {
                if free_one && !live.is_empty() {
                    let (s, l) = live.swap_remove(pages as usize % live.len());
                    a.free(s, l).unwrap();
                    continue;
                }
                let align = G << align_shift;
                if let Some(s) = a.alloc(pages * G, align) {
                    prop_assert_eq!(s % align, 0);
                    prop_assert!(s >= space.start && s + pages * G <= space.end);
                    for &(o, ol) in &live {
                        prop_assert!(s + pages * G <= o || o + ol <= s, "overlap");
                    }
                    live.push((s, pages * G));
                }
                let used: u64 = live.iter().map(|&(_, l)| l).sum();
                prop_assert_eq!(a.allocated_bytes(), used);
            }
            for (s, l) in live {
                a.free(s, l).unwrap();
            }
            prop_assert_eq!(a.free_extents(), 1);
            prop_assert_eq!(a.free_bytes(), space.end - space.start);
        }
    }
}

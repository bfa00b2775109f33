//! Checks of a [`SegmentGeometry`] that every backend makes.
//!
//! Each backend adds its own rules (page multiples, hugepage bounds, mode
//! restrictions) after these; this module holds only the ones they share,
//! so the error a caller gets for the same mistake is the same everywhere.

use skmem_traits::{Error, Result, SegmentGeometry};

/// Checks that `geometry` has a non-zero segment size, a power-of-two
/// alignment, and a span (`seg_size * seg_count`) that fits the address
/// space, in that order; returns the span length.
pub(crate) fn check_common(geometry: &SegmentGeometry) -> Result<usize> {
    if geometry.seg_size == 0 {
        return Err(Error::invalid_param("seg_size", 0, "must be non-zero"));
    }
    if !geometry.align.is_power_of_two() {
        return Err(Error::invalid_param(
            "align",
            geometry.align as u64,
            "must be a power of two",
        ));
    }
    geometry.span_len()
}

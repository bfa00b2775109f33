//! Shadow regions driven segment for segment by a master region.

use core::ptr::NonNull;

use crate::{AllocFlags, Result};

/// A shadow that a master region drives: when the master allocates segment
/// `i`, it allocates segment `i` of the shadow too, and frees both together
/// (the seed's kernel/user metadata pairs, kmd/umd and kbft/ubft).
///
/// The shadow's segments have the master's segment size, so the shadow of
/// the object at offset `o` of master segment `i` is at offset `o` of shadow
/// segment `i`.
///
/// `'static` because a region lists itself, with its mirror, in the
/// process [`registry`](crate::registry) (which holds `'static` objects).
///
/// # Safety
///
/// * `alloc_segment(i)` returns the base of `segment_size()` bytes that stay
///   valid until `free_segment(i, base)`;
/// * it never returns the same live memory twice, and segment `i` is not
///   handed out by the shadow to anyone but this master while it is live.
pub unsafe trait Mirror: Send + Sync + 'static {
    /// `false` for [`NoMirror`]: the master skips all shadow bookkeeping.
    const ACTIVE: bool = true;

    /// Size of one shadow segment; must equal the master's.
    fn segment_size(&self) -> usize;

    /// Number of segments the shadow can hold; must be at least the master's.
    fn segment_count(&self) -> u32;

    /// Allocates shadow segment `index`.
    fn alloc_segment(&self, index: u32, flags: AllocFlags) -> Result<NonNull<u8>>;

    /// Frees shadow segment `index`.
    ///
    /// # Safety
    ///
    /// `base` came from `alloc_segment(index)` and is not used afterwards.
    unsafe fn free_segment(&self, index: u32, base: NonNull<u8>);
}

/// The zero-sized mirror of regions that have no shadow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoMirror;

// SAFETY: `NoMirror` never hands out memory: `alloc_segment` always fails.
unsafe impl Mirror for NoMirror {
    const ACTIVE: bool = false;

    fn segment_size(&self) -> usize {
        0
    }

    fn segment_count(&self) -> u32 {
        0
    }

    fn alloc_segment(&self, index: u32, _: AllocFlags) -> Result<NonNull<u8>> {
        Err(crate::Error::invalid_param(
            "mirror",
            index as u64,
            "NoMirror has no shadow segments",
        ))
    }

    unsafe fn free_segment(&self, _: u32, _: NonNull<u8>) {
        unreachable!("NoMirror never allocates a segment to free")
    }
}

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
/// Whether a region is mirrored can be fixed by the type ([`NoMirror`]:
/// never; a shadow region: always) or decided at run time with
/// `Option<M>`: `None` is an unmirrored region of the same type as the
/// mirrored ones, so one cache type serves both (a packet pool that is
/// kernel-only or shared with a user process). Only segment creation and
/// teardown ask; the object paths never do.
///
/// # Safety
///
/// * `alloc_segment(i)` returns the base of `segment_size()` bytes that stay
///   valid until `free_segment(i, base)`;
/// * it never returns the same live memory twice, and segment `i` is not
///   handed out by the shadow to anyone but this master while it is live;
/// * `is_active` returns the same answer for the mirror's whole life, and
///   `false` whenever `ACTIVE` is `false`.
pub unsafe trait Mirror: Send + Sync + 'static {
    /// `false` for [`NoMirror`]: the master skips all shadow bookkeeping
    /// (decided at compile time).
    const ACTIVE: bool = true;

    /// Whether this mirror has a shadow: the master allocates and frees
    /// shadow segments only when `true`. Defaults to [`ACTIVE`](Self::ACTIVE).
    #[inline]
    fn is_active(&self) -> bool {
        Self::ACTIVE
    }

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

// SAFETY: `Some(m)` forwards every call to `m`, which keeps `M`'s contract;
// `None` is inactive (`is_active` is `false` for its whole life, as an
// `Option` held by a region is never reassigned) and never hands out
// memory: `alloc_segment` fails and the master, seeing it inactive, never
// calls `free_segment`.
unsafe impl<M: Mirror> Mirror for Option<M> {
    const ACTIVE: bool = M::ACTIVE;

    #[inline]
    fn is_active(&self) -> bool {
        self.as_ref().is_some_and(M::is_active)
    }

    fn segment_size(&self) -> usize {
        self.as_ref().map_or(0, M::segment_size)
    }

    fn segment_count(&self) -> u32 {
        self.as_ref().map_or(0, M::segment_count)
    }

    fn alloc_segment(&self, index: u32, flags: AllocFlags) -> Result<NonNull<u8>> {
        match self {
            Some(m) => m.alloc_segment(index, flags),
            None => NoMirror.alloc_segment(index, flags),
        }
    }

    unsafe fn free_segment(&self, index: u32, base: NonNull<u8>) {
        match self {
            // SAFETY: the caller's contract, passed on to `m`, which
            // handed out `base` (a `None` mirror hands out nothing).
            Some(m) => unsafe { m.free_segment(index, base) },
            None => unreachable!("an absent mirror never allocates a segment to free"),
        }
    }
}

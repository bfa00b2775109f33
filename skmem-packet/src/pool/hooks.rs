//! Buffer segment hooks: a segment source that tells the pool's owner when
//! a buffer segment is created or discarded (the seed's
//! `pp_buf_seg_ctor` / `pp_buf_seg_dtor`, where a driver maps the segment
//! for DMA).
//!
//! [`Hooked`] wraps any [`SegmentSource`] and delegates everything to it,
//! calling the hooks right after a segment is created and right before it
//! is discarded. Regions need no hook point of their own.

use core::ptr::NonNull;
use std::sync::Arc;

use skmem_traits::{
    Capabilities, Protection, Result, SegmentGeometry, SegmentSource, SharedBacking,
};

/// Which buffer region a segment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum BufferKind {
    /// The default buffer region.
    #[default]
    Default,
    /// The large buffer region.
    Large,
}

/// One buffer segment, as the hooks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentEvent {
    /// Which buffer region.
    pub kind: BufferKind,
    /// Segment index in the region.
    pub index: u32,
    /// First byte of the segment.
    pub base: NonNull<u8>,
    /// Segment size in bytes.
    pub size: usize,
    /// Device address of the first byte, when the source maps for DMA.
    pub iova: Option<u64>,
}

// SAFETY: a description (addresses and numbers); it grants no access.
unsafe impl Send for SegmentEvent {}
// SAFETY: as above.
unsafe impl Sync for SegmentEvent {}

/// Told about buffer segments as they come and go.
///
/// Hooks run on the allocating (or freeing) thread, with no pool lock held
/// but inside the region's segment creation: keep them short, and do not
/// allocate from the same pool in them.
pub trait BufferSegmentHooks: Send + Sync {
    /// A buffer segment was created; its memory is usable.
    fn created(&self, event: &SegmentEvent);
    /// A buffer segment is about to be discarded; stop using it.
    fn discarded(&self, event: &SegmentEvent);
}

/// Options of a [`Hooked`] source: the inner source's and the hooks.
pub struct HookedConfig<S: SegmentSource> {
    /// The wrapped source's configuration.
    pub inner: S::Config,
    /// The hooks (none: plain delegation).
    pub hooks: Option<Arc<dyn BufferSegmentHooks>>,
    /// Which buffer region this source serves.
    pub kind: BufferKind,
}

impl<S: SegmentSource> Clone for HookedConfig<S> {
    fn clone(&self) -> Self {
        HookedConfig {
            inner: self.inner.clone(),
            hooks: self.hooks.clone(),
            kind: self.kind,
        }
    }
}

impl<S: SegmentSource> Default for HookedConfig<S> {
    fn default() -> Self {
        HookedConfig {
            inner: S::Config::default(),
            hooks: None,
            kind: BufferKind::Default,
        }
    }
}

/// A segment source that delegates to `S` and calls
/// [`BufferSegmentHooks`].
pub struct Hooked<S: SegmentSource> {
    inner: S,
    hooks: Option<Arc<dyn BufferSegmentHooks>>,
    kind: BufferKind,
}

impl<S: SegmentSource> core::fmt::Debug for Hooked<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hooked")
            .field("source", &S::NAME)
            .field("kind", &self.kind)
            .field("hooks", &self.hooks.is_some())
            .finish()
    }
}

impl<S: SegmentSource> Hooked<S> {
    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn event(&self, index: u32, base: NonNull<u8>) -> SegmentEvent {
        SegmentEvent {
            kind: self.kind,
            index,
            base,
            size: self.inner.geometry().seg_size,
            iova: self.inner.iova(base.as_ptr()),
        }
    }
}

// SAFETY: every obligation is the inner source's: `create`, `discard`,
// `span`, `iova` and `shared_backing` return exactly what it returns; the
// hooks only observe addresses.
unsafe impl<S: SegmentSource> SegmentSource for Hooked<S> {
    type Config = HookedConfig<S>;
    const NAME: &'static str = S::NAME;

    fn open(geometry: &SegmentGeometry, config: &Self::Config) -> Result<Self> {
        Ok(Hooked {
            inner: S::open(geometry, &config.inner)?,
            hooks: config.hooks.clone(),
            kind: config.kind,
        })
    }

    fn geometry(&self) -> &SegmentGeometry {
        self.inner.geometry()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    #[inline]
    fn span(&self) -> Option<NonNull<u8>> {
        self.inner.span()
    }

    unsafe fn create(&self, index: u32) -> Result<NonNull<u8>> {
        // SAFETY: forwarded from the caller.
        let base = unsafe { self.inner.create(index) }?;
        if let Some(h) = &self.hooks {
            h.created(&self.event(index, base));
        }
        Ok(base)
    }

    unsafe fn discard(&self, index: u32, base: NonNull<u8>) {
        if let Some(h) = &self.hooks {
            h.discarded(&self.event(index, base));
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.inner.discard(index, base) }
    }

    fn is_wired(&self, index: u32) -> bool {
        self.inner.is_wired(index)
    }

    unsafe fn wire(&self, index: u32, base: NonNull<u8>) -> Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe { self.inner.wire(index, base) }
    }

    unsafe fn unwire(&self, index: u32, base: NonNull<u8>) -> Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe { self.inner.unwire(index, base) }
    }

    unsafe fn purge(&self, index: u32, base: NonNull<u8>) -> Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe { self.inner.purge(index, base) }
    }

    unsafe fn protect(&self, index: u32, base: NonNull<u8>, prot: Protection) -> Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe { self.inner.protect(index, base, prot) }
    }

    #[inline]
    fn iova(&self, addr: *const u8) -> Option<u64> {
        self.inner.iova(addr)
    }

    fn shared_backing(&self, index: u32) -> Option<SharedBacking> {
        self.inner.shared_backing(index)
    }
}

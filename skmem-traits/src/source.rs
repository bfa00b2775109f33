//! Where segment memory comes from.

use core::ptr::NonNull;

use crate::{Error, RegionMode, Result};

/// The shape of the segments a region will ask a source for. Fixed when the
/// region is created; every segment of a region has the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentGeometry {
    /// Size of one segment in bytes (a multiple of the page size unless the
    /// region is [`RegionMode::PSEUDO`]).
    pub seg_size: usize,
    /// How many segments the region may have at once; indices are
    /// `0..seg_count`.
    pub seg_count: u32,
    /// Alignment every segment's base address must have (a power of two).
    pub align: usize,
    /// The region's mode flags (guard, read-only, persistent, ...).
    pub mode: RegionMode,
}

impl SegmentGeometry {
    /// Total bytes of the region's span: `seg_size * seg_count`, or an error
    /// naming the overflow.
    pub fn span_len(&self) -> Result<usize> {
        self.seg_size
            .checked_mul(self.seg_count as usize)
            .ok_or(Error::invalid_param(
                "seg_count",
                self.seg_count as u64,
                "seg_size * seg_count overflows the address space",
            ))
    }

    /// The checks every segment source makes first: a non-zero segment
    /// size, a power-of-two alignment, and a span (`seg_size * seg_count`)
    /// that fits the address space, in that order; returns the span length.
    /// Sources add their own rules after these, so the error for the same
    /// mistake is the same from every source.
    pub fn check_common(&self) -> Result<usize> {
        if self.seg_size == 0 {
            return Err(Error::invalid_param("seg_size", 0, "must be non-zero"));
        }
        if !self.align.is_power_of_two() {
            return Err(Error::invalid_param(
                "align",
                self.align as u64,
                "must be a power of two",
            ));
        }
        self.span_len()
    }
}

/// Access rights for a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protection {
    /// Readable and writable.
    ReadWrite,
    /// Readable only.
    ReadOnly,
    /// No access (guard pages, discarded segments).
    None,
}

bitflags::bitflags! {
    /// What a segment source can do beyond create and discard.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Capabilities: u32 {
        /// Segments live in one contiguous span: segment `i` starts at
        /// `span + i * seg_size`, so addresses map to segments by arithmetic.
        const CONTIGUOUS = 1 << 0;
        /// `wire`/`unwire` lock and unlock pages in memory.
        const WIRE       = 1 << 1;
        /// `purge` gives a segment's pages back to the system.
        const PURGE      = 1 << 2;
        /// `protect` changes access rights.
        const PROTECT    = 1 << 3;
        /// `iova` returns device addresses.
        const IOVA       = 1 << 4;
        /// `shared_backing` returns a file descriptor another process can map.
        const SHARE      = 1 << 5;
        /// Segments are physically contiguous.
        const PHYS_CONTIG = 1 << 6;
    }
}

/// A file descriptor and offset through which a segment (or a whole span)
/// can be mapped again, in this process or another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedBacking {
    /// The raw descriptor, owned by the source and valid while it lives.
    pub fd: i32,
    /// Offset of the first byte in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: usize,
}

/// Supplies the memory a region carves into segments.
///
/// A source is opened once per region with the region's
/// [`SegmentGeometry`]; the region then creates and discards segments by
/// index. Every layer above trusts what a source returns, hence `unsafe`.
///
/// # Safety
///
/// An implementation must guarantee, for the geometry it was opened with:
///
/// * `create(i)` returns the base of `seg_size` bytes aligned to `align`,
///   readable and (unless the region is read-only) writable, that overlap no
///   other live segment of this source nor any other allocation;
/// * that memory stays valid, at the same address, until `discard(i, base)`
///   is called for it or the source is dropped;
/// * when [`Capabilities::CONTIGUOUS`] is reported, [`span`](Self::span)
///   returns `Some(base)` and segment `i` is always created at
///   `base + i * seg_size`;
/// * `iova` and `shared_backing`, when they return a value, describe the
///   same bytes as the segment's virtual addresses;
/// * the source is safe to use from several threads (`Send + Sync`); calls
///   for distinct indices may run concurrently.
pub unsafe trait SegmentSource: Send + Sync + Sized + 'static {
    /// Options a user passes when building a region on this source.
    type Config: Clone + Send + Sync + Default;

    /// Short name of the backend ("heap", "mmap", ...), used in errors.
    const NAME: &'static str;

    /// Opens a source for a region of the given geometry. Sources that
    /// reserve a span do it here, so that a failed reservation fails region
    /// creation rather than the first allocation.
    fn open(geometry: &SegmentGeometry, config: &Self::Config) -> Result<Self>;

    /// The geometry this source was opened with.
    fn geometry(&self) -> &SegmentGeometry;

    /// What this source can do beyond create and discard.
    fn capabilities(&self) -> Capabilities;

    /// Base of the contiguous span, when [`Capabilities::CONTIGUOUS`].
    #[inline]
    fn span(&self) -> Option<NonNull<u8>> {
        None
    }

    /// Makes segment `index` usable and returns its base address.
    ///
    /// # Safety
    ///
    /// `index < seg_count`, and segment `index` is not live (never created,
    /// or discarded since).
    unsafe fn create(&self, index: u32) -> Result<NonNull<u8>>;

    /// Releases segment `index`, created at `base`.
    ///
    /// # Safety
    ///
    /// `base` was returned by `create(index)` on this source and not
    /// discarded since, and nothing will access the segment again.
    unsafe fn discard(&self, index: u32, base: NonNull<u8>);

    /// Locks the segment's pages in memory.
    ///
    /// # Safety
    ///
    /// Segment `index` is live at `base`.
    unsafe fn wire(&self, index: u32, base: NonNull<u8>) -> Result<()> {
        let _ = (index, base);
        Err(self.unsupported("wire"))
    }

    /// `true` while live segment `index` is locked in memory, whether by
    /// [`wire`](Self::wire) or because the source locks what it creates
    /// (persistent segments, pinned DMA memory). This reports what the
    /// source actually did, not what it could do: a region's wired-memory
    /// accounting is the sum of it over its live segments. Sources that
    /// never lock memory keep the default, `false`.
    fn is_wired(&self, index: u32) -> bool {
        let _ = index;
        false
    }

    /// Undoes [`wire`](Self::wire).
    ///
    /// # Safety
    ///
    /// Segment `index` is live at `base`.
    unsafe fn unwire(&self, index: u32, base: NonNull<u8>) -> Result<()> {
        let _ = (index, base);
        Err(self.unsupported("unwire"))
    }

    /// Gives the segment's pages back to the system; its contents read as
    /// zero afterwards. The segment stays live.
    ///
    /// # Safety
    ///
    /// Segment `index` is live at `base` and holds nothing anyone needs.
    unsafe fn purge(&self, index: u32, base: NonNull<u8>) -> Result<()> {
        let _ = (index, base);
        Err(self.unsupported("purge"))
    }

    /// Changes the access rights of a live segment.
    ///
    /// # Safety
    ///
    /// Segment `index` is live at `base`, and no thread relies on rights
    /// being removed by this call.
    unsafe fn protect(&self, index: u32, base: NonNull<u8>, prot: Protection) -> Result<()> {
        let _ = (index, base, prot);
        Err(self.unsupported("protect"))
    }

    /// The device (I/O virtual) address of `addr`, when the source maps
    /// segments for DMA and `addr` lies in a live segment.
    #[inline]
    fn iova(&self, addr: *const u8) -> Option<u64> {
        let _ = addr;
        None
    }

    /// A descriptor through which segment `index` can be mapped again.
    fn shared_backing(&self, index: u32) -> Option<SharedBacking> {
        let _ = index;
        None
    }

    /// The error a source returns for an operation it lacks.
    #[doc(hidden)]
    fn unsupported(&self, operation: &'static str) -> Error {
        Error::Unsupported {
            source_name: Self::NAME,
            operation,
        }
    }
}

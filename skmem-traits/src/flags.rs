//! Allocation behaviour and region mode flags.

/// What an allocation may do when the memory beneath it has run out.
///
/// The seed's three behaviours (`SKMEM_SLEEP`, `SKMEM_NOSLEEP`,
/// `SKMEM_SLEEP | SKMEM_FAILOK`) and a bounded sleep. In every case the
/// layers first ask the caches above an exhausted region to give cached
/// objects back.
///
/// | flag | waits for another thread's free | retries a failing source |
/// |------|---------------------------------|--------------------------|
/// | [`Sleep`](Self::Sleep) | yes, with no limit | yes |
/// | [`SleepFor(d)`](Self::SleepFor) | up to `d`, then [`Exhausted`](crate::Error::Exhausted) | yes |
/// | [`FailOk`](Self::FailOk) | no: [`Exhausted`](crate::Error::Exhausted) | yes |
/// | [`NoSleep`](Self::NoSleep) | no: [`Exhausted`](crate::Error::Exhausted) | no |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum AllocFlags {
    /// May block: when the region is exhausted, wait until a segment (or,
    /// in a slab cache, an object) is freed. Transient failures of the
    /// segment source are retried.
    ///
    /// **This can wait forever**: if every object is held by a thread that
    /// is itself waiting (or by nobody who will ever free it), the call
    /// never returns. Use [`SleepFor`](Self::SleepFor) to bound the wait.
    #[default]
    Sleep,
    /// [`Sleep`](Self::Sleep) with a limit: wait at most this long, in all,
    /// for memory to be freed, then fail with
    /// [`Error::Exhausted`](crate::Error::Exhausted). The limit bounds the
    /// waiting for other threads' frees; a source's transient failures are
    /// retried as with `Sleep` (a few milliseconds at most).
    SleepFor(core::time::Duration),
    /// Never blocks: fail at once when nothing is free or the source fails.
    NoSleep,
    /// May block for the source (retries) but would rather fail than wait
    /// for another thread to free a segment.
    FailOk,
}

impl AllocFlags {
    /// `true` when the caller may be put to sleep until memory is freed.
    #[inline]
    pub fn may_wait_for_free(self) -> bool {
        matches!(self, AllocFlags::Sleep | AllocFlags::SleepFor(_))
    }

    /// How long the caller may wait for memory to be freed: `None` when
    /// there is no limit ([`Sleep`](Self::Sleep)) or no waiting at all (see
    /// [`may_wait_for_free`](Self::may_wait_for_free)).
    #[inline]
    pub fn wait_limit(self) -> Option<core::time::Duration> {
        match self {
            AllocFlags::SleepFor(limit) => Some(limit),
            _ => None,
        }
    }

    /// `true` when the caller may be delayed to retry a failing source.
    #[inline]
    pub fn may_retry_source(self) -> bool {
        !matches!(self, AllocFlags::NoSleep)
    }
}

bitflags::bitflags! {
    /// How a region behaves (the seed's `SKMEM_REGION_CR_*` flags).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
    pub struct RegionMode: u32 {
        /// Segments are populated and wired (locked) when created and stay so.
        const PERSISTENT    = 1 << 0;
        /// The region is one segment holding every object.
        const MONOLITHIC    = 1 << 1;
        /// The region is a guard: its span is never accessible.
        const GUARD         = 1 << 2;
        /// Mapped read-only in user views.
        const UREADONLY     = 1 << 3;
        /// Mapped read-only in the owner's own view.
        const KREADONLY     = 1 << 4;
        /// May be mapped into another address space.
        const MMAPOK        = 1 << 5;
        /// May be shared between arenas.
        const SHAREOK       = 1 << 6;
        /// Survives redirect and defunct (never replaced by zero pages).
        const NOREDIRECT    = 1 << 7;
        /// Mapped uncached (device memory); informational in user space.
        const NOCACHE       = 1 << 8;
        /// Every segment must be physically contiguous.
        const SEGPHYSCONTIG = 1 << 9;
        /// Objects come straight from the heap, one per "segment" (the seed's
        /// intrinsic zone-backed pseudo region).
        const PSEUDO        = 1 << 10;
        /// No magazine layer sits on top; do not inflate the object count.
        const NOMAGAZINES   = 1 << 11;
        /// Device writes into this memory (receive buffers).
        const IODIR_IN      = 1 << 12;
        /// Device reads from this memory (transmit buffers).
        const IODIR_OUT     = 1 << 13;
        /// Holds only data, never pointers (buffers).
        const PUREDATA      = 1 << 14;
    }
}

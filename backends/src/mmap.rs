//! Segments carved from one memfd-backed span.
//!
//! [`Mmap`] reserves the region's whole span once, when the source is
//! opened: a `memfd` (an anonymous shared-memory file) is sized to
//! `seg_size * seg_count` bytes and mapped `MAP_SHARED` with no access
//! rights. Segment `i` is the fixed slice `base + i * seg_size` of that span,
//! so the region maps an address to its segment by arithmetic
//! ([`Capabilities::CONTIGUOUS`]).
//!
//! The span costs address space, not memory: shared-memory pages exist only
//! once they are touched. The life of a segment is
//!
//! * **create** — `mprotect` the slice read-write (read-only when the region
//!   is [`KREADONLY`](RegionMode::KREADONLY): the owner's own view is then
//!   read-only). A [`PERSISTENT`](RegionMode::PERSISTENT) region also
//!   populates the pages (`MADV_POPULATE_WRITE`/`_READ`, or touching each
//!   page on kernels older than 5.14) and locks them with `mlock`.
//! * **discard** — `munlock` when wired, `mprotect` back to no access, punch
//!   a hole in the memfd over the slice (`fallocate(PUNCH_HOLE |
//!   KEEP_SIZE)`), and `madvise(MADV_DONTNEED)`. The hole punch is what
//!   actually frees the memory: shared-memory pages belong to the file, and
//!   `MADV_DONTNEED` alone only drops this mapping's page-table entries.
//! * **purge** — the same hole punch on a live segment; it stays accessible
//!   and reads as zero afterwards.
//!
//! # Sealing, for memfds handed to other processes
//!
//! The memfd is created with `MFD_ALLOW_SEALING`. An owner that hands the
//! descriptor to a peer calls [`Mmap::seal_for_peers`] once its own span
//! is mapped (it is, from `open` on):
//!
//! * `F_SEAL_SHRINK | F_SEAL_GROW` — a peer cannot resize the file under
//!   the owner (a shrink would turn the owner's accesses into `SIGBUS`);
//! * `F_SEAL_SEAL` — a peer cannot add seals of its own (for instance
//!   `F_SEAL_FUTURE_WRITE`, which would make the owner's hole punches fail
//!   and its later views unmappable);
//! * with `read_only`, `F_SEAL_FUTURE_WRITE` — from then on no new writable
//!   mapping and no `write()` of the file can be made by anyone, even from a
//!   descriptor re-opened read-write through `/proc/<pid>/fd/N`. The
//!   owner's span, mapped before the seal, keeps its right to be made
//!   writable, so segments are created and written as before.
//!
//! The kernel refuses hole punches (`fallocate` and `MADV_REMOVE` alike)
//! on a file sealed with `F_SEAL_FUTURE_WRITE`. On such a source
//! **discard zeroes the segment through the owner's mapping instead**, so a
//! re-created segment still reads as zero, but its pages stay in the file
//! until the source is dropped (the memory of the span is bounded by its
//! length); [`purge`](SegmentSource::purge) fails with
//! [`Error::Unsupported`].
//!
//! Because the memory is a file, the same bytes can be mapped a second time
//! — in this process or, by passing the descriptor, in another:
//! [`shared_backing`](SegmentSource::shared_backing) gives `(fd, offset,
//! len)` for one segment and [`Mmap::span_backing`] for the whole span, and
//! [`Mmap`] implements [`AsFd`]. An arena uses this to build user views.
//!
//! A [`GUARD`](RegionMode::GUARD) region keeps its span without access for
//! its whole life: `create` fails with [`Error::Unsupported`], so touching a
//! guard span always faults.
//!
//! The memfd is named after [`MmapConfig::name`], so the span shows in
//! `/proc/self/maps` as `/memfd:<name> (deleted)`.
//!
//! This backend is Linux only (memfd, hole punching and `MADV_POPULATE_*`
//! are Linux interfaces).
//!
//! # Safety and correctness
//!
//! * The span is reserved in `open` and unmapped only in `Drop`: every
//!   segment address stays mapped (with some protection) for the source's
//!   whole life, and no other mapping can be placed inside it.
//! * Segments never overlap: segment `i` is the fixed slice
//!   `[base + i * seg_size, base + (i + 1) * seg_size)`, `i < seg_count`,
//!   and `seg_size * seg_count` is the span length (checked for overflow).
//!   Every operation checks its index before touching the span.
//! * Every segment is aligned to `align`: the base is aligned (by reserving
//!   `align - page` extra bytes and trimming them when `align` exceeds the
//!   page size) and `seg_size` is a multiple of `align` whenever there is
//!   more than one segment.
//! * A discarded segment has no access rights and no pages, so a stale
//!   pointer into it faults instead of reading old data, and a re-created
//!   segment reads as zero.
//! * Memory is only ever touched through raw pointers (populate fallback);
//!   no Rust reference into the span is ever formed, since another view of
//!   the memfd (or another process) may write it at any time.
//! * Per-segment "wired" state is an atomic bit, so operations on distinct
//!   indices may run on several threads at once; the kernel serialises the
//!   `mprotect`/`madvise` calls themselves.

use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::borrow::Cow;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{FallocateFlags, MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{Advice, MapFlags, MprotectFlags, ProtFlags};
use skmem_traits::{
    Capabilities, Error, Protection, RegionMode, Result, SegmentGeometry, SegmentSource,
    SharedBacking,
};

/// Longest memfd name Linux accepts (`NAME_MAX` minus the `memfd:` prefix).
const MEMFD_NAME_MAX: usize = 249;

/// Options for [`Mmap`].
///
/// ```
/// use skmem_backends::MmapConfig;
/// let config = MmapConfig::default().with_name("rx-buffers");
/// assert_eq!(config.name, "rx-buffers");
/// assert!(config.wire_persistent);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MmapConfig {
    /// Name of the memfd; the span shows in `/proc/<pid>/maps` as
    /// `/memfd:<name> (deleted)`. At most 249 bytes, no NUL. Default
    /// `"skmem"`.
    pub name: Cow<'static, str>,
    /// Back the span with huge pages (`MFD_HUGETLB`, the system's default
    /// huge page size). `seg_size` must then be a multiple of the huge page
    /// size, and the huge pages must be reserved (`vm.nr_hugepages`) when
    /// the source is opened. Default `false`.
    pub hugepages: bool,
    /// `mlock` the segments of a [`PERSISTENT`](RegionMode::PERSISTENT)
    /// region when they are created. When the lock is refused
    /// (`RLIMIT_MEMLOCK`, no `CAP_IPC_LOCK`), `create` fails with
    /// [`Error::Os`] whose operation is `"mlock"`. Default `true`.
    pub wire_persistent: bool,
}

impl Default for MmapConfig {
    fn default() -> Self {
        MmapConfig {
            name: Cow::Borrowed("skmem"),
            hugepages: false,
            wire_persistent: true,
        }
    }
}

impl MmapConfig {
    /// Sets [`name`](Self::name).
    pub fn with_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets [`hugepages`](Self::hugepages).
    pub fn with_hugepages(mut self, hugepages: bool) -> Self {
        self.hugepages = hugepages;
        self
    }

    /// Sets [`wire_persistent`](Self::wire_persistent).
    pub fn with_wire_persistent(mut self, wire: bool) -> Self {
        self.wire_persistent = wire;
        self
    }
}

/// A segment source backed by one memfd mapped as a contiguous span.
///
/// See the [module docs](self) for the life of a segment.
#[derive(Debug)]
pub struct Mmap {
    geometry: SegmentGeometry,
    /// First byte of the span; aligned to `geometry.align` and to `page`.
    base: NonNull<u8>,
    span_len: usize,
    /// Page size of the backing (the huge page size with `MFD_HUGETLB`).
    page: usize,
    fd: OwnedFd,
    wire_persistent: bool,
    /// The memfd's name, for error messages.
    name: Cow<'static, str>,
    /// One bit per segment: set while the segment is `mlock`ed.
    wired: Box<[AtomicU64]>,
    /// `F_SEAL_FUTURE_WRITE` is on the memfd: holes can no longer be
    /// punched, so discard zeroes segments instead.
    write_sealed: AtomicBool,
    /// System calls of `discard` that failed (it cannot report errors).
    discard_failures: AtomicU64,
}

// SAFETY: `base` points into a mapping this struct owns for its whole life;
// every mutation of shared state goes through atomics or system calls, which
// the kernel serialises, so the source can move between and be shared by
// threads.
unsafe impl Send for Mmap {}
// SAFETY: see `Send`; `&self` methods only issue system calls on disjoint
// segment ranges and update atomic bits.
unsafe impl Sync for Mmap {}

#[inline]
fn os(operation: &'static str, errno: Errno) -> Error {
    Error::os(operation, errno.raw_os_error())
}

fn guard_error() -> Error {
    Error::Unsupported {
        source_name: Mmap::NAME,
        operation: "access to a guard region's segments (its span stays PROT_NONE)",
    }
}

impl Mmap {
    /// The whole span as one [`SharedBacking`]: the memfd, offset 0, and the
    /// span length. Mapping it `MAP_SHARED` gives a second view of every
    /// segment at the same offsets (`i * seg_size`).
    pub fn span_backing(&self) -> SharedBacking {
        SharedBacking {
            fd: self.fd.as_raw_fd(),
            offset: 0,
            len: self.span_len,
        }
    }

    /// Length of the span in bytes (`seg_size * seg_count`).
    pub fn span_len(&self) -> usize {
        self.span_len
    }

    /// Page size of the backing memory: the system page size, or the huge
    /// page size when [`MmapConfig::hugepages`] is set.
    pub fn page_size(&self) -> usize {
        self.page
    }

    /// `true` while segment `index` is locked in memory (by
    /// [`wire`](SegmentSource::wire) or a persistent `create`).
    pub fn is_wired(&self, index: u32) -> bool {
        if index >= self.geometry.seg_count {
            return false;
        }
        let (word, bit) = Self::bit(index);
        self.wired[word].load(Ordering::Acquire) & bit != 0
    }

    /// How many system calls made by [`discard`](SegmentSource::discard)
    /// have failed. `discard` cannot return an error; it releases what it
    /// can and counts the rest here (a non-zero value usually means the
    /// process hit `vm.max_map_count`).
    pub fn discard_failures(&self) -> u64 {
        self.discard_failures.load(Ordering::Relaxed)
    }

    /// Seals the memfd before it is handed to another process (see [the
    /// module docs](self#sealing-for-memfds-handed-to-other-processes)):
    /// size seals and `F_SEAL_SEAL` always, and `F_SEAL_FUTURE_WRITE` when
    /// `read_only` (no one but this source's own span may write the file
    /// from now on). Calling it again with the same or a weaker request
    /// succeeds and changes nothing (several arenas may share one pool's
    /// regions).
    ///
    /// Errors: [`Error::Os`] when the kernel refuses the seals, and
    /// [`Error::Invalid`] when the memfd is already closed to new seals
    /// without carrying the ones asked for.
    pub fn seal_for_peers(&self, read_only: bool) -> Result<()> {
        let mut want = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        if read_only {
            want |= SealFlags::FUTURE_WRITE;
        }
        let result = rustix::fs::fcntl_add_seals(&self.fd, want);
        let have = rustix::fs::fcntl_get_seals(&self.fd)
            .map_err(|e| os("fcntl(F_GET_SEALS) of the memfd", e))?;
        if have.intersects(SealFlags::FUTURE_WRITE | SealFlags::WRITE) {
            self.write_sealed.store(true, Ordering::Release);
        }
        match result {
            Ok(()) => Ok(()),
            // Already closed to seals (another owner of a shared region
            // sealed it first): fine when what we need is there.
            Err(Errno::PERM) if have.contains(want) => Ok(()),
            Err(Errno::PERM) if have.contains(SealFlags::SEAL) => Err(Error::Invalid {
                field: "seals",
                reason: format!(
                    "memfd `{}` is closed to new seals without {:?} (it has {have:?})",
                    self.name,
                    want - have
                ),
            }),
            Err(e) => Err(os("fcntl(F_ADD_SEALS) of the memfd", e)),
        }
    }

    /// `true` once the memfd carries `F_SEAL_FUTURE_WRITE` (or
    /// `F_SEAL_WRITE`) through [`seal_for_peers`](Self::seal_for_peers):
    /// discard then zeroes segments instead of punching holes.
    pub fn is_write_sealed(&self) -> bool {
        self.write_sealed.load(Ordering::Acquire)
    }

    /// Checks the geometry that does not depend on the backing's page size.
    fn validate(geometry: &SegmentGeometry, page: usize) -> Result<usize> {
        if geometry.mode.contains(RegionMode::PSEUDO) {
            return Err(Error::invalid_param(
                "mode",
                u64::from(geometry.mode.bits()),
                "pseudo regions take objects from the heap, not from an mmap span",
            ));
        }
        let span_len = geometry.check_common()?;
        if geometry.seg_count == 0 {
            return Err(Error::invalid_param("seg_count", 0, "must be non-zero"));
        }
        if geometry.seg_size % page != 0 {
            return Err(Error::invalid_param(
                "seg_size",
                geometry.seg_size as u64,
                "must be a multiple of the page size",
            ));
        }
        if geometry.seg_count > 1 && geometry.seg_size % geometry.align != 0 {
            return Err(Error::invalid_param(
                "align",
                geometry.align as u64,
                "segments sit at base + i * seg_size, so seg_size must be a multiple of align",
            ));
        }
        // The span plus the slack needed to align it must fit too.
        if span_len.checked_add(geometry.align).is_none() || span_len > isize::MAX as usize {
            return Err(Error::invalid_param(
                "seg_count",
                u64::from(geometry.seg_count),
                "the span is larger than the address space",
            ));
        }
        Ok(span_len)
    }

    fn memfd(config: &MmapConfig) -> Result<OwnedFd> {
        let name = config.name.as_bytes();
        if name.len() > MEMFD_NAME_MAX {
            return Err(Error::invalid_param(
                "name",
                name.len() as u64,
                "a memfd name is at most 249 bytes",
            ));
        }
        let name = CString::new(name).map_err(|e| {
            Error::invalid_param("name", e.nul_position() as u64, "contains a NUL byte")
        })?;
        // ALLOW_SEALING lets an owner that shares the memfd seal its size, so a
        // peer holding the descriptor cannot shrink it under the owner.
        let mut flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        if config.hugepages {
            flags |= MemfdFlags::HUGETLB;
        }
        rustix::fs::memfd_create(name.as_c_str(), flags).map_err(|e| {
            if config.hugepages {
                os("memfd_create(MFD_HUGETLB): huge pages unavailable", e)
            } else {
                os("memfd_create", e)
            }
        })
    }

    /// Maps `span_len` bytes of `fd` with no access, at an address aligned
    /// to `align` (a power of two, at least the backing's page size).
    fn map_span(fd: &OwnedFd, span_len: usize, align: usize, huge: bool) -> Result<NonNull<u8>> {
        let map_err = |e| {
            if huge {
                os(
                    "mmap of MFD_HUGETLB memfd (not enough free huge pages? see vm.nr_hugepages)",
                    e,
                )
            } else {
                os("mmap of the memfd span", e)
            }
        };
        let sys_page = rustix::param::page_size();
        if align <= sys_page {
            // SAFETY:
            // * a null hint without MAP_FIXED lets the kernel pick a free
            //   range, so no existing mapping is replaced;
            // * PROT_NONE: nothing can access the memory until `create`.
            let p = unsafe {
                rustix::mm::mmap(
                    ptr::null_mut(),
                    span_len,
                    ProtFlags::empty(),
                    MapFlags::SHARED,
                    fd,
                    0,
                )
            }
            .map_err(map_err)?;
            return Ok(NonNull::new(p.cast::<u8>()).expect("mmap returned null"));
        }

        // Over-reserve anonymous address space, place the memfd at the first
        // aligned address inside it, then give back the slack on both sides.
        let slack = align - sys_page;
        let reserve_len = span_len + slack; // checked in `validate`
                                            // SAFETY: as above, the kernel picks a free range; PROT_NONE and
                                            // MAP_NORESERVE make it address space only.
        let reserve = unsafe {
            rustix::mm::mmap_anonymous(
                ptr::null_mut(),
                reserve_len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| os("mmap (reserving aligned address space)", e))?;
        let reserve = reserve.cast::<u8>();
        let head = (reserve as usize).wrapping_neg() & (align - 1);
        let aligned = reserve.wrapping_add(head);
        // SAFETY:
        // * `[aligned, aligned + span_len)` lies inside the reservation made
        //   just above (`head <= slack`), which this function owns, so
        //   MAP_FIXED replaces only our own mapping;
        // * `aligned` is aligned to `align`, hence to the backing's page.
        let mapped = unsafe {
            rustix::mm::mmap(
                aligned.cast::<c_void>(),
                span_len,
                ProtFlags::empty(),
                MapFlags::SHARED | MapFlags::FIXED,
                fd,
                0,
            )
        };
        if let Err(e) = mapped {
            // SAFETY: the whole reservation is ours and nothing uses it.
            let _ = unsafe { rustix::mm::munmap(reserve.cast::<c_void>(), reserve_len) };
            return Err(map_err(e));
        }
        let tail = slack - head;
        if head > 0 {
            // SAFETY: `[reserve, aligned)` is unused slack of our reservation.
            let _ = unsafe { rustix::mm::munmap(reserve.cast::<c_void>(), head) };
        }
        if tail > 0 {
            // SAFETY: `[aligned + span_len, reserve + reserve_len)` is unused
            // slack of our reservation.
            let _ = unsafe {
                rustix::mm::munmap(aligned.wrapping_add(span_len).cast::<c_void>(), tail)
            };
        }
        Ok(NonNull::new(aligned).expect("aligned address inside a mapping is non-null"))
    }

    #[inline]
    fn bit(index: u32) -> (usize, u64) {
        ((index / 64) as usize, 1u64 << (index % 64))
    }

    fn set_wired(&self, index: u32, wired: bool) -> bool {
        let (word, bit) = Self::bit(index);
        let old = if wired {
            self.wired[word].fetch_or(bit, Ordering::AcqRel)
        } else {
            self.wired[word].fetch_and(!bit, Ordering::AcqRel)
        };
        old & bit != 0
    }

    /// Start of segment `index` (a slice of the span), after checking the
    /// index.
    #[inline]
    fn segment(&self, index: u32) -> Result<*mut c_void> {
        if index >= self.geometry.seg_count {
            return Err(self.out_of_range(index));
        }
        // In bounds: index * seg_size < span_len.
        Ok(self
            .base
            .as_ptr()
            .wrapping_add(index as usize * self.geometry.seg_size)
            .cast::<c_void>())
    }

    #[cold]
    #[inline(never)]
    fn out_of_range(&self, index: u32) -> Error {
        Error::OutOfRange {
            field: "index",
            value: u64::from(index),
            limit: u64::from(self.geometry.seg_count),
        }
    }

    /// Frees the pages of segment `index` in the memfd (all views).
    fn punch(&self, index: u32) -> rustix::io::Result<()> {
        let seg = self.geometry.seg_size as u64;
        rustix::fs::fallocate(
            &self.fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            u64::from(index) * seg,
            seg,
        )
    }

    /// Populates (and, when configured, locks) a freshly created segment of
    /// a persistent region.
    fn make_persistent(&self, index: u32, seg: *mut c_void) -> Result<()> {
        let len = self.geometry.seg_size;
        let writable = !self.geometry.mode.contains(RegionMode::KREADONLY);
        let advice = if writable {
            Advice::LinuxPopulateWrite
        } else {
            Advice::LinuxPopulateRead
        };
        // SAFETY: `seg..seg + len` is segment `index`, just made accessible
        // and not yet handed out; populating only faults pages in.
        match unsafe { rustix::mm::madvise(seg, len, advice) } {
            Ok(()) => {}
            // Kernels before 5.14 lack MADV_POPULATE_*: mlock faults the
            // pages in by itself; otherwise touch every page.
            Err(Errno::INVAL) if self.wire_persistent => {}
            Err(Errno::INVAL) => self.touch(seg.cast::<u8>(), writable),
            Err(e) => return Err(os("madvise(MADV_POPULATE)", e)),
        }
        if self.wire_persistent {
            // SAFETY: `seg..seg + len` is a mapped range of our span.
            unsafe { rustix::mm::mlock(seg, len) }.map_err(|e| os("mlock", e))?;
            self.set_wired(index, true);
        }
        Ok(())
    }

    /// Faults in every page of a segment by touching it through raw
    /// pointers.
    #[cold]
    #[inline(never)]
    fn touch(&self, seg: *mut u8, writable: bool) {
        for offset in (0..self.geometry.seg_size).step_by(self.page) {
            let p = seg.wrapping_add(offset);
            // SAFETY:
            // * `p` is inside a segment that was just made accessible
            //   (readable, and writable when `writable`);
            // * the segment is not handed out yet, so rewriting a byte with
            //   its own value races with nothing in this process.
            unsafe {
                let byte = ptr::read_volatile(p);
                if writable {
                    ptr::write_volatile(p, byte);
                }
            }
        }
    }

    /// Zeroes a segment nobody uses through the owner's span (the way to
    /// clear it when the memfd is sealed against hole punches). Returns 1
    /// when the segment could not be made writable (nothing was written).
    #[cold]
    fn zero(&self, seg: *mut c_void) -> u64 {
        let len = self.geometry.seg_size;
        // SAFETY: `seg..seg + len` is a segment of our span that nothing
        // uses any more (discard's contract). The span was mapped from a
        // read-write descriptor before any seal, so it may be made writable
        // even under F_SEAL_FUTURE_WRITE.
        if unsafe { rustix::mm::mprotect(seg, len, MprotectFlags::READ | MprotectFlags::WRITE) }
            .is_err()
        {
            return 1;
        }
        // SAFETY: just made writable; nothing else in this process uses the
        // segment, and other views only ever read it through raw accesses.
        unsafe { ptr::write_bytes(seg.cast::<u8>(), 0, len) };
        0
    }

    /// Returns segment `index` to its discarded state: unlocked, no access,
    /// no pages. Returns how many system calls failed.
    fn release(&self, index: u32, seg: *mut c_void) -> u64 {
        let len = self.geometry.seg_size;
        let mut failures = 0;
        if self.set_wired(index, false) {
            // SAFETY: `seg..seg + len` is a mapped range of our span.
            failures += u64::from(unsafe { rustix::mm::munlock(seg, len) }.is_err());
        }
        if self.is_write_sealed() {
            failures += self.zero(seg);
        }
        // SAFETY: as above; the caller guarantees nothing accesses the
        // segment any more, so removing access breaks no one.
        failures +=
            u64::from(unsafe { rustix::mm::mprotect(seg, len, MprotectFlags::empty()) }.is_err());
        if !self.is_write_sealed() {
            failures += u64::from(self.punch(index).is_err());
        }
        // SAFETY: as above; dropping the page-table entries of a segment
        // nobody uses loses nothing (the hole punch already freed the data).
        failures +=
            u64::from(unsafe { rustix::mm::madvise(seg, len, Advice::LinuxDontNeed) }.is_err());
        failures
    }
}

impl AsFd for Mmap {
    /// The memfd behind the span, valid while the source lives.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

// SAFETY:
// * `create(i)` returns `base + i * seg_size` (checked `i < seg_count`),
//   made readable (and writable unless KREADONLY); slices of the span never
//   overlap each other, and the span is a mapping of our own that nothing
//   else occupies;
// * the span stays mapped until `Drop`, so a segment's memory stays valid at
//   the same address until discarded or the source is dropped;
// * `CONTIGUOUS` is reported and `span` returns the base of that layout;
// * `shared_backing(i)` names the memfd range `[i * seg_size, (i + 1) *
//   seg_size)`, which is exactly what segment `i` maps;
// * all state is immutable or atomic and the syscalls are thread-safe, so
//   calls for distinct indices may run concurrently.
unsafe impl SegmentSource for Mmap {
    type Config = MmapConfig;
    const NAME: &'static str = "mmap";

    fn open(geometry: &SegmentGeometry, config: &MmapConfig) -> Result<Self> {
        let sys_page = rustix::param::page_size();
        let span_len = Self::validate(geometry, sys_page)?;
        let fd = Self::memfd(config)?;
        let page = if config.hugepages {
            let huge = rustix::fs::fstat(&fd)
                .map_err(|e| os("fstat of the memfd", e))?
                .st_blksize as usize;
            if !huge.is_power_of_two() || huge < sys_page {
                return Err(Error::os(
                    "memfd_create(MFD_HUGETLB): no usable huge page size",
                    Errno::INVAL.raw_os_error(),
                ));
            }
            if geometry.seg_size % huge != 0 {
                return Err(Error::invalid_param(
                    "seg_size",
                    geometry.seg_size as u64,
                    "must be a multiple of the huge page size",
                ));
            }
            huge
        } else {
            sys_page
        };
        rustix::fs::ftruncate(&fd, span_len as u64).map_err(|e| os("ftruncate of the memfd", e))?;
        let base = Self::map_span(&fd, span_len, geometry.align.max(page), config.hugepages)?;
        let words = (geometry.seg_count as usize).div_ceil(64);
        Ok(Mmap {
            geometry: *geometry,
            base,
            span_len,
            page,
            fd,
            wire_persistent: config.wire_persistent,
            wired: (0..words).map(|_| AtomicU64::new(0)).collect(),
            write_sealed: AtomicBool::new(false),
            name: config.name.clone(),
            discard_failures: AtomicU64::new(0),
        })
    }

    fn geometry(&self) -> &SegmentGeometry {
        &self.geometry
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::CONTIGUOUS
            | Capabilities::PURGE
            | Capabilities::PROTECT
            | Capabilities::WIRE
            | Capabilities::SHARE
    }

    #[inline]
    fn span(&self) -> Option<NonNull<u8>> {
        Some(self.base)
    }

    unsafe fn create(&self, index: u32) -> Result<NonNull<u8>> {
        let mode = self.geometry.mode;
        if mode.contains(RegionMode::GUARD) {
            return Err(guard_error());
        }
        let seg = self.segment(index)?;
        let prot = if mode.contains(RegionMode::KREADONLY) {
            MprotectFlags::READ
        } else {
            MprotectFlags::READ | MprotectFlags::WRITE
        };
        // SAFETY: `seg..seg + seg_size` is segment `index` of our span, not
        // live (caller's contract), so no one relies on its current rights.
        unsafe { rustix::mm::mprotect(seg, self.geometry.seg_size, prot) }
            .map_err(|e| os("mprotect", e))?;
        if mode.contains(RegionMode::PERSISTENT) {
            if let Err(e) = self.make_persistent(index, seg) {
                self.release(index, seg);
                return Err(e);
            }
        }
        Ok(NonNull::new(seg.cast::<u8>()).expect("segment inside the span is non-null"))
    }

    unsafe fn discard(&self, index: u32, base: NonNull<u8>) {
        let seg = self
            .segment(index)
            .expect("discard: segment index out of range");
        debug_assert_eq!(seg.cast::<u8>(), base.as_ptr(), "discard: wrong base");
        let failures = self.release(index, seg);
        if failures != 0 {
            self.discard_failures.fetch_add(failures, Ordering::Relaxed);
        }
    }

    fn is_wired(&self, index: u32) -> bool {
        // The per-segment bit set by `wire` and by a persistent `create`
        // with `wire_persistent`, cleared by `unwire` and `discard`.
        Mmap::is_wired(self, index)
    }

    unsafe fn wire(&self, index: u32, base: NonNull<u8>) -> Result<()> {
        let seg = self.segment(index)?;
        debug_assert_eq!(seg.cast::<u8>(), base.as_ptr());
        // SAFETY: segment `index` is a mapped range of our span.
        unsafe { rustix::mm::mlock(seg, self.geometry.seg_size) }.map_err(|e| os("mlock", e))?;
        self.set_wired(index, true);
        Ok(())
    }

    unsafe fn unwire(&self, index: u32, base: NonNull<u8>) -> Result<()> {
        let seg = self.segment(index)?;
        debug_assert_eq!(seg.cast::<u8>(), base.as_ptr());
        // SAFETY: segment `index` is a mapped range of our span.
        unsafe { rustix::mm::munlock(seg, self.geometry.seg_size) }
            .map_err(|e| os("munlock", e))?;
        self.set_wired(index, false);
        Ok(())
    }

    unsafe fn purge(&self, index: u32, base: NonNull<u8>) -> Result<()> {
        let seg = self.segment(index)?;
        debug_assert_eq!(seg.cast::<u8>(), base.as_ptr());
        if self.is_write_sealed() {
            return Err(Error::Unsupported {
                source_name: Mmap::NAME,
                operation: "purge of a memfd sealed with F_SEAL_FUTURE_WRITE (the kernel refuses hole punches)",
            });
        }
        self.punch(index)
            .map_err(|e| os("fallocate(PUNCH_HOLE)", e))?;
        // The hole punch already unmapped the pages from every view; on a
        // locked segment MADV_DONTNEED would fail with EINVAL, and the next
        // touch faults a fresh (locked) zero page in anyway.
        if !self.is_wired(index) {
            // SAFETY: segment `index` is live and holds nothing anyone needs
            // (caller's contract); dropping its page-table entries only
            // makes the next access fault in a zero page.
            unsafe { rustix::mm::madvise(seg, self.geometry.seg_size, Advice::LinuxDontNeed) }
                .map_err(|e| os("madvise(MADV_DONTNEED)", e))?;
        }
        Ok(())
    }

    unsafe fn protect(&self, index: u32, base: NonNull<u8>, prot: Protection) -> Result<()> {
        if self.geometry.mode.contains(RegionMode::GUARD) {
            return Err(guard_error());
        }
        let seg = self.segment(index)?;
        debug_assert_eq!(seg.cast::<u8>(), base.as_ptr());
        let flags = match prot {
            Protection::ReadWrite => MprotectFlags::READ | MprotectFlags::WRITE,
            Protection::ReadOnly => MprotectFlags::READ,
            Protection::None => MprotectFlags::empty(),
        };
        // SAFETY: segment `index` is a mapped range of our span; the caller
        // guarantees no thread relies on rights this call removes.
        unsafe { rustix::mm::mprotect(seg, self.geometry.seg_size, flags) }
            .map_err(|e| os("mprotect", e))
    }

    fn shared_backing(&self, index: u32) -> Option<SharedBacking> {
        if index >= self.geometry.seg_count {
            return None;
        }
        Some(SharedBacking {
            fd: self.fd.as_raw_fd(),
            offset: u64::from(index) * self.geometry.seg_size as u64,
            len: self.geometry.seg_size,
        })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: the span was mapped in `open` and is unmapped only here;
        // `&mut self` means no segment of this source is in use any more
        // (the region discards or abandons them before dropping us). The
        // memfd closes when `fd` drops right after.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast::<c_void>(), self.span_len) };
    }
}

//! Memory and bookkeeping shared by the DMA backends ([`Vfio`](crate::Vfio)
//! and [`Pagemap`](crate::Pagemap)).
//!
//! * Segment memory is one private anonymous mapping per segment, of small
//!   pages or of hugepages (`MAP_HUGETLB`); both read as zero when fresh.
//! * [`SegmentTable`] records, per live segment, its virtual base, the
//!   length mapped for it and its device address (IOVA or physical), and
//!   answers "which segment holds this address" both ways through ordered
//!   maps. It is only touched under the owning source's lock.

use core::ffi::c_void;
use core::ptr::{self, NonNull};
use std::collections::BTreeMap;

use skmem_traits::{Error, Result};

/// A hugepage size the kernel can back a segment with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HugepageSize {
    /// 2 MiB pages (x86-64, aarch64 with 4 KiB granules).
    #[default]
    Size2M,
    /// 1 GiB pages (x86-64 with `pdpe1gb`).
    Size1G,
}

impl HugepageSize {
    /// The page size in bytes.
    #[inline]
    pub const fn bytes(self) -> usize {
        match self {
            HugepageSize::Size2M => 2 << 20,
            HugepageSize::Size1G => 1 << 30,
        }
    }

    /// The directory under `/sys/kernel/mm/hugepages/` for this size.
    pub const fn sysfs_dir(self) -> &'static str {
        match self {
            HugepageSize::Size2M => "/sys/kernel/mm/hugepages/hugepages-2048kB",
            HugepageSize::Size1G => "/sys/kernel/mm/hugepages/hugepages-1048576kB",
        }
    }

    /// Human-readable size ("2 MiB").
    pub const fn label(self) -> &'static str {
        match self {
            HugepageSize::Size2M => "2 MiB",
            HugepageSize::Size1G => "1 GiB",
        }
    }

    fn map_flag(self) -> libc::c_int {
        match self {
            HugepageSize::Size2M => libc::MAP_HUGE_2MB,
            HugepageSize::Size1G => libc::MAP_HUGE_1GB,
        }
    }

    /// The count of pages of this size in the pool, and how many are free,
    /// as sysfs reports them; `None` when the kernel lacks this size.
    pub fn pool(self) -> Option<(u64, u64)> {
        let read = |file: &str| -> Option<u64> {
            std::fs::read_to_string(format!("{}/{file}", self.sysfs_dir()))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        Some((read("nr_hugepages")?, read("free_hugepages")?))
    }

    /// Checks that the kernel offers this size and that some pages of it
    /// are reserved, with an error that says how to fix it otherwise.
    pub(crate) fn check_reserved(self, needed_per_segment: usize) -> Result<()> {
        match self.pool() {
            None => Err(Error::Invalid {
                field: "hugepage_size",
                reason: format!(
                    "the kernel offers no {} hugepages ({} is missing); \
                     enable CONFIG_HUGETLBFS or pick another size",
                    self.label(),
                    self.sysfs_dir()
                ),
            }),
            Some((0, _)) => Err(self.shortage(needed_per_segment)),
            Some(_) => Ok(()),
        }
    }

    /// The error for "not enough free hugepages for a mapping of `len`".
    pub(crate) fn shortage(self, len: usize) -> Error {
        let needed = len.div_ceil(self.bytes()) as u64;
        let (total, free) = self.pool().unwrap_or((0, 0));
        let wanted = total + needed.max(8);
        let fix = match self {
            HugepageSize::Size2M => format!("`echo {wanted} > /proc/sys/vm/nr_hugepages`"),
            HugepageSize::Size1G => format!("`echo {wanted} > {}/nr_hugepages`", self.sysfs_dir()),
        };
        Error::Exhausted {
            name: format!(
                "{} hugepages ({free} free of {total} reserved, a segment needs {needed}; \
                 reserve more as root: {fix})",
                self.label(),
            ),
            capacity: total,
            unit: "hugepages",
        }
    }
}

/// The system's base page size.
#[inline]
pub(crate) fn base_page_size() -> usize {
    rustix::param::page_size()
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Maps `len` bytes of zeroed, private, read-write small pages at an
/// address aligned to `align` (a power of two). `len` is a multiple of the
/// page size.
pub(crate) fn map_anonymous(len: usize, align: usize) -> Result<NonNull<u8>> {
    map_aligned(
        len,
        align,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        "mmap of an anonymous DMA segment",
    )
}

/// Reserves `len` bytes of address space (no access, no memory) aligned to
/// `align`, for pages to be moved into with `mremap`.
pub(crate) fn reserve_aligned(len: usize, align: usize) -> Result<NonNull<u8>> {
    map_aligned(
        len,
        align,
        libc::PROT_NONE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        "mmap of an address-space reservation",
    )
}

fn map_aligned(
    len: usize,
    align: usize,
    prot: libc::c_int,
    flags: libc::c_int,
    operation: &'static str,
) -> Result<NonNull<u8>> {
    let page = base_page_size();
    let extra = align.saturating_sub(page);
    let total =
        len.checked_add(extra)
            .ok_or(Error::invalid_param("seg_size", len as u64, "too large"))?;
    // SAFETY: a fresh anonymous mapping at an address of the kernel's
    // choosing; it aliases nothing.
    let raw = unsafe { libc::mmap(ptr::null_mut(), total, prot, flags, -1, 0) };
    if raw == libc::MAP_FAILED {
        return Err(Error::os(operation, last_errno()));
    }
    let raw = raw.cast::<u8>();
    let head = (raw as usize).next_multiple_of(align) - raw as usize;
    let tail = total - head - len;
    let base = raw.wrapping_add(head);
    // SAFETY: both trims lie inside the mapping just made, are page
    // multiples (the mapping, `align` and `len` are page aligned), and
    // nothing refers to them.
    unsafe {
        if head != 0 {
            libc::munmap(raw.cast::<c_void>(), head);
        }
        if tail != 0 {
            libc::munmap(base.wrapping_add(len).cast::<c_void>(), tail);
        }
    }
    Ok(NonNull::new(base).expect("mmap returned address 0"))
}

/// Maps `len` bytes (a multiple of the hugepage size) of zeroed private
/// hugepages, populated. Fails with a message naming the shortage when the
/// pool has too few free pages.
pub(crate) fn map_hugepages(len: usize, size: HugepageSize) -> Result<NonNull<u8>> {
    debug_assert_eq!(len % size.bytes(), 0);
    // SAFETY: a fresh anonymous mapping at an address of the kernel's
    // choosing; it aliases nothing.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_HUGETLB
                | libc::MAP_POPULATE
                | size.map_flag(),
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(match last_errno() {
            libc::ENOMEM => size.shortage(len),
            errno => Error::os("mmap(MAP_HUGETLB) of a DMA segment", errno),
        });
    }
    Ok(NonNull::new(raw.cast::<u8>()).expect("mmap returned address 0"))
}

/// Unmaps a mapping made by [`map_anonymous`] or [`map_hugepages`].
///
/// # Safety
///
/// `[base, base + len)` is exactly one such mapping, nothing will touch it
/// again, and no device is still given access to it.
pub(crate) unsafe fn unmap(base: NonNull<u8>, len: usize) {
    // SAFETY: the caller hands over a mapping this module made.
    let rc = unsafe { libc::munmap(base.as_ptr().cast::<c_void>(), len) };
    debug_assert_eq!(rc, 0, "munmap of a DMA segment failed");
}

/// One live segment of a DMA source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegRecord {
    /// Virtual base address.
    pub(crate) base: NonNull<u8>,
    /// Bytes mapped for the segment (`seg_size` rounded up to the page the
    /// memory is made of).
    pub(crate) map_len: usize,
    /// Device address of `base` (IOVA, or physical address).
    pub(crate) dma: u64,
}

// SAFETY: a record is plain data (an address and two integers); it never
// dereferences `base`.
unsafe impl Send for SegRecord {}
// SAFETY: as above; shared access only reads the integers.
unsafe impl Sync for SegRecord {}

/// Live segments of one source, by index, by virtual address and by device
/// address.
#[derive(Debug)]
pub(crate) struct SegmentTable {
    seg_size: usize,
    slots: Vec<Option<SegRecord>>,
    by_addr: BTreeMap<usize, u32>,
    by_dma: BTreeMap<u64, u32>,
}

impl SegmentTable {
    pub(crate) fn new(seg_count: u32, seg_size: usize) -> Self {
        SegmentTable {
            seg_size,
            slots: vec![None; seg_count as usize],
            by_addr: BTreeMap::new(),
            by_dma: BTreeMap::new(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&SegRecord> {
        self.slots.get(index as usize)?.as_ref()
    }

    pub(crate) fn is_live(&self, index: u32) -> bool {
        self.get(index).is_some()
    }

    pub(crate) fn live(&self) -> usize {
        self.by_addr.len()
    }

    /// Checks that segment `index` may be created: in range, and not live
    /// already. `source` names the backend in the error.
    pub(crate) fn check_creatable(&self, index: u32, source: &str) -> Result<()> {
        if index as usize >= self.slots.len() {
            return Err(Error::OutOfRange {
                field: "index",
                value: index.into(),
                limit: self.slots.len() as u64,
            });
        }
        if self.is_live(index) {
            return Err(Error::Busy {
                name: format!("{source} segment {index}"),
                reason: "the segment is already live",
            });
        }
        Ok(())
    }

    pub(crate) fn insert(&mut self, index: u32, rec: SegRecord) {
        let slot = &mut self.slots[index as usize];
        assert!(slot.is_none(), "segment {index} created twice");
        *slot = Some(rec);
        self.by_addr.insert(rec.base.as_ptr() as usize, index);
        self.by_dma.insert(rec.dma, index);
    }

    pub(crate) fn remove(&mut self, index: u32) -> Option<SegRecord> {
        let rec = self.slots.get_mut(index as usize)?.take()?;
        self.by_addr.remove(&(rec.base.as_ptr() as usize));
        self.by_dma.remove(&rec.dma);
        Some(rec)
    }

    /// Removes live segment `index`, which must be at `base`.
    ///
    /// # Panics
    ///
    /// When segment `index` is not live at `base` (a caller broke the
    /// `discard` contract); the table is left unchanged.
    pub(crate) fn remove_at(&mut self, index: u32, base: NonNull<u8>, source: &str) -> SegRecord {
        match self.get(index) {
            Some(rec) if rec.base == base => {}
            other => panic!(
                "{source}: discard of segment {index} at {base:p}, which is not live there \
                 (live at {:?})",
                other.map(|r| r.base)
            ),
        }
        self.remove(index).expect("checked live above")
    }

    /// Index and record of the live segment whose `seg_size` bytes hold
    /// `addr`.
    #[inline]
    pub(crate) fn find_addr(&self, addr: usize) -> Option<(u32, &SegRecord)> {
        let (&base, &index) = self.by_addr.range(..=addr).next_back()?;
        if addr - base >= self.seg_size {
            return None;
        }
        Some((index, self.get(index)?))
    }

    /// Device address of `addr` when it lies in a live segment.
    #[inline]
    pub(crate) fn dma_of(&self, addr: usize) -> Option<u64> {
        let (_, rec) = self.find_addr(addr)?;
        Some(rec.dma + (addr - rec.base.as_ptr() as usize) as u64)
    }

    /// Virtual address of device address `dma` when it lies in a live
    /// segment.
    pub(crate) fn addr_of_dma(&self, dma: u64) -> Option<NonNull<u8>> {
        let (&start, &index) = self.by_dma.range(..=dma).next_back()?;
        let off = dma - start;
        if off >= self.seg_size as u64 {
            return None;
        }
        let rec = self.get(index)?;
        // `off < seg_size`, so the result stays inside the segment.
        NonNull::new(rec.base.as_ptr().wrapping_add(off as usize))
    }

    /// Removes and returns every live segment (for `Drop`).
    pub(crate) fn drain(&mut self) -> Vec<(u32, SegRecord)> {
        let out: Vec<_> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.take().map(|r| (i as u32, r)))
            .collect();
        self.by_addr.clear();
        self.by_dma.clear();
        out
    }
}

//! A recording stand-in for the IOMMU.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::ptr::NonNull;

use parking_lot::Mutex;
use skmem_traits::{Error, Result};

use super::Iommu;

/// One mapping the fake holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeMapping {
    /// Device address of the first byte.
    pub iova: u64,
    /// Virtual address of the first byte.
    pub vaddr: usize,
    /// Length in bytes.
    pub len: usize,
}

#[derive(Debug, Default)]
struct FakeState {
    mappings: BTreeMap<u64, FakeMapping>,
    map_calls: u64,
    unmap_calls: u64,
    fail_map_at: Option<u64>,
    fail_unmap_at: Option<u64>,
    peak: usize,
}

/// An [`Iommu`] that keeps its mappings in a table instead of hardware:
/// for tests, and for running a DMA stack on a machine without an IOMMU.
///
/// It enforces what the real type1 IOMMU enforces, and a little more:
///
/// * `vaddr`, `iova` and `len` are non-zero multiples of the page size
///   (address 0 is allowed for `iova`);
/// * a new mapping overlaps no live mapping in IOVA space;
/// * the virtual range is mapped in this process (checked with `mincore`,
///   as the kernel would fail to pin it);
/// * an unmap covers whole mappings only, and at least one.
///
/// Failures can be injected: [`fail_nth_map`](Self::fail_nth_map) and
/// [`fail_nth_unmap`](Self::fail_nth_unmap) make the n-th next call fail
/// with [`Error::InjectedFault`]. [`translate`](Self::translate) plays the
/// device: it turns an IOVA into the virtual address the IOMMU would reach.
///
/// Every map must be undone: [`leftover`](Self::leftover) lists the
/// mappings still live, and dropping a fake that still holds mappings
/// panics with that list (unless built [`lenient`](Self::lenient), which
/// prints it instead, or the thread is already panicking).
pub struct FakeIommu {
    page_size: usize,
    strict_drop: bool,
    iova_ranges: Vec<Range<u64>>,
    state: Mutex<FakeState>,
}

impl Default for FakeIommu {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FakeIommu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("FakeIommu")
            .field("page_size", &self.page_size)
            .field("live_mappings", &s.mappings.len())
            .field("map_calls", &s.map_calls)
            .field("unmap_calls", &s.unmap_calls)
            .finish()
    }
}

impl FakeIommu {
    /// A fake with 4 KiB IOMMU pages that panics on drop when mappings are
    /// left over.
    pub fn new() -> Self {
        Self::with_page_size(4096)
    }

    /// A fake whose IOMMU page (alignment granule) is `page_size`, a power
    /// of two.
    ///
    /// # Panics
    ///
    /// When `page_size` is not a power of two.
    pub fn with_page_size(page_size: usize) -> Self {
        assert!(
            page_size.is_power_of_two(),
            "page size must be a power of two"
        );
        FakeIommu {
            page_size,
            strict_drop: true,
            iova_ranges: Vec::new(),
            state: Mutex::new(FakeState::default()),
        }
    }

    /// Prints leftover mappings on drop instead of panicking.
    pub fn lenient(mut self) -> Self {
        self.strict_drop = false;
        self
    }

    /// Reports `ranges` as the usable IOVA windows (as a kernel with the
    /// IOVA-range capability does); a domain then allocates only there.
    pub fn with_iova_ranges(mut self, ranges: Vec<Range<u64>>) -> Self {
        self.iova_ranges = ranges;
        self
    }

    /// Makes the `n`-th next `map` call fail (`1` = the next one); `0`
    /// cancels a pending injection.
    pub fn fail_nth_map(&self, n: u64) {
        let mut s = self.state.lock();
        s.fail_map_at = (n != 0).then(|| s.map_calls + n);
    }

    /// Makes the `n`-th next `unmap` call fail (`1` = the next one); `0`
    /// cancels a pending injection. A failed unmap leaves the mapping live.
    pub fn fail_nth_unmap(&self, n: u64) {
        let mut s = self.state.lock();
        s.fail_unmap_at = (n != 0).then(|| s.unmap_calls + n);
    }

    /// How many times `map` was called (successful or not).
    pub fn map_calls(&self) -> u64 {
        self.state.lock().map_calls
    }

    /// How many times `unmap` was called (successful or not).
    pub fn unmap_calls(&self) -> u64 {
        self.state.lock().unmap_calls
    }

    /// The live mappings, in IOVA order.
    pub fn mappings(&self) -> Vec<FakeMapping> {
        self.state.lock().mappings.values().copied().collect()
    }

    /// The most mappings that were live at once.
    pub fn peak_mappings(&self) -> usize {
        self.state.lock().peak
    }

    /// Mappings not undone yet; empty when every map was unmapped.
    pub fn leftover(&self) -> Vec<FakeMapping> {
        self.mappings()
    }

    /// The virtual address a device would reach at `iova`, or `None` when
    /// nothing is mapped there.
    pub fn translate(&self, iova: u64) -> Option<usize> {
        let s = self.state.lock();
        let (_, m) = s.mappings.range(..=iova).next_back()?;
        let off = iova - m.iova;
        (off < m.len as u64).then(|| m.vaddr + off as usize)
    }

    fn misaligned(&self, what: &'static str, value: u64) -> Error {
        Error::Invalid {
            field: what,
            reason: format!(
                "{value:#x} is not a multiple of the IOMMU page size {:#x}",
                self.page_size
            ),
        }
    }
}

/// `true` when every page of `[addr, addr + len)` is mapped in this process.
#[cfg(target_os = "linux")]
fn range_is_mapped(addr: usize, len: usize, page: usize) -> bool {
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages.min(4096)];
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(vec.len());
        // SAFETY: mincore only inspects page tables; it reports ENOMEM for
        // unmapped ranges and writes `n` bytes into `vec`, which has room.
        let rc = unsafe {
            libc::mincore(
                (addr + done * page) as *mut libc::c_void,
                n * page,
                vec.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return false;
        }
        done += n;
    }
    true
}

#[cfg(not(target_os = "linux"))]
fn range_is_mapped(_addr: usize, _len: usize, _page: usize) -> bool {
    true
}

impl Iommu for FakeIommu {
    unsafe fn map(&self, vaddr: NonNull<u8>, iova: u64, len: usize) -> Result<()> {
        let vaddr = vaddr.as_ptr() as usize;
        let mut s = self.state.lock();
        s.map_calls += 1;
        if s.fail_map_at == Some(s.map_calls) {
            s.fail_map_at = None;
            return Err(Error::InjectedFault {
                name: "FakeIommu::map".into(),
                sequence: s.map_calls,
            });
        }
        let mask = self.page_size - 1;
        if len == 0 || len & mask != 0 {
            return Err(self.misaligned("len", len as u64));
        }
        if vaddr & mask != 0 {
            return Err(self.misaligned("vaddr", vaddr as u64));
        }
        if iova & mask as u64 != 0 {
            return Err(self.misaligned("iova", iova));
        }
        let end = iova.checked_add(len as u64).ok_or(Error::invalid_param(
            "len",
            len as u64,
            "iova + len overflows",
        ))?;
        if !self.iova_ranges.is_empty()
            && !self
                .iova_ranges
                .iter()
                .any(|r| r.start <= iova && end <= r.end)
        {
            return Err(Error::Invalid {
                field: "iova",
                reason: format!("{iova:#x}..{end:#x} is outside the usable IOVA ranges"),
            });
        }
        let clash = s
            .mappings
            .range(..end)
            .next_back()
            .filter(|(_, m)| m.iova + m.len as u64 > iova)
            .map(|(_, m)| *m);
        if let Some(m) = clash {
            return Err(Error::Invalid {
                field: "iova",
                reason: format!(
                    "{iova:#x}..{end:#x} overlaps the live mapping {:#x}..{:#x}",
                    m.iova,
                    m.iova + m.len as u64
                ),
            });
        }
        if !range_is_mapped(vaddr, len, crate::dma_mem::base_page_size()) {
            return Err(Error::Invalid {
                field: "vaddr",
                reason: format!(
                    "{vaddr:#x}..{:#x} is not mapped in this process",
                    vaddr + len
                ),
            });
        }
        s.mappings.insert(iova, FakeMapping { iova, vaddr, len });
        s.peak = s.peak.max(s.mappings.len());
        Ok(())
    }

    fn unmap(&self, iova: u64, len: usize) -> Result<()> {
        let mut s = self.state.lock();
        s.unmap_calls += 1;
        if s.fail_unmap_at == Some(s.unmap_calls) {
            s.fail_unmap_at = None;
            return Err(Error::InjectedFault {
                name: "FakeIommu::unmap".into(),
                sequence: s.unmap_calls,
            });
        }
        let end = iova.saturating_add(len as u64);
        // Whole mappings only: the first one touching the range must start
        // at or after `iova`, the last must end at or before `end`.
        let touching: Vec<FakeMapping> = s
            .mappings
            .range(..end)
            .rev()
            .take_while(|(_, m)| m.iova + m.len as u64 > iova)
            .map(|(_, m)| *m)
            .collect();
        if touching.is_empty() {
            return Err(Error::Invalid {
                field: "iova",
                reason: format!("unmap of {iova:#x}..{end:#x}: nothing is mapped there"),
            });
        }
        if let Some(m) = touching
            .iter()
            .find(|m| m.iova < iova || m.iova + m.len as u64 > end)
        {
            return Err(Error::Invalid {
                field: "iova",
                reason: format!(
                    "unmap of {iova:#x}..{end:#x} would split the mapping {:#x}..{:#x}",
                    m.iova,
                    m.iova + m.len as u64
                ),
            });
        }
        for m in touching {
            s.mappings.remove(&m.iova);
        }
        Ok(())
    }

    fn page_size(&self) -> usize {
        self.page_size
    }

    fn iova_ranges(&self) -> Vec<Range<u64>> {
        self.iova_ranges.clone()
    }
}

impl Drop for FakeIommu {
    fn drop(&mut self) {
        let left = self.state.get_mut().mappings.len();
        if left == 0 {
            return;
        }
        let list: Vec<String> = self
            .state
            .get_mut()
            .mappings
            .values()
            .map(|m| format!("iova {:#x} -> vaddr {:#x} (+{:#x})", m.iova, m.vaddr, m.len))
            .collect();
        let msg = format!(
            "FakeIommu dropped with {left} mapping(s) never unmapped: {}",
            list.join(", ")
        );
        if self.strict_drop && !std::thread::panicking() {
            panic!("{msg}");
        }
        eprintln!("{msg}");
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    fn page_buf(pages: usize) -> (Vec<u8>, NonNull<u8>) {
        let mut v = vec![0u8; (pages + 1) * 4096];
        let p = v.as_mut_ptr() as usize;
        let aligned = (p + 4095) & !4095;
        let ptr = NonNull::new(v.as_mut_ptr().wrapping_add(aligned - p)).unwrap();
        (v, ptr)
    }

    #[test]
    fn checks_alignment_overlap_and_whole_unmaps() {
        let f = FakeIommu::new();
        let (_keep, p) = page_buf(4);
        // SAFETY: (all maps below) the buffer outlives the fake's mappings,
        // which are undone before the end of the test; nothing does DMA.
        unsafe {
            assert!(f.map(p, 0x1000, 100).is_err(), "length not page multiple");
            assert!(f.map(p, 0x1001, 4096).is_err(), "iova misaligned");
            assert!(f
                .map(
                    NonNull::new(p.as_ptr().wrapping_add(1)).unwrap(),
                    0x1000,
                    4096
                )
                .is_err());
            f.map(p, 0x10000, 2 * 4096).unwrap();
            assert!(f.map(p, 0x11000, 4096).is_err(), "overlaps");
            f.map(p, 0x12000, 2 * 4096).unwrap();
        }
        assert_eq!(f.translate(0x10010), Some(p.as_ptr() as usize + 0x10));
        assert_eq!(f.translate(0x14000), None);
        assert!(f.unmap(0x10000, 4096).is_err(), "split");
        assert!(f.unmap(0x20000, 4096).is_err(), "nothing there");
        f.unmap(0x10000, 4 * 4096).unwrap();
        assert!(f.leftover().is_empty());
        assert_eq!(f.peak_mappings(), 2);
    }

    #[test]
    fn unmapped_virtual_memory_is_refused() {
        let f = FakeIommu::new();
        // A page-aligned address in the (unmapped on Linux) zero page area.
        let bogus = NonNull::new(0x1000 as *mut u8).unwrap();
        // SAFETY: the call must fail; nothing is mapped for DMA.
        let e = unsafe { f.map(bogus, 0, 4096) }.unwrap_err();
        if cfg!(target_os = "linux") {
            assert!(matches!(e, Error::Invalid { field: "vaddr", .. }), "{e}");
        }
    }

    #[test]
    fn injected_failures_fire_once_on_the_nth_call() {
        let f = FakeIommu::new();
        let (_keep, p) = page_buf(1);
        f.fail_nth_map(2);
        // SAFETY: the buffer outlives the mappings, undone below.
        unsafe {
            f.map(p, 0, 4096).unwrap();
            let e = f.map(p, 0x1000, 4096).unwrap_err();
            assert!(matches!(e, Error::InjectedFault { sequence: 2, .. }));
            f.map(p, 0x1000, 4096).unwrap();
        }
        f.fail_nth_unmap(1);
        assert!(f.unmap(0, 4096).is_err());
        assert_eq!(f.leftover().len(), 2, "failed unmap leaves the mapping");
        f.unmap(0, 0x2000).unwrap();
        assert_eq!(f.map_calls(), 3);
        assert_eq!(f.unmap_calls(), 2);
    }

    #[test]
    #[should_panic(expected = "never unmapped")]
    fn dropping_with_leftovers_panics() {
        let f = FakeIommu::new();
        let (_keep, p) = page_buf(1);
        // SAFETY: the buffer outlives the mapping (`f` is dropped first,
        // explicitly); nothing does DMA.
        unsafe { f.map(p, 0, 4096) }.unwrap();
        drop(f);
    }
}

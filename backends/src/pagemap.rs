//! Hugepage segments with physical addresses, for drivers without an IOMMU.
//!
//! A user-space driver on `uio_pci_generic` (or VFIO's no-IOMMU mode) gives
//! its device *physical* addresses, as ixy does and as DPDK does with
//! `--iova-mode=pa`. That needs memory whose physical address is known and
//! fixed, and physically contiguous over any buffer the device reads in one
//! go. [`Pagemap`] provides it:
//!
//! * every segment is its own mapping of hugepages (`MAP_HUGETLB`, 2 MiB by
//!   default), populated and `mlock`ed, so its pages are resident and never
//!   move (hugetlb pages are neither swapped nor migrated while mapped);
//! * its physical address is read from `/proc/self/pagemap` (one 64-bit
//!   entry per 4 KiB page: bit 63 "present", bits 0–54 the page frame
//!   number);
//! * a segment no larger than one hugepage is physically contiguous by
//!   construction. Larger segments are refused unless
//!   [`PagemapConfig::multi_hugepage_segments`] is set; then `create` maps
//!   single hugepages (holding up to [`PagemapConfig::max_candidate_pages`]
//!   of them) until it holds a run of physically adjacent ones, moves that
//!   run into one virtual range in physical order with `mremap` (Linux 5.16
//!   or later), gives the other candidates back, and verifies the result
//!   page by page — the way DPDK sorts its hugepages by physical address;
//! * [`iova`](SegmentSource::iova) returns the physical address, so the
//!   layers above treat it like any other device address;
//!   [`Pagemap::segment_iova`] gives it per segment and
//!   [`Pagemap::addr_of_iova`] maps a physical address back.
//!
//! Region mode flags: [`GUARD`](RegionMode::GUARD) is refused; the others
//! are accepted, and [`PERSISTENT`](RegionMode::PERSISTENT) and
//! [`SEGPHYSCONTIG`](RegionMode::SEGPHYSCONTIG) hold by construction.
//!
//! # What it needs
//!
//! * **Root** (precisely `CAP_SYS_ADMIN`): without it the kernel reports
//!   every frame number as 0. `open` probes this and fails with an error
//!   saying so.
//! * **Reserved hugepages**: `echo 64 > /proc/sys/vm/nr_hugepages` (2 MiB
//!   pages; `/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages` for
//!   1 GiB ones). `open` fails when none are reserved, `create` when none
//!   are free, each naming the counts and the command.
//! * A segment uses whole hugepages: a 64 KiB segment still takes a 2 MiB
//!   page. Pick `seg_size` equal to the hugepage size.
//!
//! # Safety and correctness
//!
//! * Segments are fresh, distinct mappings: they never overlap. Each stays
//!   mapped and locked until `discard` (or `Drop`) unlocks and unmaps it.
//! * The physical address recorded for a segment is read after the pages
//!   are populated and locked, and hugetlb pages do not move while mapped,
//!   so it stays right for the segment's life.
//! * Contiguity is verified on every 4 KiB entry of the segment (not
//!   assumed), so `iova(addr) = segment_pa + (addr - base)` is the true
//!   physical address of every byte.
//! * No Rust reference into segment memory is formed here: a device may
//!   write it at any time.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

use parking_lot::RwLock;
use skmem_traits::{Capabilities, Error, RegionMode, Result, SegmentGeometry, SegmentSource};

use crate::dma_mem::{self, HugepageSize, SegRecord, SegmentTable};

/// The file this backend reads physical addresses from.
pub const PAGEMAP_PATH: &str = "/proc/self/pagemap";

const PM_PRESENT: u64 = 1 << 63;
const PM_PFN_MASK: u64 = (1 << 55) - 1;

/// Options for [`Pagemap`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PagemapConfig {
    /// The hugepage size segments are made of (2 MiB by default).
    pub hugepage_size: HugepageSize,
    /// Accept segments larger than one hugepage: `create` then gathers
    /// hugepages until it holds a physically contiguous run and moves that
    /// run into one virtual range.
    pub multi_hugepage_segments: bool,
    /// The most candidate hugepages `create` holds at once while looking
    /// for a contiguous run, before it gives up.
    pub max_candidate_pages: usize,
}

impl Default for PagemapConfig {
    fn default() -> Self {
        PagemapConfig {
            hugepage_size: HugepageSize::Size2M,
            multi_hugepage_segments: false,
            max_candidate_pages: 64,
        }
    }
}

impl PagemapConfig {
    /// The same config with hugepages of `size`.
    pub fn with_hugepage_size(mut self, size: HugepageSize) -> Self {
        self.hugepage_size = size;
        self
    }

    /// The same config accepting multi-hugepage segments, searching at
    /// most `max_candidate_pages` hugepages for a contiguous run.
    pub fn with_multi_hugepage_segments(mut self, max_candidate_pages: usize) -> Self {
        self.multi_hugepage_segments = true;
        self.max_candidate_pages = max_candidate_pages;
        self
    }
}

/// Reads pagemap entries for `count` base pages starting at `vaddr`.
fn read_entries(file: &File, vaddr: usize, count: usize) -> io::Result<Vec<u64>> {
    let page = dma_mem::base_page_size();
    let mut bytes = vec![0u8; count * 8];
    file.read_exact_at(&mut bytes, (vaddr / page) as u64 * 8)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

fn open_pagemap() -> Result<File> {
    File::open(PAGEMAP_PATH).map_err(|e| Error::Invalid {
        field: "pagemap",
        reason: format!("cannot open {PAGEMAP_PATH}: {e} (needs a Linux /proc)"),
    })
}

#[cold]
fn no_pfn_error() -> Error {
    Error::Invalid {
        field: "pagemap",
        reason: format!(
            "{PAGEMAP_PATH} shows physical frame numbers as 0: reading them needs \
             CAP_SYS_ADMIN (run as root)"
        ),
    }
}

/// The physical address of the byte at `addr`, read from
/// `/proc/self/pagemap`. The page must be resident (touch it first); the
/// answer is only stable for memory that cannot move (locked hugepages).
pub fn virt_to_phys(addr: *const u8) -> Result<u64> {
    let file = open_pagemap()?;
    let page = dma_mem::base_page_size();
    let entry = read_entries(&file, addr as usize, 1)
        .map_err(|e| Error::os("read of /proc/self/pagemap", e.raw_os_error().unwrap_or(0)))?[0];
    if entry & PM_PRESENT == 0 {
        return Err(Error::Invalid {
            field: "addr",
            reason: format!("{addr:p} is not resident (no physical page)"),
        });
    }
    let pfn = entry & PM_PFN_MASK;
    if pfn == 0 {
        return Err(no_pfn_error());
    }
    Ok(pfn * page as u64 + (addr as usize % page) as u64)
}

/// Checks that this process can read frame numbers, on a page of its own.
fn probe_pfn_access(file: &File) -> Result<()> {
    let page = dma_mem::base_page_size();
    let mut probe = vec![0u8; 2 * page];
    // Touch every byte's page so the one we read is resident.
    probe.iter_mut().step_by(64).for_each(|b| *b = 1);
    let addr = (probe.as_ptr() as usize).next_multiple_of(page);
    let entry = read_entries(file, addr, 1)
        .map_err(|e| Error::os("read of /proc/self/pagemap", e.raw_os_error().unwrap_or(0)))?[0];
    std::hint::black_box(&probe);
    if entry & PM_PRESENT != 0 && entry & PM_PFN_MASK == 0 {
        return Err(no_pfn_error());
    }
    Ok(())
}

/// A segment source of locked hugepages with physical addresses.
/// See the [module docs](self).
#[derive(Debug)]
pub struct Pagemap {
    geometry: SegmentGeometry,
    hugepage: HugepageSize,
    map_len: usize,
    max_candidates: usize,
    pagemap: File,
    table: RwLock<SegmentTable>,
}

impl Pagemap {
    /// The hugepage size segments are made of.
    pub fn hugepage_size(&self) -> HugepageSize {
        self.hugepage
    }

    /// Bytes mapped per segment (`seg_size` rounded up to whole hugepages).
    pub fn mapped_len(&self) -> usize {
        self.map_len
    }

    /// The physical address of live segment `index`'s first byte.
    #[inline]
    pub fn segment_iova(&self, index: u32) -> Option<u64> {
        self.table.read().get(index).map(|r| r.dma)
    }

    /// The virtual address of physical address `pa` when it lies in a live
    /// segment of this source.
    pub fn addr_of_iova(&self, pa: u64) -> Option<NonNull<u8>> {
        self.table.read().addr_of_dma(pa)
    }

    /// How many segments are live.
    pub fn live_segments(&self) -> usize {
        self.table.read().live()
    }

    /// Maps `len` bytes of hugepages, locks them, and reads the physical
    /// address of every base page. On error nothing stays mapped.
    fn map_locked(&self, len: usize) -> Result<(NonNull<u8>, Vec<u64>)> {
        let base = dma_mem::map_hugepages(len, self.hugepage)?;
        let fail = |e: Error| {
            // SAFETY: `base` is the mapping made above; nothing else saw it.
            unsafe { dma_mem::unmap(base, len) };
            Err(e)
        };
        // SAFETY: mlock only changes residency of our own fresh mapping.
        if unsafe { libc::mlock(base.as_ptr().cast(), len) } != 0 {
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return fail(Error::Invalid {
                field: "mlock",
                reason: format!(
                    "mlock of {len} bytes of hugepages failed (errno {errno}): raise \
                     RLIMIT_MEMLOCK (`ulimit -l unlimited`) or run as root"
                ),
            });
        }
        let page = dma_mem::base_page_size();
        let entries = match read_entries(&self.pagemap, base.as_ptr() as usize, len / page) {
            Ok(e) => e,
            Err(e) => {
                return fail(Error::os(
                    "read of /proc/self/pagemap",
                    e.raw_os_error().unwrap_or(0),
                ))
            }
        };
        if entries.iter().any(|&e| e & PM_PRESENT == 0) {
            return fail(Error::Invalid {
                field: "pagemap",
                reason: "a populated, locked hugepage mapping reads as not present".into(),
            });
        }
        if entries.iter().any(|&e| e & PM_PFN_MASK == 0) {
            return fail(no_pfn_error());
        }
        Ok((base, entries))
    }

    /// The physical address of the first page when every page follows the
    /// one before it physically.
    fn contiguous_pa(entries: &[u64]) -> Option<u64> {
        let pfn0 = entries.first()? & PM_PFN_MASK;
        entries
            .iter()
            .enumerate()
            .all(|(k, &e)| e & PM_PFN_MASK == pfn0 + k as u64)
            .then(|| pfn0 * dma_mem::base_page_size() as u64)
    }

    /// A segment of exactly one hugepage: contiguous by construction, and
    /// verified anyway.
    fn create_single(&self) -> Result<SegRecord> {
        let (base, entries) = self.map_locked(self.map_len)?;
        match Self::contiguous_pa(&entries) {
            Some(pa) => Ok(SegRecord {
                base,
                map_len: self.map_len,
                dma: pa,
            }),
            None => {
                self.release(base, self.map_len);
                Err(Error::Invalid {
                    field: "pagemap",
                    reason: "a hugepage reads as physically discontiguous".into(),
                })
            }
        }
    }

    /// A segment of `k > 1` hugepages: gather single hugepages until `k` of
    /// them are physically adjacent, then move those into one virtual range
    /// in physical order (`mremap`) and give the others back.
    fn create_multi(&self) -> Result<SegRecord> {
        let hp = self.hugepage.bytes();
        let k = self.map_len / hp;
        // Candidates: physical address -> virtual base of a one-page mapping.
        let mut held: std::collections::BTreeMap<u64, NonNull<u8>> = Default::default();
        let mut run = None;
        let mut stop = None;
        while held.len() < self.max_candidates.max(k) {
            let (va, entries) = match self.map_locked(hp) {
                Ok(m) => m,
                Err(e) => {
                    stop = Some(e);
                    break;
                }
            };
            let pa = Self::contiguous_pa(&entries).expect("one hugepage is contiguous");
            held.insert(pa, va);
            // Does a run of `k` now pass through `pa`? Walk down, then up.
            let mut lo = pa;
            while lo >= hp as u64 && held.contains_key(&(lo - hp as u64)) {
                lo -= hp as u64;
            }
            let mut len = 0;
            while held.contains_key(&(lo + (len * hp) as u64)) {
                len += 1;
            }
            if len >= k {
                run = Some(lo);
                break;
            }
        }
        let result = match run {
            Some(lo) => self.assemble(&mut held, lo, k),
            None => Err(match stop {
                Some(e) if !e.is_exhaustion() || held.len() < k => e,
                _ => Error::Invalid {
                    field: "seg_size",
                    reason: format!(
                        "found no {k} physically contiguous {} hugepages among {} candidates; \
                         reserve more hugepages, raise PagemapConfig::max_candidate_pages, \
                         or use segments of at most one hugepage",
                        self.hugepage.label(),
                        held.len()
                    ),
                },
            }),
        };
        for (_, va) in held {
            self.release(va, hp);
        }
        result
    }

    /// Moves the `k` held pages starting at physical `lo` into one fresh
    /// virtual range, removing them from `held`.
    fn assemble(
        &self,
        held: &mut std::collections::BTreeMap<u64, NonNull<u8>>,
        lo: u64,
        k: usize,
    ) -> Result<SegRecord> {
        let hp = self.hugepage.bytes();
        // Reserve an aligned virtual range to move the pages into.
        let slot = dma_mem::reserve_aligned(self.map_len, hp)?;
        for j in 0..k {
            let pa = lo + (j * hp) as u64;
            let from = held.remove(&pa).expect("page of the run is held");
            let to = slot.as_ptr().wrapping_add(j * hp);
            // SAFETY: `from` is a one-hugepage mapping of ours that nothing
            // references; `to` lies in our own reservation, which the move
            // replaces.
            let moved = unsafe {
                libc::mremap(
                    from.as_ptr().cast(),
                    hp,
                    hp,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    to.cast::<libc::c_void>(),
                )
            };
            if moved != to.cast::<libc::c_void>() {
                let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                // Pages already moved are part of `slot`; the one that failed
                // stays at `from`.
                self.release(from, hp);
                // SAFETY: the reservation (with the pages moved into it) is
                // ours and nothing references it.
                unsafe {
                    libc::munlock(slot.as_ptr().cast(), self.map_len);
                    dma_mem::unmap(slot, self.map_len);
                }
                return Err(Error::Invalid {
                    field: "seg_size",
                    reason: format!(
                        "mremap of a hugepage failed (errno {errno}); moving hugetlb pages \
                         needs Linux 5.16 or later: use segments of at most one hugepage"
                    ),
                });
            }
        }
        // Verify the assembled segment page by page.
        let page = dma_mem::base_page_size();
        let entries = read_entries(&self.pagemap, slot.as_ptr() as usize, self.map_len / page)
            .map_err(|e| Error::os("read of /proc/self/pagemap", e.raw_os_error().unwrap_or(0)));
        match entries.map(|e| Self::contiguous_pa(&e)) {
            Ok(Some(pa)) if pa == lo => Ok(SegRecord {
                base: slot,
                map_len: self.map_len,
                dma: pa,
            }),
            other => {
                self.release(slot, self.map_len);
                Err(other.err().unwrap_or_else(|| Error::Invalid {
                    field: "pagemap",
                    reason: "an assembled hugepage run reads as discontiguous".into(),
                }))
            }
        }
    }

    fn release(&self, base: NonNull<u8>, len: usize) {
        // SAFETY: `[base, base + len)` is a mapping made by this source that
        // no live segment uses any more; munlock cannot fail on it.
        unsafe {
            libc::munlock(base.as_ptr().cast(), len);
            dma_mem::unmap(base, len);
        }
    }
}

// SAFETY:
// * every segment is a fresh hugepage mapping of `map_len >= seg_size`
//   bytes, aligned to the hugepage size (>= `align`, checked in `open`),
//   read-write, overlapping nothing;
// * it stays mapped until `discard` (or `Drop`);
// * `CONTIGUOUS` is not reported;
// * `iova` returns the physical address verified for every page of the
//   segment;
// * the table is behind a lock; the pagemap file is read with positioned
//   reads, which need no shared cursor.
unsafe impl SegmentSource for Pagemap {
    type Config = PagemapConfig;
    const NAME: &'static str = "pagemap";

    fn open(geometry: &SegmentGeometry, config: &PagemapConfig) -> Result<Self> {
        if geometry.mode.contains(RegionMode::GUARD) {
            return Err(Error::Unsupported {
                source_name: Self::NAME,
                operation: "guard regions (DMA memory must be accessible)",
            });
        }
        let page = dma_mem::base_page_size();
        if geometry.seg_size == 0 || geometry.seg_size % page != 0 {
            return Err(Error::invalid_param(
                "seg_size",
                geometry.seg_size as u64,
                "must be a non-zero multiple of the page size",
            ));
        }
        let hp = config.hugepage_size.bytes();
        if !geometry.align.is_power_of_two() || geometry.align > hp {
            return Err(Error::invalid_param(
                "align",
                geometry.align as u64,
                "must be a power of two no larger than the hugepage size",
            ));
        }
        geometry.span_len()?;
        if geometry.seg_size > hp && !config.multi_hugepage_segments {
            return Err(Error::invalid_param(
                "seg_size",
                geometry.seg_size as u64,
                "larger than one hugepage, so not physically contiguous by construction; \
                 use at most the hugepage size or set PagemapConfig::multi_hugepage_segments",
            ));
        }
        let map_len = geometry.seg_size.next_multiple_of(hp);
        config.hugepage_size.check_reserved(map_len)?;
        let pagemap = open_pagemap()?;
        probe_pfn_access(&pagemap)?;
        Ok(Pagemap {
            geometry: *geometry,
            hugepage: config.hugepage_size,
            map_len,
            max_candidates: config.max_candidate_pages,
            pagemap,
            table: RwLock::new(SegmentTable::new(geometry.seg_count, geometry.seg_size)),
        })
    }

    fn geometry(&self) -> &SegmentGeometry {
        &self.geometry
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::IOVA | Capabilities::PHYS_CONTIG
    }

    unsafe fn create(&self, index: u32) -> Result<NonNull<u8>> {
        self.table.read().check_creatable(index, Self::NAME)?;
        let rec = if self.map_len == self.hugepage.bytes() {
            self.create_single()?
        } else {
            self.create_multi()?
        };
        self.table.write().insert(index, rec);
        Ok(rec.base)
    }

    fn is_wired(&self, index: u32) -> bool {
        // Every segment is mlocked as it is created (its physical addresses
        // must not change) and stays locked until discarded.
        self.table.read().is_live(index)
    }

    unsafe fn discard(&self, index: u32, base: NonNull<u8>) {
        let rec = self.table.write().remove_at(index, base, Self::NAME);
        self.release(base, rec.map_len);
    }

    #[inline]
    fn iova(&self, addr: *const u8) -> Option<u64> {
        self.table.read().dma_of(addr as usize)
    }
}

impl Drop for Pagemap {
    fn drop(&mut self) {
        for (_, rec) in self.table.get_mut().drain() {
            self.release(rec.base, rec.map_len);
        }
    }
}

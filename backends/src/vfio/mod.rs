//! Segments DMA-mapped through an IOMMU (VFIO).
//!
//! A user-space NIC driver hands its device *I/O virtual addresses*
//! (IOVAs); the IOMMU translates them to the driver's memory. [`Vfio`] is a
//! segment source whose every segment is mapped for DMA when it is created
//! and unmapped when it is discarded, so a packet pool built on it always
//! knows the IOVA of each buffer:
//!
//! * **create(i)** — map fresh memory (small pages, or hugepages when
//!   [`VfioConfig::memory`] says so), take an IOVA range for it from the
//!   domain's allocator, and map it in the IOMMU. A failure at any step
//!   undoes the earlier ones before the error is returned: nothing stays
//!   mapped, no IOVA stays taken, no memory stays allocated.
//! * **discard(i)** — unmap the IOVA range in the IOMMU, give the range
//!   back to the allocator (the next segment reuses it), unmap the memory.
//! * **lookups** — [`iova`](SegmentSource::iova) for any address in a live
//!   segment, [`Vfio::segment_iova`] per index, and the other way
//!   [`Vfio::addr_of_iova`] (and [`DmaDomain::addr_of_iova`] across every
//!   source of a domain).
//!
//! Region mode flags: [`GUARD`](RegionMode::GUARD) is refused (DMA memory
//! must be accessible); the others are accepted, and
//! [`PERSISTENT`](RegionMode::PERSISTENT) holds by construction since VFIO
//! pins every mapped page. Segments are contiguous in IOVA space (one
//! mapping each), not physically; `SEGPHYSCONTIG` is left to
//! [`Pagemap`](crate::Pagemap).
//!
//! # Domains: one IOVA space, several regions
//!
//! A region opens one source ([`SegmentSource::open`]), but a packet pool
//! has several regions (metadata, buffers, large buffers) whose buffers the
//! same device reaches through the same container. They therefore share a
//! [`DmaDomain`]: the [`Iommu`] (the container) and one [`IovaAllocator`].
//! [`VfioConfig`] carries an `Arc<DmaDomain>`; every region built with a
//! clone of that config maps into the same IOVA space without overlap.
//!
//! # The `Iommu` trait and the fake
//!
//! The IOMMU operations sit behind the small [`Iommu`] trait (map, unmap,
//! page size, usable IOVA ranges). [`VfioContainer`] is the real one;
//! [`FakeIommu`] records mappings in a table and checks what the kernel
//! checks (alignment, overlap, whole-mapping unmaps, that the memory is
//! mapped), can be told to fail the n-th map or unmap, and complains about
//! mappings never undone. Everything in this module except the ioctls runs
//! the same code on either, so the tests on the fake exercise the real path.
//!
//! # Why not `vfio-ioctls`
//!
//! The `vfio-ioctls` crate (0.10) builds without its `kvm` feature, but its
//! container API does not fit: `VfioContainer::new` opens `/dev/vfio/vfio`
//! and only attaches a group (by number, not path) as a side effect of
//! opening a *device* through `VfioDevice::new(sysfs_path, ..)`, and it
//! selects the IOMMU type at that point; there is no public way to attach a
//! group given its `/dev/vfio/<N>` path and then map DMA without also
//! taking over a device. It also brings `vm-memory` and `vmm-sys-util`.
//! So [`VfioContainer`] issues the seven ioctls it needs
//! (`VFIO_GET_API_VERSION`, `VFIO_CHECK_EXTENSION`, `VFIO_GROUP_GET_STATUS`,
//! `VFIO_GROUP_SET_CONTAINER`, `VFIO_SET_IOMMU`, `VFIO_IOMMU_MAP_DMA`,
//! `VFIO_IOMMU_UNMAP_DMA`, plus `VFIO_IOMMU_GET_INFO` and
//! `VFIO_GROUP_GET_DEVICE_FD`) with `libc::ioctl`, using the struct
//! layouts and constants of `vfio-bindings`.
//!
//! # Running on real hardware
//!
//! 1. Enable the IOMMU: boot with `intel_iommu=on iommu=pt` (Intel) or
//!    `amd_iommu=on` (AMD); `ls /sys/kernel/iommu_groups/` must list groups.
//! 2. Load the driver: `modprobe vfio-pci`.
//! 3. Find the NIC, its vendor/device id and its IOMMU group:
//!    ```text
//!    lspci -nn -D | grep -i ethernet
//!    #   0000:01:00.0 Ethernet controller [0200]: Intel ... [8086:10fb]
//!    readlink /sys/bus/pci/devices/0000:01:00.0/iommu_group
//!    #   ../../../kernel/iommu_groups/17
//!    ls /sys/kernel/iommu_groups/17/devices   # all must go to vfio-pci
//!    ```
//! 4. Unbind the kernel driver and bind vfio-pci, either per device:
//!    ```text
//!    echo 0000:01:00.0 > /sys/bus/pci/devices/0000:01:00.0/driver/unbind
//!    echo vfio-pci     > /sys/bus/pci/devices/0000:01:00.0/driver_override
//!    echo 0000:01:00.0 > /sys/bus/pci/drivers_probe
//!    ```
//!    or by id (binds every unbound device with that vendor and device):
//!    `echo 8086 10fb > /sys/bus/pci/drivers/vfio-pci/new_id`.
//! 5. `/dev/vfio/17` now exists; run as root or `chown` it to your user.
//! 6. VFIO pins every mapped page and charges it to `RLIMIT_MEMLOCK`:
//!    raise it (`ulimit -l unlimited`, or at least the total segment bytes)
//!    in the shell that runs the program.
//! 7. For hugepage segments reserve pages: `echo 64 > /proc/sys/vm/nr_hugepages`.
//! 8. Run `cargo run -p skmem-backends --example vfio_pool -- /dev/vfio/17`;
//!    it opens the group, maps segments, and prints their IOVAs. Without a
//!    group path (or when opening it fails, with the reason) it runs the
//!    same code on [`FakeIommu`].
//!
//! Then [`VfioContainer::device_fd`] opens the NIC (`0000:01:00.0`) for BAR
//! mapping. Machines without an IOMMU can only use VFIO's unsafe no-IOMMU
//! mode, which has no DMA mapping at all; use [`Pagemap`](crate::Pagemap)
//! (physical addresses) there.
//!
//! # Safety and correctness
//!
//! * Each segment is its own fresh anonymous mapping, so segments never
//!   overlap each other or any other allocation; the mapping lives until
//!   `discard` (or the source's `Drop`) unmaps it.
//! * A segment's memory is mapped in the IOMMU for its whole life, and
//!   unmapped in the IOMMU *before* its virtual memory is unmapped. If the
//!   IOMMU refuses the unmap, the IOVA range is quarantined (never handed
//!   out again until [`DmaDomain::retry_failed_unmaps`] succeeds) and the
//!   memory is unmapped anyway: VFIO holds its own references to pinned
//!   pages, so the device can never reach memory reused by someone else.
//! * IOVA ranges come from one [`IovaAllocator`] per domain under its lock:
//!   never overlapping, aligned to the IOMMU page (the hugepage size for
//!   hugepage segments), reused after discard.
//! * The device may write segment memory at any time: this module never
//!   forms a Rust reference to it.
//! * The segment table is behind a read-write lock; `create`/`discard` take
//!   it only to record or remove an entry, so operations on distinct
//!   indices run concurrently, and IOMMU calls happen outside it.

#[cfg(target_os = "linux")]
mod container;
mod fake;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use skmem_traits::{Capabilities, Error, RegionMode, Result, SegmentGeometry, SegmentSource};

#[cfg(target_os = "linux")]
pub use container::{VfioContainer, CONTAINER_PATH};
pub use fake::{FakeIommu, FakeMapping};

use crate::dma_mem::{self, HugepageSize, SegRecord, SegmentTable};
use crate::iova::IovaAllocator;

/// The IOMMU operations a DMA domain needs.
///
/// [`VfioContainer`] implements it with ioctls, [`FakeIommu`] with a table.
pub trait Iommu: Send + Sync + fmt::Debug {
    /// Lets the device reach `[vaddr, vaddr + len)` at
    /// `[iova, iova + len)`. All three are multiples of
    /// [`page_size`](Self::page_size).
    ///
    /// # Safety
    ///
    /// * `[vaddr, vaddr + len)` is memory mapped in this process that the
    ///   caller owns, and stays mapped until [`unmap`](Self::unmap) of this
    ///   IOVA range succeeds (an IOMMU that pins pages, as VFIO does, also
    ///   tolerates the memory being unmapped first);
    /// * while mapped, the device may read and write that memory at any
    ///   moment: no Rust reference to it may exist.
    unsafe fn map(&self, vaddr: NonNull<u8>, iova: u64, len: usize) -> Result<()>;

    /// Removes the device's access to `[iova, iova + len)`, which must be
    /// exactly one or more whole earlier mappings.
    fn unmap(&self, iova: u64, len: usize) -> Result<()>;

    /// The smallest IOMMU page: every map is aligned to it.
    fn page_size(&self) -> usize {
        4096
    }

    /// The IOVA windows the IOMMU can translate (end exclusive), or empty
    /// when it does not say.
    fn iova_ranges(&self) -> Vec<Range<u64>> {
        Vec::new()
    }
}

/// The IOVA space a [`DmaDomain`] uses unless told otherwise: 4 GiB up to
/// 512 GiB. It stays clear of the low 4 GiB (where x86 places the MSI
/// window at `0xfee0_0000`) and inside the 39-bit address width every
/// VT-d and AMD-Vi IOMMU supports.
pub const DEFAULT_IOVA_SPACE: Range<u64> = (1 << 32)..(1 << 39);

/// One live DMA mapping of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaMapping {
    /// Device address of the first byte.
    pub iova: u64,
    /// Virtual address of the first byte.
    pub vaddr: usize,
    /// Bytes mapped.
    pub len: usize,
}

#[derive(Debug)]
struct DomainState {
    iova: IovaAllocator,
    by_iova: BTreeMap<u64, DmaMapping>,
    by_vaddr: BTreeMap<usize, u64>,
    /// IOVA ranges whose unmap failed: still taken, still (maybe) mapped.
    quarantined: Vec<(u64, usize)>,
    unmap_failures: u64,
}

/// An IOMMU and the IOVA space allocated in it, shared by every source
/// (region) whose memory one device reaches.
pub struct DmaDomain {
    iommu: Arc<dyn Iommu>,
    page_size: usize,
    state: Mutex<DomainState>,
}

impl fmt::Debug for DmaDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("DmaDomain")
            .field("iommu", &self.iommu)
            .field("space", &s.iova.space())
            .field("mappings", &s.by_iova.len())
            .field("mapped_bytes", &s.iova.allocated_bytes())
            .finish()
    }
}

impl DmaDomain {
    /// A domain on `iommu` over [`DEFAULT_IOVA_SPACE`], less whatever the
    /// IOMMU reports it cannot translate.
    pub fn new(iommu: Arc<dyn Iommu>) -> Result<Arc<Self>> {
        Self::with_iova_space(iommu, DEFAULT_IOVA_SPACE)
    }

    /// A domain on `iommu` allocating IOVAs in `space` (rounded in to the
    /// IOMMU page), less whatever the IOMMU reports it cannot translate.
    pub fn with_iova_space(iommu: Arc<dyn Iommu>, space: Range<u64>) -> Result<Arc<Self>> {
        let page = iommu.page_size().max(dma_mem::base_page_size());
        if !page.is_power_of_two() {
            return Err(Error::invalid_param(
                "page_size",
                page as u64,
                "the IOMMU page size must be a power of two",
            ));
        }
        let mask = page as u64 - 1;
        let start = space.start.checked_add(mask).map(|s| s & !mask);
        let end = space.end & !mask;
        let start = start.filter(|&s| s < end).ok_or(Error::invalid_param(
            "space.end",
            space.end,
            "the IOVA space holds no whole IOMMU page",
        ))?;
        let mut iova = IovaAllocator::new(start..end, page as u64)?;
        // Take out every gap between the windows the IOMMU can translate.
        let mut windows = iommu.iova_ranges();
        if !windows.is_empty() {
            windows.sort_by_key(|r| r.start);
            // Windows shrink inward to whole pages; what lies between them
            // (and around them) is reserved so `alloc` never returns it.
            let mut cursor = start;
            for w in &windows {
                let ws = w.start.checked_add(mask).map_or(u64::MAX, |s| s & !mask);
                let we = w.end & !mask;
                if ws >= we {
                    continue;
                }
                let gap_end = ws.min(end);
                if gap_end > cursor {
                    iova.reserve(cursor, gap_end - cursor)?;
                }
                cursor = cursor.max(we);
                if cursor >= end {
                    break;
                }
            }
            if cursor < end {
                iova.reserve(cursor, end - cursor)?;
            }
            if iova.free_bytes() == 0 {
                return Err(Error::Invalid {
                    field: "space",
                    reason: format!(
                        "the IOVA space {start:#x}..{end:#x} lies outside every window \
                         the IOMMU translates ({windows:x?})"
                    ),
                });
            }
        }
        Ok(Arc::new(DmaDomain {
            iommu,
            page_size: page,
            state: Mutex::new(DomainState {
                iova,
                by_iova: BTreeMap::new(),
                by_vaddr: BTreeMap::new(),
                quarantined: Vec::new(),
                unmap_failures: 0,
            }),
        }))
    }

    /// Opens a VFIO container on the group at `group_path`
    /// (`/dev/vfio/<N>`) and makes a domain of it. See the
    /// [module docs](self) for how to get such a group.
    #[cfg(target_os = "linux")]
    pub fn open_vfio_group(group_path: impl AsRef<std::path::Path>) -> Result<Arc<Self>> {
        Self::new(Arc::new(VfioContainer::open(group_path)?))
    }

    /// The IOMMU this domain maps through.
    pub fn iommu(&self) -> &Arc<dyn Iommu> {
        &self.iommu
    }

    /// The alignment granule of every mapping (IOMMU page, at least the
    /// system page).
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The IOVA of `addr` when it lies in memory mapped in this domain.
    pub fn iova_of(&self, addr: *const u8) -> Option<u64> {
        let addr = addr as usize;
        let s = self.state.lock();
        let (&va, &iova) = s.by_vaddr.range(..=addr).next_back()?;
        let m = s.by_iova.get(&iova)?;
        let off = addr - va;
        (off < m.len).then_some(iova + off as u64)
    }

    /// The virtual address the device reaches at `iova`, when it lies in a
    /// mapping of this domain.
    pub fn addr_of_iova(&self, iova: u64) -> Option<NonNull<u8>> {
        let s = self.state.lock();
        let (_, m) = s.by_iova.range(..=iova).next_back()?;
        let off = iova - m.iova;
        (off < m.len as u64).then(|| {
            NonNull::new((m.vaddr + off as usize) as *mut u8).expect("mapped address is non-null")
        })
    }

    /// Every live mapping, in IOVA order.
    pub fn mappings(&self) -> Vec<DmaMapping> {
        self.state.lock().by_iova.values().copied().collect()
    }

    /// IOVA bytes taken (live mappings and quarantined ranges).
    pub fn allocated_iova_bytes(&self) -> u64 {
        self.state.lock().iova.allocated_bytes()
    }

    /// IOVA bytes still free.
    pub fn free_iova_bytes(&self) -> u64 {
        self.state.lock().iova.free_bytes()
    }

    /// How many unmaps the IOMMU refused.
    pub fn unmap_failures(&self) -> u64 {
        self.state.lock().unmap_failures
    }

    /// IOVA ranges held back because their unmap failed, as `(iova, len)`.
    pub fn quarantined(&self) -> Vec<(u64, usize)> {
        self.state.lock().quarantined.clone()
    }

    /// Tries again to unmap every quarantined range; those that succeed go
    /// back to the IOVA allocator. Returns how many are still quarantined.
    pub fn retry_failed_unmaps(&self) -> usize {
        let pending = std::mem::take(&mut self.state.lock().quarantined);
        let mut still = Vec::new();
        for (iova, len) in pending {
            if self.iommu.unmap(iova, len).is_ok() {
                let mut s = self.state.lock();
                s.iova
                    .free(iova, len as u64)
                    .expect("quarantined IOVA range is allocated");
            } else {
                still.push((iova, len));
            }
        }
        let mut s = self.state.lock();
        s.quarantined.extend(still);
        s.quarantined.len()
    }

    /// Takes an IOVA range for `[vaddr, vaddr + len)` and maps it. On any
    /// failure nothing stays taken or mapped.
    ///
    /// # Safety
    ///
    /// As [`Iommu::map`]: the memory is the caller's, stays mapped until
    /// [`unmap`](Self::unmap) returns, and is never referenced by a Rust
    /// reference while mapped.
    #[cold]
    #[inline(never)]
    unsafe fn map(&self, vaddr: NonNull<u8>, len: usize, align: u64) -> Result<u64> {
        let iova = {
            let mut s = self.state.lock();
            match s.iova.alloc(len as u64, align) {
                Some(iova) => iova,
                None => {
                    let space = s.iova.space();
                    return Err(Error::Exhausted {
                        name: format!(
                            "IOVA space {:#x}..{:#x} ({} bytes free, {len} needed)",
                            space.start,
                            space.end,
                            s.iova.free_bytes()
                        ),
                        capacity: space.end - space.start,
                        unit: "bytes",
                    });
                }
            }
        };
        // SAFETY: forwarded from this function's contract; `iova` was just
        // taken from the allocator, so no live mapping uses it.
        if let Err(e) = unsafe { self.iommu.map(vaddr, iova, len) } {
            self.state
                .lock()
                .iova
                .free(iova, len as u64)
                .expect("IOVA range taken above is allocated");
            return Err(e);
        }
        let mut s = self.state.lock();
        let va = vaddr.as_ptr() as usize;
        s.by_iova.insert(
            iova,
            DmaMapping {
                iova,
                vaddr: va,
                len,
            },
        );
        s.by_vaddr.insert(va, iova);
        Ok(iova)
    }

    /// Unmaps a mapping made by [`map`](Self::map) and frees its IOVA
    /// range; when the IOMMU refuses, the range is quarantined instead and
    /// the error returned. Either way the mapping leaves the lookup tables.
    #[cold]
    #[inline(never)]
    fn unmap(&self, iova: u64, len: usize) -> Result<()> {
        {
            let mut s = self.state.lock();
            let m = s
                .by_iova
                .remove(&iova)
                .expect("unmap of an IOVA this domain never mapped");
            s.by_vaddr.remove(&m.vaddr);
        }
        let result = self.iommu.unmap(iova, len);
        let mut s = self.state.lock();
        match result {
            Ok(()) => {
                s.iova
                    .free(iova, len as u64)
                    .expect("mapped IOVA range is allocated");
                Ok(())
            }
            Err(e) => {
                s.unmap_failures += 1;
                s.quarantined.push((iova, len));
                Err(e)
            }
        }
    }
}

/// What segment memory is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentMemory {
    /// Small pages from an anonymous mapping per segment.
    #[default]
    Anonymous,
    /// Hugepages (`MAP_HUGETLB`) of the given size; each segment is rounded
    /// up to whole hugepages. Needs pages reserved in the kernel's pool.
    Hugepages(HugepageSize),
}

/// Options for [`Vfio`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VfioConfig {
    /// The DMA domain (IOMMU + IOVA space) segments are mapped in. Required:
    /// `open` fails without one. Clone the `Arc` into the config of every
    /// region one device must reach.
    pub domain: Option<Arc<DmaDomain>>,
    /// Small pages or hugepages.
    pub memory: SegmentMemory,
}

impl VfioConfig {
    /// A config mapping small-page segments in `domain`.
    pub fn new(domain: Arc<DmaDomain>) -> Self {
        VfioConfig {
            domain: Some(domain),
            memory: SegmentMemory::Anonymous,
        }
    }

    /// The same config with hugepage segments of `size`.
    pub fn with_hugepages(mut self, size: HugepageSize) -> Self {
        self.memory = SegmentMemory::Hugepages(size);
        self
    }
}

/// A segment source whose segments are DMA-mapped in a [`DmaDomain`].
/// See the [module docs](self).
pub struct Vfio {
    geometry: SegmentGeometry,
    domain: Arc<DmaDomain>,
    memory: SegmentMemory,
    /// Bytes mapped per segment (`seg_size` rounded to the memory's page).
    map_len: usize,
    /// Alignment of the segment's virtual address.
    mem_align: usize,
    /// Alignment of the segment's IOVA.
    iova_align: u64,
    table: RwLock<SegmentTable>,
    unmap_failures: AtomicU64,
}

impl fmt::Debug for Vfio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vfio")
            .field("geometry", &self.geometry)
            .field("memory", &self.memory)
            .field("live_segments", &self.live_segments())
            .finish()
    }
}

impl Vfio {
    /// The domain segments are mapped in.
    pub fn domain(&self) -> &Arc<DmaDomain> {
        &self.domain
    }

    /// What segment memory is made of.
    pub fn memory(&self) -> SegmentMemory {
        self.memory
    }

    /// Bytes mapped (virtually and in the IOMMU) per segment.
    pub fn mapped_len(&self) -> usize {
        self.map_len
    }

    /// The IOVA of live segment `index`'s first byte.
    #[inline]
    pub fn segment_iova(&self, index: u32) -> Option<u64> {
        self.table.read().get(index).map(|r| r.dma)
    }

    /// The virtual address of `iova` when it lies in a live segment of this
    /// source.
    pub fn addr_of_iova(&self, iova: u64) -> Option<NonNull<u8>> {
        self.table.read().addr_of_dma(iova)
    }

    /// How many segments are live.
    pub fn live_segments(&self) -> usize {
        self.table.read().live()
    }

    /// How many discards found the IOMMU refusing to unmap (their IOVA
    /// ranges are quarantined in the domain).
    pub fn unmap_failures(&self) -> u64 {
        self.unmap_failures.load(Ordering::Relaxed)
    }

    /// Allocates memory for one segment.
    fn map_memory(&self) -> Result<NonNull<u8>> {
        match self.memory {
            SegmentMemory::Anonymous => dma_mem::map_anonymous(self.map_len, self.mem_align),
            SegmentMemory::Hugepages(size) => dma_mem::map_hugepages(self.map_len, size),
        }
    }

    /// IOMMU unmap, then memory unmap, of one segment record.
    fn release(&self, rec: SegRecord) {
        if self.domain.unmap(rec.dma, rec.map_len).is_err() {
            self.unmap_failures.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `rec` describes a mapping made by `map_memory` whose
        // segment is no longer live (removed from the table), and its IOMMU
        // mapping is gone (or quarantined with VFIO holding the pages).
        unsafe { dma_mem::unmap(rec.base, rec.map_len) };
    }
}

// SAFETY:
// * every segment is a fresh anonymous mapping of `map_len >= seg_size`
//   bytes aligned to `mem_align >= align`, read-write, overlapping nothing;
// * it stays mapped until `discard` (or `Drop`) unmaps it;
// * `CONTIGUOUS` is not reported;
// * `iova` answers from the table of live segments, whose IOVA is the one
//   the IOMMU maps to the same bytes;
// * the table is behind a lock, the domain behind its own; calls for
//   distinct indices only contend on those locks.
unsafe impl SegmentSource for Vfio {
    type Config = VfioConfig;
    const NAME: &'static str = "vfio";

    fn open(geometry: &SegmentGeometry, config: &VfioConfig) -> Result<Self> {
        let domain = config.domain.clone().ok_or_else(|| Error::Invalid {
            field: "VfioConfig::domain",
            reason: "no DMA domain: build one with DmaDomain::open_vfio_group(\"/dev/vfio/<N>\") \
                     or DmaDomain::new(Arc::new(FakeIommu::new()))"
                .into(),
        })?;
        if geometry.mode.contains(RegionMode::GUARD) {
            return Err(Error::Unsupported {
                source_name: Self::NAME,
                operation: "guard regions (DMA memory must be accessible)",
            });
        }
        geometry.check_common()?;
        let page = domain.page_size();
        if geometry.seg_size % page != 0 {
            return Err(Error::invalid_param(
                "seg_size",
                geometry.seg_size as u64,
                "must be a multiple of the page size (and of the IOMMU page size)",
            ));
        }
        let (map_len, mem_align, iova_align) =
            match config.memory {
                SegmentMemory::Anonymous => {
                    (geometry.seg_size, geometry.align.max(page), page as u64)
                }
                SegmentMemory::Hugepages(size) => {
                    let hp = size.bytes();
                    if geometry.align > hp {
                        return Err(Error::invalid_param(
                            "align",
                            geometry.align as u64,
                            "hugepage segments are aligned to the hugepage size at most",
                        ));
                    }
                    let map_len = geometry.seg_size.checked_next_multiple_of(hp).ok_or(
                        Error::invalid_param("seg_size", geometry.seg_size as u64, "too large"),
                    )?;
                    size.check_reserved(map_len)?;
                    (map_len, hp, hp as u64)
                }
            };
        Ok(Vfio {
            geometry: *geometry,
            domain,
            memory: config.memory,
            map_len,
            mem_align,
            iova_align,
            table: RwLock::new(SegmentTable::new(geometry.seg_count, geometry.seg_size)),
            unmap_failures: AtomicU64::new(0),
        })
    }

    fn geometry(&self) -> &SegmentGeometry {
        &self.geometry
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::IOVA
    }

    unsafe fn create(&self, index: u32) -> Result<NonNull<u8>> {
        self.table.read().check_creatable(index, Self::NAME)?;
        let base = self.map_memory()?;
        // SAFETY: `base` is a fresh mapping of `map_len` bytes owned by this
        // source; it stays mapped until `release`, which unmaps the IOMMU
        // first; this module never forms references into it.
        let iova = match unsafe { self.domain.map(base, self.map_len, self.iova_align) } {
            Ok(iova) => iova,
            Err(e) => {
                // SAFETY: the mapping was made above and nothing else saw it.
                unsafe { dma_mem::unmap(base, self.map_len) };
                return Err(e);
            }
        };
        self.table.write().insert(
            index,
            SegRecord {
                base,
                map_len: self.map_len,
                dma: iova,
            },
        );
        Ok(base)
    }

    unsafe fn discard(&self, index: u32, base: NonNull<u8>) {
        let rec = self.table.write().remove_at(index, base, Self::NAME);
        self.release(rec);
    }

    #[inline]
    fn iova(&self, addr: *const u8) -> Option<u64> {
        self.table.read().dma_of(addr as usize)
    }
}

impl Drop for Vfio {
    fn drop(&mut self) {
        for (_, rec) in self.table.get_mut().drain() {
            self.release(rec);
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn domain_skips_windows_the_iommu_cannot_translate() {
        let fake = Arc::new(
            FakeIommu::new().with_iova_ranges(vec![0..0xfee0_0000, 0xfef0_0000..(1 << 40)]),
        );
        let d = DmaDomain::with_iova_space(fake, 0xfe00_0000..0xff00_0000).unwrap();
        // 0xfe00_0000..0xfee0_0000 (14 MiB) and 0xfef0_0000..0xff00_0000 (1 MiB).
        assert_eq!(d.free_iova_bytes(), (14 << 20) + (1 << 20));
        let low_only = std::iter::once(0..0x1000_0000).collect();
        let fake2 = Arc::new(FakeIommu::new().with_iova_ranges(low_only));
        let e = DmaDomain::with_iova_space(fake2, 1 << 32..1 << 33).unwrap_err();
        assert!(matches!(e, Error::Invalid { field: "space", .. }), "{e}");
    }
}

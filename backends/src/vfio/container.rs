//! The real IOMMU: a VFIO container with a type1 IOMMU, driven by ioctls.
//!
//! The sequence follows the kernel's VFIO documentation
//! (`Documentation/driver-api/vfio.rst`):
//!
//! 1. open `/dev/vfio/vfio` (the container), check `VFIO_GET_API_VERSION`
//!    and `VFIO_CHECK_EXTENSION` for type1 (v2 preferred);
//! 2. open the group file `/dev/vfio/<N>`, check with
//!    `VFIO_GROUP_GET_STATUS` that it is viable (every device of the group
//!    bound to vfio-pci or to no driver) and not already in a container;
//! 3. `VFIO_GROUP_SET_CONTAINER`, then `VFIO_SET_IOMMU`;
//! 4. `VFIO_IOMMU_GET_INFO` for the page sizes the IOMMU supports and, when
//!    the kernel reports it, the usable IOVA ranges.
//!
//! After that, `VFIO_IOMMU_MAP_DMA` / `VFIO_IOMMU_UNMAP_DMA` map and unmap
//! memory. The kernel pins mapped pages itself (charged to
//! `RLIMIT_MEMLOCK`) until they are unmapped; closing the container drops
//! every mapping.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use skmem_traits::{Error, Result};
use vfio_bindings::bindings::vfio::{
    vfio_group_status, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info,
    VFIO_TYPE1v2_IOMMU, VFIO_API_VERSION, VFIO_BASE, VFIO_DMA_MAP_FLAG_READ,
    VFIO_DMA_MAP_FLAG_WRITE, VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_GROUP_FLAGS_VIABLE,
    VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_TYPE,
    VFIO_TYPE1_IOMMU,
};

use super::Iommu;

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: VFIO ioctls carry no size or direction
/// in their number.
const fn vfio_io(n: u32) -> libc::Ioctl {
    // Architectures whose `_IOC_NONE` is 1 at bit 29 rather than 0.
    #[cfg(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc64"
    ))]
    const DIR_NONE: u32 = 1 << 29;
    #[cfg(not(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc64"
    )))]
    const DIR_NONE: u32 = 0;
    (DIR_NONE | ((VFIO_TYPE as u32) << 8) | (VFIO_BASE + n)) as libc::Ioctl
}

const VFIO_GET_API_VERSION: libc::Ioctl = vfio_io(0);
const VFIO_CHECK_EXTENSION: libc::Ioctl = vfio_io(1);
const VFIO_SET_IOMMU: libc::Ioctl = vfio_io(2);
const VFIO_GROUP_GET_STATUS: libc::Ioctl = vfio_io(3);
const VFIO_GROUP_SET_CONTAINER: libc::Ioctl = vfio_io(4);
const VFIO_GROUP_GET_DEVICE_FD: libc::Ioctl = vfio_io(6);
const VFIO_IOMMU_GET_INFO: libc::Ioctl = vfio_io(12);
const VFIO_IOMMU_MAP_DMA: libc::Ioctl = vfio_io(13);
const VFIO_IOMMU_UNMAP_DMA: libc::Ioctl = vfio_io(14);

/// Path of the VFIO container device.
pub const CONTAINER_PATH: &str = "/dev/vfio/vfio";

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A VFIO container (type1 IOMMU) with one group attached: the real
/// [`Iommu`].
///
/// Open it from a group path with [`VfioContainer::open`], wrap it in a
/// [`DmaDomain`](super::DmaDomain) (or call
/// [`DmaDomain::open_vfio_group`](super::DmaDomain::open_vfio_group)), and
/// take device descriptors with [`device_fd`](Self::device_fd).
#[derive(Debug)]
pub struct VfioContainer {
    // Field order is drop order: the group leaves the container before the
    // container closes.
    group: File,
    container: File,
    group_path: PathBuf,
    iommu_type: u32,
    page_sizes: u64,
    iova_ranges: Vec<Range<u64>>,
}

impl VfioContainer {
    /// Opens a new container, attaches the group at `group_path`
    /// (`/dev/vfio/<N>`) and enables a type1 IOMMU on it. Every failure
    /// names what was missing and how to fix it.
    pub fn open(group_path: impl AsRef<Path>) -> Result<Self> {
        let group_path = group_path.as_ref();
        // Open the group first: a missing group is the commonest mistake
        // and deserves the error that names the path.
        let group = OpenOptions::new()
            .read(true)
            .write(true)
            .open(group_path)
            .map_err(|e| open_group_error(group_path, &e))?;
        let container = OpenOptions::new()
            .read(true)
            .write(true)
            .open(CONTAINER_PATH)
            .map_err(|e| Error::Invalid {
                field: "vfio container",
                reason: format!(
                    "cannot open {CONTAINER_PATH}: {e}; VFIO is not available \
                     (load it with `modprobe vfio-pci`)"
                ),
            })?;

        // SAFETY: VFIO_GET_API_VERSION takes no argument and only returns
        // an integer.
        let version = unsafe { libc::ioctl(container.as_raw_fd(), VFIO_GET_API_VERSION) };
        if version < 0 || version as u32 != VFIO_API_VERSION {
            return Err(Error::Invalid {
                field: "vfio container",
                reason: format!(
                    "{CONTAINER_PATH} reports VFIO API version {version}, expected {VFIO_API_VERSION}"
                ),
            });
        }
        let iommu_type = [VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_IOMMU]
            .into_iter()
            .find(|&t| {
                // SAFETY: VFIO_CHECK_EXTENSION takes an integer by value and
                // returns an integer.
                unsafe {
                    libc::ioctl(
                        container.as_raw_fd(),
                        VFIO_CHECK_EXTENSION,
                        t as libc::c_ulong,
                    ) == 1
                }
            })
            .ok_or_else(|| Error::Invalid {
                field: "vfio container",
                reason: "the kernel's VFIO offers no type1 IOMMU backend \
                         (is an IOMMU enabled? boot with intel_iommu=on / amd_iommu=on)"
                    .into(),
            })?;

        let mut status = vfio_group_status {
            argsz: core::mem::size_of::<vfio_group_status>() as u32,
            flags: 0,
        };
        // SAFETY: VFIO_GROUP_GET_STATUS writes a `vfio_group_status` whose
        // size is given in `argsz`; `status` is such a struct, alive for the
        // call.
        let rc = unsafe {
            libc::ioctl(
                group.as_raw_fd(),
                VFIO_GROUP_GET_STATUS,
                core::ptr::addr_of_mut!(status),
            )
        };
        if rc < 0 {
            return Err(Error::Invalid {
                field: "vfio group",
                reason: format!(
                    "VFIO_GROUP_GET_STATUS on {} failed: {} (is this a VFIO group file?)",
                    group_path.display(),
                    io::Error::last_os_error()
                ),
            });
        }
        if status.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(Error::Invalid {
                field: "vfio group",
                reason: format!(
                    "{} is not viable: every device in the IOMMU group must be bound to \
                     vfio-pci or to no driver (see /sys/kernel/iommu_groups/<N>/devices)",
                    group_path.display()
                ),
            });
        }
        if status.flags & VFIO_GROUP_FLAGS_CONTAINER_SET != 0 {
            return Err(Error::Busy {
                name: group_path.display().to_string(),
                reason: "the VFIO group is already attached to a container",
            });
        }

        let container_fd: libc::c_int = container.as_raw_fd();
        // SAFETY: VFIO_GROUP_SET_CONTAINER reads one `int` (the container
        // descriptor) through the pointer, which is valid for the call.
        let rc = unsafe {
            libc::ioctl(
                group.as_raw_fd(),
                VFIO_GROUP_SET_CONTAINER,
                core::ptr::addr_of!(container_fd),
            )
        };
        if rc < 0 {
            return Err(Error::os("VFIO_GROUP_SET_CONTAINER", errno()));
        }
        // SAFETY: VFIO_SET_IOMMU takes the IOMMU type by value.
        let rc = unsafe {
            libc::ioctl(
                container.as_raw_fd(),
                VFIO_SET_IOMMU,
                iommu_type as libc::c_ulong,
            )
        };
        if rc < 0 {
            return Err(Error::os("VFIO_SET_IOMMU", errno()));
        }

        let (page_sizes, iova_ranges) = iommu_info(&container)?;
        Ok(VfioContainer {
            group,
            container,
            group_path: group_path.to_path_buf(),
            iommu_type,
            page_sizes,
            iova_ranges,
        })
    }

    /// The group path this container was opened from.
    pub fn group_path(&self) -> &Path {
        &self.group_path
    }

    /// `VFIO_TYPE1v2_IOMMU` (3) or `VFIO_TYPE1_IOMMU` (1).
    pub fn iommu_type(&self) -> u32 {
        self.iommu_type
    }

    /// Bitmap of the page sizes the IOMMU can map (bit `n` set: `1 << n`).
    pub fn page_sizes(&self) -> u64 {
        self.page_sizes
    }

    /// The container descriptor.
    pub fn container_fd(&self) -> BorrowedFd<'_> {
        self.container.as_fd()
    }

    /// The group descriptor.
    pub fn group_fd(&self) -> BorrowedFd<'_> {
        self.group.as_fd()
    }

    /// Opens the device `name` (its PCI address, e.g. `0000:01:00.0`) of
    /// the group, for BAR mapping and interrupts (`VFIO_GROUP_GET_DEVICE_FD`).
    pub fn device_fd(&self, name: &str) -> Result<OwnedFd> {
        let c_name = CString::new(name).map_err(|_| Error::Invalid {
            field: "device name",
            reason: format!("{name:?} contains a NUL byte"),
        })?;
        // SAFETY: VFIO_GROUP_GET_DEVICE_FD reads a NUL-terminated string
        // through the pointer, valid for the call, and returns a new fd.
        let fd = unsafe {
            libc::ioctl(
                self.group.as_raw_fd(),
                VFIO_GROUP_GET_DEVICE_FD,
                c_name.as_ptr(),
            )
        };
        if fd < 0 {
            return Err(Error::Invalid {
                field: "device name",
                reason: format!(
                    "VFIO_GROUP_GET_DEVICE_FD({name}) on {} failed: {}",
                    self.group_path.display(),
                    io::Error::last_os_error()
                ),
            });
        }
        // SAFETY: the kernel just returned this descriptor to us; nobody
        // else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

#[cold]
fn open_group_error(path: &Path, e: &io::Error) -> Error {
    let hint = match e.raw_os_error() {
        Some(libc::ENOENT) => {
            "no such VFIO group: bind the device to vfio-pci first \
             (see the skmem_backends::vfio module docs); `ls /dev/vfio` lists the groups"
        }
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "permission denied: run as root or give your user the group file"
        }
        Some(libc::EBUSY) => "the group is already open in another process",
        _ => "is this a VFIO group file (/dev/vfio/<N>)?",
    };
    Error::Invalid {
        field: "vfio group",
        reason: format!("cannot open VFIO group {}: {e}; {hint}", path.display()),
    }
}

/// `VFIO_IOMMU_GET_INFO`: the supported page sizes and, when the kernel
/// reports them, the usable IOVA ranges.
fn iommu_info(container: &File) -> Result<(u64, Vec<Range<u64>>)> {
    let head = core::mem::size_of::<vfio_iommu_type1_info>();
    // First ask with the bare struct; the kernel raises `argsz` when it has
    // capabilities to report.
    let mut buf = vec![0u64; head.div_ceil(8)];
    let mut argsz = head as u32;
    for _ in 0..2 {
        buf.resize((argsz as usize).div_ceil(8), 0);
        buf.fill(0);
        let info = buf.as_mut_ptr().cast::<vfio_iommu_type1_info>();
        // SAFETY: `buf` is 8-aligned, zeroed and at least `head` bytes, so
        // it holds a `vfio_iommu_type1_info` at its start.
        unsafe { (*info).argsz = argsz };
        // SAFETY: the kernel writes at most `argsz` bytes, and `buf` holds
        // at least that many.
        let rc = unsafe { libc::ioctl(container.as_raw_fd(), VFIO_IOMMU_GET_INFO, info) };
        if rc < 0 {
            return Err(Error::os("VFIO_IOMMU_GET_INFO", errno()));
        }
        // SAFETY: initialised by us and the kernel above.
        let got = unsafe { *info };
        if got.argsz as usize <= buf.len() * 8 {
            let pgsizes = if got.flags & VFIO_IOMMU_INFO_PGSIZES != 0 {
                got.iova_pgsizes
            } else {
                0
            };
            let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
            let ranges = if got.flags & VFIO_IOMMU_INFO_CAPS != 0 {
                parse_iova_ranges(&bytes, got.cap_offset as usize)
            } else {
                Vec::new()
            };
            return Ok((pgsizes, ranges));
        }
        argsz = got.argsz;
    }
    Err(Error::os(
        "VFIO_IOMMU_GET_INFO (capability size)",
        libc::EOVERFLOW,
    ))
}

/// Walks the capability chain of a `vfio_iommu_type1_info` buffer and
/// returns the IOVA ranges of its `IOVA_RANGE` capability (end exclusive).
/// Malformed chains end the walk; nothing is read outside `buf`.
pub(crate) fn parse_iova_ranges(buf: &[u8], mut offset: usize) -> Vec<Range<u64>> {
    let u16_at = |o: usize| buf.get(o..o + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        buf.get(o..o + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |o: usize| {
        buf.get(o..o + 8)
            .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
    };
    let mut hops = 0;
    while offset != 0 && hops < 64 {
        hops += 1;
        let (Some(id), Some(next)) = (u16_at(offset), u32_at(offset + 4)) else {
            break;
        };
        if u32::from(id) == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            let Some(n) = u32_at(offset + 8) else { break };
            let mut out = Vec::new();
            for i in 0..n as usize {
                let at = offset + 16 + i * 16;
                match (u64_at(at), u64_at(at + 8)) {
                    (Some(s), Some(e)) if e >= s => out.push(s..e.saturating_add(1)),
                    _ => break,
                }
            }
            return out;
        }
        if (next as usize) <= offset {
            break;
        }
        offset = next as usize;
    }
    Vec::new()
}

impl Iommu for VfioContainer {
    unsafe fn map(&self, vaddr: NonNull<u8>, iova: u64, len: usize) -> Result<()> {
        let req = vfio_iommu_type1_dma_map {
            argsz: core::mem::size_of::<vfio_iommu_type1_dma_map>() as u32,
            flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            vaddr: vaddr.as_ptr() as u64,
            iova,
            size: len as u64,
        };
        // SAFETY: the kernel reads the request struct, alive for the call;
        // the caller guarantees the memory stays mapped until unmapped.
        let rc = unsafe {
            libc::ioctl(
                self.container.as_raw_fd(),
                VFIO_IOMMU_MAP_DMA,
                core::ptr::addr_of!(req),
            )
        };
        if rc < 0 {
            return Err(Error::os("VFIO_IOMMU_MAP_DMA", errno()));
        }
        Ok(())
    }

    fn unmap(&self, iova: u64, len: usize) -> Result<()> {
        let mut req = vfio_iommu_type1_dma_unmap {
            argsz: core::mem::size_of::<vfio_iommu_type1_dma_unmap>() as u32,
            flags: 0,
            iova,
            size: len as u64,
            ..Default::default()
        };
        // SAFETY: the kernel reads the request and writes back `size`; the
        // struct is alive for the call and has no trailing data (flags 0).
        let rc = unsafe {
            libc::ioctl(
                self.container.as_raw_fd(),
                VFIO_IOMMU_UNMAP_DMA,
                core::ptr::addr_of_mut!(req),
            )
        };
        if rc < 0 {
            return Err(Error::os("VFIO_IOMMU_UNMAP_DMA", errno()));
        }
        if req.size != len as u64 {
            return Err(Error::Invalid {
                field: "iova",
                reason: format!(
                    "VFIO_IOMMU_UNMAP_DMA at {iova:#x} unmapped {:#x} bytes, expected {len:#x}",
                    req.size
                ),
            });
        }
        Ok(())
    }

    fn page_size(&self) -> usize {
        // Smallest supported IOMMU page; 4 KiB when the kernel did not say.
        if self.page_sizes == 0 {
            4096
        } else {
            1usize << self.page_sizes.trailing_zeros()
        }
    }

    fn iova_ranges(&self) -> Vec<Range<u64>> {
        self.iova_ranges.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_uapi_header() {
        // From <linux/vfio.h> on x86-64: _IO(';', 100 + n).
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert_eq!(VFIO_GET_API_VERSION, 0x3b64);
            assert_eq!(VFIO_GROUP_SET_CONTAINER, 0x3b68);
            assert_eq!(VFIO_IOMMU_MAP_DMA, 0x3b71);
            assert_eq!(VFIO_IOMMU_UNMAP_DMA, 0x3b72);
        }
    }

    #[test]
    fn capability_chain_yields_iova_ranges() {
        // info (24 bytes) | migration cap at 24 (12 bytes, padded to 16) |
        // iova range cap at 40 with two ranges.
        let mut buf = vec![0u8; 40 + 16 + 2 * 16];
        buf[24..26].copy_from_slice(&2u16.to_ne_bytes()); // some other cap
        buf[28..32].copy_from_slice(&40u32.to_ne_bytes()); // next
        buf[40..42].copy_from_slice(&1u16.to_ne_bytes()); // IOVA_RANGE
        buf[48..52].copy_from_slice(&2u32.to_ne_bytes()); // nr_iovas
        buf[56..64].copy_from_slice(&0u64.to_ne_bytes());
        buf[64..72].copy_from_slice(&0xfedf_ffffu64.to_ne_bytes());
        buf[72..80].copy_from_slice(&0xfef0_0000u64.to_ne_bytes());
        buf[80..88].copy_from_slice(&0x7f_ffff_ffffu64.to_ne_bytes());
        let r = parse_iova_ranges(&buf, 24);
        assert_eq!(r, vec![0..0xfee0_0000, 0xfef0_0000..0x80_0000_0000]);
        // Truncated or looping chains end quietly.
        assert!(parse_iova_ranges(&buf[..50], 24).is_empty());
        let mut looped = buf.clone();
        looped[28..32].copy_from_slice(&24u32.to_ne_bytes());
        assert!(parse_iova_ranges(&looped, 24).is_empty());
    }
}

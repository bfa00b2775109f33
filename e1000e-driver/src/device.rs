//! A PCI device opened through VFIO: config space and a memory-mapped BAR.
//!
//! The device descriptor comes from the container the device's group is
//! attached to ([`VfioContainer::device_fd`]); this module adds the three
//! things a driver needs from it, with `libc::ioctl`/`pread`/`pwrite`/`mmap`
//! and the struct layouts of `vfio-bindings` (the style of
//! `skmem_backends::vfio`):
//!
//! * `VFIO_DEVICE_GET_REGION_INFO` for the config region and BAR0 (size,
//!   offset into the device file, whether it may be mmapped);
//! * reads and writes of PCI config space at the config region's offset
//!   (to turn bus mastering on, without which the device cannot DMA);
//! * `mmap` of BAR0 at its region offset, accessed with volatile 32-bit
//!   loads and stores ([`Mmio`]).
//!
//! # Safety and correctness
//!
//! * The BAR mapping lives as long as the [`Mmio`] that owns it; every
//!   access is bounds- and alignment-checked against the region size and
//!   goes through a volatile raw-pointer read or write: no Rust reference
//!   to device memory is ever formed.
//! * The device descriptor outlives the mapping (field order).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;

use skmem_backends::VfioContainer;
use skmem_traits::{Error, Result};
use vfio_bindings::bindings::vfio::{
    vfio_region_info, VFIO_BASE, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_TYPE,
};

use crate::regs;

/// `_IO(VFIO_TYPE, VFIO_BASE + n)` (x86-64 and aarch64: `_IOC_NONE` is 0).
const fn vfio_io(n: u32) -> libc::Ioctl {
    (((VFIO_TYPE as u32) << 8) | (VFIO_BASE + n)) as libc::Ioctl
}

const VFIO_DEVICE_GET_REGION_INFO: libc::Ioctl = vfio_io(8);
const VFIO_DEVICE_RESET: libc::Ioctl = vfio_io(11);

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A memory-mapped device register window (a BAR).
#[derive(Debug)]
pub struct Mmio {
    /// Page-aligned start of the mapping.
    base: NonNull<u32>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory-mapped I/O; every access is a
// volatile load or store of an aligned u32, which the device serialises.
unsafe impl Send for Mmio {}
// SAFETY: as above; no method hands out references into the window.
unsafe impl Sync for Mmio {}

impl Mmio {
    /// Size of the window in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for an empty window (never, for a mapped BAR).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn reg(&self, offset: usize) -> *mut u32 {
        assert!(
            offset % 4 == 0 && offset + 4 <= self.len,
            "register offset {offset:#x} outside the {:#x}-byte BAR or unaligned",
            self.len
        );
        self.base.as_ptr().wrapping_add(offset / 4)
    }

    /// Reads the 32-bit register at `offset`.
    #[inline]
    pub fn read32(&self, offset: usize) -> u32 {
        let p = self.reg(offset);
        // SAFETY: `p` is 4-aligned and inside the live mapping (checked in
        // `reg`); device registers are read with a volatile load.
        u32::from_le(unsafe { p.read_volatile() })
    }

    /// Writes the 32-bit register at `offset`.
    #[inline]
    pub fn write32(&self, offset: usize, value: u32) {
        let p = self.reg(offset);
        // SAFETY: as in `read32`, with a volatile store.
        unsafe { p.write_volatile(value.to_le()) }
    }
}

impl Drop for Mmio {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is the mapping made in `map_bar`, owned
        // by this value and unused after drop.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Where a VFIO device region lives in the device file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionInfo {
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Size in bytes.
    pub size: u64,
    /// Offset of the region in the device file.
    pub offset: u64,
}

/// A VFIO PCI device: its descriptor, config space, and BAR0 mapped.
#[derive(Debug)]
pub struct PciDevice {
    // Field order is drop order: unmap BAR0 before closing the descriptor.
    bar0: Mmio,
    config: RegionInfo,
    fd: OwnedFd,
    name: String,
}

impl PciDevice {
    /// Opens the device `name` (PCI address, `0000:00:04.0`) of the group
    /// attached to `container`, and maps its BAR0.
    pub fn open(container: &VfioContainer, name: &str) -> Result<Self> {
        let fd = container.device_fd(name)?;
        let config = region_info(&fd, VFIO_PCI_CONFIG_REGION_INDEX)?;
        let bar = region_info(&fd, VFIO_PCI_BAR0_REGION_INDEX)?;
        if bar.size == 0 || bar.flags & VFIO_REGION_INFO_FLAG_MMAP == 0 {
            return Err(Error::Invalid {
                field: "BAR0",
                reason: format!(
                    "{name}: BAR0 is {} bytes, flags {:#x}: not a mappable memory BAR",
                    bar.size, bar.flags
                ),
            });
        }
        let bar0 = map_bar(&fd, bar)?;
        Ok(PciDevice {
            bar0,
            config,
            fd,
            name: name.to_owned(),
        })
    }

    /// The device's PCI address.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// BAR0, mapped.
    pub fn bar0(&self) -> &Mmio {
        &self.bar0
    }

    /// Reads `N` bytes of config space at `offset`.
    fn config_read<const N: usize>(&self, offset: u64) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        // SAFETY: `buf` is writable for `N` bytes, alive for the call.
        let n = unsafe {
            libc::pread(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                N,
                (self.config.offset + offset) as libc::off_t,
            )
        };
        if n != N as isize {
            return Err(Error::os("pread of PCI config space", last_errno()));
        }
        Ok(buf)
    }

    /// Reads the 16-bit config register at `offset`.
    pub fn config_read16(&self, offset: u64) -> Result<u16> {
        self.config_read::<2>(offset).map(u16::from_le_bytes)
    }

    /// Writes the 16-bit config register at `offset`.
    pub fn config_write16(&self, offset: u64, value: u16) -> Result<()> {
        let buf = value.to_le_bytes();
        // SAFETY: `buf` is readable for 2 bytes, alive for the call.
        let n = unsafe {
            libc::pwrite(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                2,
                (self.config.offset + offset) as libc::off_t,
            )
        };
        if n != 2 {
            return Err(Error::os("pwrite of PCI config space", last_errno()));
        }
        Ok(())
    }

    /// `(vendor, device)` ids from config space.
    pub fn ids(&self) -> Result<(u16, u16)> {
        Ok((
            self.config_read16(regs::PCI_VENDOR_ID)?,
            self.config_read16(regs::PCI_DEVICE_ID)?,
        ))
    }

    /// Turns on memory decoding and bus mastering (DMA), and off INTx
    /// (this driver polls). Returns the new command register.
    pub fn enable_bus_master(&self) -> Result<u16> {
        let cmd = self.config_read16(regs::PCI_COMMAND)?;
        let new = cmd
            | regs::PCI_COMMAND_MEMORY
            | regs::PCI_COMMAND_MASTER
            | regs::PCI_COMMAND_INTX_DISABLE;
        self.config_write16(regs::PCI_COMMAND, new)?;
        let back = self.config_read16(regs::PCI_COMMAND)?;
        if back & regs::PCI_COMMAND_MASTER == 0 {
            return Err(Error::Invalid {
                field: "PCI command",
                reason: format!("{}: bus master bit did not stick ({back:#x})", self.name),
            });
        }
        Ok(back)
    }

    /// Turns bus mastering off: the device can no longer issue DMA.
    pub fn disable_bus_master(&self) -> Result<()> {
        let cmd = self.config_read16(regs::PCI_COMMAND)?;
        self.config_write16(regs::PCI_COMMAND, cmd & !regs::PCI_COMMAND_MASTER)
    }

    /// `VFIO_DEVICE_RESET` (a function-level or bus reset done by the
    /// kernel). Errors when the device offers none.
    pub fn vfio_reset(&self) -> Result<()> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), VFIO_DEVICE_RESET) };
        if rc < 0 {
            return Err(Error::os("VFIO_DEVICE_RESET", last_errno()));
        }
        Ok(())
    }
}

/// `VFIO_DEVICE_GET_REGION_INFO` for region `index`.
pub fn region_info(fd: &OwnedFd, index: u32) -> Result<RegionInfo> {
    let mut info = vfio_region_info {
        argsz: core::mem::size_of::<vfio_region_info>() as u32,
        index,
        ..Default::default()
    };
    // SAFETY: the kernel reads `argsz`/`index` and writes at most `argsz`
    // bytes into `info`, alive for the call.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            VFIO_DEVICE_GET_REGION_INFO,
            core::ptr::addr_of_mut!(info),
        )
    };
    if rc < 0 {
        return Err(Error::os("VFIO_DEVICE_GET_REGION_INFO", last_errno()));
    }
    Ok(RegionInfo {
        flags: info.flags,
        size: info.size,
        offset: info.offset,
    })
}

fn map_bar(fd: &OwnedFd, bar: RegionInfo) -> Result<Mmio> {
    let len = bar.size as usize;
    // SAFETY: a fresh shared mapping of the device file at the region's
    // offset; the kernel checks the range against the BAR.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            bar.offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::os("mmap of BAR0", last_errno()));
    }
    // mmap returns page-aligned addresses, so u32 accesses are aligned.
    let base = NonNull::new(p.cast::<u32>()).expect("mmap returned a non-null mapping");
    Ok(Mmio { base, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_uapi_header() {
        // <linux/vfio.h>: _IO(';', 100 + 8) and _IO(';', 100 + 11).
        assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3b6c);
        assert_eq!(VFIO_DEVICE_RESET, 0x3b6f);
    }
}

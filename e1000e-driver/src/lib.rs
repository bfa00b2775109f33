//! A minimal user-space driver for the Intel 82574 (e1000e) over VFIO,
//! whose descriptor rings carry buffers of an skmem packet pool built on
//! the [`Vfio`](skmem_backends::Vfio) segment source.
//!
//! # Why it exists
//!
//! The `Vfio` source maps every segment of a region for DMA in an IOMMU
//! and knows each buffer's IOVA. Unit tests can check that bookkeeping on
//! a fake IOMMU; only a device proves that the IOVAs really lead to the
//! bytes. This crate is that device's driver: `ci/vfio-e2e.sh` boots a
//! QEMU guest with an emulated VT-d IOMMU and two emulated 82574 NICs on
//! one hub, binds them to vfio-pci, and runs the `vfio-e2e` binary, which
//! sends frames from packet-pool buffers on NIC A and receives them into
//! packet-pool buffers on NIC B, both by DMA through the IOMMU.
//!
//! # Layers
//!
//! * [`device`] — a VFIO PCI device: region info, config space, BAR0
//!   mapped, volatile register access ([`device::Mmio`]);
//! * [`ring`] — legacy RX/TX descriptor rings in DMA memory, each
//!   descriptor carrying a cookie (a packet or buflet handle) that comes
//!   back exactly once;
//! * [`nic`] — bring-up of the 82574 and the polling data path;
//! * [`frame`] — test frames whose every byte is checked on arrival;
//! * [`pool`] — the packet pools on the `Vfio` source the test uses.
//!
//! # Safety and correctness
//!
//! Device-visible memory (rings, buffers, registers) is only touched with
//! volatile accesses or raw copies through raw pointers. The device may
//! DMA until [`nic::E1000e::stop`] (or drop) has disabled its queues and
//! bus mastering; ring memory and the buffers handed back by `stop` are
//! reused only after that. See each module's own section.

#[cfg(target_os = "linux")]
pub mod device;
pub mod frame;
#[cfg(target_os = "linux")]
pub mod nic;
pub mod pool;
pub mod regs;
pub mod ring;

#[cfg(target_os = "linux")]
pub use nic::{E1000e, NicConfig};
pub use ring::{DmaBlock, RxDone, RxRing, TxRing};

//! The 82574 itself: bring-up, one RX and one TX queue, polling.
//!
//! Bring-up follows the datasheet's initialisation sequence (section 4.6)
//! reduced to what a polling driver needs:
//!
//! 1. PCI command register: memory decoding and bus mastering on, INTx off;
//! 2. mask every interrupt (`IMC`), software reset (`CTRL.RST`), wait for
//!    it to clear, mask again and clear pending causes (`ICR`);
//! 3. `CTRL.SLU` (set link up) with `ASDE`, no link/PHY reset;
//! 4. the station address from `RAL0/RAH0` (loaded from the EEPROM at
//!    reset), the multicast table cleared;
//! 5. receive ring (`RDBAL/RDBAH/RDLEN/RDH/RDT`) and `RCTL` (enable,
//!    unicast + multicast promiscuous, broadcast accept, strip CRC, buffer
//!    size); transmit ring (`TDBAL/...`), `TIPG` and `TCTL` (enable, pad
//!    short packets, collision threshold and distance);
//! 6. wait for `STATUS.LU`.
//!
//! Rings live in a two-segment region on the [`Vfio`] source of the NIC's
//! [`DmaDomain`], so the device reaches them by IOVA like the buffers.
//!
//! # Safety and correctness
//!
//! * The device may DMA into rings and posted buffers until
//!   [`E1000e::stop`] (or drop) has disabled both queues, reset the MAC and
//!   cleared bus mastering; only then are ring cookies handed back and ring
//!   memory freed (`Drop` runs `stop` before the fields drop).
//! * Registers are reached only through [`Mmio`], i.e. volatile accesses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use skmem_backends::{DmaDomain, Vfio, VfioConfig, VfioContainer};
use skmem_slab::Region;
use skmem_traits::{Error, Result};

use crate::device::{Mmio, PciDevice};
use crate::regs::*;
use crate::ring::{DmaBlock, RxDone, RxRing, TxRing, DESC_SIZE};

/// PCI vendor id of Intel.
pub const INTEL: u16 = 0x8086;

/// Queue sizes and receive buffer size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NicConfig {
    /// Receive descriptors (multiple of 8, at most 256).
    pub rx_ring: u16,
    /// Transmit descriptors (multiple of 8, at most 256).
    pub tx_ring: u16,
    /// Receive buffer size: 256, 512, 1024 or 2048. Every buffer posted
    /// must hold this many bytes.
    pub rx_buf_size: usize,
    /// How long to wait for link up.
    pub link_timeout: Duration,
}

impl Default for NicConfig {
    fn default() -> Self {
        NicConfig {
            rx_ring: 256,
            tx_ring: 256,
            rx_buf_size: 2048,
            link_timeout: Duration::from_secs(10),
        }
    }
}

/// Bytes of one ring block (256 descriptors).
const RING_BLOCK: usize = 4096;

/// An 82574 driven from user space through VFIO, with one receive ring
/// whose descriptors carry cookies `R` and one transmit ring with cookies
/// `T` (typically buflet and packet handles of an skmem pool).
pub struct E1000e<T, R> {
    // Drop order: `Drop::drop` stops the device first; then the rings'
    // bookkeeping, their memory, the region, and the device go.
    tx: TxRing<T>,
    rx: RxRing<R>,
    tx_block: DmaBlock<Vfio>,
    rx_block: DmaBlock<Vfio>,
    rings: Arc<Region<Vfio>>,
    dev: PciDevice,
    mac: [u8; 6],
    rx_buf_size: usize,
    stopped: bool,
}

impl<T, R> core::fmt::Debug for E1000e<T, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("E1000e")
            .field("device", &self.dev.name())
            .field("mac", &format_args!("{}", fmt_mac(&self.mac)))
            .field("tx_ring", &self.tx_block)
            .field("rx_ring", &self.rx_block)
            .finish_non_exhaustive()
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl<T, R> E1000e<T, R> {
    /// Opens device `name` (PCI address) of the group attached to
    /// `container`, places its rings in `domain` (the domain made of that
    /// container), and brings the NIC up.
    pub fn open(
        container: &VfioContainer,
        domain: &Arc<DmaDomain>,
        name: &str,
        config: NicConfig,
    ) -> Result<Self> {
        let bsize = rctl_bsize(config.rx_buf_size).ok_or(Error::invalid_param(
            "rx_buf_size",
            config.rx_buf_size as u64,
            "the legacy receive buffer size is 256, 512, 1024 or 2048",
        ))?;
        for (field, n) in [("rx_ring", config.rx_ring), ("tx_ring", config.tx_ring)] {
            if usize::from(n) * DESC_SIZE > RING_BLOCK {
                return Err(Error::invalid_param(
                    field,
                    n.into(),
                    "at most 256 descriptors",
                ));
            }
        }
        let dev = PciDevice::open(container, name)?;
        let (vendor, device) = dev.ids()?;
        if vendor != INTEL {
            return Err(Error::Invalid {
                field: "device",
                reason: format!("{name} is {vendor:04x}:{device:04x}, not an Intel NIC"),
            });
        }
        let rings = DmaBlock::<Vfio>::region(
            format!("e1000e.{name}.rings"),
            RING_BLOCK,
            2,
            VfioConfig::new(Arc::clone(domain)),
        )?;
        let tx_block = DmaBlock::alloc(&rings)?;
        let rx_block = DmaBlock::alloc(&rings)?;
        let tx = TxRing::new(&tx_block, config.tx_ring)?;
        let rx = RxRing::new(&rx_block, config.rx_ring)?;
        let mut nic = E1000e {
            tx,
            rx,
            tx_block,
            rx_block,
            rings,
            dev,
            mac: [0; 6],
            rx_buf_size: config.rx_buf_size,
            stopped: true,
        };
        nic.bring_up(bsize, config.link_timeout)?;
        Ok(nic)
    }

    fn bar(&self) -> &Mmio {
        self.dev.bar0()
    }

    #[cold]
    #[inline(never)]
    fn bring_up(&mut self, bsize: u32, link_timeout: Duration) -> Result<()> {
        self.dev.enable_bus_master()?;
        self.stopped = false;
        let bar = self.dev.bar0();
        bar.write32(IMC, IRQ_ALL);
        bar.write32(CTRL, bar.read32(CTRL) | CTRL_RST);
        // The datasheet asks for 1 ms before the next access.
        std::thread::sleep(Duration::from_millis(2));
        let t0 = Instant::now();
        while bar.read32(CTRL) & CTRL_RST != 0 {
            if t0.elapsed() > Duration::from_secs(1) {
                return Err(self.timeout("CTRL.RST did not clear after reset"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        bar.write32(IMC, IRQ_ALL);
        let _ = bar.read32(ICR);

        let ctrl = bar.read32(CTRL);
        bar.write32(
            CTRL,
            (ctrl | CTRL_SLU | CTRL_ASDE) & !(CTRL_LRST | CTRL_PHY_RST | CTRL_ILOS | CTRL_VME),
        );

        let ral = bar.read32(RAL0);
        let rah = bar.read32(RAH0);
        let l = ral.to_le_bytes();
        let h = rah.to_le_bytes();
        self.mac = [l[0], l[1], l[2], l[3], h[0], h[1]];
        bar.write32(RAH0, rah | RAH_AV);
        for i in 0..128 {
            bar.write32(MTA + 4 * i, 0);
        }

        // Receive queue 0.
        let rx_iova = self.rx_block.iova();
        bar.write32(RCTL, 0);
        bar.write32(RDBAL, rx_iova as u32);
        bar.write32(RDBAH, (rx_iova >> 32) as u32);
        bar.write32(RDLEN, u32::from(self.rx.count()) * DESC_SIZE as u32);
        bar.write32(RDH, 0);
        bar.write32(RDT, 0);
        bar.write32(
            RCTL,
            RCTL_EN | RCTL_UPE | RCTL_MPE | RCTL_BAM | RCTL_SECRC | bsize,
        );

        // Transmit queue 0.
        let tx_iova = self.tx_block.iova();
        bar.write32(TCTL, 0);
        bar.write32(TDBAL, tx_iova as u32);
        bar.write32(TDBAH, (tx_iova >> 32) as u32);
        bar.write32(TDLEN, u32::from(self.tx.count()) * DESC_SIZE as u32);
        bar.write32(TDH, 0);
        bar.write32(TDT, 0);
        bar.write32(TIPG, TIPG_COPPER);
        bar.write32(
            TCTL,
            TCTL_EN | TCTL_PSP | (0x0F << TCTL_CT_SHIFT) | (0x3F << TCTL_COLD_SHIFT),
        );

        let t0 = Instant::now();
        while !self.link_up() {
            if t0.elapsed() > link_timeout {
                return Err(self.timeout("no link (STATUS.LU stayed clear)"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    #[cold]
    fn timeout(&self, what: &'static str) -> Error {
        Error::Busy {
            name: format!(
                "e1000e {} (CTRL {:#010x}, STATUS {:#010x})",
                self.dev.name(),
                self.bar().read32(CTRL),
                self.bar().read32(STATUS)
            ),
            reason: what,
        }
    }

    /// The PCI device.
    pub fn device(&self) -> &PciDevice {
        &self.dev
    }

    /// The station address read from the NIC.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// `STATUS.LU`.
    pub fn link_up(&self) -> bool {
        self.bar().read32(STATUS) & STATUS_LU != 0
    }

    /// `STATUS`.
    pub fn status(&self) -> u32 {
        self.bar().read32(STATUS)
    }

    /// The receive buffer size programmed in `RCTL`.
    pub fn rx_buf_size(&self) -> usize {
        self.rx_buf_size
    }

    /// IOVAs of the TX and RX rings.
    pub fn ring_iovas(&self) -> (u64, u64) {
        (self.tx_block.iova(), self.rx_block.iova())
    }

    /// The region holding the rings.
    pub fn ring_region(&self) -> &Arc<Region<Vfio>> {
        &self.rings
    }

    /// `(GPTC, GPRC)`: good packets sent and received since the last call
    /// (the counters clear on read).
    pub fn take_counters(&self) -> (u32, u32) {
        (self.bar().read32(GPTC), self.bar().read32(GPRC))
    }

    /// Transmit descriptors free.
    pub fn tx_free(&self) -> usize {
        self.tx.free()
    }

    /// Transmit descriptors the device holds.
    pub fn tx_in_flight(&self) -> usize {
        self.tx.in_flight()
    }

    /// Queues a frame of fragments `(iova, len)`; see [`TxRing::push`].
    /// Call [`tx_flush`](Self::tx_flush) to start sending.
    #[inline]
    pub fn tx_push(&mut self, frags: &[(u64, u16)], cookie: T) -> core::result::Result<(), T> {
        assert!(!self.stopped, "tx_push on a stopped NIC");
        self.tx.push(frags, cookie)
    }

    /// Tells the device about queued frames (`TDT`).
    #[inline]
    pub fn tx_flush(&self) {
        self.bar().write32(TDT, u32::from(self.tx.tail()));
    }

    /// Hands back the cookies of sent frames; returns descriptors reclaimed.
    #[inline]
    pub fn tx_reclaim(&mut self, done: impl FnMut(T)) -> usize {
        self.tx.reclaim(done)
    }

    /// Receive descriptors free.
    pub fn rx_free(&self) -> usize {
        self.rx.free()
    }

    /// Receive buffers the device holds.
    pub fn rx_posted(&self) -> usize {
        self.rx.posted()
    }

    /// Posts a receive buffer of [`rx_buf_size`](Self::rx_buf_size) bytes
    /// at `iova`; call [`rx_flush`](Self::rx_flush) to hand it over.
    #[inline]
    pub fn rx_post(&mut self, iova: u64, cookie: R) -> core::result::Result<(), R> {
        assert!(!self.stopped, "rx_post on a stopped NIC");
        self.rx.post(iova, cookie)
    }

    /// Tells the device about posted buffers (`RDT`).
    #[inline]
    pub fn rx_flush(&self) {
        self.bar().write32(RDT, u32::from(self.rx.tail()));
    }

    /// Hands every filled receive descriptor to `done`.
    #[inline]
    pub fn rx_poll(&mut self, done: impl FnMut(RxDone<R>)) -> usize {
        self.rx.poll(done)
    }

    /// Stops the device (queues off, MAC reset, bus mastering off: no more
    /// DMA) and hands back every cookie still in the rings. Idempotent.
    pub fn stop(&mut self, tx_done: impl FnMut(T), rx_done: impl FnMut(R)) {
        self.quiesce();
        self.tx.drain(tx_done);
        self.rx.drain(rx_done);
    }

    fn quiesce(&mut self) {
        if self.stopped {
            return;
        }
        let bar = self.dev.bar0();
        bar.write32(RCTL, 0);
        bar.write32(TCTL, 0);
        bar.write32(IMC, IRQ_ALL);
        bar.write32(CTRL, bar.read32(CTRL) | CTRL_RST);
        std::thread::sleep(Duration::from_millis(2));
        // Without bus mastering the device cannot reach memory at all,
        // whatever state its queues are in.
        let _ = self.dev.disable_bus_master();
        self.stopped = true;
    }
}

impl<T, R> Drop for E1000e<T, R> {
    fn drop(&mut self) {
        // Cookies still in the rings are dropped (leaked handles at worst);
        // ring memory is freed only after the device can no longer DMA.
        self.quiesce();
    }
}

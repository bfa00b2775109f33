//! Register offsets and bits of the Intel 82574 (datasheet 317694, chapter
//! 10), only those this driver uses. Offsets are bytes into BAR0.

/// Device Control.
pub const CTRL: usize = 0x0000;
/// Device Status.
pub const STATUS: usize = 0x0008;
/// Extended Device Control.
pub const CTRL_EXT: usize = 0x0018;
/// Interrupt Cause Read (read to clear).
pub const ICR: usize = 0x00C0;
/// Interrupt Mask Set/Read.
pub const IMS: usize = 0x00D0;
/// Interrupt Mask Clear.
pub const IMC: usize = 0x00D8;
/// Receive Control.
pub const RCTL: usize = 0x0100;
/// Transmit Control.
pub const TCTL: usize = 0x0400;
/// Transmit Inter-Packet Gap.
pub const TIPG: usize = 0x0410;
/// Receive Descriptor Base Address Low (queue 0).
pub const RDBAL: usize = 0x2800;
/// Receive Descriptor Base Address High.
pub const RDBAH: usize = 0x2804;
/// Receive Descriptor ring Length in bytes.
pub const RDLEN: usize = 0x2808;
/// Receive Descriptor Head.
pub const RDH: usize = 0x2810;
/// Receive Descriptor Tail.
pub const RDT: usize = 0x2818;
/// Transmit Descriptor Base Address Low (queue 0).
pub const TDBAL: usize = 0x3800;
/// Transmit Descriptor Base Address High.
pub const TDBAH: usize = 0x3804;
/// Transmit Descriptor ring Length in bytes.
pub const TDLEN: usize = 0x3808;
/// Transmit Descriptor Head.
pub const TDH: usize = 0x3810;
/// Transmit Descriptor Tail.
pub const TDT: usize = 0x3818;
/// Multicast Table Array (128 dwords).
pub const MTA: usize = 0x5200;
/// Receive Address Low, entry 0.
pub const RAL0: usize = 0x5400;
/// Receive Address High, entry 0.
pub const RAH0: usize = 0x5404;
/// Good Packets Received Count (clears on read).
pub const GPRC: usize = 0x4074;
/// Good Packets Transmitted Count (clears on read).
pub const GPTC: usize = 0x4080;

/// `CTRL`: link reset.
pub const CTRL_LRST: u32 = 1 << 3;
/// `CTRL`: auto-speed detection enable.
pub const CTRL_ASDE: u32 = 1 << 5;
/// `CTRL`: set link up.
pub const CTRL_SLU: u32 = 1 << 6;
/// `CTRL`: invert loss-of-signal.
pub const CTRL_ILOS: u32 = 1 << 7;
/// `CTRL`: device reset (self-clearing).
pub const CTRL_RST: u32 = 1 << 26;
/// `CTRL`: VLAN mode enable.
pub const CTRL_VME: u32 = 1 << 30;
/// `CTRL`: PHY reset.
pub const CTRL_PHY_RST: u32 = 1 << 31;

/// `STATUS`: link up.
pub const STATUS_LU: u32 = 1 << 1;

/// `RCTL`: receiver enable.
pub const RCTL_EN: u32 = 1 << 1;
/// `RCTL`: store bad packets.
pub const RCTL_SBP: u32 = 1 << 2;
/// `RCTL`: unicast promiscuous.
pub const RCTL_UPE: u32 = 1 << 3;
/// `RCTL`: multicast promiscuous.
pub const RCTL_MPE: u32 = 1 << 4;
/// `RCTL`: broadcast accept.
pub const RCTL_BAM: u32 = 1 << 15;
/// `RCTL`: receive buffer size field (bits 17:16), with `BSEX` clear:
/// 00 = 2048, 01 = 1024, 10 = 512, 11 = 256 bytes.
pub const RCTL_BSIZE_SHIFT: u32 = 16;
/// `RCTL`: buffer size extension (×16).
pub const RCTL_BSEX: u32 = 1 << 25;
/// `RCTL`: strip the Ethernet CRC from received frames.
pub const RCTL_SECRC: u32 = 1 << 26;

/// `TCTL`: transmitter enable.
pub const TCTL_EN: u32 = 1 << 1;
/// `TCTL`: pad short packets.
pub const TCTL_PSP: u32 = 1 << 3;
/// `TCTL`: collision threshold field shift.
pub const TCTL_CT_SHIFT: u32 = 4;
/// `TCTL`: collision distance field shift.
pub const TCTL_COLD_SHIFT: u32 = 12;

/// `TIPG` for copper links (IPGT 8, IPGR1 8, IPGR2 6; datasheet 10.2.6.3).
pub const TIPG_COPPER: u32 = 8 | (8 << 10) | (6 << 20);

/// `RAH`: address valid.
pub const RAH_AV: u32 = 1 << 31;

/// Every interrupt cause (for `IMC`).
pub const IRQ_ALL: u32 = 0xFFFF_FFFF;

/// The `RCTL` buffer-size bits for `size` bytes (256, 512, 1024 or 2048),
/// or `None` for any other size.
pub const fn rctl_bsize(size: usize) -> Option<u32> {
    let code = match size {
        2048 => 0,
        1024 => 1,
        512 => 2,
        256 => 3,
        _ => return None,
    };
    Some(code << RCTL_BSIZE_SHIFT)
}

/// PCI config space: the command register.
pub const PCI_COMMAND: u64 = 0x04;
/// PCI command: memory space enable.
pub const PCI_COMMAND_MEMORY: u16 = 1 << 1;
/// PCI command: bus master enable (the device may issue DMA).
pub const PCI_COMMAND_MASTER: u16 = 1 << 2;
/// PCI command: INTx disable.
pub const PCI_COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// PCI config space: vendor id.
pub const PCI_VENDOR_ID: u64 = 0x00;
/// PCI config space: device id.
pub const PCI_DEVICE_ID: u64 = 0x02;

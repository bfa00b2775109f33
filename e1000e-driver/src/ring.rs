//! Legacy descriptor rings in DMA memory.
//!
//! A ring is an array of 16-byte descriptors in memory the device reaches
//! by IOVA ([`DmaBlock`], one segment of a region on a DMA-mapping source).
//! The driver fills descriptors and moves the tail register; the device
//! consumes them from the head and writes the status byte back (`DD`).
//!
//! Each descriptor carries a *cookie* of the driver's choosing (a packet
//! or buflet handle): the ring keeps it beside the descriptor and hands it
//! back once the device is done with that descriptor, so every buffer given
//! to the device comes back exactly once — on completion, or from
//! [`TxRing::drain`] / [`RxRing::drain`] after the device was stopped.
//!
//! Legacy transmit descriptor: `addr: u64 | length: u16 | cso: u8 | cmd: u8
//! | status: u8 | css: u8 | special: u16`. Legacy receive descriptor:
//! `addr: u64 | length: u16 | checksum: u16 | status: u8 | errors: u8 |
//! special: u16`. Both little-endian.
//!
//! # Safety and correctness
//!
//! * Descriptor memory may be written by the device at any time: it is
//!   only touched through volatile reads and writes of whole integers at
//!   raw pointers, never through Rust references.
//! * The driver writes a descriptor completely, then a full fence, then
//!   (through the caller) the tail register; it reads the status byte, then
//!   an acquire fence, then the other fields and the buffer.
//! * At most `count - 1` descriptors are given to the device (a full ring
//!   never has head == tail), so indices alone tell full from empty.
//! * A [`DmaBlock`] returns its segment to the region on drop; whoever owns
//!   it must have stopped the device from using it first.

use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use skmem_slab::{Region, RegionParams, Segment};
use skmem_traits::{AllocFlags, Error, Result, SegmentSource};

/// Size of one legacy descriptor.
pub const DESC_SIZE: usize = 16;

/// TX `cmd`: end of packet.
pub const TXD_CMD_EOP: u8 = 1 << 0;
/// TX `cmd`: insert the Ethernet FCS.
pub const TXD_CMD_IFCS: u8 = 1 << 1;
/// TX `cmd`: report status (write `DD` back).
pub const TXD_CMD_RS: u8 = 1 << 3;
/// TX / RX `status`: descriptor done.
pub const STA_DD: u8 = 1 << 0;
/// RX `status`: end of packet.
pub const RXD_STA_EOP: u8 = 1 << 1;

/// One segment of DMA memory: its address, its IOVA, and the region it is
/// returned to on drop.
pub struct DmaBlock<S: SegmentSource> {
    region: Arc<Region<S>>,
    seg: Segment,
    iova: u64,
    len: usize,
}

impl<S: SegmentSource> core::fmt::Debug for DmaBlock<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DmaBlock")
            .field("region", &self.region.name())
            .field("addr", &self.seg.base)
            .field("iova", &format_args!("{:#x}", self.iova))
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: the block is an owned segment of a `Send + Sync` region; its
// memory is only accessed through raw pointers by the ring that owns it.
unsafe impl<S: SegmentSource> Send for DmaBlock<S> {}

impl<S: SegmentSource> DmaBlock<S> {
    /// A region of `count` blocks of `len` bytes each (one segment per
    /// block) on source config `config`.
    pub fn region(
        name: impl Into<String>,
        len: usize,
        count: usize,
        config: S::Config,
    ) -> Result<Arc<Region<S>>> {
        Region::<S>::new(RegionParams::new(name, len, count).seg_size(len), config)
    }

    /// Takes one segment of `region` and zeroes it. Fails when the region
    /// is exhausted or its source gives no IOVA.
    pub fn alloc(region: &Arc<Region<S>>) -> Result<Self> {
        let seg = region.alloc_segment(AllocFlags::NoSleep)?;
        let len = region.layout().seg_size;
        let Some(iova) = region.source().iova(seg.base.as_ptr()) else {
            // SAFETY: the segment was just allocated from this region and
            // nothing else saw it.
            unsafe { region.free_segment(seg) };
            return Err(Error::Invalid {
                field: "source",
                reason: format!(
                    "region `{}`: source `{}` gives no IOVA; descriptor rings need DMA memory",
                    region.name(),
                    S::NAME
                ),
            });
        };
        // SAFETY: `len` bytes at `base` are this fresh segment, which no
        // device has been told about yet.
        unsafe { core::ptr::write_bytes(seg.base.as_ptr(), 0, len) };
        Ok(DmaBlock {
            region: Arc::clone(region),
            seg,
            iova,
            len,
        })
    }

    /// Address of the first byte.
    pub fn addr(&self) -> NonNull<u8> {
        self.seg.base
    }

    /// Device address of the first byte.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for a zero-length block (never: segments are non-empty).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<S: SegmentSource> Drop for DmaBlock<S> {
    fn drop(&mut self) {
        // SAFETY: the segment came from this region and is freed once; the
        // owner stopped the device before dropping (module docs).
        unsafe { self.region.free_segment(self.seg) };
    }
}

/// `base` as a pointer to quadwords; callers checked it is 16-aligned.
#[allow(clippy::cast_ptr_alignment)]
fn as_u64(base: NonNull<u8>) -> NonNull<u64> {
    debug_assert_eq!(base.as_ptr() as usize % DESC_SIZE, 0);
    base.cast::<u64>()
}

/// Shared index bookkeeping of a ring of `count` descriptors at `base`, and
/// the cookie (of type `C`) beside each descriptor.
#[derive(Debug)]
struct Ring<C> {
    /// First descriptor; 16-byte aligned (a segment base).
    base: NonNull<u64>,
    count: u16,
    /// Next descriptor the driver fills (the tail the device sees).
    next_to_use: u16,
    /// Oldest descriptor given to the device and not yet reclaimed.
    next_to_clean: u16,
    in_use: u16,
    /// The cookie of each descriptor the device holds (on TX, only a
    /// frame's last descriptor has one).
    cookies: Vec<Option<C>>,
}

impl<C> Ring<C> {
    fn new(base: NonNull<u8>, len: usize, count: u16) -> Result<Self> {
        if base.as_ptr() as usize % DESC_SIZE != 0 {
            return Err(Error::Invalid {
                field: "ring base",
                reason: format!("{base:p} is not 16-byte aligned"),
            });
        }
        if count < 8 || count % 8 != 0 {
            return Err(Error::invalid_param(
                "ring count",
                count.into(),
                "e1000e rings hold a multiple of 8 descriptors (128 bytes), at least 8",
            ));
        }
        if usize::from(count) * DESC_SIZE > len {
            return Err(Error::invalid_param(
                "ring count",
                count.into(),
                "the ring does not fit its DMA block",
            ));
        }
        Ok(Ring {
            base: as_u64(base),
            count,
            next_to_use: 0,
            next_to_clean: 0,
            in_use: 0,
            cookies: (0..count).map(|_| None).collect(),
        })
    }

    #[inline]
    fn desc(&self, i: u16) -> *mut u64 {
        debug_assert!(i < self.count);
        self.base.as_ptr().wrapping_add(usize::from(i) * 2)
    }

    #[inline]
    fn free(&self) -> usize {
        usize::from(self.count - 1 - self.in_use)
    }

    #[inline]
    fn wrap(&self, i: u16) -> u16 {
        if i + 1 == self.count {
            0
        } else {
            i + 1
        }
    }

    /// Writes the two quadwords of descriptor `i`.
    #[inline]
    fn write(&self, i: u16, lo: u64, hi: u64) {
        let d = self.desc(i);
        // SAFETY: `d` is inside the ring's block, 16-byte aligned (segment
        // bases are page aligned); volatile stores, no references.
        unsafe {
            d.write_volatile(lo.to_le());
            d.add(1).write_volatile(hi.to_le());
        }
    }

    /// The status byte (offset 12) of descriptor `i`.
    #[inline]
    fn status(&self, i: u16) -> u8 {
        // SAFETY: inside the ring; a volatile byte load.
        unsafe { self.desc(i).cast::<u8>().add(12).read_volatile() }
    }

    /// The second quadword of descriptor `i` (after the status was seen).
    #[inline]
    fn hi(&self, i: u16) -> u64 {
        // SAFETY: inside the ring, 8-aligned; a volatile load.
        u64::from_le(unsafe { self.desc(i).add(1).read_volatile() })
    }

    /// Hands every cookie still in the ring to `done` and empties it (the
    /// device was stopped: see [`TxRing::drain`]).
    fn drain(&mut self, mut done: impl FnMut(C)) {
        for c in self.cookies.iter_mut() {
            if let Some(c) = c.take() {
                done(c);
            }
        }
        self.next_to_clean = self.next_to_use;
        self.in_use = 0;
    }
}

/// A transmit ring whose descriptors carry cookies of type `T`.
#[derive(Debug)]
pub struct TxRing<T> {
    ring: Ring<T>,
}

// SAFETY: the ring's memory is owned by the caller's DmaBlock and only
// accessed through `&mut self`.
unsafe impl<T: Send> Send for TxRing<T> {}

impl<T> TxRing<T> {
    /// A ring of `count` descriptors in `block`.
    pub fn new<S: SegmentSource>(block: &DmaBlock<S>, count: u16) -> Result<Self> {
        Ok(TxRing {
            ring: Ring::new(block.addr(), block.len(), count)?,
        })
    }

    /// Descriptors in the ring.
    pub fn count(&self) -> u16 {
        self.ring.count
    }

    /// Descriptors that may still be filled.
    pub fn free(&self) -> usize {
        self.ring.free()
    }

    /// Descriptors the device holds.
    pub fn in_flight(&self) -> usize {
        usize::from(self.ring.in_use)
    }

    /// The tail to write to `TDT` after pushing.
    pub fn tail(&self) -> u16 {
        self.ring.next_to_use
    }

    /// Queues one frame made of `frags` (`(iova, len)`, in order), with
    /// `cookie` handed back when the device has sent it. On a full ring
    /// (or no fragments, or an empty fragment) nothing is queued and the
    /// cookie comes back in `Err`.
    pub fn push(&mut self, frags: &[(u64, u16)], cookie: T) -> core::result::Result<(), T> {
        if frags.is_empty() || frags.len() > self.free() || frags.iter().any(|f| f.1 == 0) {
            return Err(cookie);
        }
        let last = frags.len() - 1;
        for (k, &(iova, len)) in frags.iter().enumerate() {
            let i = self.ring.next_to_use;
            let mut cmd = TXD_CMD_IFCS | TXD_CMD_RS;
            if k == last {
                cmd |= TXD_CMD_EOP;
            }
            // length | cso 0 | cmd; status, css, special 0 (clears DD).
            let hi = u64::from(len) | (u64::from(cmd) << 24);
            self.ring.write(i, iova, hi);
            self.ring.next_to_use = self.ring.wrap(i);
            self.ring.in_use += 1;
        }
        let eop = if self.ring.next_to_use == 0 {
            self.ring.count - 1
        } else {
            self.ring.next_to_use - 1
        };
        self.ring.cookies[usize::from(eop)] = Some(cookie);
        // Descriptors complete before the caller's tail write.
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Hands back the cookie of every frame the device has finished, in
    /// order; returns how many descriptors were reclaimed.
    pub fn reclaim(&mut self, mut done: impl FnMut(T)) -> usize {
        let mut n = 0;
        while self.ring.in_use > 0 {
            let i = self.ring.next_to_clean;
            if self.ring.status(i) & STA_DD == 0 {
                break;
            }
            fence(Ordering::Acquire);
            if let Some(c) = self.ring.cookies[usize::from(i)].take() {
                done(c);
            }
            self.ring.next_to_clean = self.ring.wrap(i);
            self.ring.in_use -= 1;
            n += 1;
        }
        n
    }

    /// Hands back every cookie still in the ring, finished or not, and
    /// empties it. Only after the device was stopped (its queue disabled
    /// and reset): the caller vouches that nothing reads the buffers now.
    pub fn drain(&mut self, done: impl FnMut(T)) {
        self.ring.drain(done);
    }
}

/// A receive descriptor the device has filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxDone<R> {
    /// The cookie posted with the buffer.
    pub cookie: R,
    /// Bytes the device wrote into the buffer.
    pub len: u16,
    /// Last descriptor of the frame.
    pub eop: bool,
    /// The descriptor's error bits (0: none).
    pub errors: u8,
}

/// A receive ring whose descriptors carry cookies of type `R`.
#[derive(Debug)]
pub struct RxRing<R> {
    ring: Ring<R>,
}

// SAFETY: as for `TxRing`.
unsafe impl<R: Send> Send for RxRing<R> {}

impl<R> RxRing<R> {
    /// A ring of `count` descriptors in `block`.
    pub fn new<S: SegmentSource>(block: &DmaBlock<S>, count: u16) -> Result<Self> {
        Ok(RxRing {
            ring: Ring::new(block.addr(), block.len(), count)?,
        })
    }

    /// Descriptors in the ring.
    pub fn count(&self) -> u16 {
        self.ring.count
    }

    /// Descriptors that may still be posted.
    pub fn free(&self) -> usize {
        self.ring.free()
    }

    /// Buffers the device holds.
    pub fn posted(&self) -> usize {
        usize::from(self.ring.in_use)
    }

    /// The tail to write to `RDT` after posting.
    pub fn tail(&self) -> u16 {
        self.ring.next_to_use
    }

    /// Gives the device a buffer at `iova` (as large as the size programmed
    /// in `RCTL`); on a full ring the cookie comes back in `Err`.
    pub fn post(&mut self, iova: u64, cookie: R) -> core::result::Result<(), R> {
        if self.free() == 0 {
            return Err(cookie);
        }
        let i = self.ring.next_to_use;
        self.ring.write(i, iova, 0);
        self.ring.cookies[usize::from(i)] = Some(cookie);
        self.ring.next_to_use = self.ring.wrap(i);
        self.ring.in_use += 1;
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Hands every filled descriptor to `done`, in order; returns how many.
    pub fn poll(&mut self, mut done: impl FnMut(RxDone<R>)) -> usize {
        let mut n = 0;
        while self.ring.in_use > 0 {
            let i = self.ring.next_to_clean;
            let status = self.ring.status(i);
            if status & STA_DD == 0 {
                break;
            }
            fence(Ordering::Acquire);
            let hi = self.ring.hi(i);
            let cookie = self.ring.cookies[usize::from(i)]
                .take()
                .expect("a posted receive descriptor has a cookie");
            self.ring.next_to_clean = self.ring.wrap(i);
            self.ring.in_use -= 1;
            n += 1;
            done(RxDone {
                cookie,
                len: hi as u16,
                eop: status & RXD_STA_EOP != 0,
                errors: (hi >> 40) as u8,
            });
        }
        n
    }

    /// Hands back every cookie still posted and empties the ring. Only
    /// after the device was stopped (see [`TxRing::drain`]).
    pub fn drain(&mut self, done: impl FnMut(R)) {
        self.ring.drain(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skmem_backends::{DmaDomain, FakeIommu, Vfio, VfioConfig};

    fn block() -> (Arc<DmaDomain>, DmaBlock<Vfio>) {
        let domain = DmaDomain::new(Arc::new(FakeIommu::new())).unwrap();
        let region =
            DmaBlock::<Vfio>::region("test.rings", 4096, 2, VfioConfig::new(domain.clone()))
                .unwrap();
        let b = DmaBlock::alloc(&region).unwrap();
        (domain, b)
    }

    /// Plays the device: sets DD (and, for RX, a length and EOP) on
    /// descriptor `i`, through raw pointers like the device would.
    fn device_complete(b: &DmaBlock<Vfio>, i: usize, rx_len: Option<(u16, bool)>) {
        let hi = as_u64(b.addr()).as_ptr().wrapping_add(i * 2 + 1);
        // SAFETY: inside the test's block; nothing else touches it.
        unsafe {
            let v = u64::from_le(hi.read_volatile());
            let v = match rx_len {
                // length in bits 0..16, status (DD | EOP) in bits 32..40.
                Some((len, eop)) => {
                    let st = STA_DD | if eop { RXD_STA_EOP } else { 0 };
                    u64::from(len) | (u64::from(st) << 32)
                }
                None => v | (u64::from(STA_DD) << 32),
            };
            hi.write_volatile(v.to_le());
        }
    }

    fn read_desc(b: &DmaBlock<Vfio>, i: usize) -> (u64, u64) {
        let d = as_u64(b.addr()).as_ptr().wrapping_add(i * 2);
        // SAFETY: inside the test's block.
        unsafe { (d.read_volatile(), d.add(1).read_volatile()) }
    }

    #[test]
    fn block_has_the_iova_the_domain_mapped() {
        let (domain, b) = block();
        assert_eq!(domain.iova_of(b.addr().as_ptr()), Some(b.iova()));
        let at16 = b.addr().as_ptr().wrapping_add(16);
        assert_eq!(
            domain.addr_of_iova(b.iova() + 16).map(|p| p.as_ptr()),
            Some(at16)
        );
        assert_eq!(b.len(), 4096);
        drop(b);
    }

    #[test]
    fn tx_ring_writes_descriptors_and_hands_cookies_back_in_order() {
        let (_d, b) = block();
        let mut tx = TxRing::<u32>::new(&b, 8).unwrap();
        assert_eq!(tx.free(), 7);
        tx.push(&[(0x1_0000_0000, 512), (0x1_0000_1000, 100)], 7)
            .unwrap();
        tx.push(&[(0x1_0000_2000, 60)], 8).unwrap();
        assert_eq!(tx.tail(), 3);
        assert_eq!(tx.free(), 4);
        let (a0, h0) = read_desc(&b, 0);
        assert_eq!(a0, 0x1_0000_0000);
        assert_eq!(h0, 512 | u64::from(TXD_CMD_IFCS | TXD_CMD_RS) << 24);
        let (_, h1) = read_desc(&b, 1);
        assert_eq!(
            h1,
            100 | u64::from(TXD_CMD_IFCS | TXD_CMD_RS | TXD_CMD_EOP) << 24
        );
        // Too many fragments for the free descriptors: refused, cookie back.
        assert_eq!(tx.push(&[(1, 1); 5], 9), Err(9));
        assert_eq!(tx.push(&[], 10), Err(10));
        // Nothing done yet.
        let mut got = Vec::new();
        assert_eq!(tx.reclaim(|c| got.push(c)), 0);
        device_complete(&b, 0, None);
        assert_eq!(tx.reclaim(|c| got.push(c)), 1);
        assert!(got.is_empty(), "cookie rides on the EOP descriptor");
        device_complete(&b, 1, None);
        device_complete(&b, 2, None);
        assert_eq!(tx.reclaim(|c| got.push(c)), 2);
        assert_eq!(got, vec![7, 8]);
        assert_eq!(tx.free(), 7);
        // Wrap around the ring.
        for k in 0..20u32 {
            tx.push(&[(0x2000, 64)], k).unwrap();
            let i = (3 + k as usize) % 8;
            device_complete(&b, i, None);
            let mut one = Vec::new();
            tx.reclaim(|c| one.push(c));
            assert_eq!(one, vec![k]);
        }
    }

    #[test]
    fn rx_ring_reports_lengths_eop_and_drains() {
        let (_d, b) = block();
        let mut rx = RxRing::<u32>::new(&b, 8).unwrap();
        for k in 0..7 {
            rx.post(0x3000 + u64::from(k) * 512, k).unwrap();
        }
        assert_eq!(rx.post(1, 99), Err(99));
        assert_eq!(rx.posted(), 7);
        assert_eq!(read_desc(&b, 2), (0x3000 + 1024, 0));
        device_complete(&b, 0, Some((512, false)));
        device_complete(&b, 1, Some((90, true)));
        let mut got = Vec::new();
        assert_eq!(rx.poll(|d| got.push(d)), 2);
        assert_eq!(
            got,
            vec![
                RxDone {
                    cookie: 0,
                    len: 512,
                    eop: false,
                    errors: 0
                },
                RxDone {
                    cookie: 1,
                    len: 90,
                    eop: true,
                    errors: 0
                },
            ]
        );
        let mut rest = Vec::new();
        rx.drain(|c| rest.push(c));
        assert_eq!(rest, vec![2, 3, 4, 5, 6]);
        assert_eq!(rx.posted(), 0);
        assert_eq!(rx.free(), 7);
    }

    #[test]
    fn ring_sizes_are_checked() {
        let (_d, b) = block();
        assert!(TxRing::<u8>::new(&b, 12).is_err());
        assert!(RxRing::<u8>::new(&b, 512).is_err(), "512 * 16 > 4096");
        assert!(RxRing::<u8>::new(&b, 256).is_ok());
    }
}

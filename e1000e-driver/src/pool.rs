//! The packet pools the end-to-end test drives through the NICs.
//!
//! Buffers on demand with small (512-byte) buffers, so a full-size frame
//! is a packet of three buflets: three transmit descriptors on the way
//! out, three receive descriptors on the way in. Kernel-only (no user
//! mirror): the driver is the only user.

use skmem_backends::{Vfio, VfioConfig};
use skmem_packet::{PacketPool, PacketPoolConfig};
use skmem_traits::Result;

/// Buffer size of the test pools, also the NIC's receive buffer size.
pub const BUF_SIZE: usize = 512;
/// Buflets per packet at most (a 1514-byte frame needs 3).
pub const MAX_FRAGS: u16 = 4;

/// A pool of `packets` packets and `buffers` buffers of [`BUF_SIZE`]
/// bytes, every buffer DMA-mapped in `config`'s domain.
pub fn dma_pool(
    name: &str,
    packets: usize,
    buffers: usize,
    config: VfioConfig,
) -> Result<PacketPool<Vfio>> {
    PacketPoolConfig::new(name)
        .on_demand(true)
        .max_frags(MAX_FRAGS)
        .buf_size(BUF_SIZE)
        .md_count(packets)
        .buf_count(buffers)
        .kernel_only(true)
        .build::<Vfio>(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use skmem_backends::{DmaDomain, FakeIommu};
    use skmem_traits::AllocFlags;

    #[test]
    fn every_buflet_of_a_packet_has_an_iova_that_leads_back_to_its_bytes() {
        let fake = Arc::new(FakeIommu::new());
        let domain = DmaDomain::new(fake.clone()).unwrap();
        let pool = dma_pool("t", 64, 256, VfioConfig::new(domain.clone())).unwrap();
        let p = pool.alloc_packet(3, AllocFlags::NoSleep).unwrap();
        let data: Vec<u8> = (0..1514u32).map(|i| i as u8).collect();
        // SAFETY: `p` is ours until freed below.
        unsafe {
            assert_eq!(p.write_payload(&data), 1514);
            let bufs: Vec<_> = p.buflets().collect();
            assert_eq!(bufs.len(), 3);
            for b in bufs {
                assert!(b.capacity() >= BUF_SIZE);
                let iova = pool.buflet_iova(b).unwrap();
                assert!(iova >= 1 << 32, "IOVAs start above 4 GiB");
                // The fake IOMMU translates like the real one would.
                assert_eq!(fake.translate(iova), Some(b.addr() as usize));
                assert_eq!(domain.addr_of_iova(iova).unwrap().as_ptr(), b.addr());
            }
            pool.free_packet(p).unwrap();
        }
        let s = pool.stats();
        assert_eq!((s.packets_out, s.buflets_out), (0, 0));
        // A standalone buflet (what the receive ring is given).
        let b = pool.alloc_buflet(false, AllocFlags::NoSleep).unwrap();
        // SAFETY: `b` is ours.
        unsafe {
            assert!(pool.buflet_iova(b).is_some());
            pool.free_buflet(b);
        }
        // SAFETY: no other thread uses the pool or its packets during the check.
        assert!(unsafe { pool.outstanding() }.is_empty());
    }
}

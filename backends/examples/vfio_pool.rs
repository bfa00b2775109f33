//! Two regions of DMA buffers sharing one VFIO container and IOVA space.
//!
//! ```text
//! cargo run -p skmem-backends --example vfio_pool -- /dev/vfio/<group> [--hugepages]
//! ```
//!
//! With a group path (see the `skmem_backends::vfio` module docs for how to
//! bind a NIC to vfio-pci and get one) the buffers are mapped in the real
//! IOMMU. Without one, or when opening it fails (the reason is printed),
//! the same code runs on the recording `FakeIommu`, which also plays the
//! device: every IOVA is translated back and checked against the buffer.

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("vfio_pool: VFIO exists only on Linux");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::process::ExitCode;
    use std::ptr::NonNull;
    use std::sync::Arc;

    use skmem_backends::vfio::{DmaDomain, FakeIommu, Vfio, VfioConfig};
    use skmem_backends::HugepageSize;
    use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
    use skmem_traits::{AllocFlags, NoCtor, RegionMode, SegmentSource};

    pub(super) fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let hugepages = args.iter().any(|a| a == "--hugepages");
        let group = args.iter().find(|a| !a.starts_with("--"));

        let mut fake = None;
        let domain = match group.map(DmaDomain::open_vfio_group) {
            Some(Ok(d)) => {
                println!("opened VFIO group {}", group.unwrap());
                d
            }
            other => {
                if let Some(Err(e)) = other {
                    println!("cannot use the VFIO group: {e}");
                }
                println!("running on FakeIommu (no hardware)");
                let f = Arc::new(FakeIommu::new());
                fake = Some(f.clone());
                DmaDomain::new(f).expect("domain on the fake")
            }
        };
        let mut config = VfioConfig::new(domain.clone());
        if hugepages {
            config = config.with_hugepages(HugepageSize::Size2M);
        }

        // Metadata and buffers: two regions, one IOVA space.
        let mode = RegionMode::NOMAGAZINES | RegionMode::PUREDATA;
        let meta = Region::<Vfio>::new(
            RegionParams::new("pkt-meta", 128, 1024)
                .seg_size(64 * 1024)
                .mode(mode),
            config.clone(),
        );
        let bufs = Region::<Vfio>::new(
            RegionParams::new("pkt-bufs", 2048, 2048)
                .seg_size(1 << 20)
                .mode(mode),
            config,
        );
        let (meta, bufs) = match (meta, bufs) {
            (Ok(m), Ok(b)) => (m, b),
            (Err(e), _) | (_, Err(e)) => {
                println!("cannot build the regions: {e}");
                return ExitCode::SUCCESS;
            }
        };
        let meta_cache = SlabCache::new(meta.clone(), SlabConfig::new("pkt-meta", 128), NoCtor)
            .expect("metadata cache");
        let buf_cache = SlabCache::new(bufs.clone(), SlabConfig::new("pkt-bufs", 2048), NoCtor)
            .expect("buffer cache");

        let mut failures = 0;
        let mut held: Vec<(&SlabCache<Vfio>, NonNull<u8>)> = Vec::new();
        for n in 0..600 {
            let (cache, region) = if n % 3 == 0 {
                (&meta_cache, &meta)
            } else {
                (&buf_cache, &bufs)
            };
            let obj = match cache.alloc_with(AllocFlags::NoSleep) {
                Ok(o) => o,
                Err(e) => {
                    println!("allocation failed: {e}");
                    failures += 1;
                    break;
                }
            };
            let iova = region
                .source()
                .iova(obj.as_ptr())
                .expect("object has an IOVA");
            if domain.addr_of_iova(iova) != Some(obj) {
                failures += 1;
                println!("IOVA {iova:#x} does not lead back to {obj:p}");
            }
            if let Some(f) = &fake {
                // Play the device: write through our pointer, read at the IOVA.
                // SAFETY: the object is allocated; raw pointer access only.
                unsafe { obj.as_ptr().write_volatile(n as u8) };
                let dev = f.translate(iova).expect("IOVA mapped in the fake");
                // SAFETY: `dev` is the same live object's address.
                if unsafe { (dev as *const u8).read_volatile() } != n as u8 {
                    failures += 1;
                }
            }
            if n < 6 {
                println!("{:<9} {obj:p} -> IOVA {iova:#x}", cache.name());
            }
            held.push((cache, obj));
        }
        println!("live mappings in the domain:");
        for m in domain.mappings() {
            println!("  IOVA {:#12x} +{:>8} -> {:#x}", m.iova, m.len, m.vaddr);
        }
        for (cache, obj) in held {
            // SAFETY: each object came from `cache` and is freed once.
            unsafe { cache.free(obj) };
        }
        meta_cache.reap();
        buf_cache.reap();
        drop((meta_cache, buf_cache, meta, bufs));
        println!(
            "after teardown: {} mappings, {} IOVA bytes taken, {failures} failures",
            domain.mappings().len(),
            domain.allocated_iova_bytes()
        );
        if let Some(f) = fake {
            println!(
                "fake IOMMU: {} maps, {} unmaps",
                f.map_calls(),
                f.unmap_calls()
            );
        }
        if failures == 0 && domain.mappings().is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

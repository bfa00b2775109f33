//! The `Vfio` segment source on the recording fake IOMMU: the same code
//! path as on hardware except the ioctls.

#![cfg(all(target_os = "linux", not(miri)))]

mod pagemap_support;

use std::ptr::NonNull;
use std::sync::Arc;

use pagemap_support::{is_mapped, serial, HugepageReservation};
use skmem_backends::vfio::{DmaDomain, FakeIommu, SegmentMemory, Vfio, VfioConfig};
use skmem_backends::HugepageSize;
use skmem_traits::{Capabilities, Error, RegionMode, SegmentGeometry, SegmentSource};

const PAGE: usize = 4096;

fn geometry(seg_size: usize, seg_count: u32) -> SegmentGeometry {
    SegmentGeometry {
        seg_size,
        seg_count,
        align: 64,
        mode: RegionMode::empty(),
    }
}

fn fake_domain() -> (Arc<FakeIommu>, Arc<DmaDomain>) {
    let fake = Arc::new(FakeIommu::new());
    let domain = DmaDomain::new(fake.clone()).unwrap();
    (fake, domain)
}

fn create(src: &Vfio, i: u32) -> NonNull<u8> {
    // SAFETY: the tests pass in-range indices that are not live.
    unsafe { src.create(i) }.unwrap()
}

fn discard(src: &Vfio, i: u32, base: NonNull<u8>) {
    // SAFETY: `base` came from `create(i)` and is discarded once.
    unsafe { src.discard(i, base) }
}

#[test]
fn every_segment_is_mapped_while_live_and_unmapped_on_discard() {
    let _s = serial();
    let (fake, domain) = fake_domain();
    let free0 = domain.free_iova_bytes();
    let seg = 4 * PAGE;
    let src = Vfio::open(&geometry(seg, 6), &VfioConfig::new(domain.clone())).unwrap();
    assert_eq!(src.capabilities(), Capabilities::IOVA);
    let bases: Vec<_> = (0..6).map(|i| create(&src, i)).collect();

    let maps = fake.mappings();
    assert_eq!(maps.len(), 6);
    assert_eq!(fake.map_calls(), 6);
    for (i, &base) in bases.iter().enumerate() {
        let iova = src.segment_iova(i as u32).unwrap();
        assert_eq!(iova % PAGE as u64, 0);
        let m = maps
            .iter()
            .find(|m| m.iova == iova)
            .expect("segment is mapped");
        assert_eq!(m.vaddr, base.as_ptr() as usize);
        assert_eq!(m.len, seg);
        // The device's view and ours are the same bytes.
        // SAFETY: segment `i` is live and `seg` bytes long; raw pointer
        // writes only.
        unsafe { base.as_ptr().add(100).write_volatile(i as u8 + 1) };
        let dev = fake.translate(iova + 100).unwrap();
        // SAFETY: `dev` is inside live segment `i`.
        assert_eq!(unsafe { (dev as *const u8).read_volatile() }, i as u8 + 1);
    }
    // IOVAs never overlap.
    for w in maps.windows(2) {
        assert!(w[0].iova + w[0].len as u64 <= w[1].iova);
    }
    assert_eq!(domain.mappings().len(), 6);
    assert_eq!(free0 - domain.free_iova_bytes(), 6 * seg as u64);

    for (i, base) in bases.into_iter().enumerate() {
        discard(&src, i as u32, base);
        assert!(!is_mapped(base.as_ptr() as usize, seg), "memory unmapped");
        assert_eq!(src.segment_iova(i as u32), None);
    }
    assert!(fake.leftover().is_empty());
    assert_eq!(fake.unmap_calls(), 6);
    assert_eq!(domain.free_iova_bytes(), free0);
    assert_eq!(src.live_segments(), 0);
}

#[test]
fn iova_is_reused_after_discard() {
    let _s = serial();
    let (fake, domain) = fake_domain();
    let src = Vfio::open(&geometry(2 * PAGE, 4), &VfioConfig::new(domain)).unwrap();
    let b0 = create(&src, 0);
    let b1 = create(&src, 1);
    let b2 = create(&src, 2);
    let iova1 = src.segment_iova(1).unwrap();
    discard(&src, 1, b1);
    let b3 = create(&src, 3);
    assert_eq!(src.segment_iova(3), Some(iova1), "freed IOVA range reused");
    assert_eq!(src.addr_of_iova(iova1), Some(b3));
    for (i, b) in [(0, b0), (2, b2), (3, b3)] {
        discard(&src, i, b);
    }
    assert!(fake.leftover().is_empty());
}

#[test]
fn lookups_work_both_ways_and_only_for_live_segments() {
    let _s = serial();
    let (_fake, domain) = fake_domain();
    let seg = 8 * PAGE;
    let src = Vfio::open(&geometry(seg, 3), &VfioConfig::new(domain.clone())).unwrap();
    let b0 = create(&src, 0);
    let b1 = create(&src, 1);
    for (i, b) in [(0u32, b0), (1, b1)] {
        let iova = src.segment_iova(i).unwrap();
        for off in [0usize, 1, 4095, 4096, seg - 1] {
            let addr = b.as_ptr().wrapping_add(off);
            assert_eq!(src.iova(addr), Some(iova + off as u64));
            assert_eq!(domain.iova_of(addr), Some(iova + off as u64));
            assert_eq!(
                src.addr_of_iova(iova + off as u64).map(|p| p.as_ptr()),
                Some(addr)
            );
            assert_eq!(
                domain.addr_of_iova(iova + off as u64).map(|p| p.as_ptr()),
                Some(addr)
            );
        }
    }
    let local = 0u8;
    assert_eq!(src.iova(&local), None, "stack address");
    assert_eq!(src.addr_of_iova(0), None, "below the IOVA space");
    assert_eq!(src.segment_iova(2), None, "never created");
    let iova0 = src.segment_iova(0).unwrap();
    discard(&src, 0, b0);
    assert_eq!(src.iova(b0.as_ptr()), None, "discarded");
    assert_eq!(src.addr_of_iova(iova0), None, "discarded");
    assert_eq!(domain.addr_of_iova(iova0), None, "discarded");
    discard(&src, 1, b1);
}

#[test]
fn regions_sharing_a_domain_share_one_iova_space() {
    let _s = serial();
    let (fake, domain) = fake_domain();
    let config = VfioConfig::new(domain.clone());
    let meta = Vfio::open(&geometry(PAGE, 4), &config).unwrap();
    let bufs = Vfio::open(&geometry(16 * PAGE, 4), &config).unwrap();
    let mut live = Vec::new();
    for i in 0..4 {
        live.push((&meta, i, create(&meta, i)));
        live.push((&bufs, i, create(&bufs, i)));
    }
    let maps = fake.mappings();
    assert_eq!(maps.len(), 8);
    for w in maps.windows(2) {
        assert!(w[0].iova + w[0].len as u64 <= w[1].iova, "overlap {w:x?}");
    }
    // Each source resolves only its own segments; the domain resolves both.
    let buf_iova = bufs.segment_iova(2).unwrap();
    assert_eq!(meta.addr_of_iova(buf_iova), None);
    assert_eq!(domain.addr_of_iova(buf_iova), bufs.addr_of_iova(buf_iova));
    for (src, i, b) in live {
        discard(src, i, b);
    }
    assert!(fake.leftover().is_empty());
}

#[test]
fn a_failed_map_leaves_nothing_mapped_and_nothing_taken() {
    let _s = serial();
    let (fake, domain) = fake_domain();
    let src = Vfio::open(&geometry(4 * PAGE, 4), &VfioConfig::new(domain.clone())).unwrap();
    let b0 = create(&src, 0);
    let b1 = create(&src, 1);
    let taken = domain.allocated_iova_bytes();
    fake.fail_nth_map(1);
    // SAFETY: index 2 is in range and not live.
    let err = unsafe { src.create(2) }.unwrap_err();
    assert!(matches!(err, Error::InjectedFault { .. }), "{err}");
    assert_eq!(fake.mappings().len(), 2, "the failed segment is not mapped");
    assert_eq!(domain.allocated_iova_bytes(), taken, "its IOVA went back");
    assert_eq!(src.live_segments(), 2);
    assert_eq!(src.segment_iova(2), None);
    // The memory mmap'ed for it was unmapped: the only anonymous memory
    // this source holds is the two live segments.
    let next_iova = {
        let b2 = create(&src, 2);
        let iova = src.segment_iova(2).unwrap();
        discard(&src, 2, b2);
        iova
    };
    assert_eq!(next_iova, src.segment_iova(1).unwrap() + 4 * PAGE as u64);
    discard(&src, 0, b0);
    discard(&src, 1, b1);
    assert!(fake.leftover().is_empty());
    assert_eq!(domain.allocated_iova_bytes(), 0);
}

#[test]
fn a_failed_map_unmaps_the_segment_memory() {
    let _s = serial();
    let (fake, domain) = fake_domain();
    // A large, distinctive segment size: after the failure, no mapping of
    // this exact size may remain among this process's mappings.
    let seg = 379 * PAGE;
    let src = Vfio::open(&geometry(seg, 2), &VfioConfig::new(domain)).unwrap();
    let count = || count_mappings_of_len(seg);
    let before = count();
    fake.fail_nth_map(1);
    // SAFETY: index 0 is in range and not live.
    assert!(unsafe { src.create(0) }.is_err());
    assert_eq!(
        count(),
        before,
        "segment memory left mapped after a failed map"
    );
    let b = create(&src, 0);
    assert_eq!(count(), before + 1);
    discard(&src, 0, b);
    assert_eq!(count(), before);
}

/// Mappings in /proc/self/maps exactly `len` bytes long.
fn count_mappings_of_len(len: usize) -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| {
            let range = l.split_whitespace().next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            let a = usize::from_str_radix(a, 16).unwrap();
            let b = usize::from_str_radix(b, 16).unwrap();
            b - a == len
        })
        .count()
}

#[test]
fn a_failed_unmap_quarantines_the_iova_until_retried() {
    let _s = serial();
    let (fake, domain) = fake_domain();
    let src = Vfio::open(&geometry(PAGE, 4), &VfioConfig::new(domain.clone())).unwrap();
    let b0 = create(&src, 0);
    let iova0 = src.segment_iova(0).unwrap();
    fake.fail_nth_unmap(1);
    discard(&src, 0, b0);
    assert_eq!(src.unmap_failures(), 1);
    assert_eq!(domain.unmap_failures(), 1);
    assert_eq!(domain.quarantined(), vec![(iova0, PAGE)]);
    assert_eq!(fake.mappings().len(), 1, "the IOMMU still maps it");
    assert_eq!(src.iova(b0.as_ptr()), None, "but lookups forget it");
    // The quarantined range is not reused.
    let b1 = create(&src, 1);
    assert_ne!(src.segment_iova(1), Some(iova0));
    assert_eq!(domain.retry_failed_unmaps(), 0);
    assert!(domain.quarantined().is_empty());
    let b2 = create(&src, 2);
    assert_eq!(src.segment_iova(2), Some(iova0), "reused once released");
    discard(&src, 1, b1);
    discard(&src, 2, b2);
    assert!(fake.leftover().is_empty());
}

#[test]
fn iova_exhaustion_is_an_error_that_leaves_nothing_behind() {
    let _s = serial();
    let fake = Arc::new(FakeIommu::new());
    let space = 1u64 << 32;
    let domain = DmaDomain::with_iova_space(fake.clone(), space..space + 3 * PAGE as u64).unwrap();
    let src = Vfio::open(&geometry(PAGE, 8), &VfioConfig::new(domain.clone())).unwrap();
    let bases: Vec<_> = (0..3).map(|i| create(&src, i)).collect();
    // SAFETY: index 3 is in range and not live.
    let err = unsafe { src.create(3) }.unwrap_err();
    assert!(err.is_exhaustion(), "{err}");
    assert!(err.to_string().contains("IOVA space"), "{err}");
    assert_eq!(fake.map_calls(), 3, "the IOMMU was not asked");
    for (i, b) in bases.into_iter().enumerate() {
        discard(&src, i as u32, b);
    }
    assert!(fake.leftover().is_empty());
}

#[test]
fn dropping_the_source_unmaps_what_is_still_live() {
    let _s = serial();
    let (fake, domain) = fake_domain();
    let src = Vfio::open(&geometry(PAGE, 4), &VfioConfig::new(domain.clone())).unwrap();
    let bases: Vec<_> = (0..3).map(|i| create(&src, i)).collect();
    drop(src);
    assert!(fake.leftover().is_empty());
    assert_eq!(domain.allocated_iova_bytes(), 0);
    for b in bases {
        assert!(!is_mapped(b.as_ptr() as usize, PAGE));
    }
}

#[test]
fn concurrent_creates_and_discards_on_distinct_indices() {
    let _s = serial();
    let (fake, domain) = fake_domain();
    let src = Arc::new(Vfio::open(&geometry(2 * PAGE, 8), &VfioConfig::new(domain)).unwrap());
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let src = src.clone();
            std::thread::spawn(move || {
                for round in 0..200u32 {
                    let i = t * 2 + round % 2;
                    let b = create(&src, i);
                    let iova = src.segment_iova(i).unwrap();
                    assert_eq!(src.iova(b.as_ptr().wrapping_add(5)), Some(iova + 5));
                    discard(&src, i, b);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(fake.map_calls(), 800);
    assert!(fake.peak_mappings() <= 8);
    assert!(fake.leftover().is_empty());
}

#[test]
fn bad_configuration_is_refused_by_name() {
    let _s = serial();
    let err = Vfio::open(&geometry(PAGE, 1), &VfioConfig::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Invalid {
                field: "VfioConfig::domain",
                ..
            }
        ),
        "{err}"
    );
    let (_fake, domain) = fake_domain();
    let config = VfioConfig::new(domain);
    let err = Vfio::open(&geometry(PAGE + 64, 1), &config).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParam {
                param: "seg_size",
                ..
            }
        ),
        "{err}"
    );
    let mut g = geometry(PAGE, 1);
    g.mode = RegionMode::GUARD;
    assert!(matches!(
        Vfio::open(&g, &config).unwrap_err(),
        Error::Unsupported {
            source_name: "vfio",
            ..
        }
    ));
    let src = Vfio::open(&geometry(PAGE, 1), &config).unwrap();
    // SAFETY: out-of-range index; `create` must refuse it.
    let err = unsafe { src.create(1) }.unwrap_err();
    assert!(matches!(err, Error::OutOfRange { field: "index", .. }));
}

#[test]
fn a_nonexistent_group_path_is_named_in_the_error() {
    let _s = serial();
    let path = "/dev/vfio/4242";
    let err = DmaDomain::open_vfio_group(path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(path), "error does not name the path: {msg}");
    assert!(
        msg.contains("vfio-pci"),
        "error does not say how to fix it: {msg}"
    );
    // A file that is not a VFIO group is refused too, by path or by the
    // missing container device.
    let err = DmaDomain::open_vfio_group("/dev/null").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/dev/null") || msg.contains("/dev/vfio/vfio"),
        "{msg}"
    );
}

#[test]
fn hugepage_segments_are_hugepage_aligned_in_both_spaces() {
    let _s = serial();
    let reservation = match HugepageReservation::ensure_free(3) {
        Ok(r) => r,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let (fake, domain) = fake_domain();
    let config = VfioConfig::new(domain).with_hugepages(HugepageSize::Size2M);
    // 64 KiB segments each take a whole 2 MiB page.
    let src = Vfio::open(&geometry(16 * PAGE, 3), &config).unwrap();
    assert_eq!(src.memory(), SegmentMemory::Hugepages(HugepageSize::Size2M));
    assert_eq!(src.mapped_len(), 2 << 20);
    let bases: Vec<_> = (0..3).map(|i| create(&src, i)).collect();
    for (i, b) in bases.iter().enumerate() {
        assert_eq!(b.as_ptr() as usize % (2 << 20), 0);
        assert_eq!(src.segment_iova(i as u32).unwrap() % (2 << 20), 0);
    }
    assert!(fake.mappings().iter().all(|m| m.len == 2 << 20));
    for (i, b) in bases.into_iter().enumerate() {
        discard(&src, i as u32, b);
    }
    assert!(fake.leftover().is_empty());
    drop(reservation);
}

#[test]
fn no_free_hugepages_is_a_clear_error() {
    let _s = serial();
    let (total, free) = pagemap_support::pool_2m();
    if total != free {
        eprintln!("skipped: someone else holds hugepages ({free} free of {total})");
        return;
    }
    // One page in the pool: the source opens, the second segment fails.
    let reservation = match HugepageReservation::set(1) {
        Ok(r) => r,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let (fake, domain) = fake_domain();
    let config = VfioConfig::new(domain).with_hugepages(HugepageSize::Size2M);
    let src = Vfio::open(&geometry(2 << 20, 2), &config).unwrap();
    let b0 = create(&src, 0);
    // SAFETY: index 1 is in range and not live.
    let err = unsafe { src.create(1) }.unwrap_err();
    let msg = err.to_string();
    assert!(err.is_exhaustion(), "{msg}");
    assert!(msg.contains("nr_hugepages"), "{msg}");
    assert_eq!(fake.mappings().len(), 1);
    discard(&src, 0, b0);
    drop(src);
    // An empty pool is refused at open, naming the fix.
    drop(reservation);
    let _empty = HugepageReservation::set(0).unwrap();
    let err = Vfio::open(&geometry(2 << 20, 2), &config).unwrap_err();
    assert!(err.to_string().contains("echo"), "{err}");
}

#[test]
fn discard_at_a_wrong_base_panics_and_keeps_the_segment() {
    let _s = serial();
    let (fake, domain) = fake_domain();
    let src = Vfio::open(&geometry(PAGE, 2), &VfioConfig::new(domain)).unwrap();
    let b0 = create(&src, 0);
    let wrong = NonNull::new(b0.as_ptr().wrapping_add(PAGE)).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| discard(&src, 0, wrong)));
    assert!(r.is_err(), "a discard at the wrong base must panic");
    assert_eq!(src.live_segments(), 1);
    assert!(src.segment_iova(0).is_some());
    assert_eq!(fake.mappings().len(), 1);
    discard(&src, 0, b0);
    assert!(fake.leftover().is_empty());
}

#[test]
fn a_region_and_slab_cache_on_vfio_map_every_segment_they_use() {
    use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
    use skmem_traits::{AllocFlags, NoCtor};

    let _s = serial();
    let (fake, domain) = fake_domain();
    let params = RegionParams::new("dma-bufs", 2048, 64)
        .seg_size(8 * PAGE)
        .mode(RegionMode::NOMAGAZINES | RegionMode::PUREDATA);
    let region = Region::<Vfio>::new(params, VfioConfig::new(domain.clone())).unwrap();
    let per_seg = region.layout().objs_per_seg as usize;
    let cache = SlabCache::new(region.clone(), SlabConfig::new("dma-bufs", 2048), NoCtor).unwrap();
    let objs: Vec<_> = (0..3 * per_seg)
        .map(|_| cache.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    assert_eq!(fake.mappings().len(), 3, "one mapping per segment in use");
    for &o in &objs {
        let seg = region.segment_of(o.as_ptr()).unwrap();
        let seg_iova = region.source().segment_iova(seg.index).unwrap();
        let off = o.as_ptr() as usize - seg.base.as_ptr() as usize;
        let iova = region.source().iova(o.as_ptr()).unwrap();
        assert_eq!(iova, seg_iova + off as u64);
        assert_eq!(domain.addr_of_iova(iova), Some(o));
        assert_eq!(fake.translate(iova), Some(o.as_ptr() as usize));
    }
    for o in objs {
        // SAFETY: each object came from `cache` and is freed once.
        unsafe { cache.free(o) };
    }
    cache.reap();
    drop(cache);
    drop(region);
    assert!(fake.leftover().is_empty(), "{:x?}", fake.leftover());
    assert_eq!(domain.allocated_iova_bytes(), 0);
}

//! The `Pagemap` segment source on real hugepages, as root. Tests that
//! cannot get hugepages or root print `skipped: <reason>` and return.

#![cfg(all(target_os = "linux", not(miri)))]

mod pagemap_support;

use std::ptr::NonNull;

use pagemap_support::{is_root, phys_of, pool_2m, serial, HugepageReservation};
use skmem_backends::pagemap::{virt_to_phys, Pagemap, PagemapConfig};
use skmem_backends::HugepageSize;
use skmem_traits::{Capabilities, Error, RegionMode, SegmentGeometry, SegmentSource};

const PAGE: usize = 4096;
const HP: usize = 2 << 20;

fn geometry(seg_size: usize, seg_count: u32) -> SegmentGeometry {
    SegmentGeometry {
        seg_size,
        seg_count,
        align: 64,
        mode: RegionMode::empty(),
    }
}

fn create(src: &Pagemap, i: u32) -> NonNull<u8> {
    // SAFETY: the tests pass in-range indices that are not live.
    unsafe { src.create(i) }.unwrap()
}

fn discard(src: &Pagemap, i: u32, base: NonNull<u8>) {
    // SAFETY: `base` came from `create(i)` and is discarded once.
    unsafe { src.discard(i, base) }
}

/// Reserves `free` free 2 MiB pages, or says why not.
fn hugepages(free: u64) -> Option<HugepageReservation> {
    if !is_root() {
        eprintln!("skipped: not root (physical addresses need CAP_SYS_ADMIN)");
        return None;
    }
    match HugepageReservation::ensure_free(free) {
        Ok(r) => Some(r),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Checks, with the test's own pagemap reader, that every 4 KiB page of
/// `[base, base + len)` sits at `pa + offset`.
fn assert_contiguous_at(base: NonNull<u8>, len: usize, pa: u64) {
    for off in (0..len).step_by(PAGE) {
        let got = phys_of(base.as_ptr() as usize + off).expect("page present with a PFN");
        assert_eq!(
            got,
            pa + off as u64,
            "page at offset {off:#x} is not contiguous"
        );
    }
}

#[test]
fn segments_have_verified_physical_addresses() {
    let _s = serial();
    let Some(reservation) = hugepages(4) else {
        return;
    };
    let (_, free_before) = pool_2m();
    let src = Pagemap::open(&geometry(HP, 4), &PagemapConfig::default()).unwrap();
    assert_eq!(
        src.capabilities(),
        Capabilities::IOVA | Capabilities::PHYS_CONTIG
    );
    let bases: Vec<_> = (0..4).map(|i| create(&src, i)).collect();
    assert_eq!(pool_2m().1, free_before - 4, "one hugepage per segment");
    let mut pas = Vec::new();
    for (i, &b) in bases.iter().enumerate() {
        let pa = src.segment_iova(i as u32).unwrap();
        eprintln!("segment {i}: virt {:p} phys {pa:#x}", b.as_ptr());
        assert_ne!(pa, 0);
        assert_eq!(
            pa % HP as u64,
            0,
            "hugepage physical address is 2 MiB aligned"
        );
        assert_eq!(b.as_ptr() as usize % HP, 0);
        assert_contiguous_at(b, HP, pa);
        for off in [0usize, 1, 4097, HP - 1] {
            let addr = b.as_ptr().wrapping_add(off);
            assert_eq!(src.iova(addr), Some(pa + off as u64));
            assert_eq!(virt_to_phys(addr).unwrap(), pa + off as u64);
            assert_eq!(
                src.addr_of_iova(pa + off as u64).map(|p| p.as_ptr()),
                Some(addr)
            );
        }
        // SAFETY: the segment is live and HP bytes long; raw pointer
        // writes only.
        unsafe { b.as_ptr().add(HP - 1).write_volatile(0xa5) };
        pas.push(pa);
    }
    pas.sort_unstable();
    pas.dedup();
    assert_eq!(pas.len(), 4, "distinct physical pages");
    let pa0 = src.segment_iova(0).unwrap();
    for (i, b) in bases.into_iter().enumerate() {
        discard(&src, i as u32, b);
    }
    assert_eq!(src.iova(std::ptr::null::<u8>().wrapping_add(1)), None);
    assert_eq!(src.addr_of_iova(pa0), None, "discarded");
    assert_eq!(src.live_segments(), 0);
    assert_eq!(pool_2m().1, free_before, "hugepages given back");
    drop(src);
    drop(reservation);
}

#[test]
fn small_segments_take_a_whole_hugepage_and_read_as_zero() {
    let _s = serial();
    let Some(_reservation) = hugepages(2) else {
        return;
    };
    let src = Pagemap::open(&geometry(16 * PAGE, 2), &PagemapConfig::default()).unwrap();
    assert_eq!(src.mapped_len(), HP);
    let b = create(&src, 0);
    let pa = src.segment_iova(0).unwrap();
    assert_eq!(pa % HP as u64, 0);
    assert_contiguous_at(b, 16 * PAGE, pa);
    for off in (0..16 * PAGE).step_by(512) {
        // SAFETY: inside the live segment; raw read.
        assert_eq!(unsafe { b.as_ptr().add(off).read_volatile() }, 0);
    }
    // Only the segment's own bytes resolve, not the rest of its hugepage.
    assert_eq!(src.iova(b.as_ptr().wrapping_add(16 * PAGE)), None);
    discard(&src, 0, b);
}

#[test]
fn multi_hugepage_segments_are_refused_unless_verified() {
    let _s = serial();
    // Refused at open by default, without needing root or hugepages.
    let err = Pagemap::open(&geometry(2 * HP, 2), &PagemapConfig::default()).unwrap_err();
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

    let Some(_reservation) = hugepages(64) else {
        return;
    };
    let (_, free_before) = pool_2m();
    let config = PagemapConfig::default().with_multi_hugepage_segments(64);
    let src = Pagemap::open(&geometry(2 * HP, 2), &config).unwrap();
    // SAFETY: index 0 is in range and not live.
    match unsafe { src.create(0) } {
        Ok(b) => {
            let pa = src.segment_iova(0).unwrap();
            eprintln!("4 MiB segment assembled physically contiguous at {pa:#x}");
            assert_eq!(pool_2m().1, free_before - 2, "only the run is kept");
            assert_contiguous_at(b, 2 * HP, pa);
            assert_eq!(b.as_ptr() as usize % HP, 0);
            for off in [0, HP - 1, HP, 2 * HP - 1] {
                assert_eq!(
                    src.iova(b.as_ptr().wrapping_add(off)),
                    Some(pa + off as u64)
                );
            }
            // SAFETY: the segment is live and 4 MiB long; raw writes.
            unsafe {
                b.as_ptr().write_volatile(1);
                b.as_ptr().add(2 * HP - 1).write_volatile(2);
            }
            discard(&src, 0, b);
        }
        Err(e) => {
            // Possible on a fragmented pool; it must be the clear error.
            eprintln!("no contiguous pair among the candidates: {e}");
            assert!(
                matches!(
                    e,
                    Error::Invalid {
                        field: "seg_size",
                        ..
                    }
                ),
                "{e}"
            );
        }
    }
    assert_eq!(pool_2m().1, free_before, "every candidate was given back");
}

#[test]
fn shortage_and_an_empty_pool_are_clear_errors() {
    let _s = serial();
    if !is_root() {
        eprintln!("skipped: not root");
        return;
    }
    let (total, free) = pool_2m();
    if total != free {
        eprintln!("skipped: someone else holds hugepages ({free} free of {total})");
        return;
    }
    let reservation = match HugepageReservation::set(1) {
        Ok(r) => r,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let src = Pagemap::open(&geometry(HP, 2), &PagemapConfig::default()).unwrap();
    let b0 = create(&src, 0);
    // SAFETY: index 1 is in range and not live.
    let err = unsafe { src.create(1) }.unwrap_err();
    eprintln!("shortage: {err}");
    assert!(err.is_exhaustion());
    assert!(err.to_string().contains("nr_hugepages"), "{err}");
    assert_eq!(src.live_segments(), 1);
    discard(&src, 0, b0);
    drop(src);
    drop(reservation);

    let _empty = HugepageReservation::set(0).unwrap();
    let err = Pagemap::open(&geometry(HP, 2), &PagemapConfig::default()).unwrap_err();
    eprintln!("empty pool: {err}");
    assert!(
        err.to_string().contains("echo") && err.to_string().contains("nr_hugepages"),
        "{err}"
    );
}

#[test]
fn one_gib_pages_are_reported_when_missing() {
    let _s = serial();
    let config = PagemapConfig::default().with_hugepage_size(HugepageSize::Size1G);
    match Pagemap::open(&geometry(HP, 1), &config) {
        // Some machine has 1 GiB pages reserved: then segments work.
        Ok(src) => {
            let b = create(&src, 0);
            assert_eq!(src.segment_iova(0).unwrap() % (1 << 30), 0);
            discard(&src, 0, b);
        }
        Err(e) => {
            eprintln!("1 GiB pages: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains("1 GiB") || msg.contains("CAP_SYS_ADMIN"),
                "error names neither the page size nor the privilege: {msg}"
            );
        }
    }
}

#[test]
fn bad_geometry_is_refused_by_name() {
    let err = Pagemap::open(&geometry(PAGE + 1, 1), &PagemapConfig::default()).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidParam {
            param: "seg_size",
            ..
        }
    ));
    let mut g = geometry(HP, 1);
    g.align = 4 * HP;
    let err = Pagemap::open(&g, &PagemapConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidParam { param: "align", .. }));
    g = geometry(HP, 1);
    g.mode = RegionMode::GUARD;
    let err = Pagemap::open(&g, &PagemapConfig::default()).unwrap_err();
    assert!(matches!(
        err,
        Error::Unsupported {
            source_name: "pagemap",
            ..
        }
    ));
}

const CHILD_ENV: &str = "SKMEM_PAGEMAP_TEST_CHILD";

/// Runs this test binary again as user `nobody` and checks that opening a
/// `Pagemap` there fails naming the missing privilege.
#[test]
fn without_root_the_error_names_cap_sys_admin() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // Child side: not root, hugepages reserved by the parent.
        match Pagemap::open(&geometry(HP, 1), &PagemapConfig::default()) {
            Ok(_) => println!("CHILD-RESULT: opened"),
            Err(e) => println!("CHILD-RESULT: {e}"),
        }
        return;
    }
    let _s = serial();
    let Some(_reservation) = hugepages(1) else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "without_root_the_error_names_cap_sys_admin",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.find("CHILD-RESULT: ").map(|at| &l[at..]))
        .unwrap_or_else(|| {
            panic!(
                "child printed no result: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("as nobody: {line}");
    assert!(line.contains("CAP_SYS_ADMIN"), "{line}");
    assert!(line.contains("/proc/self/pagemap"), "{line}");
}

#[test]
fn a_slab_cache_on_pagemap_hands_out_physically_addressed_buffers() {
    use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
    use skmem_traits::{AllocFlags, NoCtor};

    let _s = serial();
    let Some(_reservation) = hugepages(2) else {
        return;
    };
    let params = RegionParams::new("pa-bufs", 2048, 2 * HP / 2048)
        .seg_size(HP)
        .mode(RegionMode::NOMAGAZINES | RegionMode::PUREDATA);
    let region = Region::<Pagemap>::new(params, PagemapConfig::default()).unwrap();
    let cache = SlabCache::new(region.clone(), SlabConfig::new("pa-bufs", 2048), NoCtor).unwrap();
    let objs: Vec<_> = (0..HP / 2048 + 1)
        .map(|_| cache.alloc_with(AllocFlags::NoSleep).unwrap())
        .collect();
    for &o in &objs {
        let pa = region.source().iova(o.as_ptr()).unwrap();
        assert_eq!(phys_of(o.as_ptr() as usize), Some(pa));
        assert_eq!(phys_of(o.as_ptr() as usize + 2047), Some(pa + 2047));
    }
    for o in objs {
        // SAFETY: each object came from `cache` and is freed once.
        unsafe { cache.free(o) };
    }
}

//! The `Mmap` source checked against the kernel's own view of the process:
//! `/proc/self/maps` for protections, `mincore` for residency,
//! `/proc/self/smaps` for locked memory, `/proc/self/fd` for the memfd.
//!
//! Memory is touched through raw pointers only: the span is a shared
//! mapping that a second view may write at any time.
#![cfg(all(target_os = "linux", not(miri)))]

use std::ffi::c_void;
use std::os::fd::AsFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};

use skmem_backends::{Mmap, MmapConfig};
use skmem_traits::{Capabilities, Error, Protection, RegionMode, SegmentGeometry, SegmentSource};

// ---------------------------------------------------------------- helpers --

fn page() -> usize {
    rustix::param::page_size()
}

/// A memfd name no other test (or test process) uses.
fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "skmem-t-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn geometry(seg_size: usize, seg_count: u32, align: usize, mode: RegionMode) -> SegmentGeometry {
    SegmentGeometry {
        seg_size,
        seg_count,
        align,
        mode,
    }
}

fn open(geometry: SegmentGeometry, tag: &str) -> (Mmap, String) {
    let name = unique_name(tag);
    let source = Mmap::open(&geometry, &MmapConfig::default().with_name(name.clone()))
        .expect("open mmap source");
    (source, name)
}

fn addr(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize
}

/// One line of `/proc/self/maps`.
#[derive(Debug)]
struct MapsLine {
    start: usize,
    end: usize,
    perms: String,
    path: String,
}

fn maps() -> Vec<MapsLine> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next().unwrap();
            let perms = fields.next().unwrap().to_owned();
            let path = fields.nth(3).map(str::to_owned).unwrap_or_default();
            let (start, end) = range.split_once('-').unwrap();
            MapsLine {
                start: usize::from_str_radix(start, 16).unwrap(),
                end: usize::from_str_radix(end, 16).unwrap(),
                perms,
                path,
            }
        })
        .collect()
}

/// The permissions of every maps line covering `[start, start + len)`;
/// asserts the lines cover the whole range and all belong to memfd `name`.
fn perms_of(start: usize, len: usize, name: &str) -> Vec<String> {
    let end = start + len;
    let lines: Vec<MapsLine> = maps()
        .into_iter()
        .filter(|l| l.start < end && l.end > start)
        .collect();
    let mut covered = start;
    for l in &lines {
        assert!(
            l.start <= covered,
            "hole in the mapping at {covered:#x}: {lines:x?}"
        );
        covered = l.end;
        assert!(
            l.path == format!("/memfd:{name}"),
            "range {start:#x}+{len:#x} is not all memfd `{name}`: {l:x?}"
        );
    }
    assert!(covered >= end, "range not fully mapped: {lines:x?}");
    let mut perms: Vec<String> = lines.into_iter().map(|l| l.perms).collect();
    perms.dedup();
    perms
}

/// Asserts that `[start, start + len)` is mapped with exactly `perms`.
#[track_caller]
fn assert_perms(start: usize, len: usize, name: &str, perms: &str) {
    assert_eq!(
        perms_of(start, len, name),
        [perms],
        "at {start:#x}+{len:#x}"
    );
}

fn memfd_in_maps(name: &str) -> bool {
    let needle = format!("/memfd:{name} ");
    maps()
        .iter()
        .any(|l| format!("{} ", l.path).starts_with(&needle))
}

fn memfd_open_fds(name: &str) -> usize {
    let target = format!("/memfd:{name} (deleted)");
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy() == target)
        .count()
}

/// Pages of `[p, p + len)` the kernel reports resident (`mincore`).
fn resident_pages(p: NonNull<u8>, len: usize) -> usize {
    let mut vec = vec![0u8; len.div_ceil(page())];
    // SAFETY: `p..p + len` is mapped (part of a live span); `vec` has one
    // byte per page.
    let rc = unsafe { libc::mincore(p.as_ptr().cast::<c_void>(), len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|&&v| v & 1 != 0).count()
}

/// Sum of `Locked:` (kB) over the smaps entries overlapping the range.
fn locked_kb(start: usize, len: usize) -> u64 {
    let end = start + len;
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    let mut total = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                inside = a < end && b > start;
                continue;
            }
        }
        if inside {
            if let Some(rest) = line.strip_prefix("Locked:") {
                total += rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
        }
    }
    total
}

fn fill(p: NonNull<u8>, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: `p..p + len` is a live, writable segment.
        unsafe { ptr::write_volatile(p.as_ptr().add(i), seed.wrapping_add(i as u8)) };
    }
}

/// First offset where `[p, p + len)` differs from the `fill(seed)` pattern
/// (or from zero when `seed` is `None`).
fn mismatch(p: NonNull<u8>, len: usize, seed: Option<u8>) -> Option<usize> {
    (0..len).find(|&i| {
        // SAFETY: `p..p + len` is a live, readable segment.
        let got = unsafe { ptr::read_volatile(p.as_ptr().add(i)) };
        got != seed.map_or(0, |s| s.wrapping_add(i as u8))
    })
}

// ------------------------------------------------------------ validation --

#[test]
fn bad_geometry_is_refused_by_name() {
    let pg = page();
    let cases: [(SegmentGeometry, &str); 7] = [
        (geometry(pg + 1000, 4, 64, RegionMode::empty()), "seg_size"),
        (geometry(0, 4, 64, RegionMode::empty()), "seg_size"),
        (geometry(pg, 0, 64, RegionMode::empty()), "seg_count"),
        (
            geometry(usize::MAX / 2 / pg * pg, 4, 64, RegionMode::empty()),
            "seg_count",
        ),
        (geometry(pg, 4, 48, RegionMode::empty()), "align"),
        // Segment 1 would sit at base + pg, not aligned to 4 pages.
        (geometry(pg, 4, 4 * pg, RegionMode::empty()), "align"),
        (geometry(pg, 4, 64, RegionMode::PSEUDO), "mode"),
    ];
    for (g, want) in cases {
        match Mmap::open(&g, &MmapConfig::default()) {
            Err(Error::InvalidParam { param, .. }) => assert_eq!(param, want, "{g:?}"),
            other => panic!("{g:?}: expected InvalidParam({want}), got {other:?}"),
        }
    }

    let g = geometry(pg, 4, 64, RegionMode::empty());
    let err = Mmap::open(&g, &MmapConfig::default().with_name("a\0b")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParam {
                param: "name",
                value: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let long = "x".repeat(250);
    let err = Mmap::open(&g, &MmapConfig::default().with_name(long)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParam {
                param: "name",
                value: 250,
                ..
            }
        ),
        "{err:?}"
    );

    // A single segment may be larger-aligned than its size.
    let one = Mmap::open(
        &geometry(pg, 1, 16 * pg, RegionMode::empty()),
        &MmapConfig::default(),
    )
    .unwrap();
    assert_eq!(addr(one.span().unwrap()) % (16 * pg), 0);
}

#[test]
fn out_of_range_index_is_refused() {
    let pg = page();
    let (src, _) = open(geometry(pg, 3, pg, RegionMode::empty()), "range");
    // SAFETY: index 3 is out of range: the source must refuse it.
    let err = unsafe { src.create(3) }.unwrap_err();
    assert_eq!(
        err,
        Error::OutOfRange {
            field: "index",
            value: 3,
            limit: 3
        }
    );
    assert_eq!(src.shared_backing(3), None);
    assert!(!src.is_wired(3));
}

// ------------------------------------------------------------------ span --

#[test]
fn span_is_contiguous_aligned_and_trimmed() {
    let pg = page();
    let align = 1 << 20; // larger than a page: over-reserve and trim
    let (src, name) = open(geometry(4 * align, 3, align, RegionMode::empty()), "span");
    let base = src.span().unwrap();
    assert_eq!(addr(base) % align, 0, "span base {base:p} not aligned");
    assert_eq!(src.span_len(), 12 * align);
    assert_eq!(src.page_size(), pg);
    assert_eq!(
        src.capabilities(),
        Capabilities::CONTIGUOUS
            | Capabilities::PURGE
            | Capabilities::PROTECT
            | Capabilities::WIRE
            | Capabilities::SHARE
    );
    // The whole span is one no-access shared memfd mapping; the alignment
    // slack was given back (nothing else of ours sits right around it).
    assert_perms(addr(base), src.span_len(), &name, "---s");
    let ours: Vec<MapsLine> = maps()
        .into_iter()
        .filter(|l| l.path == format!("/memfd:{name}"))
        .collect();
    assert_eq!(
        ours.iter().map(|l| l.end - l.start).sum::<usize>(),
        src.span_len()
    );

    let mut bases = Vec::new();
    for i in 0..3 {
        // SAFETY: index in range and not live.
        let p = unsafe { src.create(i) }.unwrap();
        assert_eq!(addr(p), addr(base) + i as usize * 4 * align);
        assert_eq!(addr(p) % align, 0);
        bases.push(p);
    }
    for (i, p) in bases.into_iter().enumerate() {
        // SAFETY: created above, discarded once.
        unsafe { src.discard(i as u32, p) };
    }
    assert_eq!(src.discard_failures(), 0);
}

#[test]
fn segments_do_not_overlap() {
    let pg = page();
    let seg = 4 * pg;
    let (src, _) = open(geometry(seg, 8, pg, RegionMode::empty()), "overlap");
    let bases: Vec<NonNull<u8>> = (0..8)
        // SAFETY: each index in range, created once.
        .map(|i| unsafe { src.create(i) }.unwrap())
        .collect();
    for (i, &p) in bases.iter().enumerate() {
        assert_eq!(addr(p), addr(src.span().unwrap()) + i * seg);
        assert_eq!(mismatch(p, seg, None), None, "segment {i} not zeroed");
        fill(p, seg, i as u8 * 31);
    }
    for (i, &p) in bases.iter().enumerate() {
        assert_eq!(
            mismatch(p, seg, Some(i as u8 * 31)),
            None,
            "segment {i} overwritten"
        );
    }
    for (i, p) in bases.into_iter().enumerate() {
        // SAFETY: created above, discarded once.
        unsafe { src.discard(i as u32, p) };
    }
}

// ----------------------------------------------------------- protections --

#[test]
fn guard_span_is_never_accessible() {
    let pg = page();
    let (src, name) = open(geometry(pg, 4, pg, RegionMode::GUARD), "guard");
    // SAFETY: index in range and not live.
    let err = unsafe { src.create(1) }.unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { source_name: "mmap", operation } if operation.contains("guard")),
        "{err:?}"
    );
    let base = src.span().unwrap();
    // SAFETY: a guard span has no live segment; protect must refuse anyway.
    let err = unsafe { src.protect(1, base, Protection::ReadWrite) }.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    let perms = perms_of(addr(base), src.span_len(), &name);
    assert!(
        perms == ["---s"] || perms == ["---p"],
        "guard perms {perms:?}"
    );
}

#[test]
fn protections_follow_mode_and_lifecycle_in_proc_maps() {
    let pg = page();
    let seg = 2 * pg;

    // Owner read-only.
    let (src, name) = open(geometry(seg, 3, pg, RegionMode::KREADONLY), "krdonly");
    let base = addr(src.span().unwrap());
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(1) }.unwrap();
    assert_perms(addr(p), seg, &name, "r--s");
    assert_perms(base, seg, &name, "---s");
    assert_perms(base + 2 * seg, seg, &name, "---s");
    assert_eq!(mismatch(p, seg, None), None);
    // SAFETY: created above, discarded once.
    unsafe { src.discard(1, p) };
    assert_perms(base, src.span_len(), &name, "---s");

    // User read-only does not restrict the owner's view.
    let (src, name) = open(geometry(seg, 3, pg, RegionMode::UREADONLY), "urdonly");
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(0) }.unwrap();
    assert_perms(addr(p), seg, &name, "rw-s");
    // SAFETY: created above, discarded once.
    unsafe { src.discard(0, p) };

    // Plain region: create → rw, protect → each right, discard → none.
    let (src, name) = open(geometry(seg, 3, pg, RegionMode::empty()), "plain");
    let base = addr(src.span().unwrap());
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(2) }.unwrap();
    assert_perms(addr(p), seg, &name, "rw-s");
    assert_perms(base, 2 * seg, &name, "---s");
    for (prot, perms) in [
        (Protection::ReadOnly, "r--s"),
        (Protection::None, "---s"),
        (Protection::ReadWrite, "rw-s"),
    ] {
        // SAFETY: segment 2 is live at `p`; nothing relies on its rights.
        unsafe { src.protect(2, p, prot) }.unwrap();
        assert_perms(addr(p), seg, &name, perms);
    }
    fill(p, seg, 7);
    // SAFETY: created above, discarded once.
    unsafe { src.discard(2, p) };
    assert_perms(base, src.span_len(), &name, "---s");
}

// ------------------------------------------------------ pages and contents --

#[test]
fn discard_frees_pages_and_recreate_reads_zero() {
    let pg = page();
    let seg = 16 * pg;
    let (src, _) = open(geometry(seg, 2, pg, RegionMode::empty()), "discard");
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(1) }.unwrap();
    assert_eq!(resident_pages(p, seg), 0, "fresh segment already has pages");
    fill(p, seg, 0xA5);
    assert_eq!(resident_pages(p, seg), 16);
    // SAFETY: created above, discarded once.
    unsafe { src.discard(1, p) };
    assert_eq!(
        resident_pages(p, seg),
        0,
        "discarded segment still holds pages"
    );

    // SAFETY: index 1 was discarded, so it is not live.
    let q = unsafe { src.create(1) }.unwrap();
    assert_eq!(q, p);
    assert_eq!(resident_pages(q, seg), 0);
    assert_eq!(mismatch(q, seg, None), None, "re-created segment not zero");
    // SAFETY: created above, discarded once.
    unsafe { src.discard(1, q) };
    assert_eq!(src.discard_failures(), 0);
}

/// The reason discard punches a hole: on shared memory, `MADV_DONTNEED`
/// alone leaves the pages (and the data) in the file.
#[test]
fn dontneed_alone_keeps_shmem_pages() {
    let pg = page();
    let seg = 4 * pg;
    let (src, _) = open(geometry(seg, 1, pg, RegionMode::empty()), "dontneed");
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(0) }.unwrap();
    fill(p, seg, 3);
    // SAFETY: `p..p + seg` is our live segment; DONTNEED only drops PTEs.
    let rc = unsafe { libc::madvise(p.as_ptr().cast::<c_void>(), seg, libc::MADV_DONTNEED) };
    assert_eq!(rc, 0);
    assert_eq!(
        resident_pages(p, seg),
        4,
        "DONTNEED freed shmem pages after all"
    );
    assert_eq!(mismatch(p, seg, Some(3)), None, "DONTNEED lost shmem data");
    // SAFETY: segment 0 is live at `p` and holds nothing anyone needs.
    unsafe { src.purge(0, p) }.unwrap();
    assert_eq!(resident_pages(p, seg), 0);
    // SAFETY: created above, discarded once.
    unsafe { src.discard(0, p) };
}

#[test]
fn purge_frees_pages_and_contents_read_zero() {
    let pg = page();
    let seg = 8 * pg;
    let (src, name) = open(geometry(seg, 2, pg, RegionMode::empty()), "purge");
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(0) }.unwrap();
    fill(p, seg, 0x5A);
    assert_eq!(resident_pages(p, seg), 8);
    // SAFETY: segment 0 is live at `p` and holds nothing anyone needs.
    unsafe { src.purge(0, p) }.unwrap();
    assert_eq!(resident_pages(p, seg), 0, "purge left pages behind");
    assert_perms(addr(p), seg, &name, "rw-s");
    assert_eq!(mismatch(p, seg, None), None, "purged segment not zero");
    // Still live and writable.
    fill(p, seg, 9);
    assert_eq!(mismatch(p, seg, Some(9)), None);
    // SAFETY: created above, discarded once.
    unsafe { src.discard(0, p) };
}

// ---------------------------------------------------------------- sharing --

#[test]
fn shared_backing_maps_the_same_bytes() {
    let pg = page();
    let seg = 4 * pg;
    let (src, _) = open(geometry(seg, 4, pg, RegionMode::empty()), "share");
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(2) }.unwrap();
    fill(p, seg, 0x11);

    let backing = src.shared_backing(2).unwrap();
    assert_eq!(backing.offset, 2 * seg as u64);
    assert_eq!(backing.len, seg);
    assert_eq!(backing.fd, std::os::fd::AsRawFd::as_raw_fd(&src.as_fd()));
    // SAFETY: a fresh shared mapping of the memfd range the source named;
    // the kernel picks the address.
    let view = unsafe {
        rustix::mm::mmap(
            ptr::null_mut(),
            backing.len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            src.as_fd(),
            backing.offset,
        )
    }
    .unwrap();
    let view = NonNull::new(view.cast::<u8>()).unwrap();
    assert_ne!(view, p);
    assert_eq!(mismatch(view, seg, Some(0x11)), None, "second view differs");
    fill(view, seg, 0x77);
    assert_eq!(
        mismatch(p, seg, Some(0x77)),
        None,
        "first view misses writes"
    );

    // Purging through the source zeroes the second view too.
    // SAFETY: segment 2 is live at `p` and holds nothing anyone needs.
    unsafe { src.purge(2, p) }.unwrap();
    assert_eq!(mismatch(view, seg, None), None);

    // The whole span as one backing, segment 2 at its offset.
    let span = src.span_backing();
    assert_eq!((span.fd, span.offset, span.len), (backing.fd, 0, 4 * seg));
    fill(p, seg, 0x42);
    // SAFETY: a fresh read-only shared mapping of the whole memfd.
    let whole = unsafe {
        rustix::mm::mmap(
            ptr::null_mut(),
            span.len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::SHARED,
            src.as_fd(),
            0,
        )
    }
    .unwrap();
    let whole = NonNull::new(whole.cast::<u8>()).unwrap();
    // SAFETY: offset 2 * seg is inside the `span.len`-byte mapping.
    let seg2 = unsafe { whole.add(2 * seg) };
    assert_eq!(mismatch(seg2, seg, Some(0x42)), None);

    // SAFETY: both views were mapped above and are not used afterwards.
    unsafe {
        rustix::mm::munmap(view.as_ptr().cast::<c_void>(), seg).unwrap();
        rustix::mm::munmap(whole.as_ptr().cast::<c_void>(), span.len).unwrap();
    }
    // SAFETY: created above, discarded once.
    unsafe { src.discard(2, p) };
}

// --------------------------------------------------------------- wiring --

#[test]
fn persistent_segments_are_populated_and_locked() {
    let pg = page();
    let seg = 8 * pg;
    for mode in [
        RegionMode::PERSISTENT,
        RegionMode::PERSISTENT | RegionMode::KREADONLY,
    ] {
        let (src, name) = open(geometry(seg, 2, pg, mode), "persist");
        // SAFETY: index in range and not live.
        let p = match unsafe { src.create(1) } {
            Ok(p) => p,
            Err(Error::Os {
                operation: "mlock",
                errno,
            }) if errno == libc::EPERM || errno == libc::ENOMEM => {
                println!("mlock not permitted here (errno {errno}); named error checked");
                assert_perms(addr(src.span().unwrap()), src.span_len(), &name, "---s");
                continue;
            }
            Err(e) => panic!("persistent create failed: {e}"),
        };
        assert_eq!(resident_pages(p, seg), 8, "{mode:?}: not populated");
        assert_eq!(
            locked_kb(addr(p), seg),
            (seg / 1024) as u64,
            "{mode:?}: not locked"
        );
        assert!(src.is_wired(1));
        assert_eq!(mismatch(p, seg, None), None);
        // SAFETY: created above, discarded once.
        unsafe { src.discard(1, p) };
        assert!(!src.is_wired(1));
        assert_eq!(locked_kb(addr(p), seg), 0);
        assert_eq!(resident_pages(p, seg), 0);
        assert_perms(addr(p), seg, &name, "---s");
        assert_eq!(src.discard_failures(), 0);
    }
}

#[test]
fn persistent_without_wiring_is_only_populated() {
    let pg = page();
    let seg = 4 * pg;
    let config = MmapConfig::default()
        .with_name(unique_name("nowire"))
        .with_wire_persistent(false);
    let src = Mmap::open(&geometry(seg, 1, pg, RegionMode::PERSISTENT), &config).unwrap();
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(0) }.unwrap();
    assert_eq!(resident_pages(p, seg), 4);
    assert_eq!(locked_kb(addr(p), seg), 0);
    assert!(!src.is_wired(0));
    // SAFETY: created above, discarded once.
    unsafe { src.discard(0, p) };
    assert_eq!(resident_pages(p, seg), 0);
}

#[test]
fn wire_unwire_and_purge_of_a_wired_segment() {
    let pg = page();
    let seg = 4 * pg;
    let (src, _) = open(geometry(seg, 2, pg, RegionMode::empty()), "wire");
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(0) }.unwrap();
    fill(p, seg, 1);
    // SAFETY: segment 0 is live at `p`.
    match unsafe { src.wire(0, p) } {
        Ok(()) => {}
        Err(Error::Os {
            operation: "mlock",
            errno,
        }) => {
            println!("mlock not permitted here (errno {errno}); named error checked");
            // SAFETY: created above, discarded once.
            unsafe { src.discard(0, p) };
            return;
        }
        Err(e) => panic!("wire failed: {e}"),
    }
    assert!(src.is_wired(0));
    assert_eq!(locked_kb(addr(p), seg), (seg / 1024) as u64);
    // Purging a wired segment still frees and zeroes it.
    // SAFETY: segment 0 is live and holds nothing anyone needs.
    unsafe { src.purge(0, p) }.unwrap();
    assert_eq!(resident_pages(p, seg), 0);
    assert_eq!(mismatch(p, seg, None), None);
    // SAFETY: segment 0 is live at `p`.
    unsafe { src.unwire(0, p) }.unwrap();
    assert!(!src.is_wired(0));
    assert_eq!(locked_kb(addr(p), seg), 0);
    // SAFETY: created above, discarded once.
    unsafe { src.discard(0, p) };
    assert_eq!(src.discard_failures(), 0);
}

/// Runs in a child process that dropped `CAP_IPC_LOCK` and set
/// `RLIMIT_MEMLOCK` to 0, so `mlock` must be refused: persistent create
/// then fails with the named error and leaves the segment discarded.
#[test]
fn mlock_refusal_is_a_named_error() {
    const CHILD: &str = "SKMEM_MMAP_MLOCK_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "mlock_refusal_is_a_named_error", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "child ran nothing:\n{text}");
        return;
    }

    drop_ipc_lock();
    let pg = page();
    let seg = 4 * pg;
    let (src, name) = open(geometry(seg, 2, pg, RegionMode::PERSISTENT), "nolock");
    // SAFETY: index in range and not live.
    let err = unsafe { src.create(0) }.unwrap_err();
    match err {
        Error::Os {
            operation: "mlock",
            errno,
        } => {
            assert!(
                errno == libc::EPERM || errno == libc::ENOMEM,
                "errno {errno}"
            );
        }
        other => panic!("expected the mlock error, got {other:?}"),
    }
    assert!(err.to_string().starts_with("mlock failed"), "{err}");
    let base = src.span().unwrap();
    assert_perms(addr(base), src.span_len(), &name, "---s");
    assert_eq!(resident_pages(base, src.span_len()), 0);
    assert!(!src.is_wired(0));
}

fn drop_ipc_lock() {
    let limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system call with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) }, 0);

    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_IPC_LOCK: u32 = 14;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a v3 header and two data slots, as the ABI wants.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_IPC_LOCK);
    data[0].permitted &= !(1 << CAP_IPC_LOCK);
    // SAFETY: capset of this thread with the same layout; dropping a
    // capability is always allowed.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

// --------------------------------------------------------- huge pages --

#[test]
fn hugepages_work_or_fail_clearly() {
    let config = MmapConfig::default()
        .with_name(unique_name("huge"))
        .with_hugepages(true);
    let huge = 2 << 20;
    match Mmap::open(&geometry(huge, 1, huge, RegionMode::empty()), &config) {
        Ok(src) => {
            let huge = src.page_size();
            assert!(huge > page());
            assert_eq!(addr(src.span().unwrap()) % huge, 0);
            // SAFETY: index in range and not live.
            let p = unsafe { src.create(0) }.unwrap();
            fill(p, src.geometry().seg_size, 4);
            assert_eq!(mismatch(p, src.geometry().seg_size, Some(4)), None);
            // SAFETY: created above, discarded once.
            unsafe { src.discard(0, p) };
        }
        Err(Error::Os { operation, errno }) => {
            println!("huge pages unavailable: {operation} (errno {errno})");
            assert!(operation.contains("HUGETLB"), "unclear error: {operation}");
        }
        Err(e) => panic!("unexpected error {e:?}"),
    }
    // A segment smaller than a huge page is refused by name.
    let err = Mmap::open(&geometry(page(), 1, page(), RegionMode::empty()), &config);
    assert!(
        matches!(
            err,
            Err(Error::InvalidParam {
                param: "seg_size",
                ..
            }) | Err(Error::Os { .. })
        ),
        "{err:?}"
    );
}

// ------------------------------------------------------ threads and drop --

#[test]
fn distinct_segments_from_several_threads() {
    let pg = page();
    let seg = 2 * pg;
    let threads = 4u32;
    let per_thread = 4u32;
    let (src, name) = open(
        geometry(seg, threads * per_thread, pg, RegionMode::empty()),
        "threads",
    );
    std::thread::scope(|s| {
        for t in 0..threads {
            let src = &src;
            s.spawn(move || {
                for round in 0..50u32 {
                    let indices = (t * per_thread)..((t + 1) * per_thread);
                    let bases: Vec<NonNull<u8>> = indices
                        .clone()
                        // SAFETY: this thread owns these indices; each is
                        // discarded before it is created again.
                        .map(|i| unsafe { src.create(i) }.unwrap())
                        .collect();
                    for (i, &p) in indices.clone().zip(&bases) {
                        assert_eq!(addr(p), addr(src.span().unwrap()) + i as usize * seg);
                        assert_eq!(mismatch(p, seg, None), None, "segment {i} round {round}");
                        fill(p, seg, (i + round) as u8);
                    }
                    for (i, &p) in indices.clone().zip(&bases) {
                        assert_eq!(mismatch(p, seg, Some((i + round) as u8)), None);
                        // SAFETY: created above, discarded once.
                        unsafe { src.discard(i, p) };
                    }
                }
            });
        }
    });
    assert_eq!(src.discard_failures(), 0);
    let base = src.span().unwrap();
    assert_perms(addr(base), src.span_len(), &name, "---s");
    assert_eq!(resident_pages(base, src.span_len()), 0);
}

#[test]
fn drop_unmaps_the_span_and_closes_the_memfd() {
    let pg = page();
    let (src, name) = open(geometry(pg, 4, pg, RegionMode::empty()), "drop");
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(0) }.unwrap();
    fill(p, pg, 1);
    assert!(memfd_in_maps(&name));
    assert_eq!(memfd_open_fds(&name), 1);
    drop(src);
    assert!(!memfd_in_maps(&name), "span still mapped after drop");
    assert_eq!(memfd_open_fds(&name), 0, "memfd still open after drop");
}

// -------------------------------------------------------------- sealing --

/// Re-opens `src`'s memfd the way a peer holding a read-only descriptor
/// can: through `/proc/self/fd/N`, read-write.
fn reopen_read_write(src: &Mmap) -> std::os::fd::OwnedFd {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", src.as_fd().as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .expect("re-open the memfd read-write")
}

/// Bytes of memory the memfd holds (its allocated blocks).
fn file_bytes(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).unwrap().st_blocks as u64 * 512
}

#[test]
fn read_only_seal_stops_peer_writes_but_not_the_owner() {
    let pg = page();
    let seg = 4 * pg;
    let (src, _) = open(geometry(seg, 2, pg, RegionMode::empty()), "seal-ro");
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(0) }.unwrap();
    fill(p, seg, 7);
    src.seal_for_peers(true).unwrap();
    assert!(src.is_write_sealed());

    // A peer re-opening the descriptor read-write gets no way to write.
    let rw = reopen_read_write(&src);
    // SAFETY: a fresh mapping chosen by the kernel; never touched.
    let mapped = unsafe {
        rustix::mm::mmap(
            ptr::null_mut(),
            seg,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &rw,
            0,
        )
    };
    assert_eq!(
        mapped.err(),
        Some(rustix::io::Errno::PERM),
        "peer mapped it writable"
    );
    assert_eq!(
        rustix::io::write(&rw, b"x").err(),
        Some(rustix::io::Errno::PERM),
        "peer wrote the file"
    );
    // Nor can it loosen or add seals.
    assert_eq!(
        rustix::fs::fcntl_add_seals(&rw, rustix::fs::SealFlags::WRITE).err(),
        Some(rustix::io::Errno::PERM)
    );

    // The owner still creates, writes and discards segments; a discarded
    // segment is zeroed (the kernel refuses the hole punch) and re-created
    // as zero.
    // SAFETY: index 1 is in range and not live.
    let q = unsafe { src.create(1) }.unwrap();
    fill(q, seg, 9);
    assert_eq!(mismatch(q, seg, Some(9)), None);
    // SAFETY: created above, discarded once.
    unsafe { src.discard(1, q) };
    // SAFETY: discarded, so not live.
    let q = unsafe { src.create(1) }.unwrap();
    assert_eq!(mismatch(q, seg, None), None, "re-created segment not zero");
    assert_eq!(mismatch(p, seg, Some(7)), None, "segment 0 changed");
    // SAFETY: live segment; purge is refused by name, changing nothing.
    let err = unsafe { src.purge(0, p) }.unwrap_err();
    assert!(err.to_string().contains("F_SEAL_FUTURE_WRITE"), "{err}");
    assert_eq!(
        mismatch(p, seg, Some(7)),
        None,
        "refused purge changed data"
    );
    // SAFETY: both live, discarded once each.
    unsafe {
        src.discard(0, p);
        src.discard(1, q);
    }
    assert_eq!(src.discard_failures(), 0);
    // Sealing again (a second arena sharing the region) is fine.
    src.seal_for_peers(true).unwrap();
    src.seal_for_peers(false).unwrap();
}

#[test]
fn sealed_memfd_refuses_peer_seals_and_discard_still_frees_memory() {
    let pg = page();
    let seg = 4 * pg;
    let (src, _) = open(geometry(seg, 1, pg, RegionMode::empty()), "seal-rw");
    src.seal_for_peers(false).unwrap();
    assert!(!src.is_write_sealed());
    let rw = reopen_read_write(&src);
    // A peer's F_SEAL_FUTURE_WRITE would stop the owner's hole punches.
    assert_eq!(
        rustix::fs::fcntl_add_seals(&rw, rustix::fs::SealFlags::FUTURE_WRITE).err(),
        Some(rustix::io::Errno::PERM),
        "a peer added a seal"
    );
    // SAFETY: index in range and not live.
    let p = unsafe { src.create(0) }.unwrap();
    fill(p, seg, 3);
    assert_eq!(file_bytes(&rw), seg as u64);
    // SAFETY: created above, discarded once.
    unsafe { src.discard(0, p) };
    assert_eq!(src.discard_failures(), 0);
    assert_eq!(file_bytes(&rw), 0, "discard did not return the memory");
    // A writable peer still cannot shrink the file under the owner.
    assert_eq!(
        rustix::fs::ftruncate(&rw, 0).err(),
        Some(rustix::io::Errno::PERM)
    );
}

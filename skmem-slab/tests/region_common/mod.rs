//! Helpers shared by the `region_*` integration tests.
#![allow(dead_code)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use skmem_backends::{Heap, HeapConfig};
use skmem_slab::{Reap, Region, RegionParams, Segment};
use skmem_traits::{Mirror, SegmentSource};

/// Size of the segments of [`params`] regions.
pub(crate) const SEG: usize = 4096;

/// Parameters giving exactly `n` segments of [`SEG`] bytes (one 4 KiB
/// object each).
pub(crate) fn params(name: &str, n: usize) -> RegionParams {
    RegionParams::new(name, SEG, n).seg_size(SEG)
}

/// A heap-backed region of `n` segments of [`SEG`] bytes.
pub(crate) fn heap_region(name: &str, n: usize) -> Arc<Region<Heap>> {
    let r = Region::<Heap>::new(params(name, n), HeapConfig::default()).unwrap();
    assert_eq!(r.layout().seg_count as usize, n);
    assert_eq!(r.layout().seg_size, SEG);
    r
}

/// Writes `byte` over the whole segment through raw pointers.
pub(crate) fn fill(base: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: callers pass a live segment of `len` bytes that only this
    // thread uses.
    unsafe { base.as_ptr().write_bytes(byte, len) }
}

/// Checks that every byte of the segment is `byte` (read through raw
/// pointers, one byte at a time: another view may be writing).
pub(crate) fn assert_filled(base: NonNull<u8>, len: usize, byte: u8) {
    for i in 0..len {
        // SAFETY: callers pass a live segment of `len` bytes.
        let b = unsafe { base.as_ptr().add(i).read_volatile() };
        assert_eq!(b, byte, "byte {i} of segment at {base:p}");
    }
}

/// Checks the region's counters against each other and against `in_use`.
pub(crate) fn assert_stats_consistent<S: SegmentSource, M: Mirror>(
    r: &Region<S, M>,
    in_use: usize,
) {
    let s = r.stats();
    let seg = r.layout().seg_size as u64;
    assert_eq!(s.seginuse, in_use as u64, "seginuse");
    assert_eq!(s.alloc - s.free, s.seginuse, "alloc - free");
    assert_eq!(s.create - s.destroy, s.seginuse, "create - destroy");
    assert_eq!(s.meminuse, s.seginuse * seg, "meminuse");
    assert_eq!(
        s.memtotal,
        seg * u64::from(r.layout().seg_count),
        "memtotal"
    );
    assert!(s.meminuse <= s.memtotal);
    assert!(s.w_meminuse <= s.meminuse);
    assert_eq!(r.segments_in_use() as u64, s.seginuse);
}

/// A cache stand-in: holds segments of one region and gives them back when
/// asked to reap.
pub(crate) struct StashReaper<S: SegmentSource> {
    pub(crate) region: Arc<Region<S>>,
    pub(crate) stash: Mutex<Vec<Segment>>,
    pub(crate) calls: AtomicUsize,
    pub(crate) purges: AtomicUsize,
}

impl<S: SegmentSource> StashReaper<S> {
    pub(crate) fn new(region: &Arc<Region<S>>) -> Arc<Self> {
        let reaper = Arc::new(StashReaper {
            region: Arc::clone(region),
            stash: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            purges: AtomicUsize::new(0),
        });
        let weak: Weak<dyn Reap> = Arc::downgrade(&reaper) as Weak<dyn Reap>;
        region.add_reaper(weak);
        reaper
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl<S: SegmentSource> Reap for StashReaper<S> {
    fn reap_now(&self, purge: bool) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if purge {
            self.purges.fetch_add(1, Ordering::SeqCst);
        }
        let segs: Vec<_> = self.stash.lock().unwrap().drain(..).collect();
        for seg in segs {
            // SAFETY: stashed segments came from `region` and nobody uses
            // them.
            unsafe { self.region.free_segment(seg) };
        }
    }
}

/// The system page size.
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Resident pages of `[base, base + len)` according to `mincore`.
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) fn resident_pages(base: NonNull<u8>, len: usize) -> usize {
    let page = page_size();
    assert_eq!(base.as_ptr() as usize % page, 0);
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: the range lies inside a mapping the source keeps (any
    // protection); `vec` has one byte per page.
    let rc = unsafe { libc::mincore(base.as_ptr().cast(), len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

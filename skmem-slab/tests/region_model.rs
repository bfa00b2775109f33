//! Model test: random segment alloc / alloc-at / free / lookup sequences on
//! both backends, checked against a plain list of live segments. The heap
//! variant runs under Miri (with few cases).

mod region_common;

use std::ptr::NonNull;

use proptest::prelude::*;
use region_common::fill;
use skmem_backends::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, Segment};
use skmem_traits::{AllocFlags, Error, SegmentSource};

#[derive(Debug, Clone)]
enum Op {
    Alloc,
    AllocAt(u32),
    Free(usize),
    /// Look up an address: pick a live or recently freed segment and an
    /// offset (which may run past its end).
    Lookup(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Alloc),
        1 => any::<u32>().prop_map(Op::AllocAt),
        3 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Lookup(a, b)),
    ]
}

/// `n` segments of `k` pages each.
fn params(n: usize, k: usize) -> RegionParams {
    RegionParams::new("model", k * 4096, n).seg_size(k * 4096)
}

fn tag(index: u32) -> u8 {
    index as u8 ^ 0xA5
}

/// Checks the segment still holds its tag (a sample of bytes under Miri).
fn verify(seg: &Segment, len: usize) -> Result<(), TestCaseError> {
    let step = if cfg!(miri) { 509 } else { 1 };
    for i in (0..len).step_by(step).chain([len - 1]) {
        // SAFETY: `seg` is live and `len` bytes long.
        let b = unsafe { seg.base.as_ptr().add(i).read_volatile() };
        prop_assert_eq!(
            b,
            tag(seg.index),
            "byte {} of segment {}: overwritten",
            i,
            seg.index
        );
    }
    Ok(())
}

fn contains(seg: &Segment, len: usize, addr: usize) -> bool {
    let base = seg.base.as_ptr() as usize;
    addr >= base && addr - base < len
}

fn run_model<S: SegmentSource>(r: &Region<S>, ops: &[Op]) -> Result<(), TestCaseError> {
    let layout = *r.layout();
    let (n, len) = (layout.seg_count, layout.seg_size);
    let mut live: Vec<Segment> = Vec::new();
    let mut freed: Vec<NonNull<u8>> = Vec::new();
    let mut fails = 0u64;
    for op in ops {
        match *op {
            Op::Alloc => match r.alloc_segment(AllocFlags::NoSleep) {
                Ok(seg) => {
                    prop_assert!(
                        (live.len() as u32) < n,
                        "more segments than the region holds"
                    );
                    prop_assert!(seg.index < n);
                    prop_assert!(
                        live.iter().all(|s| s.index != seg.index),
                        "index {} handed out twice",
                        seg.index
                    );
                    prop_assert_eq!(seg.base.as_ptr() as usize % layout.align, 0, "misaligned");
                    let (b, e) = (seg.base.as_ptr() as usize, seg.base.as_ptr() as usize + len);
                    for s in &live {
                        let (sb, se) = (s.base.as_ptr() as usize, s.base.as_ptr() as usize + len);
                        prop_assert!(
                            e <= sb || se <= b,
                            "segments {} and {} overlap",
                            seg.index,
                            s.index
                        );
                    }
                    if let Some(span) = r.span() {
                        prop_assert_eq!(b, span.as_ptr() as usize + seg.index as usize * len);
                    }
                    fill(seg.base, len, tag(seg.index));
                    live.push(seg);
                }
                Err(Error::Exhausted { .. }) => {
                    prop_assert_eq!(live.len() as u32, n, "exhausted with free segments");
                    fails += 1;
                }
                Err(e) => return Err(TestCaseError::fail(format!("alloc: {e:?}"))),
            },
            Op::AllocAt(i) => {
                let i = i % (n + 1); // sometimes out of range
                match r.alloc_segment_at(i, AllocFlags::NoSleep) {
                    Ok(seg) => {
                        prop_assert_eq!(seg.index, i);
                        prop_assert!(live.iter().all(|s| s.index != i));
                        fill(seg.base, len, tag(seg.index));
                        live.push(seg);
                    }
                    Err(Error::Busy { .. }) => {
                        prop_assert!(live.iter().any(|s| s.index == i), "busy but not live");
                        fails += 1;
                    }
                    Err(Error::OutOfRange { .. }) => prop_assert_eq!(i, n),
                    Err(e) => return Err(TestCaseError::fail(format!("alloc_at: {e:?}"))),
                }
            }
            Op::Free(k) => {
                if !live.is_empty() {
                    let seg = live.swap_remove(k % live.len());
                    verify(&seg, len)?;
                    // SAFETY: allocated from `r` in this run, not used again.
                    unsafe { r.free_segment(seg) };
                    freed.push(seg.base);
                    if freed.len() > 8 {
                        freed.remove(0);
                    }
                }
            }
            Op::Lookup(k, off) => {
                let candidates: Vec<NonNull<u8>> = live
                    .iter()
                    .map(|s| s.base)
                    .chain(freed.iter().copied())
                    .collect();
                if candidates.is_empty() {
                    continue;
                }
                let base = candidates[k % candidates.len()];
                // First byte, last byte, one past the end, or anywhere up
                // to 64 bytes past the end.
                let off = match off % 4 {
                    0 => 0,
                    1 => len - 1,
                    2 => len,
                    _ => (off / 4) % (len + 64),
                };
                let addr = base.as_ptr().wrapping_add(off);
                let want = live
                    .iter()
                    .find(|s| contains(s, len, addr as usize))
                    .copied();
                prop_assert_eq!(r.segment_of(addr), want, "segment_of(base + {})", off);
            }
        }
        let s = r.stats();
        prop_assert_eq!(s.seginuse, live.len() as u64);
        prop_assert_eq!(s.alloc - s.free, s.seginuse);
        prop_assert_eq!(s.create - s.destroy, s.seginuse);
        prop_assert_eq!(s.meminuse, s.seginuse * len as u64);
        prop_assert_eq!(s.alloc_fail, fails);
    }
    for seg in live.drain(..) {
        verify(&seg, len)?;
        // SAFETY: as above.
        unsafe { r.free_segment(seg) };
    }
    let s = r.stats();
    prop_assert_eq!((s.seginuse, s.meminuse), (0, 0));
    prop_assert_eq!((s.alloc, s.create), (s.free, s.destroy));
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 128 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..if cfg!(miri) { 24 } else { 120 })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn heap_region_matches_model(n in 1usize..7, k in 1usize..4, ops in ops()) {
        let r = Region::<Heap>::new(params(n, k), HeapConfig::default()).unwrap();
        prop_assert_eq!((r.layout().seg_count as usize, r.layout().seg_size), (n, k * 4096));
        run_model(&r, &ops)?;
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
mod mmap {
    use super::*;
    use region_common::resident_pages;
    use skmem_backends::{Mmap, MmapConfig};

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn mmap_region_matches_model(n in 1usize..7, k in 1usize..4, ops in ops()) {
            let r = Region::<Mmap>::new(params(n, k), MmapConfig::default().with_name("model")).unwrap();
            run_model(&r, &ops)?;
            // All memory back: no page of the span is resident.
            let span = r.span().unwrap();
            prop_assert_eq!(resident_pages(span, r.layout().span_len()), 0);
        }
    }
}

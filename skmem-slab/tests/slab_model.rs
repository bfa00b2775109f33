//! Model test: random sequences of slab operations on both backends, checked
//! against a simple model (the set of live objects) after every step.

mod slab_common;

use std::collections::{BTreeMap, HashSet};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use skmem_backends::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
use skmem_traits::{AllocFlags, Error, RegionMode, SegmentSource};

use slab_common::*;

#[derive(Debug, Clone)]
enum Op {
    Alloc,
    AllocCtorFail,
    AllocBatch(usize),
    Free(usize),
    FreeBatch(usize, usize),
    AllocChain(usize),
    FreeChain(usize, usize),
    Info(usize),
    Reap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Alloc),
        1 => Just(Op::AllocCtorFail),
        2 => (1..24usize).prop_map(Op::AllocBatch),
        4 => any::<usize>().prop_map(Op::Free),
        2 => (1..24usize, any::<usize>()).prop_map(|(n, s)| Op::FreeBatch(n, s)),
        1 => (1..24usize).prop_map(Op::AllocChain),
        1 => (1..24usize, any::<usize>()).prop_map(|(n, s)| Op::FreeChain(n, s)),
        1 => any::<usize>().prop_map(Op::Info),
        1 => Just(Op::Reap),
    ]
}

#[derive(Debug, Clone)]
struct Shape {
    obj_size: usize,
    obj_count: usize,
    seg_size: usize,
    clear: bool,
    batch: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    let count = if cfg!(miri) { 1..40usize } else { 1..400usize };
    (
        prop_oneof![8..=64usize, 65..=700usize],
        count,
        prop_oneof![Just(4096usize), Just(8192), Just(16384)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(obj_size, obj_count, seg_size, clear, batch)| Shape {
            obj_size,
            obj_count,
            seg_size,
            clear,
            batch,
        })
}

fn params(name: &str, shape: &Shape) -> RegionParams {
    RegionParams::new(name, shape.obj_size, shape.obj_count)
        .seg_size(shape.seg_size)
        .mode(RegionMode::NOMAGAZINES)
}

/// The model: live objects by address, with the tag written into each.
struct Model {
    live: BTreeMap<usize, (NonNull<u8>, u64)>,
    next_tag: u64,
}

fn tag_of(p: NonNull<u8>) -> u64 {
    // SAFETY: live objects are ours and at least 8 bytes.
    unsafe { p.as_ptr().cast::<u64>().read_unaligned() }
}

fn run_model<S: SegmentSource>(
    region: Arc<Region<S>>,
    shape: &Shape,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let cfg = SlabConfig::new("model", shape.obj_size)
        .clear_on_free(shape.clear)
        .batch(shape.batch);
    let cache = SlabCache::new(region.clone(), cfg, CheckingCtor::default())
        .map_err(|e| TestCaseError::fail(format!("cache: {e}")))?;
    let layout = *region.layout();
    let capacity = layout.obj_count;
    let chunk = cache.chunk_size();
    let mut m = Model {
        live: BTreeMap::new(),
        next_tag: 1,
    };

    let admit = |m: &mut Model, p: NonNull<u8>| -> Result<(), TestCaseError> {
        let a = p.as_ptr() as usize;
        prop_assert_eq!(a % cache.obj_align(), 0, "misaligned {:#x}", a);
        prop_assert!(cache.obj_align() >= SlabConfig::new("x", shape.obj_size).align);
        // No overlap with neighbours.
        if let Some((&prev, _)) = m.live.range(..a).next_back() {
            prop_assert!(prev + chunk <= a, "{:#x} overlaps {:#x}", a, prev);
        }
        if let Some((&next, _)) = m.live.range(a..).next() {
            prop_assert!(a + chunk <= next, "{:#x} overlaps {:#x}", a, next);
        }
        let info = cache.object_info(p.as_ptr()).expect("allocated has info");
        prop_assert_eq!(info.addr, p);
        prop_assert_eq!(info.size, chunk);
        prop_assert!((info.index_in_region as usize) < capacity);
        prop_assert_eq!(
            info.index_in_region,
            info.segment_index * layout.objs_per_seg + info.index_in_segment
        );
        let seg = region
            .segment_of(p.as_ptr())
            .expect("object in a live segment");
        prop_assert_eq!(seg.index, info.segment_index);
        prop_assert_eq!(
            a - seg.base.as_ptr() as usize,
            info.index_in_segment as usize * chunk
        );
        // The constructor ran, and (clear-on-free or not) the object holds
        // its pattern, not leftovers.
        // SAFETY: the object is ours, `chunk` bytes.
        let content = unsafe { bytes(p, chunk) };
        prop_assert!(
            content.iter().all(|&b| b == CTOR_PATTERN),
            "not constructed"
        );
        let tag = m.next_tag;
        m.next_tag += 1;
        // SAFETY: the object is ours and at least 8 bytes.
        unsafe { p.as_ptr().cast::<u64>().write_unaligned(tag) };
        prop_assert!(m.live.insert(a, (p, tag)).is_none());
        Ok(())
    };

    let pick = |m: &Model, sel: usize, n: usize| -> Vec<NonNull<u8>> {
        let keys: Vec<usize> = m.live.keys().copied().collect();
        if keys.is_empty() {
            return Vec::new();
        }
        let start = sel % keys.len();
        keys.iter()
            .cycle()
            .skip(start)
            .take(n.min(keys.len()))
            .map(|k| m.live[k].0)
            .collect()
    };

    let release = |m: &mut Model, objs: &[NonNull<u8>]| -> Result<(), TestCaseError> {
        for p in objs {
            let (_, tag) = m.live.remove(&(p.as_ptr() as usize)).expect("live");
            prop_assert_eq!(tag_of(*p), tag, "object {:p} was overwritten", *p);
        }
        Ok(())
    };

    for op in ops {
        match *op {
            Op::Alloc => match cache.alloc_with(AllocFlags::NoSleep) {
                Ok(p) => admit(&mut m, p)?,
                Err(e) => {
                    prop_assert_eq!(m.live.len(), capacity, "failed with room left: {}", e);
                    prop_assert!(matches!(e, Error::Exhausted { .. }), "{}", e);
                }
            },
            Op::AllocCtorFail => {
                cache.ctor().fail_after.store(1, Ordering::Relaxed);
                let fails = cache.stats().sl_alloc_fail;
                let err = cache.alloc_with(AllocFlags::NoSleep).unwrap_err();
                cache.ctor().fail_after.store(0, Ordering::Relaxed);
                if m.live.len() == capacity {
                    prop_assert!(matches!(err, Error::Exhausted { .. }), "{}", err);
                } else {
                    prop_assert!(matches!(err, Error::CtorFailed { .. }), "{}", err);
                }
                prop_assert_eq!(cache.stats().sl_alloc_fail, fails + 1);
            }
            Op::AllocBatch(n) => {
                let mut out = vec![MaybeUninit::uninit(); n];
                let got = cache.alloc_batch(&mut out, AllocFlags::NoSleep);
                prop_assert_eq!(got, n.min(capacity - m.live.len()));
                for slot in &out[..got] {
                    // SAFETY: the first `got` were initialised.
                    admit(&mut m, unsafe { slot.assume_init() })?;
                }
            }
            Op::Free(sel) => {
                if let Some(&p) = pick(&m, sel, 1).first() {
                    release(&mut m, &[p])?;
                    // SAFETY: a live object of the model, freed once.
                    unsafe { cache.free(p) };
                    prop_assert_eq!(cache.object_info(p.as_ptr()), None);
                }
            }
            Op::FreeBatch(n, sel) => {
                let objs = pick(&m, sel, n);
                release(&mut m, &objs)?;
                // SAFETY: distinct live objects of the model, freed once.
                unsafe { cache.free_batch(&objs) };
            }
            Op::AllocChain(n) => {
                if !shape.batch {
                    prop_assert!(cache.alloc_chain(n, AllocFlags::NoSleep).is_err());
                    continue;
                }
                match cache.alloc_chain(n, AllocFlags::NoSleep) {
                    Ok((head, len)) => {
                        prop_assert_eq!(len, n.min(capacity - m.live.len()));
                        let mut objs = Vec::new();
                        let mut cur = Some(head);
                        while let Some(p) = cur {
                            objs.push(p);
                            // SAFETY: chain objects are ours, pointer-sized.
                            cur = NonNull::new(unsafe {
                                p.as_ptr().cast::<*mut u8>().read_unaligned()
                            });
                        }
                        prop_assert_eq!(objs.len(), len);
                        for p in objs {
                            // The link overwrote the first word of the
                            // constructed pattern; restore it for `admit`.
                            // SAFETY: ours, at least 8 bytes.
                            unsafe {
                                p.as_ptr()
                                    .cast::<u64>()
                                    .write_unaligned(u64::from_ne_bytes([CTOR_PATTERN; 8]))
                            };
                            admit(&mut m, p)?;
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(m.live.len(), capacity, "chain failed with room: {}", e);
                    }
                }
            }
            Op::FreeChain(n, sel) => {
                if !shape.batch {
                    continue;
                }
                let objs = pick(&m, sel, n);
                if objs.is_empty() {
                    continue;
                }
                release(&mut m, &objs)?;
                for pair in objs.windows(2) {
                    // SAFETY: ours, pointer-sized.
                    unsafe {
                        pair[0]
                            .as_ptr()
                            .cast::<*mut u8>()
                            .write_unaligned(pair[1].as_ptr())
                    };
                }
                // SAFETY: as above.
                unsafe {
                    objs[objs.len() - 1]
                        .as_ptr()
                        .cast::<*mut u8>()
                        .write_unaligned(std::ptr::null_mut())
                };
                // SAFETY: a chain of distinct live objects, freed once.
                let freed = unsafe { cache.free_chain(objs[0]) };
                prop_assert_eq!(freed, objs.len());
            }
            Op::Info(sel) => {
                if let Some(&p) = pick(&m, sel, 1).first() {
                    let info = cache.object_info(p.as_ptr()).expect("live has info");
                    prop_assert_eq!(info.addr, p);
                    prop_assert_eq!(cache.object_info(p.as_ptr().wrapping_add(1)), None);
                }
            }
            Op::Reap => {
                cache.reap();
                prop_assert_eq!(cache.stats().sl_empty, 0);
            }
        }
        // Invariants after every step.
        cache.check_invariants().map_err(TestCaseError::fail)?;
        let s = cache.stats();
        prop_assert_eq!(s.sl_bufinuse as usize, m.live.len());
        prop_assert_eq!(s.sl_alloc - s.sl_free, s.sl_bufinuse);
        prop_assert_eq!((s.ctor - s.dtor) as usize, m.live.len());
        prop_assert_eq!(cache.ctor().live_count(), m.live.len());
        prop_assert!(s.sl_empty <= 1, "more than one empty slab cached");
        prop_assert_eq!(
            region.segments_in_use() as u64,
            s.sl_partial + s.sl_empty + s.sl_full
        );
        prop_assert_eq!(
            s.sl_create - s.sl_destroy,
            s.sl_partial + s.sl_empty + s.sl_full
        );
        let idx: HashSet<u32> = m
            .live
            .values()
            .map(|&(p, _)| cache.object_info(p.as_ptr()).unwrap().index_in_region)
            .collect();
        prop_assert_eq!(idx.len(), m.live.len());
    }

    // Everything back: memory returns to the region.
    let all: Vec<NonNull<u8>> = m.live.values().map(|&(p, _)| p).collect();
    release(&mut m, &all)?;
    // SAFETY: every live object, freed once.
    unsafe { cache.free_batch(&all) };
    cache.reap();
    let s = cache.stats();
    prop_assert_eq!(s.sl_bufinuse, 0);
    prop_assert_eq!(s.ctor, s.dtor);
    prop_assert_eq!(s.sl_create, s.sl_destroy);
    prop_assert_eq!(region.segments_in_use(), 0);
    cache.check_invariants().map_err(TestCaseError::fail)?;
    Ok(())
}

fn config() -> ProptestConfig {
    if cfg!(miri) {
        ProptestConfig {
            cases: 4,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    } else {
        ProptestConfig {
            cases: 96,
            ..ProptestConfig::default()
        }
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let len = if cfg!(miri) { 1..40usize } else { 1..160usize };
    prop::collection::vec(op(), len)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn model_heap(shape in shape(), ops in ops()) {
        let region = Region::<Heap>::new(params("model-heap", &shape), HeapConfig::default())
            .map_err(|e| TestCaseError::fail(format!("region: {e}")))?;
        run_model(region, &shape, &ops)?;
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
proptest! {
    #![proptest_config(config())]

    #[test]
    fn model_mmap(shape in shape(), ops in ops()) {
        use skmem_backends::{Mmap, MmapConfig};
        let region = Region::<Mmap>::new(
            params("model-mmap", &shape),
            MmapConfig::default().with_name("slab-model"),
        )
        .map_err(|e| TestCaseError::fail(format!("region: {e}")))?;
        prop_assert!(region.span().is_some());
        run_model(region, &shape, &ops)?;
    }
}

//! The alignment matrix: every power of two from 1 to the page natively
//! (through `aligned`, `GlobalAlloc` and `Allocator`), and 2x and 8x the
//! page through the large path, for sizes around each alignment.

use core::alloc::{GlobalAlloc, Layout};

use allocator_api2::alloc::Allocator;
use skmem_alloc::SkmemAlloc;

const PAGE: usize = 4096;

fn check_block(p: *mut u8, size: usize, align: usize, tag: u8) {
    assert!(!p.is_null(), "size {size} align {align}");
    assert_eq!(p as usize % align, 0, "{p:p}: size {size} align {align}");
    // SAFETY: a live block of at least `size` bytes.
    unsafe {
        assert!(skmem_alloc::usable_size(p) >= size);
        core::ptr::write_bytes(p, tag, size);
        assert!((0..size).all(|i| *p.add(i) == tag));
    }
}

#[test]
fn every_alignment_from_1_to_8_pages_for_sizes_around_it() {
    let mut align = 1;
    while align <= 8 * PAGE {
        for size in [1, align / 2 + 1, align, align + 1, 3 * align, 40_000] {
            let p = skmem_alloc::aligned(size, align);
            check_block(p, size, align, 0xA5);
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a non-zero-sized layout.
            let q = unsafe { SkmemAlloc.alloc(layout) };
            check_block(q, size, align, 0x5A);
            let r = SkmemAlloc.allocate(layout).unwrap();
            assert!(r.len() >= size);
            check_block(r.cast::<u8>().as_ptr(), size, align, 0x3C);
            // SAFETY: live blocks of these layouts, freed once.
            unsafe {
                skmem_alloc::free(p);
                SkmemAlloc.dealloc(q, layout);
                SkmemAlloc.deallocate(r.cast(), layout);
            }
        }
        align *= 2;
    }
}

#[test]
fn alignments_up_to_the_page_stay_in_size_classes() {
    for shift in 3..=12 {
        let align = 1usize << shift;
        let p = skmem_alloc::aligned(24, align);
        let c = (0..skmem_alloc::NCLASSES)
            .find(|&c| skmem_alloc::class_align(c).unwrap() >= align)
            .unwrap();
        // SAFETY: live block.
        let usable = unsafe { skmem_alloc::usable_size(p) };
        assert!(usable <= 2 * align.max(32), "align {align}: {usable}");
        assert!(skmem_alloc::class_size(c).unwrap() <= usable);
        // SAFETY: live block, freed once.
        unsafe { skmem_alloc::free(p) };
    }
}

#[test]
fn bad_alignments_and_absurd_sizes_fail_with_null() {
    assert!(skmem_alloc::aligned(16, 3).is_null());
    assert!(skmem_alloc::aligned(16, 0).is_null());
    assert!(skmem_alloc::aligned(usize::MAX - 10, 64).is_null());
    assert!(skmem_alloc::aligned(isize::MAX as usize, 1 << 20).is_null());
    assert!(skmem_alloc::malloc(usize::MAX).is_null());
    assert!(skmem_alloc::calloc(usize::MAX / 2, 3).is_null());
    // malloc(0): unique minimal objects.
    let a = skmem_alloc::malloc(0);
    let b = skmem_alloc::malloc(0);
    assert!(!a.is_null() && !b.is_null() && a != b);
    // SAFETY: live blocks, freed once; null is a no-op.
    unsafe {
        skmem_alloc::free(a);
        skmem_alloc::free(b);
        skmem_alloc::free(core::ptr::null_mut());
        assert_eq!(skmem_alloc::usable_size(core::ptr::null_mut()), 0);
    }
}

#[test]
fn calloc_is_zero_even_for_recycled_blocks() {
    for size in [8, 100, 4000, 30_000, 100_000] {
        let p = skmem_alloc::malloc(size);
        // SAFETY: live block of `size` bytes, then freed once.
        unsafe {
            core::ptr::write_bytes(p, 0xFF, size);
            skmem_alloc::free(p);
        }
        let q = skmem_alloc::calloc(1, size);
        // SAFETY: live zeroed block of `size` bytes.
        unsafe {
            assert!((0..size).all(|i| *q.add(i) == 0), "size {size}");
            skmem_alloc::free(q);
        }
    }
}

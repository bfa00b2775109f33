//! realloc and Allocator grow/shrink: in place when the class allows,
//! moved otherwise, contents preserved either way; C edge cases.

use core::alloc::Layout;

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec as AVec;
use skmem_alloc::SkmemAlloc;

fn fill(p: *mut u8, n: usize, seed: u8) {
    for i in 0..n {
        // SAFETY: a live block of at least n bytes.
        unsafe { *p.add(i) = seed.wrapping_add(i as u8) };
    }
}

fn check(p: *mut u8, n: usize, seed: u8) {
    for i in 0..n {
        // SAFETY: a live block of at least n bytes.
        assert_eq!(unsafe { *p.add(i) }, seed.wrapping_add(i as u8), "byte {i}");
    }
}

#[test]
fn realloc_stays_in_place_within_the_class_and_moves_beyond_preserving_contents() {
    let p = skmem_alloc::malloc(100); // class 104
    fill(p, 100, 1);
    // SAFETY: live blocks, each old pointer abandoned after a successful call.
    unsafe {
        let q = skmem_alloc::realloc(p, 104);
        assert_eq!(q, p, "growth inside the class stays in place");
        check(q, 100, 1);
        let r = skmem_alloc::realloc(q, 60);
        assert_eq!(r, q, "shrinking by less than half stays in place");
        let s = skmem_alloc::realloc(r, 5000);
        assert_ne!(s, r, "growth past the class moves");
        check(s, 60, 1);
        assert!(skmem_alloc::usable_size(s) >= 5000);
        fill(s, 5000, 9);
        // Into the largest classes, then the large path and mremap.
        let t = skmem_alloc::realloc(s, 100_000);
        check(t, 5000, 9);
        fill(t, 100_000, 3);
        let u = skmem_alloc::realloc(t, 3 << 20);
        check(u, 100_000, 3);
        assert!(skmem_alloc::usable_size(u) >= 3 << 20);
        let v = skmem_alloc::realloc(u, 70_000);
        check(v, 70_000, 3);
        // Back into a class.
        let w = skmem_alloc::realloc(v, 200);
        check(w, 200, 3);
        assert_eq!(skmem_alloc::usable_size(w), 208);
        // realloc(NULL, n) allocates; realloc(p, 0) frees and returns a
        // fresh minimal object.
        let x = skmem_alloc::realloc(core::ptr::null_mut(), 10);
        assert!(!x.is_null());
        let y = skmem_alloc::realloc(x, 0);
        assert!(!y.is_null());
        skmem_alloc::free(y);
        // Failure leaves the block intact.
        assert!(skmem_alloc::realloc(w, usize::MAX / 2).is_null());
        check(w, 200, 3);
        skmem_alloc::free(w);
    }
}

#[test]
fn allocator_grow_and_shrink_in_place_where_the_class_allows() {
    let a = SkmemAlloc::new();
    let l40 = Layout::from_size_align(40, 8).unwrap();
    let l48 = Layout::from_size_align(48, 8).unwrap();
    let l4k = Layout::from_size_align(4000, 16).unwrap();
    let b = a.allocate(l40).unwrap();
    assert_eq!(b.len(), 40);
    let p = b.cast::<u8>();
    fill(p.as_ptr(), 40, 7);
    // SAFETY: live blocks of the stated layouts.
    unsafe {
        let g = a.grow(p, l40, l48).unwrap();
        assert_ne!(g.cast::<u8>(), p, "48 is the next class: moved");
        check(g.cast::<u8>().as_ptr(), 40, 7);
        let g2 = a.grow(g.cast(), l48, l4k).unwrap();
        check(g2.cast::<u8>().as_ptr(), 40, 7);
        assert_eq!(g2.cast::<u8>().as_ptr() as usize % 16, 0);
        let l4000z = Layout::from_size_align(4090, 16).unwrap();
        let gz = a.grow_zeroed(g2.cast(), l4k, l4000z).unwrap();
        assert_eq!(
            gz.cast::<u8>(),
            g2.cast::<u8>(),
            "4090 fits the 4096 class: in place"
        );
        let tail = gz.cast::<u8>().as_ptr().add(4000);
        assert!((0..90).all(|i| *tail.add(i) == 0));
        let s = a
            .shrink(
                gz.cast(),
                l4000z,
                Layout::from_size_align(3000, 16).unwrap(),
            )
            .unwrap();
        assert_eq!(
            s.cast::<u8>(),
            gz.cast::<u8>(),
            "shrink by less than half: in place"
        );
        check(s.cast::<u8>().as_ptr(), 40, 7);
        a.deallocate(s.cast(), Layout::from_size_align(3000, 16).unwrap());
    }
    // Collections through the Allocator: Vec growth and hashbrown.
    let mut v: AVec<u64, SkmemAlloc> = AVec::new_in(a);
    for i in 0..100_000u64 {
        v.push(i * 3);
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
    let mut m = hashbrown::HashMap::new_in(a);
    for i in 0..10_000u32 {
        m.insert(i, i.to_string());
    }
    assert_eq!(m.len(), 10_000);
    assert_eq!(m[&4242], "4242");
}

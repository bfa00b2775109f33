//! The C contract of every exported function, called through the very
//! functions the C library exports: errno values, alignment, overflow,
//! `realloc` semantics, usable sizes, zero sizes and glibc's extras.
//!
//! The test binary links the library as an rlib, so its `malloc` symbols
//! replace glibc's for the whole test process, as under `LD_PRELOAD`.

use core::ffi::{c_int, c_void};
use core::ptr;
use std::thread;

use skmem_malloc::{
    aligned_alloc, calloc, free, mallinfo, mallinfo2, malloc, malloc_trim, malloc_usable_size,
    mallopt, memalign, posix_memalign, pvalloc, realloc, reallocarray, skmem_owns, valloc,
};

fn errno() -> c_int {
    // SAFETY: the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: c_int) {
    // SAFETY: the calling thread's errno slot.
    unsafe { *libc::__errno_location() = value };
}

fn page() -> usize {
    // SAFETY: reads a process parameter.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Fills `len` bytes at `p` with a pattern derived from `seed`.
fn fill(p: *mut c_void, len: usize, seed: u8) {
    // SAFETY: callers pass a block of at least `len` bytes.
    unsafe { core::slice::from_raw_parts_mut(p.cast::<u8>(), len) }
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = seed.wrapping_add(i as u8));
}

fn holds(p: *const c_void, len: usize, seed: u8) -> bool {
    // SAFETY: callers pass a block of at least `len` bytes.
    unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) }
        .iter()
        .enumerate()
        .all(|(i, &b)| b == seed.wrapping_add(i as u8))
}

fn expect_null_with(result: *mut c_void, code: c_int, what: &str) {
    assert!(result.is_null(), "{what}: expected NULL, got {result:p}");
    assert_eq!(errno(), code, "{what}: errno");
}

#[test]
fn malloc_zero_returns_unique_freeable_pointers() {
    let a = malloc(0);
    let b = malloc(0);
    assert!(!a.is_null() && !b.is_null());
    assert_ne!(a, b, "malloc(0) must return unique pointers");
    assert_eq!(skmem_owns(a), 1);
    // SAFETY: both are live blocks of ours.
    unsafe {
        free(a);
        free(b);
        free(ptr::null_mut());
    }
}

#[test]
fn absurd_sizes_fail_with_enomem() {
    for size in [usize::MAX, isize::MAX as usize + 1, 1 << 62, 1 << 60] {
        set_errno(0);
        expect_null_with(malloc(size), libc::ENOMEM, &format!("malloc({size:#x})"));
    }
    set_errno(0);
    expect_null_with(calloc(usize::MAX / 2, 3), libc::ENOMEM, "calloc overflow");
    set_errno(0);
    expect_null_with(calloc(1 << 32, 1 << 32), libc::ENOMEM, "calloc 2^64");
    set_errno(0);
    expect_null_with(
        calloc(1 << 31, 1 << 32),
        libc::ENOMEM,
        "calloc above PTRDIFF_MAX",
    );
    set_errno(0);
    expect_null_with(
        pvalloc(usize::MAX - 10),
        libc::ENOMEM,
        "pvalloc rounding overflow",
    );
    set_errno(0);
    expect_null_with(
        aligned_alloc(64, usize::MAX),
        libc::ENOMEM,
        "aligned_alloc huge",
    );
}

#[test]
fn malloc_results_are_aligned_and_usable() {
    let mut blocks = Vec::new();
    let sizes = (1..=1024).chain([1500, 4000, 4096, 8191, 32768, 65536, 1 << 20, 5 << 20]);
    for size in sizes {
        let p = malloc(size);
        assert!(!p.is_null(), "malloc({size})");
        let want = 16.min(1 << (usize::BITS - 1 - size.leading_zeros()));
        assert_eq!(
            p as usize % want,
            0,
            "malloc({size}) = {p:p} not {want}-aligned"
        );
        // SAFETY: a live block of ours.
        let usable = unsafe { malloc_usable_size(p) };
        assert!(usable >= size, "usable size {usable} < requested {size}");
        fill(p, usable, size as u8);
        blocks.push((p, usable, size as u8));
    }
    for (p, usable, seed) in blocks {
        assert!(
            holds(p, usable, seed),
            "block {p:p} of usable size {usable} was overwritten"
        );
        // SAFETY: a live block of ours.
        unsafe { free(p) };
    }
    // SAFETY: NULL is allowed.
    assert_eq!(unsafe { malloc_usable_size(ptr::null_mut()) }, 0);
}

#[test]
fn calloc_returns_zeroes_even_for_recycled_memory() {
    for size in [8, 24, 100, 1000, 5000, 40000, 300_000] {
        // Dirty blocks of this size first, so calloc may be handed them back.
        let dirty: Vec<_> = (0..64).map(|_| malloc(size)).collect();
        for &p in &dirty {
            fill(p, size, 0xA5);
            // SAFETY: a live block of ours.
            unsafe { free(p) };
        }
        for _ in 0..64 {
            let p = calloc(size / 4, 4);
            assert!(!p.is_null());
            // SAFETY: a block of `size / 4 * 4` bytes.
            let bytes = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), size / 4 * 4) };
            assert!(
                bytes.iter().all(|&b| b == 0),
                "calloc({}, 4) not zeroed",
                size / 4
            );
            // SAFETY: a live block of ours.
            unsafe { free(p) };
        }
    }
    let zero = calloc(0, 16);
    assert!(
        !zero.is_null(),
        "calloc(0, 16) must return a unique pointer"
    );
    // SAFETY: a live block of ours.
    unsafe { free(zero) };
}

#[test]
fn realloc_keeps_contents_and_follows_glibc_at_the_edges() {
    // SAFETY: every pointer passed is NULL or live and ours; results that
    // replace a block are the only ones used afterwards.
    unsafe {
        let p = realloc(ptr::null_mut(), 10);
        assert!(!p.is_null(), "realloc(NULL, n) is malloc(n)");
        fill(p, 10, 1);
        let mut p = p;
        let mut len = 10;
        for new_len in [20, 100, 3000, 70_000, 2 << 20, 5000, 17, 3] {
            let q = realloc(p, new_len);
            assert!(!q.is_null(), "realloc to {new_len}");
            assert!(
                holds(q, len.min(new_len), 1),
                "realloc to {new_len} lost contents"
            );
            fill(q, new_len, 1);
            p = q;
            len = new_len;
        }
        // A failed realloc leaves the block as it was.
        set_errno(0);
        expect_null_with(realloc(p, usize::MAX), libc::ENOMEM, "realloc huge");
        expect_null_with(realloc(p, 1 << 60), libc::ENOMEM, "realloc 2^60");
        assert!(holds(p, len, 1), "failed realloc touched the block");
        expect_null_with(
            reallocarray(p, usize::MAX / 2, 3),
            libc::ENOMEM,
            "reallocarray overflow",
        );
        assert!(holds(p, len, 1), "failed reallocarray touched the block");
        let q = reallocarray(p, 100, 8);
        assert!(!q.is_null());
        assert!(holds(q, len, 1));
        // glibc: realloc(p, 0) frees p and returns NULL, errno untouched.
        set_errno(4242);
        assert!(
            realloc(q, 0).is_null(),
            "realloc(p, 0) returns NULL after freeing p"
        );
        assert_eq!(errno(), 4242, "realloc(p, 0) must not set errno");
        let fresh = realloc(ptr::null_mut(), 0);
        assert!(!fresh.is_null(), "realloc(NULL, 0) is malloc(0)");
        free(fresh);
    }
}

#[test]
fn posix_memalign_returns_errors_and_leaves_errno_and_memptr_alone() {
    let sentinel = 0x1234 as *mut c_void;
    for bad in [0, 1, 2, 4, 3, 24, 48, 4097] {
        let mut out = sentinel;
        set_errno(777);
        // SAFETY: `out` is writable.
        let rc = unsafe { posix_memalign(&mut out, bad, 64) };
        assert_eq!(rc, libc::EINVAL, "posix_memalign(align {bad})");
        assert_eq!(out, sentinel, "memptr changed on error");
        assert_eq!(errno(), 777, "posix_memalign must not set errno");
    }
    for (align, size) in [(64, usize::MAX), (1 << 63, 8), (1 << 62, 8)] {
        let mut out = sentinel;
        // SAFETY: `out` is writable.
        let rc = unsafe { posix_memalign(&mut out, align, size) };
        assert_eq!(rc, libc::ENOMEM, "posix_memalign({align:#x}, {size:#x})");
        assert_eq!(out, sentinel);
    }
    for shift in 3..=22 {
        let align = 1usize << shift;
        for size in [0, 1, 100, align, 3 * align + 5] {
            let mut out = ptr::null_mut();
            // SAFETY: `out` is writable.
            let rc = unsafe { posix_memalign(&mut out, align, size) };
            assert_eq!(rc, 0, "posix_memalign({align}, {size})");
            assert_eq!(out as usize % align, 0, "{out:p} not {align}-aligned");
            // SAFETY: a live block of ours.
            assert!(unsafe { malloc_usable_size(out) } >= size);
            fill(out, size, 9);
            assert!(holds(out, size, 9));
            // SAFETY: a live block of ours.
            unsafe { free(out) };
        }
    }
}

#[test]
fn aligned_family_rules() {
    set_errno(0);
    expect_null_with(aligned_alloc(24, 100), libc::EINVAL, "aligned_alloc(24)");
    set_errno(0);
    expect_null_with(aligned_alloc(0, 100), libc::EINVAL, "aligned_alloc(0)");
    set_errno(0);
    expect_null_with(memalign(usize::MAX, 8), libc::EINVAL, "memalign(SIZE_MAX)");
    set_errno(0);
    expect_null_with(memalign(1 << 63, 8), libc::ENOMEM, "memalign(2^63)");
    set_errno(0);
    expect_null_with(
        aligned_alloc(1 << 63, 8),
        libc::ENOMEM,
        "aligned_alloc(2^63)",
    );
    let mut blocks = Vec::new();
    for (align, size) in [
        (1, 1),
        (8, 3),
        (16, 100),
        (4096, 100),
        (1 << 16, 10),
        (1 << 21, 3 << 20),
    ] {
        let p = aligned_alloc(align, size);
        assert!(
            !p.is_null() && p as usize % align == 0,
            "aligned_alloc({align}, {size}) = {p:p}"
        );
        blocks.push(p);
    }
    // memalign rounds a non-power-of-two alignment up (glibc).
    for (align, want) in [(0, 1), (48, 64), (100, 128), (3000, 4096)] {
        let p = memalign(align, 40);
        assert!(
            !p.is_null() && p as usize % want == 0,
            "memalign({align}) = {p:p}, want {want}"
        );
        blocks.push(p);
    }
    let v = valloc(10);
    assert!(!v.is_null() && v as usize % page() == 0, "valloc = {v:p}");
    blocks.push(v);
    let pv = pvalloc(page() + 1);
    assert!(
        !pv.is_null() && pv as usize % page() == 0,
        "pvalloc = {pv:p}"
    );
    // SAFETY: a live block of ours.
    let usable = unsafe { malloc_usable_size(pv) };
    assert!(usable >= 2 * page(), "pvalloc rounds to whole pages");
    blocks.push(pv);
    for p in blocks {
        // SAFETY: live blocks of ours.
        unsafe { free(p) };
    }
}

#[test]
fn glibc_extras_are_harmless() {
    assert!(matches!(malloc_trim(0), 0 | 1));
    assert_eq!(mallopt(libc::M_ARENA_MAX, 1), 1);
    // Other tests run concurrently: only what this test holds is certain.
    let big = malloc(3 << 20);
    let small: Vec<_> = (0..1000).map(|_| malloc(1000)).collect();
    let info = mallinfo2();
    assert!(
        info.hblks >= 1 && info.hblkhd >= 3 << 20,
        "large object counted"
    );
    assert!(info.uordblks >= 1000 * 1000, "small blocks counted");
    assert!(info.arena >= info.uordblks);
    assert_eq!(info.arena, info.uordblks + info.fordblks);
    assert!(mallinfo().hblkhd >= 3 << 20);
    // SAFETY: live blocks of ours.
    unsafe {
        free(big);
        small.into_iter().for_each(|p| free(p));
    }
    let on_stack = 0u64;
    assert_eq!(
        skmem_owns(ptr::from_ref(&on_stack).cast()),
        0,
        "a stack address is not ours"
    );
    let p = malloc(32);
    assert_eq!(skmem_owns(p), 1);
    // SAFETY: a live block of ours.
    unsafe { free(p) };
}

#[test]
fn blocks_cross_threads() {
    // Blocks allocated on four threads, checked and freed on others.
    let made: Vec<Vec<(usize, usize)>> = (0..4u8)
        .map(|t| {
            thread::spawn(move || {
                (0..2000usize)
                    .map(|i| {
                        let size = 1 + (i * 37 + usize::from(t)) % 3000;
                        let p = malloc(size);
                        assert!(!p.is_null());
                        fill(p, size, t);
                        (p as usize, size)
                    })
                    .collect()
            })
        })
        .map(|h| h.join().unwrap())
        .collect();
    let checkers: Vec<_> = made
        .into_iter()
        .enumerate()
        .map(|(t, blocks)| {
            thread::spawn(move || {
                for (p, size) in blocks {
                    let p = p as *mut c_void;
                    assert!(
                        holds(p, size, t as u8),
                        "block {p:p} changed across threads"
                    );
                    // SAFETY: a live block of ours, freed once.
                    unsafe { free(p) };
                }
            })
        })
        .collect();
    for c in checkers {
        c.join().unwrap();
    }
}

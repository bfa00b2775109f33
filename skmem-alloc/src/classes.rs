//! The size-class ladder and the per-class constants.
//!
//! # The ladder
//!
//! * 8 to 128 bytes in steps of 8 (16 classes);
//! * above 128, eight classes per doubling: a request in `(2^k, 2^(k+1)]`
//!   is rounded up to a multiple of `2^(k-3)`, up to [`MAX_SMALL`]
//!   (256 KiB): 104 classes in all.
//!
//! **Waste bound** (tested over every size, `tests/classes.rs`): the class
//! of a request of `n` bytes wastes fewer than `n / 8` bytes (12.5 % of the
//! request) for every `n` above 64, and at most 7 bytes (the 8-byte
//! granule) for `n` of 64 or less. Above 128 the step is `2^(k-3) < n/8`;
//! from 65 to 128 the step is 8, which is at most `n / 8`.
//!
//! # Alignment
//!
//! Every class is a multiple of 8, and a class's objects start at
//! `segment base + i * size` with page-aligned segments, so each object is
//! aligned to the largest power of two dividing the class size (capped at
//! the page). The powers of two 8 … 256 KiB are all classes, so any
//! alignment up to the page has a class.
//!
//! # Segments
//!
//! A class's segment is a multiple of `lcm(size, page)` (so the region
//! keeps the object size exactly and no segment tail is wasted) of at least
//! 64 KiB and 16 objects. A class region spans at most [`MAX_SEGS`]
//! segments, which bounds the slab layer's per-class lookup table.
//!
//! Everything here is `const`: the tables are computed at compile time.

/// The page size the layout assumes (x86-64 and aarch64 Linux defaults;
/// checked against the system at initialisation).
pub(crate) const PAGE: usize = 4096;

/// The largest request served by a size class; larger ones take the
/// large-object path.
pub const MAX_SMALL: usize = 256 * 1024;

const LOG_MAX_SMALL: usize = 18;

/// Number of size classes.
pub const NCLASSES: usize = 16 + 8 * (LOG_MAX_SMALL - 7);

/// Bytes of address space reserved for one class's region.
pub(crate) const SLICE_SHIFT: u32 = 30;
/// `1 << SLICE_SHIFT`.
pub(crate) const SLICE: usize = 1 << SLICE_SHIFT;

/// The most segments one class region has.
pub(crate) const MAX_SEGS: usize = 4096;

/// Smallest segment.
const MIN_SEG: usize = 64 * 1024;

/// The most objects a thread's front keeps per class, and the fewest.
const FRONT_BYTES: usize = 128 * 1024;
const FRONT_MAX: usize = 128;
const FRONT_MIN: usize = 2;

/// Bytes of a cache line (x86-64; aarch64 parts have 64 or 128).
const CACHE_LINE: usize = 64;

/// The largest batch moved between a front and a class cache.
pub(crate) const MAX_BATCH: usize = FRONT_MAX / 2;

/// The size of class `c` (computed).
const fn size_of_class(c: usize) -> usize {
    if c < 16 {
        (c + 1) * 8
    } else {
        let k = (c - 16) / 8 + 7;
        let sub = (c - 16) % 8;
        (1 << k) + (sub + 1) * (1 << (k - 3))
    }
}

/// The class of a request of `size` bytes, `size <= MAX_SMALL` (0 counts
/// as 1), by arithmetic.
const fn class_of_arith(size: usize) -> usize {
    if size <= 128 {
        size.saturating_sub(1) >> 3
    } else {
        let s = size - 1;
        let k = (usize::BITS - 1 - s.leading_zeros()) as usize;
        16 + (k - 7) * 8 + ((s >> (k - 3)) & 7)
    }
}

const fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Everything the fast and slow paths need about one class.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClassInfo {
    /// Object size (what `usable_size` reports).
    pub(crate) size: usize,
    /// Distance between objects in a segment: `size`, or in the redzoned
    /// layout ([`GUARDED`]) `size` plus room for the debug redzone.
    pub(crate) stride: usize,
    /// Alignment every object of the class has.
    pub(crate) align: usize,
    /// Segment size.
    pub(crate) seg: usize,
    /// Segments in the region.
    pub(crate) seg_count: usize,
    /// Objects per segment.
    pub(crate) objs: usize,
    /// Bytes of the class slice covered by segments.
    pub(crate) span: usize,
    /// Lemire's `u64::MAX / stride + 1`, for exact division of 32-bit values.
    pub(crate) m_size: u64,
    /// Most objects a thread front keeps.
    pub(crate) limit: u32,
    /// Objects moved per refill and per flush.
    pub(crate) batch: u32,
    /// Fewest objects a refill takes: a cache line's worth (at most
    /// `batch`), so that the objects two threads take first from the same
    /// fresh slab, one after the other, do not share a line.
    pub(crate) first_refill: u32,
}

const fn info(c: usize) -> ClassInfo {
    layout(c, false)
}

/// Class `c`'s layout; with `guarded`, each object is followed by a
/// redzone of at least [`GUARD_BYTES`](skmem_slab::debug::GUARD_BYTES)
/// rounded up to the class's alignment (so the stride keeps every object
/// aligned as the plain layout does).
const fn layout(c: usize, guarded: bool) -> ClassInfo {
    let size = size_of_class(c);
    let tz = size.trailing_zeros();
    let natural = 1usize << tz;
    let align = if natural > PAGE { PAGE } else { natural };
    let stride = if guarded {
        let guard = skmem_slab::debug::GUARD_BYTES;
        size + if align > guard { align } else { guard }
    } else {
        size
    };
    let lcm = stride / gcd(stride, PAGE) * PAGE;
    let mut target = stride * 16;
    if target < MIN_SEG {
        target = MIN_SEG;
    }
    let seg = target.div_ceil(lcm) * lcm;
    let mut seg_count = SLICE / seg;
    if seg_count > MAX_SEGS {
        seg_count = MAX_SEGS;
    }
    let mut limit = FRONT_BYTES / size;
    if limit > FRONT_MAX {
        limit = FRONT_MAX;
    }
    if limit < FRONT_MIN {
        limit = FRONT_MIN;
    }
    ClassInfo {
        size,
        stride,
        align,
        seg,
        seg_count,
        objs: seg / stride,
        span: seg * seg_count,
        m_size: u64::MAX / stride as u64 + 1,
        limit: limit as u32,
        batch: (limit / 2) as u32,
        first_refill: {
            let line = CACHE_LINE.div_ceil(size);
            let batch = limit / 2;
            (if line > batch { batch } else { line }) as u32
        },
    }
}

/// The per-class constants.
pub(crate) static INFO: [ClassInfo; NCLASSES] = {
    let mut t = [info(0); NCLASSES];
    let mut c = 0;
    while c < NCLASSES {
        t[c] = info(c);
        c += 1;
    }
    t
};

/// The per-class layouts with a redzone after each object, used instead of
/// [`INFO`]'s for the class regions when the process runs with
/// `SKMEM_DEBUG` guards (see the [`front`](crate::front) module docs).
pub(crate) static GUARDED: [ClassInfo; NCLASSES] = {
    let mut t = [info(0); NCLASSES];
    let mut c = 0;
    while c < NCLASSES {
        t[c] = layout(c, true);
        c += 1;
    }
    t
};

/// Class of every size up to 1 KiB, indexed by `(size + 7) / 8`.
static SMALL_CLASS: [u8; 129] = {
    let mut t = [0u8; 129];
    let mut i = 0;
    while i < 129 {
        t[i] = class_of_arith(i * 8) as u8;
        i += 1;
    }
    t
};

/// The class of a request of `size <= MAX_SMALL` bytes.
#[inline(always)]
pub(crate) fn class_of(size: usize) -> usize {
    debug_assert!(size <= MAX_SMALL);
    if size <= 1024 {
        SMALL_CLASS[(size + 7) >> 3] as usize
    } else {
        class_of_arith(size)
    }
}

/// `a / d` for `a < 2^32`, `d < 2^32`, with `m = u64::MAX / d + 1`
/// (Lemire, Kaser and Kurz, "Faster remainder by direct computation").
#[cfg(test)]
fn fast_div(a: usize, m: u64) -> usize {
    ((m as u128 * a as u128) >> 64) as usize
}

/// `a % d` under the same conditions as [`fast_div`].
#[inline(always)]
pub(crate) fn fast_mod(a: usize, m: u64, d: usize) -> usize {
    let low = m.wrapping_mul(a as u64);
    ((low as u128 * d as u128) >> 64) as usize
}

/// The size class a request of `size` bytes is served from, or `None` when
/// it takes the large-object path.
pub fn class_index(size: usize) -> Option<usize> {
    (size <= MAX_SMALL).then(|| class_of(size))
}

/// The object size of class `index` (`None` past the last class).
pub fn class_size(index: usize) -> Option<usize> {
    INFO.get(index).map(|i| i.size)
}

/// The alignment every object of class `index` has.
pub fn class_align(index: usize) -> Option<usize> {
    INFO.get(index).map(|i| i.align)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_agrees_with_arithmetic_and_fast_division_is_exact() {
        for size in 0..=MAX_SMALL {
            assert_eq!(class_of(size), class_of_arith(size), "size {size}");
        }
        for info in INFO.iter().chain(&GUARDED) {
            assert_eq!(info.seg % info.stride, 0, "{info:?}");
            assert_eq!(info.stride % info.align, 0, "{info:?}");
            assert!(info.stride >= info.size, "{info:?}");
            assert!(info.seg_count <= MAX_SEGS, "{info:?}");
            assert_eq!(info.seg % PAGE, 0, "{info:?}");
            assert!(info.span <= SLICE);
            for a in (0..(1usize << 30))
                .step_by(4099)
                .chain([info.seg - 1, info.seg])
            {
                assert_eq!(fast_div(a, info.m_size), a / info.stride);
                assert_eq!(fast_mod(a, info.m_size, info.stride), a % info.stride);
            }
        }
    }
}

//! The region parameter computation (the seed's `skmem_region_params_config`).
//!
//! Given what a caller asks for (object size and count, a segment size hint,
//! mode flags, and how many objects the magazine layer may hold at worst),
//! compute the object size actually used, the segment size and count, and the
//! object count that fills those segments. The steps, in the seed's order:
//!
//! 1. **Pseudo regions** (heap-backed intrinsic): the object is at least
//!    8 bytes, rounded up to the alignment, and each "segment" is one object.
//!    The magazine allowance does not apply. Done.
//! 2. Otherwise objects are aligned to the cache line (or to a smaller
//!    power-of-two `align` of at least 8 the caller set: a packed region;
//!    "cache line" below then means that granule). The segment limit
//!    starts at the hint rounded up to [`MIN_SEG_SIZE`], or
//!    [`DEFAULT_SEG_SIZE`] when there is no hint.
//! 3. **Object size**: unless the object is a proper divisor of the cache line
//!    that also divides the segment limit (then it is kept as is, even 1
//!    byte), round it up to the cache line and keep adding cache lines until
//!    it divides the segment limit or reaches it.
//! 4. **Grow**: the segment limit grows by [`MIN_SEG_SIZE`] until it holds at
//!    least one object.
//! 5. **Magazine residency**: unless the region has no magazines on top
//!    ([`RegionMode::NOMAGAZINES`]), add the worst-case number of objects the
//!    magazines may hold, so that the requested count is still available to
//!    callers while the magazines are full.
//! 6. **Shrink or stretch**: the total (`obj_size * obj_count`, rounded up to
//!    [`MIN_SEG_SIZE`]) is compared with the limit. If the limit is larger,
//!    it shrinks page by page down to the total (and becomes the total). If
//!    smaller, it is stretched page by page — while it does not divide the
//!    total, and to less than 1.5 times its size — and the total is rounded
//!    up to a multiple of it.
//! 7. **Count**: monolithic regions have one segment holding the whole total.
//!    Otherwise, when an object is larger than [`MIN_SEG_SIZE`] and the limit
//!    is not a multiple of it, the limit grows by `limit - obj_size`, the
//!    total is rounded up to a multiple of the limit again, and the segment
//!    count is `total / limit` (at least one), each of `total / count` bytes.
//! 8. **Recount**: the object count becomes however many objects fit.
//!
//! # Differences from the seed
//!
//! Steps 1–7 compute exactly what the seed computes. Three things differ,
//! each only where the seed's own result breaks an invariant it relies on:
//!
//! * **Object count.** The seed recounts as `(seg_size * seg_count) /
//!   obj_size`, as if objects could straddle segments. Here the slab layer
//!   never splits an object across segments, so the count is `objs_per_seg *
//!   seg_count` with `objs_per_seg = seg_size / obj_size`. The two differ
//!   when an object does not divide the segment (only possible through step
//!   7 for objects above 4 KiB, or through a segment hint the object divides
//!   but the final segment does not): 6 KiB objects in two 34 KiB segments
//!   are 10 here, 11 in the seed.
//! * **Whole pages.** The seed asserts that a non-pseudo segment is a whole
//!   number of pages, yet step 7's `limit += limit - obj_size` breaks that
//!   whenever the object is not itself a page multiple (10 000-byte objects
//!   get a 30 912-byte segment). Here the segment is rounded up to
//!   [`MIN_SEG_SIZE`] afterwards, so every backend (mmap refuses partial
//!   pages) can serve it.
//! * **Never fewer objects than asked.** Because of the two effects above,
//!   the seed's segments can hold fewer whole objects than were asked for
//!   (33 objects of 16 KiB would get eight 72 KiB segments of four objects:
//!   32). Here segments are added until the count covers the request plus
//!   the magazine allowance.
//!
//! The magazine allowance is supplied by the caller
//! ([`RegionParams::magazine_max_objs`]); the seed asks the magazine layer for
//! it (`skmem_cache_magazine_max(objsize)`).
//!
//! Bad input is refused with [`Error::InvalidParam`] naming the parameter:
//! zero sizes or counts, objects or segments above [`MAX_SEG_SIZE`], counts
//! above [`MAX_OBJ_COUNT`] (before or after inflation and recounting), a
//! pseudo alignment that is not a power of two and a multiple of 8, and
//! regions whose span would not fit the address space.

use skmem_traits::{Error, RegionMode, Result, CACHE_LINE_SIZE, MIN_SEG_SIZE};

/// Segment size used when the caller gives no hint (the seed's
/// `SKMEM_SEG_SIZE`).
pub const DEFAULT_SEG_SIZE: usize = 32 * 1024;

/// The largest segment (and object) a region will compute (1 GiB): an object
/// or hint that needs a larger one is refused by name.
pub const MAX_SEG_SIZE: usize = 1 << 30;

/// The largest object count a region accepts (segment and object indices are
/// `u32`).
pub const MAX_OBJ_COUNT: usize = u32::MAX as usize;

/// The smallest alignment of a pseudo region (the seed's `SKMEM_CACHE_ALIGN`:
/// 64-bit).
pub const MIN_PSEUDO_ALIGN: usize = core::mem::size_of::<u64>();

/// What a caller asks of a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionParams {
    /// Region name, used in stats and errors.
    pub name: String,
    /// Requested object size in bytes.
    pub obj_size: usize,
    /// Requested number of objects.
    pub obj_count: usize,
    /// Requested segment size; 0 picks [`DEFAULT_SEG_SIZE`].
    pub seg_size: usize,
    /// Object alignment for [`RegionMode::PSEUDO`] regions (a power of two,
    /// multiple of [`MIN_PSEUDO_ALIGN`]). Other regions round objects to the
    /// cache line, unless this is a power of two from [`MIN_PSEUDO_ALIGN`]
    /// up to below the cache line: then objects are rounded to it instead
    /// (a *packed* region, for size-class allocators whose classes step by
    /// less than a cache line); any other value is ignored.
    pub align: usize,
    /// Mode flags.
    pub mode: RegionMode,
    /// Worst-case number of objects the magazine layer above may hold
    /// (ignored with [`RegionMode::NOMAGAZINES`] and for pseudo regions).
    pub magazine_max_objs: usize,
    /// A hard upper bound on the objects the region may ever hold, magazine
    /// allowance included; `None`: no bound (see [`max_capacity`](Self::max_capacity)).
    pub max_capacity: Option<usize>,
}

impl RegionParams {
    /// Parameters for `obj_count` objects of `obj_size` bytes, default
    /// segment size, no flags, no magazine allowance.
    pub fn new(name: impl Into<String>, obj_size: usize, obj_count: usize) -> Self {
        RegionParams {
            name: name.into(),
            obj_size,
            obj_count,
            seg_size: 0,
            align: CACHE_LINE_SIZE,
            mode: RegionMode::empty(),
            magazine_max_objs: 0,
            max_capacity: None,
        }
    }

    /// Sets the segment size hint.
    pub fn seg_size(mut self, seg_size: usize) -> Self {
        self.seg_size = seg_size;
        self
    }

    /// Sets the mode flags.
    pub fn mode(mut self, mode: RegionMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the alignment (pseudo regions), or the packing granule of a
    /// non-pseudo region (see [`align`](Self::align)).
    pub fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// Sets the worst-case magazine residency.
    pub fn magazine_max_objs(mut self, objs: usize) -> Self {
        self.magazine_max_objs = objs;
        self
    }

    /// Sets a hard upper bound on the objects the region may ever hold.
    ///
    /// Without it the object count is a floor (`obj_count` plus the
    /// magazine allowance, rounded *up* to whole segments). With it the
    /// allowance is cut so the total stays within `max`, and the segments
    /// are rounded *down*: first their count, then (when one segment alone
    /// holds more than `max`) the size of the single segment, page by page.
    /// `obj_count` above `max` is refused with [`Error::InvalidParam`]
    /// naming `max_capacity`.
    ///
    /// When `max` is below one segment's worth of objects even at one page
    /// (or, for objects above a page, at the object rounded up to pages),
    /// the single segment spaces its objects out: the object size (stride)
    /// grows in alignment granules until the segment holds at most `max`
    /// (8 objects of 128 bytes get a 512-byte stride in one page), so even
    /// a handful is a real ceiling.
    pub fn max_capacity(mut self, max: usize) -> Self {
        self.max_capacity = Some(max);
        self
    }

    /// Computes the region's layout; see the [module docs](self) for the
    /// steps. Pure: the same parameters always give the same layout.
    pub fn configure(&self) -> Result<RegionLayout> {
        configure(self)
    }
}

/// The computed shape of a region.
///
/// Invariants (checked by the tests): `objs_per_seg = seg_size / obj_size >=
/// 1`, `obj_count = objs_per_seg * seg_count`, `seg_count >= 1`, and for
/// non-pseudo regions `seg_size` is a multiple of [`MIN_SEG_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionLayout {
    /// Object (chunk) size in bytes.
    pub obj_size: usize,
    /// Number of objects the region holds in all.
    pub obj_count: usize,
    /// Size of one segment.
    pub seg_size: usize,
    /// Number of segments.
    pub seg_count: u32,
    /// Objects per segment.
    pub objs_per_seg: u32,
    /// Alignment of objects (and of segments).
    pub align: usize,
}

impl RegionLayout {
    /// Bytes of all segments: `seg_size * seg_count` (checked not to
    /// overflow by [`RegionParams::configure`]).
    pub fn span_len(&self) -> usize {
        self.seg_size * self.seg_count as usize
    }
}

/// `value` rounded up to a multiple of `to` (any non-zero `to`), or `None`
/// on overflow.
fn round_up(value: usize, to: usize) -> Option<usize> {
    debug_assert!(to != 0);
    value.checked_add(to - 1).map(|v| v / to * to)
}

fn too_large(param: &'static str, value: usize) -> Error {
    Error::invalid_param(
        param,
        value as u64,
        "the region would exceed the segment size, object count or address space limits",
    )
}

fn configure(p: &RegionParams) -> Result<RegionLayout> {
    let Some(max) = p.max_capacity else {
        return configure_floor(p);
    };
    if max < p.obj_count {
        return Err(Error::invalid_param(
            "max_capacity",
            max as u64,
            "smaller than the requested object count (obj_count)",
        ));
    }
    // The allowance is cut so that the floor computation aims at `max`.
    let mut aimed = p.clone();
    aimed.max_capacity = None;
    if !p.mode.contains(RegionMode::NOMAGAZINES) {
        aimed.magazine_max_objs = p.magazine_max_objs.min(max - p.obj_count);
    }
    let layout = configure_floor(&aimed)?;
    bound_layout(layout, max)
}

/// Rounds a layout down to at most `max` objects: fewer segments, or a
/// smaller single segment (whole pages, whole objects).
fn bound_layout(mut layout: RegionLayout, max: usize) -> Result<RegionLayout> {
    if layout.obj_count <= max {
        return Ok(layout);
    }
    let per_seg = layout.objs_per_seg as usize;
    let segs = max / per_seg;
    if segs >= 1 {
        // `segs` < the computed count, which fit a u32.
        layout.seg_count = segs as u32;
        layout.obj_count = segs * per_seg;
        return Ok(layout);
    }
    // One segment holds more than `max`: shrink it (pseudo regions have one
    // object per segment and never get here, as `max >= 1`).
    let page_round_down = max * layout.obj_size / MIN_SEG_SIZE * MIN_SEG_SIZE;
    let per_seg = page_round_down / layout.obj_size;
    if per_seg == 0 {
        // Fewer than one page's worth (or, for objects above a page, fewer
        // than one): a segment cannot be smaller than whole pages, so the
        // objects are spaced out instead. The segment is the object rounded
        // up to pages; the stride grows (in whole alignment granules) until
        // that segment holds at most `max`. `stride <= seg` (seg is a
        // multiple of the granule), so at least one object fits.
        let seg = layout
            .obj_size
            .next_multiple_of(MIN_SEG_SIZE)
            .max(MIN_SEG_SIZE);
        // The widest granule-multiple stride that still fits `max` objects
        // if that does not let more in; else the next granule up (fewer).
        let down = (seg / max / layout.align * layout.align).max(layout.obj_size);
        let stride = if seg / down <= max {
            down
        } else {
            seg.div_ceil(max)
                .next_multiple_of(layout.align)
                .max(layout.obj_size)
        };
        let per_seg = seg / stride;
        debug_assert!((1..=max).contains(&per_seg));
        layout.obj_size = stride;
        layout.seg_size = seg;
        layout.seg_count = 1;
        layout.objs_per_seg = per_seg as u32;
        layout.obj_count = per_seg;
        return Ok(layout);
    }
    layout.seg_size = page_round_down;
    layout.seg_count = 1;
    layout.objs_per_seg = per_seg as u32;
    layout.obj_count = per_seg;
    Ok(layout)
}

fn configure_floor(p: &RegionParams) -> Result<RegionLayout> {
    if p.obj_size == 0 {
        return Err(Error::invalid_param("obj_size", 0, "must be non-zero"));
    }
    if p.obj_count == 0 {
        return Err(Error::invalid_param("obj_count", 0, "must be non-zero"));
    }
    if p.obj_count > MAX_OBJ_COUNT {
        return Err(Error::invalid_param(
            "obj_count",
            p.obj_count as u64,
            "more objects than a region can index (2^32 - 1)",
        ));
    }
    if p.obj_size > MAX_SEG_SIZE {
        return Err(Error::invalid_param(
            "obj_size",
            p.obj_size as u64,
            "larger than the segment limit (1 GiB)",
        ));
    }
    if p.seg_size > MAX_SEG_SIZE {
        return Err(Error::invalid_param(
            "seg_size",
            p.seg_size as u64,
            "larger than the segment limit (1 GiB)",
        ));
    }

    if p.mode.contains(RegionMode::PSEUDO) {
        return configure_pseudo(p);
    }

    // The rounding granule: the cache line, or a smaller power of two the
    // caller asked for (packed objects).
    let line =
        if p.align.is_power_of_two() && p.align >= MIN_PSEUDO_ALIGN && p.align < CACHE_LINE_SIZE {
            p.align
        } else {
            CACHE_LINE_SIZE
        };
    let mono = p.mode.contains(RegionMode::MONOLITHIC);
    let mut objsize = p.obj_size;

    // Step 2: the segment limit.
    let mut seglim = if p.seg_size == 0 {
        DEFAULT_SEG_SIZE
    } else {
        // Cannot overflow: seg_size <= MAX_SEG_SIZE.
        round_up(p.seg_size, MIN_SEG_SIZE).ok_or_else(|| too_large("seg_size", p.seg_size))?
    };

    // Step 3: object size a multiple of the cache line dividing the segment,
    // unless it is already a small divisor of both.
    let small_divisor =
        objsize < line && objsize < seglim && line % objsize == 0 && seglim % objsize == 0;
    if !small_divisor {
        // Cannot overflow: obj_size <= MAX_SEG_SIZE, a multiple of the line,
        // and the loop stops at seglim.
        objsize = round_up(objsize, line).ok_or_else(|| too_large("obj_size", p.obj_size))?;
        while objsize < seglim && seglim % objsize != 0 {
            objsize += line;
        }
    }

    // Step 4: the segment must hold at least one object.
    while objsize > seglim {
        seglim += MIN_SEG_SIZE;
    }

    // Step 5: worst-case magazine residency.
    let mut objcnt = p.obj_count;
    if !p.mode.contains(RegionMode::NOMAGAZINES) {
        objcnt = objcnt
            .checked_add(p.magazine_max_objs)
            .filter(|&c| c <= MAX_OBJ_COUNT)
            .ok_or_else(|| too_large("magazine_max_objs", p.magazine_max_objs))?;
    }

    // Step 6: shrink or stretch the limit against the total.
    let mut segsize = objsize
        .checked_mul(objcnt)
        .and_then(|t| round_up(t, MIN_SEG_SIZE))
        .ok_or_else(|| too_large("obj_count", p.obj_count))?;
    if seglim > segsize {
        while seglim > segsize && seglim > MIN_SEG_SIZE {
            // seglim is a multiple of MIN_SEG_SIZE above it: no rounding.
            seglim -= MIN_SEG_SIZE;
        }
        segsize = seglim;
    } else if seglim < segsize {
        let original = seglim;
        while seglim < segsize && segsize % seglim != 0 {
            seglim += MIN_SEG_SIZE;
            if seglim >= original + (original >> 1) {
                break;
            }
        }
        segsize = round_up(segsize, seglim).ok_or_else(|| too_large("obj_count", p.obj_count))?;
    }
    debug_assert!(segsize != 0 && segsize % seglim == 0);

    // Step 7: segment count, and the size of one segment.
    let mut segcnt;
    if mono {
        segcnt = 1;
    } else {
        if objsize > MIN_SEG_SIZE {
            if seglim % objsize != 0 {
                seglim = seglim
                    .checked_add(seglim - objsize)
                    .ok_or_else(|| too_large("seg_size", p.seg_size))?;
            }
            segsize =
                round_up(segsize, seglim).ok_or_else(|| too_large("obj_count", p.obj_count))?;
        }
        segcnt = (segsize / seglim).max(1);
        segsize /= segcnt;
        // Difference 2: whole pages (a no-op unless step 7 grew the limit by
        // a non-page amount).
        segsize =
            round_up(segsize, MIN_SEG_SIZE).ok_or_else(|| too_large("seg_size", p.seg_size))?;
    }
    if segsize > MAX_SEG_SIZE {
        return Err(if mono {
            too_large("obj_count", p.obj_count)
        } else {
            too_large("seg_size", p.seg_size)
        });
    }

    // Step 8 and differences 1 and 3: whole objects per segment, and enough
    // segments for the (inflated) request.
    let objs_per_seg = segsize / objsize;
    debug_assert!(objs_per_seg >= 1);
    if objs_per_seg * segcnt < objcnt {
        segcnt = objcnt.div_ceil(objs_per_seg);
    }
    let obj_count = objs_per_seg
        .checked_mul(segcnt)
        .filter(|&c| c <= MAX_OBJ_COUNT)
        .ok_or_else(|| too_large("obj_count", p.obj_count))?;
    let seg_count = u32::try_from(segcnt).map_err(|_| too_large("obj_count", p.obj_count))?;
    check_span(segsize, segcnt, p.obj_count)?;
    Ok(RegionLayout {
        obj_size: objsize,
        obj_count,
        seg_size: segsize,
        seg_count,
        objs_per_seg: objs_per_seg as u32,
        align: line,
    })
}

/// Step 1: one object per "segment", from the heap.
fn configure_pseudo(p: &RegionParams) -> Result<RegionLayout> {
    let align = p.align;
    if !align.is_power_of_two() || align % MIN_PSEUDO_ALIGN != 0 || align > MAX_SEG_SIZE {
        return Err(Error::invalid_param(
            "align",
            align as u64,
            "a pseudo region's alignment must be a power of two, at least 8 and at most 1 GiB",
        ));
    }
    // Cannot overflow: both are at most MAX_SEG_SIZE, which `align` divides.
    let objsize = round_up(p.obj_size.max(MIN_PSEUDO_ALIGN), align)
        .ok_or_else(|| too_large("obj_size", p.obj_size))?;
    let seg_count = u32::try_from(p.obj_count).map_err(|_| too_large("obj_count", p.obj_count))?;
    check_span(objsize, p.obj_count, p.obj_count)?;
    Ok(RegionLayout {
        obj_size: objsize,
        obj_count: p.obj_count,
        seg_size: objsize,
        seg_count,
        objs_per_seg: 1,
        align,
    })
}

/// The whole span must be addressable (what `Layout` and `mmap` accept).
fn check_span(seg_size: usize, seg_count: usize, obj_count: usize) -> Result<()> {
    match seg_size.checked_mul(seg_count) {
        Some(span) if span <= isize::MAX as usize => Ok(()),
        _ => Err(too_large("obj_count", obj_count)),
    }
}

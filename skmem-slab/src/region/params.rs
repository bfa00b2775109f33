//! The region parameter computation (the seed's `skmem_region_params_config`).
//!
//! Given what a caller asks for (object size and count, a segment size hint,
//! mode flags, and how many objects the magazine layer may hold at worst),
//! compute the object size actually used, the segment size and count, and the
//! object count that fills those segments without waste. The steps, in order:
//!
//! 1. **Pseudo regions** (heap-backed intrinsic): the object is rounded up to
//!    the alignment and each "segment" is one object. Done.
//! 2. Otherwise objects are aligned to the cache line. The segment limit
//!    starts at the hint (rounded up to [`MIN_SEG_SIZE`]) or the default
//!    ([`DEFAULT_SEG_SIZE`]).
//! 3. **Object size**: unless the object is a proper divisor of the cache line
//!    that also divides the segment, round it up to the cache line and keep
//!    adding cache lines until it divides the segment limit (or reaches it).
//! 4. **Grow**: the segment limit grows by [`MIN_SEG_SIZE`] until it holds at
//!    least one object.
//! 5. **Magazine residency**: unless the region has no magazines on top, add
//!    the worst-case number of objects the magazines may hold, so that the
//!    requested count is still available to callers.
//! 6. **Shrink or stretch**: the total (`obj_size * obj_count`, rounded to
//!    the page) is compared with the limit. If the limit is larger, shrink it
//!    page by page down to the total. If smaller, stretch it page by page (to
//!    at most 1.5 times) looking for a limit that divides the total, then round
//!    the total up to a multiple of the limit.
//! 7. **Count**: monolithic regions have one segment of the whole total.
//!    Otherwise, when an object is larger than a page and the limit is not a
//!    multiple of it, the limit grows by `limit - obj_size` (making room for
//!    one more whole object), the total is rounded again, and the segment
//!    count is `total / limit`.
//! 8. **Recount**: the object count becomes however many objects fit in all
//!    segments, so no space is wasted.

use skmem_traits::{Error, RegionMode, Result, CACHE_LINE_SIZE, MIN_SEG_SIZE};

/// Segment size used when the caller gives no hint (the seed's
/// `SKMEM_SEG_SIZE`).
pub const DEFAULT_SEG_SIZE: usize = 32 * 1024;

/// The largest segment a region will compute (1 GiB): an object that needs a
/// larger one is refused by name.
pub const MAX_SEG_SIZE: usize = 1 << 30;

/// The largest object count a region accepts.
pub const MAX_OBJ_COUNT: usize = u32::MAX as usize;

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
    /// multiple of the cache line). Other regions align to the cache line.
    pub align: usize,
    /// Mode flags.
    pub mode: RegionMode,
    /// Worst-case number of objects the magazine layer above may hold
    /// (ignored with [`RegionMode::NOMAGAZINES`]).
    pub magazine_max_objs: usize,
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

    /// Sets the alignment (pseudo regions only).
    pub fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// Sets the worst-case magazine residency.
    pub fn magazine_max_objs(mut self, objs: usize) -> Self {
        self.magazine_max_objs = objs;
        self
    }

    /// Computes the region's layout; see the [module docs](self) for the
    /// steps. Pure: the same parameters always give the same layout.
    pub fn configure(&self) -> Result<RegionLayout> {
        configure(self)
    }
}

/// The computed shape of a region.
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
    /// Bytes of all segments: `seg_size * seg_count`.
    pub fn span_len(&self) -> usize {
        self.seg_size * self.seg_count as usize
    }
}

fn round_up(value: usize, to: usize) -> Option<usize> {
    value.checked_add(to - 1).map(|v| v / to * to)
}

fn too_large(param: &'static str, value: usize) -> Error {
    Error::invalid_param(
        param,
        value as u64,
        "the region would exceed the segment size or count limits",
    )
}

fn configure(p: &RegionParams) -> Result<RegionLayout> {
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
    let line = CACHE_LINE_SIZE;
    let mut objsize = p.obj_size;
    let mut objcnt = p.obj_count;

    if p.mode.contains(RegionMode::PSEUDO) {
        let align = p.align;
        if align == 0 || !align.is_power_of_two() || align % line != 0 {
            return Err(Error::invalid_param(
                "align",
                align as u64,
                "must be a power of two and a multiple of the cache line",
            ));
        }
        objsize = objsize.max(core::mem::size_of::<u64>());
        objsize = round_up(objsize, align).ok_or_else(|| too_large("obj_size", p.obj_size))?;
        let seg_count = u32::try_from(objcnt).map_err(|_| too_large("obj_count", objcnt))?;
        return Ok(RegionLayout {
            obj_size: objsize,
            obj_count: objcnt,
            seg_size: objsize,
            seg_count,
            objs_per_seg: 1,
            align,
        });
    }

    // Step 2: the segment limit.
    let mut seglim = if p.seg_size == 0 {
        DEFAULT_SEG_SIZE
    } else {
        round_up(p.seg_size, MIN_SEG_SIZE).ok_or_else(|| too_large("seg_size", p.seg_size))?
    };

    // Step 3: object size a multiple of the cache line dividing the segment,
    // unless it is already a small divisor of both.
    let small_divisor =
        objsize < line && objsize < seglim && line % objsize == 0 && seglim % objsize == 0;
    if !small_divisor {
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
    if !p.mode.contains(RegionMode::NOMAGAZINES) {
        objcnt = objcnt
            .checked_add(p.magazine_max_objs)
            .filter(|&c| c <= MAX_OBJ_COUNT)
            .ok_or_else(|| too_large("magazine_max_objs", p.magazine_max_objs))?;
    }

    // Step 6: shrink or stretch the limit against the total.
    let total = objsize
        .checked_mul(objcnt)
        .and_then(|t| round_up(t, MIN_SEG_SIZE))
        .ok_or_else(|| too_large("obj_count", p.obj_count))?;
    let mut segsize = total;
    if seglim > segsize {
        while seglim > segsize && seglim > MIN_SEG_SIZE {
            seglim = round_up(seglim - MIN_SEG_SIZE, MIN_SEG_SIZE).expect("no overflow shrinking");
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
    let segcnt;
    if p.mode.contains(RegionMode::MONOLITHIC) {
        segcnt = 1;
    } else {
        if objsize > MIN_SEG_SIZE && seglim % objsize != 0 {
            seglim += seglim - objsize;
            segsize =
                round_up(segsize, seglim).ok_or_else(|| too_large("obj_count", p.obj_count))?;
        }
        segcnt = (segsize / seglim).max(1);
        segsize /= segcnt;
    }
    if segsize > MAX_SEG_SIZE {
        return Err(too_large("obj_count", p.obj_count));
    }

    // Step 8: recount so that no space is wasted.
    let seg_count = u32::try_from(segcnt).map_err(|_| too_large("obj_count", p.obj_count))?;
    let objs_per_seg = segsize / objsize;
    let obj_count = objs_per_seg * segcnt;
    if obj_count > MAX_OBJ_COUNT {
        return Err(too_large("obj_count", p.obj_count));
    }
    Ok(RegionLayout {
        obj_size: objsize,
        obj_count,
        seg_size: segsize,
        seg_count,
        objs_per_seg: objs_per_seg as u32,
        align: line,
    })
}

//! Buffers with use counts, and the constructors of metadata and buflet
//! objects (the seed's `pp_metadata_ctor_*`, `pp_metadata_dtor`,
//! `pp_buflet_metadata_ctor_common`, `pp_buflet_metadata_dtor`).
//!
//! # Use counts
//!
//! Every buffer has a use count (the seed keeps it in the buffer's bufctl,
//! `bc_usecnt`); here it is an array indexed by the buffer's index in its
//! region. Attaching a fresh buffer sets it to 1, a clone of a buflet adds
//! 1, and [`Buffers::release`] takes 1 away and frees the buffer when it
//! reaches 0. A buflet whose buffer count is above 1 is never cached
//! constructed (it would be handed out again with a buffer that someone
//! else still uses): the pool frees it with `free_nocache`, so its
//! destructor runs and only drops its share.

use core::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};

use skmem_magazine::Cache;
use skmem_slab::SlabCache;
use skmem_traits::{AllocFlags, CpuLocal, Error, ObjectCtor, ObjectInfo, Result, SegmentSource};

use super::hooks::Hooked;
use super::meta::{self, Kbuf, Kmd, MetadataType, BUF_EXTERNAL, BUF_LARGE, IDX_NONE, NO_OWNER};

/// The slab layer of a buffer cache.
pub(crate) type BufSlab<S> = SlabCache<Hooked<S>>;
/// A buffer cache.
pub(crate) type BufCache<S, L> = Cache<BufSlab<S>, L>;

/// One buffer region's cache and use counts.
pub(crate) struct BufClass<S: SegmentSource, L: CpuLocal> {
    pub(crate) cache: BufCache<S, L>,
    pub(crate) uses: Box<[AtomicU32]>,
    pub(crate) size: u32,
}

/// The default and large buffer caches.
pub(crate) struct Buffers<S: SegmentSource, L: CpuLocal> {
    pub(crate) def: BufClass<S, L>,
    pub(crate) large: Option<BufClass<S, L>>,
}

impl<S: SegmentSource, L: CpuLocal> Buffers<S, L> {
    #[inline]
    pub(crate) fn class(&self, large: bool) -> &BufClass<S, L> {
        if large {
            self.large.as_ref().expect("large buffers are configured")
        } else {
            &self.def
        }
    }

    /// Allocates a raw buffer: its address and index (use count 1).
    pub(crate) fn alloc(
        &self,
        large: bool,
        flags: AllocFlags,
    ) -> Result<(NonNull<u8>, ObjectInfo)> {
        let c = self.class(large);
        let addr = c.cache.alloc_with(flags)?;
        let info = c
            .cache
            .layer()
            .object_info(addr.as_ptr())
            .expect("a buffer just allocated is known to its slab");
        c.uses[info.index_in_region as usize].store(1, Ordering::Release);
        Ok((addr, info))
    }

    /// Attaches a fresh buffer to `kb`.
    ///
    /// # Safety
    ///
    /// `kb` points at a buflet this thread owns, with no buffer.
    pub(crate) unsafe fn attach(
        &self,
        kb: *mut Kbuf,
        large: bool,
        flags: AllocFlags,
    ) -> Result<()> {
        let (addr, info) = self.alloc(large, flags)?;
        // SAFETY: the caller owns `kb`.
        unsafe {
            (*kb).addr = addr.as_ptr();
            (*kb).buf_idx = info.index_in_region;
            (*kb).cap = self.class(large).size;
            if large {
                (*kb).flags |= BUF_LARGE;
            } else {
                (*kb).flags &= !BUF_LARGE;
            }
        }
        Ok(())
    }

    /// The use count of the buffer `kb` holds.
    ///
    /// # Safety
    ///
    /// `kb` points at a live buflet with a buffer.
    #[inline]
    pub(crate) unsafe fn uses(&self, kb: *const Kbuf) -> u32 {
        // SAFETY: forwarded.
        let (large, idx) = unsafe { ((*kb).flags & BUF_LARGE != 0, (*kb).buf_idx) };
        self.class(large).uses[idx as usize].load(Ordering::Acquire)
    }

    /// Adds a user to the buffer `kb` holds.
    ///
    /// # Safety
    ///
    /// As [`uses`](Self::uses).
    pub(crate) unsafe fn share(&self, kb: *const Kbuf) {
        // SAFETY: forwarded.
        let (large, idx) = unsafe { ((*kb).flags & BUF_LARGE != 0, (*kb).buf_idx) };
        self.class(large).uses[idx as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// Drops `kb`'s share of its buffer (freeing the buffer when it was the
    /// last) and leaves `kb` without a buffer.
    ///
    /// # Safety
    ///
    /// `kb` points at a buflet this thread owns; its buffer (if any) is
    /// not used through `kb` afterwards.
    pub(crate) unsafe fn release(&self, kb: *mut Kbuf) {
        // SAFETY: forwarded.
        let (addr, large, idx) =
            unsafe { ((*kb).addr, (*kb).flags & BUF_LARGE != 0, (*kb).buf_idx) };
        let Some(addr) = NonNull::new(addr) else {
            return;
        };
        let c = self.class(large);
        if c.uses[idx as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: the last share: the buffer came from this cache and
            // nobody holds it any more.
            unsafe { c.cache.free(addr) };
        }
        // SAFETY: as above.
        unsafe {
            (*kb).addr = ptr::null_mut();
            (*kb).buf_idx = IDX_NONE;
            (*kb).cap = 0;
            (*kb).dlen = 0;
            (*kb).doff = 0;
        }
    }
}

/// Constructs kernel metadata objects.
pub(crate) struct MdCtor<S: SegmentSource, L: CpuLocal> {
    pub(crate) bufs: std::sync::Arc<Buffers<S, L>>,
    pub(crate) md_type: MetadataType,
    pub(crate) max_frags: u16,
    pub(crate) on_demand: bool,
    pub(crate) secret: u64,
    pub(crate) seg_size: usize,
}

/// The redzone value of the user object at region offset `roff`.
#[inline]
pub(crate) fn redzone(roff: u64, secret: u64) -> u64 {
    roff ^ secret
}

impl<S: SegmentSource, L: CpuLocal> ObjectCtor for MdCtor<S, L> {
    fn construct(
        &self,
        obj: ObjectInfo,
        shadow: Option<ObjectInfo>,
        flags: AllocFlags,
    ) -> Result<()> {
        let kmd = meta::as_kmd(obj.addr.as_ptr());
        let roff = obj.segment_index as u64 * self.seg_size as u64
            + obj.index_in_segment as u64 * obj.size as u64;
        let umd = shadow.map_or(ptr::null_mut(), |s| s.addr.as_ptr());
        // SAFETY: the ctor contract gives us `obj.size >= KMD_SIZE` bytes,
        // 64-aligned (the slab's alignment), exclusively.
        unsafe {
            kmd.write(Kmd {
                flags: 0,
                index: obj.index_in_region,
                bufs_cnt: 0,
                bufs_max: self.max_frags,
                owner: NO_OWNER,
                len: 0,
                umd_roff: roff,
                next_pkt: ptr::null_mut(),
                attached: ptr::null_mut(),
                umd,
                buf: Kbuf::EMPTY,
            });
        }
        if !umd.is_null() {
            // SAFETY: the shadow object is ours during construction and at
            // least `umd::SIZE` bytes (same size as the kernel object).
            unsafe {
                meta::wr64(umd, meta::umd::REDZONE, redzone(roff, self.secret));
                meta::wr32(umd, meta::umd::MD_INDEX, obj.index_in_region);
                meta::wr16(umd, meta::umd::MD_TYPE, self.md_type.tag() as u16);
                meta::wr16(umd, meta::umd::BUFS_CNT, 0);
                meta::wr32(umd, meta::umd::LEN, 0);
                meta::wr32(umd, meta::umd::BUF + meta::ubft::BFT_INDEX, IDX_NONE);
                meta::wr32(umd, meta::umd::BUF + meta::ubft::NEXT_INDEX, IDX_NONE);
            }
        }
        if !self.on_demand {
            // SAFETY: the native buflet is ours and has no buffer yet.
            unsafe {
                self.bufs
                    .attach(ptr::addr_of_mut!((*kmd).buf), false, flags)?;
                (*kmd).bufs_cnt = 1;
            }
        }
        Ok(())
    }

    fn destruct(&self, obj: ObjectInfo, _shadow: Option<ObjectInfo>) {
        let kmd = meta::as_kmd(obj.addr.as_ptr());
        // SAFETY: the object was constructed by `construct` and is ours
        // during destruction; the free paths unlinked external buflets
        // before the object went back (`fini`).
        unsafe {
            debug_assert!(
                (*kmd).buf.next.is_null(),
                "metadata destructed with buflets linked"
            );
            self.bufs.release(ptr::addr_of_mut!((*kmd).buf));
        }
    }
}

/// Constructs buflet objects with a buffer attached.
pub(crate) struct BftCtor<S: SegmentSource, L: CpuLocal> {
    pub(crate) bufs: std::sync::Arc<Buffers<S, L>>,
    pub(crate) large: bool,
}

impl<S: SegmentSource, L: CpuLocal> ObjectCtor for BftCtor<S, L> {
    fn construct(
        &self,
        obj: ObjectInfo,
        shadow: Option<ObjectInfo>,
        flags: AllocFlags,
    ) -> Result<()> {
        let kb = meta::as_kbuf(obj.addr.as_ptr());
        let ubft = shadow.map_or(ptr::null_mut(), |s| s.addr.as_ptr());
        // SAFETY: the ctor contract: `obj.size >= KBUF_SIZE` bytes, aligned,
        // ours during construction; likewise the shadow.
        unsafe {
            kb.write(Kbuf {
                bft_idx: obj.index_in_region,
                flags: BUF_EXTERNAL,
                ubft,
                ..Kbuf::EMPTY
            });
            if !ubft.is_null() {
                meta::wr32(ubft, meta::ubft::BFT_INDEX, obj.index_in_region);
                meta::wr32(ubft, meta::ubft::NEXT_INDEX, IDX_NONE);
            }
            self.bufs.attach(kb, self.large, flags)
        }
    }

    fn destruct(&self, obj: ObjectInfo, _shadow: Option<ObjectInfo>) {
        // SAFETY: constructed by `construct`; ours during destruction.
        unsafe { self.bufs.release(meta::as_kbuf(obj.addr.as_ptr())) }
    }
}

/// The error of an operation that needs buffers on demand.
#[cold]
pub(crate) fn needs_on_demand(what: &str) -> Error {
    Error::Invalid {
        field: "on_demand",
        reason: format!("{what} needs a pool with buffers on demand"),
    }
}

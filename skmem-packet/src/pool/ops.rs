//! The slow paths: on-demand allocation, per-packet free (`fini`),
//! buflets, raw buffers, attached packets, reap and purge.

use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use skmem_traits::{AllocFlags, CpuLocal, Error, ObjectInfo, Result, SegmentSource};

use super::ctor::needs_on_demand;
use super::meta::{
    self, Kbuf, Kmd, BUF_EXTERNAL, BUF_LARGE, IDX_NONE, MD_HAS_ATTACHED, MD_INTERNALIZED,
    MD_IS_ATTACHED, MD_TX_COMPL, NO_OWNER,
};
use super::{Bfts, Buflet, MetadataType, Packet, PacketPool};

/// A raw buffer from an on-demand pool (the seed's `pp_alloc_buffer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawBuffer {
    /// First byte of the buffer.
    pub addr: NonNull<u8>,
    /// Size of the buffer.
    pub size: usize,
    /// Index of the buffer in its region.
    pub index: u32,
    /// Segment that holds it.
    pub segment_index: u32,
    /// Index of the buffer in that segment.
    pub index_in_segment: u32,
}

// SAFETY: a description of a buffer; access through `addr` is the holder's
// (unsafe) business.
unsafe impl Send for RawBuffer {}
// SAFETY: as above.
unsafe impl Sync for RawBuffer {}

/// Buflets gathered by `fini`, by destination.
#[derive(Default)]
pub(crate) struct BufletLists {
    def: Vec<NonNull<u8>>,
    def_nocache: Vec<NonNull<u8>>,
    large: Vec<NonNull<u8>>,
    large_nocache: Vec<NonNull<u8>>,
}

impl<S: SegmentSource, L: CpuLocal> PacketPool<S, L> {
    pub(crate) fn bfts(&self) -> Result<&Bfts<S, L>> {
        self.inner
            .bft
            .as_ref()
            .ok_or_else(|| needs_on_demand("buflets"))
    }

    /// On-demand allocation (the seed's `pp_alloc_packet_common` with
    /// `bufcnt` buflets from the buflet cache).
    #[cold]
    #[inline(never)]
    pub(crate) fn alloc_batch_slow(
        &self,
        bufcnt: u16,
        out: &mut [MaybeUninit<Packet>],
        flags: AllocFlags,
    ) -> Result<usize> {
        if bufcnt > self.inner.max_frags || (!self.inner.on_demand && bufcnt != 1) {
            return Err(self.bad_bufcnt(bufcnt));
        }
        // SAFETY: `Packet` is `repr(transparent)` over `NonNull<u8>`.
        let raw =
            unsafe { &mut *(out as *mut [MaybeUninit<Packet>] as *mut [MaybeUninit<NonNull<u8>>]) };
        let n = self.inner.md.alloc_batch(raw, flags);
        if n == 0 {
            return Err(self.exhausted());
        }
        let t = self.inner.md_type;
        let per = bufcnt as usize;
        let (ok, blist, got) = if per == 0 {
            (n, Vec::new(), 0)
        } else {
            let bft = self.bfts()?;
            let mut blist = vec![MaybeUninit::<NonNull<u8>>::uninit(); n * per];
            let got = bft.def.alloc_batch(&mut blist, flags);
            ((got / per).min(n), blist, got)
        };
        for i in 0..ok {
            // SAFETY: initialised by the metadata cache.
            let kmd = meta::as_kmd(unsafe { raw[i].assume_init() }.as_ptr());
            // SAFETY: the packet and its buflets are fresh from their
            // caches, constructed and ours.
            unsafe {
                let mut prev: *mut Kbuf = ptr::addr_of_mut!((*kmd).buf);
                for b in &blist[i * per..(i + 1) * per] {
                    let kb = meta::as_kbuf(b.assume_init().as_ptr());
                    (*kb).doff = 0;
                    (*kb).dlen = 0;
                    (*kb).next = ptr::null_mut();
                    (*kb).next_idx = IDX_NONE;
                    (*prev).next = kb;
                    (*prev).next_idx = (*kb).bft_idx;
                    prev = kb;
                }
                (*kmd).bufs_cnt = bufcnt + u16::from(!(*kmd).buf.addr.is_null());
                (*kmd).flags = MD_INTERNALIZED;
                (*kmd).len = 0;
                (*kmd).buf.doff = 0;
                (*kmd).buf.dlen = 0;
            }
            // SAFETY: same layout; store the tagged handle.
            unsafe {
                raw[i]
                    .as_mut_ptr()
                    .cast::<Packet>()
                    .write(Packet::from_kmd(kmd, t))
            };
        }
        if ok < n || ok * per < got {
            // Not enough buflets for every packet: give back the rest.
            // SAFETY: entries `ok*per..got` were initialised by the buflet
            // cache and are unused; entries `ok..n` by the metadata cache.
            unsafe {
                let spare_b = meta::assume_init_slice(&blist[ok * per..got]);
                if !spare_b.is_empty() {
                    let bft = self.bfts()?;
                    bft.def.free_batch(spare_b);
                }
                let spare_m = meta::assume_init_slice(&raw[ok..n]);
                if !spare_m.is_empty() {
                    self.inner.md.free_batch(spare_m);
                }
            }
        }
        if ok == 0 {
            return Err(Error::Exhausted {
                name: format!("kbft_def.{}", self.inner.name),
                capacity: self.buflet_capacity() as u64,
                unit: "buflets",
            });
        }
        Ok(ok)
    }

    /// Puts one buflet on the list its buffer's sharing calls for.
    ///
    /// # Safety
    ///
    /// `kb` is an allocated external buflet being freed by the caller.
    unsafe fn classify(&self, kb: *mut Kbuf, lists: &mut BufletLists) {
        // SAFETY: forwarded.
        unsafe {
            (*kb).next = ptr::null_mut();
            (*kb).next_idx = IDX_NONE;
            (*kb).owner = NO_OWNER;
            let shared = self.inner.bufs.uses(kb) > 1;
            let large = (*kb).flags & BUF_LARGE != 0;
            let p = NonNull::new_unchecked(kb.cast::<u8>());
            match (large, shared) {
                (false, false) => lists.def.push(p),
                (false, true) => lists.def_nocache.push(p),
                (true, false) => lists.large.push(p),
                (true, true) => lists.large_nocache.push(p),
            }
        }
    }

    /// Frees gathered buflets (the seed's `pp_free_kbft_list`).
    ///
    /// # Safety
    ///
    /// Every listed buflet is allocated from this pool's buflet caches and
    /// not used again.
    unsafe fn free_lists(&self, lists: &BufletLists) {
        let Some(bft) = self.inner.bft.as_ref() else {
            return;
        };
        // SAFETY: forwarded; each list holds objects of the cache it is
        // freed to (large flag), in constructed state.
        unsafe {
            if !lists.def.is_empty() {
                bft.def.free_batch(&lists.def);
            }
            for &p in &lists.def_nocache {
                bft.def.free_nocache(p);
            }
            if let Some(l) = &bft.large {
                if !lists.large.is_empty() {
                    l.free_batch(&lists.large);
                }
                for &p in &lists.large_nocache {
                    l.free_nocache(p);
                }
            }
        }
    }

    /// Readies one packet for its cache (the seed's `pp_metadata_fini`):
    /// completion callbacks, attached packet, external buflets. The first
    /// panic of a callback is caught into `panicked`; the packet is readied
    /// all the same.
    ///
    /// # Safety
    ///
    /// `kmd` is an allocated packet of this pool being freed by the caller.
    unsafe fn fini(
        &self,
        kmd: *mut Kmd,
        lists: &mut BufletLists,
        attached: &mut Vec<Packet>,
        panicked: &mut Option<Box<dyn Any + Send>>,
    ) {
        let t = self.inner.md_type;
        // SAFETY: forwarded: `kmd` is ours until it goes back.
        unsafe {
            let f = (*kmd).flags;
            if f & MD_IS_ATTACHED != 0 {
                panic!(
                    "packet pool `{}`: free of packet {:p}, which is attached to another packet",
                    self.inner.name, kmd
                );
            }
            if f & MD_TX_COMPL != 0 {
                let cbs = self.inner.tx_compl.read().clone();
                for cb in cbs {
                    // A panicking callback must not lose this packet or
                    // the rest of the batch: keep the first panic, finish
                    // freeing, and let the caller resume it.
                    let pkt = Packet::from_kmd(kmd, t);
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cb(pkt))) {
                        panicked.get_or_insert(payload);
                    }
                }
            }
            if f & MD_HAS_ATTACHED != 0 {
                let a = (*kmd).attached;
                (*kmd).attached = ptr::null_mut();
                (*a).flags &= !MD_IS_ATTACHED;
                attached.push(Packet::from_kmd(a, t));
            }
            (*kmd).next_pkt = ptr::null_mut();
            let mut cur = (*kmd).buf.next;
            (*kmd).buf.next = ptr::null_mut();
            (*kmd).buf.next_idx = IDX_NONE;
            while !cur.is_null() {
                let next = (*cur).next;
                self.classify(cur, lists);
                cur = next;
            }
            (*kmd).bufs_cnt = u16::from(!(*kmd).buf.addr.is_null());
            (*kmd).owner = NO_OWNER;
            (*kmd).flags = 0;
        }
    }

    /// The per-packet free path.
    ///
    /// # Safety
    ///
    /// As [`free_batch`](Self::free_batch).
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn free_slow(&self, pkts: &[Packet]) {
        let mut lists = BufletLists::default();
        let mut attached = Vec::new();
        let mut mds = Vec::with_capacity(pkts.len());
        let mut panicked = None;
        for p in pkts {
            // SAFETY: forwarded.
            unsafe { self.fini(p.kmd(), &mut lists, &mut attached, &mut panicked) };
            mds.push(p.kmd_nn());
        }
        // SAFETY: every object was allocated from these caches and is back
        // in constructed state (no chain, native buffer unshared: native
        // buffers are never cloned).
        unsafe {
            self.inner.md.free_batch(&mds);
            self.free_lists(&lists);
        }
        if !attached.is_empty() {
            // SAFETY: attached packets were allocated, owned by the packets
            // just freed, and are now detached (their parents were checked
            // by the public free path; an attachment is never handed to a
            // user on its own).
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| unsafe {
                self.free_batch_checked(&attached)
            })) {
                panicked.get_or_insert(payload);
            }
        }
        if let Some(payload) = panicked {
            resume_unwind(payload);
        }
    }

    /// Attaches `child` to `p`: freeing `p` frees `child` too (one level;
    /// the seed's `PKT_F_PKT_DATA`).
    ///
    /// # Safety
    ///
    /// Both packets are allocated from this pool and owned by the caller;
    /// after the call the caller gives up `child`.
    pub unsafe fn attach_packet(&self, p: Packet, child: Packet) -> Result<()> {
        if self.inner.md_type != MetadataType::Packet {
            return Err(Error::Invalid {
                field: "md_type",
                reason: "only packets carry an attached packet".into(),
            });
        }
        if p == child {
            return Err(Error::Invalid {
                field: "attached",
                reason: "a packet cannot be attached to itself".into(),
            });
        }
        let (k, c) = (p.kmd(), child.kmd());
        // SAFETY: the caller's contract.
        unsafe {
            if (*k).flags & (MD_HAS_ATTACHED | MD_IS_ATTACHED) != 0 {
                return Err(Error::Busy {
                    name: self.inner.name.clone(),
                    reason: "the packet already has or is an attachment",
                });
            }
            if (*c).flags & (MD_HAS_ATTACHED | MD_IS_ATTACHED) != 0 {
                return Err(Error::Busy {
                    name: self.inner.name.clone(),
                    reason: "the attachment already has or is an attachment",
                });
            }
            (*k).attached = c;
            (*k).flags |= MD_HAS_ATTACHED;
            (*c).flags |= MD_IS_ATTACHED;
        }
        Ok(())
    }

    /// The packet attached to `p`, if any.
    ///
    /// # Safety
    ///
    /// See [`Packet`]'s accessor contract.
    pub unsafe fn attached(&self, p: Packet) -> Option<Packet> {
        // SAFETY: forwarded.
        let a = unsafe { (*p.kmd()).attached };
        (!a.is_null()).then(|| Packet::from_kmd(a, self.inner.md_type))
    }

    // ------------------------------------------------------------------
    // Buflets
    // ------------------------------------------------------------------

    fn check_large(&self, bft: &Bfts<S, L>, large: bool) -> Result<()> {
        if large && bft.large.is_none() {
            return Err(Error::Invalid {
                field: "large",
                reason: "the pool has no large buffers".into(),
            });
        }
        Ok(())
    }

    /// Allocates a buflet with a default or large buffer (the seed's
    /// `pp_alloc_buflet`). On-demand pools only.
    pub fn alloc_buflet(&self, large: bool, flags: AllocFlags) -> Result<Buflet> {
        let mut v = Vec::with_capacity(1);
        self.alloc_buflet_batch(large, 1, &mut v, flags)?;
        Ok(v[0])
    }

    /// Allocates up to `n` buflets onto `out`; partial and empty results as
    /// [`alloc_batch`](Self::alloc_batch).
    pub fn alloc_buflet_batch(
        &self,
        large: bool,
        n: usize,
        out: &mut Vec<Buflet>,
        flags: AllocFlags,
    ) -> Result<usize> {
        self.check_open()?;
        let bft = self.bfts()?;
        self.check_large(bft, large)?;
        if n == 0 {
            return Ok(0);
        }
        let mut raw = vec![MaybeUninit::<NonNull<u8>>::uninit(); n];
        let got = bft.cache(large).alloc_batch(&mut raw, flags);
        if got == 0 {
            return Err(Error::Exhausted {
                name: format!("kbft.{}", self.inner.name),
                capacity: bft.capacity as u64,
                unit: "buflets",
            });
        }
        out.reserve(got);
        for r in &raw[..got] {
            // SAFETY: initialised by the cache; a fresh buflet is ours.
            let kb = unsafe { r.assume_init() }.cast::<Kbuf>();
            // SAFETY: as above.
            unsafe {
                (*kb.as_ptr()).doff = 0;
                (*kb.as_ptr()).dlen = 0;
                (*kb.as_ptr()).next = ptr::null_mut();
                (*kb.as_ptr()).next_idx = IDX_NONE;
            }
            out.push(Buflet(kb));
        }
        Ok(got)
    }

    /// Frees a buflet that is not linked into a packet (the seed's
    /// `pp_free_buflet`). A buflet whose buffer is shared is freed without
    /// caching.
    ///
    /// # Safety
    ///
    /// `b` is an external buflet allocated from this pool, not in a packet,
    /// not held by a user, not freed yet, and not used afterwards.
    pub unsafe fn free_buflet(&self, b: Buflet) {
        // SAFETY: forwarded.
        unsafe { self.free_buflet_batch(&[b]) }
    }

    /// Frees buflets.
    ///
    /// # Safety
    ///
    /// As [`free_buflet`](Self::free_buflet) for each; no repeats.
    pub unsafe fn free_buflet_batch(&self, bs: &[Buflet]) {
        let mut lists = BufletLists::default();
        for b in bs {
            // SAFETY: forwarded.
            if unsafe { (*b.ptr()).flags } & BUF_EXTERNAL == 0 {
                panic!(
                    "packet pool `{}`: free of {:?}, the native buflet of a packet",
                    self.inner.name, b
                );
            }
            // SAFETY: forwarded.
            unsafe { self.classify(b.ptr(), &mut lists) };
        }
        // SAFETY: forwarded.
        unsafe { self.free_lists(&lists) };
    }

    /// A new buflet sharing `src`'s buffer and data window (a clone). The
    /// buffer's use count goes up; whichever of the two is freed while the
    /// other still holds the buffer is freed without caching, so the buffer
    /// is never handed out again while in use.
    ///
    /// # Safety
    ///
    /// `src` is an allocated external buflet of this pool (standalone or in
    /// a packet the caller owns).
    pub unsafe fn clone_buflet(&self, src: Buflet, flags: AllocFlags) -> Result<Buflet> {
        let s = src.ptr();
        // SAFETY: forwarded.
        let (sflags, saddr) = unsafe { ((*s).flags, (*s).addr) };
        if sflags & BUF_EXTERNAL == 0 || saddr.is_null() {
            return Err(Error::Invalid {
                field: "buflet",
                reason: "only external buflets with a buffer can be cloned".into(),
            });
        }
        let large = sflags & BUF_LARGE != 0;
        let b = self.alloc_buflet(large, flags)?;
        let kb = b.ptr();
        // SAFETY: `b` is fresh and ours; `src` is allocated (contract).
        unsafe {
            self.inner.bufs.release(kb);
            self.inner.bufs.share(s);
            (*kb).addr = (*s).addr;
            (*kb).buf_idx = (*s).buf_idx;
            (*kb).cap = (*s).cap;
            (*kb).doff = (*s).doff;
            (*kb).dlen = (*s).dlen;
        }
        Ok(b)
    }

    /// Appends a standalone buflet to a packet's chain.
    ///
    /// # Safety
    ///
    /// `p` and `b` are allocated from this pool and owned by the caller, `b`
    /// is in no packet; the packet owns `b` afterwards.
    pub unsafe fn packet_add_buflet(&self, p: Packet, b: Buflet) -> Result<()> {
        if !self.inner.on_demand {
            return Err(needs_on_demand("adding buflets"));
        }
        let k = p.kmd();
        let kb = b.ptr();
        // SAFETY: the caller's contract.
        unsafe {
            if (*kb).flags & BUF_EXTERNAL == 0 {
                return Err(Error::Invalid {
                    field: "buflet",
                    reason: "the native buflet of a packet".into(),
                });
            }
            if (*k).bufs_cnt >= self.inner.max_frags {
                return Err(Error::OutOfRange {
                    field: "bufs_cnt",
                    value: (*k).bufs_cnt as u64 + 1,
                    limit: self.inner.max_frags as u64 + 1,
                });
            }
            let mut tail: *mut Kbuf = ptr::addr_of_mut!((*k).buf);
            while !(*tail).next.is_null() {
                tail = (*tail).next;
            }
            (*kb).next = ptr::null_mut();
            (*kb).next_idx = IDX_NONE;
            (*tail).next = kb;
            (*tail).next_idx = (*kb).bft_idx;
            (*k).bufs_cnt += 1;
        }
        Ok(())
    }

    /// Use count of the buffer a buflet holds.
    ///
    /// # Safety
    ///
    /// See [`Packet`]'s accessor contract; the buflet has a buffer.
    pub unsafe fn buffer_use_count(&self, b: Buflet) -> u32 {
        // SAFETY: forwarded.
        unsafe { self.inner.bufs.uses(b.ptr()) }
    }

    // ------------------------------------------------------------------
    // Raw buffers
    // ------------------------------------------------------------------

    /// Allocates a raw default buffer (on-demand pools; the seed's
    /// `pp_alloc_buffer`).
    pub fn alloc_buffer(&self, flags: AllocFlags) -> Result<RawBuffer> {
        self.check_open()?;
        if !self.inner.on_demand {
            return Err(needs_on_demand("raw buffers"));
        }
        let (addr, info): (NonNull<u8>, ObjectInfo) = self.inner.bufs.alloc(false, flags)?;
        Ok(RawBuffer {
            addr,
            size: self.inner.bufs.def.size as usize,
            index: info.index_in_region,
            segment_index: info.segment_index,
            index_in_segment: info.index_in_segment,
        })
    }

    /// Frees a raw buffer.
    ///
    /// # Safety
    ///
    /// `buf` came from [`alloc_buffer`](Self::alloc_buffer) on this pool,
    /// is not freed yet and not used afterwards.
    pub unsafe fn free_buffer(&self, buf: RawBuffer) {
        let c = &self.inner.bufs.def;
        c.uses[buf.index as usize].store(0, std::sync::atomic::Ordering::Release);
        // SAFETY: forwarded.
        unsafe { c.cache.free(buf.addr) };
    }

    // ------------------------------------------------------------------
    // Maintenance
    // ------------------------------------------------------------------

    /// Gives cached objects outside the working set back (the seed's
    /// `pp_reap_caches`), then empty slabs back to the regions.
    pub fn reap(&self) {
        self.reap_all(false);
    }

    /// Gives every cached object back to the slab layer and every empty
    /// slab back to its region.
    pub fn purge(&self) {
        self.reap_all(true);
    }

    fn reap_all(&self, purge: bool) {
        let i = &self.inner;
        {
            i.md.reap_now(purge);
            i.md.layer().reap()
        };
        if let Some(b) = &i.bft {
            {
                b.def.reap_now(purge);
                b.def.layer().reap()
            };
            if let Some(l) = &b.large {
                {
                    l.reap_now(purge);
                    l.layer().reap()
                };
            }
        }
        i.bufs.def.cache.reap_now(purge);
        i.bufs.def.cache.layer().reap();
        if let Some(l) = &i.bufs.large {
            l.cache.reap_now(purge);
            l.cache.layer().reap();
        }
    }
}

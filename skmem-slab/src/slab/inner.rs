//! The non-generic bookkeeping of a slab cache: slabs, bufctls, the three
//! slab lists and the allocated-address lookup.
//!
//! Nothing here calls the region or a constructor: the generic shell in
//! [`super`] does that with the lock dropped, and comes back here (under the
//! lock) to move objects and slabs between states. Keeping this part free of
//! type parameters means it is compiled once, whatever the backend, mirror or
//! constructor types of the caches that use it.

use std::ptr::NonNull;

use hashbrown::HashMap;
use skmem_traits::ObjectInfo;

use crate::region::Segment;

/// End of a free list, or "no slab" in a slot link.
pub(super) const NIL: u32 = u32::MAX;
/// Bufctl value of an object handed out by the cache.
const ALLOCATED: u32 = u32::MAX - 1;
/// Bufctl value of an object whose free has begun (destructor or clearing
/// running with the lock dropped) and not yet finished.
const FREEING: u32 = u32::MAX - 2;
/// The largest number of objects one slab can hold: every object index must
/// differ from the three markers above.
pub(super) const MAX_OBJS_PER_SLAB: u32 = FREEING - 1;

/// Which list a slab is on, decided by how many of its objects are out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// No object allocated.
    Empty = 0,
    /// Some allocated, some free.
    Partial = 1,
    /// Every object allocated.
    Full = 2,
}

/// One slab: a segment carved into `objs` equally sized chunks, with one
/// bufctl per chunk kept here, outside the segment.
#[derive(Debug)]
pub(super) struct Slab {
    seg: Segment,
    /// One entry per object. For a free object: the index of the next free
    /// object, or [`NIL`]. Otherwise [`ALLOCATED`] or [`FREEING`].
    bufctl: Box<[u32]>,
    /// First free object, or [`NIL`] when the slab is full.
    free_head: u32,
    /// Objects not on the free list (allocated or being freed).
    in_use: u32,
    kind: Kind,
    prev: u32,
    next: u32,
}

impl Slab {
    /// A slab over `seg` with every object free, in address order. Built
    /// with the cache lock dropped (it allocates the bufctl array).
    pub(super) fn new(seg: Segment, objs: u32) -> Self {
        debug_assert!((1..=MAX_OBJS_PER_SLAB).contains(&objs));
        let bufctl: Box<[u32]> = (1..=objs)
            .map(|i| if i == objs { NIL } else { i })
            .collect();
        Slab {
            seg,
            bufctl,
            free_head: 0,
            in_use: 0,
            kind: Kind::Empty,
            prev: NIL,
            next: NIL,
        }
    }

    #[inline]
    fn wanted_kind(&self) -> Kind {
        if self.in_use == 0 {
            Kind::Empty
        } else if self.free_head == NIL {
            Kind::Full
        } else {
            Kind::Partial
        }
    }
}

/// An object located in a slab: what the shell needs to construct,
/// destruct, clear and report it without taking the lock again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Obj {
    /// First byte of the object (derived from the segment base, so it
    /// carries the segment's provenance).
    pub(super) addr: NonNull<u8>,
    /// The segment (slab) holding it.
    pub(super) seg: Segment,
    /// Slot of the slab in the cache's slab table.
    slot: u32,
    /// Index of the object in its slab.
    pub(super) idx: u32,
}

/// Why an address could not be freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// The address is in no slab of this cache.
    Foreign,
    /// The address is inside a slab of this cache but not at the start of
    /// an object.
    Interior,
    /// The address is an object of this cache that is not allocated (it is
    /// free, or its free is in progress): a double free.
    NotAllocated,
    /// Hash lookup (no arithmetic available): the address is not an
    /// allocated object of this cache, which is either of the above.
    NotAllocatedOrForeign,
}

impl Fault {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Fault::Foreign => "is not inside any slab of this cache (foreign pointer)",
            Fault::Interior => "points inside a slab of this cache but not at an object",
            Fault::NotAllocated => "is an object of this cache that is not allocated (double free)",
            Fault::NotAllocatedOrForeign => {
                "is not an allocated object of this cache (double free or foreign pointer)"
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ListHead {
    head: u32,
    tail: u32,
    len: u64,
}

impl ListHead {
    const EMPTY: ListHead = ListHead {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// How an allocated address finds its bufctl.
#[derive(Debug)]
enum Lookup {
    /// Contiguous span: segment index by arithmetic, slab slot by table.
    Arithmetic {
        span: usize,
        seg_size: Divisor,
        /// Segment index → slot of the slab over it, or [`NIL`].
        by_segment: Box<[u32]>,
    },
    /// Anything else: allocated address → (slot, object index).
    Hash(HashMap<usize, (u32, u32)>),
}

/// A divisor fixed for the cache's life, with a shift when it is a power
/// of two (chunk sizes usually are; segment sizes sometimes), so that the
/// free path's address arithmetic needs no division instruction then.
#[derive(Debug, Clone, Copy)]
struct Divisor {
    d: usize,
    /// `log2(d)` when `d` is a power of two, else `u32::MAX`.
    shift: u32,
}

impl Divisor {
    fn new(d: usize) -> Self {
        assert!(d > 0, "zero divisor");
        let shift = if d.is_power_of_two() {
            d.trailing_zeros()
        } else {
            u32::MAX
        };
        Divisor { d, shift }
    }

    /// `(x / d, x % d)`.
    #[inline(always)]
    fn div_rem(self, x: usize) -> (usize, usize) {
        if self.shift != u32::MAX {
            (x >> self.shift, x & (self.d - 1))
        } else {
            (x / self.d, x % self.d)
        }
    }
}

/// Monotonic counters (the `sl_*` fields of the stats).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    pub(super) create: u64,
    pub(super) destroy: u64,
    pub(super) alloc: u64,
    pub(super) free: u64,
    pub(super) alloc_fail: u64,
}

/// Everything behind the cache lock.
#[derive(Debug)]
pub(super) struct State {
    /// Slab table; `None` slots are listed in `vacant`.
    slots: Vec<Option<Slab>>,
    vacant: Vec<u32>,
    /// Indexed by [`Kind`].
    lists: [ListHead; 3],
    lookup: Lookup,
    /// Objects allocated or being freed, over all slabs.
    in_use: u64,
    pub(super) counters: Counters,
    /// Threads waiting (with [`AllocFlags::Sleep`](skmem_traits::AllocFlags))
    /// for an object to be freed to this cache.
    pub(super) waiters: u32,
    chunk: usize,
    /// `chunk` as a [`Divisor`], for address → index arithmetic.
    chunk_div: Divisor,
    objs: u32,
}

/// Geometry the core needs; fixed for the cache's life.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    /// Distance between objects (the region's object size).
    pub(super) chunk: usize,
    /// Objects per slab.
    pub(super) objs: u32,
    /// Segment size.
    pub(super) seg_size: usize,
    /// Segments in the region.
    pub(super) seg_count: u32,
    /// Base of the region's contiguous span, if it has one.
    pub(super) span: Option<NonNull<u8>>,
}

impl State {
    pub(super) fn new(geo: Geometry) -> Self {
        let lookup = match geo.span {
            Some(span) => Lookup::Arithmetic {
                span: span.as_ptr() as usize,
                seg_size: Divisor::new(geo.seg_size),
                by_segment: vec![NIL; geo.seg_count as usize].into_boxed_slice(),
            },
            None => Lookup::Hash(HashMap::new()),
        };
        State {
            slots: Vec::new(),
            vacant: Vec::new(),
            lists: [ListHead::EMPTY; 3],
            lookup,
            in_use: 0,
            counters: Counters::default(),
            waiters: 0,
            chunk: geo.chunk,
            chunk_div: Divisor::new(geo.chunk),
            objs: geo.objs,
        }
    }

    // ---- slab table and lists ----

    #[inline]
    fn slab(&self, slot: u32) -> &Slab {
        self.slots[slot as usize]
            .as_ref()
            .expect("slab slot referenced but vacant")
    }

    #[inline]
    fn slab_mut(&mut self, slot: u32) -> &mut Slab {
        self.slots[slot as usize]
            .as_mut()
            .expect("slab slot referenced but vacant")
    }

    fn unlink(&mut self, slot: u32) {
        let (kind, prev, next) = {
            let s = self.slab(slot);
            (s.kind, s.prev, s.next)
        };
        if prev == NIL {
            self.lists[kind as usize].head = next;
        } else {
            self.slab_mut(prev).next = next;
        }
        if next == NIL {
            self.lists[kind as usize].tail = prev;
        } else {
            self.slab_mut(next).prev = prev;
        }
        self.lists[kind as usize].len -= 1;
        let s = self.slab_mut(slot);
        s.prev = NIL;
        s.next = NIL;
    }

    fn push_front(&mut self, slot: u32, kind: Kind) {
        let old = self.lists[kind as usize].head;
        {
            let s = self.slab_mut(slot);
            s.kind = kind;
            s.prev = NIL;
            s.next = old;
        }
        if old == NIL {
            self.lists[kind as usize].tail = slot;
        } else {
            self.slab_mut(old).prev = slot;
        }
        let list = &mut self.lists[kind as usize];
        list.head = slot;
        list.len += 1;
    }

    /// Moves slab `slot` from its list to the front of `want`'s; the
    /// common case of a slab alone on its list moving to an empty list
    /// (one slab flipping between empty and partial) touches no neighbour.
    #[inline]
    fn move_to(&mut self, slot: u32, want: Kind) {
        let (have, prev, next) = {
            let s = self.slab(slot);
            (s.kind, s.prev, s.next)
        };
        if prev == NIL && next == NIL && self.lists[want as usize].head == NIL {
            debug_assert_eq!(self.lists[have as usize].head, slot);
            let from = &mut self.lists[have as usize];
            from.head = NIL;
            from.tail = NIL;
            from.len -= 1;
            let to = &mut self.lists[want as usize];
            to.head = slot;
            to.tail = slot;
            to.len += 1;
            self.slab_mut(slot).kind = want;
        } else {
            self.unlink(slot);
            self.push_front(slot, want);
        }
    }

    /// Adds a fresh slab (every object free) to the empty list and the
    /// lookup; returns its slot.
    pub(super) fn insert_slab(&mut self, slab: Slab) -> u32 {
        debug_assert_eq!(slab.in_use, 0);
        let seg_index = slab.seg.index;
        let slot = match self.vacant.pop() {
            Some(slot) => {
                debug_assert!(self.slots[slot as usize].is_none());
                self.slots[slot as usize] = Some(slab);
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("more slabs than segments");
                self.slots.push(Some(slab));
                slot
            }
        };
        if let Lookup::Arithmetic { by_segment, .. } = &mut self.lookup {
            let entry = &mut by_segment[seg_index as usize];
            assert_eq!(
                *entry, NIL,
                "segment {seg_index} handed to this cache twice by its region"
            );
            *entry = slot;
        }
        self.push_front(slot, Kind::Empty);
        self.counters.create += 1;
        slot
    }

    /// Takes an empty slab out of every table; returns its segment, which
    /// the caller gives back to the region.
    fn remove_slab(&mut self, slot: u32) -> Segment {
        debug_assert_eq!(self.slab(slot).in_use, 0);
        self.unlink(slot);
        let slab = self.slots[slot as usize].take().expect("slot is live");
        self.vacant.push(slot);
        if let Lookup::Arithmetic { by_segment, .. } = &mut self.lookup {
            by_segment[slab.seg.index as usize] = NIL;
        }
        self.counters.destroy += 1;
        slab.seg
    }

    // ---- objects ----

    #[inline]
    fn obj(&self, slot: u32, idx: u32) -> Obj {
        let seg = self.slab(slot).seg;
        debug_assert!(idx < self.objs);
        // SAFETY:
        // * `idx < objs` and `objs * chunk <= seg_size` (the region's
        //   layout), so the offset stays inside the segment;
        // * the segment is live: its slab is in the table.
        let addr = unsafe { seg.base.add(idx as usize * self.chunk) };
        Obj {
            addr,
            seg,
            slot,
            idx,
        }
    }

    /// Allocates one object from slab `slot`, which must have a free one.
    #[inline]
    fn take_from(&mut self, slot: u32) -> Obj {
        let chunk = self.chunk;
        let (idx, seg, have, want) = {
            let slab = self.slab_mut(slot);
            let idx = slab.free_head;
            assert!(idx != NIL, "take from a full slab");
            let b = &mut slab.bufctl[idx as usize];
            slab.free_head = *b;
            *b = ALLOCATED;
            slab.in_use += 1;
            (idx, slab.seg, slab.kind, slab.wanted_kind())
        };
        if have != want {
            self.move_to(slot, want);
        }
        debug_assert!(idx < self.objs);
        // SAFETY: `idx < objs` (a free-list entry) and `objs * chunk <=
        // seg_size` (the region's layout), so the offset stays inside the
        // segment, which is live: its slab is in the table.
        let addr = unsafe { seg.base.add(idx as usize * chunk) };
        let obj = Obj {
            addr,
            seg,
            slot,
            idx,
        };
        if let Lookup::Hash(map) = &mut self.lookup {
            let old = map.insert(obj.addr.as_ptr() as usize, (slot, idx));
            debug_assert!(old.is_none(), "a free object was in the allocated hash");
        }
        self.in_use += 1;
        self.counters.alloc += 1;
        obj
    }

    /// Allocates one object from an existing slab: the first partial slab,
    /// else the cached empty one.
    #[inline]
    pub(super) fn take(&mut self) -> Option<Obj> {
        let slot = match self.lists[Kind::Partial as usize].head {
            NIL => self.lists[Kind::Empty as usize].head,
            slot => slot,
        };
        (slot != NIL).then(|| self.take_from(slot))
    }

    /// Fills `out` from existing slabs as far as they go; returns the count.
    pub(super) fn take_into(&mut self, out: &mut [Option<Obj>]) -> usize {
        let mut n = 0;
        while n < out.len() {
            match self.take() {
                Some(obj) => out[n] = Some(obj),
                None => break,
            }
            n += 1;
        }
        n
    }

    /// Inserts a fresh slab and fills `out` from it (and from nothing else),
    /// returning the number taken (at least one).
    pub(super) fn insert_and_take(&mut self, slab: Slab, out: &mut [Option<Obj>]) -> usize {
        let slot = self.insert_slab(slab);
        let mut n = 0;
        while n < out.len() && self.slab(slot).free_head != NIL {
            out[n] = Some(self.take_from(slot));
            n += 1;
        }
        n
    }

    /// Finds the slab and index of an allocated object.
    #[inline]
    fn locate(&self, addr: *const u8) -> Result<(u32, u32), Fault> {
        match &self.lookup {
            Lookup::Hash(map) => map
                .get(&(addr as usize))
                .copied()
                .ok_or(Fault::NotAllocatedOrForeign),
            Lookup::Arithmetic {
                span,
                seg_size,
                by_segment,
            } => {
                let offset = (addr as usize).checked_sub(*span).ok_or(Fault::Foreign)?;
                let (seg, in_seg) = seg_size.div_rem(offset);
                let slot = *by_segment.get(seg).ok_or(Fault::Foreign)?;
                if slot == NIL {
                    return Err(Fault::Foreign);
                }
                let (idx, rem) = self.chunk_div.div_rem(in_seg);
                if rem != 0 || idx >= self.objs as usize {
                    return Err(Fault::Interior);
                }
                let idx = idx as u32;
                match self.slab(slot).bufctl[idx as usize] {
                    ALLOCATED => Ok((slot, idx)),
                    _ => Err(Fault::NotAllocated),
                }
            }
        }
    }

    /// The allocated object at `addr`, if there is one.
    pub(super) fn lookup(&self, addr: *const u8) -> Option<Obj> {
        let (slot, idx) = self.locate(addr).ok()?;
        Some(self.obj(slot, idx))
    }

    /// First half of a free: checks that `addr` is an allocated object and
    /// marks it as being freed, so a second free of it fails from now on.
    #[inline]
    pub(super) fn begin_free(&mut self, addr: *const u8) -> Result<Obj, Fault> {
        let (slot, idx) = self.locate(addr)?;
        let chunk = self.chunk;
        let seg = {
            let slab = self.slab_mut(slot);
            let b = &mut slab.bufctl[idx as usize];
            debug_assert_eq!(*b, ALLOCATED);
            *b = FREEING;
            slab.seg
        };
        if let Lookup::Hash(map) = &mut self.lookup {
            map.remove(&(addr as usize));
        }
        debug_assert!(idx < self.objs);
        // SAFETY: as in `obj`: `idx < objs` (checked by `locate`), so the
        // offset stays inside the live segment.
        let addr = unsafe { seg.base.add(idx as usize * chunk) };
        Ok(Obj {
            addr,
            seg,
            slot,
            idx,
        })
    }

    /// Both halves of a free at once (nothing to run between them): checks
    /// and frees `addr` as [`begin_free`](Self::begin_free) then
    /// [`finish_free`](Self::finish_free) would, touching the slab once.
    #[inline]
    pub(super) fn free_now(
        &mut self,
        addr: *const u8,
        keep_empty: u64,
    ) -> Result<Option<Segment>, Fault> {
        let (slot, idx) = self.locate(addr)?;
        if let Lookup::Hash(map) = &mut self.lookup {
            map.remove(&(addr as usize));
        }
        let (have, want) = {
            let slab = self.slab_mut(slot);
            debug_assert_eq!(slab.bufctl[idx as usize], ALLOCATED);
            slab.bufctl[idx as usize] = slab.free_head;
            slab.free_head = idx;
            slab.in_use -= 1;
            (slab.kind, slab.wanted_kind())
        };
        Ok(self.freed(slot, have, want, keep_empty))
    }

    /// Book-keeping after an object went back on slab `slot`'s free list.
    #[inline]
    fn freed(&mut self, slot: u32, have: Kind, want: Kind, keep_empty: u64) -> Option<Segment> {
        if have != want {
            self.move_to(slot, want);
        }
        self.in_use -= 1;
        self.counters.free += 1;
        if self.lists[Kind::Empty as usize].len > keep_empty {
            self.free_oldest_empty()
        } else {
            None
        }
    }

    #[cold]
    #[inline(never)]
    fn free_oldest_empty(&mut self) -> Option<Segment> {
        let oldest = self.lists[Kind::Empty as usize].tail;
        Some(self.remove_slab(oldest))
    }

    /// Undoes [`begin_free`](Self::begin_free): the object is allocated
    /// again (used when a batch free finds a bad address part way).
    pub(super) fn undo_begin_free(&mut self, obj: &Obj) {
        let slab = self.slab_mut(obj.slot);
        assert_eq!(
            slab.bufctl[obj.idx as usize], FREEING,
            "undo of a free not begun"
        );
        slab.bufctl[obj.idx as usize] = ALLOCATED;
        if let Lookup::Hash(map) = &mut self.lookup {
            map.insert(obj.addr.as_ptr() as usize, (obj.slot, obj.idx));
        }
    }

    /// Second half of a free: the object goes back on its slab's free
    /// list. When that empties the slab and more than `keep_empty` empty
    /// slabs would be cached, the oldest empty slab is taken out and its
    /// segment returned for the caller to free to the region.
    #[inline]
    pub(super) fn finish_free(&mut self, obj: &Obj, keep_empty: u64) -> Option<Segment> {
        let (have, want) = {
            let slab = self.slab_mut(obj.slot);
            assert_eq!(
                slab.bufctl[obj.idx as usize], FREEING,
                "finish of a free not begun"
            );
            slab.bufctl[obj.idx as usize] = slab.free_head;
            slab.free_head = obj.idx;
            slab.in_use -= 1;
            (slab.kind, slab.wanted_kind())
        };
        self.freed(obj.slot, have, want, keep_empty)
    }

    /// Takes every empty slab beyond `keep` out of the tables and returns
    /// their segments for the caller to free.
    pub(super) fn take_empty_slabs(&mut self, keep: u64) -> Vec<Segment> {
        let mut out = Vec::new();
        while self.lists[Kind::Empty as usize].len > keep {
            let oldest = self.lists[Kind::Empty as usize].tail;
            out.push(self.remove_slab(oldest));
        }
        if let Lookup::Hash(map) = &mut self.lookup {
            if map.capacity() > 4 * map.len().max(16) {
                map.shrink_to_fit();
            }
        }
        out
    }

    // ---- stats ----

    pub(super) fn in_use(&self) -> u64 {
        self.in_use
    }

    pub(super) fn list_lens(&self) -> (u64, u64, u64) {
        (
            self.lists[Kind::Partial as usize].len,
            self.lists[Kind::Empty as usize].len,
            self.lists[Kind::Full as usize].len,
        )
    }

    pub(super) fn hash_size(&self) -> u64 {
        match &self.lookup {
            Lookup::Hash(map) => map.capacity() as u64,
            Lookup::Arithmetic { .. } => 0,
        }
    }

    /// Segments of every slab still present (for `Drop`).
    pub(super) fn live_segments(&self) -> impl Iterator<Item = (Segment, u32)> + '_ {
        self.slots
            .iter()
            .flatten()
            .map(|slab| (slab.seg, slab.in_use))
    }

    /// Walks every slab, list and lookup entry and checks the invariants of
    /// the module docs; the error names the first one broken.
    pub(super) fn check(&self) -> Result<(), String> {
        let mut live = 0u64;
        let mut allocated = 0u64;
        let mut in_use = 0u64;
        let mut kinds = [0u64; 3];
        for (slot, slab) in self.slots.iter().enumerate() {
            let Some(slab) = slab else {
                if !self.vacant.contains(&(slot as u32)) {
                    return Err(format!("slot {slot} is vacant but not on the vacant list"));
                }
                continue;
            };
            live += 1;
            // Free list: every entry a free object, no cycles.
            let mut free = 0u32;
            let mut cur = slab.free_head;
            while cur != NIL {
                if cur >= self.objs {
                    return Err(format!("slot {slot}: free list holds index {cur}"));
                }
                free += 1;
                if free > self.objs {
                    return Err(format!("slot {slot}: free list has a cycle"));
                }
                cur = slab.bufctl[cur as usize];
                if cur == ALLOCATED || cur == FREEING {
                    return Err(format!("slot {slot}: free list runs into a busy object"));
                }
            }
            let busy = slab
                .bufctl
                .iter()
                .filter(|&&b| b == ALLOCATED || b == FREEING)
                .count() as u32;
            allocated += slab.bufctl.iter().filter(|&&b| b == ALLOCATED).count() as u64;
            if busy != slab.in_use || free + busy != self.objs {
                return Err(format!(
                    "slot {slot}: {free} free + {busy} busy != {} objects, or in_use {} differs",
                    self.objs, slab.in_use
                ));
            }
            if slab.kind != slab.wanted_kind() {
                return Err(format!(
                    "slot {slot}: on list {:?} with {} of {} in use",
                    slab.kind, slab.in_use, self.objs
                ));
            }
            kinds[slab.kind as usize] += 1;
            in_use += slab.in_use as u64;
            if let Lookup::Arithmetic { by_segment, .. } = &self.lookup {
                if by_segment[slab.seg.index as usize] != slot as u32 {
                    return Err(format!("slot {slot}: segment table does not point back"));
                }
            }
        }
        for kind in [Kind::Empty, Kind::Partial, Kind::Full] {
            let list = self.lists[kind as usize];
            let (mut n, mut prev, mut cur) = (0u64, NIL, list.head);
            while cur != NIL {
                let slab = self.slots[cur as usize]
                    .as_ref()
                    .ok_or_else(|| format!("list {kind:?} holds vacant slot {cur}"))?;
                if slab.kind != kind || slab.prev != prev {
                    return Err(format!("list {kind:?}: slot {cur} badly linked"));
                }
                n += 1;
                if n > live {
                    return Err(format!("list {kind:?} has a cycle"));
                }
                prev = cur;
                cur = slab.next;
            }
            if list.tail != prev || n != list.len || n != kinds[kind as usize] {
                return Err(format!(
                    "list {kind:?}: length {} / walked {n} / slabs {}",
                    list.len, kinds[kind as usize]
                ));
            }
        }
        if in_use != self.in_use {
            return Err(format!("in_use {} but slabs hold {in_use}", self.in_use));
        }
        if self.counters.alloc - self.counters.free != self.in_use {
            return Err(format!(
                "alloc {} - free {} != in use {}",
                self.counters.alloc, self.counters.free, self.in_use
            ));
        }
        if self.counters.create - self.counters.destroy != live {
            return Err(format!(
                "create {} - destroy {} != live slabs {live}",
                self.counters.create, self.counters.destroy
            ));
        }
        match &self.lookup {
            Lookup::Hash(map) => {
                if map.len() as u64 != allocated {
                    return Err(format!(
                        "hash holds {} entries for {allocated} allocated objects",
                        map.len()
                    ));
                }
                for (&addr, &(slot, idx)) in map {
                    let slab = self.slots.get(slot as usize).and_then(Option::as_ref);
                    let ok = slab.is_some_and(|s| {
                        idx < self.objs
                            && s.bufctl[idx as usize] == ALLOCATED
                            && s.seg.base.as_ptr() as usize + idx as usize * self.chunk == addr
                    });
                    if !ok {
                        return Err(format!("hash entry {addr:#x} -> ({slot}, {idx}) is wrong"));
                    }
                }
            }
            Lookup::Arithmetic { by_segment, .. } => {
                let mapped = by_segment.iter().filter(|&&s| s != NIL).count() as u64;
                if mapped != live {
                    return Err(format!(
                        "segment table maps {mapped} segments, {live} slabs"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The [`ObjectInfo`] of an object and of its shadow (same offset in the
/// shadow segment).
pub(super) fn info(obj: &Obj, chunk: usize, objs: u32) -> (ObjectInfo, Option<ObjectInfo>) {
    let main = ObjectInfo {
        addr: obj.addr,
        size: chunk,
        index_in_region: obj.seg.index * objs + obj.idx,
        segment_index: obj.seg.index,
        index_in_segment: obj.idx,
    };
    let shadow = obj.seg.shadow.map(|base| ObjectInfo {
        // SAFETY: the shadow segment has the master's size (the `Mirror`
        // contract) and is live while the master segment is; the offset is
        // inside it, as in the master.
        addr: unsafe { base.add(obj.idx as usize * chunk) },
        ..main
    });
    (main, shadow)
}

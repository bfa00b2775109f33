//! The slab layer's debug paths (see [`crate::debug`] for what they check).
//!
//! # How a debug cache runs
//!
//! A debug cache keeps its real bookkeeping (slabs, bufctls, lists, lookup)
//! in [`SlabDebug::state`]; the cache's own `state`, which the fast paths
//! read, stays empty forever. So `alloc` finds no object and goes to `grow`,
//! a free finds no allocated object and goes to `free_missed`, a batch free
//! fails its first lookup: each of those cold paths hands the call to the
//! functions here. A cache without debug flags never reaches them and runs
//! the instructions it ran before the debug mode existed.
//!
//! # Invariants
//!
//! * Lock order: `state` before `tags`; reports are emitted with neither
//!   held (an abort, or a `tracing` subscriber, must not run under them).
//! * An object's [`TagState`] is `User` exactly while the slab bookkeeping
//!   has it allocated and a user holds it, `Cached` while it is allocated
//!   and rests in a magazine above, `Free`/`Fresh` while it is free in its
//!   slab. A free is accepted only in `User`; a magazine takes only `User`
//!   objects and gives back only `Cached` ones.
//! * Patterns are written only into objects this thread owns at that moment
//!   (just taken, or marked as being freed), through raw pointers.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

use skmem_traits::{AllocFlags, Error, Mirror, ObjectCtor, RegionMode, Result, SegmentSource};

use super::inner::{Geometry, Obj, State};
use super::sync::Mutex;
use super::{SlabCache, SlabConfig, KEEP_EMPTY};
use crate::debug::{
    leaks::Outstanding, patterns, register_for_exit, report, DebugFlags, Report, ReportKind,
    TagState, Tags, Txn, TxnKind, FREE_PATTERN, UNINIT_PATTERN,
};

/// Objects listed one by one in a leak report; more are counted.
const LEAK_LIST_MAX: usize = 64;

/// The debug side of a slab cache.
pub(super) struct SlabDebug {
    pub(super) flags: DebugFlags,
    name: String,
    obj_size: usize,
    /// Redzone bytes after each object (0: no guards).
    guard_len: usize,
    poison: bool,
    /// The pattern of a freed object: [`FREE_PATTERN`], or zero for a
    /// clear-on-free cache (whose contract is zeroed objects).
    free_pat: u32,
    /// Fill handed-out objects with [`UNINIT_PATTERN`] (poison, and not
    /// clear-on-free).
    uninit: bool,
    /// The cache has an active constructor: objects in magazines are
    /// constructed and are not poisoned there.
    constructed: bool,
    pub(super) state: Mutex<State>,
    tags: Mutex<Tags>,
}

impl SlabDebug {
    /// The debug side for a cache of `config` on a region of `mode`, or
    /// `None` when no check is asked.
    pub(super) fn new(
        config: &SlabConfig,
        geometry: Geometry,
        mode: RegionMode,
        constructed: bool,
    ) -> Option<Arc<SlabDebug>> {
        let mut flags = config.debug;
        if !flags.enabled() {
            return None;
        }
        if mode.contains(RegionMode::KREADONLY) {
            // Nothing can be written into the objects.
            flags.remove(DebugFlags::GUARDS | DebugFlags::POISON);
        }
        let mut guard_len = 0;
        if flags.contains(DebugFlags::GUARDS) {
            guard_len = geometry.chunk - config.obj_size;
            if guard_len == 0 {
                report::write_stderr(
                    format!(
                        "skmem debug: cache `{}`: no redzone: its chunk ({} bytes) has no room after the object; size the region with skmem_slab::debug::region_obj_size\n",
                        config.name, geometry.chunk
                    )
                    .as_bytes(),
                );
                flags.remove(DebugFlags::GUARDS);
            }
        }
        let debug = Arc::new(SlabDebug {
            flags,
            name: config.name.clone(),
            obj_size: config.obj_size,
            guard_len,
            poison: flags.contains(DebugFlags::POISON),
            free_pat: if config.clear_on_free {
                0
            } else {
                FREE_PATTERN
            },
            uninit: flags.contains(DebugFlags::POISON) && !config.clear_on_free,
            constructed,
            state: Mutex::new(State::new(geometry)),
            tags: Mutex::new(Tags::new(
                geometry.seg_count,
                geometry.objs,
                geometry.chunk,
                flags.contains(DebugFlags::AUDIT),
            )),
        });
        if flags.contains(DebugFlags::LEAKS) {
            let weak: Weak<SlabDebug> = Arc::downgrade(&debug);
            register_for_exit(weak);
        }
        Some(debug)
    }

    pub(super) fn forget_segment(&self, seg: u32) {
        self.tags.lock().drop_segment(seg);
    }

    fn report(
        &self,
        addr: usize,
        kind: ReportKind,
        ring: Option<&crate::debug::audit::Ring>,
    ) -> report::StackBuf {
        Report {
            cache: &self.name,
            addr,
            obj_size: self.obj_size,
            kind,
            ring,
        }
        .format()
    }

    /// Checks that `addr` is an object a user holds and marks it `next`
    /// (with a transaction of `kind`), under both locks. `Some` when taken:
    /// the object is still allocated in the bookkeeping, and a damaged
    /// redzone leaves its report in `found`. `None` when refused: nothing
    /// changed, and `found` holds the report saying why.
    // A report is formatted on the stack (no allocation: the allocator may
    // be skmem itself) straight into the caller's slot, written only when
    // there is something to say: returned by value, the 3 KiB buffer was
    // copied on every free (a third of a checked free's instructions).
    fn take_from_user(
        &self,
        state: &State,
        addr: *const u8,
        next: TagState,
        kind: TxnKind,
        found: &mut Option<report::StackBuf>,
    ) -> Option<Obj> {
        let mut tags = self.tags.lock();
        let Some(obj) = state.lookup(addr) else {
            let (kind, ring) = match tags.find(addr as usize) {
                Some(at) => {
                    let (tag, ring) = tags.get(at.seg, at.seg_base, at.idx);
                    let kind = if at.offset == 0 {
                        ReportKind::DoubleFree(tag.state.double_free_reason())
                    } else {
                        ReportKind::Interior {
                            base: at.obj,
                            offset: at.offset,
                        }
                    };
                    (kind, ring.map(|r| &*r))
                }
                None => (ReportKind::Foreign, None),
            };
            *found = Some(self.report(addr as usize, kind, ring));
            return None;
        };
        let (tag, mut ring) = tags.get(obj.seg.index, obj.seg.base.as_ptr() as usize, obj.idx);
        if tag.state != TagState::User {
            let why = tag.state.double_free_reason();
            *found = Some(self.report(addr as usize, ReportKind::DoubleFree(why), ring.as_deref()));
            return None;
        }
        tag.state = next;
        let overrun = if self.guard_len != 0 {
            // SAFETY: the redzone lies inside the object's chunk, in a live
            // segment; the user gave the object up.
            unsafe { patterns::check_guard(obj.addr.as_ptr(), self.obj_size, self.guard_len) }
        } else {
            None
        };
        if let Some(ring) = ring.as_deref_mut() {
            ring.push(Txn::now(kind));
        }
        if let Some(offset) = overrun {
            *found = Some(self.report(
                addr as usize,
                ReportKind::Overrun { offset },
                ring.as_deref(),
            ));
        }
        Some(obj)
    }

    /// Marks `obj` (just taken from the bookkeeping, or leaving a
    /// magazine when `from` is `Cached`) as held by a user: checks the
    /// pattern of a freed object, writes the redzone and the
    /// uninitialised pattern. Returns a report when the freed pattern or
    /// the redzone was damaged meanwhile.
    fn hand_out(&self, obj: &Obj, from: TagState) -> Option<report::StackBuf> {
        let addr = obj.addr.as_ptr();
        let mut tags = self.tags.lock();
        let (tag, ring) = tags.get(obj.seg.index, obj.seg.base.as_ptr() as usize, obj.idx);
        let was = tag.state;
        assert!(
            was == from || (from == TagState::Free && was == TagState::Fresh),
            "skmem debug: cache `{}`: object {addr:p} handed out from state {was:?}, expected {from:?}",
            self.name
        );
        // Poisoned: free in its slab, or resting in a magazine of a cache
        // without constructor.
        let poisoned = self.poison
            && (was == TagState::Free || (was == TagState::Cached && !self.constructed));
        let mut damage = None;
        if poisoned {
            // SAFETY: the object is ours (just taken, or leaving a magazine
            // under the caller's exclusion) in a live segment.
            let written = unsafe { patterns::first_mismatch(addr, self.obj_size, self.free_pat) };
            if let Some(offset) = written {
                damage = Some(ReportKind::UseAfterFree {
                    offset,
                    in_magazine: was == TagState::Cached,
                });
            }
        }
        if damage.is_none() && self.guard_len != 0 && was != TagState::Fresh {
            // SAFETY: as above; the redzone is inside the chunk.
            let overrun = unsafe { patterns::check_guard(addr, self.obj_size, self.guard_len) };
            if let Some(offset) = overrun {
                damage = Some(ReportKind::Overrun { offset });
            }
        }
        tag.state = TagState::User;
        let kind = if from == TagState::Cached {
            TxnKind::FromMagazine
        } else {
            TxnKind::Alloc
        };
        let ring = ring.map(|ring| {
            ring.push(Txn::now(kind));
            *ring
        });
        drop(tags);
        if self.guard_len != 0 {
            // SAFETY: as above.
            unsafe { patterns::fill_guard(addr, self.obj_size, self.guard_len) };
        }
        if self.uninit && (from != TagState::Cached || !self.constructed) {
            // SAFETY: as above; for a constructed cache this runs before
            // the constructor (objects from the slab layer only).
            unsafe { patterns::fill(addr, self.obj_size, UNINIT_PATTERN) };
        }
        damage.map(|kind| self.report(addr as usize, kind, ring.as_ref()))
    }

    /// Writes the leak report for the objects still out (none: nothing).
    pub(super) fn report_outstanding_now(&self, when: &str) {
        let tags = self.tags.lock();
        let (mut users, mut cached) = (0usize, 0usize);
        for (_, state, _) in tags.outstanding() {
            match state {
                TagState::Cached => cached += 1,
                _ => users += 1,
            }
        }
        if users + cached == 0 {
            return;
        }
        let mut head = report::StackBuf::new();
        use std::fmt::Write;
        let _ = writeln!(
            head,
            "skmem debug: cache `{}`: leak report {when}: {} objects still out ({users} held by users, {cached} in magazines)",
            self.name,
            users + cached
        );
        report::write_stderr(head.as_bytes());
        for (addr, state, ring) in tags.outstanding().take(LEAK_LIST_MAX) {
            let mut line = report::StackBuf::new();
            let _ = writeln!(
                line,
                "  object {addr:#x} ({})",
                if state == TagState::Cached {
                    "in a magazine"
                } else {
                    "held by a user"
                }
            );
            if let Some(ring) = ring {
                report::write_ring(&mut line, ring);
            }
            report::write_stderr(line.as_bytes());
        }
        if users + cached > LEAK_LIST_MAX {
            let mut tail = report::StackBuf::new();
            let _ = writeln!(tail, "  ... and {} more", users + cached - LEAK_LIST_MAX);
            report::write_stderr(tail.as_bytes());
        }
        drop(tags);
        tracing::error!(cache = %self.name, outstanding = users + cached, users, in_magazines = cached, when, "skmem debug: leak report");
    }
}

impl Outstanding for SlabDebug {
    fn report_outstanding(&self, when: &str) {
        self.report_outstanding_now(when);
    }
}

impl<S: SegmentSource, C: ObjectCtor, M: Mirror> SlabCache<S, C, M> {
    /// `grow` for a debug cache: objects from the debug bookkeeping (grown
    /// from the region when it has none), each checked and marked as
    /// handed out; the caller constructs them.
    pub(super) fn debug_take(
        &self,
        d: &SlabDebug,
        flags: AllocFlags,
        out: &mut [Option<Obj>],
    ) -> Result<usize> {
        let mut n = d.state.lock().take_into(out);
        if n == 0 {
            n = self.grow_in(&d.state, flags, out)?;
        }
        for obj in out[..n].iter().flatten() {
            if let Some(text) = d.hand_out(obj, TagState::Free) {
                report::emit(&text, d.flags);
            }
        }
        Ok(n)
    }

    /// Puts back objects `debug_take` handed out whose construction
    /// failed (or was not attempted).
    pub(super) fn debug_put_back(&self, d: &SlabDebug, objs: &[Obj], count_failure: bool) {
        let mut segs = Vec::new();
        let wake = {
            let mut state = d.state.lock();
            for obj in objs.iter().rev() {
                // Objects just handed out by `debug_take`: nothing to report.
                let mut unused = None;
                if let Some(obj) = d.take_from_user(
                    &state,
                    obj.addr.as_ptr(),
                    TagState::Free,
                    TxnKind::Free,
                    &mut unused,
                ) {
                    let obj = state
                        .begin_free(obj.addr.as_ptr())
                        .expect("an object just taken is allocated");
                    // SAFETY: the object was just taken by this call and
                    // not handed to anyone.
                    unsafe { self.debug_scrub(d, &obj) };
                    segs.extend(state.finish_free(&obj, KEEP_EMPTY));
                }
            }
            if count_failure {
                state.counters.alloc_fail += 1;
            }
            state.waiters != 0
        };
        self.wake(wake);
        self.release_segments(segs);
    }

    /// Clears (when configured) and poisons an object on its way back to
    /// its slab, its redzone rewritten.
    ///
    /// # Safety
    ///
    /// The caller has exclusive use of `obj`, whose segment is live.
    unsafe fn debug_scrub(&self, d: &SlabDebug, obj: &Obj) {
        if self.config.clear_on_free {
            // SAFETY: forwarded from the caller.
            unsafe { self.clear(obj) };
        }
        if d.poison && d.free_pat != 0 {
            // SAFETY: forwarded from the caller.
            unsafe { patterns::fill(obj.addr.as_ptr(), d.obj_size, d.free_pat) };
        }
        if d.guard_len != 0 {
            // SAFETY: forwarded from the caller.
            unsafe { patterns::fill_guard(obj.addr.as_ptr(), d.obj_size, d.guard_len) };
        }
    }

    /// Validates a free against the debug record and, when it is sound,
    /// begins it; `found` as in `take_from_user` (the refusal's report, or
    /// a damaged redzone's next to a begun free).
    fn debug_begin_free(
        &self,
        d: &SlabDebug,
        addr: *const u8,
        found: &mut Option<report::StackBuf>,
    ) -> Option<Obj> {
        let mut state = d.state.lock();
        let obj = d.take_from_user(&state, addr, TagState::Free, TxnKind::Free, found)?;
        let obj = state
            .begin_free(obj.addr.as_ptr())
            .expect("an object a user holds is allocated");
        Some(obj)
    }

    /// Destructs, scrubs and returns a begun free; a destructor panic is
    /// returned.
    ///
    /// # Safety
    ///
    /// `obj` was begun by [`debug_begin_free`](Self::debug_begin_free) and
    /// is this caller's alone.
    unsafe fn debug_finish_free(&self, d: &SlabDebug, obj: &Obj) -> std::thread::Result<()> {
        let mut outcome = Ok(());
        if C::ACTIVE {
            let (info, shadow) = super::inner::info(obj, self.chunk, self.objs);
            outcome = catch_unwind(AssertUnwindSafe(|| self.ctor.destruct(info, shadow)));
            self.dtor_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.debug_scrub(d, obj) };
        let (seg, wake) = {
            let mut state = d.state.lock();
            (state.finish_free(obj, KEEP_EMPTY), state.waiters != 0)
        };
        self.wake(wake);
        self.release_segments(seg);
        outcome
    }

    /// `free` of a debug cache: a bad address is reported (abort, or
    /// refused with [`DebugFlags::CONTINUE`]).
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free).
    pub(super) unsafe fn debug_free(&self, d: &SlabDebug, addr: *mut u8) {
        let mut found = None;
        let begun = self.debug_begin_free(d, addr, &mut found);
        if let Some(text) = &found {
            report::emit(text, d.flags);
        }
        if let Some(obj) = begun {
            // SAFETY: begun above; the caller gave the object up.
            if let Err(payload) = unsafe { self.debug_finish_free(d, &obj) } {
                resume_unwind(payload);
            }
        }
    }

    /// `try_free` of a debug cache: a bad address is an error (untrusted
    /// input is not corruption), carrying the report's text.
    ///
    /// # Safety
    ///
    /// As [`try_free`](Self::try_free).
    pub(super) unsafe fn debug_try_free(&self, addr: *mut u8) -> Result<()> {
        let d = self.debug.as_deref().expect("debug cache");
        let mut found = None;
        let Some(obj) = self.debug_begin_free(d, addr, &mut found) else {
            let text = found.expect("a refused free says why");
            return Err(Error::Invalid {
                field: "obj",
                reason: text.as_str().trim_end().to_owned(),
            });
        };
        if let Some(text) = &found {
            report::emit(text, d.flags);
        }
        // SAFETY: begun above; the caller gave the object up.
        if let Err(payload) = unsafe { self.debug_finish_free(d, &obj) } {
            resume_unwind(payload);
        }
        Ok(())
    }

    /// The batch and chain frees of a debug cache, from `first` on; `next`
    /// as in `free_many`. A bad address is reported; with
    /// [`DebugFlags::CONTINUE`] it is skipped, and for a `chain` it ends the
    /// call (the objects after it stay allocated: a chain cannot be followed
    /// past a bad link).
    ///
    /// # Safety
    ///
    /// As `free_many`.
    /// `free_batch` of a debug cache.
    ///
    /// # Safety
    ///
    /// As [`free_batch`](Self::free_batch).
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn debug_free_slice(&self, objs: &[NonNull<u8>]) {
        let Some((&first, rest)) = objs.split_first() else {
            return;
        };
        let mut rest = rest.iter();
        // SAFETY: forwarded from the caller.
        unsafe { self.debug_free_many(first, &mut |_| rest.next().copied(), false) };
    }

    // Out of line and not generic over `next`.
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn debug_free_many(
        &self,
        first: NonNull<u8>,
        next: &mut dyn FnMut(Option<&Obj>) -> Option<NonNull<u8>>,
        chain: bool,
    ) {
        let d = self.debug.as_deref().expect("debug cache");
        let mut pending = Some(first);
        let mut dtor_panic: Option<Box<dyn Any + Send>> = None;
        while let Some(addr) = pending {
            let mut found = None;
            let begun = self.debug_begin_free(d, addr.as_ptr(), &mut found);
            match begun {
                Some(obj) => {
                    // The link (chains) is read before the object is
                    // destructed and poisoned.
                    pending = next(Some(&obj));
                    if let Some(text) = &found {
                        report::emit(text, d.flags);
                    }
                    // SAFETY: begun above; the caller gave it up.
                    if let Err(payload) = unsafe { self.debug_finish_free(d, &obj) } {
                        dtor_panic.get_or_insert(payload);
                    }
                }
                None => {
                    if let Some(text) = &found {
                        report::emit(text, d.flags);
                    }
                    if chain {
                        // The link of a bad object cannot be trusted.
                        break;
                    }
                    pending = next(None);
                }
            }
        }
        if let Some(payload) = dtor_panic {
            resume_unwind(payload);
        }
    }

    /// Takes a user's free into a magazine above this cache: validated as
    /// a free is (double, foreign, interior; redzone), then marked as
    /// resting in a magazine and, for caches without a constructor,
    /// poisoned. `false` when refused (reported; with
    /// [`DebugFlags::CONTINUE`] the caller drops the free).
    ///
    /// Only for debug caches ([`debug_flags`](Self::debug_flags) not
    /// empty); the magazine layer calls it on its debug path.
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free); the caller keeps the object (constructed)
    /// until it hands it out with [`debug_from_magazine`](Self::debug_from_magazine).
    pub unsafe fn debug_to_magazine(&self, obj: NonNull<u8>) -> bool {
        let d = self
            .debug
            .as_deref()
            .expect("debug_to_magazine on a cache not in debug mode");
        let mut found = None;
        let taken = {
            let state = d.state.lock();
            d.take_from_user(
                &state,
                obj.as_ptr(),
                TagState::Cached,
                TxnKind::ToMagazine,
                &mut found,
            )
        };
        if let Some(text) = &found {
            report::emit(text, d.flags);
        }
        let Some(obj) = taken else {
            return false;
        };
        if found.is_some() && d.guard_len != 0 {
            // The redzone was damaged (reported above): rewritten, so the
            // next check reports only new damage.
            // SAFETY: the object rests with the caller now; the redzone is
            // inside its chunk.
            unsafe { patterns::fill_guard(obj.addr.as_ptr(), d.obj_size, d.guard_len) };
        }
        if d.poison && !d.constructed {
            // SAFETY: the user gave the object up; no constructed state to
            // keep.
            unsafe { patterns::fill(obj.addr.as_ptr(), d.obj_size, d.free_pat) };
        }
        true
    }

    /// Hands out an object that [`debug_to_magazine`](Self::debug_to_magazine)
    /// took: checks that its poison and redzone are intact (a write after
    /// free is reported with its offset) and marks it held by a user again.
    ///
    /// # Safety
    ///
    /// `obj` was taken by `debug_to_magazine` of this cache and is handed
    /// out (or freed) by the caller alone.
    pub unsafe fn debug_from_magazine(&self, obj: NonNull<u8>) {
        let d = self
            .debug
            .as_deref()
            .expect("debug_from_magazine on a cache not in debug mode");
        let found = d.state.lock().lookup(obj.as_ptr());
        let found = found.expect("an object resting in a magazine is allocated");
        if let Some(text) = d.hand_out(&found, TagState::Cached) {
            report::emit(&text, d.flags);
        }
    }
}

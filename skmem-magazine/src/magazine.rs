//! A magazine: a stack of pointers to constructed objects, sized at run
//! time.
//!
//! A magazine is one allocation: a [`Header`] followed by exactly `cap`
//! rounds (`*mut u8`), laid out with `Layout::extend` (the seed's
//! `skmem_mag` with its trailing `mg_round[]`). Its capacity is the
//! `rounds` of the ladder step it was made for, so a 14-round magazine
//! costs 128 bytes, not the 1 280 of the largest (158-round) step, and no
//! code is compiled per ladder. [`MagBox`] owns one; it is the only handle
//! to a magazine. It points at round 0, with the header in front (at a
//! fixed negative offset, hashbrown's control-pointer trick), so the fast
//! path reaches round `i` at `ptr + 8 i` exactly as it reached a round
//! array at the start of a struct; the pointer is derived from the
//! allocation's, so the header and rounds are reached with its provenance
//! (never through a reference to the header alone).
//!
//! # Invariants
//!
//! * `cap > 0` is the `rounds` of the ladder step the magazine was made
//!   for; the allocation holds exactly `cap` rounds after the header and
//!   was made with [`layout`]`(cap)`, which frees it; a magazine is only
//!   ever loaded into a CPU slot or filed in a depot whose current size is
//!   `cap` (the depot refuses others);
//! * whoever holds a magazine knows how many of its leading rounds are
//!   valid (a CPU slot's round count, or "all" / "none" for the depot's
//!   full and empty lists); the rounds beyond that are stale or were never
//!   written, and are never read;
//! * `next` is only used while the magazine sits in a depot list or in a
//!   short local chain; a loaded magazine has `next == None`.

use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

/// The fixed part of a magazine, in front of its rounds.
struct Header {
    /// Link in a depot list or a local chain.
    next: Option<MagBox>,
    /// Number of rounds after the header.
    cap: u32,
}

/// Byte offset of the rounds from the start of a magazine: right after
/// the header, which is what `Layout::extend` computes because the header's
/// size (a multiple of its alignment) is a multiple of a round's alignment.
const ROUNDS_AT: usize = core::mem::size_of::<Header>();
const _: () = assert!(ROUNDS_AT % core::mem::align_of::<*mut u8>() == 0);

/// The layout of a magazine of `cap` rounds, or `None` when it overflows
/// (never for a ladder step's `u32` count on a 64-bit target).
pub(crate) fn layout(cap: u32) -> Option<Layout> {
    let (layout, at) = Layout::new::<Header>()
        .extend(Layout::array::<*mut u8>(cap as usize).ok()?)
        .ok()?;
    debug_assert_eq!(at, ROUNDS_AT);
    Some(layout.pad_to_align())
}

/// An owned magazine of `cap` rounds: a pointer to round 0, the header
/// `ROUNDS_AT` bytes before it (see the module docs).
pub(crate) struct MagBox(NonNull<*mut u8>);

// SAFETY: a magazine is a list of addresses of objects owned by the cache
// that owns the magazine; moving the list between threads moves no object
// and grants no access by itself (every object access is an unsafe
// operation justified by the cache's ownership). The header's `next` is
// another `MagBox`, sent along with it.
unsafe impl Send for MagBox {}

impl MagBox {
    /// Allocates an empty magazine of `cap` rounds, or `None` when the
    /// global allocator is out of memory (the caller then frees to the slab
    /// layer instead, like the seed's `SKMEM_NOSLEEP` magazine allocation).
    pub(crate) fn new(cap: u32) -> Option<MagBox> {
        assert!(cap > 0, "magazine capacity {cap} out of range");
        let layout = layout(cap)?;
        // SAFETY: the layout holds the header, so its size is non-zero as
        // `alloc` requires.
        let raw = NonNull::new(unsafe { std::alloc::alloc(layout) })?.cast::<Header>();
        // SAFETY:
        // * `raw` is a fresh allocation of `layout`, which starts with a
        //   `Header` at offset 0 (aligned: `layout` has at least its
        //   alignment). The rounds stay uninitialised: none is valid yet and
        //   none is read before it is written (module invariants);
        // * one header further is round 0, within the allocation (`cap > 0`)
        //   and aligned for a round (see `ROUNDS_AT`), hence non-null.
        let rounds = unsafe {
            raw.as_ptr().write(Header { next: None, cap });
            NonNull::new_unchecked(raw.as_ptr().add(1).cast::<*mut u8>())
        };
        Some(MagBox(rounds))
    }

    /// The start of the allocation: the header.
    #[inline(always)]
    fn header_ptr(&self) -> *mut Header {
        // SAFETY: the box points one header (`ROUNDS_AT` bytes) into its
        // allocation (see `new`), so stepping back one header stays within
        // it; the result has the allocation's provenance and the header's
        // alignment (the header and a round align alike).
        unsafe { self.0.as_ptr().cast::<Header>().sub(1) }
    }

    /// The header.
    #[inline(always)]
    fn header(&self) -> &Header {
        // SAFETY: the header was written by `new` and lives as long as the
        // box; `&self` keeps it from being changed meanwhile.
        unsafe { &*self.header_ptr() }
    }

    /// The header, for changing `next`.
    #[inline(always)]
    fn header_mut(&mut self) -> &mut Header {
        // SAFETY: as in `header`, with the box borrowed exclusively.
        unsafe { &mut *self.header_ptr() }
    }

    /// Capacity in rounds.
    #[inline(always)]
    pub(crate) fn cap(&self) -> u32 {
        self.header().cap
    }

    /// Takes the link to the next magazine.
    pub(crate) fn take_next(&mut self) -> Option<MagBox> {
        self.header_mut().next.take()
    }

    /// Links `next` after this magazine.
    pub(crate) fn set_next(&mut self, next: Option<MagBox>) {
        self.header_mut().next = next;
    }

    /// Whether a next magazine is linked.
    #[cfg(test)]
    pub(crate) fn has_next(&self) -> bool {
        self.header().next.is_some()
    }

    /// Address of round 0, with the whole allocation's provenance.
    #[inline(always)]
    fn rounds(&self) -> *mut *mut u8 {
        self.0.as_ptr()
    }

    /// Round `i` (unchecked against the valid count and `cap` in release).
    #[inline(always)]
    pub(crate) fn round(&self, i: usize) -> *mut u8 {
        debug_assert!(i < self.cap() as usize);
        // SAFETY: callers pass `i` below the valid count, itself at most
        // `cap` (the CPU slot and depot keep their round counts within
        // `cap`, see the module invariants), so round `i` is in the
        // allocation and was written.
        unsafe { *self.rounds().add(i) }
    }

    /// Stores `obj` as round `i`.
    #[inline(always)]
    pub(crate) fn set_round(&mut self, i: usize, obj: *mut u8) {
        debug_assert!(i < self.cap() as usize);
        // SAFETY: callers pass `i < cap`, so round `i` is in the
        // allocation; `&mut self` makes this the only access.
        unsafe { *self.rounds().add(i) = obj }
    }

    /// Copies rounds `from .. from + out.len()` into `out`.
    ///
    /// Those rounds must be valid (module invariants); checked against
    /// `cap`.
    #[inline(always)]
    pub(crate) fn copy_out(&self, from: usize, out: &mut [MaybeUninit<NonNull<u8>>]) {
        assert!(from + out.len() <= self.cap() as usize);
        // SAFETY:
        // * the source range lies within the first `cap` rounds (checked
        //   above), all valid by the caller's count, and the destination is
        //   `out`, a distinct exclusive borrow, so the two do not overlap;
        // * `MaybeUninit<NonNull<u8>>` and `*mut u8` have the same layout,
        //   and valid rounds are object addresses, hence non-null.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.rounds()
                    .add(from)
                    .cast::<MaybeUninit<NonNull<u8>>>()
                    .cast_const(),
                out.as_mut_ptr(),
                out.len(),
            );
        }
    }

    /// Stores `objs` as rounds `at .. at + objs.len()`; checked against
    /// `cap`.
    #[inline(always)]
    pub(crate) fn copy_in(&mut self, at: usize, objs: &[NonNull<u8>]) {
        assert!(at + objs.len() <= self.cap() as usize);
        // SAFETY: the destination range lies within the `cap` rounds
        // (checked above); the source is a shared borrow the magazine
        // cannot alias; `NonNull<u8>` and `*mut u8` have the same layout.
        unsafe {
            core::ptr::copy_nonoverlapping(
                objs.as_ptr().cast::<*mut u8>(),
                self.rounds().add(at),
                objs.len(),
            );
        }
    }

    /// The first `n` rounds as object pointers.
    pub(crate) fn valid(&self, n: usize) -> &[NonNull<u8>] {
        assert!(n <= self.cap() as usize);
        // SAFETY:
        // * the range lies within the `cap` rounds (checked above);
        // * `NonNull<u8>` and `*mut u8` have the same layout;
        // * the first `n` rounds are valid object addresses (caller's count,
        //   module invariants), hence non-null and initialised;
        // * the slice borrows `self`, so the rounds are not changed meanwhile.
        unsafe { core::slice::from_raw_parts(self.rounds().cast::<NonNull<u8>>(), n) }
    }
}

impl Drop for MagBox {
    fn drop(&mut self) {
        let layout = layout(self.cap()).expect("the layout was computed at allocation");
        let header = self.header_ptr();
        // SAFETY: the header is initialised and dropped once here (it owns
        // `next`); the rounds are raw pointers without drop glue. The
        // allocation starts at the header and was made by `new` with this
        // same layout.
        unsafe {
            core::ptr::drop_in_place(header);
            std::alloc::dealloc(header.cast::<u8>(), layout);
        }
    }
}

/// A singly linked chain of magazines, built locally and handed on whole.
pub(crate) struct Chain {
    head: Option<MagBox>,
    len: usize,
}

impl Chain {
    /// An empty chain.
    pub(crate) const fn new() -> Self {
        Chain { head: None, len: 0 }
    }

    /// Adds a magazine at the head.
    pub(crate) fn push(&mut self, mut mag: MagBox) {
        mag.set_next(self.head.take());
        self.head = Some(mag);
        self.len += 1;
    }

    /// Removes the head magazine.
    pub(crate) fn pop(&mut self) -> Option<MagBox> {
        let mut mag = self.head.take()?;
        self.head = mag.take_next();
        self.len -= 1;
        Some(mag)
    }

    /// Number of magazines.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the chain holds nothing.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        // Unlink iteratively so a long chain cannot overflow the stack.
        while self.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_magazine_is_empty_and_sized() {
        let mut m = MagBox::new(5).unwrap();
        assert_eq!(m.cap(), 5);
        assert!(!m.has_next());
        let mut x = 7u8;
        let p = core::ptr::addr_of_mut!(x);
        m.set_round(0, p);
        m.set_round(4, p);
        assert_eq!(m.round(0), p);
        assert_eq!(m.round(4), p);
        assert_eq!(m.valid(1)[0].as_ptr(), p);
    }

    #[test]
    fn a_magazine_allocates_exactly_its_rounds() {
        let header = core::mem::size_of::<Header>();
        assert_eq!(ROUNDS_AT, header);
        for cap in [1u32, 4, 14, 62, 158] {
            let l = layout(cap).unwrap();
            assert_eq!(
                l.size(),
                header + cap as usize * core::mem::size_of::<*mut u8>()
            );
            assert_eq!(l.align(), core::mem::align_of::<Header>());
        }
        // On 64-bit targets: 16 bytes of header, 8 per round.
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(layout(14).unwrap().size(), 128);
            assert_eq!(layout(158).unwrap().size(), 1280);
        }
    }

    #[test]
    fn copies_round_trip_at_the_end_of_the_magazine() {
        let mut m = MagBox::new(3).unwrap();
        let mut xs = [0u8; 3];
        let ps: Vec<NonNull<u8>> = xs.iter_mut().map(NonNull::from).collect();
        m.copy_in(1, &ps[..2]);
        m.set_round(0, ps[2].as_ptr());
        let mut out = [MaybeUninit::uninit(); 2];
        m.copy_out(1, &mut out);
        // SAFETY: `copy_out` initialised both.
        let out = unsafe { [out[0].assume_init(), out[1].assume_init()] };
        assert_eq!(out, [ps[0], ps[1]]);
        assert_eq!(m.valid(3), &[ps[2], ps[0], ps[1]]);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn empty_magazine_is_refused() {
        let _ = MagBox::new(0);
    }

    #[test]
    #[should_panic]
    fn copy_past_the_capacity_is_refused() {
        let mut m = MagBox::new(2).unwrap();
        let mut x = 0u8;
        m.copy_in(1, &[NonNull::from(&mut x), NonNull::from(&mut x)]);
    }

    #[test]
    fn chain_is_lifo_and_drops_linked_magazines() {
        let mut c = Chain::new();
        for cap in 1..=3 {
            c.push(MagBox::new(cap).unwrap());
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.pop().unwrap().cap(), 3);
        assert_eq!(c.pop().unwrap().cap(), 2);
        assert_eq!(c.len(), 1);
        assert!(!c.is_empty());
        // A magazine dropped with a link drops the rest with it.
        let mut a = MagBox::new(2).unwrap();
        a.set_next(c.pop());
        assert!(a.has_next());
        drop(a);
    }
}

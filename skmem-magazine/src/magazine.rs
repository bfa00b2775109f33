//! A magazine: a fixed-capacity stack of pointers to constructed objects.
//!
//! # Invariants
//!
//! * `cap` is the `rounds` of the ladder step the magazine was made for and
//!   never exceeds `N`; a magazine is only ever loaded into a CPU slot or
//!   filed in a depot whose current size is `cap` (the depot refuses others);
//! * whoever holds a magazine knows how many of its leading rounds are
//!   valid (a CPU slot's round count, or "all" / "none" for the depot's
//!   full and empty lists); the rounds beyond that are stale and never read;
//! * `next` is only used while the magazine sits in a depot list or in a
//!   short local chain; a loaded magazine has `next == None`.

use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use generic_array::{ArrayLength, GenericArray};

/// An owned magazine.
pub(crate) type MagBox<N> = Box<Magazine<N>>;

/// A magazine of up to `N` rounds.
pub(crate) struct Magazine<N: ArrayLength> {
    /// Link in a depot list or a local chain.
    pub(crate) next: Option<MagBox<N>>,
    /// Capacity of the ladder step this magazine belongs to (`<= N`).
    pub(crate) cap: u32,
    /// The rounds; see the module invariants for which are valid.
    pub(crate) rounds: GenericArray<*mut u8, N>,
}

// SAFETY: a magazine is a list of addresses of objects owned by the cache
// that owns the magazine; moving the list between threads moves no object
// and grants no access by itself (every object access is an unsafe
// operation justified by the cache's ownership).
unsafe impl<N: ArrayLength> Send for Magazine<N> {}

impl<N: ArrayLength> Magazine<N> {
    /// Allocates an empty magazine of `cap` rounds, or `None` when the
    /// global allocator is out of memory (the caller then frees to the slab
    /// layer instead, like the seed's `SKMEM_NOSLEEP` magazine allocation).
    pub(crate) fn new(cap: u32) -> Option<MagBox<N>> {
        assert!(
            cap as usize <= N::USIZE && cap > 0,
            "magazine capacity {cap} out of range"
        );
        let layout = Layout::new::<Self>();
        // SAFETY: `Self` is never zero-sized (it holds a u32), so the layout
        // has a non-zero size as `alloc_zeroed` requires.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let raw = NonNull::new(raw)?.cast::<Self>();
        // SAFETY:
        // * `raw` is a fresh allocation of `Self`'s layout;
        // * all-zero bytes are a valid `Self`: `None` for the `Option<Box>`
        //   (null-pointer niche), 0 for `cap`, null for every `*mut u8`;
        // * ownership passes to the box, which frees with the same layout.
        let mut mag = unsafe { Box::from_raw(raw.as_ptr()) };
        mag.cap = cap;
        Some(mag)
    }

    /// Round `i` (unchecked against the valid count; checked against `N`).
    #[inline(always)]
    pub(crate) fn round(&self, i: usize) -> *mut u8 {
        debug_assert!(i < self.cap as usize);
        // SAFETY: callers pass `i < cap <= N` (the CPU slot and depot keep
        // their round counts within `cap`, see the module invariants).
        unsafe { *self.rounds.get_unchecked(i) }
    }

    /// Stores `obj` as round `i`.
    #[inline(always)]
    pub(crate) fn set_round(&mut self, i: usize, obj: *mut u8) {
        debug_assert!(i < self.cap as usize);
        // SAFETY: as in `round`: `i < cap <= N`.
        unsafe { *self.rounds.get_unchecked_mut(i) = obj }
    }

    /// Copies rounds `from .. from + out.len()` into `out`.
    ///
    /// Those rounds must be valid (module invariants); checked against
    /// `cap`.
    #[inline(always)]
    pub(crate) fn copy_out(&self, from: usize, out: &mut [MaybeUninit<NonNull<u8>>]) {
        assert!(from + out.len() <= self.cap as usize);
        // SAFETY:
        // * the source range lies within the first `cap <= N` rounds
        //   (checked above) and the destination is `out`, a distinct
        //   exclusive borrow, so the two do not overlap;
        // * `MaybeUninit<NonNull<u8>>` and `*mut u8` have the same layout,
        //   and valid rounds are object addresses, hence non-null.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.rounds
                    .as_ptr()
                    .add(from)
                    .cast::<MaybeUninit<NonNull<u8>>>(),
                out.as_mut_ptr(),
                out.len(),
            );
        }
    }

    /// Stores `objs` as rounds `at .. at + objs.len()`; checked against
    /// `cap`.
    #[inline(always)]
    pub(crate) fn copy_in(&mut self, at: usize, objs: &[NonNull<u8>]) {
        assert!(at + objs.len() <= self.cap as usize);
        // SAFETY: the destination range lies within the first `cap <= N`
        // rounds (checked above); the source is a shared borrow the
        // exclusive `self` cannot alias; `NonNull<u8>` and `*mut u8` have
        // the same layout.
        unsafe {
            core::ptr::copy_nonoverlapping(
                objs.as_ptr().cast::<*mut u8>(),
                self.rounds.as_mut_ptr().add(at),
                objs.len(),
            );
        }
    }

    /// The first `n` rounds as object pointers.
    pub(crate) fn valid(&self, n: usize) -> &[NonNull<u8>] {
        assert!(n <= self.cap as usize);
        // SAFETY:
        // * `NonNull<u8>` and `*mut u8` have the same layout;
        // * the first `n` rounds are valid object addresses (caller's count,
        //   module invariants), hence non-null;
        // * the slice borrows `self`, so the rounds are not changed meanwhile.
        unsafe { core::slice::from_raw_parts(self.rounds.as_ptr().cast::<NonNull<u8>>(), n) }
    }
}

/// A singly linked chain of magazines, built locally and handed on whole.
pub(crate) struct Chain<N: ArrayLength> {
    head: Option<MagBox<N>>,
    len: usize,
}

impl<N: ArrayLength> Chain<N> {
    /// An empty chain.
    pub(crate) const fn new() -> Self {
        Chain { head: None, len: 0 }
    }

    /// Adds a magazine at the head.
    pub(crate) fn push(&mut self, mut mag: MagBox<N>) {
        mag.next = self.head.take();
        self.head = Some(mag);
        self.len += 1;
    }

    /// Removes the head magazine.
    pub(crate) fn pop(&mut self) -> Option<MagBox<N>> {
        let mut mag = self.head.take()?;
        self.head = mag.next.take();
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

impl<N: ArrayLength> Drop for Chain<N> {
    fn drop(&mut self) {
        // Unlink iteratively so a long chain cannot overflow the stack.
        while self.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use generic_array::typenum::U8;

    #[test]
    fn new_magazine_is_empty_and_sized() {
        let mut m = Magazine::<U8>::new(5).unwrap();
        assert_eq!(m.cap, 5);
        assert!(m.next.is_none());
        let mut x = 7u8;
        let p = core::ptr::addr_of_mut!(x);
        m.set_round(0, p);
        assert_eq!(m.round(0), p);
        assert_eq!(m.valid(1)[0].as_ptr(), p);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn oversized_magazine_is_refused() {
        let _ = Magazine::<U8>::new(9);
    }

    #[test]
    fn chain_is_lifo() {
        let mut c = Chain::<U8>::new();
        for cap in 1..=3 {
            c.push(Magazine::new(cap).unwrap());
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.pop().unwrap().cap, 3);
        assert_eq!(c.pop().unwrap().cap, 2);
        assert_eq!(c.len(), 1);
        assert!(!c.is_empty());
    }
}

//! An object with an expensive constructor.
//!
//! Caching *constructed* objects is the point of Bonwick's object caches: a
//! cache that keeps objects constructed between `free` and `alloc` pays for
//! the constructor once per trip through the slab layer, not once per
//! allocation. The object here is a 256-byte lookup table (a CRC-32 table
//! for 64 byte values, each entry eight shift/xor rounds), built with a
//! polynomial the optimiser cannot see, so the constructor costs real work
//! (on the order of a few hundred instructions).

use core::ptr::NonNull;
use std::hint::black_box;

/// Size of the constructed object, in bytes.
pub const CTOR_OBJ_SIZE: usize = 256;

/// Number of `u32` words in the constructed object.
pub const CTOR_WORDS: usize = CTOR_OBJ_SIZE / 4;

/// The constructed object: a CRC-32 lookup table for byte values `0..64`.
#[repr(C, align(64))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// The table entries.
    pub words: [u32; CTOR_WORDS],
}

impl Table {
    /// Builds the table (the expensive constructor).
    #[inline(never)]
    pub fn new() -> Self {
        let mut t = Table {
            words: [0; CTOR_WORDS],
        };
        // SAFETY: `t` is a live, exclusively owned `Table`.
        unsafe { construct_at(NonNull::from(&mut t).cast()) };
        t
    }
}

impl Default for Table {
    fn default() -> Self {
        Table::new()
    }
}

impl sharded_slab::Clear for Table {
    /// A constructed table stays constructed while pooled.
    fn clear(&mut self) {}
}

/// The value entry `i` of a constructed table holds.
pub fn expected_word(i: usize) -> u32 {
    let mut c = i as u32;
    for _ in 0..8 {
        c = if c & 1 != 0 {
            0xEDB8_8320 ^ (c >> 1)
        } else {
            c >> 1
        };
    }
    c
}

/// Builds the table in place at `p`.
///
/// # Safety
///
/// `p` points at [`CTOR_OBJ_SIZE`] writable bytes, aligned for `u32`, that
/// the caller owns exclusively for the duration of the call.
#[inline(never)]
pub unsafe fn construct_at(p: NonNull<u8>) {
    let poly = black_box(0xEDB8_8320_u32);
    let words = p.cast::<u32>();
    for i in 0..CTOR_WORDS {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { poly ^ (c >> 1) } else { c >> 1 };
        }
        // SAFETY: `i < CTOR_WORDS`, so the write stays inside the
        // `CTOR_OBJ_SIZE` bytes the caller handed over; raw write, no
        // reference formed.
        unsafe { words.add(i).write(c) };
    }
}

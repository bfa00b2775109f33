//! The byte patterns of the debug mode and the raw-pointer loops that write
//! and check them.
//!
//! Objects are touched only through raw pointers, with volatile accesses
//! of single bytes or aligned 8-byte words: the memory may be visible to another process (an
//! `MMAPOK` region), so no Rust reference is formed into it, and the
//! compiler may not assume it keeps what was written.

/// Pattern of a freed object (libumem's `0xdeadbeef`), repeated
/// little-endian.
pub const FREE_PATTERN: u32 = 0xdead_beef;
/// Pattern of an object just handed out, before anyone wrote it (libumem's
/// `0xbaddcafe`), repeated little-endian.
pub const UNINIT_PATTERN: u32 = 0xbadd_cafe;

/// Byte `i` of a repeated 32-bit pattern.
#[inline]
fn word_byte(pattern: u32, i: usize) -> u8 {
    pattern.to_le_bytes()[i % 4]
}

/// Byte `i` of the redzone of the object at `addr`: derived from the
/// address (so a redzone copied from a neighbour does not pass), never
/// `0x00`, `0xff` or ASCII, so that the usual overruns (zeroes, strings,
/// `memset(-1)`) always differ from it.
#[inline]
fn guard_byte(addr: usize, i: usize) -> u8 {
    let word = (addr as u64 ^ 0x5ca1_ab1e_feed_face).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (word.to_le_bytes()[i % 8] | 0x80) & 0xfe
}

// The loops below write and check whole aligned 8-byte words (volatile,
// one access each) between a byte-wise head and tail: both patterns repeat
// with a period that divides 8 (4 bytes for the object patterns, 8 for the
// redzone), so every aligned word of a range holds the same value, computed
// once. Byte by byte, the checks cost about a thousand instructions per
// 64-byte object.

/// Writes `byte(i)` to `at + i` for every `i < len`; `byte` has a period
/// dividing 8.
///
/// # Safety
///
/// `at .. at + len` is writable memory the caller has exclusive use of.
#[inline]
#[allow(clippy::cast_ptr_alignment)] // the words start at `at + head`, 8-aligned
unsafe fn fill_with(at: *mut u8, len: usize, byte: impl Fn(usize) -> u8) {
    let head = at.align_offset(8).min(len);
    let words = (len - head) / 8;
    for i in (0..head).chain(head + 8 * words..len) {
        // SAFETY: `i < len`, inside the caller's range.
        unsafe { at.add(i).write_volatile(byte(i)) };
    }
    let word = u64::from_le_bytes(core::array::from_fn(|k| byte(head + k)));
    for j in 0..words {
        // SAFETY: inside the caller's range (`head + 8 * words <= len`) and
        // 8-aligned (`at + head` is).
        unsafe { at.add(head + 8 * j).cast::<u64>().write_volatile(word) };
    }
}

/// The first `i < len` where `at + i` does not hold `byte(i)`; `byte` has
/// a period dividing 8.
///
/// # Safety
///
/// `at .. at + len` is readable memory.
#[inline]
#[allow(clippy::cast_ptr_alignment)] // as in `fill_with`
unsafe fn find_mismatch(at: *const u8, len: usize, byte: impl Fn(usize) -> u8) -> Option<usize> {
    // SAFETY: `i < len`, inside the caller's range.
    let differs = |i: usize| unsafe { at.add(i).read_volatile() } != byte(i);
    let head = at.align_offset(8).min(len);
    if let Some(i) = (0..head).find(|&i| differs(i)) {
        return Some(i);
    }
    let words = (len - head) / 8;
    let word = u64::from_le_bytes(core::array::from_fn(|k| byte(head + k)));
    for j in 0..words {
        let at_word = head + 8 * j;
        // SAFETY: inside the caller's range and 8-aligned, as in `fill_with`.
        if unsafe { at.add(at_word).cast::<u64>().read_volatile() } != word {
            // Which byte: re-read them one by one (the word may change
            // meanwhile; the report names the first byte seen to differ).
            if let Some(i) = (at_word..at_word + 8).find(|&i| differs(i)) {
                return Some(i);
            }
        }
    }
    (head + 8 * words..len).find(|&i| differs(i))
}

/// Fills `len` bytes at `at` with `pattern`.
///
/// # Safety
///
/// `at .. at + len` is writable memory the caller has exclusive use of.
pub(crate) unsafe fn fill(at: *mut u8, len: usize, pattern: u32) {
    // SAFETY: forwarded from the caller.
    unsafe { fill_with(at, len, |i| word_byte(pattern, i)) }
}

/// The offset of the first of `len` bytes at `at` that differs from
/// `pattern`, if any.
///
/// # Safety
///
/// `at .. at + len` is readable memory.
pub(crate) unsafe fn first_mismatch(at: *const u8, len: usize, pattern: u32) -> Option<usize> {
    // SAFETY: forwarded from the caller.
    unsafe { find_mismatch(at, len, |i| word_byte(pattern, i)) }
}

/// Writes the redzone of the object at `obj`: `len` bytes from `obj +
/// start`.
///
/// # Safety
///
/// The range is writable memory the caller has exclusive use of.
pub(crate) unsafe fn fill_guard(obj: *mut u8, start: usize, len: usize) {
    let addr = obj as usize;
    // SAFETY: forwarded from the caller. The redzone's byte `i` is the
    // pattern's byte `i` counted from the redzone's start.
    unsafe { fill_with(obj.wrapping_add(start), len, |i| guard_byte(addr, i)) }
}

/// The offset (from `obj`) of the first damaged byte of its redzone.
///
/// # Safety
///
/// `obj + start .. obj + start + len` is readable memory.
pub(crate) unsafe fn check_guard(obj: *const u8, start: usize, len: usize) -> Option<usize> {
    let addr = obj as usize;
    // SAFETY: forwarded from the caller.
    unsafe { find_mismatch(obj.wrapping_add(start), len, |i| guard_byte(addr, i)) }
        .map(|i| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_bytes_are_never_zero_ff_or_ascii() {
        for addr in (0..4096usize).map(|i| 0x7f00_0000_0000 + i * 64) {
            for i in 0..16 {
                let b = guard_byte(addr, i);
                assert!(b >= 0x80 && b != 0xff, "{b:#x}");
            }
        }
    }

    /// The word-wise loops agree with a byte-by-byte reference at every
    /// start alignment, length and damaged position.
    #[test]
    fn word_loops_match_the_bytewise_reference() {
        let mut buf = [0u64; 8]; // 64 bytes, 8-aligned
        let base = buf.as_mut_ptr().cast::<u8>();
        for start in 0..9 {
            for len in 0..(64 - start).min(40) {
                // SAFETY: `start + len <= 64`, inside `buf`.
                let at = unsafe { base.add(start) };
                // SAFETY: as above.
                unsafe { fill(at, len, FREE_PATTERN) };
                for i in 0..len {
                    // SAFETY: as above.
                    assert_eq!(unsafe { at.add(i).read() }, word_byte(FREE_PATTERN, i));
                }
                // SAFETY: as above.
                assert_eq!(unsafe { first_mismatch(at, len, FREE_PATTERN) }, None);
                for bad in 0..len {
                    // SAFETY: as above.
                    unsafe { at.add(bad).write(!word_byte(FREE_PATTERN, bad)) };
                    // SAFETY: as above.
                    assert_eq!(unsafe { first_mismatch(at, len, FREE_PATTERN) }, Some(bad));
                    // SAFETY: as above.
                    unsafe { at.add(bad).write(word_byte(FREE_PATTERN, bad)) };
                }
                // SAFETY: as above (the redzone of an object at `base`).
                unsafe { fill_guard(base, start, len) };
                for i in 0..len {
                    // SAFETY: as above.
                    assert_eq!(unsafe { at.add(i).read() }, guard_byte(base as usize, i));
                }
                if len > 0 {
                    let bad = len - 1;
                    // SAFETY: as above.
                    unsafe { at.add(bad).write(0) };
                    // SAFETY: as above.
                    assert_eq!(unsafe { check_guard(base, start, len) }, Some(start + bad));
                }
            }
        }
    }

    #[test]
    fn fill_then_check_finds_the_first_changed_byte() {
        let mut buf = [0u8; 40];
        // SAFETY: a local buffer.
        unsafe {
            fill(buf.as_mut_ptr(), 24, FREE_PATTERN);
            fill_guard(buf.as_mut_ptr(), 24, 16);
            assert_eq!(first_mismatch(buf.as_ptr(), 24, FREE_PATTERN), None);
            assert_eq!(check_guard(buf.as_ptr(), 24, 16), None);
        }
        buf[5] = 0;
        buf[30] = 0;
        // SAFETY: a local buffer.
        unsafe {
            assert_eq!(first_mismatch(buf.as_ptr(), 24, FREE_PATTERN), Some(5));
            assert_eq!(check_guard(buf.as_ptr(), 24, 16), Some(30));
        }
    }
}

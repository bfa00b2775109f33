//! The byte patterns of the debug mode and the raw-pointer loops that write
//! and check them.
//!
//! Objects are touched only through raw pointers, byte by byte, with
//! volatile accesses: the memory may be visible to another process (an
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

/// Fills `len` bytes at `at` with `pattern`.
///
/// # Safety
///
/// `at .. at + len` is writable memory the caller has exclusive use of.
pub(crate) unsafe fn fill(at: *mut u8, len: usize, pattern: u32) {
    for i in 0..len {
        // SAFETY: `i < len`, inside the caller's range.
        unsafe { at.add(i).write_volatile(word_byte(pattern, i)) };
    }
}

/// The offset of the first of `len` bytes at `at` that differs from
/// `pattern`, if any.
///
/// # Safety
///
/// `at .. at + len` is readable memory.
pub(crate) unsafe fn first_mismatch(at: *const u8, len: usize, pattern: u32) -> Option<usize> {
    // SAFETY: `i < len`, inside the caller's range.
    (0..len).find(|&i| unsafe { at.add(i).read_volatile() } != word_byte(pattern, i))
}

/// Writes the redzone of the object at `obj`: `len` bytes from `obj +
/// start`.
///
/// # Safety
///
/// The range is writable memory the caller has exclusive use of.
pub(crate) unsafe fn fill_guard(obj: *mut u8, start: usize, len: usize) {
    let addr = obj as usize;
    for i in 0..len {
        // SAFETY: inside the caller's range.
        unsafe { obj.add(start + i).write_volatile(guard_byte(addr, i)) };
    }
}

/// The offset (from `obj`) of the first damaged byte of its redzone.
///
/// # Safety
///
/// `obj + start .. obj + start + len` is readable memory.
pub(crate) unsafe fn check_guard(obj: *const u8, start: usize, len: usize) -> Option<usize> {
    let addr = obj as usize;
    (0..len)
        // SAFETY: inside the caller's range.
        .find(|&i| unsafe { obj.add(start + i).read_volatile() } != guard_byte(addr, i))
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

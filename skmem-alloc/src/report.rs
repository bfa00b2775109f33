//! Reporting without allocating: messages are formatted into a stack buffer
//! and written to stderr with `write(2)`.
//!
//! The allocator cannot report through `eprintln!` (it may lock and
//! allocate) or `tracing` (a subscriber may allocate): it is the global
//! allocator, and a report often comes from inside it.

use core::fmt::{self, Write};

/// A fixed buffer that `fmt::Write` fills and silently truncates.
pub(crate) struct StackBuf {
    buf: [u8; 512],
    len: usize,
}

impl StackBuf {
    pub(crate) const fn new() -> Self {
        StackBuf {
            buf: [0; 512],
            len: 0,
        }
    }

    /// Writes the buffer to stderr (retrying short writes, ignoring errors:
    /// there is nobody to tell).
    pub(crate) fn flush_to_stderr(&self) {
        let mut done = 0;
        while done < self.len {
            // SAFETY: the range is inside `buf`.
            let n = unsafe { libc::write(2, self.buf[done..].as_ptr().cast(), self.len - done) };
            if n <= 0 {
                return;
            }
            done += n as usize;
        }
    }
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes `skmem-alloc: <message>` and a newline to stderr.
pub(crate) fn say(args: fmt::Arguments<'_>) {
    let mut b = StackBuf::new();
    let _ = b.write_str("skmem-alloc: ");
    let _ = b.write_fmt(args);
    let _ = b.write_str("\n");
    b.flush_to_stderr();
}

/// Reports a fatal misuse (a foreign or interior pointer, a full table) on
/// stderr and aborts the process (SIGABRT).
#[cold]
#[inline(never)]
pub(crate) fn die(args: fmt::Arguments<'_>) -> ! {
    say(args);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

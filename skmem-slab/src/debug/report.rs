//! Reports: formatted into a buffer on the stack (no allocation, since the
//! allocator may be skmem itself), written to stderr with `write(2)`.

use core::fmt::{self, Write};

use super::audit::{Ring, AUDIT_FRAMES};
use super::DebugFlags;

/// What a report is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReportKind {
    /// A free of an object that is not out (the reason names its state).
    DoubleFree(&'static str),
    /// An address in no object of the cache.
    Foreign,
    /// An address inside object `base`, `offset` bytes in.
    Interior { base: usize, offset: usize },
    /// The redzone of an object is damaged from `offset` (from the object's
    /// start) on.
    Overrun { offset: usize },
    /// A freed object was written at `offset` while it was free.
    UseAfterFree { offset: usize, in_magazine: bool },
}

/// One report about one address of one cache.
pub(crate) struct Report<'a> {
    pub(crate) cache: &'a str,
    pub(crate) addr: usize,
    pub(crate) obj_size: usize,
    pub(crate) kind: ReportKind,
    pub(crate) ring: Option<&'a Ring>,
}

/// A fixed buffer that `write!` fills; what does not fit is cut (and
/// marked).
pub(crate) struct StackBuf {
    buf: [u8; 3072],
    len: usize,
    cut: bool,
}

impl StackBuf {
    pub(crate) fn new() -> Self {
        StackBuf {
            buf: [0; 3072],
            len: 0,
            cut: false,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text (lossy only if a multi-byte character was cut).
    pub(crate) fn as_str(&self) -> &str {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const CUT: &[u8] = b"...\n";
        let room = self.buf.len() - CUT.len() - self.len;
        if s.len() > room {
            self.buf[self.len..self.len + room].copy_from_slice(&s.as_bytes()[..room]);
            self.len += room;
            if !self.cut {
                self.buf[self.len..self.len + CUT.len()].copy_from_slice(CUT);
                self.len += CUT.len();
                self.cut = true;
            }
            return Ok(());
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// Writes `bytes` to stderr with `write(2)`, retrying short writes; errors
/// are ignored (there is nowhere left to report them).
pub(crate) fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable buffer of its length.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Appends the audit lines of `ring` (newest first).
pub(crate) fn write_ring(out: &mut StackBuf, ring: &Ring) {
    let _ = writeln!(out, "  last transactions (newest first):");
    for txn in ring.newest_first() {
        let _ = write!(
            out,
            "    {:<22} thread {:<7} t={}.{:09}s callers",
            txn.kind.name(),
            txn.thread,
            txn.nanos / 1_000_000_000,
            txn.nanos % 1_000_000_000
        );
        for &ip in txn
            .frames
            .iter()
            .take(AUDIT_FRAMES)
            .take_while(|&&ip| ip != 0)
        {
            let _ = write!(out, " {ip:#x}");
        }
        let _ = writeln!(out);
    }
}

impl Report<'_> {
    /// The report's text.
    pub(crate) fn format(&self) -> StackBuf {
        let mut out = StackBuf::new();
        let _ = write!(
            out,
            "skmem debug: cache `{}`: {:#x}: ",
            self.cache, self.addr
        );
        let _ = match self.kind {
            ReportKind::DoubleFree(why) => writeln!(out, "{why}"),
            ReportKind::Foreign => writeln!(
                out,
                "free of a foreign pointer: not an object of this cache"
            ),
            ReportKind::Interior { base, offset } => writeln!(
                out,
                "free of an interior pointer: {offset} bytes into object {base:#x}"
            ),
            ReportKind::Overrun { offset } => writeln!(
                out,
                "redzone damaged (buffer overrun): first damaged byte at offset {offset}, byte {} past the end of the object (object size {})",
                offset + 1 - self.obj_size,
                self.obj_size
            ),
            ReportKind::UseAfterFree {
                offset,
                in_magazine,
            } => writeln!(
                out,
                "use after free: freed object written at offset {offset} while {} (object size {})",
                if in_magazine {
                    "resting in a magazine"
                } else {
                    "free in its slab"
                },
                self.obj_size
            ),
        };
        if let Some(ring) = self.ring {
            write_ring(&mut out, ring);
        }
        out
    }
}

/// Issues a formatted corruption report: stderr, a `tracing` event, the
/// process-wide count; then aborts unless `flags` has
/// [`CONTINUE`](DebugFlags::CONTINUE). Call with no lock held.
#[cold]
pub(crate) fn emit(text: &StackBuf, flags: DebugFlags) {
    super::count_report();
    write_stderr(text.as_bytes());
    tracing::error!(report = text.as_str(), "skmem debug report");
    if !flags.contains(DebugFlags::CONTINUE) {
        write_stderr(
            b"skmem debug: aborting (SKMEM_DEBUG=...,continue or DebugFlags::CONTINUE reports and continues)\n",
        );
        std::process::abort();
    }
}

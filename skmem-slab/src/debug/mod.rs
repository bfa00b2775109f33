//! The run-time debug mode of the slab layer (libumem's `UMEM_DEBUG` class):
//! redzones, freed/uninitialised patterns, checked frees, transaction audit
//! and leak reports.
//!
//! # Switching it on
//!
//! Per cache with [`SlabConfig::debug`](crate::SlabConfig::debug) (which the
//! magazine cache's builder, the packet pool and every other layer built on
//! a [`SlabCache`](crate::SlabCache) inherit, because the flags live in the
//! slab cache they stack on), or for the whole process with the environment
//! variable `SKMEM_DEBUG`, read once:
//!
//! ```text
//! SKMEM_DEBUG=guards,poison,audit,leaks   # any subset; `all` = all four
//! SKMEM_DEBUG=all,continue                # report and go on instead of aborting
//! ```
//!
//! [`SlabConfig::new`](crate::SlabConfig::new) starts from the process-wide
//! flags ([`env_flags`]); a cache's configuration may add or remove flags.
//!
//! # What each flag does
//!
//! * [`GUARDS`](DebugFlags::GUARDS): the bytes between the end of the object
//!   (`obj_size`) and the end of its chunk are a redzone, filled with a
//!   pattern derived from the object's address (libumem's buftag encodes the
//!   bufctl the same way) and checked on every free and when a magazine
//!   gives the object back (purge, reap, drop). Builders grow the chunk by
//!   [`GUARD_BYTES`] (see [`region_obj_size`]): the magazine cache's
//!   builder, the general-purpose allocator's classes and the packet pool
//!   (metadata, buflets, default and large buffers) all do; a hand-made
//!   region whose chunk leaves no room gets no redzone (said once on
//!   stderr). A packet's buffers stay attached to its constructed metadata
//!   while the metadata rests in the slab layer, so their redzones are
//!   checked when the metadata lets them go (reap, purge, the pool's drop).
//! * [`POISON`](DebugFlags::POISON): a freed object is filled with
//!   [`FREE_PATTERN`] and checked when it is handed out again (a write after
//!   free is reported with its offset); an object handed out is filled with
//!   [`UNINIT_PATTERN`] first, so reading it before writing shows the
//!   pattern. A [clear-on-free](crate::SlabConfig::clear_on_free) cache
//!   keeps its contract: its freed pattern is zero (checked the same way)
//!   and handed-out objects are not filled. **Constructed caches** (an active `ObjectCtor`) are checked on
//!   the way to the slab layer: the pattern is written after the destructor
//!   and verified before the constructor; the magazine layer keeps no
//!   constructed object in a debug magazine then, so every free reaches the
//!   slab layer and nothing the constructor owns is ever overwritten.
//! * Checked frees (always on in debug mode): a free is validated against
//!   the slab layer's record of the object before anything else happens,
//!   also when it goes into a magazine — double free (free, or resting in a
//!   magazine), foreign pointer, interior pointer (with its offset in the
//!   object it points into).
//! * [`AUDIT`](DebugFlags::AUDIT): the last [`AUDIT_DEPTH`] transactions of
//!   each object (alloc, free, into / out of a magazine), with thread id,
//!   time and up to [`AUDIT_FRAMES`] caller return addresses, shown in every
//!   report about the object and in leak reports.
//! * [`LEAKS`](DebugFlags::LEAKS): a report on stderr of what is still out
//!   when the cache is dropped and when the process exits (caches still
//!   alive then, e.g. in a `static`); with `SKMEM_DEBUG=leaks` also when a
//!   region is dropped with segments in use (regions have no per-region
//!   flags). The report is written whether or not a `tracing` subscriber
//!   is installed (and also sent to it).
//!
//! # Reports
//!
//! Reports go to stderr with one `write(2)`, formatted into a stack buffer
//! (no allocation: the allocator may be skmem itself), also as a
//! `tracing` error event. Corruption aborts the process unless
//! [`CONTINUE`](DebugFlags::CONTINUE) is set; then the bad operation is
//! refused (the object is left as it was) and [`report_count`] counts it.
//!
//! # Cost when off
//!
//! A debug cache keeps its slab bookkeeping in a second, private state; the
//! state the fast paths read stays empty, so every operation of a debug
//! cache misses it and falls into the cold paths where the checks run. A
//! cache with no flags runs exactly the instructions it ran before.

pub(crate) mod audit;
pub(crate) mod leaks;
pub(crate) mod patterns;
pub(crate) mod report;
mod tags;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub use audit::{Txn, TxnKind, AUDIT_DEPTH, AUDIT_FRAMES};
pub use patterns::{FREE_PATTERN, UNINIT_PATTERN};
pub(crate) use report::{Report, ReportKind};
pub(crate) use tags::{TagState, Tags};

pub(crate) use self::leaks::register_for_exit;

bitflags::bitflags! {
    /// Which debug checks a cache runs. See the [module docs](self).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct DebugFlags: u32 {
        /// Redzones after each object, checked on free and on purge.
        const GUARDS = 1 << 0;
        /// Freed objects filled with a pattern checked on reuse; new
        /// objects filled with another pattern.
        const POISON = 1 << 1;
        /// The last few transactions of each object, with callers.
        const AUDIT = 1 << 2;
        /// Outstanding objects reported at drop and at process exit.
        const LEAKS = 1 << 3;
        /// Report corruption and go on (the bad operation is refused)
        /// instead of aborting the process.
        const CONTINUE = 1 << 4;
        /// The four checks (not [`CONTINUE`](Self::CONTINUE)).
        const ALL = Self::GUARDS.bits() | Self::POISON.bits() | Self::AUDIT.bits() | Self::LEAKS.bits();
    }
}

impl DebugFlags {
    /// `true` when any check is on (a cache with only
    /// [`CONTINUE`](Self::CONTINUE) is not in debug mode).
    pub fn enabled(self) -> bool {
        self.intersects(Self::ALL)
    }

    /// Parses a `SKMEM_DEBUG` value: comma- or space-separated names among
    /// `guards`, `poison`, `audit`, `leaks`, `all`, `continue` (any case).
    /// An unknown name is an error naming it.
    pub fn parse(value: &str) -> Result<DebugFlags, String> {
        let mut flags = DebugFlags::empty();
        for word in value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
        {
            flags |= match word.to_ascii_lowercase().as_str() {
                "guards" | "guard" | "redzone" => DebugFlags::GUARDS,
                "poison" => DebugFlags::POISON,
                "audit" => DebugFlags::AUDIT,
                "leaks" | "leak" => DebugFlags::LEAKS,
                "all" | "default" => DebugFlags::ALL,
                "continue" => DebugFlags::CONTINUE,
                other => {
                    return Err(format!(
                        "unknown SKMEM_DEBUG option `{other}` (known: guards, poison, audit, leaks, all, continue)"
                    ))
                }
            };
        }
        Ok(flags)
    }
}

/// Bytes of redzone a builder adds to each object's chunk when
/// [`DebugFlags::GUARDS`] is on (libumem's buftag is two words too).
pub const GUARD_BYTES: usize = 16;

/// The process-wide flags from `SKMEM_DEBUG`, read once. An unparsable value
/// is reported on stderr once and counts as no flags.
pub fn env_flags() -> DebugFlags {
    static FLAGS: OnceLock<DebugFlags> = OnceLock::new();
    *FLAGS.get_or_init(|| match std::env::var("SKMEM_DEBUG") {
        Ok(value) => match DebugFlags::parse(&value) {
            Ok(flags) => flags,
            Err(why) => {
                report::write_stderr(format!("skmem: SKMEM_DEBUG ignored: {why}\n").as_bytes());
                DebugFlags::empty()
            }
        },
        Err(_) => DebugFlags::empty(),
    })
}

/// The object size a region should be asked for so that objects of
/// `obj_size` bytes get a full redzone under `flags` (unchanged without
/// [`DebugFlags::GUARDS`]): the grown object stride of a debug cache.
pub fn region_obj_size(obj_size: usize, flags: DebugFlags) -> usize {
    if flags.contains(DebugFlags::GUARDS) {
        obj_size.saturating_add(GUARD_BYTES)
    } else {
        obj_size
    }
}

static REPORTS: AtomicU64 = AtomicU64::new(0);

/// Corruption and misuse reports issued so far by every debug cache of the
/// process (leak reports not included). With
/// [`DebugFlags::CONTINUE`] this is how a test sees that a check fired.
pub fn report_count() -> u64 {
    REPORTS.load(Ordering::Relaxed)
}

fn count_report() {
    REPORTS.fetch_add(1, Ordering::Relaxed);
}

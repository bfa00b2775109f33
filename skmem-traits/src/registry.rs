//! The process-wide registry of everything skmem builds: regions, slab
//! caches, magazine caches, packet pools, arenas, and whatever else a layer
//! registers (the general-purpose allocator's size classes: see
//! [`Stats::Custom`]).
//!
//! # How it works
//!
//! The registry is one copy-on-write list behind a
//! [`crossbeam_epoch::Atomic`] pointer. A reader ([`for_each`],
//! [`snapshot`], [`dump`]) pins the epoch, loads the pointer and walks the
//! list it found: no lock, no write to shared state beyond the epoch pin,
//! so it never waits for a writer and never makes one wait. A writer
//! ([`register`], [`Registration`]'s drop) copies the list, edits the copy
//! and installs it with one compare-and-swap, retrying if another writer
//! got there first (lock-free); the list it replaced is freed by the epoch
//! collector once no reader pinned before the swap can still see it.
//!
//! Entries hold a [`Weak`] reference: the registry never keeps an object
//! alive, a reader upgrades the reference for the length of one call, and
//! an entry whose object is gone is skipped and pruned by the next write.
//! Writers cost O(entries) (the copy); objects are created far less often
//! than they are used, and readers are what must never block.
//!
//! Registering and walking allocate (the list copy, the stats snapshots,
//! crossbeam-epoch's per-thread record on a thread's first pin) through
//! the global allocator: a global allocator built on skmem registers its
//! size classes once, from outside its own `alloc` (for example lazily on
//! the first call that is not re-entrant), never from inside it.
//!
//! # Invariants
//!
//! * `LIST` is null or points to a `List` allocated by `Owned::new` that
//!   no writer mutates after publishing it.
//! * A list is handed to `defer_destroy` only by the writer whose
//!   compare-and-swap unlinked it, so exactly once.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crossbeam_epoch::{self as epoch, Atomic, Owned};

use crate::stats::{
    table, ArenaSummary, CacheStats, CustomStats, PoolSummary, RegionStats, SlabStats,
};

/// What kind of object a registry entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Kind {
    /// A [`RegionStats`] source.
    Region,
    /// A slab cache on its own ([`SlabStats`]).
    Slab,
    /// A magazine cache ([`CacheStats`], its slab layer included).
    Cache,
    /// A packet pool ([`PoolSummary`]).
    Pool,
    /// An arena ([`ArenaSummary`]).
    Arena,
    /// Anything else ([`CustomStats`]), e.g. an allocator's size class.
    Custom,
}

/// One entry's statistics, of the kind the entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Stats {
    /// A region.
    Region(RegionStats),
    /// A slab cache.
    Slab(SlabStats),
    /// A magazine cache.
    Cache(CacheStats),
    /// A packet pool.
    Pool(PoolSummary),
    /// An arena.
    Arena(ArenaSummary),
    /// Anything else.
    Custom(CustomStats),
}

impl Stats {
    /// The kind of object these statistics describe.
    pub fn kind(&self) -> Kind {
        match self {
            Stats::Region(_) => Kind::Region,
            Stats::Slab(_) => Kind::Slab,
            Stats::Cache(_) => Kind::Cache,
            Stats::Pool(_) => Kind::Pool,
            Stats::Arena(_) => Kind::Arena,
            Stats::Custom(_) => Kind::Custom,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            Stats::Region(s) => &s.name,
            Stats::Slab(s) => &s.name,
            Stats::Cache(s) => &s.name,
            Stats::Pool(s) => &s.name,
            Stats::Arena(s) => &s.name,
            Stats::Custom(s) => &s.name,
        }
    }
}

/// What the registry asks of a registered object.
///
/// `stats` is called from any thread, at any time while the object is
/// alive, by readers that walk the registry (a dump, the stats publisher):
/// it should take the object's locks only briefly. `update` and `reclaim`
/// are what [`update_all`] and [`reap_all`] run; objects without such
/// maintenance keep the default (nothing).
pub trait Registered: Send + Sync {
    /// A snapshot of the object's statistics.
    fn stats(&self) -> Stats;
    /// Periodic working-set update (the seed's update thread call).
    fn update(&self) {}
    /// Gives memory back (the seed's reap thread call); `lowmem` asks for
    /// more.
    fn reclaim(&self, lowmem: bool) {
        let _ = lowmem;
    }
    /// The object itself, for a layer that lists its own kind with more
    /// detail than [`Stats`] carries (the arena's `all_stats` downcasts
    /// its entries); `None` (the default) keeps the object opaque.
    fn as_any(&self) -> Option<&dyn core::any::Any> {
        None
    }
}

#[derive(Clone)]
struct Entry {
    id: u64,
    kind: Kind,
    object: Weak<dyn Registered>,
}

#[derive(Clone, Default)]
struct List {
    entries: Vec<Entry>,
}

static LIST: Atomic<List> = Atomic::null();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Replaces the list with `edit(copy of the list)`, pruning dead entries.
fn rewrite(mut edit: impl FnMut(&mut Vec<Entry>)) {
    let guard = epoch::pin();
    let mut current = LIST.load(Ordering::Acquire, &guard);
    loop {
        // SAFETY: `current` was loaded under `guard`, so the list it points
        // to (if any) is not freed while `guard` lives (invariants above).
        let mut next = match unsafe { current.as_ref() } {
            Some(list) => list.clone(),
            None => List::default(),
        };
        next.entries.retain(|e| e.object.strong_count() > 0);
        edit(&mut next.entries);
        match LIST.compare_exchange(
            current,
            Owned::new(next),
            Ordering::AcqRel,
            Ordering::Acquire,
            &guard,
        ) {
            Ok(_) => {
                if !current.is_null() {
                    // SAFETY: this writer's swap unlinked `current`, so no
                    // reader pinned from now on can reach it and no other
                    // writer will defer it again.
                    unsafe { guard.defer_destroy(current) };
                }
                return;
            }
            Err(e) => current = e.current,
        }
    }
}

/// Lists `object` until the returned [`Registration`] is dropped (or the
/// object dies: entries are weak).
///
/// Creating and dropping registrations never waits for readers.
pub fn register(kind: Kind, object: Weak<dyn Registered>) -> Registration {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let entry = Entry { id, kind, object };
    rewrite(|entries| entries.push(entry.clone()));
    Registration { id }
}

/// An object's place in the registry: dropping it removes the entry.
#[derive(Debug)]
pub struct Registration {
    id: u64,
}

impl Registration {
    /// The entry's id, unique in this process.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let id = self.id;
        rewrite(|entries| entries.retain(|e| e.id != id));
    }
}

/// Calls `f(id, kind, object)` for every live registered object, in
/// registration order, without taking any lock: objects may be created
/// and dropped meanwhile (an object registered during the walk may be
/// missed; one dropped during the walk is either seen alive or skipped).
pub fn for_each(mut f: impl FnMut(u64, Kind, &dyn Registered)) {
    let guard = epoch::pin();
    let list = LIST.load(Ordering::Acquire, &guard);
    // SAFETY: loaded under `guard`; lists are immutable once published and
    // freed only after every guard pinned before their unlinking is gone.
    let Some(list) = (unsafe { list.as_ref() }) else {
        return;
    };
    for e in &list.entries {
        if let Some(object) = e.object.upgrade() {
            f(e.id, e.kind, &*object);
        }
    }
}

/// Statistics of every live registered object, with its id.
pub fn snapshot() -> Vec<(u64, Stats)> {
    let mut out = Vec::new();
    for_each(|id, _, o| out.push((id, o.stats())));
    out
}

/// Statistics of every live registered object of one kind.
pub fn stats_of(kind: Kind) -> Vec<Stats> {
    let mut out = Vec::new();
    for_each(|_, k, o| {
        if k == kind {
            out.push(o.stats());
        }
    });
    out
}

/// Runs [`Registered::update`] on every registered object.
pub fn update_all() {
    for_each(|_, _, o| o.update());
}

/// Runs [`Registered::reclaim`] on every registered object.
pub fn reap_all(lowmem: bool) {
    for_each(|_, _, o| o.reclaim(lowmem));
}

/// Every registered object's statistics as plain-text tables, one per kind
/// (what `rte_mempool_dump` gives DPDK users).
pub fn dump() -> String {
    let mut s = String::new();
    let _ = dump_to(&mut s);
    s
}

/// [`dump`] into any writer (a fixed buffer, a file adapter).
pub fn dump_to(out: &mut dyn fmt::Write) -> fmt::Result {
    let mut all: Vec<Stats> = snapshot().into_iter().map(|(_, s)| s).collect();
    all.sort_by_key(Stats::kind);
    write_tables(out, &all)
}

/// Writes `stats` as one table per kind, in the order they come.
pub fn write_tables(out: &mut dyn fmt::Write, stats: &[Stats]) -> fmt::Result {
    macro_rules! section {
        ($variant:ident, $title:expr) => {{
            let rows: Vec<_> = stats
                .iter()
                .filter_map(|s| match s {
                    Stats::$variant(x) => Some(x.clone()),
                    _ => None,
                })
                .collect();
            if !rows.is_empty() {
                writeln!(out, "{} ({})", $title, rows.len())?;
                write!(out, "{}", table(&rows))?;
                writeln!(out)?;
            }
        }};
    }
    section!(Region, "regions");
    section!(Slab, "slab caches");
    section!(Cache, "magazine caches");
    section!(Pool, "packet pools");
    section!(Arena, "arenas");
    section!(Custom, "other");
    Ok(())
}

/// A name for a registry kind, as the tables and the published records
/// use it.
pub fn kind_name(kind: Kind) -> Cow<'static, str> {
    Cow::Borrowed(match kind {
        Kind::Region => "region",
        Kind::Slab => "slab",
        Kind::Cache => "cache",
        Kind::Pool => "pool",
        Kind::Arena => "arena",
        Kind::Custom => "custom",
    })
}

/// Registers `object` (an `Arc` the caller keeps) and returns the
/// registration; a shorthand for [`register`] with a coerced weak pointer.
pub fn register_arc<T: Registered + 'static>(kind: Kind, object: &Arc<T>) -> Registration {
    let weak: Weak<T> = Arc::downgrade(object);
    register(kind, weak)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    struct Probe(String);
    impl Registered for Probe {
        fn stats(&self) -> Stats {
            Stats::Custom(CustomStats {
                kind: "probe".into(),
                name: self.0.clone(),
                values: alloc::vec![("n".into(), 1)],
            })
        }
    }

    #[test]
    fn entries_come_and_go() {
        let a = Arc::new(Probe("registry-test-a".to_string()));
        let reg = register_arc(Kind::Custom, &a);
        let names = |prefix: &str| {
            snapshot()
                .into_iter()
                .filter(|(_, s)| s.name().starts_with(prefix))
                .count()
        };
        assert_eq!(names("registry-test-a"), 1);
        assert!(dump().contains("registry-test-a"));
        drop(reg);
        assert_eq!(names("registry-test-a"), 0);
        // A dead object is skipped even while its registration lives.
        let b = Arc::new(Probe("registry-test-b".to_string()));
        let reg_b = register_arc(Kind::Custom, &b);
        drop(b);
        assert_eq!(names("registry-test-b"), 0);
        drop(reg_b);
    }
}

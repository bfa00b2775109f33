//! The reader: maps another process's published stats read-only and
//! returns typed snapshots.
//!
//! Invariants: `Reader::shared` is a read-only mapping of `len` bytes that
//! lives until the reader is dropped; the file behind it is sealed against
//! shrinking (checked in `from_fd`), so no access inside `len` can fault.

use std::fmt;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::SealFlags;
use rustix::mm::{MapFlags, ProtFlags};

use crate::layout::{decode, off, Shared, HEADER_SIZE, MAGIC, RECORD_SIZE, VERSION};
use skmem_traits::registry::Stats;

/// Why a published region cannot be read.
#[derive(Debug)]
pub enum ReadError {
    /// No process with this pid (it exited, or never was).
    NoSuchProcess(u32),
    /// The process runs but publishes no `skmem-stats` memfd (start it
    /// with `SKMEM_STATS=publish`, or call `skmem_stats::publish`).
    NotPublishing(u32),
    /// The process published stats and has exited since.
    PeerExited(u32),
    /// The region is smaller than its header or its records need.
    Truncated {
        /// Bytes the region has.
        len: u64,
        /// Bytes it needs.
        needed: u64,
    },
    /// The region does not hold skmem stats, or holds inconsistent ones.
    Garbage(String),
    /// The region has a layout version this reader does not know.
    UnknownVersion {
        /// Version found.
        found: u32,
        /// Version this reader reads.
        supported: u32,
    },
    /// The writer kept rewriting a record for too long.
    Busy,
    /// A system call failed.
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NoSuchProcess(p) => write!(f, "no process {p}"),
            ReadError::NotPublishing(p) => write!(
                f,
                "process {p} publishes no skmem stats (run it with SKMEM_STATS=publish)"
            ),
            ReadError::PeerExited(p) => write!(f, "process {p} has exited"),
            ReadError::Truncated { len, needed } => write!(
                f,
                "the stats region is truncated: {len} bytes, its header needs {needed}"
            ),
            ReadError::Garbage(why) => write!(f, "the stats region is not valid: {why}"),
            ReadError::UnknownVersion { found, supported } => write!(
                f,
                "the stats region has layout version {found}; this reader reads version {supported} (upgrade skmem-top)"
            ),
            ReadError::Busy => write!(f, "the stats writer kept rewriting a record; try again"),
            ReadError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ReadError {
    let what = what.into();
    move |source| ReadError::Io { what, source }
}

/// One published object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotEntry {
    /// Registry id in the publishing process.
    pub id: u64,
    /// Its statistics.
    pub stats: Stats,
}

/// One consistent read of the published region (each record whole; the
/// records of one refresh unless a refresh ran during the read).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The publishing process.
    pub pid: u32,
    /// Refreshes the writer had done.
    pub generation: u64,
    /// Time of that refresh, ns since the Unix epoch.
    pub time_ns: u64,
    /// The writer's refresh interval, ns.
    pub interval_ns: u64,
    /// Registry entries that did not fit the region.
    pub dropped: u64,
    /// The objects.
    pub entries: Vec<SnapshotEntry>,
}

impl Snapshot {
    /// The magazine caches.
    pub fn caches(&self) -> impl Iterator<Item = &skmem_traits::stats::CacheStats> {
        self.entries.iter().filter_map(|e| match &e.stats {
            Stats::Cache(c) => Some(c),
            _ => None,
        })
    }
    /// The regions.
    pub fn regions(&self) -> impl Iterator<Item = &skmem_traits::stats::RegionStats> {
        self.entries.iter().filter_map(|e| match &e.stats {
            Stats::Region(r) => Some(r),
            _ => None,
        })
    }
    /// The packet pools.
    pub fn pools(&self) -> impl Iterator<Item = &skmem_traits::stats::PoolSummary> {
        self.entries.iter().filter_map(|e| match &e.stats {
            Stats::Pool(p) => Some(p),
            _ => None,
        })
    }
    /// The arenas.
    pub fn arenas(&self) -> impl Iterator<Item = &skmem_traits::stats::ArenaSummary> {
        self.entries.iter().filter_map(|e| match &e.stats {
            Stats::Arena(a) => Some(a),
            _ => None,
        })
    }
}

/// A read-only mapping of a published stats region.
pub struct Reader {
    shared: Shared,
    capacity: usize,
    pid: Option<u32>,
    _fd: OwnedFd,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("pid", &self.pid)
            .field("len", &self.shared.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

// SAFETY: the mapping is owned by the reader and only read through
// volatile accesses; nothing in it is tied to a thread.
unsafe impl Send for Reader {}

/// Whether process `pid` runs: it exists and is not a zombie (a peer that
/// exited but was not reaped yet still has a `/proc` entry).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The fd of process `pid` that is a memfd named `skmem-stats`.
fn find_memfd(pid: u32) -> Result<PathBuf, ReadError> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        return Err(ReadError::NoSuchProcess(pid));
    }
    let fds =
        std::fs::read_dir(proc_dir.join("fd")).map_err(io(format!("listing /proc/{pid}/fd")))?;
    let wanted = format!("/memfd:{}", crate::MEMFD_NAME);
    for fd in fds.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if t == wanted || t.strip_prefix(&wanted) == Some(" (deleted)") {
                return Ok(fd.path());
            }
        }
    }
    Err(ReadError::NotPublishing(pid))
}

impl Reader {
    /// Finds process `pid`'s `skmem-stats` memfd under `/proc/PID/fd` and
    /// maps it read-only.
    pub fn attach(pid: u32) -> Result<Reader, ReadError> {
        let path = find_memfd(pid)?;
        let file = File::open(&path).map_err(|e| {
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                io(format!("opening {}", path.display()))(e)
            } else {
                ReadError::PeerExited(pid)
            }
        })?;
        Reader::from_fd(OwnedFd::from(file), Some(pid))
    }

    /// Maps an open stats region read-only and checks its header. `pid`,
    /// when given, is checked for liveness on every read.
    pub fn from_fd(fd: OwnedFd, pid: Option<u32>) -> Result<Reader, ReadError> {
        // The seal first, the size second: a file that may still shrink
        // could lose pages between the `fstat` and the reads (SIGBUS), and
        // once the seal is on the size read after it can only grow.
        let seals = rustix::fs::fcntl_get_seals(&fd).unwrap_or(SealFlags::empty());
        if !seals.contains(SealFlags::SHRINK) {
            return Err(ReadError::Garbage(
                "the region is not sealed against shrinking (not written by skmem-stats)".into(),
            ));
        }
        let stat = rustix::fs::fstat(&fd).map_err(|e| io("fstat of the stats region")(e.into()))?;
        let len = stat.st_size.max(0) as u64;
        if len < HEADER_SIZE as u64 {
            return Err(ReadError::Truncated {
                len,
                needed: HEADER_SIZE as u64,
            });
        }
        let map_len = usize::try_from(len)
            .map_err(|_| ReadError::Garbage(format!("{len} bytes do not fit the address space")))?;
        // SAFETY: a fresh read-only shared mapping at an address the
        // kernel picks; the file is sealed against shrinking, so every
        // byte of it stays backed.
        let base = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                map_len,
                ProtFlags::READ,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| io("mapping the stats region")(e.into()))?;
        let shared = Shared {
            base: base.cast::<u8>(),
            len: map_len,
        };
        // From here on the mapping is owned by the reader (unmapped on drop).
        let mut reader = Reader {
            shared,
            capacity: 0,
            pid,
            _fd: fd,
        };
        let magic = shared.read_u64(off::MAGIC);
        if magic != MAGIC {
            return Err(ReadError::Garbage(format!(
                "magic {magic:#018x}, expected {MAGIC:#018x} (\"SKMEMST1\")"
            )));
        }
        let version = shared.read_u32(off::VERSION);
        if version != VERSION {
            return Err(ReadError::UnknownVersion {
                found: version,
                supported: VERSION,
            });
        }
        let header = shared.read_u32(off::HEADER_SIZE) as usize;
        let record = shared.read_u32(off::RECORD_SIZE) as usize;
        if header != HEADER_SIZE || record != RECORD_SIZE {
            return Err(ReadError::Garbage(format!(
                "header size {header} / record size {record}, version {VERSION} has {HEADER_SIZE} / {RECORD_SIZE}"
            )));
        }
        let capacity = shared.read_u32(off::CAPACITY) as usize;
        let needed = (HEADER_SIZE + capacity * RECORD_SIZE) as u64;
        if needed > len {
            return Err(ReadError::Truncated { len, needed });
        }
        reader.capacity = capacity;
        Ok(reader)
    }

    /// The pid given to [`attach`](Self::attach) (or `from_fd`).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Reads a snapshot: the header under its seqlock, then every record
    /// under its own. Fails with [`ReadError::PeerExited`] once the
    /// publishing process is gone.
    pub fn read(&self) -> Result<Snapshot, ReadError> {
        if let Some(pid) = self.pid {
            if !alive(pid) {
                return Err(ReadError::PeerExited(pid));
            }
        }
        let s = &self.shared;
        let mut tries = 0u32;
        let (count, generation, time_ns, interval_ns, dropped, pid) = loop {
            let before = s.read_u64(off::SEQ);
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            let fields = (
                s.read_u64(off::COUNT),
                s.read_u64(off::GENERATION),
                s.read_u64(off::TIME_NS),
                s.read_u64(off::INTERVAL_NS),
                s.read_u64(off::DROPPED),
                s.read_u64(off::PID),
            );
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            if before & 1 == 0 && s.read_u64(off::SEQ) == before {
                break fields;
            }
            tries += 1;
            if tries > 1_000_000 {
                return Err(ReadError::Busy);
            }
            std::hint::spin_loop();
        };
        if count > self.capacity as u64 {
            return Err(ReadError::Garbage(format!(
                "{count} records claimed, the region holds {}",
                self.capacity
            )));
        }
        let mut entries = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let raw = self.read_record(i)?;
            let stats = decode(&raw).ok_or_else(|| {
                ReadError::Garbage(format!("record {i} has unknown kind {}", raw.kind))
            })?;
            entries.push(SnapshotEntry { id: raw.id, stats });
        }
        Ok(Snapshot {
            pid: pid as u32,
            generation,
            time_ns,
            interval_ns,
            dropped,
            entries,
        })
    }

    /// Reads record `i` (below the capacity) under its seqlock.
    pub fn read_record(&self, i: usize) -> Result<crate::layout::RawRecord, ReadError> {
        if i >= self.capacity {
            return Err(ReadError::Garbage(format!(
                "record {i} is past the capacity {}",
                self.capacity
            )));
        }
        for _ in 0..1_000_000 {
            match self.shared.try_read_record(i) {
                Some(Ok(r)) => return Ok(r),
                Some(Err(why)) => return Err(ReadError::Garbage(format!("record {i}: {why}"))),
                None => std::hint::spin_loop(),
            }
        }
        Err(ReadError::Busy)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // SAFETY: mapped in `from_fd` with this length; no pointer into it
        // outlives the reader.
        let _ = unsafe { rustix::mm::munmap(self.shared.base.cast(), self.shared.len) };
    }
}

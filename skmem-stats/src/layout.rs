//! The layout of the published region (version 2) and the seqlocked
//! accessors over it.
//!
//! ```text
//! offset  size  header (HEADER_SIZE = 128 bytes, little-endian, native words)
//!      0     8  magic  = "SKMEMST1" as a u64 (MAGIC)
//!      8     4  version = 2 (VERSION)
//!     12     4  header size (128)
//!     16     4  record size (512)
//!     20     4  capacity: records the region holds
//!     24     8  header seqlock word (odd while the writer updates the fields below)
//!     32     8  count: records valid in this snapshot
//!     40     8  pid of the writer
//!     48     8  generation: refreshes so far
//!     56     8  time of the last refresh, ns since the Unix epoch
//!     64     8  refresh interval, ns
//!     72     8  registry entries that did not fit (capacity too small)
//!     80    48  reserved (zero)
//!
//! record i at 128 + i * 512:
//!      0     8  record seqlock word (odd while the writer rewrites the record)
//!      8     4  kind (1 region, 2 slab, 3 cache, 4 pool, 5 arena, 6 custom)
//!     12     2  name length (≤ 64)
//!     14     2  aux length (≤ 32): source, locality or custom kind
//!     16     8  registry id
//!     24    64  name (UTF-8, truncated at a character boundary)
//!     88    32  aux
//!    120   392  49 counters (u64), in the order of the kind's field list
//! ```
//!
//! A custom record's counters are: word 0 = `n | names_len << 32`, then the
//! `n` values, then the counters' names as UTF-8 separated by NUL bytes,
//! `names_len` bytes packed into the words after the values (names that do
//! not fit are cut at a name boundary; a reader numbers the missing ones
//! `"0"`, `"1"`, ...). Version 1 published no names.
//!
//! # Seqlocks
//!
//! The writer makes a word odd, issues a release fence, writes the data,
//! issues a release fence and makes the word even again (one higher than
//! before it started). A reader reads the word, an acquire fence, the data,
//! an acquire fence, and the word again; it keeps the data only if both
//! reads are equal and even. The words are read and written with single
//! aligned volatile accesses (one instruction each on x86-64 and aarch64),
//! never through Rust references: the memory is shared with another
//! process that may write it at any time.

use skmem_traits::registry::{Kind, Stats};
use skmem_traits::stats::{
    ArenaSummary, CacheStats, CustomStats, PoolSummary, RegionStats, SlabStats,
};

/// `"SKMEMST1"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SKMEMST1");
/// The layout version this crate writes and reads (2: custom records carry
/// their counters' names).
pub const VERSION: u32 = 2;
/// Bytes of the header.
pub const HEADER_SIZE: usize = 128;
/// Bytes of one record.
pub const RECORD_SIZE: usize = 512;
/// Bytes of a record's name field.
pub const NAME_LEN: usize = 64;
/// Bytes of a record's aux field.
pub const AUX_LEN: usize = 32;
/// Counters in a record.
pub const VALUES: usize = 49;

pub(crate) mod off {
    pub(crate) const MAGIC: usize = 0;
    pub(crate) const VERSION: usize = 8;
    pub(crate) const HEADER_SIZE: usize = 12;
    pub(crate) const RECORD_SIZE: usize = 16;
    pub(crate) const CAPACITY: usize = 20;
    pub(crate) const SEQ: usize = 24;
    pub(crate) const COUNT: usize = 32;
    pub(crate) const PID: usize = 40;
    pub(crate) const GENERATION: usize = 48;
    pub(crate) const TIME_NS: usize = 56;
    pub(crate) const INTERVAL_NS: usize = 64;
    pub(crate) const DROPPED: usize = 72;

    pub(crate) const R_SEQ: usize = 0;
    pub(crate) const R_KIND: usize = 8;
    pub(crate) const R_NAME_LEN: usize = 12;
    pub(crate) const R_AUX_LEN: usize = 14;
    pub(crate) const R_ID: usize = 16;
    pub(crate) const R_NAME: usize = 24;
    pub(crate) const R_AUX: usize = 88;
    pub(crate) const R_VALUES: usize = 120;
}

/// One record's contents, as plain data (what a seqlock protects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Kind code.
    pub kind: u32,
    /// Registry id.
    pub id: u64,
    /// Name bytes (`NAME_LEN` at most).
    pub name: Vec<u8>,
    /// Aux bytes (`AUX_LEN` at most).
    pub aux: Vec<u8>,
    /// Counters.
    pub values: [u64; VALUES],
}

pub(crate) fn kind_code(kind: Kind) -> u32 {
    match kind {
        Kind::Region => 1,
        Kind::Slab => 2,
        Kind::Cache => 3,
        Kind::Pool => 4,
        Kind::Arena => 5,
        Kind::Custom => 6,
    }
}

fn truncate(s: &str, max: usize) -> &[u8] {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s.as_bytes()[..end]
}

macro_rules! put {
    ($v:ident, $i:ident, $s:expr, [$($f:ident),*]) => {{
        $( $v[$i] = $s.$f as u64; $i += 1; )*
    }};
}
macro_rules! take {
    ($v:ident, $i:ident, $s:expr, [$($f:ident),*]) => {{
        $( $s.$f = $v[$i] as _; $i += 1; )*
    }};
}
macro_rules! region_fields {
    ($m:ident, $v:ident, $i:ident, $s:expr) => {
        $m!(
            $v,
            $i,
            $s,
            [
                mode, r_seg_size, c_seg_size, seg_cnt, seg_objs, r_obj_size, r_obj_cnt, c_obj_size,
                c_obj_cnt, align, memtotal, meminuse, w_meminuse, seginuse, alloc, free, create,
                destroy, alloc_fail, waits
            ]
        )
    };
}
macro_rules! slab_fields {
    ($m:ident, $v:ident, $i:ident, $s:expr) => {
        $m!(
            $v,
            $i,
            $s,
            [
                objsize,
                objalign,
                chunksize,
                slabsize,
                chunks_per_slab,
                sl_create,
                sl_destroy,
                sl_alloc,
                sl_free,
                sl_alloc_fail,
                sl_partial,
                sl_full,
                sl_empty,
                sl_bufinuse,
                sl_hash_size,
                ctor,
                dtor
            ]
        )
    };
}
macro_rules! cache_fields {
    ($m:ident, $v:ident, $i:ident, $s:expr) => {
        $m!(
            $v,
            $i,
            $s,
            [
                cpu_mag_size,
                cpu_mag_resize,
                cpu_mag_purge,
                cpu_mag_reap,
                depot_full,
                depot_empty,
                depot_ws_zero,
                depot_contention,
                cpu_rounds,
                cpu_prounds,
                cpu_alloc,
                cpu_free,
                depot_full_alloc,
                depot_empty_alloc,
                cpu_slots,
                cached_objs
            ]
        )
    };
}
macro_rules! pool_fields {
    ($m:ident, $v:ident, $i:ident, $s:expr) => {
        $m!(
            $v,
            $i,
            $s,
            [
                md_capacity,
                buf_size,
                packets_out,
                buflets_out,
                upp_packets,
                upp_buflets,
                meminuse
            ]
        )
    };
}
macro_rules! arena_fields {
    ($m:ident, $v:ident, $i:ident, $s:expr) => {
        $m!(
            $v,
            $i,
            $s,
            [
                mem_total,
                mem_inuse,
                map_size,
                local_views,
                remote_views,
                redirects
            ]
        )
    };
}

/// Encodes one registry entry as a record. Custom counters beyond
/// [`VALUES`] - 1 are dropped, and so are the names that do not fit in the
/// words after the values (a reader numbers those `"0"`, `"1"`, ...).
pub fn encode(id: u64, stats: &Stats) -> RawRecord {
    let mut v = [0u64; VALUES];
    let mut i = 0usize;
    let aux: &str = match stats {
        Stats::Region(s) => {
            region_fields!(put, v, i, s);
            &s.source
        }
        Stats::Slab(s) => {
            slab_fields!(put, v, i, s);
            ""
        }
        Stats::Cache(s) => {
            cache_fields!(put, v, i, s);
            slab_fields!(put, v, i, s.slab);
            &s.locality
        }
        Stats::Pool(s) => {
            pool_fields!(put, v, i, s);
            &s.source
        }
        Stats::Arena(s) => {
            arena_fields!(put, v, i, s);
            v[i] = u64::from(s.defunct);
            i += 1;
            ""
        }
        Stats::Custom(s) => {
            let n = s.values.len().min(VALUES - 1);
            for (k, (_, value)) in s.values.iter().take(n).enumerate() {
                v[k + 1] = *value;
            }
            // The names, NUL-separated, in the words left after the values.
            let room = (VALUES - 1 - n) * 8;
            let mut names = Vec::with_capacity(room);
            for (k, (name, _)) in s.values.iter().take(n).enumerate() {
                let extra = name.len() + usize::from(k > 0);
                if names.len() + extra > room {
                    break;
                }
                if k > 0 {
                    names.push(0);
                }
                names.extend_from_slice(name.as_bytes());
            }
            for (w, chunk) in names.chunks(8).enumerate() {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                v[n + 1 + w] = u64::from_le_bytes(word);
            }
            v[0] = n as u64 | (names.len() as u64) << 32;
            i = VALUES;
            &s.kind
        }
    };
    debug_assert!(i <= VALUES);
    RawRecord {
        kind: kind_code(stats.kind()),
        id,
        name: truncate(stats.name(), NAME_LEN).to_vec(),
        aux: truncate(aux, AUX_LEN).to_vec(),
        values: v,
    }
}

/// Decodes a record; `None` for an unknown kind code.
pub fn decode(r: &RawRecord) -> Option<Stats> {
    let v = &r.values;
    let mut i = 0usize;
    let name = String::from_utf8_lossy(&r.name).into_owned();
    let aux = String::from_utf8_lossy(&r.aux).into_owned();
    Some(match r.kind {
        1 => {
            let mut s = RegionStats {
                name,
                source: aux.into(),
                ..RegionStats::default()
            };
            region_fields!(take, v, i, s);
            Stats::Region(s)
        }
        2 => {
            let mut s = SlabStats {
                name,
                ..SlabStats::default()
            };
            slab_fields!(take, v, i, s);
            Stats::Slab(s)
        }
        3 => {
            let mut s = CacheStats {
                slab: SlabStats {
                    name: name.clone(),
                    ..SlabStats::default()
                },
                name,
                locality: aux.into(),
                ..CacheStats::default()
            };
            cache_fields!(take, v, i, s);
            slab_fields!(take, v, i, s.slab);
            Stats::Cache(s)
        }
        4 => {
            let mut s = PoolSummary {
                name,
                source: aux,
                ..PoolSummary::default()
            };
            pool_fields!(take, v, i, s);
            Stats::Pool(s)
        }
        5 => {
            let mut s = ArenaSummary {
                name,
                ..ArenaSummary::default()
            };
            arena_fields!(take, v, i, s);
            s.defunct = v[i] != 0;
            Stats::Arena(s)
        }
        6 => {
            let n = ((v[0] & 0xffff_ffff) as usize).min(VALUES - 1);
            let names_len = ((v[0] >> 32) as usize).min((VALUES - 1 - n) * 8);
            let bytes: Vec<u8> = v[n + 1..]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .take(names_len)
                .collect();
            let mut names = bytes
                .split(|&b| b == 0)
                .filter(|_| names_len > 0)
                .map(|b| String::from_utf8_lossy(b).into_owned());
            Stats::Custom(CustomStats {
                kind: aux.into(),
                name,
                values: (0..n)
                    .map(|k| {
                        (
                            names.next().unwrap_or_else(|| k.to_string()).into(),
                            v[k + 1],
                        )
                    })
                    .collect(),
            })
        }
        _ => return None,
    })
}

/// A shared-memory span of `len` bytes at `base`, accessed only through
/// raw pointers and volatile accesses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shared {
    pub(crate) base: *mut u8,
    pub(crate) len: usize,
}

impl Shared {
    fn at<T>(&self, offset: usize) -> *mut T {
        assert!(
            offset + size_of::<T>() <= self.len && offset % align_of::<T>() == 0,
            "shared offset {offset} out of the {}-byte region or misaligned",
            self.len
        );
        self.base.wrapping_add(offset).cast::<T>()
    }

    pub(crate) fn read_u64(&self, offset: usize) -> u64 {
        // SAFETY: `at` checked the offset is inside the mapping and aligned;
        // the mapping lives as long as `self` is used (owner's invariant).
        unsafe { self.at::<u64>(offset).read_volatile() }
    }

    pub(crate) fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: as in `read_u64`.
        unsafe { self.at::<u32>(offset).read_volatile() }
    }

    pub(crate) fn read_u16(&self, offset: usize) -> u16 {
        // SAFETY: as in `read_u64`.
        unsafe { self.at::<u16>(offset).read_volatile() }
    }

    /// Reads the first `len` (at most `field`) bytes of a `field`-byte
    /// string field, a word at a time.
    fn read_bytes(&self, offset: usize, field: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(field);
        for w in 0..field / 8 {
            out.extend_from_slice(&self.read_u64(offset + 8 * w).to_le_bytes());
        }
        out.truncate(len.min(field));
        out
    }

    pub(crate) fn write_u64(&self, offset: usize, v: u64) {
        // SAFETY: as in `read_u64`; only the writer's mapping is writable.
        unsafe { self.at::<u64>(offset).write_volatile(v) }
    }

    pub(crate) fn write_u32(&self, offset: usize, v: u32) {
        // SAFETY: as in `write_u64`.
        unsafe { self.at::<u32>(offset).write_volatile(v) }
    }

    pub(crate) fn write_u16(&self, offset: usize, v: u16) {
        // SAFETY: as in `write_u64`.
        unsafe { self.at::<u16>(offset).write_volatile(v) }
    }

    /// Writes `bytes` (at most `field`) into a `field`-byte string field,
    /// zero-padded, a word at a time.
    fn write_bytes(&self, offset: usize, field: usize, bytes: &[u8]) {
        for w in 0..field / 8 {
            let mut word = [0u8; 8];
            for (k, b) in word.iter_mut().enumerate() {
                *b = bytes.get(8 * w + k).copied().unwrap_or(0);
            }
            self.write_u64(offset + 8 * w, u64::from_le_bytes(word));
        }
    }

    /// Writes record `index` under its seqlock.
    pub(crate) fn write_record(&self, index: usize, r: &RawRecord) {
        let at = HEADER_SIZE + index * RECORD_SIZE;
        let seq = self.read_u64(at + off::R_SEQ);
        let seq = seq + (seq & 1); // even, whatever a crash left
        self.write_u64(at + off::R_SEQ, seq + 1);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        self.write_u32(at + off::R_KIND, r.kind);
        self.write_u16(at + off::R_NAME_LEN, r.name.len() as u16);
        self.write_u16(at + off::R_AUX_LEN, r.aux.len() as u16);
        self.write_u64(at + off::R_ID, r.id);
        self.write_bytes(at + off::R_NAME, NAME_LEN, &r.name);
        self.write_bytes(at + off::R_AUX, AUX_LEN, &r.aux);
        for (k, v) in r.values.iter().enumerate() {
            self.write_u64(at + off::R_VALUES + 8 * k, *v);
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        self.write_u64(at + off::R_SEQ, seq + 2);
    }

    /// Reads record `index` under its seqlock: `None` when the writer was
    /// inside it (the caller retries), `Some(Err)` for lengths out of range.
    pub(crate) fn try_read_record(&self, index: usize) -> Option<Result<RawRecord, &'static str>> {
        let at = HEADER_SIZE + index * RECORD_SIZE;
        let before = self.read_u64(at + off::R_SEQ);
        if before & 1 == 1 {
            return None;
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let kind = self.read_u32(at + off::R_KIND);
        let name_len = usize::from(self.read_u16(at + off::R_NAME_LEN));
        let aux_len = usize::from(self.read_u16(at + off::R_AUX_LEN));
        let id = self.read_u64(at + off::R_ID);
        let name = self.read_bytes(at + off::R_NAME, NAME_LEN, name_len);
        let aux = self.read_bytes(at + off::R_AUX, AUX_LEN, aux_len);
        let mut values = [0u64; VALUES];
        for (k, v) in values.iter_mut().enumerate() {
            *v = self.read_u64(at + off::R_VALUES + 8 * k);
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        if self.read_u64(at + off::R_SEQ) != before {
            return None;
        }
        if name_len > NAME_LEN {
            return Some(Err("a record's name length exceeds 64"));
        }
        if aux_len > AUX_LEN {
            return Some(Err("a record's aux length exceeds 32"));
        }
        Some(Ok(RawRecord {
            kind,
            id,
            name,
            aux,
            values,
        }))
    }
}

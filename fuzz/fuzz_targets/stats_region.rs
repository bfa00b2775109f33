//! The stats reader (`skmem_stats::Reader`, what `skmem-top` runs on
//! another process's published region) fed regions built from arbitrary
//! records and then damaged: bytes overwritten anywhere, the file cut
//! short, left unsealed, a header claiming more records than it has. The
//! publishing process is not trusted, so the reader must return a
//! snapshot or an error and never crash, and what consumes a snapshot
//! (`write_tables`, the text of the exit dump; `skmem-top`'s view: rows,
//! rates, cells, every sort order) must cope with any counters it returns.
//!
//! The region is written here from the layout the `layout` module
//! documents (not with the library's writer, so a writer bug cannot hide
//! a reader bug). Model: an undamaged region reads back as exactly the
//! records written, each as `decode(encode(..))` gives it in-process.

#![no_main]

use std::borrow::Cow;
use std::os::fd::OwnedFd;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustix::fs::{MemfdFlags, SealFlags};
use skmem_stats::layout::{
    decode, encode, RawRecord, AUX_LEN, HEADER_SIZE, MAGIC, NAME_LEN, RECORD_SIZE, VALUES, VERSION,
};
use skmem_stats::{Reader, Stats};
use skmem_top::view::{Column, View};
use skmem_traits::stats::{
    ArenaSummary, CacheStats, CustomStats, PoolSummary, RegionStats, SlabStats,
};

const MAX_RECORDS: usize = 12;

#[derive(Arbitrary, Debug)]
struct RecordSpec {
    /// Which kind of record (modulo 6).
    kind: u8,
    id: u64,
    /// Name bytes (any bytes: the reader decodes them lossily).
    name: Vec<u8>,
    /// For custom records: counters' names and values.
    custom: Vec<(String, u64)>,
    /// Counter words overwritten after encoding: (index mod 49, value).
    values: Vec<(u8, u64)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    records: Vec<RecordSpec>,
    /// Capacity beyond the records written (modulo 4).
    spare: u8,
    /// Header count, when not the number of records.
    count: Option<u16>,
    /// Bytes overwritten: (offset modulo the region's length, value).
    pokes: Vec<(u32, u8)>,
    /// Cut the file to this length (modulo its length + 1).
    cut: Option<u32>,
    /// Leave the file unsealed.
    unsealed: bool,
}

fn template(spec: &RecordSpec) -> Stats {
    let name = String::from_utf8_lossy(&spec.name).into_owned();
    match spec.kind % 6 {
        0 => Stats::Region(RegionStats {
            name,
            source: Cow::Borrowed("mmap"),
            ..RegionStats::default()
        }),
        1 => Stats::Slab(SlabStats {
            name,
            ..SlabStats::default()
        }),
        2 => Stats::Cache(CacheStats {
            slab: SlabStats {
                name: name.clone(),
                ..SlabStats::default()
            },
            name,
            locality: Cow::Borrowed("per-thread"),
            ..CacheStats::default()
        }),
        3 => Stats::Pool(PoolSummary {
            name,
            source: "heap".into(),
            ..PoolSummary::default()
        }),
        4 => Stats::Arena(ArenaSummary {
            name,
            ..ArenaSummary::default()
        }),
        _ => Stats::Custom(CustomStats {
            kind: Cow::Borrowed("size-class"),
            name,
            values: spec
                .custom
                .iter()
                .take(VALUES)
                .map(|(n, v)| (Cow::Owned(n.clone()), *v))
                .collect(),
        }),
    }
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Writes `r` as record `i` of the region in `buf`, by the documented
/// layout, with an even (quiescent) seqlock word.
fn write_record(buf: &mut [u8], i: usize, r: &RawRecord) {
    let at = HEADER_SIZE + i * RECORD_SIZE;
    put(buf, at, &0u64.to_le_bytes());
    put(buf, at + 8, &r.kind.to_le_bytes());
    put(buf, at + 12, &(r.name.len() as u16).to_le_bytes());
    put(buf, at + 14, &(r.aux.len() as u16).to_le_bytes());
    put(buf, at + 16, &r.id.to_le_bytes());
    assert!(r.name.len() <= NAME_LEN && r.aux.len() <= AUX_LEN);
    put(buf, at + 24, &r.name);
    put(buf, at + 88, &r.aux);
    for (k, v) in r.values.iter().enumerate() {
        put(buf, at + 120 + 8 * k, &v.to_le_bytes());
    }
}

fn memfd_with(bytes: &[u8], seal: bool) -> OwnedFd {
    let fd = rustix::fs::memfd_create("skmem-stats-fuzz", MemfdFlags::ALLOW_SEALING).unwrap();
    let mut done = 0;
    while done < bytes.len() {
        done += rustix::io::write(&fd, &bytes[done..]).unwrap();
    }
    if seal {
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).unwrap();
    }
    fd
}

fuzz_target!(|input: Input| {
    let records: Vec<RawRecord> = input
        .records
        .iter()
        .take(MAX_RECORDS)
        .map(|spec| {
            let mut raw = encode(spec.id, &template(spec));
            for &(k, v) in &spec.values {
                raw.values[usize::from(k) % VALUES] = v;
            }
            raw
        })
        .collect();
    let capacity = records.len() + usize::from(input.spare % 4);
    let mut buf = vec![0u8; HEADER_SIZE + capacity * RECORD_SIZE];
    put(&mut buf, 0, &MAGIC.to_le_bytes());
    put(&mut buf, 8, &VERSION.to_le_bytes());
    put(&mut buf, 12, &(HEADER_SIZE as u32).to_le_bytes());
    put(&mut buf, 16, &(RECORD_SIZE as u32).to_le_bytes());
    put(&mut buf, 20, &(capacity as u32).to_le_bytes());
    let count = input.count.map_or(records.len() as u64, u64::from);
    put(&mut buf, 32, &count.to_le_bytes());
    put(&mut buf, 40, &4242u64.to_le_bytes());
    put(&mut buf, 48, &7u64.to_le_bytes());
    for (i, r) in records.iter().enumerate() {
        write_record(&mut buf, i, r);
    }
    let len = buf.len();
    for &(offset, value) in &input.pokes {
        buf[offset as usize % len] = value;
    }
    let cut = input.cut.map(|c| c as usize % (len + 1));
    if let Some(c) = cut {
        buf.truncate(c);
    }
    let damaged = !input.pokes.is_empty()
        || cut.is_some_and(|c| c < len)
        || input.unsealed
        || input.count.is_some_and(|c| usize::from(c) != records.len());

    let reader = match Reader::from_fd(memfd_with(&buf, !input.unsealed), None) {
        Ok(reader) => reader,
        Err(e) => {
            assert!(damaged, "an undamaged region refused: {e}");
            let _ = e.to_string();
            return;
        }
    };
    match reader.read() {
        Ok(snapshot) => {
            assert!(snapshot.entries.len() <= capacity);
            let stats: Vec<Stats> = snapshot.entries.iter().map(|e| e.stats.clone()).collect();
            let mut text = String::new();
            skmem_traits::registry::write_tables(&mut text, &stats).unwrap();
            // What skmem-top does with it: two refreshes (rates between
            // them), every cell of every row, sorted by every column.
            let mut view = View::default();
            view.update(&snapshot);
            let mut later = snapshot.clone();
            later.generation = later.generation.wrapping_add(1);
            later.time_ns = later.time_ns.wrapping_add(u64::from(input.spare) << 20);
            view.update(&later);
            for column in Column::ALL {
                view.sort = column;
                for row in view.cache_rows() {
                    for c in Column::ALL {
                        let _ = row.cell(c);
                    }
                }
            }
            let _ = (view.regions(), view.pools(), view.arenas());
            if !damaged {
                assert_eq!(snapshot.generation, 7);
                assert_eq!(snapshot.pid, 4242);
                assert_eq!(snapshot.entries.len(), records.len());
                for (e, r) in snapshot.entries.iter().zip(&records) {
                    assert_eq!(e.id, r.id);
                    assert_eq!(
                        Some(&e.stats),
                        decode(r).as_ref(),
                        "record read back differs"
                    );
                }
            }
        }
        Err(e) => {
            assert!(damaged, "an undamaged region unreadable: {e}");
            let _ = e.to_string();
        }
    }
});

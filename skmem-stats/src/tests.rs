//! Seqlock and validation tests over real memfds.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{MemfdFlags, SealFlags};

use crate::layout::{
    decode, encode, off, RawRecord, Shared, HEADER_SIZE, MAGIC, RECORD_SIZE, VALUES, VERSION,
};
use crate::writer::Region;
use crate::Stats;
use crate::{ReadError, Reader};

/// A record whose every field is derived from `k`: a torn read mixes two
/// values of `k` and is caught.
fn record(k: u64) -> RawRecord {
    let name = format!("rec-{k:020}").into_bytes();
    RawRecord {
        kind: 3,
        id: k,
        aux: name[..20].to_vec(),
        name,
        values: [k; VALUES],
    }
}

#[test]
fn seqlock_reader_never_sees_a_torn_record() {
    let mut region = Region::create(4, Duration::from_secs(1)).unwrap();
    region.refresh();
    let shared = region.shared();
    shared.write_record(0, &record(0));
    let reader = Reader::from_fd(region.fd(), None).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    struct SendShared(Shared);
    // SAFETY: the writer thread is the only writer of the mapping, which
    // outlives it (joined before `region` drops).
    unsafe impl Send for SendShared {}
    let writer_shared = SendShared(shared);
    let writer_stop = Arc::clone(&stop);
    let writer = std::thread::spawn(move || {
        let shared = writer_shared;
        let mut k = 1u64;
        while !writer_stop.load(Ordering::Relaxed) {
            shared.0.write_record(0, &record(k));
            k += 1;
            // A writer that never pauses starves any seqlock reader; the
            // publisher pauses a whole interval, this one a few microseconds.
            for _ in 0..4096 {
                std::hint::spin_loop();
            }
        }
        k
    });
    /// Stops the writer before the mapping goes, even on a failed assert.
    struct StopOnDrop(Arc<AtomicBool>, Option<std::thread::JoinHandle<u64>>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
            if let Some(h) = self.1.take() {
                let _ = h.join();
            }
        }
    }
    let mut writer = StopOnDrop(Arc::clone(&stop), Some(writer));
    let mut distinct = 0u64;
    let mut last = u64::MAX;
    for _ in 0..1_000_000 {
        let r = reader.read_record(0).expect("record 0 readable");
        let k = r.id;
        assert_eq!(r, record(k), "torn record: {r:?}");
        if k != last {
            distinct += 1;
            last = k;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.1.take().unwrap().join().unwrap();
    // The writer really ran concurrently: the reader saw many versions.
    assert!(written > 1000, "writer wrote only {written} versions");
    assert!(distinct > 10, "reader saw only {distinct} versions");
    drop(region);
}

/// A sealed memfd holding `bytes`.
fn memfd_with(bytes: &[u8], seal: bool) -> OwnedFd {
    let fd = rustix::fs::memfd_create("skmem-stats-test", MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::io::write(&fd, bytes).unwrap();
    if seal {
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).unwrap();
    }
    fd
}

fn header(version: u32, capacity: u32) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_SIZE];
    h[off::MAGIC..off::MAGIC + 8].copy_from_slice(&MAGIC.to_le_bytes());
    h[off::VERSION..off::VERSION + 4].copy_from_slice(&version.to_le_bytes());
    h[off::HEADER_SIZE..off::HEADER_SIZE + 4].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    h[off::RECORD_SIZE..off::RECORD_SIZE + 4].copy_from_slice(&(RECORD_SIZE as u32).to_le_bytes());
    h[off::CAPACITY..off::CAPACITY + 4].copy_from_slice(&capacity.to_le_bytes());
    h
}

#[test]
fn truncated_and_garbage_regions_are_errors() {
    // Shorter than a header.
    let err = Reader::from_fd(memfd_with(&[1; 10], true), None).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::Truncated {
                len: 10,
                needed: 128
            }
        ),
        "{err}"
    );
    // Random bytes of a plausible size.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let err = Reader::from_fd(memfd_with(&garbage, true), None).unwrap_err();
    assert!(
        matches!(&err, ReadError::Garbage(w) if w.contains("magic")),
        "{err}"
    );
    // A header that claims more records than the file holds.
    let mut h = header(VERSION, 8);
    h.extend(vec![0u8; 3 * RECORD_SIZE]);
    let err = Reader::from_fd(memfd_with(&h, true), None).unwrap_err();
    assert!(
        matches!(err, ReadError::Truncated { needed, .. } if needed == (HEADER_SIZE + 8 * RECORD_SIZE) as u64),
        "{err}"
    );
    // A version from the future.
    let err = Reader::from_fd(memfd_with(&header(VERSION + 1, 0), true), None).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::UnknownVersion { found, supported }
                if found == VERSION + 1 && supported == VERSION
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains(&format!("version {}", VERSION + 1)));
    // The previous layout (custom records without names) is refused too.
    let err = Reader::from_fd(memfd_with(&header(1, 0), true), None).unwrap_err();
    assert!(
        matches!(err, ReadError::UnknownVersion { found: 1, .. }),
        "{err}"
    );
    // Not sealed: the writer could shrink it under a reader.
    let err = Reader::from_fd(memfd_with(&header(VERSION, 0), false), None).unwrap_err();
    assert!(
        matches!(&err, ReadError::Garbage(w) if w.contains("sealed")),
        "{err}"
    );
    // A count past the capacity, and a record of an unknown kind.
    let mut h = header(VERSION, 1);
    h[off::COUNT..off::COUNT + 8].copy_from_slice(&5u64.to_le_bytes());
    h.extend(vec![0u8; RECORD_SIZE]);
    let reader = Reader::from_fd(memfd_with(&h, true), None).unwrap();
    let err = reader.read().unwrap_err();
    assert!(
        matches!(&err, ReadError::Garbage(w) if w.contains("5 records")),
        "{err}"
    );
    h[off::COUNT..off::COUNT + 8].copy_from_slice(&1u64.to_le_bytes());
    h[HEADER_SIZE + off::R_KIND] = 77;
    let reader = Reader::from_fd(memfd_with(&h, true), None).unwrap();
    let err = reader.read().unwrap_err();
    assert!(
        matches!(&err, ReadError::Garbage(w) if w.contains("unknown kind 77")),
        "{err}"
    );
    // A name length past the field.
    h[HEADER_SIZE + off::R_KIND] = 3;
    h[HEADER_SIZE + off::R_NAME_LEN] = 200;
    let reader = Reader::from_fd(memfd_with(&h, true), None).unwrap();
    let err = reader.read().unwrap_err();
    assert!(
        matches!(&err, ReadError::Garbage(w) if w.contains("name length")),
        "{err}"
    );
    // A healthy region with one (all-zero) cache record reads.
    h[HEADER_SIZE + off::R_NAME_LEN] = 0;
    let reader = Reader::from_fd(memfd_with(&h, true), None).unwrap();
    assert_eq!(reader.read().unwrap().entries.len(), 1);
}

#[test]
fn custom_records_round_trip_with_their_counter_names() {
    use skmem_traits::stats::CustomStats;
    let stats = Stats::Custom(CustomStats {
        kind: "size-class".into(),
        name: "skmem-alloc.96".into(),
        values: vec![
            ("obj_size".into(), 96),
            ("in_use".into(), 1234),
            ("allocs".into(), u64::MAX),
        ],
    });
    let back = decode(&encode(7, &stats)).unwrap();
    assert_eq!(back, stats);
}

#[test]
fn custom_names_that_do_not_fit_are_numbered() {
    use skmem_traits::stats::CustomStats;
    // 40 counters leave 8 words (64 bytes) for names: the first names fit,
    // the rest are numbered by position.
    let values: Vec<_> = (0..40u64)
        .map(|k| (format!("counter-number-{k:02}").into(), k * 3))
        .collect();
    let stats = Stats::Custom(CustomStats {
        kind: "many".into(),
        name: "many".into(),
        values,
    });
    let Some(Stats::Custom(back)) = decode(&encode(1, &stats)) else {
        panic!("a custom record decodes as custom")
    };
    assert_eq!(back.values.len(), 40);
    // 17-byte names plus separators: three fit in 64 bytes.
    let names: Vec<&str> = back.values.iter().map(|(n, _)| &**n).collect();
    assert_eq!(
        &names[..3],
        [
            "counter-number-00",
            "counter-number-01",
            "counter-number-02"
        ]
    );
    assert_eq!(names[3], "3");
    assert_eq!(names[39], "39");
    let vals: Vec<u64> = back.values.iter().map(|(_, v)| *v).collect();
    assert_eq!(vals, (0..40u64).map(|k| k * 3).collect::<Vec<_>>());
}

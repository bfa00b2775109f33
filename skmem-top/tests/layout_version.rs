//! A process whose `skmem-stats` memfd has another layout version gets a
//! clear message from `skmem-top`, not a crash. (Its own test binary: the
//! test process itself plays that process.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_skmem-top");

#[test]
fn a_region_of_another_layout_version_gets_a_clear_message() {
    use rustix::fs::{MemfdFlags, SealFlags};
    // This process publishes a region from another layout version.
    let other = skmem_stats::layout::VERSION + 1;
    let fd = rustix::fs::memfd_create("skmem-stats", MemfdFlags::ALLOW_SEALING).unwrap();
    let mut header = vec![0u8; skmem_stats::layout::HEADER_SIZE];
    header[..8].copy_from_slice(&skmem_stats::layout::MAGIC.to_le_bytes());
    header[8..12].copy_from_slice(&other.to_le_bytes());
    rustix::io::write(&fd, &header).unwrap();
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).unwrap();
    let me = std::process::id().to_string();
    for args in [vec!["--once", "--json", &me], vec![&me]] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "layout version {other}; this reader reads version {}",
                skmem_stats::layout::VERSION
            )),
            "{args:?}: {err}"
        );
    }
    drop(fd);
}

//! The debug mode through a packet pool: a packet freed twice is reported
//! (cache, address, audit) and the process aborts, instead of the next two
//! allocations returning the same packet. Run in a child process (this
//! binary again, on one test) with `SKMEM_DEBUG` set, since the pool's
//! caches take the process-wide flags.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use skmem_backends::Heap;
use skmem_packet::{AllocFlags, PacketPoolConfig};
use skmem_slab::DebugFlags;

const CHILD: &str = "SKMEM_DEBUG_CHILD";

#[test]
fn packet_freed_twice_is_reported_and_aborts() {
    if std::env::var_os(CHILD).is_some() {
        let pool = PacketPoolConfig::new("dbg-pool")
            .md_count(64)
            .build::<Heap>(Default::default())
            .unwrap();
        let p = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
        // The metadata is 64-byte aligned; the handle tags the low bits.
        println!("ADDR {:#x}", p.raw() & !63);
        // SAFETY: allocated above; the second free is the bug under test.
        unsafe {
            pool.free_packet(p).unwrap();
            let _ = pool.free_packet(p);
        }
        println!("NOT REACHED");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "packet_freed_twice_is_reported_and_aborts",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("SKMEM_DEBUG", "audit")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.signal(), Some(6), "aborts: {err}");
    let addr = stdout
        .split("ADDR ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no ADDR in {stdout}"));
    assert!(
        err.contains(&format!(
            "cache `kmd.dbg-pool`: {addr}: double free: the object was already freed and rests in a magazine"
        )),
        "{err}"
    );
    assert!(err.contains("free (into magazine)"), "{err}");
    assert!(!stdout.contains("NOT REACHED"));
}

#[test]
fn per_pool_flags_in_continue_mode_refuse_the_double_free() {
    let pool = PacketPoolConfig::new("dbg-pool-continue")
        .md_count(64)
        .debug(DebugFlags::AUDIT | DebugFlags::CONTINUE)
        .build::<Heap>(Default::default())
        .unwrap();
    let p = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
    let before = skmem_slab::debug::report_count();
    // SAFETY: allocated above; the second free is refused by the debug
    // check.
    unsafe {
        pool.free_packet(p).unwrap();
        let _ = pool.free_packet(p);
    }
    assert_eq!(skmem_slab::debug::report_count(), before + 1);
    let a = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
    let b = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
    assert_ne!(a.raw(), b.raw(), "the same packet is not handed out twice");
    // SAFETY: allocated above, freed once each.
    unsafe {
        pool.free_packet(a).unwrap();
        pool.free_packet(b).unwrap();
    }
}

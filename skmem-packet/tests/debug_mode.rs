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

/// Child side of the overrun tests: a pool with 2048-byte buffers, one
/// packet whose buffer is written `past` bytes beyond its end, then freed
/// and the pool dropped.
///
/// A buffer stays attached to its packet's constructed metadata while that
/// metadata rests in the slab layer (Skywalk's design: the pair is built
/// once), so the buffer's redzone is checked when the metadata lets it go:
/// at reap, purge of the slab or, as here, the pool's drop.
fn buffer_overrun_child(past: usize) {
    let pool = PacketPoolConfig::new("dbg-overrun")
        .md_count(64)
        .buf_size(2048)
        .build::<Heap>(Default::default())
        .unwrap();
    let p = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
    // SAFETY: `p` is live and has one buffer of `buf_size` bytes; the write
    // past its end lands in the redzone of the grown chunk (the bug under
    // test), never outside the region.
    unsafe {
        let buf = p.buffer_addr();
        println!("BUF {:#x}", buf as usize);
        buf.add(2048 + past - 1).write(0xAA);
        pool.free_packet(p).unwrap();
    }
    println!("FREED");
    drop(pool);
    println!("NOT REACHED");
}

/// Runs `test` again in a child with `SKMEM_DEBUG=guards` and returns the
/// buffer's address (from its stdout) and its stderr.
fn overrun_parent(test: &str) -> (String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("SKMEM_DEBUG", "guards")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.signal(), Some(6), "aborts: {err}");
    assert!(stdout.contains("FREED"), "{stdout}");
    assert!(!stdout.contains("NOT REACHED"), "{stdout}");
    assert!(
        !err.contains("no redzone"),
        "every cache of the pool got a redzone: {err}"
    );
    let addr = stdout
        .split("BUF ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no BUF in {stdout}"))
        .to_owned();
    (addr, err)
}

#[test]
fn packet_buffer_overrun_by_one_byte_is_reported_at_its_offset() {
    if std::env::var_os(CHILD).is_some() {
        return buffer_overrun_child(1);
    }
    let (addr, err) = overrun_parent("packet_buffer_overrun_by_one_byte_is_reported_at_its_offset");
    assert!(
        err.contains(&format!(
            "skmem debug: cache `buf_def.dbg-overrun`: {addr}: redzone damaged (buffer overrun): first damaged byte at offset 2048, byte 1 past the end of the object (object size 2048)"
        )),
        "{err}"
    );
}

#[test]
fn packet_buffer_overrun_by_sixteen_bytes_is_reported_at_its_offset() {
    if std::env::var_os(CHILD).is_some() {
        return buffer_overrun_child(16);
    }
    let (addr, err) =
        overrun_parent("packet_buffer_overrun_by_sixteen_bytes_is_reported_at_its_offset");
    assert!(
        err.contains(&format!(
            "skmem debug: cache `buf_def.dbg-overrun`: {addr}: redzone damaged (buffer overrun): first damaged byte at offset 2063, byte 16 past the end of the object (object size 2048)"
        )),
        "{err}"
    );
}

#[test]
fn guarded_pool_grows_every_stride_and_runs_clean() {
    // Guards on for this pool only: every region's object grows by the
    // redzone, and a correct workload (allocate, fill buffers to their
    // last byte, free, purge) raises no report.
    let plain = PacketPoolConfig::new("dbg-stride-plain")
        .md_count(64)
        .buf_size(2048)
        .on_demand(true)
        .debug(DebugFlags::empty())
        .build::<Heap>(Default::default())
        .unwrap();
    let guarded = PacketPoolConfig::new("dbg-stride-guarded")
        .md_count(64)
        .buf_size(2048)
        .on_demand(true)
        .debug(DebugFlags::GUARDS | DebugFlags::CONTINUE)
        .build::<Heap>(Default::default())
        .unwrap();
    let before = skmem_slab::debug::report_count();
    for pool in [&plain, &guarded] {
        let pkts: Vec<_> = (0..32)
            .map(|_| pool.alloc_packet(1, AllocFlags::NoSleep).unwrap())
            .collect();
        for &p in &pkts {
            // SAFETY: live packet with one buffer of `buf_size` bytes.
            unsafe { std::ptr::write_bytes(p.buffer_addr(), 0x5a, pool.buf_size()) };
        }
        for p in pkts {
            // SAFETY: allocated above, freed once.
            unsafe { pool.free_packet(p).unwrap() };
        }
        pool.purge();
    }
    assert_eq!(skmem_slab::debug::report_count(), before, "no false report");
    let strides = |pool: &skmem_packet::PacketPool<Heap>| -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = pool
            .stats()
            .regions
            .into_iter()
            .map(|r| (r.name.split('.').next().unwrap().to_owned(), r.c_obj_size))
            .collect();
        v.sort();
        v
    };
    let (p, g) = (strides(&plain), strides(&guarded));
    assert_eq!(p.len(), g.len(), "{p:?} {g:?}");
    for ((name, plain_size), (_, guarded_size)) in p.iter().zip(&g) {
        assert!(
            *guarded_size >= plain_size + skmem_slab::debug::GUARD_BYTES as u64,
            "region {name}: {guarded_size} bytes with guards, {plain_size} without"
        );
    }
}

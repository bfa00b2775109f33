//! An arena handed to a second process over a Unix socket.
//!
//! The test binary re-executes itself with an environment variable that
//! selects a child entry point (as `backends/tests/mmap.rs` does). The
//! control socket of the arena protocol is the child's stdin; a second
//! `SOCK_SEQPACKET` socket on fd 3 carries the test's own messages (packet
//! indices, probe results).
//!
//! The child proves what it can and cannot do by forking grandchildren that
//! touch one address each: a grandchild that dies of `SIGSEGV` could not
//! make the access.

#![cfg(target_os = "linux")]
#![allow(missing_docs)]
// Every pointer cast here is to an object base: segment, slab chunk
// or page aligned.
#![allow(clippy::cast_ptr_alignment)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use skmem_arena::{self as arena, ArenaConfig, ControlEvent, RegionId, UserView};
use skmem_packet::{AllocFlags, Packet, PacketPoolConfig};

const CHILD: &str = "SKMEM_ARENA_IPC_CHILD";
const OWNER: u32 = 7;
const N: usize = 32;
const STATS_MAGIC: u64 = 0x5eed_0000_feed_beef;
const FLOWADV_MAGIC: u32 = 0xf10a_d5ee;

// ---------------------------------------------------------------------------
// Messages on the data socket: little-endian u32 words.
// ---------------------------------------------------------------------------

fn send(sock: &UnixDatagram, words: &[u32]) {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    assert_eq!(sock.send(&bytes).expect("send"), bytes.len());
}

fn recv(sock: &UnixDatagram) -> Vec<u32> {
    let mut buf = vec![0u8; 4096];
    let n = sock.recv(&mut buf).expect("recv (peer gone or timed out)");
    assert!(n % 4 == 0 && n > 0, "bad message of {n} bytes");
    buf[..n]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn payload(dir: &str, i: usize) -> Vec<u8> {
    let mut v = format!("{dir} packet #{i} ").into_bytes();
    v.extend((0..(100 + i * 13)).map(|k| (k as u8).wrapping_mul(31).wrapping_add(i as u8)));
    v
}

// ---------------------------------------------------------------------------
// Parent
// ---------------------------------------------------------------------------

struct Child {
    child: std::process::Child,
    ctl: OwnedFd,
    data: UnixDatagram,
}

/// Held while a child's socket ends are open in this process (from the
/// socketpairs to the spawn and their drop). The tests of this binary run
/// in parallel threads: a `fork` by another test inside that window would
/// give its child, until it execs, a copy of our child's socket end, and a
/// test that waits for the peer's socket to close (its process exited)
/// would then see it open. Seen once under load.
static SPAWNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn spawn(test: &str, mode: &str) -> Child {
    // Declared first, so dropped last: after `cmd` (which holds the
    // child's control end) and `data_child`.
    let _spawning = SPAWNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (ctl, ctl_child) = arena::socketpair().unwrap();
    let (data, data_child) = arena::socketpair().unwrap();
    let data_raw = data_child.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .stdin(Stdio::from(ctl_child))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only
    // calls `dup2`/`fcntl`, which are async-signal-safe; it allocates
    // nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            if data_raw == 3 {
                // dup2(3, 3) would keep close-on-exec; clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(data_raw, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let child = cmd.spawn().unwrap();
    drop(data_child);
    let data = UnixDatagram::from(data);
    data.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    Child { child, ctl, data }
}

impl Child {
    /// Receives from the child; when it is gone, fails with its output.
    fn recv(&mut self) -> Vec<u32> {
        let mut buf = vec![0u8; 4096];
        match self.data.recv(&mut buf) {
            Ok(n) if n > 0 => {
                assert!(n % 4 == 0, "bad message of {n} bytes");
                buf[..n]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            }
            other => {
                let _ = self.child.kill();
                let mut out = String::new();
                let mut err = String::new();
                use std::io::Read;
                if let Some(o) = self.child.stdout.as_mut() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(e) = self.child.stderr.as_mut() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("the child is gone ({other:?}):\n{out}\n{err}");
            }
        }
    }
}

fn finish(c: Child) {
    let out = c.child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 passed"), "child ran nothing:\n{text}");
}

/// Polls until `f` holds (the peer's messages arrive asynchronously).
fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("condition never held");
}

#[test]
fn ipc_packets_both_ways_and_fences() {
    if let Some(mode) = std::env::var_os(CHILD) {
        assert_eq!(mode, "main");
        return child_main();
    }
    let arena = ArenaConfig::new("ipc")
        .pool(PacketPoolConfig::new("ipc").md_count(256).buf_size(2048))
        .build()
        .unwrap();
    let pool = arena.pool().unwrap();
    let (stats, stats_len) = arena.stats_object().unwrap();
    assert!(stats_len >= 8);
    // SAFETY: the stats object is live while the arena is, 8-aligned (a
    // segment base); views only read it.
    unsafe { stats.as_ptr().cast::<u64>().write_volatile(STATS_MAGIC) };
    let (adv, _) = arena.flowadv_object().unwrap();
    // SAFETY: as above, for the flow advisory table.
    unsafe { adv.as_ptr().cast::<u32>().write_volatile(FLOWADV_MAGIC) };

    let mut c = spawn("ipc_packets_both_ways_and_fences", "main");
    let view_id = arena.send_view(&c.ctl).unwrap();
    assert_eq!(arena.views().remote, 1);
    assert_eq!(arena.stats().remote_views_sent, 1);

    // 1. The child checks what it sees and where it is fenced.
    let report = c.recv();
    let layout = arena.layout();
    assert_eq!(report[0], layout.total_len as u32, "child's view length");
    assert_eq!(
        report[1],
        layout.regions.len() as u32,
        "child's region count"
    );
    assert_eq!(report[2], 1, "child read the schema the owner wrote");
    assert_eq!(
        u64::from(report[3]) | u64::from(report[4]) << 32,
        STATS_MAGIC,
        "child read the stats object"
    );
    assert_eq!(report[5], FLOWADV_MAGIC, "child read the flow advisories");
    assert_eq!(
        report[6], 1,
        "writing the schema killed the writer with SIGSEGV"
    );
    assert_eq!(
        report[7], 1,
        "writing the flow advisories killed the writer"
    );
    assert_eq!(
        report[8], 1,
        "writing the user slot descriptors killed the writer"
    );
    assert_eq!(report[9], 1, "reading the head guard killed the reader");
    assert_eq!(report[10], 1, "reading the tail guard killed the reader");
    assert_eq!(
        report[11], 0,
        "writing a ring (read-write) did not kill the writer"
    );
    assert_eq!(report[12], 0, "writing a buffer did not kill the writer");
    assert_eq!(
        report[13],
        libc::EACCES as u32,
        "mprotect(PROT_WRITE) of the schema"
    );

    // 2. Parent → child: the parent writes payloads, the child reads them,
    //    replaces them with its own, and hands the packets back.
    let mut pkts: Vec<Packet> = Vec::new();
    pool.alloc_batch_vec(1, N, &mut pkts, AllocFlags::NoSleep)
        .unwrap();
    let mut idx = Vec::new();
    for (i, &p) in pkts.iter().enumerate() {
        // SAFETY: freshly allocated, used by this thread only, then given
        // up to the user until `upp_remove` returns it.
        unsafe {
            assert_eq!(p.write_payload(&payload("p2c", i)), payload("p2c", i).len());
            idx.push(pool.upp_insert(OWNER, p).unwrap());
        }
    }
    send(&c.data, &idx);
    let back = c.recv();
    assert_eq!(back, idx, "the child returns the packets it was given");
    for (i, &md) in back.iter().enumerate() {
        let p = pool.upp_remove(OWNER, md).unwrap();
        let want = payload("c2p", i);
        let mut got = vec![0u8; 4096];
        // SAFETY: handed back and validated; ours again.
        let n = unsafe { p.read_payload(&mut got) };
        assert_eq!(
            &got[..n],
            &want[..],
            "payload the child wrote into packet {md}"
        );
        // SAFETY: as above.
        assert_eq!(unsafe { p.len() } as usize, want.len());
    }
    // SAFETY: every packet is back and used no more.
    unsafe { pool.free_batch(&pkts) }.unwrap();
    assert!(pool.upp_is_empty());

    // 3. Redirect: the child reads zeros afterwards and its writes do not
    //    reach the pool.
    let p = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
    let secret = b"before the redirect".to_vec();
    // SAFETY: ours until handed to the user.
    let md = unsafe {
        p.write_payload(&secret);
        pool.upp_insert(OWNER, p).unwrap()
    };
    send(&c.data, &[md]);
    assert_eq!(
        c.recv(),
        [1],
        "the child saw the payload before the redirect"
    );
    let inactive = arena.redirect(view_id).unwrap();
    assert!(
        inactive,
        "the only view was redirected: the arena is inactive"
    );
    assert!(!arena.is_active());
    let err = arena.map_local().unwrap_err();
    assert!(matches!(err, skmem_packet::Error::Busy { .. }), "{err}");
    send(&c.data, &[0]);
    let after = c.recv();
    assert_eq!(after[0], 1, "the child processed the redirect");
    assert_eq!(after[1], 1, "the child read zeros where the payload was");
    assert_eq!(after[2], 1, "the schema (no-redirect) is still readable");
    // The child scribbled over the buffer and the user metadata: nothing
    // of it reached the pool, so the packet comes back intact.
    let (q, o) = pool.upp_find(md).unwrap();
    assert_eq!((q, o), (p, OWNER));
    let p = pool.upp_remove(OWNER, md).unwrap();
    let mut got = vec![0u8; 64];
    // SAFETY: back and validated.
    let n = unsafe { p.read_payload(&mut got) };
    assert_eq!(&got[..n], &secret[..]);
    // SAFETY: ours, freed once.
    unsafe { pool.free_packet(p) }.unwrap();
    eventually(|| {
        arena.poll_peers().unwrap();
        arena.stats().redirects_acked == 1
    });

    // 4. The child drops its view (telling the owner) and exits.
    send(&c.data, &[2]);
    finish(c);
    eventually(|| {
        arena.poll_peers().unwrap();
        arena.views().remote == 0
    });
    let s = arena.stats();
    assert_eq!((s.remote_closed, s.remote_lost, s.map_size), (1, 0, 0));
    drop(pool);
    arena.defunct().unwrap();
    assert!(arena.pool().is_none());
}

#[test]
fn ipc_peer_that_exits_without_goodbye_is_released() {
    if std::env::var_os(CHILD).is_some() {
        // Map, look, and leave without unmapping or saying goodbye.
        let view = UserView::receive(io::stdin().as_fd()).unwrap();
        assert!(view.read_schema().is_ok());
        std::mem::forget(view);
        return;
    }
    let arena = ArenaConfig::new("ipc-exit")
        .pool(PacketPoolConfig::new("ipc-exit").md_count(64))
        .build()
        .unwrap();
    let c = spawn("ipc_peer_that_exits_without_goodbye_is_released", "exit");
    let id = arena.send_view(&c.ctl).unwrap();
    finish(c);
    // The peer is gone: redirecting it finds the socket closed and
    // releases the view instead (its mappings died with it).
    assert!(!arena.redirect(id).unwrap());
    let s = arena.stats();
    assert_eq!((s.views.remote, s.remote_lost, s.remote_closed), (0, 1, 0));
    assert!(arena.is_active(), "no view was redirected");
    assert_eq!(arena.poll_peers().unwrap(), 0);
}

// ---------------------------------------------------------------------------
// Child
// ---------------------------------------------------------------------------

/// Runs `access` in a forked grandchild; `true` when it died of `SIGSEGV`.
fn faults(access: impl FnOnce()) -> bool {
    // SAFETY: after fork the grandchild only sets a resource limit, makes
    // one volatile access and `_exit`s: no allocation, no lock.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls in the grandchild (no core dump of the
        // expected fault).
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
        access();
        // SAFETY: leaves the grandchild at once.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFSIGNALED(status) {
        assert_eq!(
            libc::WTERMSIG(status),
            libc::SIGSEGV,
            "died of another signal"
        );
        true
    } else {
        assert_eq!(libc::WEXITSTATUS(status), 0);
        false
    }
}

fn write_faults(view: &UserView, id: RegionId) -> u32 {
    let (_, p) = view.region(id).unwrap();
    u32::from(faults(move || {
        // SAFETY: `p` is inside the view; the access either succeeds on
        // mapped memory or faults, killing only the grandchild.
        unsafe { p.as_ptr().write_volatile(0xee) }
    }))
}

fn read_faults(view: &UserView, id: RegionId, at_end: bool) -> u32 {
    let (r, p) = view.region(id).unwrap();
    let off = if at_end { r.len - 1 } else { 0 };
    u32::from(faults(move || {
        // SAFETY: as in `write_faults`; `off < r.len`.
        std::hint::black_box(unsafe { p.as_ptr().add(off).read_volatile() });
    }))
}

fn child_main() {
    // SAFETY: the parent put our end of the data socket on fd 3 for us
    // alone; nothing else in this process owns it.
    let data = UnixDatagram::from(unsafe { OwnedFd::from_raw_fd(3) });
    data.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let stdin = io::stdin();
    let view = UserView::receive(stdin.as_fd()).unwrap();
    assert!(!view.is_local());

    // 1. What the child sees, and its fences.
    let schema_ok = view.read_schema().unwrap() == *view.layout();
    let mut stats = [0u8; 8];
    view.read(RegionId::UStats, 0, &mut stats).unwrap();
    let stats = u64::from_ne_bytes(stats);
    let adv = view.read_u32(RegionId::FlowAdv, 0).unwrap();
    assert!(
        view.write(RegionId::Schema, 0, b"x").is_err(),
        "accessors refuse read-only regions"
    );
    let mut report = vec![
        view.len() as u32,
        view.layout().regions.len() as u32,
        u32::from(schema_ok),
        stats as u32,
        (stats >> 32) as u32,
        adv,
        write_faults(&view, RegionId::Schema),
        write_faults(&view, RegionId::FlowAdv),
        write_faults(&view, RegionId::TxaUsd),
        read_faults(&view, RegionId::GuardHead, false),
        read_faults(&view, RegionId::GuardTail, true),
        write_faults(&view, RegionId::Ring),
        write_faults(&view, RegionId::BufDef),
    ];
    // Last, as it would change the mapping if it succeeded.
    let (schema, sp) = view.region(RegionId::Schema).unwrap();
    // SAFETY: an mprotect of a range of our own view; it is expected to
    // fail, and would only change our own mapping.
    let mprotect = unsafe {
        libc::mprotect(
            sp.as_ptr().cast(),
            schema.len,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    let mprotect_errno = if mprotect == 0 {
        0
    } else {
        io::Error::last_os_error().raw_os_error().unwrap() as u32
    };
    report.push(mprotect_errno);
    send(&data, &report);

    // 2. Read the parent's payloads, write ours, hand the packets back.
    let idx = recv(&data);
    assert_eq!(idx.len(), N);
    let mut buf = vec![0u8; 4096];
    for (i, &md) in idx.iter().enumerate() {
        let n = view.read_packet(md, &mut buf).unwrap();
        assert_eq!(&buf[..n], &payload("p2c", i)[..], "packet {md}");
        assert_eq!(view.packet_len(md).unwrap() as usize, n);
        view.write_packet(md, &payload("c2p", i)).unwrap();
    }
    send(&data, &idx);

    // 3. Redirect.
    let md = recv(&data)[0];
    let mut before = vec![0u8; 64];
    let n = view.read_packet(md, &mut before).unwrap();
    assert_eq!(&before[..n], b"before the redirect");
    // Where the payload lives, remembered before the redirect.
    let (bufdef, _) = view.region(RegionId::BufDef).unwrap();
    let (umd, _) = view.region(RegionId::Umd).unwrap();
    let buf_idx = view
        .read_u32(
            RegionId::Umd,
            umd.object_offset(md).unwrap() + skmem_packet::umd::BUF + skmem_packet::ubft::BUF_INDEX,
        )
        .unwrap();
    let boff = bufdef.object_offset(buf_idx).unwrap();
    send(&data, &[1]);
    assert_eq!(recv(&data), [0]);
    let event = view.wait().unwrap();
    assert_eq!(event, ControlEvent::Redirected);
    assert!(view.is_redirected());
    let mut after = vec![0xffu8; n];
    view.read(RegionId::BufDef, boff, &mut after).unwrap();
    let zeros = after.iter().all(|&b| b == 0);
    // Scribble: over the payload and over the whole user metadata object.
    view.write(RegionId::BufDef, boff, &[0xab; 64]).unwrap();
    view.write(RegionId::Umd, umd.object_offset(md).unwrap(), &[0xcd; 64])
        .unwrap();
    let schema_still = view.read_schema().is_ok();
    send(&data, &[1, u32::from(zeros), u32::from(schema_still)]);

    // 4. Drop the view (tells the owner) and leave.
    assert_eq!(recv(&data), [2]);
    drop(view);
}

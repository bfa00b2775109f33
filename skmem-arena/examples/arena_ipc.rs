//! Two processes passing packets through an arena, zero copy.
//!
//! The owner builds an arena around a packet pool and hands a view of it to
//! a peer process (itself, re-executed) over a `SOCK_SEQPACKET` socket.
//! Then, in rounds, the owner fills a batch of packets, hands them to the
//! peer (`upp_insert`) and sends their metadata indices on a second socket;
//! the peer reads every payload through its view, writes a reply payload
//! into the same buffers, and sends the indices back; the owner takes the
//! packets back (`upp_remove`, which validates what the peer wrote), checks
//! the replies and frees the batch. Only indices cross the socket; payloads
//! stay in the shared buffers.
//!
//! ```text
//! cargo run --release -p skmem-arena --example arena_ipc -- [payload bytes] [seconds] [batch]
//! ```

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("arena_ipc needs Linux (memfd, MAP_FIXED, SCM_RIGHTS)");
}

#[cfg(target_os = "linux")]
fn main() {
    if std::env::args().nth(1).as_deref() == Some("--peer") {
        linux::peer();
    } else {
        linux::owner();
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixDatagram;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use skmem_arena::{self as arena, ArenaConfig, UserView};
    use skmem_packet::{AllocFlags, Packet, PacketPoolConfig};

    const OWNER: u32 = 1;

    fn send(sock: &UnixDatagram, words: &[u32]) {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        sock.send(&bytes).expect("send");
    }

    fn recv(sock: &UnixDatagram, buf: &mut [u8]) -> Vec<u32> {
        let n = sock.recv(buf).expect("recv");
        buf[..n]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// The payload of packet `seq`: its sequence number, then a pattern.
    fn fill(out: &mut [u8], seq: u32, salt: u8) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7) ^ salt;
        }
        let n = out.len().min(4);
        out[..n].copy_from_slice(&seq.to_le_bytes()[..n]);
    }

    fn arg(i: usize, default: u64) -> u64 {
        std::env::args()
            .nth(i)
            .map_or(default, |a| a.parse().expect("numeric argument"))
    }

    pub(super) fn owner() {
        let size = arg(1, 64) as usize;
        let secs = arg(2, 2);
        let batch = arg(3, 64) as usize;
        assert!(
            (4..=2048).contains(&size),
            "payload must be 4 to 2048 bytes"
        );
        assert!((1..=1000).contains(&batch), "batch must be 1 to 1000");

        let arena = ArenaConfig::new("ipc-example")
            .pool(
                PacketPoolConfig::new("ipc-example")
                    .md_count(2 * batch.max(512))
                    .buf_size(2048),
            )
            .build()
            .expect("arena");
        let pool = arena.pool().expect("pool");

        let (ctl, ctl_peer) = arena::socketpair().expect("socketpair");
        let (data, data_peer) = arena::socketpair().expect("socketpair");
        let raw = data_peer.as_raw_fd();
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.arg("--peer").stdin(Stdio::from(ctl_peer));
        // SAFETY: runs between fork and exec; only async-signal-safe
        // `dup2`/`fcntl`, no allocation.
        unsafe {
            cmd.pre_exec(move || {
                let rc = if raw == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(raw, 3)
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let mut child = cmd.spawn().expect("spawn the peer");
        drop(data_peer);
        let data = UnixDatagram::from(data);
        data.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();

        let view = arena.send_view(&ctl).expect("send the view");
        println!(
            "arena `{}`: view of {} KiB in {} regions sent to pid {} as view {}",
            arena.name(),
            arena.layout().total_len / 1024,
            arena.layout().regions.len(),
            child.id(),
            view.0
        );

        let mut pkts: Vec<Packet> = Vec::with_capacity(batch);
        let mut idx: Vec<u32> = Vec::with_capacity(batch);
        let mut payload = vec![0u8; size];
        let mut got = vec![0u8; 2048];
        let mut rbuf = vec![0u8; 8192];
        let (mut seq, mut rounds) = (0u32, 0u64);
        let start = Instant::now();
        let deadline = start + Duration::from_secs(secs);
        while Instant::now() < deadline {
            pkts.clear();
            idx.clear();
            let n = pool
                .alloc_batch_vec(1, batch, &mut pkts, AllocFlags::NoSleep)
                .expect("alloc");
            assert_eq!(n, batch);
            for (k, &p) in pkts.iter().enumerate() {
                fill(&mut payload, seq + k as u32, 0x5a);
                // SAFETY: freshly allocated, ours until handed over.
                unsafe {
                    p.write_payload(&payload);
                    idx.push(pool.upp_insert(OWNER, p).expect("hand over"));
                }
            }
            send(&data, &idx);
            let back = recv(&data, &mut rbuf);
            assert_eq!(back, idx, "the peer returns the batch");
            for (k, &md) in back.iter().enumerate() {
                let p = pool.upp_remove(OWNER, md).expect("validated hand-back");
                // SAFETY: back and validated; ours.
                let len = unsafe { p.read_payload(&mut got) };
                fill(&mut payload, seq + k as u32, 0xa5);
                assert_eq!(&got[..len], &payload[..], "reply of packet {md}");
            }
            // SAFETY: every packet is back and used no more.
            unsafe { pool.free_batch(&pkts) }.unwrap();
            seq = seq.wrapping_add(batch as u32);
            rounds += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        send(&data, &[]);
        let status = child.wait().expect("wait for the peer");
        assert!(status.success(), "peer failed: {status}");
        arena.poll_peers().expect("poll peers");

        let pkts_total = rounds * batch as u64;
        let per_dir = pkts_total as f64 / elapsed;
        println!(
            "{rounds} rounds of {batch} packets of {size} bytes in {elapsed:.2} s \
             ({:.1} µs per round trip)",
            elapsed * 1e6 / rounds as f64
        );
        println!(
            "owner → peer: {:.2} Mpkt/s, {:.2} Gbit/s of payload",
            per_dir / 1e6,
            per_dir * size as f64 * 8.0 / 1e9
        );
        println!(
            "peer → owner: {:.2} Mpkt/s, {:.2} Gbit/s of payload (every byte checked on both sides)",
            per_dir / 1e6,
            per_dir * size as f64 * 8.0 / 1e9
        );
        let s = arena.stats();
        println!(
            "arena: {} KiB total, {} KiB in use, views live {} (sent {}, closed {})",
            s.mem_total / 1024,
            s.mem_inuse / 1024,
            s.views.local + s.views.remote,
            s.remote_views_sent,
            s.remote_closed
        );
    }

    pub(super) fn peer() {
        // SAFETY: the owner put our end of the data socket on fd 3 for us.
        let data = UnixDatagram::from(unsafe { OwnedFd::from_raw_fd(3) });
        let stdin = io::stdin();
        let view = UserView::receive(stdin.as_fd()).expect("receive the view");
        let mut buf = vec![0u8; 2048];
        let mut reply = vec![0u8; 2048];
        let mut rbuf = vec![0u8; 8192];
        loop {
            let idx = recv(&data, &mut rbuf);
            if idx.is_empty() {
                break;
            }
            for &md in &idx {
                let n = view.read_packet(md, &mut buf).expect("read");
                let seq = u32::from_le_bytes(buf[..4].try_into().unwrap());
                fill(&mut reply[..n], seq, 0x5a);
                assert_eq!(&buf[..n], &reply[..n], "payload of packet {md}");
                fill(&mut reply[..n], seq, 0xa5);
                view.write_packet(md, &reply[..n]).expect("write");
            }
            send(&data, &idx);
        }
        drop(view);
    }
}

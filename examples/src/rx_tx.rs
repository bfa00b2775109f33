//! The rx/tx workload: one thread allocates batches of packets and writes a
//! payload into each ("rx"), another verifies and frees them ("tx"), with a
//! bounded channel between them. Used by `examples/rx_tx.rs` and the
//! repository's demo (`skmem-demo`). It lives here, with the programs that
//! run it, rather than in `skmem-packet`'s API: it is a workload, not part
//! of the pool.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skmem_traits::{AllocFlags, CpuLocal, SegmentSource};

use skmem_packet::{Packet, PacketPool, PoolStats};

/// What the workload does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxTxOptions {
    /// How long to run.
    pub duration: Duration,
    /// Packets per batch (the seed's drivers use 32).
    pub batch: usize,
    /// Payload bytes written into each packet (at least 8).
    pub payload: usize,
    /// Batches in flight between the threads (channel bound).
    pub in_flight: usize,
}

impl Default for RxTxOptions {
    fn default() -> Self {
        RxTxOptions {
            duration: Duration::from_secs(1),
            batch: 32,
            payload: 64,
            in_flight: 8,
        }
    }
}

/// What the workload measured.
#[derive(Debug, Clone)]
pub struct RxTxReport {
    /// Packets allocated, filled, verified and freed.
    pub packets: u64,
    /// Batches moved.
    pub batches: u64,
    /// Partial batches (the pool had fewer packets than asked).
    pub partial_batches: u64,
    /// Allocation attempts that got nothing (pool exhausted).
    pub empty_batches: u64,
    /// Packets whose payload did not verify (must be 0).
    pub corrupt: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The pool's statistics at the end.
    pub stats: PoolStats,
}

impl RxTxReport {
    /// Packets per second.
    pub fn packets_per_sec(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn fill(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[8..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8);
    }
}

/// Runs the rx/tx workload on `pool` for `opts.duration`.
pub fn run_rx_tx<S: SegmentSource, L: CpuLocal>(
    pool: &PacketPool<S, L>,
    opts: RxTxOptions,
) -> RxTxReport {
    let payload = opts.payload.clamp(8, pool.buf_size());
    let batch = opts.batch.max(1);
    let (txq, rxq) = mpsc::sync_channel::<Vec<Packet>>(opts.in_flight.max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();

    let rx_pool = pool.clone();
    let rx_stop = Arc::clone(&stop);
    let rx = std::thread::spawn(move || {
        let mut seq = 0u64;
        let (mut partial, mut empty) = (0u64, 0u64);
        let mut data = vec![0u8; payload];
        let mut slots = vec![MaybeUninit::<Packet>::uninit(); batch];
        while !rx_stop.load(Ordering::Relaxed) {
            let n = match rx_pool.alloc_batch(1, &mut slots, AllocFlags::NoSleep) {
                Ok(n) => n,
                Err(_) => {
                    empty += 1;
                    std::thread::yield_now();
                    continue;
                }
            };
            if n < batch {
                partial += 1;
            }
            let mut v = Vec::with_capacity(n);
            for s in &slots[..n] {
                // SAFETY: initialised by `alloc_batch`.
                let p = unsafe { s.assume_init() };
                fill(&mut data, seq);
                seq += 1;
                // SAFETY: fresh packet, used by this thread only until sent.
                unsafe { p.write_payload(&data) };
                v.push(p);
            }
            if txq.send(v).is_err() {
                break;
            }
        }
        (partial, empty)
    });

    let tx_pool = pool.clone();
    let tx = std::thread::spawn(move || {
        let (mut packets, mut batches, mut corrupt) = (0u64, 0u64, 0u64);
        let mut expect = 0u64;
        let mut want = vec![0u8; payload];
        let mut got = vec![0u8; payload];
        for v in rxq {
            for &p in &v {
                // SAFETY: the rx thread gave the packet up when it sent it.
                let n = unsafe { p.read_payload(&mut got) };
                fill(&mut want, expect);
                expect += 1;
                if n != payload || got != want {
                    corrupt += 1;
                }
            }
            packets += v.len() as u64;
            batches += 1;
            // SAFETY: every packet came from the pool and is not used again.
            unsafe { tx_pool.free_batch(&v) }.expect("the demo hands no packet to a user");
        }
        (packets, batches, corrupt)
    });

    std::thread::sleep(opts.duration);
    stop.store(true, Ordering::Relaxed);
    let (partial_batches, empty_batches) = rx.join().expect("rx thread");
    let (packets, batches, corrupt) = tx.join().expect("tx thread");
    let elapsed = start.elapsed();
    RxTxReport {
        packets,
        batches,
        partial_batches,
        empty_batches,
        corrupt,
        elapsed,
        stats: pool.stats(),
    }
}

//! Random operation sequences on a `PacketPool` (heap source), checked
//! against a model after every step: packets and buflets allocated, freed
//! one by one and in batches, cloned, chained, attached, handed to user
//! processes (the user-packet-pool tracking API) and handed back after the
//! "user" wrote arbitrary bytes into its metadata; transmit-completion
//! callbacks that panic when the input says so.
//!
//! Every error the pool returns is acceptable. What must hold:
//!
//! * no packet is handed out twice, and no fresh packet gets a buffer
//!   something the test holds still uses;
//! * the pool's count of packets out equals the packets the test and its
//!   "users" hold; its count of user-held packets equals the model's;
//! * freeing a packet a user holds, or one attached to another, is refused
//!   (alone or in a batch, which then frees nothing);
//! * a panicking completion callback loses no packet of the free call;
//! * at the end, after everything is handed back or purged and freed,
//!   nothing is outstanding and every buffer is back in its slab.
//!
//! Only panics carrying [`Injected`] (from the completion callback) are
//! expected; any other panic aborts through libFuzzer's hook.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use skmem_backends::Heap;
use skmem_magazine::{Global, PerThread};
use skmem_packet::{ubft, umd, AllocFlags, Buflet, Packet, PacketPool, PacketPoolConfig, IDX_NONE};
use skmem_traits::CpuLocal;

const NS: AllocFlags = AllocFlags::NoSleep;

/// Injected callback panics per input at most.
const MAX_INJECTED_PANICS: u32 = 3;

/// Payload of the panics this target injects.
struct Injected;

fn install_panic_filter() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let next = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().is::<Injected>() {
                return;
            }
            next(info);
        }));
    });
}

#[derive(Arbitrary, Debug)]
struct Input {
    on_demand: bool,
    per_thread: bool,
    md_count: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc {
        bufcnt: u8,
    },
    AllocBatch {
        bufcnt: u8,
        n: u8,
    },
    Free {
        pick: u16,
    },
    FreeBatch {
        start: u16,
        n: u8,
    },
    WritePayload {
        pick: u16,
        len: u16,
        byte: u8,
    },
    AllocBuflet {
        large: bool,
    },
    FreeBuflet {
        pick: u16,
    },
    CloneBuflet {
        pick: u16,
    },
    AddBuflet {
        pkt: u16,
        bft: u16,
    },
    Attach {
        parent: u16,
        child: u16,
    },
    RequestTxCompletion {
        pick: u16,
    },
    ArmCallbackPanic {
        after: u8,
    },
    UppInsert {
        pick: u16,
        owner: u8,
    },
    UppInsertBuflet {
        pick: u16,
        owner: u8,
    },
    /// Arbitrary bytes at an offset of a held packet's user metadata.
    ScribblePacket {
        pick: u16,
        offset: u8,
        bytes: Vec<u8>,
    },
    /// Arbitrary bytes into a held standalone buflet's user buflet.
    ScribbleBuflet {
        pick: u16,
        offset: u8,
        bytes: Vec<u8>,
    },
    /// Links a held packet's user chain to a held buflet (or ends it).
    LinkChain {
        pick: u16,
        to: u16,
        end: bool,
    },
    FreeHeld {
        pick: u16,
        with_owned: u8,
    },
    FreeChild {
        pick: u16,
    },
    UppRemove {
        pick: u16,
        wrong_owner: bool,
        made_up: Option<u32>,
    },
    UppRemoveBuflet {
        pick: u16,
        wrong_owner: bool,
        made_up: Option<u32>,
    },
    UppPurge {
        owner: u8,
    },
    Reap,
    Purge,
}

struct Harness<L: CpuLocal> {
    pool: PacketPool<Heap, L>,
    armed: Arc<AtomicU32>,
    injected: Arc<AtomicU32>,
    /// Top-level packets the test owns.
    owned: Vec<Packet>,
    /// Parent → attached child (freed with the parent).
    children: HashMap<Packet, Packet>,
    /// Standalone buflets the test owns.
    bufs: Vec<Buflet>,
    /// Packets users hold: metadata index → (packet, owner).
    held: Vec<(u32, Packet, u32)>,
    /// Standalone buflets users hold: buflet index → owner.
    held_bufs: Vec<(u32, u32)>,
}

fn owner_of(v: u8) -> u32 {
    1 + u32::from(v % 3)
}

fn pick<T>(v: &[T], i: u16) -> Option<usize> {
    (!v.is_empty()).then(|| i as usize % v.len())
}

impl<L: CpuLocal> Harness<L> {
    fn new(input: &Input) -> Option<Self> {
        let count = 8 + input.md_count as usize % 56;
        let config = PacketPoolConfig::new("fuzz-pool")
            .md_count(count)
            .redzone_secret(0x5eed_f00d);
        let config = if input.on_demand {
            config.on_demand(true).max_frags(4)
        } else {
            config
        };
        let pool = config.build_with::<Heap, L>(Default::default()).ok()?;
        let armed = Arc::new(AtomicU32::new(0));
        let injected = Arc::new(AtomicU32::new(0));
        let (a, inj) = (armed.clone(), injected.clone());
        pool.on_tx_completion(move |_p| {
            let n = a.load(Ordering::Relaxed);
            if n > 0 {
                a.store(n - 1, Ordering::Relaxed);
                if n == 1 {
                    inj.fetch_add(1, Ordering::Relaxed);
                    panic::panic_any(Injected);
                }
            }
        });
        Some(Harness {
            pool,
            armed,
            injected,
            owned: Vec::new(),
            children: HashMap::new(),
            bufs: Vec::new(),
            held: Vec::new(),
            held_bufs: Vec::new(),
        })
    }

    /// Buffer addresses of everything the test owns (shared buffers of
    /// clones appear more than once).
    fn held_buffers(&self) -> HashSet<usize> {
        let mut set = HashSet::new();
        let mut pkts: Vec<Packet> = self.owned.clone();
        pkts.extend(self.children.values().copied());
        for p in pkts {
            // SAFETY: an allocated packet the test owns.
            for b in unsafe { p.buflets() } {
                // SAFETY: a buflet of that packet.
                let a = unsafe { b.addr() } as usize;
                if a != 0 {
                    set.insert(a);
                }
            }
        }
        for &b in &self.bufs {
            // SAFETY: a standalone buflet the test owns.
            let a = unsafe { b.addr() } as usize;
            if a != 0 {
                set.insert(a);
            }
        }
        set
    }

    fn is_known(&self, p: Packet) -> bool {
        self.owned.contains(&p)
            || self.children.values().any(|&c| c == p)
            || self.held.iter().any(|&(_, q, _)| q == p)
    }

    /// Takes a packet the pool handed back (its buffers were already held).
    fn take(&mut self, p: Packet) {
        assert!(!self.is_known(p), "packet {p:?} handed out twice");
        self.owned.push(p);
    }

    /// Takes a packet the pool just allocated: none of its buffers may be
    /// in `held`, the buffers of everything the test owns ([`held_buffers`]
    /// once per operation; this adds the packet's own, so a batch is
    /// checked against itself too, without rebuilding the set per packet,
    /// which used to take most of every execution).
    ///
    /// [`held_buffers`]: Self::held_buffers
    fn take_fresh(&mut self, p: Packet, held: &mut HashSet<usize>) {
        assert!(!self.is_known(p), "packet {p:?} handed out twice");
        let mut mine = Vec::new();
        // SAFETY: just allocated, ours.
        for b in unsafe { p.buflets() } {
            // SAFETY: a buflet of that packet.
            let a = unsafe { b.addr() } as usize;
            assert!(
                a == 0 || !held.contains(&a),
                "fresh packet got a held buffer {a:#x}"
            );
            if a != 0 {
                mine.push(a);
            }
        }
        held.extend(mine);
        // SAFETY: as above.
        assert_eq!(unsafe { p.owner() }, None, "fresh packet held by a user");
        self.owned.push(p);
    }

    fn take_pkts(&mut self, p: usize) -> Vec<Packet> {
        let p = self.owned.swap_remove(p);
        let mut v = vec![p];
        if let Some(c) = self.children.remove(&p) {
            v.push(c);
        }
        v
    }

    fn step(&mut self, op: &Op) {
        let max = self.pool.max_frags();
        match op {
            &Op::Alloc { bufcnt } => {
                if let Ok(p) = self.pool.alloc_packet(u16::from(bufcnt) % (max + 2), NS) {
                    let mut held = self.held_buffers();
                    self.take_fresh(p, &mut held);
                }
            }
            &Op::AllocBatch { bufcnt, n } => {
                let mut v = Vec::new();
                let r = self.pool.alloc_batch_vec(
                    u16::from(bufcnt) % (max + 2),
                    n as usize % 48,
                    &mut v,
                    NS,
                );
                if let Ok(got) = r {
                    assert_eq!(got, v.len());
                }
                let mut held = self.held_buffers();
                for p in v {
                    self.take_fresh(p, &mut held);
                }
            }
            &Op::Free { pick: i } => {
                if let Some(i) = pick(&self.owned, i) {
                    let p = self.take_pkts(i)[0];
                    // SAFETY: ours, given up (its child goes with it).
                    let r = unsafe { self.pool.free_packet(p) };
                    r.expect("freeing a packet the caller owns");
                }
            }
            &Op::FreeBatch { start, n } => {
                let mut v = Vec::new();
                for _ in 0..n % 48 {
                    match pick(&self.owned, start) {
                        Some(i) => v.push(self.take_pkts(i)[0]),
                        None => break,
                    }
                }
                // SAFETY: ours, distinct, given up.
                let r = unsafe { self.pool.free_batch(&v) };
                r.expect("freeing packets the caller owns");
            }
            &Op::FreeHeld {
                pick: i,
                with_owned,
            } => {
                // A packet a user still holds: refused, and in a batch
                // nothing of the batch is freed (issue 11 item 10).
                let Some(i) = pick(&self.held, i) else {
                    return;
                };
                let held = self.held[i].1;
                let mut v: Vec<Packet> = self
                    .owned
                    .iter()
                    .copied()
                    .take(with_owned as usize % 8)
                    .collect();
                v.push(held);
                // SAFETY: allocated from this pool, not freed; the call is
                // refused, so nothing is given up.
                let r = unsafe {
                    if v.len() == 1 {
                        self.pool.free_packet(held)
                    } else {
                        self.pool.free_batch(&v)
                    }
                };
                assert!(r.is_err(), "freeing a user-held packet was not refused");
            }
            &Op::FreeChild { pick: i } => {
                let Some(&child) = self
                    .children
                    .values()
                    .nth(i as usize % self.children.len().max(1))
                else {
                    return;
                };
                // SAFETY: allocated, not freed; refused, nothing given up.
                let r = unsafe { self.pool.free_packet(child) };
                assert!(r.is_err(), "freeing an attached packet was not refused");
            }
            &Op::WritePayload { pick: i, len, byte } => {
                if let Some(i) = pick(&self.owned, i) {
                    let data = vec![byte; len as usize % 9000];
                    // SAFETY: ours, used by this thread only.
                    let n = unsafe { self.owned[i].write_payload(&data) };
                    // SAFETY: as above.
                    let cap = unsafe { self.owned[i].capacity() };
                    assert!(n <= data.len() && n <= cap, "wrote {n} of {}", data.len());
                }
            }
            &Op::AllocBuflet { large } => {
                if let Ok(b) = self.pool.alloc_buflet(large, NS) {
                    let bufs = self.held_buffers();
                    // SAFETY: fresh, ours.
                    let a = unsafe { b.addr() } as usize;
                    assert!(
                        a == 0 || !bufs.contains(&a),
                        "fresh buflet got a held buffer"
                    );
                    self.bufs.push(b);
                }
            }
            &Op::FreeBuflet { pick: i } => {
                if let Some(i) = pick(&self.bufs, i) {
                    let b = self.bufs.swap_remove(i);
                    // SAFETY: ours, standalone, given up.
                    unsafe { self.pool.free_buflet(b) };
                }
            }
            &Op::CloneBuflet { pick: i } => {
                if let Some(i) = pick(&self.bufs, i) {
                    // SAFETY: an allocated standalone buflet we own.
                    if let Ok(c) = unsafe { self.pool.clone_buflet(self.bufs[i], NS) } {
                        // SAFETY: both ours.
                        unsafe { assert_eq!(c.addr(), self.bufs[i].addr(), "a clone shares") };
                        self.bufs.push(c);
                    }
                }
            }
            &Op::AddBuflet { pkt, bft } => {
                if let (Some(p), Some(b)) = (pick(&self.owned, pkt), pick(&self.bufs, bft)) {
                    // SAFETY: both ours; `b` is standalone.
                    if unsafe { self.pool.packet_add_buflet(self.owned[p], self.bufs[b]) }.is_ok() {
                        self.bufs.swap_remove(b);
                    }
                }
            }
            &Op::Attach { parent, child } => {
                let (Some(p), Some(c)) = (pick(&self.owned, parent), pick(&self.owned, child))
                else {
                    return;
                };
                let (pp, cp) = (self.owned[p], self.owned[c]);
                if p == c || self.children.contains_key(&pp) || self.children.contains_key(&cp) {
                    return;
                }
                // SAFETY: both ours, neither attached.
                if unsafe { self.pool.attach_packet(pp, cp) }.is_ok() {
                    self.owned.retain(|&q| q != cp);
                    self.children.insert(pp, cp);
                }
            }
            &Op::RequestTxCompletion { pick: i } => {
                if let Some(i) = pick(&self.owned, i) {
                    // SAFETY: ours.
                    unsafe { self.owned[i].request_tx_completion() };
                }
            }
            &Op::ArmCallbackPanic { after } => {
                if self.injected.load(Ordering::Relaxed) < MAX_INJECTED_PANICS {
                    self.armed
                        .store(1 + u32::from(after % 8), Ordering::Relaxed);
                }
            }
            &Op::UppInsert { pick: i, owner } => {
                if let Some(i) = pick(&self.owned, i) {
                    let p = self.owned[i];
                    if self.children.contains_key(&p) {
                        return;
                    }
                    // SAFETY: ours; given up on success.
                    if let Ok(idx) = unsafe { self.pool.upp_insert(owner_of(owner), p) } {
                        self.owned.swap_remove(i);
                        assert!(self.held.iter().all(|&(j, _, _)| j != idx), "index reused");
                        self.held.push((idx, p, owner_of(owner)));
                    }
                }
            }
            &Op::UppInsertBuflet { pick: i, owner } => {
                if let Some(i) = pick(&self.bufs, i) {
                    // SAFETY: ours, standalone; given up on success.
                    if let Ok(idx) =
                        unsafe { self.pool.upp_insert_buflet(owner_of(owner), self.bufs[i]) }
                    {
                        self.bufs.swap_remove(i);
                        self.held_bufs.push((idx, owner_of(owner)));
                    }
                }
            }
            Op::ScribblePacket {
                pick: i,
                offset,
                bytes,
            } => {
                if let Some(i) = pick(&self.held, *i) {
                    let base = self
                        .pool
                        .user_metadata(self.held[i].0)
                        .expect("held")
                        .as_ptr();
                    scribble(base, umd::SIZE, *offset as usize, bytes);
                }
            }
            Op::ScribbleBuflet {
                pick: i,
                offset,
                bytes,
            } => {
                if let Some(i) = pick(&self.held_bufs, *i) {
                    let base = self
                        .pool
                        .user_buflet(self.held_bufs[i].0)
                        .expect("held")
                        .as_ptr();
                    scribble(base, ubft::SIZE, *offset as usize, bytes);
                }
            }
            &Op::LinkChain { pick: i, to, end } => {
                if let Some(i) = pick(&self.held, i) {
                    let base = self
                        .pool
                        .user_metadata(self.held[i].0)
                        .expect("held")
                        .as_ptr();
                    let next = match pick(&self.held_bufs, to) {
                        Some(j) if !end => self.held_bufs[j].0,
                        _ => IDX_NONE,
                    };
                    scribble(
                        base,
                        umd::SIZE,
                        umd::BUF + ubft::NEXT_INDEX,
                        &next.to_ne_bytes(),
                    );
                }
            }
            &Op::UppRemove {
                pick: i,
                wrong_owner,
                made_up,
            } => {
                let (idx, owner) = match (made_up, pick(&self.held, i)) {
                    (Some(idx), _) => (idx, 1 + (idx >> 30)),
                    (None, Some(j)) => (self.held[j].0, self.held[j].2),
                    (None, None) => return,
                };
                let owner = if wrong_owner { owner % 3 + 1 } else { owner };
                if let Ok(p) = self.pool.upp_remove(owner, idx) {
                    let j = self
                        .held
                        .iter()
                        .position(|&(k, q, o)| k == idx && q == p && o == owner)
                        .expect("handed back a packet this owner held under that index");
                    self.held.swap_remove(j);
                    // SAFETY: handed back, ours.
                    assert_eq!(unsafe { p.owner() }, None);
                    self.take(p);
                }
            }
            &Op::UppRemoveBuflet {
                pick: i,
                wrong_owner,
                made_up,
            } => {
                let (idx, owner) = match (made_up, pick(&self.held_bufs, i)) {
                    (Some(idx), _) => (idx, 1 + (idx >> 30)),
                    (None, Some(j)) => self.held_bufs[j],
                    (None, None) => return,
                };
                let owner = if wrong_owner { owner % 3 + 1 } else { owner };
                if let Ok(b) = self.pool.upp_remove_buflet(owner, idx) {
                    // A standalone buflet, or one the user unlinked from a
                    // packet's chain: either way it is standalone now.
                    if let Some(j) = self.held_bufs.iter().position(|&(k, _)| k == idx) {
                        assert_eq!(self.held_bufs[j].1, owner, "handed back to another owner");
                        self.held_bufs.swap_remove(j);
                    }
                    assert!(!self.bufs.contains(&b), "buflet handed out twice");
                    self.bufs.push(b);
                }
            }
            &Op::UppPurge { owner } => {
                let o = owner_of(owner);
                // The model first: the purge frees the owner's packets, and
                // a completion callback that panics on one of them unwinds
                // out of `upp_purge` after every packet has been freed.
                self.held.retain(|&(_, _, h)| h != o);
                self.held_bufs.retain(|&(_, h)| h != o);
                self.pool.upp_purge(o);
            }
            Op::Reap => self.pool.reap(),
            Op::Purge => self.pool.purge(),
        }
    }

    fn check(&self, after: &Op) {
        let s = self.pool.stats();
        let mine = (self.owned.len() + self.children.len() + self.held.len()) as u64;
        assert_eq!(s.packets_out, mine, "after {after:?}: packets out");
        assert_eq!(
            s.upp_packets,
            self.held.len() as u64,
            "after {after:?}: user-held packets"
        );
    }

    fn finish(mut self) {
        self.armed.store(0, Ordering::Relaxed);
        for (idx, _, owner) in std::mem::take(&mut self.held) {
            if let Ok(p) = self.pool.upp_remove(owner, idx) {
                self.take(p);
            }
        }
        for (idx, owner) in std::mem::take(&mut self.held_bufs) {
            if let Ok(b) = self.pool.upp_remove_buflet(owner, idx) {
                self.bufs.push(b);
            }
        }
        // Whatever the users scribbled beyond repair goes with them.
        self.pool.upp_purge_all();
        assert!(self.pool.upp_is_empty(), "user tracking left entries");
        let pkts = std::mem::take(&mut self.owned);
        self.children.clear();
        // SAFETY: ours, distinct, given up.
        unsafe {
            self.pool
                .free_batch(&pkts)
                .expect("freeing packets the caller owns");
            self.pool.free_buflet_batch(&std::mem::take(&mut self.bufs));
        }
        let s = self.pool.stats();
        assert_eq!(s.packets_out, 0, "packets leaked:\n{}", s.table());
        assert_eq!(s.buflets_out, 0, "buflets leaked:\n{}", s.table());
        // SAFETY: this thread is the pool's only user: it is quiescent.
        let out = unsafe { self.pool.outstanding() };
        assert!(out.is_empty(), "leak: {out:?}");
        self.pool.purge();
        let s = self.pool.stats();
        assert_eq!(s.md_cache.slab.sl_bufinuse, 0, "every metadata object back");
        assert_eq!(
            s.buf_def.slab.sl_bufinuse,
            0,
            "every buffer back:\n{}",
            s.table()
        );
        if let Some(b) = &s.bft_def {
            assert_eq!(b.slab.sl_bufinuse, 0, "every buflet back");
        }
    }
}

/// What a user process does: plain byte stores into its mapping, never
/// past the object.
fn scribble(base: *mut u8, size: usize, offset: usize, bytes: &[u8]) {
    for (k, &b) in bytes.iter().enumerate() {
        let off = (offset + k) % size;
        // SAFETY: inside the user object (`off < size`) of a packet or
        // buflet a user holds; the test plays the user.
        unsafe { ptr::write_volatile(base.add(off), b) };
    }
}

fn run<L: CpuLocal>(input: &Input) {
    let Some(mut h) = Harness::<L>::new(input) else {
        return;
    };
    // SKMEM_FUZZ_TRACE=1 prints each operation (to replay a finding).
    let trace = std::env::var_os("SKMEM_FUZZ_TRACE").is_some();
    if trace {
        eprintln!(
            "on_demand {} per_thread {} md_count {}",
            input.on_demand, input.per_thread, input.md_count
        );
    }
    for op in input.ops.iter().take(256) {
        if trace {
            let s = h.pool.stats();
            eprintln!("  out {} upp {} | {op:?}", s.packets_out, s.upp_packets);
        }
        let before = h.injected.load(Ordering::Relaxed);
        let r = panic::catch_unwind(AssertUnwindSafe(|| h.step(op)));
        if let Err(payload) = r {
            assert!(payload.is::<Injected>(), "only injected panics are caught");
            assert!(h.injected.load(Ordering::Relaxed) > before);
        }
        h.check(op);
    }
    h.finish();
}

fuzz_target!(|input: Input| {
    install_panic_filter();
    if input.per_thread {
        run::<PerThread>(&input);
    } else {
        run::<Global>(&input);
    }
});

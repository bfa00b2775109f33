//! Loom model of the per-CPU front's stop / fence handshake (see
//! `src/local/front.rs`): restartable critical sections on one CPU's front
//! racing a remote drain that stops the front, fences it with
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)` and empties it.
//!
//! Loom cannot run the real sections (inline assembly and a kernel that
//! restarts them), so the model spells out what the kernel guarantees:
//!
//! * **The CPU** is a loom mutex: the owner threads' instructions and the
//!   membarrier's interrupt run on it one at a time. Each instruction of a
//!   section is one step under that mutex.
//! * **Restart semantics**: the CPU counts interruptions (`epoch`): a step
//!   by another thread than the one that ran last (preemption on that CPU)
//!   or a membarrier interrupt. A section records the epoch when it starts;
//!   a step that finds it changed does not run: the section is aborted and
//!   the caller retries, exactly like the kernel's jump to the abort
//!   handler. The commit is a single step, so it either happens entirely
//!   before an interruption or not at all.
//! * **membarrier** is one step of the CPU's mutex by the remote thread
//!   that bumps the epoch, preceded by a `SeqCst` fence on the remote side;
//!   the mutex's acquire/release gives the full barrier on both sides (the
//!   asymmetric fence modelled as a `SeqCst` fence on both sides).
//!
//! The models check that no object is lost or handed out twice; the last
//! one removes the membarrier and checks that loom then finds a violation,
//! so the model can fail.
#![cfg(loom)]

use loom::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

const CAP: usize = 3;

/// One CPU's front block.
struct Front {
    count: AtomicU32,
    stopped: AtomicU32,
    rounds: [AtomicUsize; CAP],
}

/// The CPU: who ran last and how often it was interrupted.
struct Cpu {
    state: Mutex<(usize, u64)>,
}

struct World {
    cpu: Cpu,
    front: Front,
    /// Serialises remote operations (the fronts' `stop` lock).
    stop: Mutex<()>,
}

/// A section was aborted: retry.
struct Aborted;

impl World {
    fn new(objs: &[usize]) -> Self {
        let rounds = [0, 1, 2].map(|i| AtomicUsize::new(objs.get(i).copied().unwrap_or(0)));
        World {
            cpu: Cpu {
                state: Mutex::new((usize::MAX, 0)),
            },
            front: Front {
                count: AtomicU32::new(objs.len() as u32),
                stopped: AtomicU32::new(0),
                rounds,
            },
            stop: Mutex::new(()),
        }
    }

    /// Starts a section for thread `me`: its epoch after switching in.
    fn start(&self, me: usize) -> u64 {
        let mut st = self.cpu.state.lock().unwrap();
        if st.0 != me {
            st.0 = me;
            st.1 += 1;
        }
        st.1
    }

    /// One instruction of `me`'s section begun at `epoch`.
    fn step<R>(&self, me: usize, epoch: u64, insn: impl FnOnce() -> R) -> Result<R, Aborted> {
        let mut st = self.cpu.state.lock().unwrap();
        if st.0 != me {
            // Another thread ran on this CPU since: preempted.
            st.0 = me;
            st.1 += 1;
        }
        if st.1 != epoch {
            return Err(Aborted);
        }
        Ok(insn())
    }

    /// Pop section: `Ok(None)` refused (stopped or empty).
    fn pop_once(&self, me: usize) -> Result<Option<usize>, Aborted> {
        let f = &self.front;
        let e = self.start(me);
        let n = self.step(me, e, || {
            if f.stopped.load(Ordering::Acquire) != 0 {
                None
            } else {
                Some(f.count.load(Ordering::Acquire))
            }
        })?;
        let Some(n) = n.filter(|&n| n > 0) else {
            return Ok(None);
        };
        let obj = self.step(me, e, || f.rounds[n as usize - 1].load(Ordering::Acquire))?;
        // Commit: one store.
        self.step(me, e, || f.count.store(n - 1, Ordering::Release))?;
        Ok(Some(obj))
    }

    /// Push section: `Ok(false)` refused (stopped or full).
    fn push_once(&self, me: usize, obj: usize) -> Result<bool, Aborted> {
        let f = &self.front;
        let e = self.start(me);
        let n = self.step(me, e, || {
            if f.stopped.load(Ordering::Acquire) != 0 {
                None
            } else {
                Some(f.count.load(Ordering::Acquire))
            }
        })?;
        let Some(n) = n.filter(|&n| (n as usize) < CAP) else {
            return Ok(false);
        };
        self.step(me, e, || f.rounds[n as usize].store(obj, Ordering::Release))?;
        self.step(me, e, || f.count.store(n + 1, Ordering::Release))?;
        Ok(true)
    }

    fn pop(&self, me: usize) -> Option<usize> {
        loop {
            if let Ok(r) = self.pop_once(me) {
                return r;
            }
        }
    }

    fn push(&self, me: usize, obj: usize) -> bool {
        loop {
            if let Ok(r) = self.push_once(me, obj) {
                return r;
            }
        }
    }

    /// The remote drain: stop, fence, empty, unstop.
    fn drain(&self, with_membarrier: bool) -> Vec<usize> {
        let _serial = self.stop.lock().unwrap();
        let f = &self.front;
        f.stopped.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if with_membarrier {
            // The interrupt on the CPU: aborts whatever section runs there.
            self.cpu.state.lock().unwrap().1 += 1;
        }
        fence(Ordering::SeqCst);
        let n = f.count.load(Ordering::Relaxed) as usize;
        let out = (0..n)
            .map(|i| f.rounds[i].load(Ordering::Relaxed))
            .collect();
        f.count.store(0, Ordering::Relaxed);
        f.stopped.fetch_sub(1, Ordering::Release);
        out
    }

    /// What the front holds at the end.
    fn rest(&self) -> Vec<usize> {
        let n = self.front.count.load(Ordering::Relaxed) as usize;
        (0..n)
            .map(|i| self.front.rounds[i].load(Ordering::Relaxed))
            .collect()
    }
}

/// Front starts with objects 1 and 2; an owner holds 3. The owner pops one,
/// pushes 3, pushes back what it popped; a remote thread drains
/// concurrently. Every object ends up in exactly one place.
fn one_owner(with_membarrier: bool) {
    loom::model(move || {
        let w = Arc::new(World::new(&[1, 2]));
        let owner = {
            let w = w.clone();
            thread::spawn(move || {
                let mut held = vec![3];
                if let Some(x) = w.pop(1) {
                    held.push(x);
                }
                held.retain(|&o| !w.push(1, o));
                held
            })
        };
        let drained = w.drain(with_membarrier);
        let mut all = owner.join().unwrap();
        all.extend(drained);
        all.extend(w.rest());
        all.sort_unstable();
        assert_eq!(all, vec![1, 2, 3], "lost or duplicated");
    });
}

#[test]
fn loom_rseq_drain_races_one_owner() {
    one_owner(true);
}

/// Two threads on the same CPU preempt each other (each preemption aborts
/// the other's section) while a remote thread drains.
#[test]
fn loom_rseq_drain_races_two_owners_on_one_cpu() {
    loom::model(|| {
        let w = Arc::new(World::new(&[1]));
        let popper = {
            let w = w.clone();
            thread::spawn(move || w.pop(1).into_iter().collect::<Vec<_>>())
        };
        let pusher = {
            let w = w.clone();
            thread::spawn(move || if w.push(2, 2) { vec![] } else { vec![2] })
        };
        let drained = w.drain(true);
        let mut all = popper.join().unwrap();
        all.extend(pusher.join().unwrap());
        all.extend(drained);
        all.extend(w.rest());
        all.sort_unstable();
        assert_eq!(all, vec![1, 2], "lost or duplicated");
    });
}

/// Without the membarrier a section that read `stopped == 0` before the
/// stop can commit while the remote side reads the block: loom finds an
/// execution that loses or duplicates an object.
#[test]
fn loom_rseq_drain_without_membarrier_is_caught() {
    let caught = std::panic::catch_unwind(|| one_owner(false));
    assert!(
        caught.is_err(),
        "the model must catch a drain without the fence"
    );
}

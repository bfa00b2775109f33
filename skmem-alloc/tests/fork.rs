//! `fork()` while other threads allocate and free leaves the child with a
//! working allocator (the atfork handlers hold every lock across the fork).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

fn churn(stop: Arc<AtomicBool>, seed: usize) -> usize {
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut n = 0;
    let mut x = seed;
    while !stop.load(Ordering::Relaxed) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let size = (x >> 33) % 40_000 + 1;
        held.push(vec![n as u8; size]);
        if held.len() > 64 {
            held.swap_remove((x >> 20) % held.len());
        }
        n += 1;
    }
    n
}

#[test]
fn fork_in_a_multithreaded_process_then_allocate_in_the_child() {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let stop = stop.clone();
            thread::spawn(move || churn(stop, i))
        })
        .collect();
    assert_eq!(skmem_alloc::debug_fork_children(), 0);
    for round in 0..10 {
        thread::sleep(std::time::Duration::from_millis(5));
        // SAFETY: the child only allocates, spawns a thread and exits with
        // _exit (no unwinding into the parent's test harness).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let handled = skmem_alloc::debug_fork_children() == 1;
            let ok = handled
                && std::panic::catch_unwind(|| {
                    let mut v: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
                    v.sort();
                    let big = vec![7u8; 1 << 20];
                    let t = thread::spawn(|| {
                        (0..1000usize)
                            .map(|i| vec![i as u8; i])
                            .map(|v| v.len())
                            .sum::<usize>()
                    });
                    let spawned = t.join().unwrap();
                    v.len() == 10_000 && big.iter().all(|&b| b == 7) && spawned == 999 * 1000 / 2
                })
                .unwrap_or(false);
            // SAFETY: _exit ends the child without running the parent's
            // destructors or atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        let got = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(got, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "round {round}: child status {status:#x}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0);
    }
}

//! Reading the stats of every class cache allocates (names are copied into
//! the stats), and with skmem as the global allocator that allocation can
//! need the very class whose stats are being read. With `SKMEM_DEBUG` set
//! the thread fronts are bypassed, so every allocation reaches a class's
//! slab layer: the case that self-deadlocked while the slab layer copied
//! its name under its own lock. The walk runs in a child (this binary
//! re-executed with the debug variable set, which is read once at start)
//! so that a hang is a failed test, not a hung suite.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

const CHILD: &str = "SKMEM_ALLOC_STATS_WALK_CHILD";

#[test]
fn stats_walk_under_debug_mode_allocates_without_deadlock() {
    if std::env::var_os(CHILD).is_some() {
        // Touch the small classes so that their caches exist, then walk.
        let names: Vec<String> = (1..=64).map(|i| "x".repeat(i)).collect();
        let stats = skmem_magazine::all_stats();
        let classes = stats
            .iter()
            .filter(|s| s.name.starts_with("skmem-alloc."))
            .count();
        println!("walked {classes} classes, {} names", names.len());
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "stats_walk_under_debug_mode_allocates_without_deadlock",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("SKMEM_DEBUG", "guards")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the stats walk under SKMEM_DEBUG=guards hung (deadlock)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "child failed: {status:?}\n{out}");
    let walked: usize = out
        .split("walked ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no walk line in the child's output: {out}"));
    assert!(walked >= 2, "only {walked} class caches listed:\n{out}");
}

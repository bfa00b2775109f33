//! `SKMEM_STATS=publish` and `SKMEM_SHOW_STATS=1` in a real child process
//! (this test binary run again), which acts on them at load without
//! calling anything: the parent reads the child's published
//! stats through `/proc/PID/fd`, the child prints its tables at exit, and
//! a read after the child is gone is an error, not a crash.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;

use skmem_stats::{ReadError, Reader, Stats};
use skmem_traits::registry::{self, Kind, Registered};
use skmem_traits::stats::CustomStats;

const CHILD_ENV: &str = "SKMEM_STATS_TEST_CHILD";

struct Probe;

impl Registered for Probe {
    fn stats(&self) -> Stats {
        Stats::Custom(CustomStats {
            kind: "probe".into(),
            name: "probe-at-exit".into(),
            values: vec![("answer".into(), 42), ("other".into(), 7)],
        })
    }
}

/// The child's side; returns at once in a normal test run.
#[test]
fn child_side_of_env_publish_and_show_stats() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let probe = Arc::new(Probe);
    let registration = registry::register_arc(Kind::Custom, &probe);
    // Publishing started when the program was loaded, from the
    // environment alone (no call); an explicit call afterwards is
    // harmless.
    assert!(
        skmem_stats::is_publishing(),
        "SKMEM_STATS=publish started the publisher at load"
    );
    skmem_stats::init_from_env().expect("a second init is harmless");
    println!("ready");
    // Wait for the parent to close our stdin.
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    // Still registered at exit: the exit hook prints it.
    std::mem::forget(registration);
    std::mem::forget(probe);
}

#[test]
fn env_publish_is_read_from_another_process_and_show_stats_prints_at_exit() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_side_of_env_publish_and_show_stats",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("SKMEM_STATS", "publish")
        .env("SKMEM_STATS_INTERVAL_MS", "50")
        .env("SKMEM_SHOW_STATS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
    }

    let reader = Reader::attach(pid).expect("the child publishes");
    // The publisher started before the probe was registered: the probe
    // shows up at the next refresh (every 50 ms here).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let probe = loop {
        let snap = reader.read().unwrap();
        assert_eq!(snap.pid, pid);
        let found = snap.entries.iter().find_map(|e| match &e.stats {
            Stats::Custom(c) if c.name == "probe-at-exit" => Some(c.clone()),
            _ => None,
        });
        match found {
            Some(p) => break p,
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            None => panic!("the child's probe is never published"),
        }
    };
    assert_eq!(probe.kind, "probe");
    let values: Vec<(&str, u64)> = probe.values.iter().map(|(n, v)| (&**n, *v)).collect();
    assert_eq!(
        values,
        [("answer", 42), ("other", 7)],
        "names and values published"
    );

    drop(child.stdin.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {err}");
    assert!(err.contains("skmem stats at exit"), "{err}");
    assert!(err.contains("probe-at-exit"), "{err}");
    assert!(err.contains("answer=42 other=7"), "{err}");

    match reader.read() {
        Err(ReadError::PeerExited(p)) => assert_eq!(p, pid),
        other => panic!("expected PeerExited, got {other:?}"),
    }
    assert!(matches!(
        Reader::attach(pid),
        Err(ReadError::NoSuchProcess(_))
    ));
}

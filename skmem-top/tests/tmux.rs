//! `skmem-top` in a real terminal (tmux) against the demo workload running
//! in another process, and its one-shot JSON and error paths.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_skmem-top");

/// tmux is there, or installed with apt-get; `false` (the caller skips
/// loudly) only when neither works.
fn ensure_tmux() -> bool {
    let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
    if ok(Command::new("tmux").arg("-V")) {
        return true;
    }
    let _ = Command::new("apt-get").arg("update").output();
    if ok(Command::new("apt-get").args(["install", "-y", "tmux"]))
        && ok(Command::new("tmux").arg("-V"))
    {
        return true;
    }
    eprintln!("\n!!!!!!!! SKIPPED: tmux is missing and `apt-get install -y tmux` failed; the terminal test did not run !!!!!!!!\n");
    false
}

struct Session(String);

impl Session {
    fn start(command: &str) -> Session {
        let name = format!("skmem-top-test-{}", std::process::id());
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &name])
            .output();
        let st = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "200",
                "-y",
                "50",
                command,
            ])
            .status()
            .expect("tmux runs");
        assert!(st.success(), "tmux new-session failed");
        Session(name)
    }

    fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let st = Command::new("tmux")
            .args(["send-keys", "-t", &self.0, keys])
            .status()
            .expect("tmux send-keys");
        assert!(st.success());
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Captures until `pred` holds, or panics with the last screen.
    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

/// The cache table's rows: name and the 12 other cells, in screen order.
fn cache_rows(screen: &str) -> Vec<(String, Vec<String>)> {
    let mut rows = Vec::new();
    let mut inside = false;
    for line in screen.lines() {
        let body = line.trim().trim_matches('│').trim();
        if body.starts_with("CACHE") {
            inside = true;
            continue;
        }
        if inside {
            if line.trim_start().starts_with('└') {
                break;
            }
            let cells: Vec<String> = body.split_whitespace().map(String::from).collect();
            if cells.len() == 13 {
                rows.push((cells[0].clone(), cells[1..].to_vec()));
            }
        }
    }
    rows
}

const DEMO: [&str; 3] = ["demo.alpha", "demo.bravo", "demo.charlie"];
const SIZE: usize = 0; // index among the cells after the name
const ALLOCS: usize = 10;

fn column(rows: &[(String, Vec<String>)], index: usize) -> HashMap<String, u64> {
    rows.iter()
        .map(|(n, c)| {
            (
                n.clone(),
                c[index].parse().unwrap_or_else(|_| panic!("{n}: {c:?}")),
            )
        })
        .collect()
}

#[test]
fn skmem_top_watches_the_demo_in_tmux() {
    if !ensure_tmux() {
        return;
    }
    let s = Session::start(&format!("{BIN} --demo"));
    let lists_demo = |screen: &str| {
        let rows = cache_rows(screen);
        DEMO.iter().all(|d| rows.iter().any(|(n, _)| n == d))
    };
    let first = s.wait_for("the demo's caches", Duration::from_secs(60), lists_demo);
    let pid: u32 = first
        .split_whitespace()
        .skip_while(|w| *w != "pid")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("the title names the watched pid");
    // The arenas panel lists the demo's arena with its one local view.
    let arena_line = first
        .lines()
        .skip_while(|l| !l.contains(" arenas "))
        .find(|l| l.contains(skmem_top::demo::ARENA))
        .unwrap_or_else(|| panic!("no arena row:\n{first}"));
    let cells: Vec<&str> = arena_line
        .trim_matches(|c: char| c == '│' || c.is_whitespace())
        .split_whitespace()
        .collect();
    // ARENA MEM_KIB TOTAL_KIB VIEW_KIB LOCAL REMOTE REDIRECTS STATE
    assert_eq!(cells.len(), 8, "{arena_line}");
    assert_eq!(
        (cells[4], cells[5], cells[7]),
        ("1", "0", "active"),
        "{arena_line}"
    );
    assert!(
        cells[3].parse::<u64>().unwrap() > 0,
        "a view is mapped: {arena_line}"
    );
    let rows1 = cache_rows(&first);
    // Sorted by name to begin with.
    let names: Vec<&String> = rows1.iter().map(|(n, _)| n).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "initial order is by name:\n{first}");
    let allocs1 = column(&rows1, ALLOCS);

    std::thread::sleep(Duration::from_millis(2500));
    let second = s.capture();
    let allocs2 = column(&cache_rows(&second), ALLOCS);
    for d in DEMO {
        assert!(
            allocs2[d] > allocs1[d],
            "{d}: allocations did not grow between captures ({} then {}):\n{first}\n{second}",
            allocs1[d],
            allocs2[d]
        );
    }

    // `s` moves the sort to the next column: object size, largest first.
    s.keys("s");
    let by_size = s.wait_for("sort by SIZE", Duration::from_secs(10), |sc| {
        sc.contains("SIZE*")
    });
    let rows = cache_rows(&by_size);
    let sizes: Vec<u64> = rows.iter().map(|(_, c)| c[SIZE].parse().unwrap()).collect();
    assert!(
        sizes.windows(2).all(|w| w[0] >= w[1]),
        "rows not in descending size order {sizes:?}:\n{by_size}"
    );
    let demo_order: Vec<&str> = rows
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| DEMO.contains(n))
        .collect();
    assert_eq!(
        demo_order,
        ["demo.alpha", "demo.charlie", "demo.bravo"],
        "{by_size}"
    );

    // `/` filters by name: only the matching cache stays.
    s.keys("/");
    s.keys("bravo");
    s.keys("Enter");
    // The title line shows the applied filter (the status line echoes the
    // one being typed).
    let filtered = s.wait_for("the filter", Duration::from_secs(10), |sc| {
        sc.lines()
            .next()
            .is_some_and(|l| l.contains("filter: bravo"))
    });
    let names: Vec<String> = cache_rows(&filtered).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["demo.bravo"], "{filtered}");
    s.keys("/");
    s.keys("Escape");
    s.wait_for("the filter cleared", Duration::from_secs(10), |sc| {
        sc.contains("filter: -") && lists_demo(sc)
    });

    // The watched process dies: a clear message, no crash.
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let gone = s.wait_for("the exit message", Duration::from_secs(10), |sc| {
        sc.contains(&format!("process {pid} has exited"))
    });
    assert!(lists_demo(&gone), "last data stays on screen:\n{gone}");
    s.keys("q");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!s.alive(), "skmem-top did not quit on q");
}

#[test]
fn once_json_lists_caches_with_name_and_size() {
    let out = Command::new(BIN)
        .args(["--demo", "--once", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let caches = v["caches"].as_array().expect("caches array");
    for (name, size, _) in skmem_top::demo::CACHES {
        let c = caches
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {v}"));
        assert_eq!(c["obj_size"], size as u64);
    }
    assert!(v["pools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == skmem_top::demo::POOL));
    assert!(v["regions"].as_array().unwrap().len() >= 3);
    let arena = v["arenas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == skmem_top::demo::ARENA)
        .unwrap_or_else(|| panic!("the demo's arena missing from {v}"));
    assert_eq!(arena["local_views"], 1);
}

#[test]
fn missing_or_silent_processes_get_a_clear_error() {
    // A process that does not exist.
    let out = Command::new(BIN)
        .args(["--once", "--json", "999999999"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no process 999999999"), "{err}");
    // A live process that publishes nothing (this test).
    let me = std::process::id().to_string();
    let out = Command::new(BIN)
        .args(["--once", "--json", &me])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("publishes no skmem stats"), "{err}");
    // Not a pid at all.
    let out = Command::new(BIN).arg("twelve").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"twelve\""));
}

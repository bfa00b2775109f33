//! Foreign and interior pointers passed to `free` are reported on stderr,
//! naming the address, and the process aborts: each case runs in a child
//! (this test binary re-executed with an environment variable) whose
//! stderr and signal are checked.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

const CASE: &str = "SKMEM_ALLOC_ABORT_CASE";

/// In the child: commits the misuse named by the environment, printing the
/// address first; returns only when the variable is unset.
fn child_case() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    let obj = skmem_alloc::malloc(48);
    let big = skmem_alloc::malloc(1 << 20);
    let on_stack = [0u64; 4];
    // SAFETY: deliberately bad pointers: the allocator must report and
    // abort before touching them.
    let addr = match case.as_str() {
        "interior" => obj.wrapping_add(16),
        "stack" => on_stack.as_ptr().cast_mut().cast(),
        // SAFETY: libc's own malloc, not ours.
        "libc" => unsafe { libc::malloc(64) }.cast(),
        "large-interior" => big.wrapping_add(4096),
        "realloc-interior" => obj.wrapping_add(8),
        "double" => {
            // SAFETY: a live block, freed once here; the free below is the
            // second.
            unsafe { skmem_alloc::free(obj) };
            obj
        }
        other => panic!("unknown case {other}"),
    };
    println!("\nADDR {:#x}", addr as usize);
    // SAFETY: see above: must abort.
    unsafe {
        if case == "realloc-interior" {
            skmem_alloc::realloc(addr, 10);
        } else {
            skmem_alloc::free(addr);
        }
    }
    println!("SURVIVED");
    std::process::exit(0);
}

fn run(case: &str) -> (String, String, std::process::ExitStatus) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "bad_frees_abort_naming_the_address",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CASE, case)
        // The messages checked are the normal mode's O(1) checks; under
        // SKMEM_DEBUG the slab layer's debug mode reports the same frees in
        // its own words (tested in skmem-malloc's tests/preload.rs).
        .env_remove("SKMEM_DEBUG")
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status,
    )
}

#[test]
fn bad_frees_abort_naming_the_address() {
    child_case();
    for (case, what) in [
        (
            "interior",
            "interior pointer, 16 bytes into a 48-byte object",
        ),
        ("stack", "not allocated by skmem-alloc"),
        ("libc", "not allocated by skmem-alloc"),
        ("large-interior", "not allocated by skmem-alloc"),
        (
            "realloc-interior",
            "interior pointer, 8 bytes into a 48-byte object",
        ),
        ("double", "double free of a 48-byte object"),
    ] {
        let (stdout, stderr, status) = run(case);
        let addr = stdout
            .lines()
            .find_map(|l| l.strip_prefix("ADDR "))
            .unwrap_or_else(|| panic!("{case}: no address in {stdout:?} / {stderr:?}"))
            .to_owned();
        assert!(!stdout.contains("SURVIVED"), "{case}: the child went on");
        assert_eq!(
            status.signal(),
            Some(libc::SIGABRT),
            "{case}: {status:?} {stderr}"
        );
        let verb = if case.starts_with("realloc") {
            "realloc"
        } else {
            "free"
        };
        let want = format!("skmem-alloc: {verb}({addr}): ");
        assert!(stderr.contains(&want), "{case}: {want:?} not in {stderr:?}");
        assert!(stderr.contains(what), "{case}: {what:?} not in {stderr:?}");
    }
}

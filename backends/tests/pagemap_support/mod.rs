//! Helpers shared by the DMA backend tests: a hugepage reservation that
//! restores the kernel's pool on drop, an independent pagemap reader, and
//! a lock that serialises the tests of one binary (they change a global
//! kernel setting and check address-space state).

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, MutexGuard};

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";
const FREE_2M: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
const NR_2M: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

static SERIAL: Mutex<()> = Mutex::new(());

/// Held while a test runs: the in-process lock, and an `flock` on a file
/// so that test binaries run in parallel processes (nextest) do not change
/// the hugepage pool under each other.
pub struct Serial {
    _file: Option<fs::File>,
    _guard: MutexGuard<'static, ()>,
}

/// Serialises the tests of this binary and of other processes running
/// these tests; poisoning from a failed test is ignored so the others still
/// run.
pub fn serial() -> Serial {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("skmem-dma-tests.lock"))
        .ok();
    if let Some(f) = &file {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own; it blocks until the lock
        // is ours and is released when the file closes.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    }
    Serial {
        _file: file,
        _guard: guard,
    }
}

fn read_u64(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `(total, free)` 2 MiB hugepages.
pub fn pool_2m() -> (u64, u64) {
    (read_u64(NR_2M).unwrap_or(0), read_u64(FREE_2M).unwrap_or(0))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// While alive, the 2 MiB hugepage pool holds at least `extra` more pages
/// than it did (or exactly `exact` pages); dropping it writes the old
/// count back, even when the test panicked.
pub struct HugepageReservation {
    old: u64,
}

impl HugepageReservation {
    /// Grows the pool so that at least `free` pages are free. Returns the
    /// reason it cannot (not root, kernel refused) so the caller can skip.
    pub fn ensure_free(free: u64) -> Result<Self, String> {
        let (total, now_free) = pool_2m();
        Self::set(total + free.saturating_sub(now_free))
    }

    /// Sets the pool to exactly `count` pages.
    pub fn set(count: u64) -> Result<Self, String> {
        if !is_root() {
            return Err("not root: cannot change /proc/sys/vm/nr_hugepages".into());
        }
        let old = read_u64(NR_HUGEPAGES).ok_or("cannot read /proc/sys/vm/nr_hugepages")?;
        let guard = HugepageReservation { old };
        fs::write(NR_HUGEPAGES, count.to_string())
            .map_err(|e| format!("cannot write {count} to {NR_HUGEPAGES}: {e}"))?;
        let got = read_u64(NR_HUGEPAGES).unwrap_or(0);
        if got != count {
            return Err(format!(
                "asked the kernel for {count} hugepages, it reserved {got} (memory too fragmented?)"
            ));
        }
        Ok(guard)
    }

    pub fn old_count(&self) -> u64 {
        self.old
    }
}

impl Drop for HugepageReservation {
    fn drop(&mut self) {
        if let Err(e) = fs::write(NR_HUGEPAGES, self.old.to_string()) {
            eprintln!("could not restore nr_hugepages to {}: {e}", self.old);
        }
    }
}

/// Physical address of `addr` read straight from /proc/self/pagemap,
/// independently of the crate's reader. `None` when not present or the
/// frame number is hidden.
pub fn phys_of(addr: usize) -> Option<u64> {
    let page = 4096usize;
    let f = fs::File::open("/proc/self/pagemap").ok()?;
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, (addr / page * 8) as u64).ok()?;
    let e = u64::from_le_bytes(b);
    let pfn = e & ((1 << 55) - 1);
    (e >> 63 == 1 && pfn != 0).then(|| pfn * page as u64 + (addr % page) as u64)
}

/// `true` when `[addr, addr + len)` is mapped in this process (mincore).
pub fn is_mapped(addr: usize, len: usize) -> bool {
    let mut v = vec![0u8; len.div_ceil(4096)];
    // SAFETY: mincore only reads page tables and writes one byte per page
    // into `v`, which has room.
    unsafe { libc::mincore(addr as *mut libc::c_void, len, v.as_mut_ptr()) == 0 }
}

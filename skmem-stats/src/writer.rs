//! The publisher: a memfd of the [`layout`](crate::layout) refreshed by a
//! background thread.
//!
//! Invariants: the mapping at `Region::shared` is `len` bytes, writable,
//! and lives until the `Region` is dropped (after the thread has stopped);
//! only the publisher thread (or `Region::refresh` under the `STATE` lock)
//! writes it.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

use crate::layout::{encode, off, Shared, HEADER_SIZE, MAGIC, RECORD_SIZE, VERSION};

/// A writable mapping of the published memfd.
pub(crate) struct Region {
    _fd: OwnedFd,
    shared: Shared,
    capacity: usize,
    generation: u64,
}

// SAFETY: the raw pointer is an mmap'd span owned by this value; it is
// written only by whoever holds the value (`&mut self`).
unsafe impl Send for Region {}

impl Region {
    /// Creates, sizes, seals and maps the memfd; writes the header.
    pub(crate) fn create(capacity: usize, interval: Duration) -> std::io::Result<Region> {
        let len = HEADER_SIZE + capacity * RECORD_SIZE;
        let fd = rustix::fs::memfd_create(
            crate::MEMFD_NAME,
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        // Readers rely on the size never changing under their mapping.
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        // SAFETY: a fresh shared mapping of the whole file, at an address
        // the kernel picks; nothing else refers to it yet.
        let base = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )?
        };
        let shared = Shared {
            base: base.cast::<u8>(),
            len,
        };
        shared.write_u32(off::VERSION, VERSION);
        shared.write_u32(off::HEADER_SIZE, HEADER_SIZE as u32);
        shared.write_u32(off::RECORD_SIZE, RECORD_SIZE as u32);
        shared.write_u32(off::CAPACITY, capacity as u32);
        shared.write_u64(off::PID, u64::from(std::process::id()));
        shared.write_u64(off::INTERVAL_NS, interval.as_nanos() as u64);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        // The magic last: a reader that sees it sees a whole header.
        shared.write_u64(off::MAGIC, MAGIC);
        Ok(Region {
            _fd: fd,
            shared,
            capacity,
            generation: 0,
        })
    }

    /// Copies the registry's current stats into the region.
    pub(crate) fn refresh(&mut self) {
        let snapshot = skmem_traits::registry::snapshot();
        let count = snapshot.len().min(self.capacity);
        for (i, (id, stats)) in snapshot.iter().take(count).enumerate() {
            self.shared.write_record(i, &encode(*id, stats));
        }
        self.generation += 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let s = &self.shared;
        let seq = s.read_u64(off::SEQ);
        s.write_u64(off::SEQ, seq + 1);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        s.write_u64(off::COUNT, count as u64);
        s.write_u64(off::GENERATION, self.generation);
        s.write_u64(off::TIME_NS, now);
        s.write_u64(off::DROPPED, (snapshot.len() - count) as u64);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        s.write_u64(off::SEQ, seq + 2);
    }

    /// Test access: the raw shared span.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> Shared {
        self.shared
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the span was mapped in `create` with this length and no
        // pointer into it survives the region.
        let _ = unsafe { rustix::mm::munmap(self.shared.base.cast(), self.shared.len) };
    }
}

struct Publisher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

static STATE: Mutex<Option<Publisher>> = Mutex::new(None);

/// Publishes this process's registry in a memfd named
/// [`MEMFD_NAME`](crate::MEMFD_NAME), refreshed every `interval` by a
/// background thread (`skmem-stats`), with room for 4096 records. A
/// second call while publishing does nothing.
pub fn publish(interval: Duration) -> std::io::Result<()> {
    publish_with_capacity(interval, 4096)
}

/// [`publish`] with room for `capacity` records (entries beyond it are
/// counted as dropped in the header).
pub fn publish_with_capacity(interval: Duration, capacity: usize) -> std::io::Result<()> {
    if interval.is_zero() || capacity == 0 || capacity > u32::MAX as usize / RECORD_SIZE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "publish: interval {interval:?} must be non-zero and capacity {capacity} in 1..={}",
                u32::MAX as usize / RECORD_SIZE
            ),
        ));
    }
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if state.is_some() {
        return Ok(());
    }
    let mut region = Region::create(capacity, interval)?;
    region.refresh();
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let thread_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("skmem-stats".into())
        .spawn(move || {
            let (lock, cv) = &*thread_stop;
            loop {
                let stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (stopped, _) = cv
                    .wait_timeout_while(stopped, interval, |s| !*s)
                    .unwrap_or_else(|e| e.into_inner());
                if *stopped {
                    return;
                }
                drop(stopped);
                region.refresh();
            }
        })?;
    *state = Some(Publisher { stop, thread });
    Ok(())
}

/// Whether [`publish`] is running.
pub fn is_publishing() -> bool {
    STATE.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Stops publishing: the thread exits and the memfd is closed (readers
/// that mapped it keep their last snapshot).
pub fn stop_publishing() {
    let publisher = STATE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(p) = publisher {
        *p.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        p.stop.1.notify_all();
        let _ = p.thread.join();
    }
}

#[cfg(test)]
impl Region {
    /// A second descriptor of the memfd, for readers in tests.
    pub(crate) fn fd(&self) -> OwnedFd {
        self._fd.try_clone().expect("dup of the stats memfd")
    }
}

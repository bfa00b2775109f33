//! The system calls behind views: reserving a view's span and mapping
//! each region's memfd at its offset, redirecting regions to zero pages,
//! unmapping, re-opening a memfd read-only, and turning an errno into an
//! [`Error`]. See the [`view`](crate::view) module for how a view is built.
//!
//! # Safety and correctness
//!
//! Every `MAP_FIXED` lands inside a reservation the caller owns (checked
//! against the layout), so no mapping of anyone else is ever replaced.

use core::ffi::c_void;
use core::ptr::{self, NonNull};
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use skmem_traits::{Error, Protection, Result};

use crate::layout::ArenaLayout;

#[inline]
pub(crate) fn os(operation: &'static str, e: Errno) -> Error {
    Error::os(operation, e.raw_os_error())
}

fn prot_flags(p: Protection) -> ProtFlags {
    match p {
        Protection::None => ProtFlags::empty(),
        Protection::ReadOnly => ProtFlags::READ,
        Protection::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
    }
}

/// Reserves `layout.total_len` bytes and maps each region's descriptor at
/// its offset. `fds[i]` belongs to `layout.regions[i]` (`None` for guards).
pub(crate) fn map(layout: &ArenaLayout, fds: &[Option<BorrowedFd<'_>>]) -> Result<NonNull<u8>> {
    debug_assert_eq!(fds.len(), layout.regions.len());
    // A file shorter than its region would map, but touching the missing
    // pages raises SIGBUS: refuse it before mapping anything.
    for (r, fd) in layout.regions.iter().zip(fds) {
        let Some(fd) = fd else {
            continue;
        };
        if r.prot == Protection::None {
            continue;
        }
        let size = rustix::fs::fstat(fd)
            .map_err(|e| os("fstat of a region's memfd", e))?
            .st_size;
        if u64::try_from(size).map_or(true, |size| size < r.len as u64) {
            return Err(Error::Invalid {
                field: r.id.name(),
                reason: format!(
                    "the memfd of region `{}` holds {size} bytes, but the layout maps {} bytes of it",
                    r.id.name(),
                    r.len
                ),
            });
        }
    }
    // SAFETY:
    // * a null hint without MAP_FIXED lets the kernel choose a free range,
    //   so no existing mapping is touched;
    // * PROT_NONE + NORESERVE: address space only, nothing can access it.
    let base = unsafe {
        rustix::mm::mmap_anonymous(
            ptr::null_mut(),
            layout.total_len,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }
    .map_err(|e| os("mmap (reserving the view)", e))?;
    let base = NonNull::new(base.cast::<u8>()).expect("mmap returned null");
    for (r, fd) in layout.regions.iter().zip(fds) {
        let Some(fd) = fd else {
            continue;
        };
        if r.prot == Protection::None {
            continue;
        }
        // SAFETY:
        // * `[base + offset, + len)` lies inside the reservation made above
        //   (the layout was checked: offset + len <= total_len), which this
        //   function owns, so MAP_FIXED replaces only our own pages;
        // * offsets and lengths are page multiples;
        // * nothing accesses the range yet.
        let mapped = unsafe {
            rustix::mm::mmap(
                base.as_ptr().add(r.offset).cast::<c_void>(),
                r.len,
                prot_flags(r.prot),
                MapFlags::SHARED | MapFlags::FIXED,
                fd,
                0,
            )
        };
        if let Err(e) = mapped {
            // SAFETY: the whole reservation is ours and unused.
            let _ = unsafe { rustix::mm::munmap(base.as_ptr().cast::<c_void>(), layout.total_len) };
            return Err(os("mmap (MAP_FIXED of a region's memfd into the view)", e));
        }
    }
    Ok(base)
}

/// Maps zero-filled private memory over every redirectable region of the
/// view at `base`, keeping each region's protection.
///
/// # Safety
///
/// `base` is a live view of `layout` owned by the caller, and the caller
/// holds whatever lock serialises unmapping it.
pub(crate) unsafe fn redirect(base: NonNull<u8>, layout: &ArenaLayout) -> Result<()> {
    for r in layout
        .regions
        .iter()
        .filter(|r| r.redirectable && r.prot != Protection::None)
    {
        // SAFETY: the range is part of the view the caller owns (contract);
        // MAP_FIXED replaces the region's shared mapping atomically with
        // anonymous zero pages of the same protection, so concurrent
        // readers see either the old bytes or zeros, never a hole.
        unsafe {
            rustix::mm::mmap_anonymous(
                base.as_ptr().add(r.offset).cast::<c_void>(),
                r.len,
                prot_flags(r.prot),
                MapFlags::PRIVATE | MapFlags::FIXED,
            )
        }
        .map_err(|e| os("mmap (redirecting a view region to zero pages)", e))?;
    }
    Ok(())
}

/// Unmaps a view.
///
/// # Safety
///
/// `base..base + len` is a view owned by the caller that nothing uses any
/// more.
pub(crate) unsafe fn unmap(base: NonNull<u8>, len: usize) {
    // SAFETY: forwarded from the caller.
    let _ = unsafe { rustix::mm::munmap(base.as_ptr().cast::<c_void>(), len) };
}

/// Opens a second, read-only file description of a memfd: a shared
/// mapping of it can never be made writable.
pub(crate) fn reopen_read_only(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| os("open(/proc/self/fd/N, O_RDONLY) of a memfd", e))
}

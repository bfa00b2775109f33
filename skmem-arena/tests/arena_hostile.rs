//! Peers that do not play by the rules: they re-open the memfds they were
//! sent, add seals, or are sent memfds shorter than the layout says.
//!
//! The tests stand between `Arena::send_view` and `UserView::receive` with
//! raw `recvmsg`/`sendmsg`, holding exactly the descriptors a peer would.

#![cfg(target_os = "linux")]
#![allow(missing_docs)]

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use skmem_arena::{socketpair, Arena, ArenaConfig, RegionId, UserView};
use skmem_packet::{AllocFlags, PacketPoolConfig};
use skmem_traits::Protection;

fn small(name: &str) -> ArenaConfig {
    ArenaConfig::new(name).pool(PacketPoolConfig::new(name).md_count(64))
}

/// What a peer receives for one view: the message bytes and the memfds,
/// each with the region it belongs to.
struct Received {
    bytes: Vec<u8>,
    fds: Vec<(RegionId, Protection, usize, OwnedFd)>,
}

/// Sends a view of `arena` and receives it as a peer would, without
/// mapping anything.
fn intercept(arena: &Arena) -> Received {
    let (owner, peer) = socketpair().unwrap();
    arena.send_view(&owner).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(32))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        &peer,
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    buf.truncate(got.bytes);
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    let regions: Vec<_> = arena
        .layout()
        .regions
        .iter()
        .filter(|r| r.prot != Protection::None)
        .collect();
    assert_eq!(fds.len(), regions.len(), "one memfd per mapped region");
    Received {
        bytes: buf,
        fds: regions
            .iter()
            .zip(fds)
            .map(|(r, fd)| (r.id, r.prot, r.len, fd))
            .collect(),
    }
}

/// Re-opens a received descriptor read-write, as any process may through
/// `/proc/self/fd/N`.
fn reopen_read_write(fd: BorrowedFd<'_>) -> OwnedFd {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .expect("re-open a memfd read-write through /proc")
}

/// Maps `len` bytes of `fd` shared and writable; `Err` when refused.
fn map_writable(fd: BorrowedFd<'_>, len: usize) -> Result<(), Errno> {
    // SAFETY: a fresh mapping at an address the kernel chooses; unmapped
    // at once without being touched.
    unsafe {
        let p = rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            fd,
            0,
        )?;
        rustix::mm::munmap(p, len).unwrap();
    }
    Ok(())
}

#[test]
fn peer_cannot_write_read_only_regions_through_a_reopened_memfd() {
    let arena = small("hostile-ro").build().unwrap();
    let got = intercept(&arena);
    let read_only: Vec<RegionId> = got
        .fds
        .iter()
        .filter(|(_, p, _, _)| *p == Protection::ReadOnly)
        .map(|(id, _, _, _)| *id)
        .collect();
    for id in [RegionId::Schema, RegionId::FlowAdv, RegionId::TxaUsd] {
        assert!(read_only.contains(&id), "{id} is read-only to users");
    }
    for (id, prot, len, fd) in &got.fds {
        if *prot != Protection::ReadOnly {
            continue;
        }
        let rw = reopen_read_write(fd.as_fd());
        assert_eq!(
            map_writable(rw.as_fd(), *len),
            Err(Errno::PERM),
            "peer mapped read-only region {id} writable"
        );
        assert_eq!(
            rustix::io::pwrite(&rw, b"scribble", 0).err(),
            Some(Errno::PERM),
            "peer wrote read-only region {id}"
        );
    }
    // The owner's schema is intact and the regions are reported sealed.
    let view = arena.map_local().unwrap();
    assert_eq!(view.read_schema().unwrap(), *arena.layout());
    let stats = arena.stats();
    for r in stats.regions.iter().filter(|r| r.view_offset.is_some()) {
        assert!(r.sealed, "region {} not sealed", r.id);
    }
}

#[test]
fn peer_cannot_add_seals_and_the_owner_keeps_discarding_and_mapping() {
    let arena = small("hostile-seal").build().unwrap();
    let got = intercept(&arena);
    for (id, prot, _, fd) in &got.fds {
        let rw = match prot {
            Protection::ReadWrite => fd.try_clone().unwrap(),
            _ => reopen_read_write(fd.as_fd()),
        };
        assert_eq!(
            rustix::fs::fcntl_add_seals(&rw, rustix::fs::SealFlags::FUTURE_WRITE).err(),
            Some(Errno::PERM),
            "peer added F_SEAL_FUTURE_WRITE to region {id}"
        );
        assert_eq!(
            rustix::fs::ftruncate(&rw, 0).err(),
            Some(Errno::PERM),
            "peer shrank region {id}"
        );
    }
    // The owner still frees ring memory back to the system and maps views.
    let ring = arena.ring_cache().unwrap();
    let (_, _, _, ring_fd) = got
        .fds
        .iter()
        .find(|(id, _, _, _)| *id == RegionId::Ring)
        .unwrap();
    let obj = ring.alloc_with(AllocFlags::NoSleep).unwrap();
    // SAFETY: a fresh ring object of at least one byte, ours.
    unsafe { obj.as_ptr().write_volatile(1) };
    let blocks = |fd: &OwnedFd| rustix::fs::fstat(fd).unwrap().st_blocks;
    assert!(blocks(ring_fd) > 0);
    // SAFETY: allocated above, freed once.
    unsafe { ring.free(obj) };
    arena.reap(true);
    assert_eq!(blocks(ring_fd), 0, "discarded ring memory was not returned");
    let view = arena.map_local().unwrap();
    assert_eq!(view.read_schema().unwrap(), *arena.layout());
}

/// Runs `f` in a forked child and returns its wait status.
fn in_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `f` (receiving and mapping a view, then
    // reading it) and leaves with `_exit`, never returning into the test
    // harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = f();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

#[test]
fn receive_refuses_memfds_shorter_than_the_layout_naming_the_region() {
    let arena = small("hostile-short").build().unwrap();
    let got = intercept(&arena);
    // The genuine layout, with every memfd replaced by one a page short.
    let page = rustix::param::page_size();
    let short: Vec<OwnedFd> = got
        .fds
        .iter()
        .map(|(_, _, len, _)| {
            let fd = rustix::fs::memfd_create("short", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
            rustix::fs::ftruncate(&fd, (len - page) as u64).unwrap();
            fd
        })
        .collect();
    let (first, first_len) = (got.fds[0].0, got.fds[0].2);
    let (owner, peer) = socketpair().unwrap();
    let borrowed: Vec<BorrowedFd<'_>> = short.iter().map(AsFd::as_fd).collect();
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(32))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
    rustix::net::sendmsg(
        &owner,
        &[IoSlice::new(&got.bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .unwrap();

    let status = in_child(|| match UserView::receive(&peer) {
        Err(e) => {
            let text = e.to_string();
            let named = text.contains(first.name())
                && text.contains(&first_len.to_string())
                && text.contains(&(first_len - page).to_string());
            if named {
                0
            } else {
                eprintln!("error does not name the region and sizes: {text}");
                2
            }
        }
        Ok(view) => {
            // Touch the last byte of every region: past the end of a short
            // file this raises SIGBUS.
            for r in &view.layout().regions {
                if r.prot != Protection::None {
                    let mut b = [0u8; 1];
                    let _ = view.read(r.id, r.len - 1, &mut b);
                }
            }
            3
        }
    });
    assert!(
        libc::WIFEXITED(status),
        "the peer died of signal {} instead of getting an error",
        libc::WTERMSIG(status)
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "receive did not refuse the short memfds"
    );
}

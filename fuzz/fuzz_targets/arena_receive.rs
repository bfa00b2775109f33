//! The arena peer's `UserView::receive` fed arbitrary view messages and
//! memfds of arbitrary sizes: it must return a view or an error, never
//! crash, and a view it returns must be safe to use: every byte of every
//! readable region readable, every writable region writable (a memfd
//! shorter than its region would make those accesses SIGBUS).
//!
//! The test plays the arena's owner on a `SOCK_SEQPACKET` pair: it creates
//! the memfds in-process, sends one message with them (`SCM_RIGHTS`) and
//! lets the library receive it. The input is a plain byte format (so that
//! `scripts/fuzz-seeds-arena.py` can write genuine layouts as seeds):
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | bit 0: take the 16-byte header from the input (else a valid view header); bit 1: close the owner's socket after sending |
//! | 1 | number of memfds `n` (taken modulo 17) |
//! | 2.. | `n` × 4 bytes: each memfd's size, little-endian, modulo 8 MiB |
//! | rest | [header,] layout descriptor (at most 4 KiB) |

#![no_main]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use libfuzzer_sys::fuzz_target;
use rustix::fs::MemfdFlags;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use skmem_arena::socketpair;
use skmem_arena::{RegionId, UserView};
use skmem_traits::Protection;

const MAX_FDS: usize = 16;
const MAX_FD_SIZE: u32 = 8 << 20;
const MAX_BODY: usize = 4096;

fn view_header(view: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(b"SKAR");
    h[4..6].copy_from_slice(&1u16.to_le_bytes());
    h[6..8].copy_from_slice(&1u16.to_le_bytes());
    h[8..16].copy_from_slice(&view.to_le_bytes());
    h
}

fn memfd(size: u32) -> OwnedFd {
    let fd = rustix::fs::memfd_create("fuzz-arena", MemfdFlags::CLOEXEC).expect("memfd_create");
    rustix::fs::ftruncate(&fd, u64::from(size)).expect("ftruncate");
    fd
}

/// Reads (and writes, where allowed) the first and last byte of every
/// page of every accessible region of `view`.
fn touch(view: &UserView) {
    let page = rustix::param::page_size();
    for r in view.layout().regions.clone() {
        if r.prot == Protection::None {
            assert!(
                view.read(r.id, 0, &mut [0u8; 1]).is_err(),
                "a guard region read"
            );
            continue;
        }
        let mut off = 0;
        while off < r.len {
            for at in [off, (off + page).min(r.len) - 1] {
                let mut b = [0u8; 1];
                view.read(r.id, at, &mut b)
                    .unwrap_or_else(|e| panic!("region {:?} byte {at:#x}: {e}", r.id));
                let w = view.write(r.id, at, &b);
                assert_eq!(
                    w.is_ok(),
                    r.prot == Protection::ReadWrite,
                    "region {:?}: write refused or allowed against its protection: {w:?}",
                    r.id
                );
            }
            off += page;
        }
        assert!(
            view.read(r.id, r.len, &mut [0u8; 1]).is_err(),
            "read past a region"
        );
    }
    // The schema the owner wrote may be anything; reading it is an answer.
    let _ = view.read_schema();
    let _ = view.region(RegionId::Schema);
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, nfds) = (data[0], data[1] as usize % (MAX_FDS + 1));
    let mut rest = &data[2..];
    let mut fds = Vec::with_capacity(nfds);
    for _ in 0..nfds {
        let Some((size, tail)) = rest.split_first_chunk::<4>() else {
            return;
        };
        fds.push(memfd(u32::from_le_bytes(*size) % MAX_FD_SIZE));
        rest = tail;
    }
    let mut msg = Vec::with_capacity(16 + rest.len());
    if mode & 1 == 0 {
        msg.extend_from_slice(&view_header(7));
    }
    msg.extend_from_slice(&rest[..rest.len().min(MAX_BODY)]);
    if msg.is_empty() {
        // An empty datagram reads as "the owner closed": not a message.
        return;
    }

    let (owner, peer) = socketpair().expect("socketpair");
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !borrowed.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
    }
    let sent = rustix::net::sendmsg(
        &owner,
        &[IoSlice::new(&msg)],
        &mut control,
        SendFlags::NOSIGNAL,
    );
    if sent != Ok(msg.len()) {
        // Nothing to receive: `receive` would wait forever.
        return;
    }
    drop(fds);
    if mode & 2 != 0 {
        drop(owner);
        if let Ok(view) = UserView::receive(&peer) {
            touch(&view);
        }
    } else {
        if let Ok(view) = UserView::receive(&peer) {
            touch(&view);
        }
        drop(owner);
    }
});

//! The control protocol between an arena and the processes it is mapped
//! into.
//!
//! Messages travel over a `SOCK_SEQPACKET` Unix socket (one message per
//! packet, so boundaries survive and file descriptors arrive with the
//! message that carries them). Every message starts with a 16-byte header:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4  | magic `"SKAR"` (`0x52414b53` little-endian) |
//! | 4..6  | protocol version (1) |
//! | 6..8  | kind ([`Kind`]) |
//! | 8..16 | view id |
//!
//! followed, for [`Kind::View`] only, by the layout descriptor (all
//! integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8   | total length of the view |
//! | 8..16  | offset of the schema object inside the schema region (`u64::MAX`: none) |
//! | 16..40 | [`PoolInfo`]: md type, on-demand, max frags, buffer sizes, capacities |
//! | 40..42 | name length `n` (at most 64) |
//! | 42..44 | region count `r` (at most 16) |
//! | 44..48 | reserved (0) |
//! | 48..48+n, padded to 8 | arena name (UTF-8) |
//! | then `r` × 72 bytes | per region: id, protection, flags, offset, length, object size, object count, segment size, objects per segment (nine `u64`) |
//!
//! The memfds of the regions whose flags say "has fd" come as one
//! `SCM_RIGHTS` control message, in region order. Every field is checked by
//! [`decode_view`] before the peer maps anything: the owner is trusted to
//! describe its memory, but a corrupt descriptor must yield an error, not a
//! wild mapping.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketType,
};
use skmem_traits::{Error, Protection, Result};

use skmem_packet::MetadataType;

use crate::id::{RegionId, REGION_COUNT};
use crate::layout::{ArenaLayout, PoolInfo, ViewRegion};
use crate::sys::os;

const MAGIC: u32 = u32::from_le_bytes(*b"SKAR");
const VERSION: u16 = 1;
const HEADER: usize = 16;
const NAME_MAX: usize = 64;
const REGION_BYTES: usize = 9 * 8;
/// Largest layout descriptor: fixed part, name and every region (1264
/// bytes).
pub(crate) const MAX_LAYOUT: usize = 48 + NAME_MAX + REGION_COUNT * REGION_BYTES;
/// Largest message: header and descriptor.
pub(crate) const MAX_MESSAGE: usize = HEADER + MAX_LAYOUT;
const _: () = assert!(MAX_LAYOUT == 1264);
/// Largest number of descriptors a view message carries.
const MAX_FDS: usize = REGION_COUNT;

const FLAG_HAS_FD: u64 = 1 << 0;
const FLAG_REDIRECTABLE: u64 = 1 << 1;

/// What a control message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum Kind {
    /// Owner → peer: here is a view (descriptor and memfds).
    View = 1,
    /// Owner → peer: replace your redirectable regions with zero pages.
    Redirect = 2,
    /// Peer → owner: I unmapped the view.
    Closed = 3,
    /// Peer → owner: I obeyed a redirect.
    Redirected = 4,
}

impl Kind {
    fn from_u16(v: u16) -> Option<Kind> {
        Some(match v {
            1 => Kind::View,
            2 => Kind::Redirect,
            3 => Kind::Closed,
            4 => Kind::Redirected,
            _ => return None,
        })
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: "view descriptor",
        reason: reason.into(),
    }
}

/// Refuses sockets that do not keep message boundaries.
pub(crate) fn check_socket(sock: BorrowedFd<'_>) -> Result<()> {
    let ty = rustix::net::sockopt::socket_type(sock).map_err(|e| os("getsockopt(SO_TYPE)", e))?;
    if ty != SocketType::SEQPACKET {
        return Err(Error::Invalid {
            field: "socket",
            reason: format!(
                "the arena protocol needs a SOCK_SEQPACKET Unix socket (see `arena::socketpair`), got {ty:?}"
            ),
        });
    }
    Ok(())
}

fn header(kind: Kind, view: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[6..8].copy_from_slice(&(kind as u16).to_le_bytes());
    h[8..16].copy_from_slice(&view.to_le_bytes());
    h
}

fn prot_code(p: Protection) -> u64 {
    match p {
        Protection::None => 0,
        Protection::ReadOnly => 1,
        Protection::ReadWrite => 2,
    }
}

fn prot_from(v: u64) -> Option<Protection> {
    Some(match v {
        0 => Protection::None,
        1 => Protection::ReadOnly,
        2 => Protection::ReadWrite,
        _ => return None,
    })
}

/// Encodes the layout descriptor (without header): also what the schema
/// object holds.
pub(crate) fn encode_layout(
    name: &str,
    layout: &ArenaLayout,
    info: &PoolInfo,
    schema_offset: Option<usize>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_MESSAGE);
    let put = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&v.to_le_bytes());
    put(&mut out, layout.total_len as u64);
    put(&mut out, schema_offset.map_or(u64::MAX, |o| o as u64));
    // PoolInfo: 24 bytes.
    // The same numbers as the `md_type` field of user metadata.
    out.push(match info.md_type {
        MetadataType::Quantum => 1,
        MetadataType::Packet => 2,
    });
    out.push(u8::from(info.on_demand));
    out.extend_from_slice(&info.max_frags.to_le_bytes());
    out.extend_from_slice(&info.buf_size.to_le_bytes());
    out.extend_from_slice(&info.large_buf_size.to_le_bytes());
    out.extend_from_slice(&info.md_capacity.to_le_bytes());
    out.extend_from_slice(&info.buflet_capacity.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    let mut name_bytes = name.as_bytes();
    if name_bytes.len() > NAME_MAX {
        let mut cut = NAME_MAX;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name_bytes = &name_bytes[..cut];
    }
    out.extend_from_slice(&(name_bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(&(layout.regions.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(name_bytes);
    out.resize(out.len().next_multiple_of(8), 0);
    for r in &layout.regions {
        let mut flags = 0;
        if r.prot != Protection::None {
            flags |= FLAG_HAS_FD;
        }
        if r.redirectable {
            flags |= FLAG_REDIRECTABLE;
        }
        for v in [
            r.id as u64,
            prot_code(r.prot),
            flags,
            r.offset as u64,
            r.len as u64,
            r.obj_size as u64,
            r.obj_count as u64,
            r.seg_size as u64,
            u64::from(r.objs_per_seg),
        ] {
            put(&mut out, v);
        }
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad(format!("truncated at byte {}", self.at)))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
}

fn usize_of(v: u64, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| bad(format!("{what} {v} does not fit the address space")))
}

/// A decoded layout descriptor.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub(crate) name: String,
    pub(crate) layout: ArenaLayout,
    pub(crate) info: PoolInfo,
    pub(crate) schema_offset: Option<usize>,
}

/// Decodes and checks a layout descriptor: regions in strictly increasing
/// id and offset order, page-aligned, inside the view, without overlap,
/// each object layout inside its region.
pub(crate) fn decode_layout(buf: &[u8], page: usize) -> Result<Decoded> {
    let mut r = Reader { buf, at: 0 };
    let total_len = usize_of(r.u64()?, "total length")?;
    let schema_offset = match r.u64()? {
        u64::MAX => None,
        v => Some(usize_of(v, "schema offset")?),
    };
    let md_type = match r.u8()? {
        1 => MetadataType::Quantum,
        2 => MetadataType::Packet,
        t => return Err(bad(format!("unknown metadata type {t}"))),
    };
    let on_demand = r.u8()? != 0;
    let max_frags = r.u16()?;
    let info = PoolInfo {
        md_type,
        max_frags,
        on_demand,
        buf_size: r.u32()?,
        large_buf_size: r.u32()?,
        md_capacity: r.u32()?,
        buflet_capacity: r.u32()?,
    };
    r.take(4)?;
    let name_len = r.u16()? as usize;
    let count = r.u16()? as usize;
    r.take(4)?;
    if name_len > NAME_MAX {
        return Err(bad(format!("name of {name_len} bytes (limit {NAME_MAX})")));
    }
    if count == 0 || count > REGION_COUNT {
        return Err(bad(format!(
            "{count} regions (1 to {REGION_COUNT} allowed)"
        )));
    }
    let name = std::str::from_utf8(r.take(name_len)?)
        .map_err(|_| bad("the arena name is not UTF-8"))?
        .to_owned();
    r.take(name_len.next_multiple_of(8) - name_len)?;
    if total_len == 0 || total_len % page != 0 || total_len > isize::MAX as usize {
        return Err(bad(format!(
            "total length {total_len:#x} is not a page multiple"
        )));
    }
    let mut regions = Vec::with_capacity(count);
    let mut end = 0usize;
    for _ in 0..count {
        let id = r.u64()?;
        let id = u8::try_from(id)
            .ok()
            .and_then(RegionId::from_u8)
            .ok_or_else(|| bad(format!("unknown region id {id}")))?;
        if id.is_kernel_only() {
            return Err(bad(format!("region `{id}` is private to the owner")));
        }
        if regions.last().is_some_and(|p: &ViewRegion| p.id >= id) {
            return Err(bad(format!("region `{id}` out of order")));
        }
        let prot = r.u64()?;
        let prot = prot_from(prot).ok_or_else(|| bad(format!("protection code {prot}")))?;
        let flags = r.u64()?;
        let offset = usize_of(r.u64()?, "offset")?;
        let len = usize_of(r.u64()?, "length")?;
        let obj_size = usize_of(r.u64()?, "object size")?;
        let obj_count = usize_of(r.u64()?, "object count")?;
        let seg_size = usize_of(r.u64()?, "segment size")?;
        let objs_per_seg = u32::try_from(r.u64()?).map_err(|_| bad("objects per segment"))?;
        let has_fd = flags & FLAG_HAS_FD != 0;
        if has_fd != (prot != Protection::None) {
            return Err(bad(format!(
                "region `{id}`: descriptor presence and protection disagree"
            )));
        }
        if offset < end || offset % page != 0 || len == 0 || len % page != 0 {
            return Err(bad(format!(
                "region `{id}` at {offset:#x}+{len:#x} overlaps or is not page-aligned"
            )));
        }
        end = offset
            .checked_add(len)
            .filter(|&e| e <= total_len)
            .ok_or_else(|| bad(format!("region `{id}` ends past the view")))?;
        let fits = seg_size != 0
            && obj_size != 0
            && objs_per_seg != 0
            && (objs_per_seg as usize)
                .checked_mul(obj_size)
                .is_some_and(|b| b <= seg_size)
            && len % seg_size == 0
            && (len / seg_size).checked_mul(objs_per_seg as usize) == Some(obj_count);
        if !fits {
            return Err(bad(format!("region `{id}`: inconsistent object layout")));
        }
        regions.push(ViewRegion {
            id,
            offset,
            len,
            prot,
            redirectable: flags & FLAG_REDIRECTABLE != 0,
            obj_size,
            obj_count,
            seg_size,
            objs_per_seg,
        });
    }
    if let Some(off) = schema_offset {
        let ok = regions
            .iter()
            .find(|v| v.id == RegionId::Schema)
            .is_some_and(|s| off < s.len);
        if !ok {
            return Err(bad("schema offset outside the schema region"));
        }
    }
    Ok(Decoded {
        name,
        layout: ArenaLayout { total_len, regions },
        info,
        schema_offset,
    })
}

/// Sends a message without descriptors. Never blocks and never raises
/// `SIGPIPE`.
pub(crate) fn send_simple(sock: BorrowedFd<'_>, kind: Kind, view: u64) -> Result<()> {
    let h = header(kind, view);
    let mut space: [MaybeUninit<u8>; 0] = [];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let n = rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&h)],
        &mut control,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    )
    .map_err(|e| os("sendmsg (arena control message)", e))?;
    if n != h.len() {
        return Err(bad("short send of a control message"));
    }
    Ok(())
}

/// Sends a view: header, descriptor and the memfds.
pub(crate) fn send_view(
    sock: BorrowedFd<'_>,
    view: u64,
    body: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<()> {
    assert!(fds.len() <= MAX_FDS, "at most one descriptor per region");
    let h = header(Kind::View, view);
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(bad("the descriptors do not fit the control buffer"));
    }
    let iov = [IoSlice::new(&h), IoSlice::new(body)];
    let n = rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL)
        .map_err(|e| os("sendmsg (arena view)", e))?;
    if n != h.len() + body.len() {
        return Err(bad("short send of a view descriptor"));
    }
    Ok(())
}

/// One received message.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) kind: Kind,
    pub(crate) view: u64,
    pub(crate) body: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Receives one message. `Ok(None)`: nothing pending (non-blocking) or
/// the other end closed (`closed` is then set).
pub(crate) fn recv(
    sock: BorrowedFd<'_>,
    blocking: bool,
    closed: &mut bool,
) -> Result<Option<Message>> {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if !blocking {
        flags |= RecvFlags::DONTWAIT;
    }
    let got = loop {
        match rustix::net::recvmsg(sock, &mut [IoSliceMut::new(&mut buf)], &mut control, flags) {
            Ok(m) => break m,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) if !blocking => return Ok(None),
            // The other end closed with messages of ours still unread.
            Err(Errno::CONNRESET) => {
                *closed = true;
                return Ok(None);
            }
            Err(e) => return Err(os("recvmsg (arena control message)", e)),
        }
    };
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    if got.bytes == 0 {
        *closed = true;
        return Ok(None);
    }
    if got
        .flags
        .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
        || got.bytes > MAX_MESSAGE
    {
        return Err(bad("message or descriptors truncated"));
    }
    if got.bytes < HEADER {
        return Err(bad(format!(
            "message of {} bytes is shorter than a header",
            got.bytes
        )));
    }
    let magic = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    let version = u16::from_le_bytes(buf[4..6].try_into().expect("2 bytes"));
    let kind = u16::from_le_bytes(buf[6..8].try_into().expect("2 bytes"));
    let view = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    if magic != MAGIC || version != VERSION {
        return Err(bad(format!(
            "not an arena message (magic {magic:#x}, version {version})"
        )));
    }
    let kind = Kind::from_u16(kind).ok_or_else(|| bad(format!("unknown message kind {kind}")))?;
    if kind != Kind::View && !fds.is_empty() {
        return Err(bad("descriptors on a message that carries none"));
    }
    buf.truncate(got.bytes);
    buf.drain(..HEADER);
    Ok(Some(Message {
        kind,
        view,
        body: buf,
        fds,
    }))
}

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (close-on-exec), the
/// kind the arena protocol runs on.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| os("socketpair(AF_UNIX, SOCK_SEQPACKET)", e))
}

/// Duplicates a socket for the arena's own use (close-on-exec).
pub(crate) fn dup(sock: impl AsFd) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(sock, 0).map_err(|e| os("fcntl(F_DUPFD_CLOEXEC)", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (ArenaLayout, PoolInfo) {
        let page = rustix::param::page_size();
        let r = |id, offset, len, prot, redirectable| ViewRegion {
            id,
            offset,
            len,
            prot,
            redirectable,
            obj_size: page,
            obj_count: len / page,
            seg_size: page,
            objs_per_seg: 1,
        };
        let layout = ArenaLayout {
            total_len: 4 * page,
            regions: vec![
                r(RegionId::GuardHead, 0, page, Protection::None, false),
                r(RegionId::Schema, page, page, Protection::ReadOnly, false),
                r(
                    RegionId::BufDef,
                    2 * page,
                    2 * page,
                    Protection::ReadWrite,
                    true,
                ),
            ],
        };
        let info = PoolInfo {
            md_type: MetadataType::Packet,
            max_frags: 1,
            on_demand: false,
            buf_size: 2048,
            large_buf_size: 0,
            md_capacity: 64,
            buflet_capacity: 0,
        };
        (layout, info)
    }

    /// Byte offset of field `field` (0..9) of region `i` in an encoded
    /// descriptor whose name is `name_len` bytes.
    fn at(name_len: usize, i: usize, field: usize) -> usize {
        48 + name_len.next_multiple_of(8) + i * REGION_BYTES + field * 8
    }

    #[test]
    fn round_trip() {
        let (l, info) = layout();
        let page = rustix::param::page_size();
        let body = encode_layout("wire", &l, &info, Some(0));
        assert!(body.len() <= MAX_LAYOUT);
        let d = decode_layout(&body, page).unwrap();
        assert_eq!(
            (d.name.as_str(), &d.layout, d.info, d.schema_offset),
            ("wire", &l, info, Some(0))
        );
        // Long names are cut at a character boundary.
        let long = "é".repeat(40);
        let d = decode_layout(&encode_layout(&long, &l, &info, None), page).unwrap();
        assert_eq!(d.name, "é".repeat(32));
    }

    #[test]
    fn corrupt_descriptors_are_refused() {
        let (l, info) = layout();
        let page = rustix::param::page_size();
        let body = encode_layout("wire", &l, &info, Some(0));
        let set = |i: usize, field: usize, v: u64| {
            let mut b = body.clone();
            let o = at(4, i, field);
            b[o..o + 8].copy_from_slice(&v.to_le_bytes());
            decode_layout(&b, page).unwrap_err().to_string()
        };
        assert!(set(1, 0, RegionId::Kmd as u64).contains("private"));
        assert!(set(1, 0, 99).contains("unknown region id"));
        assert!(set(2, 0, RegionId::Schema as u64).contains("out of order"));
        assert!(set(1, 3, 0).contains("overlaps"), "overlap with the guard");
        assert!(set(2, 4, 64 * page as u64).contains("ends past the view"));
        assert!(set(2, 6, 3).contains("inconsistent object layout"));
        assert!(
            set(0, 1, 2).contains("disagree"),
            "a guard with a descriptor"
        );
        assert!(set(1, 1, 7).contains("protection code"));
        let e = decode_layout(&body[..body.len() - 1], page).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut b = body.clone();
        b[8..16].copy_from_slice(&(2 * page as u64).to_le_bytes());
        assert!(decode_layout(&b, page)
            .unwrap_err()
            .to_string()
            .contains("schema offset"));
    }

    #[test]
    fn garbage_messages_are_errors() {
        let (a, b) = socketpair().unwrap();
        rustix::net::send(&a, b"short", SendFlags::empty()).unwrap();
        let mut closed = false;
        let e = recv(b.as_fd(), true, &mut closed).unwrap_err();
        assert!(e.to_string().contains("shorter than a header"), "{e}");
        rustix::net::send(&a, &[0u8; 16], SendFlags::empty()).unwrap();
        let e = recv(b.as_fd(), true, &mut closed).unwrap_err();
        assert!(e.to_string().contains("not an arena message"), "{e}");
        send_simple(a.as_fd(), Kind::Redirect, 5).unwrap();
        let m = recv(b.as_fd(), true, &mut closed).unwrap().unwrap();
        assert_eq!((m.kind, m.view, m.fds.len()), (Kind::Redirect, 5, 0));
        assert!(recv(b.as_fd(), false, &mut closed).unwrap().is_none());
        assert!(!closed);
        drop(a);
        assert!(recv(b.as_fd(), false, &mut closed).unwrap().is_none());
        assert!(closed);
    }
}

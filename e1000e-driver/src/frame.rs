//! Test frames whose every byte can be checked on arrival.
//!
//! Layout: destination MAC, source MAC, EtherType [`ETHERTYPE`] (IEEE
//! local experimental), then a little-endian `u32` sequence number, the
//! frame length as `u16`, and a pseudo-random pattern seeded by the
//! sequence number up to the frame's end. A receiver that knows the MACs
//! can tell from the bytes alone which frame it got and whether any byte
//! changed.

/// EtherType of test frames (IEEE 802 local experimental 1).
pub const ETHERTYPE: u16 = 0x88B5;
/// Header bytes before the pattern (14 Ethernet + 4 seq + 2 len).
pub const HEADER: usize = 20;
/// Smallest frame without FCS.
pub const MIN_FRAME: usize = 60;
/// Largest standard frame without FCS.
pub const MAX_FRAME: usize = 1514;

/// The length of frame `seq`: spreads over `MIN_FRAME..=MAX_FRAME`, and
/// hits both ends.
pub fn frame_len(seq: u32) -> usize {
    match seq % 97 {
        0 => MIN_FRAME,
        1 => MAX_FRAME,
        _ => MIN_FRAME + (seq as usize).wrapping_mul(7919) % (MAX_FRAME - MIN_FRAME + 1),
    }
}

fn pattern(seq: u32) -> impl Iterator<Item = u8> {
    let mut x = seq.wrapping_mul(0x9E37_79B9) | 1;
    core::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x.to_le_bytes()
    })
    .flatten()
}

/// Writes frame `seq` into `buf` (whose length is the frame length, at
/// least [`HEADER`]).
pub fn fill(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], seq: u32) {
    assert!(buf.len() >= HEADER && buf.len() <= usize::from(u16::MAX));
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    buf[14..18].copy_from_slice(&seq.to_le_bytes());
    let len = buf.len() as u16;
    buf[18..20].copy_from_slice(&len.to_le_bytes());
    for (b, p) in buf[HEADER..].iter_mut().zip(pattern(seq)) {
        *b = p;
    }
}

/// Why a received frame is not the one expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Shorter than a header.
    Short(usize),
    /// Not a test frame between these MACs.
    Header,
    /// Its length field disagrees with the bytes received.
    Length {
        /// From the header.
        claimed: usize,
        /// Received.
        got: usize,
    },
    /// The pattern differs at this offset.
    Byte {
        /// Sequence number from the header.
        seq: u32,
        /// First differing offset.
        offset: usize,
        /// Expected value.
        want: u8,
        /// Received value.
        got: u8,
    },
}

/// Checks a received frame byte by byte; returns its sequence number.
pub fn check(buf: &[u8], dst: [u8; 6], src: [u8; 6]) -> Result<u32, Mismatch> {
    if buf.len() < HEADER {
        return Err(Mismatch::Short(buf.len()));
    }
    if buf[0..6] != dst || buf[6..12] != src || buf[12..14] != ETHERTYPE.to_be_bytes() {
        return Err(Mismatch::Header);
    }
    let seq = u32::from_le_bytes(buf[14..18].try_into().expect("4 bytes"));
    let claimed = usize::from(u16::from_le_bytes([buf[18], buf[19]]));
    if claimed != buf.len() {
        return Err(Mismatch::Length {
            claimed,
            got: buf.len(),
        });
    }
    for (offset, (&got, want)) in buf[HEADER..].iter().zip(pattern(seq)).enumerate() {
        if got != want {
            return Err(Mismatch::Byte {
                seq,
                offset: HEADER + offset,
                want,
                got,
            });
        }
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    #[test]
    fn lengths_cover_the_range() {
        let lens: Vec<usize> = (0..2000).map(frame_len).collect();
        assert!(lens.iter().all(|&l| (MIN_FRAME..=MAX_FRAME).contains(&l)));
        assert!(lens.contains(&MIN_FRAME) && lens.contains(&MAX_FRAME));
        assert!(lens.iter().filter(|&&l| l > 1024).count() > 500);
        assert!(lens.iter().filter(|&&l| l <= 512).count() > 400);
    }

    #[test]
    fn fill_then_check_round_trips_and_any_flip_is_caught() {
        for seq in [0u32, 1, 2, 99, 1234] {
            let mut f = vec![0u8; frame_len(seq)];
            fill(&mut f, B, A, seq);
            assert_eq!(check(&f, B, A), Ok(seq));
            let at = f.len() - 1;
            f[at] ^= 0x40;
            assert!(matches!(check(&f, B, A), Err(Mismatch::Byte { offset, .. }) if offset == at));
        }
        let mut f = vec![0u8; 100];
        fill(&mut f, B, A, 5);
        assert_eq!(check(&f, A, B), Err(Mismatch::Header));
        assert_eq!(
            check(&f[..99], B, A),
            Err(Mismatch::Length {
                claimed: 100,
                got: 99
            })
        );
        assert_eq!(check(&f[..10], B, A), Err(Mismatch::Short(10)));
        // Different frames differ in their pattern, not only the header.
        let mut g = vec![0u8; 100];
        fill(&mut g, B, A, 6);
        assert_ne!(f[HEADER..], g[HEADER..]);
    }
}

#!/usr/bin/env python3
"""Writes seed inputs for the `arena_receive` fuzz target (fuzz/corpus/arena_receive).

Each seed is a genuine view descriptor (the wire format of
skmem-arena/src/wire.rs) with memfds of the right sizes, or of wrong
ones (empty, half, one byte or one page short: a peer must refuse those,
not die of SIGBUS), plus a few corrupt descriptors. The input format is
documented at the top of fuzz/fuzz_targets/arena_receive.rs.

Usage: scripts/fuzz-seeds-arena.py [OUT_DIR]   (default fuzz/corpus/arena_receive)
"""

import hashlib
import os
import struct
import sys

PAGE = 4096
HAS_FD, REDIRECTABLE = 1, 2
NONE, RO, RW = 0, 1, 2

# (id, protection, flags, object size, objects per segment, segments)
GUARD_HEAD = (0, NONE, 0, PAGE, 1, 1)
SCHEMA = (1, RO, HAS_FD, 512, 8, 1)
RING = (2, RW, HAS_FD | REDIRECTABLE, 1024, 4, 2)
BUF_DEF = (3, RW, HAS_FD | REDIRECTABLE, 2048, 16, 2)
UMD = (5, RW, HAS_FD | REDIRECTABLE, 64, 64, 1)
UBFT = (6, RW, HAS_FD | REDIRECTABLE, 64, 64, 1)
USTATS = (9, RO, HAS_FD | REDIRECTABLE, 256, 16, 1)
FLOWADV = (10, RO, HAS_FD | REDIRECTABLE, 64, 64, 1)
GUARD_TAIL = (11, NONE, 0, PAGE, 1, 1)


def layout(regions, name=b"fuzz-arena", schema_offset=0, gap=0):
    """Header-less descriptor and the region lengths that carry a memfd."""
    body_regions = b""
    offset = 0
    fd_lens = []
    for rid, prot, flags, obj, per, segs in regions:
        seg = -(-obj * per // PAGE) * PAGE
        length = seg * segs
        body_regions += struct.pack(
            "<9Q", rid, prot, flags, offset, length, obj, per * segs, seg, per
        )
        if flags & HAS_FD:
            fd_lens.append(length)
        offset += length + gap
    total = offset
    has_schema = any(r[0] == 1 for r in regions)
    head = struct.pack("<QQ", total, schema_offset if has_schema else 2**64 - 1)
    # PoolInfo: md type (2 = packet), on demand, max frags, buffer sizes, capacities.
    head += struct.pack("<BBHIIII", 2, 1, 4, 2048, 0, 64, 128)
    head += b"\0" * 4
    head += struct.pack("<HH", len(name), len(regions)) + b"\0" * 4
    head += name + b"\0" * (-len(name) % 8)
    return head + body_regions, fd_lens


def seed(body, sizes, mode=0, header=b""):
    out = bytes([mode, len(sizes)])
    for s in sizes:
        out += struct.pack("<I", s)
    return out + header + body


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/arena_receive"
    os.makedirs(out_dir, exist_ok=True)
    seeds = []
    full = [GUARD_HEAD, SCHEMA, RING, BUF_DEF, UMD, UBFT, USTATS, FLOWADV, GUARD_TAIL]
    variants = [
        full,
        [SCHEMA],
        [GUARD_HEAD, SCHEMA, RING, GUARD_TAIL],
        [SCHEMA, BUF_DEF, UMD, UBFT],
        [RING],
        [GUARD_HEAD, GUARD_TAIL],
    ]
    for regions in variants:
        body, lens = layout(regions)
        seeds.append(seed(body, lens))  # genuine
        seeds.append(seed(body, lens, mode=2))  # owner closes after sending
        seeds.append(seed(body, [0] * len(lens)))  # empty memfds
        seeds.append(seed(body, [n // 2 for n in lens]))  # half
        seeds.append(seed(body, [n - 1 for n in lens]))  # one byte short
        seeds.append(seed(body, [n + PAGE for n in lens]))  # longer: fine
        if lens:
            short_last = lens[:-1] + [lens[-1] - PAGE]
            seeds.append(seed(body, short_last))  # last region a page short
            seeds.append(seed(body, lens[:-1]))  # one memfd missing
    body, lens = layout(full, gap=PAGE)
    seeds.append(seed(body, lens))  # holes between regions
    body, lens = layout(full, schema_offset=PAGE * 10)
    seeds.append(seed(body, lens))  # schema offset outside its region
    body, lens = layout([SCHEMA, RING], name="é-arena".encode())
    seeds.append(seed(body, lens))
    body, lens = layout(full)
    seeds.append(seed(body[:100], lens))  # truncated descriptor
    bad = bytearray(body)
    bad[0:8] = struct.pack("<Q", 2**63)  # total length beyond isize
    seeds.append(seed(bytes(bad), lens))
    hdr = b"SKAR" + struct.pack("<HHQ", 1, 2, 7)  # a redirect, not a view
    seeds.append(seed(b"", [], mode=1, header=hdr))
    hdr = b"SKAR" + struct.pack("<HHQ", 9, 1, 7)  # unknown version
    seeds.append(seed(body, lens, mode=1, header=hdr))
    for s in seeds:
        name = hashlib.sha1(s).hexdigest()
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(s)
    print(f"{len(seeds)} seeds in {out_dir}")


if __name__ == "__main__":
    main()

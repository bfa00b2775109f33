#!/usr/bin/env python3
"""Turn criterion and iai-callgrind results into BENCHMARKS.md and SVG charts.

Reads:
  * criterion's  <criterion dir>/**/new/{benchmark,estimates}.json, for one
    or more rounds of the wall-clock suite (`--criterion` repeated: the
    median of the rounds' medians is reported)
  * the stdout of the wall-clock suite (the `skmem-locality` lines: which
    fast path each skmem contender ran)
  * the stdout of the iai-callgrind suite (`ci/iai.sh`), saved to a file

Writes:
  * BENCHMARKS.md (the fast-path table of issue 13 with ratios and targets,
    the calibration row, per-workload details, instruction counts, and the
    wider pool comparison when it ran; machine, CPU model, date, load, command)
  * benches/results/wall.svg, benches/results/iai.svg (charts)
  * benches/results/results.json (the numbers the tables were made from)

Standard library only; no network.
"""

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys

# The fast-path suite (benches/benches/wall.rs), in report order:
# (criterion group id, title, description).
WORKLOADS = [
    ("pair/64B", "alloc+free pair",
     "one alloc and one free of the same object; time per pair"),
    ("replace8192/64B", "random replace in a working set of 8192, object written",
     "free the object at a random index (xorshift) of a working set of 8192, allocate its replacement and "
     "write its first word; time per replacement"),
    ("pairs2t/64B", "two threads, each doing pairs (time per pair)",
     "two threads doing alloc+free pairs on the same contender at once, started once per sample; "
     "time per pair per thread"),
    ("burst4096/64B", "burst: 4096 single allocs then 4096 frees",
     "4096 single allocs, then 4096 single frees in allocation order; time per object"),
    ("batch32/64B", "batch of 32 (`alloc_batch`/`free_batch`), per object",
     "32 allocs then 32 frees: skmem through `alloc_batch`/`free_batch`, the mallocs in a loop; time per object"),
    ("prodcons/64B", "producer/consumer through a lock-free ring, per object",
     "one thread allocates and pushes each pointer through a lock-free SPSC ring (256 slots, "
     "`benches/src/ring.rs`), the other pops and frees it; time per object from the first alloc to the last free"),
]
PACKET = [("packet-single", "one at a time"), ("packet-batch32", "batch 32")]
PACKET_TITLE = "packet alloc+free, one at a time / batch 32"
CALIBRATION = "calibration"
CAL_XCHG = "xchg+release-store"
CAL_PLAIN = "plain-store-pair"

SK = ["skmem-perthread", "skmem-percpu", "skmem-global"]
MALLOCS = ["jemalloc", "mimalloc", "system"]
COLUMNS = SK + MALLOCS
TARGETED = ["skmem-perthread", "skmem-percpu"]

LABEL = {
    "skmem-perthread": "PerThread",
    "skmem-percpu": "PerCpu",
    "skmem-global": "Global",
    "jemalloc": "jemalloc",
    "mimalloc": "mimalloc",
    "system": "glibc",
    # The wider pool comparison (benches/benches/pools.rs).
    "skmem-mag-percpu": "skmem magazine, PerCpu (mmap)",
    "skmem-mag-perthread": "skmem magazine, PerThread (mmap)",
    "skmem-mag-global": "skmem magazine, Global (mmap)",
    "skmem-slab": "skmem slab cache alone",
    "sharded-slab": "sharded-slab Pool",
    "lockfree-object-pool": "lockfree-object-pool Linear",
    "vec-stack": "Vec free stack (ixy.rs)",
    "vec-stack+mutex": "Vec free stack + Mutex",
}

# The wider pool comparison, when it ran (BENCH_POOLS=1).
POOL_WORKLOADS = [
    ("pools-pair/64B", "alloc+free pair, 64 B"),
    ("pools-pair/256B", "alloc+free pair, 256 B"),
    ("pools-batch32/64B", "batch of 32, 64 B"),
    ("pools-batch256/64B", "batch of 256, 64 B"),
    ("pools-burst4096/64B", "burst of 4096, 64 B"),
    ("pools-prodcons/64B", "producer/consumer through the ring, 64 B"),
    ("pools-ctor_reuse/256B", "constructed-object reuse, 256 B"),
]
POOL_ORDER = ["skmem-mag-percpu", "skmem-mag-perthread", "skmem-mag-global", "skmem-slab",
              "system", "mimalloc", "jemalloc", "sharded-slab", "lockfree-object-pool", "vec-stack",
              "vec-stack+mutex"]
POOL_SKMEM = POOL_ORDER[:4]

# The targets of issue 13, as ratios in one run (or absolute where the issue
# gives a number). DPDK's figures were measured on the Xeon.
DPDK_PKTMBUF_NS = 11.3
BATCH_TARGET_NS = 0.8

# iai benchmark function suffix -> contender id.
IAI_NAMES = {
    "mag_percpu": "skmem-mag-percpu",
    "mag_perthread": "skmem-mag-perthread",
    "mag_global": "skmem-mag-global",
    "slab": "skmem-slab",
    "system": "system",
    "mimalloc": "mimalloc",
    "jemalloc": "jemalloc",
    "null": "null",
}
IAI_ORDER = ["skmem-mag-percpu", "skmem-mag-perthread", "skmem-mag-global", "skmem-slab",
             "system", "mimalloc", "jemalloc"]
IAI_SKMEM = IAI_ORDER[:4]
IAI_LABEL = {"skmem-mag-percpu": "skmem magazine, PerCpu", "skmem-mag-perthread": "skmem magazine, PerThread",
             "skmem-mag-global": "skmem magazine, Global", "skmem-slab": "skmem slab cache alone",
             "system": "system (glibc malloc)", "mimalloc": "mimalloc", "jemalloc": "jemalloc"}
IAI_PAIRS = 1000          # pairs per measured call (benches/benches/iai.rs)
IAI_BATCH_OBJS = 100 * 32  # objects per measured batch call


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001 - best effort machine description
        return ""


def cpuinfo(field):
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() == field:
                    return v.strip()
    except OSError:
        pass
    return ""


def load_criterion_round(root):
    """{group: {function: {'ns': per-object median, 'lo':, 'hi':, 'elements':}}}"""
    out = {}
    if not os.path.isdir(root):
        return out
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        elements = 1
        tp = bench.get("throughput") or {}
        if "Elements" in tp:
            elements = tp["Elements"]
        med = est["median"]
        out.setdefault(bench["group_id"], {})[bench["function_id"]] = {
            "ns": med["point_estimate"] / elements,
            "lo": med["confidence_interval"]["lower_bound"] / elements,
            "hi": med["confidence_interval"]["upper_bound"] / elements,
            "elements": elements,
        }
    return out


def load_criterion(roots):
    """One round: its medians and 95% CIs. Several: the median of the rounds'
    medians, with the range of those medians as lo/hi."""
    rounds = [r for r in (load_criterion_round(root) for root in roots) if r]
    if len(rounds) <= 1:
        return (rounds[0] if rounds else {}), len(rounds)
    out = {}
    for gid in sorted({g for r in rounds for g in r}):
        for fid in sorted({f for r in rounds for f in r.get(gid, {})}):
            vals = [r[gid][fid]["ns"] for r in rounds if fid in r.get(gid, {})]
            out.setdefault(gid, {})[fid] = {"ns": statistics.median(vals), "lo": min(vals), "hi": max(vals),
                                            "rounds": len(vals)}
    return out, len(rounds)


def load_localities(path):
    """{contender: locality} from the wall suite's `skmem-locality` lines."""
    out = {}
    if path and os.path.exists(path):
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"^skmem-locality (\S+) (.+)$", line.strip())
                if m:
                    out[m.group(1)] = m.group(2)
    return out


def load_dpdk(path):
    """{name: ns per object} (and 'version') from scripts/dpdk_bench.sh's output."""
    out = {}
    if path and os.path.exists(path):
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"^dpdk (\S+) ([0-9.]+)$", line.strip())
                if m:
                    out[m.group(1)] = float(m.group(2))
                m = re.match(r"^dpdk-version (.+)$", line.strip())
                if m:
                    out["version"] = m.group(1)
    return out


DPDK_ROWS = [
    ("mempool-get-put-1", "`rte_mempool_get` + `put`, 1 object (cache 256, 64 B)"),
    ("mempool-get-put-bulk32", "`rte_mempool_get_bulk` + `put_bulk`, 32 objects, per object"),
    ("pktmbuf-alloc-free-1", "`rte_pktmbuf_alloc` + `rte_pktmbuf_free`, 1 packet"),
    ("pktmbuf-alloc-free-bulk32", "`rte_pktmbuf_alloc_bulk` + `rte_pktmbuf_free_bulk`, 32 packets, per packet"),
]


def dpdk_table(dpdk):
    if not any(k in dpdk for k, _ in DPDK_ROWS):
        return []
    lines = ["| DPDK operation | time per object (median of 7 rounds) |", "|---|---|"]
    for k, label in DPDK_ROWS:
        if k in dpdk:
            lines.append(f"| {label} | {fmt_ns(dpdk[k])} |")
    return lines


def load_iai(path):
    """{'pairs': {contender: instructions}, 'batch32': {...}} from iai stdout."""
    out = {"pairs": {}, "batch32": {}}
    if not path or not os.path.exists(path):
        return out
    current = None
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^\S*::(pairs|batch32)_(\w+) ", line)
            if m:
                current = (m.group(1), IAI_NAMES.get(m.group(2), m.group(2)))
                continue
            m = re.match(r"^\s+Instructions:\s+(\d+)\|", line)
            if m and current:
                out[current[0]][current[1]] = int(m.group(1))
                current = None
    return out


def fmt_ns(ns):
    if ns is None:
        return "—"
    if ns >= 1000:
        return f"{ns / 1000:.2f} µs"
    if ns >= 100:
        return f"{ns:.0f} ns"
    if ns >= 10:
        return f"{ns:.1f} ns"
    return f"{ns:.2f} ns"


def fmt_ratio(r):
    if r is None:
        return "—"
    return f"{r:.2f}×"


def best(rows, names):
    cands = [(rows[n]["ns"], n) for n in names if n in rows]
    return min(cands) if cands else (None, None)


def overlap(rows, a, b):
    """True when the 95% CIs of contenders a and b overlap (difference not shown)."""
    if a not in rows or b not in rows:
        return False
    return rows[a]["lo"] <= rows[b]["hi"] and rows[b]["lo"] <= rows[a]["hi"]


def caveat(rows, a, b):
    return " (95% CIs overlap: not a significant difference)" if overlap(rows, a, b) else ""


def ns_of(crit, gid, name):
    r = crit.get(gid, {}).get(name)
    return r["ns"] if r else None


def headline(crit):
    """The issue's table: one row per workload, one column per contender."""
    lines = ["| workload | " + " | ".join(LABEL[c] for c in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for gid, title, _desc in WORKLOADS:
        rows = crit.get(gid)
        if not rows:
            continue
        _bn, bname = best(rows, COLUMNS)
        cells = []
        for c in COLUMNS:
            v = fmt_ns(ns_of(crit, gid, c))
            cells.append(f"**{v}**" if c == bname else v)
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    if any(crit.get(g) for g, _ in PACKET):
        cells = []
        for c in COLUMNS:
            vals = [ns_of(crit, g, c) for g, _ in PACKET]
            cells.append("" if all(v is None for v in vals) else " / ".join(fmt_ns(v) for v in vals))
        lines.append(f"| {PACKET_TITLE} | " + " | ".join(cells) + " |")
    return lines


def ratio_table(crit):
    """skmem / peer, per workload and skmem policy."""
    head = []
    for s in SK:
        for m in MALLOCS:
            head.append(f"{LABEL[s]} ÷ {LABEL[m]}")
    lines = ["| workload | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for gid, title, _desc in WORKLOADS:
        if not crit.get(gid):
            continue
        cells = []
        for s in SK:
            for m in MALLOCS:
                a, b = ns_of(crit, gid, s), ns_of(crit, gid, m)
                cells.append(fmt_ratio(a / b) if a and b else "—")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


def targets(crit, localities, dpdk):
    """The issue's targets: (target, measured, met?) rows, and a machine-readable list."""
    out = ["| target (issue 13) | measured | met? |", "|---|---|---|"]
    rec = []

    def add(target, measured, met):
        verdict = "—" if met is None else ("yes" if met else "**no**")
        out.append(f"| {target} | {measured} | {verdict} |")
        rec.append({"target": target, "measured": measured, "met": met})

    def mode(s):
        loc = localities.get(s)
        return f"{LABEL[s]} ({loc})" if loc else LABEL[s]

    for gid, title, peer in (("pair/64B", "alloc+free pair", "jemalloc"),
                             ("replace8192/64B", "random working-set replace", "jemalloc"),
                             ("pairs2t/64B", "two-thread pairs", "jemalloc"),
                             ("burst4096/64B", "burst of 4096", "mimalloc")):
        rows = crit.get(gid, {})
        for s in TARGETED:
            a, b = ns_of(crit, gid, s), ns_of(crit, gid, peer)
            if a is None or b is None:
                continue
            add(f"{title}: {mode(s)} ≤ 1.0× {peer}", f"{fmt_ns(a)} vs {fmt_ns(b)}: {a / b:.2f}×{caveat(rows, s, peer)}",
                a <= b)
    here = dpdk.get("pktmbuf-alloc-free-1")
    for s in TARGETED:
        a = ns_of(crit, "packet-single", s)
        if a is not None:
            add(f"one packet alloc+free: {mode(s)} ≤ {DPDK_PKTMBUF_NS:g} ns (DPDK `rte_pktmbuf_alloc`+`free`, "
                "cache 256, measured on the issue's Xeon)", fmt_ns(a), a <= DPDK_PKTMBUF_NS)
            if here is not None:
                add(f"one packet alloc+free: {mode(s)} ≤ DPDK `rte_pktmbuf_alloc`+`free` on this machine "
                    "(`scripts/dpdk_bench.sh`, not in the same run)", f"{fmt_ns(a)} vs {fmt_ns(here)}: {a / here:.2f}×",
                    a <= here)
    for s in TARGETED:
        a = ns_of(crit, "batch32/64B", s)
        if a is not None:
            add(f"batch of 32: {mode(s)} ≤ {BATCH_TARGET_NS:g} ns/object", fmt_ns(a), a <= BATCH_TARGET_NS)
    rows = crit.get("prodcons/64B", {})
    for s in TARGETED:
        a = ns_of(crit, "prodcons/64B", s)
        bn, b = best(rows, MALLOCS)
        if a is not None and bn is not None:
            add(f"producer/consumer: {mode(s)} ahead of every malloc",
                f"{fmt_ns(a)} vs {b} {fmt_ns(bn)}: {a / bn:.2f}×{caveat(rows, s, b)}", a < bn)
    return out, rec


def calibration(crit, mhz):
    rows = crit.get(CALIBRATION, {})
    x, p = rows.get(CAL_XCHG), rows.get(CAL_PLAIN)
    if not x and not p:
        return [], {}
    cyc = lambda ns: f" (≈ {ns * mhz / 1000:.0f} cycles at {mhz:.0f} MHz)" if mhz else ""  # noqa: E731
    lines = ["| operation | time (median) | 95% CI |", "|---|---|---|"]
    for name, label in ((CAL_XCHG, "one uncontended `xchg` (`AtomicBool::swap`) + release store"),
                        (CAL_PLAIN, "a plain (volatile) store pair")):
        r = rows.get(name)
        if r:
            lines.append(f"| {label} | {fmt_ns(r['ns'])}{cyc(r['ns'])} | {fmt_ns(r['lo'])} – {fmt_ns(r['hi'])} |")
    rec = {k: rows[k]["ns"] for k in (CAL_XCHG, CAL_PLAIN) if k in rows}
    return lines, rec


def details(crit, groups, order, skmem_ids, rounds):
    out = []
    spread = (f"median of {rounds} rounds' medians, range of those medians" if rounds > 1
              else "median, 95% CI")
    for gid, title, desc in groups:
        rows = crit.get(gid)
        if not rows:
            continue
        bn, b = best(rows, list(rows))
        out.append(f"### {title}\n")
        if desc:
            out.append(f"{desc[0].upper() + desc[1:]}. ")
        out.append(f"Group `{gid}`; time per object ({spread}); ratio = time / fastest's time.\n")
        out.append(f"| contender | time | {'range' if rounds > 1 else '95% CI'} | Mobj/s | ratio to fastest |")
        out.append("|---|---|---|---|---|")
        for name in order + sorted(set(rows) - set(order)):
            if name not in rows:
                continue
            r = rows[name]
            label = LABEL.get(name, name)
            label = f"**{label}**" if name in skmem_ids else label
            out.append(f"| {label}{' (fastest)' if name == b else ''} | {fmt_ns(r['ns'])} | {fmt_ns(r['lo'])} – "
                       f"{fmt_ns(r['hi'])} | {1000 / r['ns']:.1f} | {fmt_ratio(r['ns'] / bn if bn else None)} |")
        out.append("")
    return out


def iai_tables(iai):
    pairs, batches = iai["pairs"], iai["batch32"]
    if not pairs and not batches:
        return [], {}
    null_pair = pairs.get("null", 0) / IAI_PAIRS
    null_batch = batches.get("null", 0) / IAI_BATCH_OBJS
    lines = [
        "| contender | instr / pair (raw) | instr / pair (net) | instr / object, batch of 32 (raw) | instr / object, batch of 32 (net) |",
        "|---|---|---|---|---|",
    ]
    derived = {}
    for name in IAI_ORDER + ["null"]:
        if name not in pairs and name not in batches:
            continue
        p = pairs.get(name)
        b = batches.get(name)
        p_raw = p / IAI_PAIRS if p is not None else None
        b_raw = b / IAI_BATCH_OBJS if b is not None else None
        p_net = p_raw - null_pair if p_raw is not None and name != "null" else None
        # skmem's batch goes through its batch API, which skips the harness's
        # per-object Vec push/drain that the `null` loop measures: no subtraction.
        if b_raw is not None and name not in IAI_SKMEM and name != "null":
            b_net = b_raw - null_batch
        elif name in IAI_SKMEM:
            b_net = b_raw
        else:
            b_net = None
        derived[name] = {"pair_raw": p_raw, "pair_net": p_net, "batch_raw": b_raw, "batch_net": b_net}
        f = lambda v: "—" if v is None else f"{v:.1f}"  # noqa: E731
        label = "harness overhead (`null` contender)" if name == "null" else IAI_LABEL.get(name, name)
        lines.append(f"| {label} | {f(p_raw)} | {f(p_net)} | {f(b_raw)} | {f(b_net)} |")
    return lines, derived


COLORS = {
    "skmem-perthread": "#1f5fbf", "skmem-percpu": "#3b82f6", "skmem-global": "#7fb0ff",
    "skmem-mag-percpu": "#1f5fbf", "skmem-mag-perthread": "#3b82f6", "skmem-mag-global": "#7fb0ff",
    "skmem-slab": "#b9d3ff",
}


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_bars(panels, title, unit, path):
    """panels: [(panel title, [(name, value)])]; one horizontal bar chart per panel,
    each scaled to its own largest value."""
    bar_h, gap, label_w, bar_w, pad = 16, 4, 200, 330, 10
    cols = 2
    panel_heights = [30 + len(rows) * (bar_h + gap) for _t, rows in panels]
    col_w = label_w + bar_w + 90
    y_off = [0] * len(panels)
    heights = [0] * cols
    for i, h in enumerate(panel_heights):
        c = i % cols
        y_off[i] = heights[c]
        heights[c] += h + 16
    width = cols * col_w + 2 * pad
    height = max(heights) + 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{pad}" y="20" font-size="14" font-weight="bold">{esc(title)}</text>']
    for i, (ptitle, rows) in enumerate(panels):
        x0 = pad + (i % cols) * col_w
        y0 = 40 + y_off[i]
        out.append(f'<text x="{x0}" y="{y0 + 12}" font-weight="bold">{esc(ptitle)}</text>')
        vmax = max(v for _n, v in rows) or 1
        for j, (name, v) in enumerate(rows):
            y = y0 + 22 + j * (bar_h + gap)
            w = max(1.0, bar_w * v / vmax)
            color = COLORS.get(name, "#9ca3af")
            out.append(f'<text x="{x0 + label_w - 6}" y="{y + bar_h - 4}" text-anchor="end">{esc(LABEL.get(name, name))}</text>')
            out.append(f'<rect x="{x0 + label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
            out.append(f'<text x="{x0 + label_w + w + 4:.1f}" y="{y + bar_h - 4}">{esc(unit(v))}</text>')
    out.append(f'<text x="{pad}" y="{height - 10}" fill="#555">Blue: skmem layers; grey: peers. '
               f'Each panel is scaled to its slowest contender; shorter is better.</text>')
    out.append("</svg>")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


SECTION_BEGIN = ("<!-- BEGIN fast-path suite: generated by scripts/bench.sh (scripts/bench_report.py); "
                 "edit those, not this block. Sections outside the markers are kept. -->")
SECTION_END = "<!-- END fast-path suite -->"
# The `## ` headings this script writes (how a file from before the markers is told apart).
OWN_HEADINGS = ("Fast path: skmem vs the mallocs", "Details per workload",
                "Wider comparison: object pools and the slab layer", "Instruction counts (iai-callgrind)")


def merge_section(path, body):
    """The file at `path` with this script's block (between the markers) replaced by `body`;
    every other section survives. A file without markers (written before they existed) keeps
    only its `## ` sections that this script does not write."""
    block = f"{SECTION_BEGIN}\n\n{body}\n{SECTION_END}\n"
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if SECTION_BEGIN in old and SECTION_END in old:
        pre, rest = old.split(SECTION_BEGIN, 1)
        post = rest.split(SECTION_END, 1)[1]
        return pre + block.rstrip("\n") + post
    foreign, keep = [], False
    for line in old.splitlines(keepends=True):
        if line.startswith("## "):
            keep = line[3:].strip() not in OWN_HEADINGS
        if keep:
            foreign.append(line)
    tail = ("\n" + "".join(foreign)) if foreign else ""
    return "# Benchmarks\n\n" + block + tail


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--criterion", required=True, action="append",
                    help="criterion output dir of one round (repeat for several rounds)")
    ap.add_argument("--wall-log", help="saved stdout of the wall-clock suite (skmem-locality lines)")
    ap.add_argument("--iai-log", help="saved stdout of ci/iai.sh")
    ap.add_argument("--dpdk-log", help="saved stdout of scripts/dpdk_bench.sh (optional)")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--results-dir", default="benches/results")
    ap.add_argument("--command", default="scripts/bench.sh")
    ap.add_argument("--settings", default="")
    ap.add_argument("--load-file", help="load averages recorded around the criterion run")
    args = ap.parse_args()

    crit, rounds = load_criterion(args.criterion)
    if not crit:
        sys.exit(f"bench_report: no criterion results under {', '.join(args.criterion)}")
    localities = load_localities(args.wall_log)
    iai = load_iai(args.iai_log)
    iai_lines, iai_derived = iai_tables(iai)

    mhz = 0.0
    try:
        mhz = float(cpuinfo("cpu MHz"))
    except ValueError:
        pass
    machine = {
        "nproc": sh("nproc"),
        "model": cpuinfo("model name"),
        "mhz": mhz,
        "kernel": sh("uname -sr"),
        "rustc": sh("rustc --version"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": sh("git rev-parse --short HEAD 2>/dev/null"),
    }
    dpdk = load_dpdk(args.dpdk_log)
    target_lines, target_rec = targets(crit, localities, dpdk)
    cal_lines, cal_rec = calibration(crit, mhz)

    panels = []
    for gid, title, _desc in WORKLOADS:
        rows = crit.get(gid)
        if rows:
            panels.append((title, [(n, rows[n]["ns"]) for n in COLUMNS + sorted(set(rows) - set(COLUMNS))
                                   if n in rows]))
    for gid, title in PACKET:
        rows = crit.get(gid)
        if rows:
            panels.append((f"packet alloc+free, {title}", [(n, rows[n]["ns"]) for n in sorted(rows)]))
    svg_bars(panels, "skmem vs mallocs — fast path, wall clock (criterion median, time per object)", fmt_ns,
             os.path.join(args.results_dir, "wall.svg"))
    if iai_derived:
        ipanels = []
        for key, title in (("pair_net", "instructions per alloc+free pair (net)"),
                           ("batch_net", "instructions per object, batch of 32 (net)")):
            rows = [(n, iai_derived[n][key]) for n in IAI_ORDER if n in iai_derived and iai_derived[n][key] is not None]
            if rows:
                ipanels.append((title, rows))
        svg_bars(ipanels, "skmem vs allocators — instruction counts (iai-callgrind)", lambda v: f"{v:.1f}",
                 os.path.join(args.results_dir, "iai.svg"))

    with open(os.path.join(args.results_dir, "results.json"), "w") as f:
        json.dump({"machine": machine, "command": args.command, "settings": args.settings, "rounds": rounds,
                   "localities": localities, "dpdk": dpdk, "criterion": crit, "calibration": cal_rec, "targets": target_rec,
                   "iai": iai, "iai_derived": iai_derived}, f, indent=1, sort_keys=True)

    md = []
    md.append(f"* **Date**: {machine['date']}" + (f" (commit `{machine['commit']}`)" if machine["commit"] else ""))
    md.append(f"* **CPU** (`/proc/cpuinfo` model name): {machine['model'] or 'unknown'}"
              + (f", {mhz:.0f} MHz as reported" if mhz else "") + f"; `nproc` = {machine['nproc']}; "
              f"{machine['kernel']}; {machine['rustc']}")
    md.append(f"* **Command**: `{args.command}`" + (f" ({args.settings})" if args.settings else ""))
    md.append(f"* **Rounds**: {rounds} run{'s' if rounds != 1 else ''} of the wall-clock suite"
              + ("; each figure is the median of the rounds' medians" if rounds > 1 else ""))
    if args.load_file and os.path.exists(args.load_file):
        with open(args.load_file) as f:
            load = "; ".join(line.strip() for line in f if line.strip())
        md.append(f"* **Load average** (1/5/15 min) around the wall-clock run: {load} — on {machine['nproc']} cores.")
    if localities:
        md.append("* **skmem fast paths measured** (the `locality` its stats report): "
                  + ", ".join(f"{LABEL.get(k, k)} = `{v}`" for k, v in sorted(localities.items())))
    md.append("* **Objects**: 64 B. skmem: the magazine cache over the slab cache on the `Heap` source "
              "(`MagPool::on_heap`). The mallocs are called through `GlobalAlloc` directly with "
              "`Layout::from_size_align(64, 8)` (none is the bench binary's global allocator). All contenders of "
              "a workload run back to back in one criterion group.")
    md.append("* **Caveat**: wall-clock numbers on a shared machine move with its load; compare rows of one "
              "run (ratios), and treat differences with overlapping intervals as noise. Instruction counts "
              "(below) repeat exactly run to run (jemalloc's excepted) and are gated by `ci/iai.sh`.\n")
    md.append("How to reproduce, and what each workload does exactly: [benches/README.md](benches/README.md).\n")
    md.append("## Fast path: skmem vs the mallocs\n")
    md.append("Median time per object (per pair for the pair workloads); fastest in bold.\n")
    md += headline(crit)
    md.append("")
    if cal_lines:
        md.append("### Calibration\n")
        md.append("What a locked read-modify-write costs here: a locked fast path pays at least one such "
                  "exchange and store per operation.\n")
        md += cal_lines
        md.append("")
    md.append("### Targets (issue 13)\n")
    md.append("Reported, not asserted. Ratios are skmem's time over the peer's, in this run.\n")
    md += target_lines
    md.append("")
    dlines = dpdk_table(dpdk)
    if dlines:
        md.append("### DPDK on this machine\n")
        md.append(f"{dpdk.get('version', 'DPDK')} from Debian, `scripts/dpdk_bench.sh` (EAL with `--no-huge`, one "
                  "lcore, run separately from the criterion suite): the reference of the packet target.\n")
        md += dlines
        md.append("")
    md.append("### Ratios: skmem ÷ malloc\n")
    md.append("< 1: skmem faster.\n")
    md += ratio_table(crit)
    md.append("")
    md.append("![wall-clock chart](benches/results/wall.svg)\n")
    md.append("## Details per workload\n")
    md += details(crit, WORKLOADS, COLUMNS, SK, rounds)
    md += details(crit, [(g, f"packet alloc+free, {t}",
                          "`PacketPool` on the heap, kernel-only, 4096 packets, one buffer each"
                          + ("" if g == "packet-single" else ", through `alloc_batch`/`free_batch`"))
                         for g, t in PACKET], SK, SK, rounds)
    pool_groups = [(g, t, "") for g, t in POOL_WORKLOADS if crit.get(g)]
    if pool_groups:
        md.append("## Wider comparison: object pools and the slab layer\n")
        md.append("`benches/benches/pools.rs` (run with `BENCH_POOLS=1`): skmem's layers on an mmap region "
                  "against the mallocs and the object pools Rust users pick (see benches/README.md).\n")
        md += details(crit, pool_groups, POOL_ORDER, POOL_SKMEM, rounds)
    md.append("## Instruction counts (iai-callgrind)\n")
    if iai_lines:
        md.append(f"Each benchmark runs {IAI_PAIRS} alloc+free pairs (or 100 batches of 32) on a contender (mmap "
                  "region) that was warmed up in the (unmeasured) setup, so every pair hits the fast path; the "
                  "count is divided per pair (per object). *Net* subtracts the harness overhead measured by the "
                  "`null` contender (same loop and `black_box`, no allocator): "
                  f"{iai_derived.get('null', {}).get('pair_raw') or 0:.1f} instructions per pair and "
                  f"{iai_derived.get('null', {}).get('batch_raw') or 0:.1f} per object in a batch (the per-object "
                  "`Vec` push/drain; skmem's batch goes through its batch API, which bypasses that loop, so its "
                  "raw count is shown as net). Valgrind refuses rseq, so PerCpu runs its fallback there. "
                  "Instruction counts weigh an atomic read-modify-write like any other instruction, while on "
                  "the CPU each costs tens of cycles (see the calibration row): a low count does not mean a low "
                  "wall time. `ci/iai.sh` gates these counts against `ci/iai-baseline.txt` (a rise over 2 % "
                  "fails), all but jemalloc's, which vary from run to run by up to ~14 %.\n")
        md.append("![instruction-count chart](benches/results/iai.svg)\n")
        md += iai_lines
    else:
        md.append("Not run (see `ci/iai.sh`).")
    md.append("")
    merged = merge_section(args.out, "\n".join(md) + "\n")
    with open(args.out, "w") as f:
        f.write(merged)
    print(f"bench_report: wrote {args.out}, {args.results_dir}/wall.svg"
          + (f", {args.results_dir}/iai.svg" if iai_derived else "") + f", {args.results_dir}/results.json")


if __name__ == "__main__":
    main()

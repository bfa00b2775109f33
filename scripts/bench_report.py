#!/usr/bin/env python3
"""Turn criterion and iai-callgrind results into BENCHMARKS.md and SVG charts.

Reads:
  * criterion's  <criterion dir>/**/new/{benchmark,estimates}.json
  * the stdout of the iai-callgrind suite (`ci/iai.sh`), saved to a file

Writes:
  * BENCHMARKS.md (tables, goals, ahead/behind note, machine, date, command)
  * benches/results/wall.svg, benches/results/iai.svg (charts)
  * benches/results/results.json (the numbers the tables were made from)

Standard library only; no network.
"""

import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys

# Workloads, in report order: (criterion group id, title, description).
WORKLOADS = [
    ("pair/64B", "alloc+free pair, 64 B", "one alloc and one free of the same object (the fast path)"),
    ("pair/256B", "alloc+free pair, 256 B", "as above, 256-byte objects"),
    ("batch32/64B", "batch of 32, 64 B", "alloc 32 then free 32 (skmem: `alloc_batch`/`free_batch`; others: a loop)"),
    ("batch256/64B", "batch of 256, 64 B", "alloc 256 then free 256, as above"),
    ("burst4096/64B", "burst of 4096, 64 B", "4096 single allocs, then 4096 single frees (far more than a magazine holds)"),
    ("prodcons/64B", "producer/consumer, 64 B", "two threads: one allocates, the other frees (cross-thread frees), 64 objects per hand-off"),
    ("ctor_reuse/256B", "constructed-object reuse, 256 B", "get an object with an expensive constructor (~256 B CRC table), read it, put it back"),
]

SKMEM = ["skmem-mag-percpu", "skmem-mag-perthread", "skmem-mag-global", "skmem-slab"]
MAGS = SKMEM[:3]
MALLOCS = ["system", "mimalloc", "jemalloc"]
POOLS = ["sharded-slab", "lockfree-object-pool", "vec-stack", "vec-stack+mutex"]
PEERS = MALLOCS + POOLS
ORDER = SKMEM + PEERS

LABEL = {
    "skmem-mag-percpu": "skmem magazine, PerCpu",
    "skmem-mag-perthread": "skmem magazine, PerThread",
    "skmem-mag-global": "skmem magazine, Global",
    "skmem-slab": "skmem slab cache alone",
    "system": "system (glibc malloc)",
    "mimalloc": "mimalloc",
    "jemalloc": "jemalloc",
    "sharded-slab": "sharded-slab Pool",
    "lockfree-object-pool": "lockfree-object-pool Linear",
    "vec-stack": "Vec free stack (ixy.rs)",
    "vec-stack+mutex": "Vec free stack + Mutex",
}

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
IAI_PAIRS = 1000          # pairs per measured call (benches/benches/iai.rs)
IAI_BATCH_OBJS = 100 * 32  # objects per measured batch call

GOAL_PAIR_INSTR = 40
GOAL_BATCH_NS = 1.0


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001 - best effort machine description
        return ""


def load_criterion(root):
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


def load_iai(path):
    """{'pairs': {contender: instructions}, 'batch32': {...}} from iai stdout."""
    out = {"pairs": {}, "batch32": {}}
    if not path or not os.path.exists(path):
        return out
    current = None
    with open(path) as f:
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


def ahead_behind(ratio):
    if ratio is None:
        return "—"
    if ratio <= 1:
        return f"**ahead**, {1 / ratio:.2f}× faster"
    return f"behind, {ratio:.2f}× slower"


def overlap(rows, a, b):
    """True when the 95% CIs of contenders a and b overlap (difference not shown)."""
    if a not in rows or b not in rows:
        return False
    return rows[a]["lo"] <= rows[b]["hi"] and rows[b]["lo"] <= rows[a]["hi"]


def caveat(rows, a, b):
    return " (95% CIs overlap: not a significant difference)" if overlap(rows, a, b) else ""


def wall_tables(crit):
    lines = []
    summary = ["| workload | best peer | best skmem | skmem / best peer | best malloc | skmem / best malloc |",
               "|---|---|---|---|---|---|"]
    details = []
    notes = []
    for gid, title, desc in WORKLOADS:
        rows = crit.get(gid)
        if not rows:
            continue
        bp_ns, bp = best(rows, PEERS)
        bs_ns, bs = best(rows, SKMEM)
        bm_ns, bm = best(rows, MALLOCS)
        r_peer = bs_ns / bp_ns if bs_ns and bp_ns else None
        r_malloc = bs_ns / bm_ns if bs_ns and bm_ns else None
        summary.append(
            f"| {title} | {bp or '—'} {fmt_ns(bp_ns)} | {bs or '—'} {fmt_ns(bs_ns)} | {fmt_ratio(r_peer)} "
            f"| {bm or '—'} {fmt_ns(bm_ns)} | {fmt_ratio(r_malloc)} |")
        if bs:
            notes.append(f"* **{title}**: best skmem ({bs}, {fmt_ns(bs_ns)}) vs best peer ({bp}, {fmt_ns(bp_ns)}): "
                         f"{ahead_behind(r_peer)}{caveat(rows, bs, bp)}; vs best malloc ({bm}, {fmt_ns(bm_ns)}): "
                         f"{ahead_behind(r_malloc)}{caveat(rows, bs, bm)}.")
        details.append(f"### {title}\n\n{desc[0].upper() + desc[1:]}. Time per object (median, 95% CI); ratio = time / best peer's time "
                       f"(< 1 is faster than every peer).\n")
        details.append("| contender | time per object | 95% CI | Mobj/s | ratio to best peer |")
        details.append("|---|---|---|---|---|")
        for name in ORDER + sorted(set(rows) - set(ORDER)):
            if name not in rows:
                continue
            r = rows[name]
            mark = " (best peer)" if name == bp else ""
            label = f"**{LABEL.get(name, name)}**" if name in SKMEM else LABEL.get(name, name)
            details.append(f"| {label}{mark} | {fmt_ns(r['ns'])} | {fmt_ns(r['lo'])} – {fmt_ns(r['hi'])} "
                           f"| {1000 / r['ns']:.1f} | {fmt_ratio(r['ns'] / bp_ns if bp_ns else None)} |")
        details.append("")
    lines += summary
    return lines, details, notes


def iai_tables(iai):
    pairs, batches = iai["pairs"], iai["batch32"]
    if not pairs and not batches:
        return [], {}
    null_pair = pairs.get("null", 0) / IAI_PAIRS
    null_batch = batches.get("null", 0) / IAI_BATCH_OBJS
    lines = [
        f"| contender | instr / pair (raw) | instr / pair (net) | instr / object, batch of 32 (raw) | instr / object, batch of 32 (net) |",
        "|---|---|---|---|---|",
    ]
    derived = {}
    for name in ORDER + ["null"]:
        if name not in pairs and name not in batches:
            continue
        p = pairs.get(name)
        b = batches.get(name)
        p_raw = p / IAI_PAIRS if p is not None else None
        b_raw = b / IAI_BATCH_OBJS if b is not None else None
        p_net = p_raw - null_pair if p_raw is not None and name != "null" else None
        # skmem's batch goes through its batch API, which skips the harness's
        # per-object Vec push/drain that the `null` loop measures: no subtraction.
        if b_raw is not None and name not in SKMEM and name != "null":
            b_net = b_raw - null_batch
        elif name in SKMEM:
            b_net = b_raw
        else:
            b_net = None
        derived[name] = {"pair_raw": p_raw, "pair_net": p_net, "batch_raw": b_raw, "batch_net": b_net}
        f = lambda v: "—" if v is None else f"{v:.1f}"  # noqa: E731
        label = "harness overhead (`null` contender)" if name == "null" else LABEL.get(name, name)
        lines.append(f"| {label} | {f(p_raw)} | {f(p_net)} | {f(b_raw)} | {f(b_net)} |")
    return lines, derived


def goals(crit, iai_derived):
    out = ["| goal | measured | met? |", "|---|---|---|"]
    # 1. pair on the fastest CpuLocal: instructions and wall time.
    cands = [(iai_derived[n]["pair_net"], n) for n in MAGS if n in iai_derived and iai_derived[n]["pair_net"] is not None]
    if cands:
        v, n = min(cands)
        out.append(f"| alloc+free pair, fastest `CpuLocal` ≤ {GOAL_PAIR_INSTR} instructions | {v:.1f} net ({n}) "
                   f"| {'yes' if v <= GOAL_PAIR_INSTR else 'no'} |")
    rows = crit.get("pair/64B", {})
    s_ns, s = best(rows, MAGS)
    m_ns, m = best(rows, ["mimalloc", "jemalloc"])
    if s and m:
        out.append(f"| alloc+free pair, fastest `CpuLocal` ≤ faster of mimalloc/jemalloc (wall) | {fmt_ns(s_ns)} ({s}) vs "
                   f"{fmt_ns(m_ns)} ({m}): {s_ns / m_ns:.2f}×{caveat(rows, s, m)} | {'yes' if s_ns <= m_ns else 'no'} |")
    rows = crit.get("batch32/64B", {})
    s_ns, s = best(rows, MAGS)
    if s:
        out.append(f"| batch of 32 ≤ {GOAL_BATCH_NS:g} ns per object | {fmt_ns(s_ns)} ({s}) "
                   f"| {'yes' if s_ns <= GOAL_BATCH_NS else 'no'} |")
    rows = crit.get("prodcons/64B", {})
    s_ns, s = best(rows, MAGS)
    m_ns, m = best(rows, ["mimalloc", "jemalloc"])
    if s and m:
        out.append(f"| producer/consumer throughput ≥ better of mimalloc/jemalloc | {1000 / s_ns:.1f} Mobj/s ({s}) vs "
                   f"{1000 / m_ns:.1f} Mobj/s ({m}): {m_ns / s_ns:.2f}×{caveat(rows, s, m)} | {'yes' if s_ns <= m_ns else 'no'} |")
    return out


COLORS = {
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--criterion", required=True, help="criterion output dir (target/criterion)")
    ap.add_argument("--iai-log", help="saved stdout of ci/iai.sh")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--results-dir", default="benches/results")
    ap.add_argument("--command", default="scripts/bench.sh")
    ap.add_argument("--settings", default="")
    ap.add_argument("--load-file", help="load averages recorded around the criterion run")
    args = ap.parse_args()

    crit = load_criterion(args.criterion)
    iai = load_iai(args.iai_log)
    if not crit:
        sys.exit(f"bench_report: no criterion results under {args.criterion}")

    summary, details, notes = wall_tables(crit)
    iai_lines, iai_derived = iai_tables(iai)
    goal_lines = goals(crit, iai_derived)

    machine = {
        "nproc": sh("nproc"),
        "model": sh("lscpu | sed -n 's/^Model name: *//p' | head -1"),
        "kernel": sh("uname -sr"),
        "rustc": sh("rustc --version"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": sh("git rev-parse --short HEAD 2>/dev/null"),
    }

    panels = []
    for gid, title, _desc in WORKLOADS:
        rows = crit.get(gid)
        if rows:
            panels.append((title + " — time per object",
                           [(n, rows[n]["ns"]) for n in ORDER + sorted(set(rows) - set(ORDER)) if n in rows]))
    svg_bars(panels, "skmem vs allocators and pools — wall clock (criterion median)", fmt_ns,
             os.path.join(args.results_dir, "wall.svg"))
    if iai_derived:
        ipanels = []
        for key, title in (("pair_net", "instructions per alloc+free pair (net)"),
                           ("batch_net", "instructions per object, batch of 32 (net)")):
            rows = [(n, iai_derived[n][key]) for n in ORDER if n in iai_derived and iai_derived[n][key] is not None]
            if rows:
                ipanels.append((title, rows))
        svg_bars(ipanels, "skmem vs allocators — instruction counts (iai-callgrind)", lambda v: f"{v:.1f}",
                 os.path.join(args.results_dir, "iai.svg"))

    with open(os.path.join(args.results_dir, "results.json"), "w") as f:
        json.dump({"machine": machine, "command": args.command, "criterion": crit, "iai": iai,
                   "iai_derived": iai_derived}, f, indent=1, sort_keys=True)

    md = []
    md.append("# Benchmarks\n")
    md.append("<!-- Generated by scripts/bench.sh (scripts/bench_report.py); edit those, not this file. -->\n")
    md.append(f"* **Date**: {machine['date']}" + (f" (commit `{machine['commit']}`)" if machine["commit"] else ""))
    md.append(f"* **Machine**: {machine['model'] or 'unknown CPU'}, `nproc` = {machine['nproc']}, {machine['kernel']}; "
              f"{machine['rustc']}")
    md.append(f"* **Command**: `{args.command}`" + (f" ({args.settings})" if args.settings else ""))
    md.append("* **Objects**: primary size 64 B (one cache line); 256 B as the second size and for the "
              "constructed object. malloc peers are asked for `Layout::from_size_align(size, 8)` through "
              "`GlobalAlloc` directly (none is the bench binary's global allocator); skmem objects are "
              "64-byte aligned.")
    if args.load_file and os.path.exists(args.load_file):
        with open(args.load_file) as f:
            load = "; ".join(l.strip() for l in f if l.strip())
        md.append(f"* **Load average** (1/5/15 min) around the criterion run: {load} — on {machine['nproc']} cores.")
    md.append("* **Caveat**: 2 cores shared with other builds while this ran. On this machine the same "
              "contender has measured 2–3× apart in runs minutes apart (load average 2 vs 7), and the load "
              "changes during a run, so ratios between rows carry that noise too; treat differences under "
              "~30% (or with overlapping 95% CIs) as noise. Instruction counts (below) are deterministic.\n")
    md.append("How to reproduce, and what each workload does exactly: [benches/README.md](benches/README.md).\n")
    md.append("## Where skmem stands\n")
    md.append("Ratios are skmem's best layer over the best peer (< 1: skmem faster). "
              "\"Best peer\" includes the single-threaded `Vec` free stack, which does no locking at all; "
              "\"best malloc\" is the best of system, mimalloc and jemalloc.\n")
    md += notes
    md.append("")
    md.append("## Goals\n")
    md.append("Reported, not asserted.\n")
    md += goal_lines
    md.append("")
    md.append("## Wall clock (criterion)\n")
    md.append("![wall-clock chart](benches/results/wall.svg)\n")
    md += summary
    md.append("")
    md += details
    md.append("## Instruction counts (iai-callgrind)\n")
    if iai_lines:
        md.append(f"Each benchmark runs {IAI_PAIRS} alloc+free pairs (or 100 batches of 32) on a contender that "
                  "was warmed up in the (unmeasured) setup, so every pair hits the fast path; the count is divided "
                  "per pair (per object). *Net* subtracts the harness overhead measured by the `null` contender "
                  "(same loop and `black_box`, no allocator): "
                  f"{iai_derived.get('null', {}).get('pair_raw') or 0:.1f} instructions per pair and "
                  f"{iai_derived.get('null', {}).get('batch_raw') or 0:.1f} per object in a batch (the per-object "
                  "`Vec` push/drain; skmem's batch goes through its batch API, which bypasses that loop, so its "
                  "raw count is shown as net). Valgrind refuses rseq, so the PerCpu count is its fallback path (a per-thread "
                  "cached CPU id refreshed by `sched_getcpu` every 64 look-ups); natively the id is one load from the rseq area. Instruction counts "
                  "weigh an atomic read-modify-write (a lock or unlock) like any other instruction, while on the "
                  "CPU each costs tens of cycles: a low count with a lock on the path (Global) does not mean a "
                  "low wall time.\n")
        md.append("![instruction-count chart](benches/results/iai.svg)\n")
        md += iai_lines
    else:
        md.append("Not run (see `ci/iai.sh`).")
    md.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"bench_report: wrote {args.out}, {args.results_dir}/wall.svg"
          + (f", {args.results_dir}/iai.svg" if iai_derived else "") + f", {args.results_dir}/results.json")


if __name__ == "__main__":
    main()

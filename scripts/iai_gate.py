#!/usr/bin/env python3
"""The instruction-count gate: compare an iai-callgrind run with the baseline.

Reads the stdout of the iai-callgrind suite (`cargo bench -p skmem-benches
--bench iai`, as `ci/iai.sh` saves it) and the committed baseline
(`ci/iai-baseline.txt`: one `name count` line per benchmark, `#` comments),
prints a table old / new / change, and exits non-zero when

  * a benchmark's instruction count (Ir) rose by more than the tolerance
    (default 2 %),
  * a benchmark in the baseline did not run (unless `--partial`: a filtered
    run), or
  * a benchmark that ran has no baseline entry.

Falls are reported with a suggestion to update the baseline, and do not
fail. Benchmarks matching `--ungated` (a regular expression) are printed
but neither stored in the baseline nor compared: counts that vary from run
to run (jemalloc's) cannot gate. `--update` rewrites the baseline from the run instead (a deliberate
commit). Standard library only.
"""

import argparse
import datetime
import re
import sys

HEADER = """\
# Instruction counts (Ir, iai-callgrind) of the fast-path suite
# (benches/benches/iai.rs): the baseline that ci/iai.sh gates on.
# ci/iai.sh fails when a benchmark's count rises by more than {tol:g} % over the
# count here, or when the set of benchmarks differs from this file.
#
# Update deliberately, in its own commit, after a change that is meant to
# move a count (and say why in the commit message):
#
#     ci/iai.sh --update-baseline
#
# Format: one `<benchmark> <instructions>` line each; `#` starts a comment.
# Not gated (counts vary run to run): benchmarks matching `{ungated}`.
# Generated {date} from commit {commit}; valgrind {valgrind}.
"""

# A benchmark's header line: `iai::fast_path::pairs_mag_percpu warmed:setup_warm(...)`.
BENCH_RE = re.compile(r"^(\S+::\S+) (\S+?):")
# Its instruction count: `  Instructions:   39036|39036   (No change)`.
INSTR_RE = re.compile(r"^\s+Instructions:\s+(\d+)\|")


def parse_run(path):
    """{name: instructions} from the saved suite output, in run order."""
    counts = {}
    current = None
    with open(path, errors="replace") as f:
        for line in f:
            m = BENCH_RE.match(line)
            if m:
                current = f"{m.group(1)}::{m.group(2)}"
                continue
            m = INSTR_RE.match(line)
            if m and current:
                if current in counts:
                    sys.exit(f"iai_gate: {current} reported twice in {path}")
                counts[current] = int(m.group(1))
                current = None
    return counts


def parse_baseline(path):
    counts = {}
    try:
        f = open(path)
    except FileNotFoundError:
        return None
    with f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                sys.exit(f"iai_gate: {path}:{n}: expected `<benchmark> <instructions>`, got {raw.strip()!r}")
            if parts[0] in counts:
                sys.exit(f"iai_gate: {path}:{n}: {parts[0]} listed twice")
            counts[parts[0]] = int(parts[1])
    return counts


def write_baseline(path, run, tol, commit, valgrind, ungated):
    width = max(len(k) for k in run)
    with open(path, "w") as f:
        f.write(HEADER.format(tol=tol, commit=commit or "unknown", ungated=ungated or "(none)",
                              date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                              valgrind=valgrind or "unknown"))
        for name, count in run.items():
            f.write(f"{name:<{width}} {count}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True, help="saved stdout of the iai-callgrind suite")
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--tolerance", type=float, default=2.0, help="allowed rise, percent (default 2)")
    ap.add_argument("--partial", action="store_true", help="a filtered run: baseline entries that did not run are fine")
    ap.add_argument("--update", action="store_true", help="rewrite the baseline from this run")
    ap.add_argument("--commit", default="")
    ap.add_argument("--valgrind", default="")
    ap.add_argument("--ungated", default="", help="regular expression: benchmarks reported but not gated")
    args = ap.parse_args()

    run = parse_run(args.log)
    if not run:
        sys.exit(f"iai_gate: no instruction counts found in {args.log} (did the suite run?)")
    ungated = {}
    if args.ungated:
        pat = re.compile(args.ungated)
        ungated = {k: v for k, v in run.items() if pat.search(k)}
        run = {k: v for k, v in run.items() if k not in ungated}

    if args.update:
        if args.partial:
            sys.exit("iai_gate: refusing to write a baseline from a filtered run")
        write_baseline(args.baseline, run, args.tolerance, args.commit, args.valgrind, args.ungated)
        print(f"iai_gate: wrote {len(run)} counts to {args.baseline}; review and commit it")
        return 0

    base = parse_baseline(args.baseline)
    if base is None:
        sys.exit(f"iai_gate: no baseline at {args.baseline}; create one with `ci/iai.sh --update-baseline`")

    width = max(len(k) for k in list(run) + list(base) + list(ungated))
    print(f"\n{'benchmark':<{width}} {'baseline':>10} {'now':>10} {'change':>8}  verdict")
    rises, falls, missing, unknown = [], [], [], []
    for name in list(base) + [n for n in run if n not in base]:
        old, new = base.get(name), run.get(name)
        if new is None:
            if not args.partial:
                missing.append(name)
                print(f"{name:<{width}} {old:>10} {'—':>10} {'':>8}  FAIL: did not run")
            continue
        if old is None:
            unknown.append(name)
            print(f"{name:<{width}} {'—':>10} {new:>10} {'':>8}  FAIL: no baseline entry")
            continue
        pct = (new - old) * 100.0 / old if old else (0.0 if new == 0 else float("inf"))
        if pct > args.tolerance:
            verdict = f"FAIL: rise over {args.tolerance:g} %"
            rises.append(name)
        elif new < old:
            verdict = "fell"
            falls.append(name)
        elif new > old:
            verdict = "rise within tolerance"
        else:
            verdict = "same"
        print(f"{name:<{width}} {old:>10} {new:>10} {pct:>+7.2f}%  {verdict}")
    for name, new in ungated.items():
        print(f"{name:<{width}} {'—':>10} {new:>10} {'':>8}  not gated (varies run to run)")
    print()
    if falls:
        print(f"iai_gate: {len(falls)} count(s) fell: if the change is meant, record it with "
              "`ci/iai.sh --update-baseline` (its own commit).")
    failed = rises or missing or unknown
    if failed:
        if rises:
            print(f"iai_gate: FAIL: {len(rises)} count(s) rose by more than {args.tolerance:g} %: {', '.join(rises)}")
        if missing:
            print(f"iai_gate: FAIL: {len(missing)} baseline benchmark(s) did not run: {', '.join(missing)}")
        if unknown:
            print(f"iai_gate: FAIL: {len(unknown)} benchmark(s) have no baseline: {', '.join(unknown)}")
        print("iai_gate: a deliberate change updates the baseline: `ci/iai.sh --update-baseline`, then commit "
              f"{args.baseline}.")
        return 1
    print(f"iai_gate: ok: {len(run)} benchmark(s) within {args.tolerance:g} % of {args.baseline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

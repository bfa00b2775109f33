#!/usr/bin/env bash
# General-purpose allocator benchmark: the C workloads of benches/malloc/
# under glibc, mimalloc, jemalloc, tcmalloc and skmem (libskmem.so), every
# allocator but glibc loaded the same way (LD_PRELOAD), runs interleaved
# (each round runs every workload under every allocator, in a rotating
# order, so drifting machine load hits all alike). Wall time and peak RSS
# come from /usr/bin/time; each workload prints a checksum that must match
# glibc's, or the run counts as a failure.
#
# usage: scripts/malloc-bench.sh [--runs N] [--no-update] [--skmem PATH]
#   --runs N      rounds (default 3; the table shows medians)
#   --no-update   print the section only; default: also replace the
#                 "## General-purpose allocator (LD_PRELOAD)" section of
#                 BENCHMARKS.md
#   --skmem PATH  a prebuilt libskmem.so (default: scripts/build-libskmem.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
update=1
skmem_lib=""
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --no-update) update=0; shift ;;
    --skmem) skmem_lib=$2; shift 2 ;;
    *) echo "malloc-bench: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
    esac
done

libdir=/usr/lib/x86_64-linux-gnu
declare -A lib=(
    [glibc]=""
    [mimalloc]=$libdir/libmimalloc.so.2
    [jemalloc]=$libdir/libjemalloc.so.2
    [tcmalloc]=$libdir/libtcmalloc_minimal.so.4
)
if [ ! -e "${lib[mimalloc]}" ] || [ ! -e "${lib[jemalloc]}" ] || [ ! -e "${lib[tcmalloc]}" ] || [ ! -x /usr/bin/time ]; then
    echo "malloc-bench: installing libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 time" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 time >/dev/null
fi
if [ -z "$skmem_lib" ]; then
    skmem_lib=$(scripts/build-libskmem.sh)
fi
lib[skmem]=$skmem_lib
allocators=(glibc mimalloc jemalloc tcmalloc skmem)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for src in benches/malloc/*.c; do
    gcc -O2 -Wall -Wextra -pthread -o "$work/$(basename "$src" .c)" "$src" -lm
done

# name|program and arguments (the defaults documented in each source)
workloads=(
    "larson|larson 2"
    "prodcons|prodcons 1"
    "cache-scratch|cache-scratch 2"
    "churn|churn 2"
    "large-reuse|large-reuse"
    "glibc-thread-1|glibc-thread 1"
    "glibc-thread-2|glibc-thread 2"
)

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=$work/results.tsv
: >"$results"
for ((round = 0; round < runs; round++)); do
    for entry in "${workloads[@]}"; do
        name=${entry%%|*}
        read -r -a cmd <<<"${entry#*|}"
        n=${#allocators[@]}
        for ((i = 0; i < n; i++)); do
            alloc=${allocators[$(((i + round) % n))]}
            status=ok
            if ! LD_PRELOAD=${lib[$alloc]} /usr/bin/time -f "%e %M" -o "$work/time" \
                "$work/${cmd[0]}" "${cmd[@]:1}" >"$work/out" 2>"$work/err"; then
                status=failed
            fi
            if [ "$alloc" = glibc ] && [ "$round" = 0 ]; then
                cp "$work/out" "$work/expected.$name"
            elif [ -e "$work/expected.$name" ] && ! cmp -s "$work/out" "$work/expected.$name"; then
                status=wrong-output
            fi
            if [ "$status" != ok ]; then
                echo "malloc-bench: $name under $alloc: $status" >&2
                sed 's/^/    /' "$work/err" >&2
            fi
            read -r secs kb < <(tail -n1 "$work/time")
            printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$alloc" "$status" "$secs" "$kb" >>"$results"
            printf '.' >&2
        done
    done
done
echo >&2
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
cores=$(nproc)
skmem_rev=$(git rev-parse --short HEAD)
section=$work/section.md
python3 - "$results" "$section" "$runs" "$cpu" "$cores" "$load_before" "$load_after" "$skmem_rev" <<'EOF'
import math, statistics, sys
from collections import defaultdict
results, out, runs, cpu, cores, load_before, load_after, rev = sys.argv[1:]
allocs = ["glibc", "mimalloc", "jemalloc", "tcmalloc", "skmem"]
secs, kb, failures, order = defaultdict(list), defaultdict(list), defaultdict(int), []
for line in open(results):
    name, alloc, status, s, k = line.rstrip("\n").split("\t")
    if name not in order:
        order.append(name)
    if status != "ok":
        failures[alloc] += 1
        continue
    secs[name, alloc].append(float(s))
    kb[name, alloc].append(int(k))

def med(d, key):
    return statistics.median(d[key]) if d[key] else None

def geo_ratio(d, alloc):
    rs = [med(d, (n, alloc)) / med(d, (n, "mimalloc")) for n in order
          if med(d, (n, alloc)) and med(d, (n, "mimalloc"))]
    if len(rs) != len(order):
        return None
    return math.exp(sum(math.log(max(r, 1e-9)) for r in rs) / len(rs))

def fmt(v, spec):
    return "FAIL" if v is None else format(v, spec)

lines = ["## General-purpose allocator (LD_PRELOAD)", ""]
lines += [f"CPU: {cpu} ({cores} cores, shared; load average {load_before} before, {load_after} after). "
          f"skmem at commit `{rev}`; Debian's libmimalloc2.0, libjemalloc2, libtcmalloc-minimal4; "
          "glibc's allocator is the one without a preload.", "",
          "Reproduce: `scripts/malloc-bench.sh --runs " + runs + "` (workloads: `benches/malloc/*.c`, "
          "each run under `/usr/bin/time -f '%e %M'`, every allocator through `LD_PRELOAD`, "
          f"rounds interleaved). Medians of {runs} runs; a run whose checksum differs from glibc's "
          "or that crashes counts as a failure.", ""]
lines += ["Wall time (s):", "", "| workload | " + " | ".join(allocs) + " |",
          "|---|" + "---:|" * len(allocs)]
for n in order:
    lines.append(f"| {n} | " + " | ".join(fmt(med(secs, (n, a)), ".2f") for a in allocs) + " |")
lines += ["", "Peak RSS (MiB):", "", "| workload | " + " | ".join(allocs) + " |",
          "|---|" + "---:|" * len(allocs)]
for n in order:
    lines.append(f"| {n} | " + " | ".join(
        fmt(None if med(kb, (n, a)) is None else med(kb, (n, a)) / 1024, ".1f") for a in allocs) + " |")
lines += ["", "Geometric means as ratios to mimalloc (targets for skmem: time <= 1.0, RSS <= 1.2):", "",
          "| | " + " | ".join(allocs) + " |", "|---|" + "---:|" * len(allocs)]
lines.append("| time | " + " | ".join(fmt(geo_ratio(secs, a), ".2f") for a in allocs) + " |")
lines.append("| peak RSS | " + " | ".join(fmt(geo_ratio(kb, a), ".2f") for a in allocs) + " |")
lines.append("| failed runs | " + " | ".join(str(failures[a]) for a in allocs) + " |")
open(out, "w").write("\n".join(lines) + "\n")
EOF
cat "$section"

if [ "$update" = 1 ]; then
    python3 - "$section" BENCHMARKS.md <<'EOF'
import sys
section, path = sys.argv[1:]
new = open(section).read()
heading = "## General-purpose allocator (LD_PRELOAD)"
text = open(path).read()
start = text.find(heading + "\n")
if start < 0:
    text = text.rstrip("\n") + "\n\n" + new
else:
    end = text.find("\n## ", start + len(heading))
    text = text[:start] + new + ("" if end < 0 else text[end:])
open(path, "w").write(text)
EOF
    echo "malloc-bench: updated BENCHMARKS.md" >&2
fi

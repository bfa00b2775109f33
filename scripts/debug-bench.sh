#!/usr/bin/env bash
# Debug modes compared: the same C program (benches/malloc-debug/pairs.c:
# malloc(64) + free pairs, both ends of each block written) under skmem's
# malloc library (libskmem.so) with each SKMEM_DEBUG switch, and under the
# debug modes Debian packages for other allocators: glibc's malloc check
# (libc_malloc_debug.so, MALLOC_CHECK_=3), jemalloc's junk filling
# (MALLOC_CONF=junk:true), dmalloc (fence posts and blank checks) and
# Electric Fence (a guard page per block). libumem, the comparison the
# debug mode was modelled on, is not packaged for Debian.
#
# Each run's checksum of the bytes read back must match the other runs
# of the same length. Every configuration runs once per round, in a rotating order, so that
# drifting load hits all alike; the table shows the median of the rounds'
# times per pair and the ratio to the same allocator with its debug mode
# off.
#
# usage: scripts/debug-bench.sh [--runs N]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    *) echo "debug-bench: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
    esac
done

libdir=/usr/lib/x86_64-linux-gnu
need=()
[ -e $libdir/libjemalloc.so.2 ] || need+=(libjemalloc2)
[ -e $libdir/libdmalloc.so.5 ] || need+=(libdmalloc5)
[ -e /usr/lib/libefence.so.0 ] || need+=(electric-fence)
[ -e $libdir/libc_malloc_debug.so.0 ] || need+=(libc6)
if [ ${#need[@]} -gt 0 ]; then
    echo "debug-bench: installing ${need[*]}" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null
fi
skmem=$(scripts/build-libskmem.sh)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -Wextra -o "$work/pairs" benches/malloc-debug/pairs.c

# name|baseline name|pairs|environment (LD_PRELOAD and switches)
configs=(
    "glibc|glibc|2000000|"
    "glibc MALLOC_CHECK_=3|glibc|2000000|LD_PRELOAD=$libdir/libc_malloc_debug.so.0 MALLOC_CHECK_=3"
    "jemalloc|jemalloc|2000000|LD_PRELOAD=$libdir/libjemalloc.so.2"
    "jemalloc junk:true|jemalloc|2000000|LD_PRELOAD=$libdir/libjemalloc.so.2 MALLOC_CONF=junk:true"
    "dmalloc check-fence,free-blank,alloc-blank,check-blank|glibc|200000|LD_PRELOAD=$libdir/libdmalloc.so.5 DMALLOC_OPTIONS=check-fence,free-blank,alloc-blank,check-blank,log=$work/dmalloc.log"
    "Electric Fence|glibc|20000|LD_PRELOAD=/usr/lib/libefence.so.0"
    "skmem|skmem|2000000|LD_PRELOAD=$skmem"
    "skmem SKMEM_DEBUG=leaks|skmem|2000000|LD_PRELOAD=$skmem SKMEM_DEBUG=leaks"
    "skmem SKMEM_DEBUG=guards|skmem|2000000|LD_PRELOAD=$skmem SKMEM_DEBUG=guards"
    "skmem SKMEM_DEBUG=poison|skmem|2000000|LD_PRELOAD=$skmem SKMEM_DEBUG=poison"
    "skmem SKMEM_DEBUG=audit|skmem|100000|LD_PRELOAD=$skmem SKMEM_DEBUG=audit"
    "skmem SKMEM_DEBUG=all|skmem|100000|LD_PRELOAD=$skmem SKMEM_DEBUG=all"
)

declare -A times sums
for ((r = 0; r < runs; r++)); do
    for ((k = 0; k < ${#configs[@]}; k++)); do
        i=$(((k + r) % ${#configs[@]}))
        IFS='|' read -r name _ pairs envs <<<"${configs[$i]}"
        # shellcheck disable=SC2086 # the environment assignments split on purpose
        out=$(env $envs "$work/pairs" "$pairs" 2>/dev/null | tail -1)
        ns=${out%% ns/pair*}
        sum=${out##*checksum }
        if [ -z "$ns" ] || [ "$ns" = "$out" ]; then
            echo "debug-bench: '$name' printed '$out'" >&2
            exit 1
        fi
        # The checksum depends only on the number of pairs: every
        # allocator must read back what the program wrote.
        if [ -n "${sums[$pairs]:-}" ] && [ "${sums[$pairs]}" != "$sum" ]; then
            echo "debug-bench: '$name' read back checksum $sum, others $pairs pairs gave ${sums[$pairs]}" >&2
            exit 1
        fi
        sums[$pairs]=$sum
        times[$name]="${times[$name]:-} $ns"
    done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "| allocator and debug switch | time per pair (median of $runs) | × its allocator without debug |"
echo "|---|---|---|"
for c in "${configs[@]}"; do
    IFS='|' read -r name base _ _ <<<"$c"
    t=$(echo "${times[$name]}" | median)
    b=$(echo "${times[$base]}" | median)
    printf '| %s | %s ns | %.1f× |\n' "$name" "$t" "$(echo "$t $b" | awk '{ print $1 / $2 }')"
done
echo
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# Real programs on libskmem.so: each program from Debian's packages runs the
# same scripted job twice, once on glibc's allocator and once with
# LD_PRELOAD=libskmem.so, and the two outputs (checksums of what it wrote,
# its test results) must be identical. The preloaded run also has
# SKMEM_SHOW_STATS=1, and its stderr must hold an exit summary of skmem's
# that counts allocations (size classes in use): proof that the library,
# not glibc, served the program.
#
# usage: ci/malloc-programs.sh [--lib PATH] [PROGRAM...]
#   --lib PATH  a prebuilt libskmem.so (default: scripts/build-libskmem.sh)
#   PROGRAM     run only these (default: all): python sqlite git gcc xz
#               zstd sort cargo
# Environment: MALLOC_PROGRAMS_STATS_ENV / MALLOC_PROGRAMS_STATS_PATTERN
# name the variable that asks for the exit summary and a regex the summary
# matches (defaults: SKMEM_SHOW_STATS, "^skmem-alloc: [1-9][0-9]* classes"), so the script can be
# tried on another allocator (mimalloc: MIMALLOC_VERBOSE, "mimalloc:").
set -euo pipefail
cd "$(dirname "$0")/.."

lib=""
while [ $# -gt 0 ]; do
    case $1 in
    --lib) lib=$2; shift 2 ;;
    --*) echo "malloc-programs: unknown option '$1'" >&2; exit 2 ;;
    *) break ;;
    esac
done
programs=("$@")
[ ${#programs[@]} -gt 0 ] || programs=(python sqlite git gcc xz zstd sort cargo)
stats_env=${MALLOC_PROGRAMS_STATS_ENV:-SKMEM_SHOW_STATS}
stats_pattern=${MALLOC_PROGRAMS_STATS_PATTERN:-^skmem-alloc: [1-9][0-9]* classes}

# What the programs need, from Debian, installed quietly when missing.
need=()
command -v /usr/bin/python3 >/dev/null || need+=(python3)
# libregrtest alone ships with the standard library on some images; the
# test modules the python step runs come with the test suite package.
[ -f /usr/lib/python3.11/test/test_list.py ] || need+=(libpython3.11-testsuite)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v git >/dev/null || need+=(git)
command -v gcc >/dev/null || need+=(gcc)
command -v xz >/dev/null || need+=(xz-utils)
command -v zstd >/dev/null || need+=(zstd)
if [ ${#need[@]} -gt 0 ]; then
    echo "malloc-programs: installing ${need[*]}" >&2
    # A fresh machine may have no package lists yet: update once and retry.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

[ -n "$lib" ] || lib=$(scripts/build-libskmem.sh)
lib=$(realpath "$lib")
repo=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Shared input: text and incompressible data, ~36 MiB.
{
    seq 1 3000000
    head -c 12M /dev/urandom | base64 -w 100
} >"$work/data"

prog_python() { # multi-threaded (test_thread, test_queue, test_threading_local)
    /usr/bin/python3 -m test test_list test_dict test_set test_json test_re test_queue \
        test_thread test_threading_local test_collections test_unicode >log 2>&1 || {
        tail -n 30 log >&2
        return 1
    }
    grep -E '^(All [0-9]+ tests OK|Tests result:|[0-9]+ tests? (failed|skipped))' log
}

prog_sqlite() { # PRAGMA threads lets the sorter use a helper thread
    sqlite3 db.sqlite <<'EOF'
PRAGMA threads = 2;
PRAGMA cache_size = -20000;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, s TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000)
INSERT INTO t SELECT x, (x * 7919) % 100003, printf('%08x-%d', (x * 2654435761) % 4294967296, x) FROM c;
CREATE INDEX t_s ON t(s);
CREATE INDEX t_k ON t(k, s);
UPDATE t SET s = s || '-' || k WHERE id % 3 = 0;
DELETE FROM t WHERE id % 7 = 0;
SELECT count(*), sum(k), sum(length(s)) FROM t;
SELECT k, count(*) FROM t GROUP BY k ORDER BY 2 DESC, 1 LIMIT 5;
SELECT group_concat(s, ',') FROM (SELECT s FROM t ORDER BY s DESC LIMIT 20);
PRAGMA integrity_check;
EOF
    sqlite3 db.sqlite .dump | sha256sum
}

prog_git() { # pack-objects with --threads=2
    /usr/bin/python3 - <<'EOF' >stream
import sys
out = []
mark = 0
for c in range(1, 1501):
    out.append("commit refs/heads/main\n")
    out.append(f"mark :{c}\n")
    out.append(f"author A U Thor <a@example.com> {1700000000 + c} +0000\n")
    out.append(f"committer C O Mitter <c@example.com> {1700000000 + c} +0000\n")
    msg = f"change {c}\n"
    out.append(f"data {len(msg)}\n{msg}")
    if c > 1:
        out.append(f"from :{c - 1}\n")
    for f in range(c % 5, 40, 5):
        body = "".join(f"line {i} of file {f} at commit {c - c % (f + 1)}\n" for i in range(50 + f))
        out.append(f"M 644 inline dir{f % 4}/file{f}.txt\ndata {len(body)}\n{body}")
sys.stdout.write("".join(out))
EOF
    git init -q -b main repo
    cd repo
    git fast-import --quiet <../stream
    git repack -adfq --threads=2 --window=30
    git fsck --strict --no-progress
    git rev-parse HEAD
    git log -p --stat | sha256sum
    git rev-list --all --objects | sort | sha256sum
    git archive HEAD | sha256sum
}

prog_gcc() {
    for src in "$repo"/benches/malloc/*.c; do
        gcc -O2 -pthread -c -o "$(basename "$src" .c).o" "$src"
    done
    sha256sum ./*.o
    gcc -O2 -pthread -o churn churn.o -lm
    ./churn 2 300000 5000
}

prog_xz() { # -T2: two compression threads
    xz -T2 -3 -k -c "$work/data" >data.xz
    sha256sum <data.xz
    xz -T2 -d -c data.xz | sha256sum
}

prog_zstd() { # -T2: two worker threads
    zstd -q -T2 -6 -c "$work/data" >data.zst
    sha256sum <data.zst
    zstd -q -T2 -d -c data.zst | sha256sum
}

prog_sort() { # --parallel=2: coreutils sort's merge threads
    sort --parallel=2 -S 32M -T . "$work/data" | sha256sum
    sort --parallel=2 -S 32M -T . -n -r -u "$work/data" | sha256sum
}

prog_cargo() { # cargo runs rustc jobs in parallel; rustc has codegen threads
    mkdir -p app/src lib1/src
    cat >app/Cargo.toml <<'EOF'
[package]
name = "app"
version = "0.1.0"
edition = "2021"
[dependencies]
lib1 = { path = "../lib1" }
EOF
    cat >lib1/Cargo.toml <<'EOF'
[package]
name = "lib1"
version = "0.1.0"
edition = "2021"
EOF
    cat >lib1/src/lib.rs <<'EOF'
use std::collections::BTreeMap;
pub fn histogram(words: &[String]) -> BTreeMap<usize, usize> {
    let mut h = BTreeMap::new();
    for w in words {
        *h.entry(w.len()).or_insert(0) += 1;
    }
    h
}
EOF
    cat >app/src/main.rs <<'EOF'
use std::collections::HashMap;
use std::sync::mpsc;
use std::thread;
fn main() {
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                let words: Vec<String> = (0..50_000u64).map(|i| format!("{:x}", i * 2654435761 + t)).collect();
                tx.send(words).unwrap();
            })
        })
        .collect();
    drop(tx);
    let mut all: Vec<String> = rx.iter().flatten().collect();
    for w in workers {
        w.join().unwrap();
    }
    all.sort();
    let mut counts: HashMap<char, usize> = HashMap::new();
    for w in &all {
        *counts.entry(w.chars().next().unwrap()).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    println!("{} words, first {}, last {}", all.len(), all[0], all[all.len() - 1]);
    println!("{:?}", counts);
    println!("{:?}", lib1::histogram(&all));
}
EOF
    cd app
    CARGO_TARGET_DIR=$PWD/target cargo build --release --offline -j2 --quiet
    ./target/release/app
}

failed=()
for name in "${programs[@]}"; do
    if ! declare -F "prog_$name" >/dev/null; then
        echo "malloc-programs: no program '$name'" >&2
        exit 2
    fi
    start=$SECONDS
    dir=$work/$name
    mkdir -p "$dir/glibc" "$dir/skmem"
    plain_ok=1 skmem_ok=1
    (cd "$dir/glibc" && "prog_$name") >"$dir/glibc.out" 2>"$dir/glibc.err" || plain_ok=0
    # Python's tests run child interpreters and some assert that their
    # stderr is empty: the exit summary is asked for from a separate run.
    if [ "$name" = python ]; then
        (cd "$dir/skmem" && export LD_PRELOAD="$lib" && "prog_$name") \
            >"$dir/skmem.out" 2>"$dir/skmem.err" || skmem_ok=0
        env LD_PRELOAD="$lib" "$stats_env=1" /usr/bin/python3 -c \
            'import threading; t = [threading.Thread(target=lambda: [str(i) for i in range(10**5)]) for _ in range(4)]; [x.start() for x in t]; [x.join() for x in t]' \
            2>>"$dir/skmem.err" || skmem_ok=0
    else
        (cd "$dir/skmem" && export LD_PRELOAD="$lib" "$stats_env=1" && "prog_$name") \
            >"$dir/skmem.out" 2>"$dir/skmem.err" || skmem_ok=0
    fi
    verdict=pass
    if [ $plain_ok = 0 ]; then
        verdict="FAIL (failed without the library too)"
        sed 's/^/    /' "$dir/glibc.err" | tail -n 20 >&2
    elif [ $skmem_ok = 0 ]; then
        verdict="FAIL (failed under libskmem.so)"
        sed 's/^/    /' "$dir/skmem.err" | tail -n 20 >&2
    elif ! cmp -s "$dir/glibc.out" "$dir/skmem.out"; then
        verdict="FAIL (output differs from glibc's)"
        { diff "$dir/glibc.out" "$dir/skmem.out" || true; } | head -n 20 | sed "s/^/    /" >&2
    elif ! grep -qE "$stats_pattern" "$dir/skmem.err"; then
        verdict="FAIL (no exit summary on stderr: was the library loaded?)"
    elif [ ! -s "$dir/glibc.out" ]; then
        verdict="FAIL (no output to compare)"
    fi
    summaries=$(grep -cE "$stats_pattern" "$dir/skmem.err" || true)
    printf 'malloc-programs: %-7s %s  (%d s; %s lines of output identical; %s exit summaries counting allocations)\n' \
        "$name" "$verdict" $((SECONDS - start)) "$(wc -l <"$dir/glibc.out")" "$summaries"
    [ "$verdict" = pass ] || failed+=("$name")
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "malloc-programs: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "malloc-programs: all ${#programs[@]} programs gave identical results with libskmem.so"

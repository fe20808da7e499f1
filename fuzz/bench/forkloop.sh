#!/bin/sh
# fuzz/bench/forkloop.sh — fuzz/bench/forkloop.c under glibc, libdislocator
# and each bulwark profile, REPS interleaved runs (the starting malloc
# rotating), medians: CPU microseconds and page faults per forked
# execution. Not part of make check (about 2 minutes).
#
#   sh fuzz/bench/forkloop.sh      [REPS=9] [CHILDREN=2000] [PROFILES="fuzz default fast"]
set -eu
REPS=${REPS:-9}
CHILDREN=${CHILDREN:-2000}
PROFILES=${PROFILES:-"fuzz default fast"}
OUT=${OUT:-build/fuzz-bench}
mkdir -p "$OUT"
cc -O2 -fno-builtin -o "$OUT/forkloop" fuzz/bench/forkloop.c
DISLOCATOR=
for d in /usr/lib/afl/libdislocator.so /usr/local/lib/afl/libdislocator.so; do
    [ -f "$d" ] && DISLOCATOR=$d && break
done
mallocs="glibc="
[ -n "$DISLOCATOR" ] && mallocs="$mallocs libdislocator=$DISLOCATOR"
for p in $PROFILES; do
    [ -f "build/$p/libbulwark.so" ] || make --no-print-directory PROFILE="$p" >/dev/null
    mallocs="$mallocs bulwark-$p=$(pwd -P)/build/$p/libbulwark.so"
done
results=$OUT/forkloop.txt
: >"$results"
rep=1
while [ "$rep" -le "$REPS" ]; do
    # shellcheck disable=SC2086 # a list of name=path words
    set -- $mallocs
    shift_by=$(((rep - 1) % $#))
    while [ "$shift_by" -gt 0 ]; do
        first=$1
        shift
        set -- "$@" "$first"
        shift_by=$((shift_by - 1))
    done
    for m in "$@"; do
        path=${m#*=}
        if [ -n "$path" ]; then
            line=$(LD_PRELOAD=$path "$OUT/forkloop" "$CHILDREN")
        else
            line=$("$OUT/forkloop" "$CHILDREN")
        fi
        echo "${m%%=*} $line" >>"$results"
    done
    rep=$((rep + 1))
done
python3 - "$results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, _, *fields = line.split()
    runs[name].append({k: float(v) for k, v in (f.split("=") for f in fields)})
print("| malloc | CPU per execution (us), median | min-max | page faults per execution | of which the parent's |")
print("|---|---:|---:|---:|---:|")
for name, rs in runs.items():
    cpu = [r["cpu_us_per_exec"] for r in rs]
    print(f"| {name} | {statistics.median(cpu):.0f} | {min(cpu):.0f}-{max(cpu):.0f} | "
          f"{statistics.median(r['faults_per_exec'] for r in rs):.1f} | "
          f"{statistics.median(r['parent_faults_per_exec'] for r in rs):.2f} |")
PY

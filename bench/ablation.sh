#!/bin/sh
# bench/ablation.sh — what each hardening mechanism of the default profile
# costs: default is rebuilt with one mechanism off at a time (a policy
# header that includes policy/default.h and overrides its knobs, built with
# `make POLICY_FILE=...` under its own PROFILE name in build/), and every
# variant runs the small-object workloads of bench/run.sh side by side with
# default itself, fast and mimalloc, interleaved, the order rotating each
# repetition. Writes bench/ABLATION.md (and build/bench/ablation/times.txt).
#
# Times are CPU seconds (user + system, GNU time) of the QUICK sizes of
# run.sh's workload table; the table gives each variant's median relative
# to default's median on the same workload, and the geometric mean. A
# second table does the same for peak RSS (GNU time's %M, the same runs). The
# instructions per malloc(32)+free pair come from callgrind
# (bench/icount_pair.c), as tests/perf/icount.sh counts them.
#
#   sh bench/ablation.sh            # 5 repetitions (ABLATION_REPS=N)
#   ABLATION_BASE=strict sh bench/ablation.sh
#                                   # strict's own mechanisms, each off in
#                                   # turn: bench/ABLATION-strict.md
#   ABLATION_BASE=fast sh bench/ablation.sh
#                                   # fast's free-list mechanisms:
#                                   # bench/ABLATION-fast.md
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
reps=${ABLATION_REPS:-5}
base=${ABLATION_BASE:-default}
out_dir=build/bench/ablation-$base
[ "$base" = default ] && out_dir=build/bench/ablation
mkdir -p "$out_dir"
say() { echo "ablation: $*" >&2; }

# name|what is off|knob overrides (name value, ...)
if [ "$base" = strict ]; then
    variants='
no-pkey|the metadata protection key (BW_PKEY_METADATA)|BW_PKEY_METADATA 0
no-exact-size|byte-exact overflow detection (the slack filled and checked)|BW_EXACT_SIZE 0
small-quarantine|its quarantine size (default'"'"'s 512 blocks and 256 KiB instead of 4,096 and 4 MiB)|BW_QUARANTINE_SLOTS 512,BW_QUARANTINE_BYTES (256u << 10)
short-waf-check|its whole-block write-after-free check (default'"'"'s first 256 bytes instead of 16 KiB)|BW_WAF_CHECK_MAX 256
all-four|all four above (default with strict'"'"'s large-block settings)|BW_PKEY_METADATA 0,BW_EXACT_SIZE 0,BW_QUARANTINE_SLOTS 512,BW_QUARANTINE_BYTES (256u << 10),BW_WAF_CHECK_MAX 256
'
elif [ "$base" = default ]; then
    variants='
no-quarantine|the quarantine (and its ready stacks)|BW_QUARANTINE_SLOTS 0,BW_QUARANTINE_BYTES 0
no-waf-check|the write-after-free check at reuse|BW_WAF_CHECK_MAX 0
no-zero-on-free|zero-on-free (and so the write-after-free check)|BW_ZERO_ON_FREE 0,BW_WAF_CHECK_MAX 0
no-canary|the canary at the end of each block|BW_CANARY 0
no-ways|random placement among open slabs (entropy targets)|BW_ENTROPY_BITS_SMALL 0,BW_ENTROPY_BITS_LARGE 0
entropy-8|two bits of the entropy targets (8 bits up to 256 bytes and 6 above, not 10 and 8: fewer ways open)|BW_ENTROPY_BITS_SMALL 8,BW_ENTROPY_BITS_LARGE 6
no-slab-guard|the guard page at the end of each slab|BW_SLAB_GUARD 0
no-link-encoding|random free-list order and encoded links|BW_RANDOM_FREELIST 0,BW_ENCODE_LINKS 0
no-foreign|the foreign rings (another heap'"'"'s block a thread freed goes back to its owner when it leaves the quarantine)|BW_FOREIGN_SLOTS 0
'
elif [ "$base" = fast ]; then
    variants='
no-link-encoding|encoded free-list links and their checks (plain pointers followed unchecked, not a configuration to ship; the order stays random)|BW_ENCODE_LINKS 0
no-random-freelist|random free-list order (blocks handed out in address order; links stay encoded)|BW_RANDOM_FREELIST 0
neither|both: plain unchecked pointers in address order (what is left is the bitmaps and out-of-line metadata)|BW_ENCODE_LINKS 0,BW_RANDOM_FREELIST 0
no-foreign|the foreign rings (another heap'"'"'s block a thread freed goes back to its owner at once)|BW_FOREIGN_SLOTS 0
'
else
    echo "ablation.sh: ABLATION_BASE is default, strict or fast" >&2
    exit 2
fi
small_workloads="pairs-64 pairs-1024 workingset churn server server-1t prodcons falseshare strings threadchurn"

libs="$base=$ROOT/build/$base/libbulwark.so"
[ "$base" = fast ] || libs="$libs fast=$ROOT/build/fast/libbulwark.so"
[ "$base" = default ] || libs="$libs default=$ROOT/build/default/libbulwark.so"
for profile in $base fast default; do
    make --no-print-directory -j"$(nproc)" PROFILE=$profile >/dev/null
done
prefix=ablate-
[ "$base" = default ] || prefix=ablate-$base-
printf '%s\n' "$variants" | while IFS='|' read -r name what knobs; do
    [ -n "$name" ] || continue
    header="$ROOT/$out_dir/$name.h"
    {
        echo "/* $base with $what off (bench/ablation.sh) */"
        echo "#include \"$ROOT/policy/$base.h\""
        echo "$knobs" | tr ',' '\n' | while read -r knob value; do
            echo "#undef $knob"
            echo "#define $knob $value"
        done
    } >"$header"
    say "building $name"
    make --no-print-directory -j"$(nproc)" PROFILE="$prefix$name" POLICY_FILE="$header" >/dev/null
done
for name in $(printf '%s\n' "$variants" | cut -d'|' -f1); do
    libs="$libs $name=$ROOT/build/$prefix$name/libbulwark.so"
done
mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
[ -f "$mimalloc" ] && libs="$libs mimalloc=$mimalloc"

# The workloads, built as run.sh builds them.
mkdir -p build/bench
for workload in $small_workloads; do
    program=$(sed -n "s/^$workload|\([a-z]*\) .*/\1/p" bench/run.sh)
    gcc -std=gnu11 -O2 -Wall -Wextra -pthread -o "build/bench/$program" "bench/$program.c"
done

times="$out_dir/times.txt"
startup="$out_dir/startup.txt"
: >"$times"
: >"$startup"
# shellcheck disable=SC2086 # a list of name=path words
set -- $libs
count=$#
rep=1
while [ "$rep" -le "$reps" ]; do
    for workload in $small_workloads; do
        argv=$(sed -n "s/^$workload|[^|]*|\(.*\)$/\1/p" bench/run.sh)
        # rotate the starting allocator each repetition
        shift_by=$(((rep - 1) % count))
        # shellcheck disable=SC2086
        set -- $libs
        i=0
        while [ "$i" -lt "$shift_by" ]; do
            first=$1
            shift
            set -- "$@" "$first"
            i=$((i + 1))
        done
        for lib in "$@"; do
            name=${lib%%=*}
            # shellcheck disable=SC2086
            t=$({ /usr/bin/time -f '%U %S %M' env LD_PRELOAD="${lib#*=}" build/bench/$argv >/dev/null; } 2>&1 | tail -n 1)
            echo "$workload $name $t" >>"$times"
        done
    done
    # The floor under every run: a program that allocates next to nothing
    # (true), started the same way.
    for lib in $libs; do
        t=$({ /usr/bin/time -f '%U %S %M' env LD_PRELOAD="${lib#*=}" true; } 2>&1 | tail -n 1)
        echo "${lib%%=*} $t" >>"$startup"
    done
    say "repetition $rep of $reps done"
    rep=$((rep + 1))
done

# Instructions per malloc(32)+free pair, each variant.
icount="$out_dir/icount.txt"
: >"$icount"
if command -v valgrind >/dev/null 2>&1; then
    gcc -std=gnu11 -O2 -o "$out_dir/icount_pair" bench/icount_pair.c
    for lib in $libs; do
        name=${lib%%=*}
        LD_PRELOAD="${lib#*=}" valgrind --tool=callgrind --dump-after=bw_icount_loop \
            --callgrind-out-file="$out_dir/$name.cg" "$out_dir/icount_pair" 32 >/dev/null 2>&1 || continue
        n=$(callgrind_annotate --inclusive=yes "$out_dir/$name.cg.2" 2>/dev/null |
            awk '$1 ~ /^[0-9,]+$/ && /bw_icount_loop/ { gsub(",", "", $1); printf "%.1f\n", $1 / 100000; exit }')
        echo "$name $n" >>"$icount"
    done
fi

result=bench/ABLATION.md
[ "$base" = default ] || result=bench/ABLATION-$base.md
python3 - "$times" "$icount" "$variants" "$(git rev-parse --short HEAD)" "$reps" "$base" "$startup" >"$result" <<'EOF'
import math, statistics, sys, collections, datetime, os
times, icount_file, variants, commit, reps, base, startup_file = sys.argv[1:8]
cpu = collections.defaultdict(list)
rss = collections.defaultdict(list)
order = []
for line in open(times):
    workload, name, user, system, peak_kib = line.split()
    cpu[(workload, name)].append(float(user) + float(system))
    rss[(workload, name)].append(int(peak_kib) / 1024)
    if name not in order:
        order.append(name)
workloads = []
for (w, _) in cpu:
    if w not in workloads:
        workloads.append(w)
what = {base: "nothing (the baseline)", "fast": "the fast profile (for reference)",
        "mimalloc": "mimalloc 2.0.9 (for reference)"}
if base != "default":
    what["default"] = "the default profile (for reference)"
for v in variants.strip().splitlines():
    name, off, _ = v.split("|")
    what[name] = off
icount = dict(l.split() for l in open(icount_file)) if os.path.getsize(icount_file) else {}
refs = ("default", "fast", "mimalloc") if base != "default" else ("fast", "mimalloc")
names = [base] + [n for n in order if n != base and n not in refs] + [n for n in refs if n in order and n != base]
med = {k: statistics.median(v) for k, v in cpu.items()}
command = "sh bench/ablation.sh" if base == "default" else f"ABLATION_BASE={base} sh bench/ablation.sh"
print(f"# Ablation: what each mechanism of the {base} profile costs\n")
print(f"Written by `{command}` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, "
      f"bulwark at commit {commit}; machine as in [RESULTS.md](RESULTS.md).\n")
print(f"Each variant is {base} rebuilt with one mechanism off (a policy header that includes "
      f"policy/{base}.h and overrides its knobs, `make POLICY_FILE=`). Every variant, {base} "
      "itself, the reference profiles and mimalloc run the small-object workloads of "
      "bench/run.sh at their "
      f"QUICK sizes, interleaved, the starting allocator rotating each repetition, {reps} "
      f"repetitions. Figures are the median CPU time (user + system) relative to {base}'s "
      f"median on the same workload: 0.80 means the mechanism costs {base} 20% of its time "
      "there. The geometric mean is over the workloads. Instructions per malloc(32)+free pair "
      "are callgrind's (bench/icount_pair.c, as tests/perf/icount.sh counts them).\n")
def ratios(medians, n):
    # n's medians relative to the base's, per workload, then their geometric mean
    rs = [medians[(w, n)] / medians[(w, base)] for w in workloads]
    geo = math.exp(sum(math.log(r) for r in rs) / len(rs))
    return " | ".join(f"{r:.2f}" for r in rs) + f" | {geo:.2f}"
print("| variant: off | " + " | ".join(workloads) + " | geomean | instructions/pair |")
print("|---|" + "---:|" * (len(workloads) + 2))
for n in names:
    print(f"| {n}: {what.get(n, '')} | {ratios(med, n)} | {icount.get(n, '-')} |")
print(f"\nMedian CPU seconds of {base} per workload: " +
      ", ".join(f"{w} {med[(w, base)]:.2f}" for w in workloads) + ".")
rss_med = {k: statistics.median(v) for k, v in rss.items()}
print(f"\n## Peak RSS\n\nThe same runs' peak resident set size (GNU time's %M), median relative to "
      f"{base}'s median on the same workload: 0.80 means the mechanism costs {base} a fifth "
      "of its peak RSS there.\n")
print("| variant: off | " + " | ".join(workloads) + " | geomean |")
print("|---|" + "---:|" * (len(workloads) + 1))
for n in names:
    print(f"| {n} | {ratios(rss_med, n)} |")
print(f"\nMedian peak RSS (MiB) of {base} per workload: " +
      ", ".join(f"{w} {rss_med[(w, base)]:.1f}" for w in workloads) + ".")
startup = collections.defaultdict(list)
for line in open(startup_file):
    name, _, _, peak_kib = line.split()
    startup[name].append(int(peak_kib) / 1024)
print("\nThe floor under those figures: `true` (a program that allocates next to nothing), "
      "started the same way, peaks at (median MiB) " +
      ", ".join(f"{n} {statistics.median(startup[n]):.2f}" for n in names if n in startup) +
      ". pairs, churn and falseshare hold little more than that.")
EOF
say "wrote $result"

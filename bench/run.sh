#!/bin/sh
# bench/run.sh — `make bench`: builds bulwark in every profile of policy/,
# compiles the workloads in bench/*.c, runs each workload under every
# allocator through LD_PRELOAD (interleaved, repeated, then once more under
# strace to count system calls), and writes
# bench/results.csv (every run), bench/RESULTS.md (medians, spreads,
# geometric means) and bench/chart.svg. See bench/README.md.
#
# Environment:
#   QUICK=1            ~5x smaller workloads and 3 repetitions (< 3 minutes)
#   BENCH_REPS=N       repetitions per workload and allocator (default 5, QUICK 3)
#   BENCH_TIMEOUT=S    seconds before one run counts as hung (default 60, QUICK 30;
#                      twice that for the strace run)
#   BENCH_SYSCALLS=0   skip the strace runs (no syscalls/1k ops column)
#   BENCH_ONLY="a b"   run only these workloads (names as in the table below)
#   BENCH_EXTRA="name=/path/lib.so ..."  more allocators to compare
#   BENCH_BUILDROOT=D  build tree for bulwark and the workloads (default build,
#                      the tree `make` uses; change it only to keep a
#                      developer's build/ untouched)
set -u

# The fuzz profile's row measures its slab layers: its page mode (a block's
# own pages, one or two system calls per malloc and free, as libdislocator)
# is for fuzzing harnesses and measured in fuzz/bench (fuzz/RESULTS.md).
BULWARK_FUZZ_PAGES=0
export BULWARK_FUZZ_PAGES

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

case "${QUICK:-}" in
"" | 0 | no | false) quick=0 ;;
*) quick=1 ;;
esac
if [ "$quick" = 1 ]; then
    reps=${BENCH_REPS:-3}
    run_timeout=${BENCH_TIMEOUT:-30}
else
    reps=${BENCH_REPS:-5}
    run_timeout=${BENCH_TIMEOUT:-60}
fi
buildroot=${BENCH_BUILDROOT:-build}
case "$buildroot" in
/*) ;;
*) buildroot="$ROOT/$buildroot" ;;
esac
out_dir="$buildroot/bench"
log_dir="$out_dir/logs"
csv="$ROOT/bench/results.csv"

say() { printf 'bench: %s\n' "$*"; }

# ------------------------------------------------------------ packages
# The peers come from Debian; GNU time measures wall time, peak RSS and page
# faults; strace counts system calls; gnuplot draws the chart. A missing peer
# is skipped (and named in RESULTS.md), a missing /usr/bin/time is fatal, a
# missing strace leaves the syscall column empty.
packages="libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libclang-rt-14-dev gnuplot-nox time strace"
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for package in $packages; do
        if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $package"
        fi
    done
fi
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing:$missing"
        # $missing unquoted on purpose: one word per package.
        if ! { apt-get update -qq >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; }; then
            say "warning: apt-get install failed; allocators that are missing will be skipped"
        fi
    else
        say "missing packages; install them with:"
        echo "  sudo apt-get install -y$missing"
        say "continuing without them (missing allocators are skipped)"
    fi
fi
if [ ! -x /usr/bin/time ]; then
    say "/usr/bin/time (Debian package 'time') is required"
    exit 1
fi
case "${BENCH_SYSCALLS:-1}" in
0 | no | false) count_syscalls=0 ;;
*) count_syscalls=1 ;;
esac
if [ "$count_syscalls" = 1 ] && ! command -v strace >/dev/null 2>&1; then
    say "strace not found: system calls are not counted"
    count_syscalls=0
fi

mkdir -p "$out_dir" "$log_dir" || exit 1
rm -f "$log_dir"/*.stderr "$log_dir"/*.cmd

# ------------------------------------------------------------ allocators
# "name=preload" pairs; glibc has no preload.
allocators=""
notes=""
for policy in policy/*.h; do
    profile=$(basename "$policy" .h)
    say "building bulwark profile '$profile'"
    # A clean environment for the sub-make: the caller's MAKEFLAGS may carry
    # PROFILE= or BUILDROOT= from `make bench ...`, which must not override
    # the profile being built here.
    if (unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
        make --no-print-directory PROFILE="$profile" BUILDROOT="$buildroot" all) \
        >"$out_dir/build-$profile.log" 2>&1; then
        allocators="$allocators bulwark-$profile=$buildroot/$profile/libbulwark.so"
    else
        say "profile '$profile' does not build; see $out_dir/build-$profile.log (skipped)"
        notes="$notes bulwark-$profile:build-failed"
    fi
done
allocators="$allocators glibc="
add_peer() {
    if [ -f "$2" ]; then
        allocators="$allocators $1=$2"
    else
        say "$1 not found at $2 (skipped)"
        notes="$notes $1:not-installed"
    fi
}
lib=/usr/lib/x86_64-linux-gnu
add_peer jemalloc "$lib/libjemalloc.so.2"
add_peer mimalloc "$lib/libmimalloc.so.2"
add_peer tcmalloc "$lib/libtcmalloc_minimal.so.4"
add_peer scudo /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.scudo_standalone-x86_64.so
for extra in ${BENCH_EXTRA:-}; do
    add_peer "${extra%%=*}" "${extra#*=}"
done

# ------------------------------------------------------------ workloads
# name | binary and full-size arguments | quick arguments.
# Full sizes take about 1 s each under glibc on the 2-core reference machine.
# pairs-1024 runs half as many pairs as pairs-64: on a CPU with protection
# keys, strict and fuzz pay two WRPKRU per call, and fuzz's 100M pairs there
# took over the 60 s a run may take.
workload_table='
pairs-64|pairs 64 100000000|pairs 64 20000000
pairs-1024|pairs 1024 50000000|pairs 1024 10000000
workingset|workingset 30000000|workingset 6000000
churn|churn 50000|churn 10000
server|server 8000000 2|server 1600000 2
server-1t|server 8000000 1|server 1600000 1
prodcons|prodcons 10000000 1|prodcons 2000000 1
falseshare|falseshare 400000 2 100|falseshare 80000 2 100
falseshare-1t|falseshare 400000 1 100|falseshare 80000 1 100
strings|strings 160000|strings 32000
large|large 350|large 70
realloc-64k|realloc 65536 2000000|realloc 65536 400000
realloc-1m|realloc 1048576 80000 25|realloc 1048576 16000 25
window|window 2000|window 400
fragmentation|fragmentation 64 1|fragmentation 16 1
threadchurn|threadchurn 2000 2 2000|threadchurn 400 2 2000
'

for source in bench/*.c; do
    program=$(basename "$source" .c)
    case "$program" in
    icount_*) continue ;;      # bench/icount.sh's programs, run under callgrind
    glibc_malloc) continue ;; # bench/daemons.sh's preload, not a workload
    esac
    if ! gcc -std=gnu11 -O2 -Wall -Wextra -pthread -o "$out_dir/$program" "$source"; then
        say "cannot compile $source"
        exit 1
    fi
    if ! printf '%s\n' "$workload_table" | cut -d'|' -f2 | grep -q "^$program "; then
        say "warning: $source has no entry in run.sh's workload table (not run)"
    fi
done

workloads=$(printf '%s\n' "$workload_table" | grep '|' | cut -d'|' -f1)
if [ -n "${BENCH_ONLY:-}" ]; then
    workloads=$BENCH_ONLY
fi
allocator_count=$(echo $allocators | wc -w)
workload_count=$(echo $workloads | wc -w)

# ------------------------------------------------------------ runs
# One run: wall time, peak RSS and page faults (minor, major) from GNU time,
# the workload's one-line result on stdout, a timeout so that a hung
# allocator costs one timeout and not the whole benchmark. LD_PRELOAD is set
# only in the workload's own environment (env), never for time or timeout.
#
# With rep "count" the run is not timed but traced: strace -f -c counts the
# system calls of the workload and its threads. LD_PRELOAD goes through
# strace's -E, so it reaches the workload but neither strace nor an env
# process whose exec would be counted. It is a separate run because ptrace
# stops the program at every system call, which would distort a timed run.
run_one() { # workload allocator preload rep argv...
    workload=$1 allocator=$2 preload=$3 rep=$4
    shift 4
    program=$1
    shift
    arguments="$*"
    wall="" rss="" minor="" major="" syscalls=""
    if [ "$rep" = count ]; then
        rm -f "$out_dir/strace.out"
        env -u LD_PRELOAD timeout -k 5 $((2 * run_timeout)) \
            strace -f -c -qq -o "$out_dir/strace.out" ${preload:+-E LD_PRELOAD="$preload"} \
            "$out_dir/$program" "$@" >"$out_dir/run.out" 2>"$out_dir/run.err"
        exit_code=$?
        # The summary's last line: "100.00 SECONDS USECS/CALL CALLS [ERRORS] total".
        syscalls=$(awk '$NF == "total" { print $4 }' "$out_dir/strace.out" 2>/dev/null)
    else
        if [ -n "$preload" ]; then
            set -- env LD_PRELOAD="$preload" "$out_dir/$program" "$@"
        else
            set -- env -u LD_PRELOAD "$out_dir/$program" "$@"
        fi
        /usr/bin/time -f '%e %M %R %F' -o "$out_dir/time.out" \
            timeout -k 5 "$run_timeout" "$@" >"$out_dir/run.out" 2>"$out_dir/run.err"
        exit_code=$?
        # shellcheck disable=SC2046 # four numbers, one word each
        set -- $(tail -n 1 "$out_dir/time.out")
        wall=${1:-} rss=${2:-} minor=${3:-} major=${4:-}
    fi
    output=$(head -n 1 "$out_dir/run.out" | tr -d '",')
    ops=$(printf '%s\n' "$output" | tr ' ' '\n' | sed -n 's/^ops=//p')
    lines=$(wc -l <"$out_dir/run.out")
    if [ "$exit_code" = 0 ] && [ "$lines" = 1 ] &&
        { [ "$rep" != count ] || [ -n "$syscalls" ]; }; then
        status=ok
    elif [ "$exit_code" = 124 ]; then
        status=timeout
    else
        status=fail
    fi
    if [ "$status" != ok ]; then
        cp "$out_dir/run.err" "$log_dir/$workload.$allocator.$rep.stderr"
        echo "${preload:+LD_PRELOAD=$preload }${out_dir#"$ROOT"/}/$program $arguments" \
            >"$log_dir/$workload.$allocator.$rep.cmd"
        first_error=$(grep -v '^Command ' "$out_dir/run.err" | head -n 1)
        say "$status: $workload under $allocator (rep $rep, exit $exit_code): ${first_error:-no message}"
        say "  reproduce: ${preload:+LD_PRELOAD=$preload }$out_dir/$program $arguments"
        case "$exit_code" in
        13[0-9] | 14[0-9]) output="killed by signal $((exit_code - 128))" ;;
        esac
    fi
    echo "$workload,$allocator,$rep,$status,$wall,$rss,$minor,$major,$ops,$syscalls,$exit_code,\"$output\"" >>"$csv"
}

say "$workload_count workloads x $allocator_count allocators x $reps repetitions$([ "$quick" = 1 ] && echo ' (QUICK)')"
echo "workload,allocator,rep,status,wall_s,max_rss_kb,minor_faults,major_faults,ops,syscalls,exit_code,output" >"$csv"
started=$(date +%s)
# The machine is shared: keep its load next to the numbers (RESULTS.md).
cut -d' ' -f1-3 /proc/loadavg >"$out_dir/loadavg.start" 2>/dev/null
for workload in $workloads; do
    entry=$(printf '%s\n' "$workload_table" | grep "^$workload|")
    if [ -z "$entry" ]; then
        say "unknown workload '$workload'"
        exit 1
    fi
    if [ "$quick" = 1 ]; then
        argv=$(echo "$entry" | cut -d'|' -f3)
    else
        argv=$(echo "$entry" | cut -d'|' -f2)
    fi
    timed_out=""
    rep=1
    while [ "$rep" -le "$reps" ]; do
        # Interleave allocators (A B C A B C ...) and rotate the starting
        # point each repetition, so slow drifts of the shared machine's load
        # spread over all allocators rather than landing on one.
        set -- $allocators
        rotation=$(((rep - 1) % $#))
        while [ "$rotation" -gt 0 ]; do
            first=$1
            shift
            set -- "$@" "$first"
            rotation=$((rotation - 1))
        done
        line=""
        for pair in "$@"; do
            allocator=${pair%%=*}
            preload=${pair#*=}
            case " $timed_out " in
            *" $allocator "*)
                # It hung once; do not spend another timeout on it.
                echo "$workload,$allocator,$rep,skipped,,,,,,,,\"timed out in an earlier repetition\"" >>"$csv"
                continue
                ;;
            esac
            run_one "$workload" "$allocator" "$preload" "$rep" $argv
            [ "$status" = timeout ] && timed_out="$timed_out $allocator"
            line="$line $allocator=$([ "$status" = ok ] && echo "$wall" || echo "$status")"
        done
        say "$workload rep $rep:$line"
        rep=$((rep + 1))
    done
    # One untimed run per allocator under strace for the syscall count: the
    # count of a deterministic workload hardly varies between runs, so one
    # is enough, and it keeps strace's overhead out of the timed runs.
    [ "$count_syscalls" = 1 ] || continue
    line=""
    for pair in $allocators; do
        allocator=${pair%%=*}
        preload=${pair#*=}
        case " $timed_out " in
        *" $allocator "*)
            echo "$workload,$allocator,count,skipped,,,,,,,,\"timed out in an earlier repetition\"" >>"$csv"
            continue
            ;;
        esac
        run_one "$workload" "$allocator" "$preload" count $argv
        line="$line $allocator=$([ "$status" = ok ] && echo "$syscalls" || echo "$status")"
    done
    say "$workload syscalls:$line"
done
say "runs took $(($(date +%s) - started)) s"
cut -d' ' -f1-3 /proc/loadavg >"$out_dir/loadavg.end" 2>/dev/null
echo "$(($(date +%s) - started))" >"$out_dir/duration"

# ------------------------------------------------------------ report
python3 bench/analyze.py --csv "$csv" --markdown bench/RESULTS.md --svg bench/chart.svg \
    --work-dir "$out_dir" --reps "$reps" --quick "$quick" --timeout "$run_timeout" \
    --allocators "$(for pair in $allocators; do printf '%s ' "${pair%%=*}"; done)" \
    --notes "$notes" || exit 1
say "wrote bench/results.csv, bench/RESULTS.md, bench/chart.svg"

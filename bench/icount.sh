#!/bin/sh
# bench/icount.sh — `make bench-icount`: instructions per operation, counted
# by callgrind (so free of the timing noise of a shared machine), for every
# bulwark profile in policy/ and every peer allocator:
#   - per malloc+free pair of 16, 64, 256 and 1024 bytes (bench/icount_pair.c);
#   - per step of the working-set workload (bench/icount_workingset.c).
# Writes bench/icount.md and prints it. See bench/README.md for the method.
#
# Environment: BENCH_BUILDROOT=D as for bench/run.sh (default: build).
set -u

# The fuzz profile's row counts its slab layers, as in bench/run.sh: its page
# mode (every block on pages of its own) is measured in fuzz/bench.
BULWARK_FUZZ_PAGES=0
export BULWARK_FUZZ_PAGES

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
buildroot=${BENCH_BUILDROOT:-build}
case "$buildroot" in
/*) ;;
*) buildroot="$ROOT/$buildroot" ;;
esac
out_dir="$buildroot/bench/icount"
markdown="$ROOT/bench/icount.md"

say() { printf 'icount: %s\n' "$*" >&2; }

if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_annotate >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing valgrind"
        apt-get update -qq >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    fi
    if ! command -v valgrind >/dev/null 2>&1; then
        say "valgrind is required; install it with:"
        echo "  sudo apt-get install -y valgrind" >&2
        exit 1
    fi
fi

mkdir -p "$out_dir" || exit 1

# Same allocator list as bench/run.sh: every profile, then the peers that are
# installed (run.sh installs them).
allocators=""
for policy in policy/*.h; do
    profile=$(basename "$policy" .h)
    if (unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
        make --no-print-directory PROFILE="$profile" BUILDROOT="$buildroot" all) \
        >"$out_dir/build-$profile.log" 2>&1; then
        allocators="$allocators bulwark-$profile=$buildroot/$profile/libbulwark.so"
    else
        say "profile '$profile' does not build; see $out_dir/build-$profile.log (skipped)"
    fi
done
allocators="$allocators glibc="
lib=/usr/lib/x86_64-linux-gnu
for peer in "jemalloc=$lib/libjemalloc.so.2" "mimalloc=$lib/libmimalloc.so.2" \
    "tcmalloc=$lib/libtcmalloc_minimal.so.4" \
    "scudo=/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.scudo_standalone-x86_64.so"; do
    if [ -f "${peer#*=}" ]; then
        allocators="$allocators $peer"
    else
        say "${peer%%=*} not installed (skipped; bench/run.sh installs it)"
    fi
done

# No -g: with debug info callgrind splits a function into one entry per
# source file its inlined code came from; without it, one entry per function.
for program in icount_pair icount_workingset; do
    if ! gcc -std=gnu11 -O2 -Wall -Wextra -o "$out_dir/$program" "bench/$program.c"; then
        say "cannot compile bench/$program.c"
        exit 1
    fi
done

# count FILE FUNCTION inclusive|self: the function's instruction count.
count() {
    if [ "$3" = inclusive ]; then
        set -- "$1" "$2" --inclusive=yes
    else
        set -- "$1" "$2" --inclusive=no
    fi
    callgrind_annotate "$3" --threshold=100 --auto=no "$1" 2>/dev/null |
        awk -v name="$2" '{
            for (i = 1; i <= NF; i++)
                if ($i ~ ("(^|:)" name "$")) { gsub(",", "", $1); print $1; exit }
        }'
}

# callgrind RUN-NAME PRELOAD DUMP PROGRAM ARGS...: runs under callgrind with
# LD_PRELOAD in valgrind's own environment (valgrind passes it to the
# program; `env` inside valgrind would be counted too). DUMP is the profile
# part to read: "" for the whole run, or N with --dump-after=FUNCTION given in
# the arguments, for the profile of the N-th call of FUNCTION alone (callgrind
# zeroes its counters after each dump). Prints the profile file's name, or
# nothing when the run failed.
callgrind() {
    name=$1 preload=$2 part=$3
    shift 3
    profile_file="$out_dir/$name.callgrind"
    rm -f "$profile_file" "$profile_file".*
    if [ -n "$preload" ]; then
        LD_PRELOAD="$preload" valgrind --tool=callgrind --callgrind-out-file="$profile_file" \
            "$@" >"$out_dir/$name.out" 2>"$out_dir/$name.log"
    else
        env -u LD_PRELOAD valgrind --tool=callgrind --callgrind-out-file="$profile_file" \
            "$@" >"$out_dir/$name.out" 2>"$out_dir/$name.log"
    fi
    status=$?
    [ -n "$part" ] && profile_file="$profile_file.$part"
    if [ "$status" = 0 ] && [ -s "$profile_file" ]; then
        echo "$profile_file"
    else
        reason=$(grep -v '^==' "$out_dir/$name.log" | head -n 1)
        say "$name failed (exit $status): ${reason:-see $out_dir/$name.log}"
        echo "- $name (exit $status): ${reason:-no message}; log: ${out_dir#"$ROOT"/}/$name.log" >>"$failures"
    fi
}

divide() { # numerator denominator -> one decimal, or "fail"
    if [ -n "$1" ]; then
        awk -v n="$1" -v d="$2" 'BEGIN { printf "%.1f", n / d }'
    else
        printf fail
    fi
}

sizes="16 64 256 1024"
pair_iterations=100000 # icount_pair's second, measured call of bw_icount_loop
ws_steps=100000
failures="$out_dir/failures.md"
: >"$failures"
loop_self=""

table="$out_dir/table.md"
{
    printf '| allocator |'
    for size in $sizes; do printf ' pair %s B |' "$size"; done
    printf ' working-set step | of which allocator |\n'
    printf '|---|'
    for size in $sizes; do printf -- '---:|'; done
    printf -- '---:|---:|\n'
} >"$table"

for pair in $allocators; do
    allocator=${pair%%=*}
    preload=${pair#*=}
    say "$allocator"
    row="| $allocator |"
    for size in $sizes; do
        # Dump 1 is the warm-up call (1,000 pairs and the first-use slow
        # paths), dump 2 the measured call alone.
        file=$(callgrind "$allocator.pair$size" "$preload" 2 \
            --dump-after=bw_icount_loop "$out_dir/icount_pair" "$size")
        inclusive=""
        if [ -n "$file" ]; then
            inclusive=$(count "$file" bw_icount_loop inclusive)
            [ -z "$loop_self" ] && loop_self=$(count "$file" bw_icount_loop self)
        fi
        row="$row $(divide "$inclusive" "$pair_iterations") |"
    done
    file=$(callgrind "$allocator.workingset" "$preload" "" "$out_dir/icount_workingset" "$ws_steps")
    inclusive="" self=""
    if [ -n "$file" ]; then
        inclusive=$(count "$file" bw_icount_ws_loop inclusive)
        self=$(count "$file" bw_icount_ws_loop self)
    fi
    if [ -n "$inclusive" ] && [ -n "$self" ]; then
        row="$row $(divide "$inclusive" "$ws_steps") | $(divide "$((inclusive - self))" "$ws_steps") |"
    else
        row="$row fail | fail |"
    fi
    echo "$row" >>"$table"
done

{
    echo "# Instructions per operation (callgrind)"
    echo
    echo "Written by \`make bench-icount\` (bench/icount.sh) on $(date '+%Y-%m-%d %H:%M %Z'),"
    echo "bulwark at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown);"
    echo "$(valgrind --version 2>/dev/null), gcc -O2 programs, Debian 12 packages for the peers."
    echo
    echo "Instruction counts do not depend on the machine's load, so unlike"
    echo "[RESULTS.md](RESULTS.md) these numbers are exact and repeatable; they do not"
    echo "show cache misses, atomics' cost or page faults."
    echo
    cat "$table"
    echo
    echo "- **pair N B**: bench/icount_pair.c calls \`bw_icount_loop(N, 1000)\` (warm-up) and"
    echo "  then \`bw_icount_loop(N, 100000)\`; each iteration is one \`malloc(N)\` + \`free\`."
    echo "  callgrind runs with \`--dump-after=bw_icount_loop\`, which writes one profile per"
    echo "  call and zeroes the counters after each, so the second profile holds the"
    echo "  measured call alone: the figure is its inclusive count of \`bw_icount_loop\`"
    echo "  / 100,000, the steady-state fast path with no warm-up or start-up cost in it."
    echo "  It includes the loop's own $(divide "$loop_self" "$pair_iterations") instructions per"
    echo "  iteration (its self count: counter, call, store to a volatile)."
    echo "- **working-set step**: bench/icount_workingset.c holds 10,000 live blocks of"
    echo "  16..512 B, warms up with 20,000 steps in a separate function, then"
    echo "  \`bw_icount_ws_loop\` (called once) does 100,000 steps: pick a random block,"
    echo "  check its tag, free it, malloc a random size 16..512, tag it. The figure is"
    echo "  inclusive / 100,000."
    echo "- **of which allocator**: inclusive minus self count of \`bw_icount_ws_loop\`"
    echo "  (the random numbers and tag checks are inlined into it), per step: the"
    echo "  instructions spent in malloc and free (including PLT stubs) for one step."
    echo "- Each run: \`LD_PRELOAD=<allocator> valgrind --tool=callgrind"
    echo "  --callgrind-out-file=F <program> <arg>\` (LD_PRELOAD in valgrind's environment),"
    echo "  then \`callgrind_annotate --inclusive=yes F\`; glibc runs without preload."
    if [ -s "$failures" ]; then
        echo
        echo "Runs that failed under callgrind (\"fail\" in the table):"
        echo
        cat "$failures"
    fi
} >"$markdown"
cat "$markdown"

#!/bin/sh
# fuzz/bench/run.sh — the harness-malloc benchmark (issue 15 item 5): six
# planted-bug targets (fuzz/bench/*.c) under glibc, libdislocator (AFL++),
# ASan and every bulwark profile.
#
#   sh fuzz/bench/run.sh            full run: 5 direct triggers, 15 s campaigns
#   QUICK=1 sh fuzz/bench/run.sh    1 direct trigger, 4 s campaigns
#   make fuzz-bench [QUICK=1]
#
# For each target and malloc:
#  (a) detection: the direct trigger (input "BU") is run RUNS times; a run
#      detects the bug when the process dies of a signal (a bulwark report
#      aborts, a guard page faults, ASan aborts with abort_on_error=1) at the
#      execution that commits it. The benign input ("AAAA") must exit 0.
#  (b) a campaign: afl-fuzz -D -V SECONDS from the seed "AAAA": the gate
#      needs two bytes found one at a time, which the deterministic stage
#      (-D; its flips and arith steps reach each byte from 'A') does in some
#      thousands of executions, so the time to the first crash mostly
#      measures speed, not havoc's luck (without -D glibc took 9 s to more
#      than 15 s to find three bytes);
#      the preloaded mallocs through AFL_PRELOAD; time to first crash from the crash file's time: field,
#      execs/s = execs_done / run_time of fuzzer_stats.
# Targets are built with afl-clang-fast -O2 -fno-builtin (ASan:
# AFL_USE_ASAN=1): without -fno-builtin clang drops a malloc/free pair whose
# block does not escape, and the store past the end with it. The bulwark
# libraries are build/<profile>/libbulwark.so (built here if missing).
# Output: OUT (default build/fuzz-bench)/table.md, and the campaigns' dirs.
# Not part of make check: it takes about 11 minutes (QUICK=1: about 3).
# Needs Debian's afl++ and clang (apt-get install afl++ clang).

set -u
cd "$(dirname "$0")/../.." || exit 2

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-1}; SECONDS_EACH=${SECONDS_EACH:-4}
else RUNS=${RUNS:-5}; SECONDS_EACH=${SECONDS_EACH:-15}; fi
OUT=${OUT:-build/fuzz-bench}
PROFILES=${PROFILES:-"fast default strict fuzz"}
TARGETS=${TARGETS:-"off_by_one over8 uaf_read uaf_write double_free overflow200"}

for tool in afl-fuzz afl-clang-fast clang; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool missing (apt-get install afl++ clang)" >&2; exit 2; }
done
DISLOCATOR=
for d in /usr/lib/afl/libdislocator.so /usr/local/lib/afl/libdislocator.so; do
    [ -f "$d" ] && DISLOCATOR=$d && break
done
[ -n "$DISLOCATOR" ] || { echo "run.sh: libdislocator.so not found (afl++)" >&2; exit 2; }

mkdir -p "$OUT/bin" "$OUT/afl" || exit 2
for p in $PROFILES; do
    [ -f "build/$p/libbulwark.so" ] || make -j2 PROFILE="$p" all >/dev/null || exit 2
done

# ---------------------------------------------------------------- build
for t in $TARGETS; do
    AFL_QUIET=1 afl-clang-fast -O2 -g -fno-builtin -o "$OUT/bin/$t" "fuzz/bench/$t.c" || exit 2
    AFL_QUIET=1 AFL_USE_ASAN=1 afl-clang-fast -O2 -g -fno-builtin -o "$OUT/bin/$t.asan" "fuzz/bench/$t.c" || exit 2
done

if [ -z "${MALLOCS:-}" ]; then
    MALLOCS="glibc libdislocator asan"
    for p in $PROFILES; do MALLOCS="$MALLOCS bulwark-$p"; done
fi

# The binary and the preload of a malloc.
binary_of() { if [ "$2" = asan ]; then echo "$OUT/bin/$1.asan"; else echo "$OUT/bin/$1"; fi; }
preload_of() {
    case "$1" in
    libdislocator) echo "$DISLOCATOR" ;;
    bulwark-*) echo "$(pwd -P)/build/${1#bulwark-}/libbulwark.so" ;;
    *) echo "" ;;
    esac
}

# One direct run: prints the exit status (128+signal when killed) and leaves
# the output in $OUT/last.
run_direct() { # target malloc input
    bin=$(binary_of "$1" "$2")
    pre=$(preload_of "$2")
    printf '%s' "$3" | env ${pre:+LD_PRELOAD=$pre} \
        ASAN_OPTIONS=abort_on_error=1:symbolize=0:detect_leaks=0 \
        sh -c 'ulimit -c 0; exec "$0"' "$bin" >"$OUT/last" 2>&1
    echo $?
}

# The report line a run left: bulwark's, ASan's or glibc's.
report_of() {
    grep -m1 -E 'bulwark:|ERROR: AddressSanitizer|free\(\)|malloc\(\)|corrupted|double free' "$OUT/last" |
        sed -e 's/^==[0-9]*==//' -e 's/ on address.*//' -e 's/0x[0-9a-f]*/0x.../g' | cut -c1-60
}

# When a campaign first ran an input that commits the bug (one that starts
# with the gate's bytes), crashing or not: the time: field of the earliest
# such file among its queue and crashes. Tells "the fuzzer never got there"
# from "it got there and the malloc saw nothing".
reached_at() { # campaign dir
    best=
    for f in "$1"/default/queue/id:* "$1"/default/crashes/id:*; do
        [ -f "$f" ] && [ "$(head -c 2 "$f" | tr -d '\000')" = BU ] || continue
        ms=$(printf '%s\n' "$f" | sed -n 's/.*,time:\([0-9]*\),.*/\1/p')
        [ -n "$ms" ] && { [ -z "$best" ] || [ "$ms" -lt "$best" ]; } && best=$ms
    done
    if [ -n "$best" ]; then awk -v ms="$best" 'BEGIN { printf "%.1f", ms / 1000 }'; else echo "not in ${SECONDS_EACH} s"; fi
}

TABLE=$OUT/table.md
{
    echo "| target | malloc | detected at first execution | report | clean input | bug input reached (s) | first crash (s) | execs/s |"
    echo "|---|---|---|---|---|---|---|---|"
} >"$TABLE"

for t in $TARGETS; do
    for m in $MALLOCS; do
        # (a) detection
        detected=0
        report=
        for _ in $(seq "$RUNS"); do
            rc=$(run_direct "$t" "$m" 'BU')
            if [ "$rc" -gt 128 ]; then
                detected=$((detected + 1))
                r=$(report_of)
                [ -n "$r" ] || r="signal $((rc - 128)), no report"
                report=$r
            fi
        done
        rc=$(run_direct "$t" "$m" 'AAAA')
        if [ "$rc" = 0 ]; then clean=yes; else clean="NO (status $rc)"; fi
        # (b) campaign
        dir=$OUT/afl/$t-$m
        rm -rf "$dir" "$dir.in"
        mkdir -p "$dir.in" && printf 'AAAA' >"$dir.in/seed"
        pre=$(preload_of "$m")
        env AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 \
            AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CRASHES=1 \
            ${pre:+AFL_PRELOAD=$pre} \
            afl-fuzz -D -i "$dir.in" -o "$dir" -V "$SECONDS_EACH" -m none -t 1000 -- \
            "$(binary_of "$t" "$m")" >"$dir.log" 2>&1
        stats=$dir/default/fuzzer_stats
        if [ -f "$stats" ]; then
            execs=$(awk -F: '/^execs_done/ {gsub(/ /, "", $2); print $2}' "$stats")
            run_time=$(awk -F: '/^run_time/ {gsub(/ /, "", $2); print $2}' "$stats")
            eps=$(awk -v e="$execs" -v r="$run_time" 'BEGIN { printf "%d", (r > 0 ? e / r : 0) }')
            first=$(ls "$dir/default/crashes" 2>/dev/null | sed -n 's/.*,time:\([0-9]*\),.*/\1/p' |
                sort -n | head -1)
            if [ -n "$first" ]; then first=$(awk -v ms="$first" 'BEGIN { printf "%.1f", ms / 1000 }')
            else first="none in ${SECONDS_EACH} s"; fi
        else
            eps="afl-fuzz failed (see $dir.log)"
            first=-
        fi
        line="| $t | $m | $detected/$RUNS | ${report:--} | $clean | $(reached_at "$dir") | $first | $eps |"
        echo "$line"
        echo "$line" >>"$TABLE"
    done
done
echo "table: $TABLE"

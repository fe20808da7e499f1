#!/bin/sh
# fuzz/run.sh — one AFL++ campaign on one harness (`make fuzz-run`, and the
# short campaign of tests/fuzz/harnesses.sh).
#
#   FUZZ_BUILD=build/fuzz-afl sh fuzz/run.sh HARNESS SECONDS OUTDIR
#
# Starts from fuzz/corpus/HARNESS/, runs afl-fuzz for SECONDS (-V) into
# OUTDIR (emptied first), stops at the first crash (unless FUZZ_KEEP_GOING=1),
# prints the campaign's
# numbers (execs, execs/s, edges, corpus) and fails if it found any crash or
# hang, listing them with the command that replays one.
#
# The environment makes afl-fuzz usable on a shared machine it does not own:
# no CPU frequency check, no core_pattern check (crashes are still seen: the
# fork server gets the signal), no CPU binding, no curses UI.
set -eu

h=${1:?usage: fuzz/run.sh HARNESS SECONDS OUTDIR}
seconds=${2:?}
out=${3:?}
here=$(cd "$(dirname "$0")" && pwd -P)
build=${FUZZ_BUILD:-$here/../build/fuzz-afl}
bin=$(cd "$build" && pwd -P)/$h
corpus=$here/corpus/$h
[ -x "$bin" ] || { echo "fuzz/run.sh: $bin is missing (make fuzz-afl)" >&2; exit 1; }
[ -d "$corpus" ] || { echo "fuzz/run.sh: no corpus $corpus" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
    AFL_NO_AFFINITY=1 AFL_FAST_CAL=1
if [ "${FUZZ_KEEP_GOING:-0}" != 1 ]; then
    export AFL_BENCH_UNTIL_CRASH=1
fi
# -m none: bulwark reserves a 64 GiB arena (address space, not memory);
# -t: an input may allocate, fill and check tens of MiB; seed starts two
# processes per input.
timeout=2000
[ "$h" = seed ] && timeout=5000
# Each harness failure's line (bw_fz_log) also goes here.
export BW_FUZZ_LOG="$out/failures.log"
status=0
afl-fuzz -i "$corpus" -o "$out" -V "$seconds" -m none -t "$timeout" -- "$bin" \
    >"$out/afl-fuzz.log" 2>&1 || status=$?
stats=$out/default/fuzzer_stats
if [ ! -f "$stats" ]; then
    echo "fuzz/run.sh: afl-fuzz on $h did not start (exit $status):" >&2
    tail -n 30 "$out/afl-fuzz.log" >&2
    exit 1
fi
stat() { awk -v k="$1" '$1 == k { print $3 }' "$stats"; }
crashes=$(stat saved_crashes)
hangs=$(stat saved_hangs)
echo "$h: ${seconds}s, $(stat execs_done) execs, $(stat execs_per_sec) execs/s," \
    "$(stat edges_found)/$(stat total_edges) edges, corpus $(stat corpus_count)," \
    "$crashes crashes, $hangs hangs"
found=0
for kind in crashes hangs; do
    for f in "$out"/default/"$kind"/id:*; do
        [ -e "$f" ] || continue
        found=1
        echo "  $kind: $f"
        echo "    replay: $bin '$f'"
    done
done
if [ "$found" -ne 0 ] || [ "${crashes:-0}" != 0 ] || [ "${hangs:-0}" != 0 ]; then
    if [ -s "$BW_FUZZ_LOG" ]; then
        echo "  harness failures (first lines of $BW_FUZZ_LOG):"
        head -n 20 "$BW_FUZZ_LOG" | sed 's/^/    /'
    fi
    exit 1
fi

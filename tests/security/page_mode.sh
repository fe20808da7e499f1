#!/bin/sh
# tests/security/page_mode.sh — the fuzz profile's page mode as a fuzzing
# harness's malloc, through LD_PRELOAD as AFL_PRELOAD loads it:
#  - the six planted-bug targets of fuzz/bench (off-by-one past malloc(13),
#    8 bytes past malloc(64), use-after-free read and write of a 48-byte
#    struct, double free, a 200-byte overflow) die at the first execution
#    that commits the bug: a bulwark report (SIGABRT) or a fault (SIGSEGV);
#    each runs clean on a benign input;
#  - real programs run under it unchanged: python3 (dicts, lists, strings,
#    json round trip) and sort of 20,000 lines, output checked.
# Profiles other than fuzz skip (exit 77). About 5 s.
set -eu
: "${BULWARK_LIB:?run through make check (tests/run.sh)}" "${BULWARK_BUILD:?}"

if [ "${BULWARK_PROFILE:-}" != fuzz ]; then
    echo "skip: page mode is the fuzz profile's (profile ${BULWARK_PROFILE:-?})"
    exit 77
fi
CC=${CC:-cc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=""

# run TARGET INPUT: the target's exit status (128 + signal when killed);
# its output is left in $work/out.
run() {
    status=0
    printf '%s' "$2" | env BULWARK_FUZZ_PAGES=1 LD_PRELOAD="$BULWARK_LIB" \
        sh -c 'ulimit -c 0; exec "$0"' "$work/$1" >"$work/out" 2>&1 || status=$?
    echo "$status"
}

# target  expected signal  expected report ("" = a fault, no report)
while read -r target signal report; do
    [ -n "$target" ] || continue
    "$CC" -O2 -fno-builtin -o "$work/$target" "fuzz/bench/$target.c"
    clean=$(run "$target" AAAA)
    bug=$(run "$target" BU)
    line=$(grep -m1 'bulwark:' "$work/out" || true)
    want=$((128 + signal))
    verdict=ok
    if [ "$clean" != 0 ]; then
        verdict="benign input exited $clean"
    elif [ "$bug" != "$want" ]; then
        verdict="bug input exited $bug, not $want"
    elif [ "$report" = - ] && [ -n "$line" ]; then
        verdict="a fault was expected, got: $line"
    elif [ "$report" != - ] && ! printf '%s\n' "$line" | grep -q "^bulwark: $report of 0x"; then
        verdict="expected 'bulwark: $report', got: ${line:-nothing}"
    fi
    echo "$target: benign $clean, bug $bug ${line:+($line)}: $verdict"
    [ "$verdict" = ok ] || failed="$failed $target"
done <<EOF
off_by_one 6 heap overflow
over8 11 -
uaf_read 11 -
uaf_write 11 -
double_free 6 double free
overflow200 11 -
EOF

# Real programs, page mode on.
pages() { env BULWARK_FUZZ_PAGES=1 LD_PRELOAD="$BULWARK_LIB" "$@"; }
if command -v python3 >/dev/null; then
    out=$(pages python3 -c '
import json
d = {str(i): [i] * (i % 7) + ["x" * (i % 50)] for i in range(3000)}
s = json.dumps(d)
e = json.loads(s)
assert e == d
print(len(s), sum(len(v) for v in e.values()))
' 2>&1) || failed="$failed python3"
    echo "python3: $out"
    [ "$out" = "$(python3 -c '
import json
d = {str(i): [i] * (i % 7) + ["x" * (i % 50)] for i in range(3000)}
s = json.dumps(d)
print(len(s), sum(len(v) for v in json.loads(s).values()))
')" ] || failed="$failed python3-output"
fi
awk 'BEGIN { for (i = 0; i < 20000; i++) print (i * 7919) % 20011 }' >"$work/lines"
pages sort -n "$work/lines" >"$work/sorted" || failed="$failed sort"
sort -n "$work/lines" | cmp -s - "$work/sorted" || failed="$failed sort-output"
echo "sort: $(wc -l <"$work/sorted") lines"

if [ -n "$failed" ]; then
    echo "FAIL:$failed"
    exit 1
fi
echo "page mode: 6/6 planted bugs caught at the first execution; python3 and sort ran"

#!/bin/sh
# tests/perf/icount.sh — regression guard on the fast path's cost.
#
# Runs bench/icount_pair.c under valgrind --tool=callgrind with bulwark
# preloaded and fails if the instructions per malloc(32)+free pair exceed the
# ceiling committed for this profile in tests/perf/icount-ceilings. Counts,
# not times: the result does not depend on machine load. Profiles without a
# ceiling are skipped (exit 77).
set -eu
: "${BULWARK_LIB:?run through make check}" "${BULWARK_BUILD:?}" "${BULWARK_PROFILE:?}"
here=$(dirname "$0")
ceiling=$(awk -v p="$BULWARK_PROFILE" '$1 == p { print $2 }' "$here/icount-ceilings")
if [ -z "$ceiling" ]; then
    echo "skipped: no instruction ceiling for profile $BULWARK_PROFILE"
    exit 77
fi
if ! command -v valgrind >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then echo "valgrind missing (apt-get install valgrind)"; exit 1; fi
    echo "skipped: valgrind not installed (apt-get install valgrind)"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
${CC:-cc} -O2 -g -gdwarf-4 "$here/../../bench/icount_pair.c" -o "$work/icount_pair"
LD_BIND_NOW=1 LD_PRELOAD="$BULWARK_LIB" valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$work/icount_pair" 32 >/dev/null 2>"$work/valgrind.log" || {
    cat "$work/valgrind.log"; exit 1; }
total=$(callgrind_annotate --inclusive=yes "$work/cg.out" |
        awk '/bw_icount_loop/ { gsub(",", "", $1); print $1; exit }')
if [ -z "$total" ]; then
    echo "bw_icount_loop not found in the callgrind profile"; exit 1
fi
# bw_icount_loop runs 1,000 warm-up pairs and then 100,000 measured ones;
# LD_BIND_NOW keeps lazy PLT binding out of the count.
per_pair=$((total / 101000))
echo "profile $BULWARK_PROFILE: $per_pair instructions per malloc(32)+free pair (ceiling $ceiling)"
[ "$per_pair" -le "$ceiling" ]

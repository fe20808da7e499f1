#!/bin/sh
# tests/stress/arena_exhaustion.sh — runs tests/stress/arena_exhaustion.c
# (see there for the claims) under the profile built with a 16 MiB arena
# ($BULWARK_BUILD/small-arena/libbulwark.so, which `make tests` builds), so
# that filling the arena takes a moment rather than 64 GiB.
set -u
: "${BULWARK_BUILD:?run through make check}"
lib=$BULWARK_BUILD/small-arena/libbulwark.so
program=$BULWARK_BUILD/tests/stress/arena_exhaustion
for f in "$lib" "$program"; do
    [ -f "$f" ] || { echo "missing $f (make tests builds it)"; exit 1; }
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
LD_PRELOAD=$lib "$program" >"$out" 2>&1
status=$?
cat "$out"
if grep -q "bulwark:" "$out"; then
    echo "bulwark reported an error"
    exit 1
fi
[ "$status" -eq 0 ] || echo "exit status $status"
exit "$status"

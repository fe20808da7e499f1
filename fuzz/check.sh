#!/bin/sh
# fuzz/check.sh — the fuzz/ part of `make check` (run by tests/run.sh).
#
# Proves that the AFL++ harnesses build with afl-clang-fast, that every
# committed corpus input (fuzz/corpus/<harness>/) runs clean on its harness,
# and that a short AFL++ campaign from that corpus (ops 6 s, threads 4 s,
# seed 4 s) finds no crash and no hang.
#
# The harnesses and the library they link are built by afl-clang-fast in
# their own tree (build/fuzz-afl/), whatever compiler and profile the suite
# is testing, so this runs once per `make check`: in the fuzz profile of the
# gcc build; elsewhere it reports itself skipped. Without afl++ installed it
# skips too, except under CI=true (.ci/run installs it).
set -eu

: "${BULWARK_BUILD:?run through make check}"
if [ "${BULWARK_PROFILE:-}" != fuzz ]; then
    echo "skip: fuzz/ is checked once, in the fuzz profile"
    exit 77
fi
case "$BULWARK_BUILD" in
*-clang)
    echo "skip: fuzz/ builds with afl-clang-fast whatever CC is; checked in the gcc build"
    exit 77
    ;;
esac
for tool in afl-clang-fast afl-fuzz; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [ "${CI:-}" = true ]; then
            echo "error: '$tool' is not installed although .ci/run installs afl++" >&2
            exit 1
        fi
        echo "skip: '$tool' is not installed (apt-get install afl++)"
        exit 77
    fi
done

root=$(cd "$(dirname "$0")/.." && pwd -P)
buildroot=$(dirname "$BULWARK_BUILD")
cd "$root"
t0=$(date +%s)
env -u MAKEFLAGS -u MAKELEVEL make --no-print-directory -j"$(nproc)" BUILDROOT="$buildroot" \
    fuzz-afl >"$buildroot/fuzz-afl.build.log" 2>&1 || {
    tail -n 30 "$buildroot/fuzz-afl.build.log"
    exit 1
}
build=$buildroot/fuzz-afl
t1=$(date +%s)
echo "built $build in $((t1 - t0)) s"

for h in ops threads seed; do
    n=$(ls fuzz/corpus/$h | wc -l)
    if [ "$n" -lt 10 ]; then
        echo "FAIL: fuzz/corpus/$h has $n inputs" >&2
        exit 1
    fi
    # One process for the whole corpus, as the allocator's state carries
    # over between inputs in a persistent campaign too.
    if ! "$build/$h" fuzz/corpus/$h/*; then
        echo "FAIL: the corpus of $h does not replay clean; find the input with" >&2
        echo "  for f in fuzz/corpus/$h/*; do $build/$h \$f || echo \$f; done" >&2
        exit 1
    fi
    echo "replayed $n inputs on $h"
done
t2=$(date +%s)

work=$(mktemp -d "${TMPDIR:-/tmp}/bulwark-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
result=0
for run in ops:6 threads:4 seed:4; do
    h=${run%%:*}
    if ! FUZZ_BUILD=$build sh fuzz/run.sh "$h" "${run#*:}" "$work/$h"; then
        # Kept for the report: $work goes away.
        rm -rf "$build/check-findings/$h"
        mkdir -p "$build/check-findings"
        cp -r "$work/$h" "$build/check-findings/$h"
        echo "  (kept in $build/check-findings/$h)"
        result=1
    fi
done
t3=$(date +%s)
echo "replay $((t2 - t1)) s, campaigns $((t3 - t2)) s"
exit "$result"

#!/bin/sh
# tests/fuzz/harnesses.sh — the fuzz/ part of `make check` (run by tests/run.sh).
#
# Proves that the harnesses build as AFL++ targets (afl-clang-fast) and as
# libFuzzer targets (clang -fsanitize=fuzzer), that every committed corpus
# input (fuzz/corpus/<harness>/) runs clean on both builds of its harness,
# and that a short AFL++ campaign from that corpus (ops 6 s, threads 4 s,
# seed 4 s) finds no crash and no hang.
#
# The harnesses and the library they link are built by afl-clang-fast in
# their own trees (build/fuzz-afl/, build/fuzz-libfuzzer/), whatever compiler and profile the suite
# is testing, so this runs once per `make check`: in the fuzz profile of the
# gcc build; elsewhere it reports itself skipped. Without afl++ installed it
# (or libFuzzer's runtime, libclang-rt-14-dev) it skips too, except under
# CI=true (.ci/run installs them).
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
missing() {
    if [ "${CI:-}" = true ]; then
        echo "error: $1 is not installed although .ci/run installs $2" >&2
        exit 1
    fi
    echo "skip: $1 is not installed (apt-get install $2)"
    exit 77
}
for tool in afl-clang-fast afl-fuzz; do
    command -v "$tool" >/dev/null 2>&1 || missing "$tool" afl++
done
command -v clang >/dev/null 2>&1 || missing clang clang
[ -f "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)" ] ||
    missing "libFuzzer's runtime" libclang-rt-14-dev

root=$(cd "$(dirname "$0")/../.." && pwd -P)
buildroot=$(dirname "$BULWARK_BUILD")
cd "$root"
t0=$(date +%s)
env -u MAKEFLAGS -u MAKELEVEL make --no-print-directory -j"$(nproc)" BUILDROOT="$buildroot" \
    fuzz >"$buildroot/fuzz.build.log" 2>&1 || {
    tail -n 30 "$buildroot/fuzz.build.log"
    exit 1
}
build=$buildroot/fuzz-afl
lfbuild=$buildroot/fuzz-libfuzzer
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
    # libFuzzer runs every file of the corpus once with -runs=0. The seed
    # corpus too: clang 14's libFuzzer runtime carries UBSan's standalone
    # runtime, whose .preinit_array function allocates before libc has set
    # environ; bulwark then reads BULWARK_SEED from /proc/self/environ
    # (src/random.c, bw_seed_text), or the two children would differ.
    if ! "$lfbuild/$h" -runs=0 -artifact_prefix="$lfbuild/" fuzz/corpus/$h \
        >"$lfbuild/$h.replay.log" 2>&1; then
        tail -n 20 "$lfbuild/$h.replay.log"
        echo "FAIL: the corpus of $h does not replay clean on the libFuzzer build" >&2
        exit 1
    fi
    echo "replayed $n inputs on $h (AFL++ and libFuzzer builds)"
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

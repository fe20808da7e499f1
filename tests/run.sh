#!/bin/sh
# tests/run.sh — the test runner behind `make check`.
#
# Proves nothing itself: it runs every test it is given, one after the other
# (the machine has 2 cores and several tests are multi-threaded, so running
# them in parallel would only make timings and timeouts noisy), and reports.
#
#   BULWARK_BUILD=build/default [BULWARK_PROFILE=default] sh tests/run.sh ARG...
#
# Each ARG is one of
#   *.sh    a script, run as `sh ARG` with BULWARK_LIB (absolute path of
#           $BULWARK_BUILD/libbulwark.so) and BULWARK_BUILD exported;
#   *.dyn   a test binary linked against libbulwark.so, run with
#           LD_PRELOAD=$BULWARK_LIB so that the libc names resolve to bulwark
#           in every library the test loads, exactly as a user would run it;
#   other   a test binary, run directly.
# Every test runs under `timeout 600` with stdin from /dev/null; its output
# goes to $BULWARK_BUILD/logs/<name>.log. Exit status 77 means "skipped".
# The last line is `N passed, N failed` (plus `, N skipped` when any were);
# the runner exits 1 if any test failed.

set -u

if [ -z "${BULWARK_BUILD:-}" ]; then
    echo "run.sh: BULWARK_BUILD is not set (run it through 'make check')" >&2
    exit 2
fi
if [ ! -d "$BULWARK_BUILD" ]; then
    echo "run.sh: BULWARK_BUILD=$BULWARK_BUILD is not a directory" >&2
    exit 2
fi

# Absolute paths: tests change directory, LD_PRELOAD must not depend on cwd.
BULWARK_BUILD=$(cd "$BULWARK_BUILD" && pwd -P)
BULWARK_LIB=$BULWARK_BUILD/libbulwark.so
BULWARK_PROFILE=${BULWARK_PROFILE:-default}
export BULWARK_BUILD BULWARK_LIB BULWARK_PROFILE

TEST_TIMEOUT=600
LOG_DIR=$BULWARK_BUILD/logs
mkdir -p "$LOG_DIR" || exit 2

passed=0
failed=0
skipped=0
failed_names=""

# The short name a test is reported and logged under: its path below
# <build>/tests/ or tests/, e.g. "api/test_malloc.dyn", "programs/git.sh".
test_name() {
    case "$1" in
    "$BULWARK_BUILD"/tests/*) printf '%s\n' "${1#"$BULWARK_BUILD"/tests/}" ;;
    */tests/*) printf '%s\n' "${1##*/tests/}" ;;
    tests/*) printf '%s\n' "${1#tests/}" ;;
    *) printf '%s\n' "${1##*/}" ;;
    esac
}

for arg in "$@"; do
    # make passes build paths relative to the repository root.
    case "$arg" in
    /*) path=$arg ;;
    *) path=$(pwd -P)/$arg ;;
    esac
    name=$(test_name "$path")
    log=$LOG_DIR/$name.log
    mkdir -p "$(dirname "$log")"

    if [ ! -f "$path" ]; then
        echo "FAIL $name (missing: $arg)"
        failed=$((failed + 1))
        failed_names="$failed_names $name"
        continue
    fi

    start=$(date +%s)
    case "$path" in
    # The fuzz profile's page mode is off but where a test turns it on
    # (tests/lib/bw_test.c explains).
    *.sh)
        BULWARK_FUZZ_PAGES=0 timeout "$TEST_TIMEOUT" sh "$path" </dev/null >"$log" 2>&1
        status=$?
        ;;
    *.dyn)
        BULWARK_FUZZ_PAGES=0 LD_PRELOAD=$BULWARK_LIB timeout "$TEST_TIMEOUT" "$path" </dev/null >"$log" 2>&1
        status=$?
        ;;
    *)
        env -u BULWARK_FUZZ_PAGES timeout "$TEST_TIMEOUT" "$path" </dev/null >"$log" 2>&1
        status=$?
        ;;
    esac
    elapsed=$(($(date +%s) - start))

    case $status in
    0)
        echo "PASS $name (${elapsed}s)"
        passed=$((passed + 1))
        ;;
    77)
        echo "SKIP $name"
        skipped=$((skipped + 1))
        ;;
    *)
        echo "FAIL $name (exit $status)"
        if [ "$status" -eq 124 ]; then
            echo "    (killed by timeout after ${TEST_TIMEOUT}s)"
        elif [ "$status" -gt 128 ]; then
            echo "    (killed by signal $((status - 128)))"
        fi
        echo "    --- last 40 lines of $log"
        tail -n 40 "$log" | sed 's/^/    /'
        echo "    ---"
        failed=$((failed + 1))
        failed_names="$failed_names $name"
        ;;
    esac
done

if [ -n "$failed_names" ]; then
    echo "failed:$failed_names"
fi
summary="$passed passed, $failed failed"
if [ "$skipped" -gt 0 ]; then
    summary="$summary, $skipped skipped"
fi
echo "$summary"
[ "$failed" -eq 0 ]

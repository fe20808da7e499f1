#!/bin/sh
# tests/stress/mlockall.sh — stress tests again, in processes that lock all
# their memory, present and future: shim_mlockall.so, preloaded next to
# libbulwark.so, calls mlockall(MCL_CURRENT | MCL_FUTURE) from its
# constructor.
#
# Locked memory refuses MADV_GUARD_INSTALL and MADV_DONTNEED with EINVAL,
# so guard pages fall back to mprotect and freed pages stay resident; the
# tests' own content checks must still hold, with no crash and no report.
# Both orders: LD_PRELOAD="shim bulwark" locks after bulwark initialised
# (glibc runs the last-listed object's constructor first), as a daemon that
# locks in main does; "bulwark shim" locks before, so bulwark's start-up
# probe already meets locked memory.
#
# A subset that takes about half a minute and at most a few hundred MiB of
# locked memory (under MCL_FUTURE every committed 4 MiB segment and every
# large mapping, parked ones included, is resident): stress/test_threads,
# stress/test_large's guard_pages and api/test_realloc. Left out: what
# asserts that locked memory rules out — resident memory that drops after
# free (stress/test_memory_return, api/test_conformance's test_malloc_trim)
# and guards that cost no mapping (stress/test_vma_count, test_large's
# cache_bounds_mappings) — and test_large's many_live_large_blocks and
# large_alignments (800 and 600 MiB resident). stress/test_mlockall runs
# every size class and the large quarantine under mlockall on its own.
#
# Skipped (77) when mlockall is not permitted: it needs CAP_IPC_LOCK or an
# unlimited RLIMIT_MEMLOCK, since bulwark's 64 GiB reservation counts
# against the limit. CI runs as root, so it runs there.
set -eu
: "${BULWARK_LIB:?run through make check (tests/run.sh)}" "${BULWARK_BUILD:?}"

# CAP_IPC_LOCK is bit 14 of the effective set; the soft limit is the 4th
# field of /proc's "Max locked memory" line (bytes, or "unlimited").
cap_eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
memlock=$(awk '/^Max locked memory/ { print $4 }' /proc/self/limits)
if [ $((0x$cap_eff >> 14 & 1)) -eq 0 ] && [ "$memlock" != unlimited ]; then
    echo "skip: mlockall not permitted (no CAP_IPC_LOCK, RLIMIT_MEMLOCK $memlock bytes)"
    exit 77
fi

shim=$BULWARK_BUILD/tests/stress/shim_mlockall.so
tests=$BULWARK_BUILD/tests
for file in "$shim" "$tests/stress/test_threads.dyn" "$tests/stress/test_large.dyn" \
    "$tests/api/test_realloc.dyn"; do
    if [ ! -f "$file" ]; then
        echo "error: $file is missing (built by 'make tests')"
        exit 1
    fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=""

# run_locked WHEN PRELOAD PROGRAM [VAR=VALUE...]: runs PROGRAM with
# LD_PRELOAD=PRELOAD and the given variables; it must exit 0.
run_locked() {
    when=$1
    preload=$2
    program=$3
    shift 3
    name=$(basename "$program")
    start=$(date +%s)
    status=0
    env LD_PRELOAD="$preload" "$@" "$program" </dev/null >"$work/out" 2>&1 || status=$?
    echo "== $name, locked $when: exit $status, $(($(date +%s) - start)) s"
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$work/out" | sed 's/^/   /'
        failed="$failed $name($when)"
    else
        grep -E '^\[  (PASSED|SKIPPED) ' "$work/out" | sed 's/^/   /' || true
    fi
}

after="$shim $BULWARK_LIB"
before="$BULWARK_LIB $shim"
run_locked "after start-up" "$after" "$tests/stress/test_threads.dyn"
run_locked "after start-up" "$after" "$tests/stress/test_large.dyn" BW_TEST_FILTER=guard_pages
run_locked "after start-up" "$after" "$tests/api/test_realloc.dyn"
# Locked before start-up: the trim test alone (refused purges, forced by
# malloc_trim(0)); the whole file ran locked after start-up above.
run_locked "before start-up" "$before" "$tests/stress/test_threads.dyn" BW_TEST_FILTER=random_ops_with_trim

if [ -n "$failed" ]; then
    echo "FAIL under mlockall:$failed"
    exit 1
fi
echo "all passed under mlockall(MCL_CURRENT | MCL_FUTURE)"

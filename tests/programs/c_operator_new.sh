#!/bin/sh
# tests/programs/c_operator_new.sh — libbulwark.so needs no C++ runtime.
#
# A C program pays nothing for bulwark's C++ operators: the library must not
# list libstdc++ (or libm, or libgcc_s) as needed (together 1.2 MiB of
# resident memory in every preloaded process). c_operator_new.c then calls
# operator new/delete through dlsym with no libstdc++ in the process: they
# must work, nothrow new of an impossible size must return NULL, and the
# throwing form must end in the one-line report and SIGABRT, since it has no
# std::bad_alloc to throw (in C++ programs it throws: tests/programs/cxx.sh).
set -eu
: "${BULWARK_LIB:?run through make check (tests/run.sh)}" "${BULWARK_BUILD:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

needed=$(readelf -d "$BULWARK_LIB" | awk '/NEEDED/ { print $NF }' | tr -d '[]' | tr '\n' ' ')
echo "libbulwark.so needs: $needed"
case " $needed " in
*libstdc++*|*" libm.so"*|*libgcc_s*)
    echo "FAIL: libbulwark.so links a C++ runtime"; exit 1 ;;
esac

program=$BULWARK_BUILD/tests/programs/c_operator_new.c.bin # built by make tests
if readelf -d "$program" | grep -q 'libstdc++'; then
    echo "FAIL: the test program itself links libstdc++"; exit 1
fi
LD_PRELOAD=$BULWARK_LIB "$program"

status=0
LD_PRELOAD=$BULWARK_LIB "$program" throw >"$work/out" 2>"$work/err" || status=$?
cat "$work/out" "$work/err"
expected="bulwark: fatal: out of memory in operator new (no C++ runtime to throw std::bad_alloc)"
if [ "$status" -ne 134 ]; then
    echo "FAIL: throwing new without a C++ runtime exited with $status, not SIGABRT (134)"; exit 1
fi
# (the shell may add its own "Aborted" line after the program's output)
if [ "$(head -n 1 "$work/err")" != "$expected" ] || [ -s "$work/out" ]; then
    echo "FAIL: expected exactly the line: $expected"; exit 1
fi
echo "throwing new without a C++ runtime: SIGABRT with the report line"

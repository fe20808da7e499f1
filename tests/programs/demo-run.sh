#!/bin/sh
# tests/programs/demo-run.sh — what `make run` shows: bulwark running real
# programs in one command.
#
# Runs a small Python snippet and the demo program (demo.c: a word-frequency
# table of malloc'd nodes) with LD_PRELOAD=libbulwark.so, shows that bulwark
# is mapped into the interpreter, and prints the allocator's statistics at the
# demo's exit (the demo finds bw_print_stats with dlsym). Also run by
# `make check`: it proves the demo works, i.e. exits non-zero if bulwark was
# not loaded, if bw_print_stats is missing, or if either program fails.
#
#   BULWARK_BUILD=build/default sh tests/programs/demo-run.sh

set -eu

if [ -z "${BULWARK_BUILD:-}" ]; then
    echo "demo-run.sh: set BULWARK_BUILD (e.g. build/default), or use 'make run'" >&2
    exit 1
fi
BUILD=$(cd "$BULWARK_BUILD" && pwd -P)
LIB=${BULWARK_LIB:-$BUILD/libbulwark.so}
DEMO=$BUILD/tests/programs/demo.c.bin
for file in "$LIB" "$DEMO"; do
    if [ ! -f "$file" ]; then
        echo "demo-run.sh: $file is missing; build it with 'make run'" >&2
        exit 1
    fi
done

echo "== bulwark demo: every command below runs with LD_PRELOAD=$LIB"
echo

if command -v python3 >/dev/null 2>&1; then
    # The interpreter itself, not a version-manager shim script.
    python=$(python3 -c 'import sys; print(sys.executable)')
    echo "== $python -c '...' (a dict of 200,000 entries, lists, strings)"
    LD_PRELOAD=$LIB "$python" -c '
import os, sys
table = {"key%d" % i: [i] * (i % 7) for i in range(200000)}
text = " ".join(table.keys())
lib = os.path.realpath(os.environ["LD_PRELOAD"])
mapped = any(line.rstrip().endswith(lib) for line in open("/proc/self/maps"))
print("python: %d entries, %d list items, %d characters of text" %
      (len(table), sum(map(len, table.values())), len(text)))
print("python: %s mapped into this process: %s" %
      (os.path.basename(lib), "yes" if mapped else "NO"))
sys.exit(0 if mapped else 1)
'
    echo
else
    echo "== python3 is not installed: skipping the Python part"
    echo
fi

echo "== $DEMO (word frequencies of generated text, malloc'd hash-table nodes)"
# The demo prints bulwark's statistics to stderr at exit; show them in order.
LD_PRELOAD=$LIB "$DEMO" 2>&1
echo
echo "== done: both programs ran on bulwark"

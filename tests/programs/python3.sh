#!/bin/sh
# tests/programs/python3.sh — CPython under bulwark.
#
# Proves that the Python interpreter, with PYTHONMALLOC=malloc so that every
# object (not only those above pymalloc's 512-byte limit) is a malloc block,
# runs churn.py (hundreds of MB of dict/list/str/bytes/bytearray churn, objects
# built in worker threads and freed by the main thread) to the same digest with
# bulwark preloaded as without, and that the interpreter's malloc really was
# bulwark's.

. "$(dirname "$0")/common.inc"

need_tool python3 python3
# The real interpreter, not a version-manager shim (pyenv's is a shell script).
if [ -z "${BULWARK_PYTHON:-}" ]; then
    BULWARK_PYTHON=$(python3 -c 'import sys; print(sys.executable)')
    export BULWARK_PYTHON
fi
if ! $BW_IN_WORKLOAD; then
    # Where malloc is called from: the executable, or libpython in a shared build.
    libpython=$(ldd "$BULWARK_PYTHON" 2>/dev/null | awk '/libpython/ { print $1; exit }')
    BOUND_PROGRAMS=${libpython:-$(basename "$BULWARK_PYTHON")}
fi

workload() {
    # Fixed hash seed: set and dict-of-set orders then cannot differ by chance.
    PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 \
        "$BULWARK_PYTHON" "$PROGRAMS_DIR/churn.py"
}

bw_main "$@"

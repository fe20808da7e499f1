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

bw_python_setup

workload() {
    # Fixed hash seed: set and dict-of-set orders then cannot differ by chance.
    PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 \
        "$BULWARK_PYTHON" "$PROGRAMS_DIR/churn.py"
}

bw_main "$@"

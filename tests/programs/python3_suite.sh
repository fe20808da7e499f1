#!/bin/sh
# tests/programs/python3_suite.sh — part of CPython's own regression suite
# under bulwark.
#
# Proves that 17 modules of CPython's test suite (json, re, dict, list,
# bytes, str, collections, struct, array, heapq, functools, difflib, zlib,
# string, textwrap, fractions, itertools: 2,552 tests in Debian 12's Python
# 3.11.2, 2,555 in 3.11.7), run by unittest
# with PYTHONMALLOC=malloc so that every object is a malloc block, give the
# same result with bulwark preloaded as without, and that the interpreter's
# malloc really was bulwark's. These modules were picked because they churn
# many objects, take seconds (about 8 s each run with glibc's malloc, 13 s
# with default or strict) and give the same output on every run; the whole
# suite (`python3 -m test`, 398 test files) failed under default and strict
# only where it fails without bulwark, but takes minutes. unittest prints
# the run's duration, which is
# dropped. The fuzz profile runs it in slab mode (BULWARK_FUZZ_PAGES=0): in
# page mode, a block per page, the run took more than ten minutes.

. "$(dirname "$0")/common.inc"

bw_python_setup
if ! "$BULWARK_PYTHON" -c 'import test.test_json, test.test_unicode' >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
        echo "error: CPython's test suite is not installed although .ci/run installs libpython3.11-testsuite" >&2
        exit 1
    fi
    echo "skip: CPython's test suite is not installed (apt-get install libpython3.11-testsuite)"
    exit 77
fi

workload() {
    status=0
    BULWARK_FUZZ_PAGES=0 PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 \
        "$BULWARK_PYTHON" -m unittest -q test.test_json test.test_re test.test_dict \
        test.test_list test.test_bytes test.test_unicode test.test_collections test.test_struct \
        test.test_array test.test_heapq test.test_functools test.test_difflib test.test_zlib \
        test.test_string test.test_textwrap test.test_fractions test.test_itertools \
        >unittest.out 2>&1 || status=$?
    sed 's/^\(Ran [0-9]* tests\) in [0-9.]*s$/\1/' unittest.out
    return "$status"
}

bw_main "$@"

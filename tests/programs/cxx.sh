#!/bin/sh
# tests/programs/cxx.sh — a C++17 program's new/delete under bulwark.
#
# Proves that cxx_churn.cc (containers, shared_ptr, plain/array/nothrow/
# aligned new with sized and aligned delete, in two threads with cross-thread
# frees; bad_alloc on impossible sizes; a new_handler that gives up) prints
# the same checksums and check results with bulwark preloaded as on libstdc++
# and glibc, and that its operator new really was bulwark's. The program
# exits non-zero by itself if any of its checks fails.

. "$(dirname "$0")/common.inc"

CXX_CHURN=$(bw_program_bin cxx_churn.cc)
export CXX_CHURN
BOUND_PROGRAMS=cxx_churn.cc.bin

workload() {
    "$CXX_CHURN"
}

bw_main "$@"

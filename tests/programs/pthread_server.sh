#!/bin/sh
# tests/programs/pthread_server.sh — a threaded TCP echo server under bulwark.
#
# Proves that pthread_server.c (reader/writer threads per connection, 4 client
# threads, ~8,000 messages of 1 byte to 128 KiB over 127.0.0.1, every buffer
# freed by a thread other than the one that allocated it, realloc-grown
# receive buffers) echoes every message intact and prints the same totals with
# bulwark preloaded as with glibc, and that its malloc really was bulwark's.
# The program exits non-zero by itself if any echo differs.

. "$(dirname "$0")/common.inc"

PTHREAD_SERVER=$(bw_program_bin pthread_server.c)
export PTHREAD_SERVER
BOUND_PROGRAMS=pthread_server.c.bin

workload() {
    "$PTHREAD_SERVER"
}

bw_main "$@"

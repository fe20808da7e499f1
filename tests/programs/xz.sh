#!/bin/sh
# tests/programs/xz.sh — xz (liblzma) under bulwark.
#
# Proves that multi-threaded xz compression (-T2 -6: two encoder threads, each
# with ~100 MB of match-finder tables) of a ~12 MB semi-compressible generated
# file gives byte-identical .xz output with bulwark preloaded and without, that
# threaded decompression round-trips to the input, and that xz's malloc really
# was bulwark's.

. "$(dirname "$0")/common.inc"

need_tool xz xz-utils
need_tool sha256sum coreutils
need_tool awk mawk
BOUND_PROGRAMS="xz liblzma.so.5"

# ~12 MB: lines of words drawn from a fixed LCG (compressible) mixed with one
# line in ten of random hex (not), so the encoder does real work.
prepare() {
    awk -v target=12582912 '
    function rnd(m) { seed = (seed * 69069 + 1) % 4294967296; return int(seed / 65536) % m }
    BEGIN {
        seed = 7
        for (i = 0; i < 2000; i++) {
            w = ""; n = 2 + rnd(10)
            for (j = 0; j < n; j++) w = w sprintf("%c", 97 + rnd(26))
            word[i] = w
        }
        total = 0
        while (total < target) {
            if (rnd(10) == 0) {
                line = ""
                for (j = 0; j < 4; j++) line = line sprintf("%04x", rnd(65536))
            } else {
                line = word[rnd(2000)]; n = 3 + rnd(12)
                for (j = 0; j < n; j++) line = line " " word[rnd(500)]
            }
            print line
            total += length(line) + 1
        }
    }' >input.txt
}

workload() {
    # 4 MiB blocks so both threads get blocks (the -6 default, 24 MiB, would
    # leave one thread idle on 12 MB); the output stays deterministic.
    xz -T2 -6 --block-size=4MiB -c "$WORK/input.txt" >input.txt.xz
    sha256sum input.txt.xz
    xz --list --verbose input.txt.xz
    original=$(sha256sum <"$WORK/input.txt")
    restored=$(xz -d -T2 -c input.txt.xz | sha256sum)
    if [ "$original" != "$restored" ]; then
        echo "round trip: MISMATCH ($restored, expected $original)"
        exit 1
    fi
    echo "round trip: identical ($restored)"
    rm -f input.txt.xz
}

bw_main "$@"

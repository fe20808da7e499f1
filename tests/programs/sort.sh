#!/bin/sh
# tests/programs/sort.sh — GNU sort under bulwark.
#
# Proves that `sort` (big realloc'd line buffers, a multi-threaded merge sort
# with --parallel=2, temporary-file merging when -S is smaller than the input)
# produces byte-identical output on a ~50 MB generated text with bulwark
# preloaded and without it, and that sort's malloc really was bulwark's.

. "$(dirname "$0")/common.inc"

need_tool sort coreutils
need_tool sha256sum coreutils
need_tool awk mawk
BOUND_PROGRAMS="sort"

# ~50 MB of lines "word word number [words...]" from a fixed LCG: 400 words,
# so many lines repeat (sort -u has work to do), and one line in 16 is long.
prepare() {
    awk -v target=52428800 '
    function rnd(m) { seed = (seed * 69069 + 1) % 4294967296; return int(seed / 65536) % m }
    BEGIN {
        seed = 20240531
        for (i = 0; i < 400; i++) {
            w = ""; n = 3 + rnd(8)
            for (j = 0; j < n; j++) w = w sprintf("%c", 97 + rnd(26))
            word[i] = w
        }
        total = 0
        while (total < target) {
            line = word[rnd(400)] " " word[rnd(400)] " " rnd(50)
            if (rnd(16) == 0) {
                k = 5 + rnd(40)
                for (j = 0; j < k; j++) line = line " " word[rnd(400)]
            }
            print line
            total += length(line) + 1
        }
    }' >input.txt
}

workload() {
    export LC_ALL=C
    sort "$WORK/input.txt" >sorted.txt
    # 64 MiB buffer on a 50 MB input: sort spills runs to temporary files in
    # the cwd and merges them, with two sorting threads.
    sort -u -S 64M --parallel=2 -T . "$WORK/input.txt" >unique.txt
    # A stable keyed sort: second field, then numeric third field.
    sort -s -k2,2 -k3,3n -S 32M -T . "$WORK/input.txt" >keyed.txt
    wc -l <sorted.txt
    wc -l <unique.txt
    sha256sum sorted.txt unique.txt keyed.txt
    rm -f sorted.txt unique.txt keyed.txt # 150 MB: free the disk early
}

bw_main "$@"

#!/bin/sh
# bench/daemons.sh — what bulwark costs real daemons, per profile.
#
# Runs the fixed load of each tests/daemons/*.sh (`sh X.sh --bench LIB`:
# the daemon started under LD_PRELOAD=LIB, its own benchmark client) with
# no preload ("none": glibc's malloc, jemalloc for Debian's redis-server)
# and under every profile's build/<p>/libbulwark.so,
# interleaved: repetition after repetition, each daemon under every
# allocator in turn (the order rotated each repetition), so a slow moment of
# the machine falls on all of them alike. Prints one line per run, then a
# table of medians: the daemon's throughput and the server's CPU time (user
# + system of every process of the daemon, for the same fixed work), each
# relative to glibc's malloc ("glibc" below). Not run by `make check`.
#
#   sh bench/daemons.sh                      # 3 repetitions, every daemon and profile
#   REPS=5 DAEMONS="redis nginx" PROFILES="default strict" sh bench/daemons.sh
#   FROM=/tmp/bulwark-daemons.XXXXXX sh bench/daemons.sh  # the table again
#
# The loads: redis-benchmark -n 50000 -c 20 -d 256 -r 50000 of SET, GET,
# LPUSH, LPOP, SADD, HSET (mean requests/s of the six); ab -k -n 50000 -c 8
# of a 600-byte file from nginx with two workers; pgbench -i -s 2 then
# -c 2 -t 1500 (tps); 20 sequential ssh logins running `true` (logins/s).
# The clients run without the preload. Needs `make PROFILE=<p>` for each
# profile and the packages of .ci/run.

set -eu
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
DAEMONS=${DAEMONS:-redis nginx postgres sshd}
# The fuzz profile's page mode is for fuzzing harnesses (fuzz/bench).
BULWARK_FUZZ_PAGES=0
export BULWARK_FUZZ_PAGES
PROFILES=${PROFILES:-fast default strict fuzz}
OUT=${OUT:-$(mktemp "${TMPDIR:-/tmp}/bulwark-daemons.XXXXXX")}
# FROM=FILE: no run, the table of the raw lines of an earlier run.
FROM=${FROM:-}

# "none": the daemon without a preload, on its own malloc: glibc's, or
# jemalloc for Debian's redis-server, which is linked with it. "glibc":
# bench/glibc_malloc.c preloaded, which puts glibc's malloc back in front
# of any other, so that every daemon has a glibc row; the table's ratios
# are relative to it. PEERS: other allocators preloaded the same way
# (Debian's packages, where installed).
PEERS=${PEERS:-jemalloc mimalloc}
peer_lib() {
    case $1 in
    glibc) echo "$(pwd -P)/build/bench/glibc_malloc.so" ;;
    jemalloc) echo /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ;;
    mimalloc) echo /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 ;;
    tcmalloc) echo /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ;;
    *) echo "$(pwd -P)/build/$1/libbulwark.so" ;;
    esac
}
# (With FROM= the allocators are those of the file, below: nothing is
# built or looked for.)
allocs="none glibc"
if [ -z "$FROM" ]; then
    mkdir -p build/bench
    cc -shared -fPIC -O2 -Wall -Wextra -o build/bench/glibc_malloc.so bench/glibc_malloc.c -ldl
    for peer in $PEERS; do
        if [ -f "$(peer_lib "$peer")" ]; then allocs="$allocs $peer"; else echo "skipped: $peer is not installed" >&2; fi
    done
    for p in $PROFILES; do
        lib=$(peer_lib "$p")
        if [ ! -f "$lib" ]; then
            echo "error: $lib is missing (make PROFILE=$p)" >&2
            exit 1
        fi
        allocs="$allocs $p"
    done
fi
n_allocs=$(echo "$allocs" | wc -w)

if [ -n "$FROM" ]; then
    OUT=$FROM
    REPS=$(awk '{ print $1 }' "$OUT" | sort -n | tail -n 1)
    # The allocators and daemons the file holds, in the usual order.
    allocs=$(awk -v order="none glibc $PEERS tcmalloc fast default strict fuzz" '
        /^#/ { next }
        { seen[$3] = 1; if (!($3 in first)) { first[$3] = NR; extra[++n] = $3 } }
        END { k = split(order, o, " ")
              for (i = 1; i <= k; i++) if (o[i] in seen) { printf "%s ", o[i]; delete seen[o[i]] }
              for (i = 1; i <= n; i++) if (extra[i] in seen) printf "%s ", extra[i] }' "$OUT")
    DAEMONS=$(awk '!/^#/ && !seen[$2]++ { printf "%s ", $2 }' "$OUT")
else
    : >"$OUT"
fi
rep=0
while [ -z "$FROM" ] && [ "$rep" -lt "$REPS" ]; do
    rep=$((rep + 1))
    for d in $DAEMONS; do
        # Rotate the order of the allocators by one each repetition.
        order=$(echo "$allocs" | tr ' ' '\n' | awk -v r="$rep" -v n="$n_allocs" \
            '{ a[NR - 1] = $0 } END { for (i = 0; i < n; i++) print a[(i + r) % n] }')
        for a in $order; do
            lib=
            [ "$a" = none ] || lib=$(peer_lib "$a")
            line=$(sh "tests/daemons/$d.sh" --bench "$lib" 2>&1 | tail -n 1)
            echo "$rep $d $a $line" | tee -a "$OUT"
        done
    done
done

echo
echo "medians of $REPS runs (raw lines in $OUT):"
echo
# Ratios are relative to glibc's malloc; a run recorded before the glibc
# preload existed (no "glibc" lines) is shown relative to no preload.
base=glibc
awk '$3 == "glibc" { found = 1 } END { exit !found }' "$OUT" || base=none
echo "| daemon | metric | preload | throughput | vs $base | server CPU s | vs $base |"
echo "|---|---|---|---:|---:|---:|---:|"
median_of() { # DAEMON ALLOC FIELD
    awk -v d="$1" -v a="$2" -v f="$3" '$2 == d && $3 == a { print $f }' "$OUT" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
for d in $DAEMONS; do
    base_thr=$(median_of "$d" "$base" 5)
    base_cpu=$(median_of "$d" "$base" 7)
    for a in $allocs; do
        # line: REP DAEMON ALLOC METRIC VALUE server-cpu SECONDS [...]
        thr=$(median_of "$d" "$a" 5)
        cpu=$(median_of "$d" "$a" 7)
        metric=$(awk -v d="$d" '$2 == d { print $4; exit }' "$OUT")
        awk -v d="$d" -v m="$metric" -v a="$a" -v t="$thr" -v c="$cpu" -v bt="$base_thr" -v bc="$base_cpu" \
            'BEGIN { printf "| %s | %s | %s | %.2f | %.2f× | %.2f | %.2f× |\n", d, m, a, t, (bt > 0 ? t / bt : 0), c, (bc > 0 ? c / bc : 0) }'
    done
done

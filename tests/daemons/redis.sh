#!/bin/sh
# tests/daemons/redis.sh — redis-server under bulwark.
#
# Proves that redis (Debian's 7.0, linked against libjemalloc) runs on
# bulwark when bulwark is preloaded: the loader binds redis' malloc, free,
# calloc, realloc and malloc_usable_size to libbulwark (LD_DEBUG=bindings)
# and only what bulwark does not export (mallctl, malloc_stats_print,
# nallocx) to libjemalloc; storing megabytes leaves jemalloc's own count
# of allocated bytes (the "Allocated:" line of MEMORY MALLOC-STATS, which
# jemalloc prints itself; INFO's allocator_allocated is the same counter)
# where it was, while redis' used_memory (its sum of malloc_usable_size,
# bulwark's) grows by them; without the preload jemalloc's count grows by
# them too. So redis then reports the statistics of an allocator it no
# longer uses: mem_allocator still says jemalloc, MEMORY MALLOC-STATS
# prints jemalloc's (nearly empty) report. Then: 300 keys of 10 B to 100 KiB
# loaded by `redis-cli --pipe` are read back byte for byte, grown by APPEND,
# a third deleted, read back again; a BGSAVE (fork) succeeds; redis-benchmark
# runs five commands with no error. No `bulwark:` line in redis' output.

. "$(dirname "$0")/daemon.inc"

need_tool redis-server redis-server
need_tool redis-cli redis-tools
need_tool redis-benchmark redis-tools
need_tool python3 python3

KEYS=300
SEED=14

# redis_start [ENV=VALUE...]: redis-server on a free port, no persistence
# but an explicit BGSAVE into $WORK, log on stderr into $WORK/redis.log.
redis_start() {
    PORT=$(dm_port)
    dm_start "$WORK/redis.log" env "$@" redis-server --port "$PORT" --bind 127.0.0.1 \
        --dir "$WORK" --save '' --appendonly no --logfile '' --daemonize no
    RCLI="timeout 20 redis-cli -p $PORT"
    dm_wait_for "redis on port $PORT" sh -c "$RCLI ping | grep -q PONG"
}

# je_allocated: jemalloc's own count of bytes allocated, as jemalloc prints
# it in MEMORY MALLOC-STATS (read when asked; INFO's allocator_allocated is
# the same counter but refreshed by redis' cron, every 100 ms).
je_allocated() {
    $RCLI memory malloc-stats | sed -n 's/^Allocated: \([0-9]*\),.*/\1/p'
}

# info_field SECTION FIELD: one field of INFO SECTION.
info_field() {
    $RCLI info "$1" | tr -d '\r' | sed -n "s/^$2://p"
}

dm_test() {
    mkdir "$WORK/ld-debug"
    redis_start LD_DEBUG=bindings LD_DEBUG_OUTPUT="$WORK/ld-debug/ld"
    echo "== redis-server pid $DM_PID on port $PORT"
    dm_check_tree "$DM_PID" 1

    # Preloaded over a program linked with jemalloc: which library answers.
    bw_check_bound "$WORK/ld-debug" redis-server || dm_fail "redis-server's bindings (above)"
    for sym in malloc free calloc realloc malloc_usable_size; do
        if ! grep -hE "binding file ([^ ]*/)?redis-server \[" "$WORK"/ld-debug/ld.* |
            grep -F "/$(basename "$BULWARK_LIB") [" | grep -q "symbol \`$sym'"; then
            dm_fail "redis-server's $sym is not bound to libbulwark"
        fi
    done
    if grep -hE "binding file ([^ ]*/)?redis-server \[" "$WORK"/ld-debug/ld.* |
        grep -F 'libjemalloc.so' | grep -q "symbol \`mallctl'"; then
        echo "ok: redis-server's mallctl is bound to libjemalloc (bulwark has none)"
    else
        dm_fail "redis-server's mallctl is not bound to libjemalloc"
    fi
    allocator=$(info_field memory mem_allocator)
    used0=$(info_field memory used_memory)
    je0=$(je_allocated)

    # The round trip; loading through redis' own client.
    dm_step "loading keys"
    python3 "$DAEMONS_DIR/redis_keys.py" gen "$KEYS" "$SEED" >"$WORK/keys.resp"
    $RCLI --pipe <"$WORK/keys.resp" >"$WORK/pipe.out" 2>&1 || true
    if grep -q "errors: 0, replies: $KEYS" "$WORK/pipe.out"; then
        echo "ok: redis-cli --pipe: $(tail -n 1 "$WORK/pipe.out")"
    else
        dm_fail "redis-cli --pipe: $(cat "$WORK/pipe.out")"
    fi
    used1=$(info_field memory used_memory)
    je1=$(je_allocated)
    echo "   mem_allocator=$allocator; used_memory $used0 -> $used1;" \
        "jemalloc's Allocated (MEMORY MALLOC-STATS) $je0 -> $je1"
    case "$allocator" in
    jemalloc*) ;;
    *) echo "note: this redis reports mem_allocator=$allocator, not jemalloc" ;;
    esac
    # 300 keys of 10 B-100 KiB hold 3.1 MB: redis counts them (through
    # bulwark's malloc_usable_size), jemalloc's counter must not move by as
    # much as a tenth of that (it does by all of it without the preload).
    if [ $((used1 - used0)) -lt 3000000 ]; then
        dm_fail "used_memory grew by $((used1 - used0)) bytes only for 3.1 MB of values"
    fi
    if [ "$allocator" != "${allocator#jemalloc}" ]; then
        if [ -z "$je0" ] || [ -z "$je1" ]; then
            dm_fail "no 'Allocated:' line in MEMORY MALLOC-STATS of a jemalloc redis"
        elif [ $((je1 - je0)) -gt 300000 ]; then
            dm_fail "jemalloc's Allocated grew by $((je1 - je0)): jemalloc serves redis"
        else
            echo "ok: jemalloc's count grew by $((je1 - je0)) bytes: it does not serve redis' malloc"
        fi
    fi
    dm_step "reading keys back"
    timeout 30 python3 "$DAEMONS_DIR/redis_keys.py" check "$PORT" "$KEYS" "$SEED" ||
        dm_fail "the round trip of $KEYS keys"

    # A fork: BGSAVE writes the data set from a child process.
    dm_step "BGSAVE"
    $RCLI bgsave >/dev/null
    dm_wait_for "the BGSAVE to end" sh -c \
        "$RCLI info persistence | grep -q '^rdb_bgsave_in_progress:0'"
    status=$(info_field persistence rdb_last_bgsave_status)
    if [ "$status" = ok ] && [ -s "$WORK/dump.rdb" ]; then
        echo "ok: BGSAVE (a forked child) wrote $(wc -c <"$WORK/dump.rdb") bytes"
    else
        dm_fail "BGSAVE: rdb_last_bgsave_status=$status"
    fi

    # redis' own benchmark: every request must be answered.
    dm_step "redis-benchmark"
    timeout 60 redis-benchmark -p "$PORT" -q -n 5000 -c 20 -d 64 -r 5000 \
        -t set,get,incr,lpush,lpop >"$WORK/bench.out" 2>&1 || dm_fail "redis-benchmark failed"
    tr '\r' '\n' <"$WORK/bench.out" | grep 'requests per second' | sort -u >"$WORK/bench.rps"
    sed 's/^/   /' "$WORK/bench.rps"
    if [ "$(wc -l <"$WORK/bench.rps")" -ne 5 ]; then
        dm_fail "redis-benchmark did not report all 5 tests: $(cat "$WORK/bench.out")"
    fi
    dm_check_tree "$DM_PID" 1
    $RCLI ping | grep -q PONG || dm_fail "no PONG after the benchmark"

    dm_step "shutdown"
    dm_stop "$DM_PID" TERM
    grep -q 'ready to exit' "$WORK/redis.log" || dm_fail "redis did not shut down cleanly"
    dm_check_logs "$WORK/redis.log" "$WORK/pipe.out" "$WORK/bench.out"
}

# bench/daemons.sh: a fixed load of redis-benchmark; the mean of its
# requests/s and the server's CPU time.
dm_bench() {
    redis_start
    timeout 120 redis-benchmark -p "$PORT" -q -n 50000 -c 20 -d 256 -r 50000 \
        -t set,get,lpush,lpop,sadd,hset >"$WORK/bench.out" 2>&1
    cpu=$(dm_cpu "$DM_PID")
    rps=$(tr '\r' '\n' <"$WORK/bench.out" | grep 'requests per second' | sort -u |
        awk '{ s += $2; n++ } END { printf "%.0f", s / n }')
    dm_stop "$DM_PID" TERM
    echo "requests/s $rps server-cpu $cpu"
}

dm_main "$@"

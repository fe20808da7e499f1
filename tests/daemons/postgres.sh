#!/bin/sh
# tests/daemons/postgres.sh — PostgreSQL under bulwark.
#
# Proves that PostgreSQL (Debian's 15) creates a cluster and serves a
# benchmark with bulwark preloaded: initdb (which runs postgres in bootstrap
# and single-user mode) in a temporary directory, then the postmaster on a
# high port of 127.0.0.1 and a unix socket in that directory; the
# postmaster, its auxiliary processes (checkpointer, background writer, WAL
# writer, autovacuum launcher, ...) and a client's backend all map
# libbulwark; `pgbench -i -s 1` loads 100,000 accounts, a parallel scan
# (with parallel workers) counts them, a 2-client pgbench run of
# 300 transactions each must process all 600 with 0 failed, and the sums
# pgbench's transactions keep equal must agree; the postmaster stops on
# SIGINT (fast shutdown) and nothing wrote a `bulwark:` line.
#
# PostgreSQL refuses to run as root: as root the cluster belongs to the
# `postgres` user (created by Debian's package) and every server process
# is started through setpriv, which execs (so the pid is the postmaster's).

. "$(dirname "$0")/daemon.inc"

# shellcheck disable=SC2012 # names of Debian's version directories
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
need_tool "${PG_BIN:-/nonexistent}/postgres" postgresql
need_tool "$PG_BIN/initdb" postgresql
need_tool "$PG_BIN/pgbench" postgresql
need_tool "$PG_BIN/psql" postgresql
need_tool setpriv util-linux

# The prefix that runs a command as the cluster's owner (postgres when root).
AS_PG=
if [ "$(id -u)" -eq 0 ]; then
    AS_PG="setpriv --reuid=postgres --regid=postgres --init-groups"
fi

# pg_start: initdb under the preload, then the postmaster; sets PORT, DM_PID.
pg_start() {
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        need_tool no-postgres-user postgresql
    fi
    PORT=$(dm_port)
    PGDIR=$WORK/pg
    mkdir "$PGDIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$PGDIR"
    fi
    # -N: no fsync of the new cluster (a throw-away one).
    preload=
    [ -n "$DM_PRELOAD" ] && preload="LD_PRELOAD=$DM_PRELOAD"
    # shellcheck disable=SC2086 # empty or one word, split on purpose
    $AS_PG env $preload timeout 60 "$PG_BIN/initdb" -D "$PGDIR/data" -U postgres \
        --auth=trust -N -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 || {
        cat "$WORK/initdb.log" >&2
        dm_fail "initdb failed"
        return 1
    }
    # shellcheck disable=SC2086 # a prefix of words, split on purpose
    dm_start "$WORK/postgres.log" $AS_PG "$PG_BIN/postgres" -D "$PGDIR/data" -k "$PGDIR" -p "$PORT" \
        -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c shared_buffers=16MB -c logging_collector=off
    dm_step "initdb done; starting the postmaster"
    PSQL="timeout 20 $PG_BIN/psql -X -q -h $PGDIR -p $PORT -U postgres -At"
    dm_wait_for "postgres on $PGDIR, port $PORT" sh -c "$PSQL -c 'select 1' postgres"
    $PSQL -c 'create database bench' postgres
}

dm_test() {
    pg_start
    echo "== postmaster pid $DM_PID on port $PORT, socket in $PGDIR"
    dm_check_logs "$WORK/initdb.log"

    dm_step "pgbench -i -s 1"
    timeout 60 "$PG_BIN/pgbench" -i -s 1 -q -h "$PGDIR" -p "$PORT" -U postgres bench \
        >"$WORK/pgbench-init.log" 2>&1 || dm_fail "pgbench -i failed: $(tail -n 5 "$WORK/pgbench-init.log")"
    # A session held open through a fifo: its backend is checked with the
    # rest of the server while it is connected (pgbench's own backends come
    # and go too fast to be caught without a race). It runs a parallel scan
    # first, so parallel workers (dynamic shared memory) are started too.
    dm_step "a held session and a parallel scan"
    mkfifo "$WORK/psql.in"
    $PSQL bench <"$WORK/psql.in" >"$WORK/psql.out" 2>&1 &
    psql_pid=$!
    DM_PIDS="$DM_PIDS $psql_pid"
    exec 3>"$WORK/psql.in"
    cat >&3 <<EOF
set max_parallel_workers_per_gather = 2;
set parallel_setup_cost = 0;
set parallel_tuple_cost = 0;
set min_parallel_table_scan_size = 0;
select 'count', count(*) from pgbench_accounts;
explain (analyze, costs off, timing off, summary off) select count(*) from pgbench_accounts;
select 'connected';
EOF
    dm_wait_for "the psql session" grep -q '^connected' "$WORK/psql.out"
    grep -q '^count|100000$' "$WORK/psql.out" || dm_fail "count(*) of accounts: $(cat "$WORK/psql.out")"
    if grep -q 'Workers Launched: [1-9]' "$WORK/psql.out"; then
        echo "ok: the parallel scan counted 100000 accounts; $(grep -o 'Workers Launched: [0-9]*' "$WORK/psql.out")"
    else
        dm_fail "no parallel worker was launched: $(cat "$WORK/psql.out")"
    fi
    # postmaster + checkpointer, background writer, WAL writer, autovacuum
    # launcher, logical replication launcher + the session's backend
    dm_check_tree "$DM_PID" 7
    echo '\q' >&3
    exec 3>&-
    wait "$psql_pid" || dm_fail "psql exited with an error: $(cat "$WORK/psql.out")"

    dm_step "pgbench -c 2 -t 300"
    timeout 60 "$PG_BIN/pgbench" -c 2 -t 300 -h "$PGDIR" -p "$PORT" -U postgres bench \
        >"$WORK/pgbench.log" 2>&1 || dm_fail "pgbench exited with an error"
    sed -n 's/^/   /; /processed\|failed\|^   tps/p' "$WORK/pgbench.log"
    grep -q 'number of transactions actually processed: 600/600' "$WORK/pgbench.log" ||
        dm_fail "pgbench did not process its 600 transactions: $(tail -n 12 "$WORK/pgbench.log")"
    grep -q 'number of failed transactions: 0 ' "$WORK/pgbench.log" ||
        dm_fail "failed transactions: $(grep failed "$WORK/pgbench.log")"

    # TPC-B keeps every balance change in three tables and the history.
    sums=$($PSQL -c "select (select sum(abalance) from pgbench_accounts),
        (select sum(bbalance) from pgbench_branches), (select sum(tbalance) from pgbench_tellers),
        (select sum(delta) from pgbench_history), (select count(*) from pgbench_history)" bench)
    echo "   sums of balances (accounts|branches|tellers|history|rows): $sums"
    echo "$sums" | awk -F'|' '$1 == $2 && $2 == $3 && $3 == $4 && $5 == 600 { ok = 1 } END { exit !ok }' ||
        dm_fail "the balances do not agree: $sums"

    dm_step "fast shutdown"
    dm_stop "$DM_PID" INT
    grep -q 'database system is shut down' "$WORK/postgres.log" || dm_fail "no clean shutdown"
    dm_check_logs "$WORK/postgres.log" "$WORK/pgbench-init.log" "$WORK/pgbench.log"
}

# bench/daemons.sh: pgbench -i -s 2, then 2 clients of 1,500 transactions
# each; tps and the server's CPU time for that fixed work.
dm_bench() {
    pg_start
    timeout 60 "$PG_BIN/pgbench" -i -s 2 -q -h "$PGDIR" -p "$PORT" -U postgres bench >/dev/null 2>&1
    timeout 60 "$PG_BIN/pgbench" -c 2 -t 1500 -h "$PGDIR" -p "$PORT" -U postgres bench >"$WORK/pgbench.log" 2>&1
    cpu=$(dm_cpu "$DM_PID")
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.log")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench.log")
    dm_stop "$DM_PID" INT
    echo "tps $tps server-cpu $cpu failed $failed"
}

dm_main "$@"

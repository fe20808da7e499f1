#!/bin/sh
# tests/daemons/nginx.sh — nginx under bulwark.
#
# Proves that nginx (a master and two worker processes; as root the workers
# drop to nobody) serves static files with bulwark preloaded: the master and
# every worker map libbulwark; curl gets a small file and a 1 MiB file back
# byte for byte; ab (apache2-utils) with keep-alive sends 3,000 requests for
# the small file and 300 for the large one with no failed request and no
# non-2xx answer; nginx stops on SIGQUIT (graceful) and writes no
# `bulwark:` line.

. "$(dirname "$0")/daemon.inc"

NGINX=/usr/sbin/nginx
if [ ! -x "$NGINX" ]; then
    NGINX=$(command -v nginx || echo nginx)
fi
need_tool "$NGINX" nginx-light
need_tool ab apache2-utils
need_tool curl curl

# nginx_start: a configuration of its own in $WORK (prefix, logs, pid, temp
# paths), two workers, the files small.html (600 B) and big.bin (1 MiB of
# fixed pseudo-random bytes).
nginx_start() {
    PORT=$(dm_port)
    mkdir -p "$WORK/root" "$WORK/logs"
    awk 'BEGIN { for (i = 0; i < 12; i++) printf "<p>bulwark under nginx, line %02d of 12 .......</p>\n", i }' \
        >"$WORK/root/small.html"
    awk 'BEGIN { s = 14; for (i = 0; i < 65536; i++) { s = (s * 69069 + 1) % 4294967296; printf "%015d\n", s } }' \
        >"$WORK/root/big.bin"
    chmod 644 "$WORK/root/small.html" "$WORK/root/big.bin"
    chmod 755 "$WORK/root"
    user_line=
    if [ "$(id -u)" -eq 0 ]; then
        user_line="user nobody nogroup;"
    fi
    cat >"$WORK/nginx.conf" <<EOF
$user_line
worker_processes 2;
daemon off;
master_process on;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log info;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $WORK/client_body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    keepalive_requests 100000;
    # nginx reads the files into buffers of its own (from malloc) instead of
    # letting the kernel copy them.
    sendfile off;
    server {
        listen 127.0.0.1:$PORT;
        root $WORK/root;
    }
}
EOF
    dm_start "$WORK/logs/stderr.log" "$NGINX" -p "$WORK" -e "$WORK/logs/error.log" -c "$WORK/nginx.conf"
    dm_wait_for "nginx on port $PORT" dm_listening "$PORT"
    dm_wait_for "nginx's two workers" nginx_workers_up
}

nginx_workers_up() {
    [ "$(dm_tree "$DM_PID" | wc -l)" -ge 3 ]
}

# ab_run N URL: ab with keep-alive, 4 concurrent; fails on any failed or
# non-2xx request.
ab_run() {
    out=$WORK/ab.$(basename "$2").out
    timeout 60 ab -k -q -n "$1" -c 4 "$2" >"$out" 2>&1 || dm_fail "ab $2 exited with an error"
    complete=$(sed -n 's/^Complete requests: *//p' "$out")
    failed=$(sed -n 's/^Failed requests: *//p' "$out")
    non2xx=$(sed -n 's/^Non-2xx responses: *//p' "$out")
    rps=$(sed -n 's/^Requests per second: *\([0-9.]*\).*/\1/p' "$out")
    if [ "$complete" = "$1" ] && [ "$failed" = 0 ] && [ -z "$non2xx" ]; then
        echo "ok: ab -k -n $1 $(basename "$2"): $complete complete, 0 failed, $rps requests/s"
    else
        dm_fail "ab -k -n $1 $2: complete=$complete failed=$failed non-2xx=$non2xx"
        cat "$out" >&2
    fi
}

dm_test() {
    nginx_start
    echo "== nginx master pid $DM_PID on port $PORT"
    dm_check_tree "$DM_PID" 3

    dm_step "curl"
    for f in small.html big.bin; do
        timeout 20 curl -sS -o "$WORK/got.$f" "http://127.0.0.1:$PORT/$f" || dm_fail "curl $f"
        if cmp -s "$WORK/root/$f" "$WORK/got.$f"; then
            echo "ok: curl got $f back byte for byte ($(wc -c <"$WORK/got.$f") bytes)"
        else
            dm_fail "curl got a different $f"
        fi
    done
    dm_step "ab"
    ab_run 3000 "http://127.0.0.1:$PORT/small.html"
    ab_run 300 "http://127.0.0.1:$PORT/big.bin"
    status=$(timeout 20 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/missing") || true
    [ "$status" = 404 ] || dm_fail "a missing file gave HTTP $status, not 404"

    # The same processes still serve, each still on bulwark.
    dm_check_tree "$DM_PID" 3
    dm_step "graceful shutdown"
    dm_stop "$DM_PID" QUIT
    dm_check_logs "$WORK/logs/error.log" "$WORK/logs/stderr.log"
    if grep -E '\[(alert|crit|emerg)\]' "$WORK/logs/error.log" >&2; then
        dm_fail "nginx logged an alert (lines above)"
    fi
}

# bench/daemons.sh: ab -k on the small file; requests/s and server CPU.
dm_bench() {
    nginx_start
    timeout 120 ab -k -q -n 50000 -c 8 "http://127.0.0.1:$PORT/small.html" >"$WORK/ab.out" 2>&1
    cpu=$(dm_cpu "$DM_PID")
    rps=$(sed -n 's/^Requests per second: *\([0-9.]*\).*/\1/p' "$WORK/ab.out")
    failed=$(sed -n 's/^Failed requests: *//p' "$WORK/ab.out")
    dm_stop "$DM_PID" QUIT
    echo "requests/s $rps server-cpu $cpu failed $failed"
}

dm_main "$@"

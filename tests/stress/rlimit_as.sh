#!/bin/sh
# tests/stress/rlimit_as.sh — bulwark under RLIMIT_AS (`ulimit -v`).
#
# bulwark's regions are about 67 GiB of PROT_NONE reservations, which count
# against RLIMIT_AS: under any smaller limit the first malloc used to return
# NULL. With a finite limit the space is lazy instead (src/os.c): only what
# is used is mapped. Claims, under `ulimit -v 600000` (586 MiB):
#   1. 64-byte blocks: bulwark hands out at least 80% as many as glibc
#      does under the same limit (tests/stress/rlimit_as.c counts them until
#      malloc returns NULL), and the last malloc fails with ENOMEM;
#   2. the same for 1 MiB blocks;
#   3. ls, sort (on a generated file) and python3 run with the preload and
#      print what they print without it;
#   4. a segment whose addresses the program mapped first is skipped: no
#      block lies in it, the program's page keeps its contents;
#   5. a limit the program lowers after start-up makes malloc fail with
#      ENOMEM, whether bulwark started in lazy or reserved space.
# And under the smallest limit the program starts with at all (found by
# bisection, 256 KiB steps):
#   6. a malloc that fails makes at most 2 address-space system calls
#      (mmap, munmap, mprotect, counted by the preloaded
#      shim_count_maps.so): a failed start-up is not retried, which used to
#      cost 11 mmap calls per malloc. In every profile but fast, start-up
#      itself fails there (lazy space still maps the zero-size region's first
#      16 MiB): then a malloc makes no call at all and no mapping of
#      bulwark's is left behind;
#   7. strict (a metadata protection key): after 22 failing mallocs,
#      pkey_alloc still gets a key, so the failed start-up gave its key back
#      (it used to take one of the 15 per attempt). Skipped without PKU;
#   8. one line on stderr, and only one however many mallocs fail,
#      says that bulwark cannot start (or cannot map its first segment)
#      and names the address-space limit with its value.
set -u
: "${BULWARK_LIB:?run through make check (tests/run.sh)}" "${BULWARK_BUILD:?}"
profile=${BULWARK_PROFILE:-default}
program=$BULWARK_BUILD/tests/stress/rlimit_as
shim=$BULWARK_BUILD/tests/stress/shim_count_maps.so
for f in "$program" "$shim"; do
    [ -f "$f" ] || { echo "missing $f (make tests builds it)"; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
limit=600000
failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}

# limited KB PRELOAD COMMAND...: COMMAND under `ulimit -v KB`, preloading
# PRELOAD (nothing when empty).
limited() {
    kb=$1
    preload=$2
    shift 2
    (
        ulimit -v "$kb" || exit 99
        if [ -n "$preload" ]; then
            LD_PRELOAD=$preload exec "$@"
        else
            exec "$@"
        fi
    )
}

# count MODE PRELOAD: the block count rlimit_as prints for MODE.
count() {
    out=$(limited "$limit" "$2" "$program" "$1")
    label=glibc
    [ -n "$2" ] && label=bulwark
    echo "   $1 ($label): $out" >&2
    case "$out" in
    *" errno 12") echo "$out" | awk '{ print $2 }' ;;
    *) echo "-1" ;;
    esac
}

for mode in small large; do
    plain=$(count "$mode" "")
    ours=$(count "$mode" "$BULWARK_LIB")
    if [ "$plain" -le 0 ]; then
        fail "$mode: glibc got $plain blocks"
    elif [ "$ours" -lt 0 ]; then
        fail "$mode: the last malloc did not fail with ENOMEM"
    elif [ $((ours * 100)) -lt $((plain * 80)) ]; then
        fail "$mode: bulwark $ours blocks, under 80% of glibc's $plain"
    else
        echo "ok $mode: bulwark $ours blocks, glibc $plain ($((ours * 100 / plain))%)"
    fi
done

# 4. (lazy space) A segment whose addresses the program took is skipped.
if out=$(limited "$limit" "$BULWARK_LIB" "$program" skip 2>&1); then
    echo "ok $out"
else
    fail "$out"
fi

# 5. The program lowers the limit after bulwark started: malloc fails
# with ENOMEM, nothing worse, in lazy (started under a limit) and reserved
# (started without one) space.
for start in "$limit" unlimited; do
    small=small
    [ "$start" = unlimited ] && small= # reserved: small blocks fill 64 GiB first
    if out=$(limited "$start" "$BULWARK_LIB" "$program" lower $small 2>&1); then
        echo "ok lowered after starting under $start:" $out
    else
        fail "lowered after starting under $start: $out"
    fi
done

# Real programs: the same output with and without the preload.
seq 1 200000 | awk 'BEGIN { srand(12) } { print int(rand() * 1000000) }' >"$work/numbers"
run_both() {
    name=$1
    shift
    limited "$limit" "" "$@" >"$work/plain" 2>&1
    plain_status=$?
    limited "$limit" "$BULWARK_LIB" "$@" >"$work/ours" 2>&1
    ours_status=$?
    if [ "$ours_status" -ne "$plain_status" ] || ! cmp -s "$work/plain" "$work/ours"; then
        fail "$name: exit $ours_status (glibc $plain_status), output differs:"
        diff "$work/plain" "$work/ours" | head -n 10
    elif grep -q "bulwark:" "$work/ours"; then
        fail "$name: bulwark reported an error"
    else
        echo "ok $name: exit $ours_status, $(wc -l <"$work/ours") lines as with glibc"
    fi
}
run_both ls ls -la /usr/lib
run_both sort sort -n "$work/numbers"
if command -v python3 >/dev/null; then
    run_both python3 python3 -c '
d = {i: str(i) * 3 for i in range(200000)}
chunks = [bytes(1000) * (i % 64 + 1) for i in range(2000)]
print(sum(len(v) for v in d.values()), sum(map(len, chunks)), sorted(d)[-1])'
else
    echo "python3 not installed: its run is skipped"
fi

# The smallest limit (KiB) the program starts under with the preload.
low=0
high=65536
if ! limited "$high" "$shim $BULWARK_LIB" "$program" start; then
    fail "the program does not start under ulimit -v $high"
    exit 1
fi
while [ $((high - low)) -gt 256 ]; do
    mid=$(((low + high) / 2))
    if limited "$mid" "$shim $BULWARK_LIB" "$program" start 2>/dev/null; then
        high=$mid
    else
        low=$mid
    fi
done
out=$(limited "$high" "$shim $BULWARK_LIB" "$program" retry 2>"$work/retry.err")
echo "under ulimit -v $high:"
echo "$out" | sed 's/^/   /'
# 8. bulwark says why it cannot work, once, naming the limit.
reports=$(grep -c '^bulwark:' "$work/retry.err")
wanted="^bulwark: cannot (start|map its first segment): address-space limit \(RLIMIT_AS, ulimit -v\) of $((high * 1024)) bytes is too small for its regions; malloc returns NULL\$"
if [ "$reports" -ne 1 ] || ! grep -Eq "$wanted" "$work/retry.err"; then
    fail "not one line naming RLIMIT_AS ($reports bulwark: lines):"
    sed 's/^/   /' "$work/retry.err"
else
    echo "ok one line: $(grep '^bulwark:' "$work/retry.err")"
fi
if [ "$profile" != fast ] && ! grep -q '^bulwark: cannot start: ' "$work/retry.err"; then
    fail "start-up failed, but the line does not say \"cannot start\""
fi
field() { echo "$out" | awk -v key="$1" -v n="$2" '$1 == key { print $n }'; }
second_calls=$(field second 6)
if [ "$(field second 2)" != null ] || [ "$(field second 4)" != 12 ]; then
    fail "the second malloc did not fail with ENOMEM"
fi
if [ -z "$second_calls" ] || [ "$second_calls" -gt 2 ]; then
    fail "a failing malloc made $second_calls address-space calls (at most 2)"
fi
if [ "$profile" != fast ]; then
    if [ "$second_calls" != 0 ] || [ "$(field first 6)" != 0 ]; then
        fail "start-up did not fail, or a malloc tried it again"
    fi
    if [ "$(field mappings 2)" != 0 ]; then
        fail "the failed start-up left $(field mappings 2) mappings behind"
    fi
fi
if [ "$profile" = strict ]; then
    plain_key=$(limited "$high" "" "$program" retry 2>/dev/null | awk '$1 == "pkey" { print $2 }')
    if [ "$plain_key" != ok ]; then
        echo "no protection keys here (pkey_alloc fails without bulwark): the key check is skipped"
    elif [ "$(field pkey 2)" != ok ]; then
        fail "pkey_alloc fails after the failed start-up: the metadata key leaked"
    else
        echo "ok pkey: pkey_alloc still gets a key after 22 failing mallocs"
    fi
fi
[ "$failed" -eq 0 ] && echo "all claims hold under RLIMIT_AS"
exit "$failed"

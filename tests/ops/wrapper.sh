#!/bin/sh
# tests/ops/wrapper.sh — the `bulwark` preload wrapper (tools/bulwark.in).
# Claims, for the profile under test:
#   1. build/<profile>/bulwark COMMAND runs COMMAND with the profile's
#      library mapped, first in LD_PRELOAD, other preloads kept after it and
#      other bulwark libraries dropped;
#   2. --stats=json: the command's statistics at exit on stderr, one JSON
#      object of the profile; --stats: the text report;
#   3. --check names the profile, guard pages, protection keys, NUMA nodes
#      and address space the library finds, and says whether a bulwark is
#      loaded in the wrapper's own process (not, then under LD_PRELOAD);
#   4. an unknown profile, an unknown option or no command: exit 2 and one
#      "bulwark:" line or the usage;
#   5. make install PREFIX=DIR: profiles side by side under
#      lib/bulwark/<profile>/, the default one also as lib/libbulwark.so;
#      the installed wrapper runs both ways (--profile NAME and default).
# Takes about 3 seconds.
set -u
: "${BULWARK_LIB:?run through make check (tests/run.sh)}" "${BULWARK_BUILD:?}"
profile=${BULWARK_PROFILE:-default}
wrapper=$BULWARK_BUILD/bulwark
probe=$BULWARK_BUILD/tests/ops/stats_probe.bin
shim=$BULWARK_BUILD/tests/stress/shim_count_maps.so
for f in "$wrapper" "$probe" "$shim"; do
    [ -f "$f" ] || { echo "missing $f (make tests builds it)"; exit 1; }
done
repo=$(cd "$(dirname "$0")/../.." && pwd -P)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}
ok() { echo "ok   $*"; }

# 1.
maps=$("$wrapper" cat /proc/self/maps)
if printf '%s\n' "$maps" | grep -q " $BULWARK_LIB\$"; then ok "the command maps $BULWARK_LIB"; else
    fail "the command does not map $BULWARK_LIB"; fi
mkdir "$work/old" && cp "$BULWARK_LIB" "$work/old/libbulwark.so"
got=$(LD_PRELOAD="$shim $work/old/libbulwark.so" "$wrapper" printenv LD_PRELOAD)
if [ "$got" = "$BULWARK_LIB $shim" ]; then ok "LD_PRELOAD=$got"; else
    fail "LD_PRELOAD is '$got', not '$BULWARK_LIB $shim'"; fi

# 2.
mkdir "$work/run"
"$wrapper" --stats=json "$probe" 10 10 "$work/run" >"$work/pid" 2>"$work/stderr"
if python3 -c '
import json, sys
s = json.loads(open(sys.argv[1]).read())
sys.exit(0 if s["profile"] == sys.argv[2] and s["pid"] == int(open(sys.argv[3]).read()) else 1)' \
    "$work/stderr" "$profile" "$work/pid"; then ok "--stats=json: the probe's JSON on stderr"; else
    fail "--stats=json: $(head -c 200 "$work/stderr")"; fi
"$wrapper" --stats "$probe" 10 10 "$work/run" 2>"$work/stderr" >/dev/null
if head -n 1 "$work/stderr" | grep -qx "bulwark $profile statistics"; then ok "--stats: text"; else
    fail "--stats: $(head -n 2 "$work/stderr")"; fi

# 3.
check_output() { # $1: the output of --check, $2: expected first line
    case $1 in
    "$2"*) ;;
    *) fail "--check says: $(printf '%s\n' "$1" | head -n 1)" ;;
    esac
    for label in "profile: *$profile" "guard pages: *(MADV_GUARD_INSTALL|mprotect)" \
        "protection keys: " "NUMA nodes: *[1-9]" "address space: *(reserved|lazy)"; do
        printf '%s\n' "$1" | grep -Eq "^  $label" || fail "--check lacks '$label'"
    done
}
out=$(env -u LD_PRELOAD "$wrapper" --check) || fail "--check failed"
check_output "$out" "bulwark: not loaded in this process"
out=$(LD_PRELOAD=$BULWARK_LIB sh "$wrapper" --check) || fail "--check under the preload failed"
check_output "$out" "bulwark: loaded in this process (pid "
printf '%s\n' "$out"
[ "$failed" -eq 0 ] && ok "--check"

# 4.
for args in "--profile no-such-profile true" "--frobnicate true" ""; do
    # shellcheck disable=SC2086 # the words are the arguments
    "$wrapper" $args >"$work/out" 2>&1
    status=$?
    if [ "$status" -ne 2 ] || ! grep -Eq "^(bulwark: |usage: )" "$work/out"; then
        fail "bulwark $args: exit $status, $(head -n 1 "$work/out")"
    fi
done
[ "$failed" -eq 0 ] && ok "bad arguments: exit 2 with a message"

# 5. Two installs of this profile into one prefix: first as a non-default
# profile (only lib/bulwark/<profile>/), then as the default.
prefix=$work/prefix
build_root=$(dirname "$BULWARK_BUILD")
cc_arg=
case $BULWARK_BUILD in *-clang) cc_arg=CC=clang ;; esac
install_as() { # $1: DEFAULT_PROFILE
    make --no-print-directory -s -C "$repo" install PREFIX="$prefix" PROFILE="$profile" \
        BUILDROOT="$build_root" DEFAULT_PROFILE="$1" $cc_arg >"$work/make.log" 2>&1 ||
        { fail "make install failed:"; cat "$work/make.log"; exit 1; }
}
install_as "not-$profile"
[ -f "$prefix/lib/bulwark/$profile/libbulwark.so" ] || fail "no lib/bulwark/$profile/libbulwark.so"
[ -e "$prefix/lib/libbulwark.so" ] && fail "a non-default profile installed lib/libbulwark.so"
"$prefix/bin/bulwark" --profile "$profile" --check | grep -Eq "^  profile: *$profile\$" ||
    fail "installed: bulwark --profile $profile --check"
"$prefix/bin/bulwark" true 2>"$work/out" && fail "installed: no default, yet bulwark true ran"
install_as "$profile"
if [ ! -f "$prefix/lib/libbulwark.so" ] || [ ! -f "$prefix/lib/pkgconfig/bulwark.pc" ]; then
    fail "the default profile did not install lib/libbulwark.so and bulwark.pc"
fi
"$prefix/bin/bulwark" cat /proc/self/maps | grep -q " $prefix/lib/libbulwark.so\$" ||
    fail "installed: bulwark COMMAND does not map $prefix/lib/libbulwark.so"
[ "$failed" -eq 0 ] && ok "make install: lib/bulwark/$profile/ and, as the default, lib/"
[ "$failed" -eq 0 ] && echo "all wrapper claims hold"
exit "$failed"

#!/bin/sh
# tests/ops/stats.sh — statistics for operators (bw_print_stats_json,
# malloc_info, BULWARK_STATS). Claims, for the profile under test:
#   1. bw_print_stats_json writes one JSON object on one line, with every
#      documented field;
#   2. after COUNT blocks of SIZE bytes (nothing else allocated between the
#      two reports), exactly one size class's in-use count grew by COUNT,
#      its size is at least SIZE, and the small + medium bytes in use grew
#      by COUNT times that size;
#   3. segments per NUMA node add up to the segments, one entry per node;
#   4. a live 1 MiB block: one more large allocation, at least 1 MiB more
#      large bytes in use; freed, it is in the large cache (the quarantine
#      in the profiles that have one); guard pages were installed (large
#      blocks always have them; slab guards in the profiles with them);
#   5. malloc_info is well-formed XML in glibc's layout: <malloc><heap
#      nr="0"><sizes> with one <size from to total count/> per class that
#      has slabs (total = count * to), including the class of claim 2;
#   6. BULWARK_STATS=json:FILE appends one object per process at exit (two
#      runs: two lines, each with its process's pid); BULWARK_STATS=FILE
#      the text report; BULWARK_STATS=json writes to stderr; unset or empty,
#      nothing is written;
#   7. (root only) a set-uid program (AT_SECURE; bulwark linked in, since
#      the loader ignores LD_PRELOAD there) ignores BULWARK_STATS.
# Takes about a second.
set -u
: "${BULWARK_LIB:?run through make check (tests/run.sh)}" "${BULWARK_BUILD:?}"
profile=${BULWARK_PROFILE:-default}
probe=$BULWARK_BUILD/tests/ops/stats_probe.bin
static_probe=$BULWARK_BUILD/tests/ops/stats_probe.static
for f in "$probe" "$static_probe"; do
    [ -f "$f" ] || { echo "missing $f (make tests builds it)"; exit 1; }
done
if ! command -v python3 >/dev/null; then
    [ "${CI:-}" = true ] && { echo "python3 missing (.ci/run installs it)"; exit 1; }
    echo "python3 not installed: skipped"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}

count=1000
size=100
mkdir "$work/run"
if ! pid=$(LD_PRELOAD=$BULWARK_LIB BULWARK_STATS=json:$work/exit.jsonl \
    "$probe" $count $size "$work/run"); then
    fail "the probe failed"
    exit 1
fi

# Claims 1-5.
python3 - "$work/run" "$count" "$size" "$profile" <<'PY' || failed=1
import json, sys, xml.etree.ElementTree as ET
run, count, size, profile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
bad = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        bad.append(what)

def load(name):
    text = open(f"{run}/{name}").read()
    check(text.endswith("\n") and text.count("\n") == 1, f"{name}: one line")
    return json.loads(text)

before, after, large, freed = (load(n + ".json") for n in ("before", "after", "large", "freed"))
fields = {"pid", "profile", "features", "small", "medium", "slabs", "heaps", "segments",
          "quarantine", "large", "guards", "classes"}
check(fields <= set(after), f"fields {sorted(fields - set(after))} missing" if fields - set(after)
      else "every top-level field present")
check(after["profile"] == profile, f"profile {after['profile']} == {profile}")
f = after["features"]
check({"guard_method", "metadata_pkey", "protection_keys", "numa_nodes", "address_space"} <= set(f),
      f"features: {f}")

def classes(s):
    return {c["size"]: c for c in s["classes"]}
b, a = classes(before), classes(after)
grown = [sz for sz in a if a[sz]["in_use"] - b.get(sz, {"in_use": 0})["in_use"] == count]
check(len(grown) == 1, f"one class grew by {count} blocks: {grown}")
if grown:
    cls = grown[0]
    check(size <= cls <= size + 32, f"its size {cls} serves {size}-byte requests")
    used = lambda s: s["small"]["in_use_bytes"] + s["medium"]["in_use_bytes"]
    check(used(after) - used(before) == count * cls,
          f"bytes in use grew by {used(after) - used(before)} = {count} * {cls}")
    others = [sz for sz in a if sz != cls and a[sz]["in_use"] != b.get(sz, {"in_use": 0})["in_use"]]
    check(not others, f"no other class changed: {others}")
for s in (before, after, large, freed):
    seg = s["segments"]
    check(sum(seg["by_node"]) == seg["total"] and len(seg["by_node"]) == s["features"]["numa_nodes"],
          f"segments by node {seg['by_node']} add up to {seg['total']}")
    for c in s["classes"]:
        check(0 <= c["in_use"] <= c["blocks"], f"class {c['size']}: {c['in_use']} of {c['blocks']}")
        break
check(large["large"]["count"] == after["large"]["count"] + 1, "one more large allocation")
check(large["large"]["in_use_bytes"] - after["large"]["in_use_bytes"] >= 1 << 20,
      "large bytes in use grew by at least 1 MiB")
check(freed["large"]["count"] == after["large"]["count"], "the large block freed")
check(freed["large"]["cached_bytes"] >= 1 << 20, "the freed block is in the large cache")
if freed["large"]["quarantine_slots"]:
    check(freed["large"]["quarantined"] >= 1, "... in the large quarantine")
g = large["guards"]
check(g["installed_by_madvise"] + g["installed_by_mprotect"] >= 2,
      f"guard pages installed: {g}")
check(g["method"] == f["guard_method"], "one guard method")
q = freed["quarantine"]
if q["slots_per_heap"]:
    check(1 <= q["blocks"] <= q["slots_per_heap"] and q["bytes"] > 0,
          f"quarantine holds {q['blocks']} blocks, {q['bytes']} bytes")
else:
    check(q["blocks"] == 0 and q["bytes"] == 0, "no quarantine in this profile")
    if grown:
        check(classes(freed)[cls]["in_use"] == a[cls]["in_use"] - 100,
              "100 blocks freed: 100 fewer in use")

root = ET.parse(f"{run}/info.xml").getroot()
check(root.tag == "malloc" and root.find("heap").get("nr") == "0", "malloc_info: <malloc><heap nr=0>")
sizes = root.find("heap").find("sizes").findall("size")
ok = all(int(e.get("from")) <= int(e.get("to")) and int(e.get("count")) >= 0 and
         int(e.get("total")) == int(e.get("count")) * int(e.get("to")) for e in sizes
         if int(e.get("to")) <= 131072)
check(len(sizes) >= 1 and ok, f"malloc_info: {len(sizes)} <size> entries, totals = count * to")
if grown:
    check(any(int(e.get("to")) == cls for e in sizes), f"malloc_info lists class {cls}")
sys.exit(1 if bad else 0)
PY

# Claim 6.
lines=$(wc -l <"$work/exit.jsonl")
[ "$lines" -eq 1 ] || fail "BULWARK_STATS=json:FILE: $lines lines, not 1"
grep -q "^{\"pid\":$pid,\"profile\":\"$profile\"" "$work/exit.jsonl" ||
    fail "the report at exit is not the probe's ($pid): $(cut -c1-80 "$work/exit.jsonl")"
mkdir "$work/run2"
LD_PRELOAD=$BULWARK_LIB BULWARK_STATS=json:$work/exit.jsonl "$probe" 10 10 "$work/run2" >/dev/null
python3 -c 'import json, sys; [json.loads(l) for l in open(sys.argv[1])]' "$work/exit.jsonl" ||
    fail "exit.jsonl is not one JSON object per line"
[ "$(wc -l <"$work/exit.jsonl")" -eq 2 ] || fail "a second process did not append its line"
LD_PRELOAD=$BULWARK_LIB BULWARK_STATS=$work/exit.txt "$probe" 10 10 "$work/run2" >"$work/pid"
head -n 1 "$work/exit.txt" | grep -qx "bulwark $profile statistics" ||
    fail "BULWARK_STATS=FILE: no text report ($(head -n 1 "$work/exit.txt"))"
grep -q "^  pid: *$(cat "$work/pid")\$" "$work/exit.txt" || fail "the text report lacks the pid"
LD_PRELOAD=$BULWARK_LIB BULWARK_STATS=json "$probe" 10 10 "$work/run2" 2>"$work/stderr" >/dev/null
python3 -c 'import json, sys; json.loads(open(sys.argv[1]).read())' "$work/stderr" ||
    fail "BULWARK_STATS=json: stderr is not one JSON object"
for value in unset ""; do
    if [ "$value" = unset ]; then
        LD_PRELOAD=$BULWARK_LIB "$probe" 10 10 "$work/run2" >/dev/null 2>"$work/stderr"
    else
        LD_PRELOAD=$BULWARK_LIB BULWARK_STATS="" "$probe" 10 10 "$work/run2" >/dev/null 2>"$work/stderr"
    fi
    [ -s "$work/stderr" ] && fail "BULWARK_STATS $value: output on stderr"
done
[ "$failed" -eq 0 ] && echo "ok   BULWARK_STATS: json:FILE, FILE, json, unset and empty"

# Claim 7: set-uid to nobody, run by root, is AT_SECURE.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 &&
    findmnt -no OPTIONS --target "$work" 2>/dev/null | grep -q nosuid; then
    echo "$work is on a nosuid file system: the set-uid claim is not checked"
elif [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    chmod 711 "$work" && mkdir "$work/suid" && chmod 1777 "$work/suid"
    cp "$static_probe" "$work/suid/probe"
    chown nobody "$work/suid/probe" && chmod 4755 "$work/suid/probe"
    BULWARK_STATS=json:$work/suid/secure.jsonl "$work/suid/probe" 10 10 "$work/suid" >/dev/null
    status=$?
    # Control: the same binary not set-uid writes the file, so the probe
    # could have written it (nobody may create files in the directory).
    chmod 755 "$work/suid/probe"
    BULWARK_STATS=json:$work/suid/control.jsonl "$work/suid/probe" 10 10 "$work/suid" >/dev/null
    if [ "$status" -ne 0 ]; then
        fail "the set-uid probe failed ($status)"
    elif [ ! -s "$work/suid/control.jsonl" ]; then
        fail "control: the probe, not set-uid, wrote no report"
    elif [ -e "$work/suid/secure.jsonl" ]; then
        fail "a set-uid process wrote its statistics (AT_SECURE ignored)"
    else
        echo "ok   set-uid (AT_SECURE): BULWARK_STATS ignored; without set-uid it reports"
    fi
else
    echo "not root: the set-uid claim is not checked"
fi
[ "$failed" -eq 0 ] && echo "all statistics claims hold"
exit "$failed"

#!/bin/sh
# tests/vm/pkey.sh — BW_PKEY_METADATA on a CPU that has protection keys:
# this machine's may not, so tests/security/test_metadata_pkey runs in a
# QEMU VM whose emulated CPU (-cpu max, TCG) has pku and ospke, and must
# pass there with none of its tests skipped (it also runs a multi-threaded
# churn with cross-thread frees, fork and a signal handler that allocates;
# the whole stress suite under TCG would take minutes). Profiles without the
# knob skip this script.
set -u
here=$(dirname "$0")
. "$here/vm.inc"

policy=$here/../../policy/$BULWARK_PROFILE.h
if ! grep -q '^#define BW_PKEY_METADATA 1' "$policy"; then
    echo "skipped: BW_PKEY_METADATA is not 1 in profile $BULWARK_PROFILE"
    exit 77
fi
vm_require

VM_LOG=$BULWARK_BUILD/logs/vm-pkey.console
pkey_test=$BULWARK_BUILD/tests/security/test_metadata_pkey
vm_run pkey -cpu max -smp 2 -- "$pkey_test" || exit 1
cat "$VM_LOG"

failed=0
if ! grep -q "VMTEST $pkey_test rc=0" "$VM_LOG"; then
    echo "FAIL: $pkey_test did not pass in the VM"
    failed=1
fi
# Passed is not enough: with PKU emulated, nothing may be skipped.
if ! awk -v p="$pkey_test" '$0 ~ "VMTEST " p {exit} /PASSED/ && /3 test/ {ok=1} END {exit !ok}' "$VM_LOG"; then
    echo "FAIL: test_metadata_pkey did not pass all 3 tests in the VM (skipped: no PKU?)"
    failed=1
fi
grep -q "metadata key [1-9]" "$VM_LOG" || { echo "FAIL: no metadata key in the VM"; failed=1; }
exit $failed

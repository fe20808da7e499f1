#!/bin/sh
# tests/vm/numa.sh — NUMA placement on two nodes: this machine has one, so
# tests/vm/numa_probe runs in a QEMU VM with two nodes of 2 CPUs and 1 GiB
# each (see the probe for what it requires: local pages, no cross-node
# reuse, placement after a migration, a full node served by the other, 2
# nodes in the statistics). Placement does not depend on the hardening
# knobs, so only the default and fast profiles run it (one emulated boot and
# about 1.3 GiB touched under TCG each).
set -u
here=$(dirname "$0")
. "$here/vm.inc"

case $BULWARK_PROFILE in
default | fast) ;;
*)
    echo "skipped: NUMA placement is the same in every profile; it runs for default and fast"
    exit 77
    ;;
esac
vm_require

VM_LOG=$BULWARK_BUILD/logs/vm-numa.console
probe=$BULWARK_BUILD/tests/vm/numa_probe
VM_MEMORY=2048 vm_run numa -cpu max -smp 4 \
    -object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G \
    -numa node,nodeid=0,cpus=0-1,memdev=m0 -numa node,nodeid=1,cpus=2-3,memdev=m1 \
    -- "$probe" || exit 1
cat "$VM_LOG"

grep -q "VMTEST $probe rc=0" "$VM_LOG" || { echo "FAIL: numa_probe did not pass in the VM"; exit 1; }
grep -q "numa: ALL PASSED" "$VM_LOG" || { echo "FAIL: numa_probe did not finish"; exit 1; }
exit 0

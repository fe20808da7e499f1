/* test_mlockall.c — bulwark keeps working in a process that locked all its
 * memory, present and future (mlockall(MCL_CURRENT | MCL_FUTURE), as daemons
 * that must not page do). Locked memory refuses MADV_GUARD_INSTALL and
 * MADV_DONTNEED with EINVAL, so guards fall back to mprotect and freed pages
 * keep their contents; neither may crash, abort, or hand out stale bytes:
 *  - lock_then_allocate: mlockall first, then every small class (the
 *    two-slot spans above 8 KiB included) with slab release and reuse after
 *    malloc_trim(0), and large blocks through the large quarantine and the
 *    cache with realloc; every block keeps its contents, calloc's are zero;
 *  - allocate_lock_allocate: the same after a first round unlocked, so that the
 *    locked process also unguards ranges that MADV_GUARD_INSTALL guarded
 *    (released spans, parked large mappings) and purges slots that were
 *    decommitted before.
 * Each runs in a forked child (the lock and its resident memory end with
 * it) of a process where bulwark is initialised; tests/stress/mlockall.sh
 * also locks a process before bulwark initialises. Skipped when mlockall is not permitted: neither
 * CAP_IPC_LOCK nor an unlimited RLIMIT_MEMLOCK (bulwark reserves 64 GiB of address space, which
 * MCL_CURRENT counts against the limit). */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bw_test.h"
#include "bw_workload.h"

#define CAP_IPC_LOCK_BIT 14 /* linux/capability.h */

/* The value of a "Name:  value" line of /proc/self/status, or NULL. */
static const char *status_field(const char *name, char *buf, size_t size) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return NULL;
    const char *found = NULL;
    size_t len = strlen(name);
    while (fgets(buf, (int)size, f)) {
        if (strncmp(buf, name, len) == 0 && buf[len] == ':') {
            found = buf + len + 1;
            break;
        }
    }
    fclose(f);
    return found;
}

/* mlockall(MCL_CURRENT | MCL_FUTURE) of a process with bulwark's
 * reservations needs CAP_IPC_LOCK or no RLIMIT_MEMLOCK. */
static bool mlockall_permitted(void) {
    char buf[256];
    const char *caps = status_field("CapEff", buf, sizeof buf);
    if (caps && (strtoull(caps, NULL, 16) >> CAP_IPC_LOCK_BIT & 1)) return true;
    struct rlimit limit;
    return getrlimit(RLIMIT_MEMLOCK, &limit) == 0 && limit.rlim_cur == RLIM_INFINITY;
}

static void skip_unless_mlockall_permitted(void) {
    struct rlimit limit = {0, 0};
    getrlimit(RLIMIT_MEMLOCK, &limit);
    BW_SKIP_WHEN(!mlockall_permitted(),
                 "mlockall not permitted (no CAP_IPC_LOCK, RLIMIT_MEMLOCK %llu KiB)",
                 (unsigned long long)limit.rlim_cur / 1024);
}

/* Kilobytes locked, from VmLck: proves the lock took. */
static unsigned long locked_kib(void) {
    char buf[256];
    const char *value = status_field("VmLck", buf, sizeof buf);
    return value ? strtoul(value, NULL, 10) : 0;
}

static void lock_everything(void) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        fprintf(stderr, "mlockall: %s\n", strerror(errno));
        _exit(2);
    }
    if (locked_kib() == 0) {
        fprintf(stderr, "mlockall succeeded but VmLck is 0\n");
        _exit(3);
    }
}

static void run_workloads(void) {
    if (!bw_workload_small_classes()) _exit(4);
    if (!bw_workload_large_blocks()) _exit(5);
}

static void locked_child(void *arg) {
    (void)arg;
    lock_everything();
    run_workloads();
    printf("locked %lu KiB at the end\n", locked_kib());
}

static void lock_then_allocate(void **state) {
    (void)state;
    skip_unless_mlockall_permitted();
    assert_true(bw_is_bulwark_loaded());
    bw_expect_no_report(locked_child, NULL);
}

static void unlocked_then_locked_child(void *arg) {
    (void)arg;
    run_workloads();
    lock_everything();
    run_workloads();
}

static void allocate_lock_allocate(void **state) {
    (void)state;
    skip_unless_mlockall_permitted();
    assert_true(bw_is_bulwark_loaded());
    bw_expect_no_report(unlocked_then_locked_child, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lock_then_allocate),
        cmocka_unit_test(allocate_lock_allocate),
    };
    bw_test_filters_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

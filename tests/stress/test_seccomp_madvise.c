/* test_seccomp_madvise.c — bulwark keeps working under a seccomp policy that
 * answers madvise advice it does not know — MADV_GUARD_INSTALL (102) and
 * MADV_GUARD_REMOVE (103), newer than most policies — with EINVAL, as
 * container runtimes' default policies may:
 *  - refused_after_start: the policy arrives after bulwark initialised and
 *    after guard markers were installed (segments carved, spans released,
 *    large mappings parked), so bulwark meets the refusal in the middle of
 *    its life, also when it removes markers it installed itself; then every
 *    small class (spans included) with release and reuse after
 *    malloc_trim(0), and large blocks through the quarantine, the cache and
 *    realloc: every block keeps its contents, calloc's are zero, nothing
 *    crashes or aborts;
 *  - refused_from_the_start: the policy is inherited across execve, so the
 *    start-up probe already meets it; the same workload.
 * Each runs in a forked child: a seccomp filter cannot be removed. The
 * filter is raw BPF (prctl PR_SET_SECCOMP; no libseccomp), installed with
 * PR_SET_NO_NEW_PRIVS so no privilege is needed. */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bw_test.h"
#include "bw_workload.h"

#define GUARD_INSTALL 102 /* MADV_GUARD_INSTALL, Linux 6.13 uapi */
#define GUARD_REMOVE  103 /* MADV_GUARD_REMOVE */
#define WORKLOAD_ARG  "--workload-under-policy"

#if defined(__x86_64__)
#define FILTER_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define FILTER_ARCH AUDIT_ARCH_AARCH64
#else
#define FILTER_ARCH 0 /* the test skips */
#endif

/* madvise(_, _, 102 or 103) -> EINVAL; every other call allowed. The
 * advice is args[2]; its low 32 bits are the first word on a
 * little-endian machine (both architectures above). */
static int refuse_guard_advice(void) {
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FILTER_ARCH, 1, 0),
        /* 2 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* 3 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 0, 3),
        /* 5 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        /* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, GUARD_INSTALL, 2, 0),
        /* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, GUARD_REMOVE, 1, 0),
        /* 8 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* 9 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EINVAL & SECCOMP_RET_DATA)),
    };
    struct sock_fprog program = {(unsigned short)(sizeof code / sizeof code[0]), code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program);
}

/* The policy is in force: the guard advice fails with EINVAL on a scratch
 * mapping, MADV_DONTNEED still works. Exits the child otherwise. */
static void expect_policy_in_force(void) {
    char *page =
        mmap(NULL, BW_TEST_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) _exit(6);
    if (madvise(page, BW_TEST_PAGE, GUARD_INSTALL) == 0 || errno != EINVAL) {
        fprintf(stderr, "the policy did not refuse MADV_GUARD_INSTALL with EINVAL\n");
        _exit(7);
    }
    if (madvise(page, BW_TEST_PAGE, MADV_DONTNEED) != 0) {
        fprintf(stderr, "the policy refused MADV_DONTNEED: %s\n", strerror(errno));
        _exit(8);
    }
    munmap(page, BW_TEST_PAGE);
}

static void run_workloads(void) {
    if (!bw_workload_small_classes()) _exit(4);
    if (!bw_workload_large_blocks()) _exit(5);
}

/* Whether this kernel takes a seccomp filter at all (CONFIG_SECCOMP_FILTER):
 * asked in a child, since a filter stays for good. */
static bool seccomp_filters_work(void) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(refuse_guard_advice() == 0 ? 0 : 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void skip_unless_seccomp(void) {
    BW_SKIP_WHEN(FILTER_ARCH == 0, "no seccomp audit arch known for this CPU");
    BW_SKIP_WHEN(!seccomp_filters_work(), "prctl(PR_SET_SECCOMP) refuses filters");
}

static void policy_after_start_child(void *arg) {
    (void)arg;
    run_workloads(); /* guard markers everywhere before the policy */
    if (refuse_guard_advice() != 0) {
        fprintf(stderr, "seccomp: %s\n", strerror(errno));
        _exit(2);
    }
    expect_policy_in_force();
    run_workloads();
}

static void refused_after_start(void **state) {
    (void)state;
    skip_unless_seccomp();
    assert_true(bw_is_bulwark_loaded());
    bw_expect_no_report(policy_after_start_child, NULL);
}

/* The child installs the policy and runs this program again, which then
 * starts bulwark under it (main sees WORKLOAD_ARG). */
static void policy_from_start_child(void *arg) {
    (void)arg;
    if (refuse_guard_advice() != 0) {
        fprintf(stderr, "seccomp: %s\n", strerror(errno));
        _exit(2);
    }
    char *const argv[] = {(char *)"test_seccomp_madvise", (char *)WORKLOAD_ARG, NULL};
    execv("/proc/self/exe", argv);
    fprintf(stderr, "execv /proc/self/exe: %s\n", strerror(errno));
    _exit(9);
}

static void refused_from_the_start(void **state) {
    (void)state;
    skip_unless_seccomp();
    bw_expect_no_report(policy_from_start_child, NULL);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], WORKLOAD_ARG) == 0) {
        if (!bw_is_bulwark_loaded()) return 10;
        expect_policy_in_force();
        run_workloads();
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refused_after_start),
        cmocka_unit_test(refused_from_the_start),
    };
    bw_test_filters_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

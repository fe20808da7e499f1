/* test_fork_secrets.c — proves that forked children (a prefork daemon's
 * workers, a fuzzer's forkserver) share neither their parent's secrets nor
 * its placement, so that a crash in one teaches an attacker nothing about
 * its siblings:
 *  - no block a child allocates comes from a slab that was open in the
 *    parent (inherited slabs are sealed: only freed into), and two sibling
 *    children's first 32 malloc(40) are not the same addresses in the same
 *    order (before: 5-6 of 32 identical);
 *  - the slab secrets behind a child's new blocks (free-list key, canary
 *    secret) are not its parent's nor its sibling's, even where both
 *    siblings reuse the same slot of the address space;
 *  - a large block's canary (BW_CANARY, a left-aligned block) is drawn per
 *    block: siblings that get the same address get different canaries;
 *  - a child re-keys its generator from the kernel (getrandom), never
 *    through libsodium's randombytes_buf (whose pages a forked child had to
 *    fault in: random.c), and siblings' keys differ from each other and
 *    from their parent's. randombytes_buf is interposed here: this test
 *    links libbulwark.a, so bulwark's calls of it land in this file.
 *  - where a seccomp filter refuses getrandom, bulwark asks once and then
 *    goes straight to libsodium's randombytes_buf: a later thread's heap
 *    seed and a forked grandchild's re-key make no getrandom call (before,
 *    each made the refused call first).
 * The children run the steps and report through a shared page; the parent
 * compares. Statically linked: it reads slab descriptors (bw_slab_at). */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_internal.h"
#include "bw_test.h"

#define FIRST    32
#define REQUEST  40
#define WARM     3000 /* blocks the parent makes, half of which it frees */
#define LARGE_RQ 200000

struct child_report {
    uintptr_t blocks[FIRST];
    uint64_t key, canary; /* secrets of the slab of blocks[0] */
    uintptr_t large;
    uint64_t large_canary;
    unsigned randombytes_calls; /* made by the child */
    bool rekeyed;               /* its heap's generator has the child's generation */
    uint8_t rng_key[32];
};

/* libsodium's, interposed: counts the calls and fills from the kernel, or
 * (getrandom_refused, where a filter refuses the kernel's) from a counter:
 * the test below counts calls, it does not need good bytes. */
static unsigned randombytes_calls;
static volatile sig_atomic_t getrandom_refused;
void randombytes_buf(void *const buf, const size_t size);
void randombytes_buf(void *const buf, const size_t size) {
    randombytes_calls++;
    if (getrandom_refused) {
        static uint8_t next;
        for (size_t i = 0; i < size; i++) ((uint8_t *)buf)[i] = (uint8_t)(next++ * 167u + 13u);
        return;
    }
    for (size_t done = 0; done < size;) {
        ssize_t got = getrandom((char *)buf + done, size - done, 0);
        if (got > 0) done += (size_t)got;
    }
}
static uint8_t parent_rng_key[32];
static unsigned calls_before_fork; /* the child's reseed may run in fork's child handler */

static struct child_report *reports; /* shared with the children */
static uintptr_t parent_slabs[WARM];
static size_t parent_slab_count;
static uint64_t parent_keys[WARM], parent_canaries[WARM];

static const bw_slab_t *slab_of(uintptr_t block) {
    return bw_slab_at(block - bw_layout.arena_base);
}

static void note_parent_slab(uintptr_t block) {
    uintptr_t slab = block >> BW_SLAB_SHIFT;
    for (size_t i = 0; i < parent_slab_count; i++)
        if (parent_slabs[i] == slab) return;
    const bw_slab_t *desc = slab_of(block);
    parent_keys[parent_slab_count] = desc->key;
    parent_canaries[parent_slab_count] = desc->canary;
    parent_slabs[parent_slab_count++] = slab;
}

static bool in_parent_slab(uintptr_t block) {
    for (size_t i = 0; i < parent_slab_count; i++)
        if (parent_slabs[i] == block >> BW_SLAB_SHIFT) return true;
    return false;
}

/* The large canary: with BW_CANARY and no right alignment, the 8 bytes
 * between the usable size and the trailing guard. */
static uint64_t large_canary_of(const char *block) {
    uint64_t canary = 0;
    memcpy(&canary, block + malloc_usable_size((void *)block), sizeof canary);
    return canary;
}

static void child(struct child_report *out) {
    for (int i = 0; i < FIRST; i++) out->blocks[i] = (uintptr_t)malloc(REQUEST);
    const bw_slab_t *slab = slab_of(out->blocks[0]);
    out->key = slab->key;
    out->canary = slab->canary;
    char *large = malloc(LARGE_RQ);
    out->large = (uintptr_t)large;
    if (BW_CANARY && !BW_LARGE_RIGHT_ALIGN) out->large_canary = large_canary_of(large);
    out->randombytes_calls = randombytes_calls - calls_before_fork;
    const bw_rng_t *rng = &bw_tls_heap->rng;
    out->rekeyed = rng->generation == atomic_load(&bw_rng_generation);
    memcpy(out->rng_key, rng->key, sizeof out->rng_key);
    _exit(0);
}

static void run_siblings(void) {
    memset(reports, 0, 2 * sizeof *reports);
    for (int c = 0; c < 2; c++) {
        fflush(NULL);
        calls_before_fork = randombytes_calls;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) child(&reports[c]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

static int setup(void **state) {
    (void)state;
    reports =
        mmap(NULL, 2 * sizeof *reports, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (reports == MAP_FAILED) return -1;
    /* The parent's heap: open slabs of the class with free blocks in them,
     * which a child that reused them would hand out first. */
    static void *warm[WARM];
    for (int i = 0; i < WARM; i++) {
        warm[i] = malloc(REQUEST);
        note_parent_slab((uintptr_t)warm[i]);
    }
    for (int i = 0; i < WARM; i += 2) free(warm[i]);
    free(malloc(LARGE_RQ)); /* a mapping in the large cache, for the children */
    memcpy(parent_rng_key, bw_tls_heap->rng.key, sizeof parent_rng_key);
    run_siblings();
    return 0;
}

static void test_children_never_allocate_from_parent_slabs(void **state) {
    (void)state;
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < FIRST; i++) {
            BW_REQUIRE(reports[c].blocks[i] != 0, "child %d malloc %d failed", c, i);
            BW_REQUIRE(!in_parent_slab(reports[c].blocks[i]),
                       "child %d's block %d (%#jx) is in a slab its parent had open", c, i,
                       (uintmax_t)reports[c].blocks[i]);
        }
}

static void test_siblings_do_not_repeat_placement(void **state) {
    (void)state;
    int same_position = 0, shared = 0;
    for (int i = 0; i < FIRST; i++) {
        same_position += reports[0].blocks[i] == reports[1].blocks[i];
        for (int j = 0; j < FIRST; j++) shared += reports[0].blocks[i] == reports[1].blocks[j];
    }
    print_message("siblings' first %d malloc(%d): %d at the same position, %d in common\n", FIRST,
                  REQUEST, same_position, shared);
    /* Independent random orders over a slab of ~1,300 blocks: about 0.02
     * at the same position and 0.8 in common are expected. */
    assert_true(same_position <= 2);
    assert_true(shared <= 8);
}

static void test_children_draw_their_own_slab_secrets(void **state) {
    (void)state;
    for (int c = 0; c < 2; c++)
        for (size_t i = 0; i < parent_slab_count; i++) {
            BW_REQUIRE(reports[c].key != parent_keys[i], "child %d has a parent's link key", c);
            BW_REQUIRE(reports[c].canary != parent_canaries[i], "child %d has a parent's canary",
                       c);
        }
    assert_true(reports[0].key != reports[1].key);
    assert_true(reports[0].canary != reports[1].canary);
}

static void test_sibling_large_canaries_differ(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_CANARY);
    BW_SKIP_WHEN(BW_LARGE_RIGHT_ALIGN, "BW_LARGE_RIGHT_ALIGN=1 (large blocks end at their guard)");
    print_message("siblings' large blocks at %#jx and %#jx\n", (uintmax_t)reports[0].large,
                  (uintmax_t)reports[1].large);
    assert_true(reports[0].large_canary != reports[1].large_canary);
}

static void test_children_rekey_from_the_kernel(void **state) {
    (void)state;
    for (int c = 0; c < 2; c++) {
        BW_REQUIRE(reports[c].randombytes_calls == 0,
                   "child %d called libsodium's randombytes_buf %u times", c,
                   reports[c].randombytes_calls);
        BW_REQUIRE(reports[c].rekeyed, "child %d's generator was not re-keyed", c);
        BW_REQUIRE(memcmp(reports[c].rng_key, parent_rng_key, sizeof parent_rng_key) != 0,
                   "child %d kept its parent's generator key", c);
    }
    assert_true(memcmp(reports[0].rng_key, reports[1].rng_key, sizeof parent_rng_key) != 0);
}

/* getrandom under a seccomp filter that traps it: SIGSYS, counted here,
 * and the call returns ENOSYS as from a kernel without it. */
static volatile sig_atomic_t getrandom_traps;

#if defined(__x86_64__)
static void on_sigsys(int sig, siginfo_t *info, void *context) {
    (void)sig, (void)info;
    getrandom_traps++;
    ((ucontext_t *)context)->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
}

static int trap_getrandom(void) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getrandom, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {.len = sizeof code / sizeof code[0], .filter = code};
    struct sigaction action = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
    if (sigaction(SIGSYS, &action, NULL) != 0) return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program);
}

static void *thread_mallocs(void *arg) {
    (void)arg;
    void *block = malloc(REQUEST); /* a new heap: seeded */
    free(block);
    return block;
}

/* Exit codes: 0 fine; 10 + n: this process trapped n getrandom calls more
 * than allowed; 2-5 set-up failures. */
static void refused_getrandom_child(void) {
    getrandom_refused = 1;
    if (trap_getrandom() != 0) _exit(2);
    unsigned calls_before = randombytes_calls;
    for (int t = 0; t < 3; t++) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, thread_mallocs, NULL) != 0) _exit(3);
        pthread_join(thread, NULL);
    }
    if (randombytes_calls == calls_before) _exit(4); /* the seeds took the fallback */
    if (getrandom_traps > 1) _exit(10 + getrandom_traps - 1);
    for (int g = 0; g < 3; g++) {
        pid_t pid = fork();
        if (pid < 0) _exit(5);
        if (pid == 0) {
            getrandom_traps = 0;
            free(malloc(REQUEST)); /* the re-key's draw */
            _exit(getrandom_traps ? 10 + getrandom_traps : 0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) _exit(6);
        if (WEXITSTATUS(status) != 0) _exit(WEXITSTATUS(status) + 20);
    }
    _exit(0);
}
#endif

static void test_refused_getrandom_is_asked_once(void **state) {
    (void)state;
#if defined(__x86_64__)
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) refused_getrandom_child();
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    BW_REQUIRE(WIFEXITED(status), "the child died of signal %d", WTERMSIG(status));
    int code = WEXITSTATUS(status);
    BW_SKIP_WHEN(code == 2, "prctl(PR_SET_SECCOMP) refuses filters");
    BW_REQUIRE(code < 10 || code >= 30,
               "three threads' heap seeds asked the refused getrandom %d times", code - 10 + 1);
    BW_REQUIRE(code < 30, "a forked grandchild's re-key asked the refused getrandom %d times",
               code - 30);
    BW_REQUIRE(code == 0, "the child failed (exit %d)", code);
#else
    BW_SKIP_WHEN(true, "the SIGSYS handler sets x86-64's return register");
#endif
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_fork_secrets: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_children_never_allocate_from_parent_slabs),
        cmocka_unit_test(test_siblings_do_not_repeat_placement),
        cmocka_unit_test(test_children_draw_their_own_slab_secrets),
        cmocka_unit_test(test_sibling_large_canaries_differ),
        cmocka_unit_test(test_children_rekey_from_the_kernel),
        cmocka_unit_test(test_refused_getrandom_is_asked_once),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

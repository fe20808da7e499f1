/* test_foreign.c — the foreign rings (src/foreign.h): a block of another
 * thread's heap that a thread frees is kept, still claimed, for that
 * thread's own next mallocs of its class. Each case attacks the ring:
 *  - kept_blocks_are_reused: a positive control: a thread that frees
 *    another thread's blocks gets some of them back from its own mallocs
 *    (in the profiles with a quarantine, once they have left it), so the
 *    cases below do exercise the ring;
 *  - double_free_while_kept: a block waiting in a ring is freed again by
 *    the thread that kept it, by its owner, by a third thread: "double
 *    free" each time;
 *  - just_freed_is_never_next: the block a thread has just freed is never
 *    what its next malloc of the class returns (200 rounds);
 *  - forked_child_takes_none: a process's main thread keeps blocks another
 *    thread made; its forked child's mallocs return none of them (its
 *    parent's next mallocs do);
 *  - reuse_is_clean (BW_ZERO_ON_FREE): a kept block comes back all zero,
 *    none of its earlier owner's bytes;
 *  - write_after_free_on_reuse (BW_WAF_CHECK_MAX): a byte written into a
 *    kept block after its free is reported when it is handed out again,
 *    whichever way it comes back (the ring or its owner).
 * The death cases run in forked children that make their blocks
 * themselves (a child never reuses its parent's slabs). */
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"
#include "config.h"

#define REQUEST 48
#define BLOCKS  64
#define ROUNDS  200
/* malloc/free pairs enough to push a quarantine's first entries out: it
 * fills before any leaves */
#define CYCLES  (2 * BW_QUARANTINE_SLOTS + 4000)

static void *owned[BLOCKS]; /* made by one thread, freed by another */

static bool in_owned(const void *p) {
    for (int i = 0; i < BLOCKS; i++)
        if (owned[i] == p) return true;
    return false;
}

static void make_owned(void) {
    for (int i = 0; i < BLOCKS; i++) {
        owned[i] = malloc(REQUEST);
        assert_non_null(owned[i]);
        memset(owned[i], 0xA5, REQUEST);
    }
}

static void run_thread(void *(*fn)(void *), void *arg) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, fn, arg) != 0 || pthread_join(thread, NULL) != 0) _exit(90);
}

/* ------------------------------------------------------ positive control */

/* Frees every owned block, then makes ROUNDS malloc/free pairs of its own
 * (in the profiles with a quarantine, those push the owned blocks out of
 * it): returns how many of its mallocs returned an owned block. Its first
 * malloc comes first: a thread without a heap keeps nothing (a thread that
 * only frees, a consumer, hands every block back). */
static void *free_owned_then_cycle(void *arg) {
    (void)arg;
    free(malloc(REQUEST));
    for (int i = 0; i < BLOCKS; i++) free(owned[i]);
    uintptr_t reused = 0;
    void *kept[ROUNDS];
    for (int r = 0; r < CYCLES; r++) {
        void *p = malloc(REQUEST);
        if (!p) return (void *)UINTPTR_MAX;
        reused += in_owned(p);
        if (r < ROUNDS)
            kept[r] = p;
        else
            free(p);
    }
    /* Then mallocs with no free between: a quarantine's ready stack, whose
     * blocks come first, runs dry and the ring's are taken (during the
     * pairs above each free refilled the stack, so whether a ring block
     * was ever taken there was chance: 0 of 64 in one run of fuzz). */
    void *drain[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        drain[i] = malloc(REQUEST);
        if (!drain[i]) return (void *)UINTPTR_MAX;
        reused += in_owned(drain[i]);
    }
    for (int i = 0; i < BLOCKS; i++) free(drain[i]);
    for (int r = 0; r < ROUNDS; r++) free(kept[r]);
    return (void *)reused;
}

static void test_kept_blocks_are_reused(void **state) {
    (void)state;
    make_owned();
    pthread_t thread;
    void *reused = NULL;
    assert_int_equal(pthread_create(&thread, NULL, free_owned_then_cycle, NULL), 0);
    assert_int_equal(pthread_join(thread, &reused), 0);
    print_message("a thread that freed %d of another's blocks: %ju of its mallocs returned one\n",
                  BLOCKS, (uintmax_t)(uintptr_t)reused);
    assert_true((uintptr_t)reused != UINTPTR_MAX);
    if (BW_FOREIGN_SLOTS) assert_true((uintptr_t)reused > 0);
}

/* ------------------------------------------------------ double free */

static sem_t freed, never;

/* Frees block 0 and the rest (the ring then holds it), then, with arg,
 * frees block 0 again itself; without, waits for good (the process dies
 * of the other thread's report). */
static void *keeper(void *arg) {
    free(malloc(REQUEST));
    for (int i = 0; i < 8; i++) free(owned[i]);
    if (arg) free(bw_launder(owned[0]));
    sem_post(&freed);
    sem_wait(&never);
    return NULL;
}

static void *free_block_zero(void *arg) {
    (void)arg;
    free(bw_launder(owned[0]));
    return NULL;
}

enum { BY_KEEPER, BY_OWNER, BY_THIRD };

static void do_double_free_kept(void *arg) {
    int who = (int)(intptr_t)arg;
    make_owned();
    bw_test_record_address(owned[0]);
    sem_init(&freed, 0, 0);
    sem_init(&never, 0, 0);
    pthread_t thread;
    if (pthread_create(&thread, NULL, keeper, who == BY_KEEPER ? (void *)1 : NULL) != 0) _exit(91);
    sem_wait(&freed);
    if (who == BY_OWNER) free(bw_launder(owned[0]));
    if (who == BY_THIRD) run_thread(free_block_zero, NULL);
    _exit(0); /* not reached: the second free is reported */
}

static void test_double_free_while_kept(void **state) {
    (void)state;
    char info[64];
    bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(REQUEST));
    for (intptr_t who = BY_KEEPER; who <= BY_THIRD; who++)
        bw_expect_report_recorded(do_double_free_kept, (void *)who, "double free", info, "free");
}

/* ------------------------------------------------------ reuse order */

/* Frees owned blocks one at a time, each followed by a malloc of the
 * class: never the block just freed. Returns the rounds that broke it. */
static void *free_then_malloc(void *arg) {
    (void)arg;
    free(malloc(REQUEST));
    uintptr_t broken = 0;
    void *mine[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        free(owned[i]);
        mine[i] = malloc(REQUEST);
        broken += mine[i] == owned[i] || mine[i] == NULL;
    }
    for (int i = 0; i < BLOCKS; i++) free(mine[i]);
    return (void *)broken;
}

static void test_just_freed_is_never_next(void **state) {
    (void)state;
    uintptr_t broken = 0;
    for (int round = 0; round < ROUNDS / BLOCKS + 1; round++) {
        make_owned();
        pthread_t thread;
        void *result = NULL;
        assert_int_equal(pthread_create(&thread, NULL, free_then_malloc, NULL), 0);
        assert_int_equal(pthread_join(thread, &result), 0);
        broken += (uintptr_t)result;
    }
    BW_REQUIRE(broken == 0, "%ju mallocs returned the block their thread had just freed",
               (uintmax_t)broken);
}

/* ------------------------------------------------------ fork */

static void *make_owned_here(void *arg) {
    (void)arg;
    for (int i = 0; i < BLOCKS; i++) owned[i] = malloc(REQUEST);
    return NULL;
}

static void test_forked_child_takes_none(void **state) {
    (void)state;
    run_thread(make_owned_here, NULL); /* owned by a heap that has exited since */
    /* The main thread keeps them (in the profiles with a quarantine, some
     * reach the ring only after it cycled). */
    for (int i = 0; i < BLOCKS; i++) free(owned[i]);
    void *cycle[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) cycle[r] = malloc(REQUEST);
    for (int r = 0; r < ROUNDS; r++) free(cycle[r]);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int taken = 0;
        for (int i = 0; i < BLOCKS; i++) taken += in_owned(malloc(REQUEST));
        _exit(taken);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    BW_REQUIRE(WEXITSTATUS(status) == 0,
               "a forked child's mallocs returned %d blocks its parent's thread had freed",
               WEXITSTATUS(status));
    int taken = 0;
    for (int i = 0; i < BLOCKS; i++) taken += in_owned(malloc(REQUEST));
    print_message("the parent's next %d mallocs returned %d of them\n", BLOCKS, taken);
    if (BW_FOREIGN_SLOTS && !BW_QUARANTINE_SLOTS) assert_true(taken > 0);
}

/* ------------------------------------------------------ contents */

/* Frees every owned block (all 0xA5), then mallocs: every owned block it
 * gets back must be all zero. Returns how many were not. */
static void *free_owned_then_check(void *arg) {
    (void)arg;
    free(malloc(REQUEST));
    for (int i = 0; i < BLOCKS; i++) free(owned[i]);
    uintptr_t dirty = 0;
    for (int r = 0; r < CYCLES; r++) {
        void *p = malloc(REQUEST);
        if (!p) return (void *)UINTPTR_MAX;
        if (in_owned(p) && !bw_check_zero(p, REQUEST)) dirty++;
        free(p);
    }
    return (void *)dirty;
}

static void test_reuse_is_clean(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_ZERO_ON_FREE);
    make_owned();
    pthread_t thread;
    void *dirty = NULL;
    assert_int_equal(pthread_create(&thread, NULL, free_owned_then_check, NULL), 0);
    assert_int_equal(pthread_join(thread, &dirty), 0);
    BW_REQUIRE(dirty == NULL, "%ju blocks came back with an earlier owner's bytes",
               (uintmax_t)(uintptr_t)dirty);
}

/* ------------------------------------------------------ write after free */

static void *free_write_cycle(void *arg) {
    (void)arg;
    free(malloc(REQUEST));
    for (int i = 0; i < BLOCKS; i++) free(owned[i]);
    ((volatile char *)bw_launder(owned[5]))[8] = 'x'; /* the bug */
    for (int r = 0; r < CYCLES; r++) free(malloc(REQUEST));
    return NULL;
}

static void do_write_after_free_kept(void *arg) {
    (void)arg;
    make_owned();
    bw_test_record_address(owned[5]);
    run_thread(free_write_cycle, NULL);
    /* Not reported in that thread: the block went back to its owner. */
    for (int r = 0; r < CYCLES; r++) free(malloc(REQUEST));
    _exit(0);
}

static void test_write_after_free_on_reuse(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_WAF_CHECK_MAX);
    char info[64];
    bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(REQUEST));
    bw_expect_report_recorded(do_write_after_free_kept, NULL, "write after free", info, "malloc");
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_foreign: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_blocks_are_reused),
        cmocka_unit_test(test_double_free_while_kept),
        cmocka_unit_test(test_just_freed_is_never_next),
        cmocka_unit_test(test_forked_child_takes_none),
        cmocka_unit_test(test_reuse_is_clean),
        cmocka_unit_test(test_write_after_free_on_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

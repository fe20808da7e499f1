/* test_double_free_race.c — proves that a double free is caught even when
 * the two frees race: the block's owner thread frees it at the same moment
 * as another thread does. The owner's free takes no atomic
 * read-modify-write, so both frees can pass their immediate checks; the
 * block is then left in a state no valid sequence produces (freed by its
 * owner, claimed by the other thread) and the first place that meets it
 * reports "double free" (src/slab.h explains the protocol). Before this
 * was so, such a double free went through (the block then sat on two lists
 * at once) or surfaced later as something else: 8 to 24 of 5,000 of these
 * trials in fast, with this harness.
 *
 * Each trial is a forked child: the main thread allocates a block, a second
 * thread spins until released, then both free the block; the child then
 * joins the thread (a thread's exit sends its quarantine's blocks home),
 * calls malloc_trim(0) (the owner's quarantine is emptied and the blocks
 * other threads freed are collected) and allocates the class many times
 * over. Every trial must end in SIGABRT with exactly one line
 *     bulwark: double free of 0x<the block> (...) in <function>
 * where the function is wherever it was caught (free, malloc_trim,
 * malloc); a child that exits normally let the double free through.
 * Half of the trials give the second thread a heap of its own first, so
 * its free goes through its quarantine (BW_QUARANTINE_SLOTS) rather than
 * straight to the slab's remote list. */
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
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

#define TRIALS  2500
#define REQUEST 64

struct race {
    void *block;
    int with_heap;
    atomic_int ready, go;
};

static void *other_thread(void *arg) {
    struct race *r = arg;
    if (r->with_heap) free(malloc(REQUEST)); /* this thread now has a heap and a quarantine */
    atomic_store(&r->ready, 1);
    while (!atomic_load_explicit(&r->go, memory_order_acquire)) __builtin_ia32_pause();
    free(r->block);
    return NULL;
}

static void do_race(void *arg) {
    struct race *r = arg;
    r->block = malloc(REQUEST);
    if (!r->block) _exit(2);
    bw_test_record_address(r->block);
    pthread_t thread;
    if (pthread_create(&thread, NULL, other_thread, r) != 0) _exit(112);
    while (!atomic_load(&r->ready)) sched_yield(); /* let the thread start */
    atomic_store_explicit(&r->go, 1, memory_order_release);
    free(bw_launder(r->block));
    if (pthread_join(thread, NULL) != 0) _exit(112);
    malloc_trim(0);
    for (size_t i = 0; i < 1000; i++) {
        if (!malloc(REQUEST)) _exit(2);
    }
    _exit(0); /* nothing noticed: the double free went through */
}

static void test_racing_double_frees_are_all_detected(void **state) {
    char report[256];
    char expected[64];
    size_t undetected = 0, wrong = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        struct race r = {NULL, trial & 1, 0, 0};
        size_t lines = 0;
        int status = bw_run_child(do_race, &r, report, sizeof report, &lines);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            undetected++;
            continue;
        }
        /* The child wrote the block's address before the race; the report
         * names the same block. */
        snprintf(expected, sizeof expected, "bulwark: double free of 0x%jx ",
                 (uintmax_t)bw_test_recorded_address());
        bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && lines == 1 &&
                  strncmp(report, expected, strlen(expected)) == 0;
        if (!ok) {
            if (wrong++ < 5)
                print_message("trial %d: status 0x%x, %zu report lines, first: \"%s\"\n", trial,
                              status, lines, report);
        }
    }
    print_message("%d racing double frees: %zu undetected, %zu reported otherwise\n", TRIALS,
                  undetected, wrong);
    assert_int_equal(undetected, 0);
    assert_int_equal(wrong, 0);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_double_free_race: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_racing_double_frees_are_all_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

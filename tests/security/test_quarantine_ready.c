/* test_quarantine_ready.c — attacks on the ready stacks (quarantine.c): a
 * block the quarantine lets go waits in its heap's per-class stack for the
 * class's next malloc, still marked QUARANTINED, on no free list. Each test
 * first drives a block into a ready stack (frees of its class fill the
 * quarantine until a random eviction puts it there, read from the heap),
 * then commits the bug against it:
 *  - ready_double_free: the block freed again: "double free" in free;
 *  - ready_write_after_free: a byte written into it, then the class
 *    allocated: "write after free" in malloc, as for a block that went back
 *    to its slab;
 *  - ready_remote_double_free: another thread frees it: "double free";
 *  - ready_not_shared_by_fork: a forked child never hands out a block its
 *    parent's ready stack held (siblings would all take the same ones in
 *    the same order);
 *  - quarantine_not_shared_by_fork: nor one of the blocks the parent left
 *    waiting in its quarantine, when the child's own frees push them out
 *    (their entries said "to the ready stack" when the parent freed them;
 *    in the child their slabs are sealed, only freed into). */
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
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

#include "bw_internal.h"
#include "bw_test.h"

#define REQUEST 48
#define POOL    (2 * BW_QUARANTINE_SLOTS + 64) /* blocks freed: the quarantine fills, then evicts */

#if BW_QUARANTINE_SLOTS
static unsigned class_of(const void *p) {
    return bw_slab_at((uintptr_t)p - bw_layout.arena_base)->size_class;
}

/* A block of REQUEST bytes, freed, on top of this thread's ready stack for
 * its class now: blocks of the class are freed one by one until an
 * eviction from the quarantine has put one there. */
static void *block_in_ready(void) {
    static void *pool[POOL];
    for (unsigned i = 0; i < POOL; i++) {
        pool[i] = malloc(REQUEST);
        assert_non_null(pool[i]);
    }
    unsigned c = class_of(pool[0]);
    for (unsigned i = 0; i < POOL; i++) {
        free(pool[i]);
        unsigned n = bw_tls_heap->ready_count[c];
        if (n) return bw_tls_heap->ready[c][n - 1];
    }
    fail_msg("no block of %d bytes reached a ready stack after %d frees", REQUEST, POOL);
    return NULL;
}

static void double_free_in_ready(void *arg) {
    (void)arg;
    void *p = block_in_ready();
    free(p);
}

static void write_after_free_in_ready(void *arg) {
    (void)arg;
    char *p = block_in_ready();
    p[REQUEST / 2] = 0x41; /* a use after free, after the quarantine */
    for (unsigned i = 0; i < BW_READY_SLOTS + 1; i++) (void)malloc(REQUEST);
    fprintf(stderr, "the write after free was not seen\n");
}

static void *free_elsewhere(void *p) {
    free(p);
    return NULL;
}

static void remote_double_free_in_ready(void *arg) {
    (void)arg;
    void *p = block_in_ready();
    pthread_t t;
    pthread_create(&t, NULL, free_elsewhere, p);
    pthread_join(t, NULL);
    malloc_trim(0); /* wherever the other free's claim is met */
    for (unsigned i = 0; i < 64; i++) (void)malloc(REQUEST);
}
#endif

static void ready_double_free(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_QUARANTINE_SLOTS);
#if BW_QUARANTINE_SLOTS
    bw_expect_death(double_free_in_ready, NULL, "double free", "free");
#endif
}

static void ready_write_after_free(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_QUARANTINE_SLOTS);
    BW_SKIP_UNLESS(BW_WAF_CHECK_MAX);
#if BW_QUARANTINE_SLOTS
    bw_expect_death(write_after_free_in_ready, NULL, "write after free", "malloc");
#endif
}

static void ready_remote_double_free(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_QUARANTINE_SLOTS);
#if BW_QUARANTINE_SLOTS
    bw_expect_death(remote_double_free_in_ready, NULL, "double free", "free");
#endif
}

static void ready_not_shared_by_fork(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_QUARANTINE_SLOTS);
#if BW_QUARANTINE_SLOTS
    void *p = block_in_ready();
    unsigned c = class_of(p);
    unsigned held = bw_tls_heap->ready_count[c];
    void *parent_ready[BW_READY_SLOTS];
    memcpy(parent_ready, bw_tls_heap->ready[c], held * sizeof(void *));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int reused = 0;
        for (unsigned i = 0; i < 4 * BW_READY_SLOTS; i++) {
            void *q = malloc(REQUEST);
            for (unsigned k = 0; k < held; k++) reused += q == parent_ready[k];
        }
        _exit(reused);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    print_message("parent's ready stack held %u blocks of the class; the child took %d of them\n",
                  held, WEXITSTATUS(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
}

static void quarantine_not_shared_by_fork(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_QUARANTINE_SLOTS);
#if BW_QUARANTINE_SLOTS
    (void)block_in_ready(); /* the parent's quarantine is full of its blocks */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static void *mine[POOL];
        int sealed = 0;
        for (unsigned i = 0; i < POOL; i++) mine[i] = malloc(REQUEST);
        for (unsigned round = 0; round < 4; round++)
            for (unsigned i = 0; i < POOL; i++) {
                free(mine[i]); /* evicts a random entry, the parent's at first */
                mine[i] = malloc(REQUEST);
                bw_slab_t *slab = bw_slab_at((uintptr_t)mine[i] - bw_layout.arena_base);
                sealed += slab->list == BW_LIST_SEALED;
            }
        _exit(sealed > 255 ? 255 : sealed);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    print_message("the child handed out %d blocks of slabs sealed at fork\n", WEXITSTATUS(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_quarantine_ready: malloc is not bulwark's\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ready_double_free),
        cmocka_unit_test(ready_write_after_free),
        cmocka_unit_test(ready_remote_double_free),
        cmocka_unit_test(ready_not_shared_by_fork),
        cmocka_unit_test(quarantine_not_shared_by_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_use_after_free.c — proves two things about using a block after
 * free:
 *  - malloc_usable_size of a freed block is fatal with
 *        bulwark: use after free of 0x<block> (<info>) in malloc_usable_size
 *    and SIGABRT, for small, medium, the largest small and large blocks
 *    (the info names the class, or "not a bulwark block" for a large block,
 *    whose mapping is gone);
 *  - reading a freed large block faults (SIGSEGV, no report) while it sits
 *    in the large quarantine (BW_LARGE_QUARANTINE > 0), at its first byte,
 *    in the middle and at its last byte, also after other large frees that
 *    do not push it out, and when frees before it filled the budget of
 *    freed pages kept resident (its pages discarded instead);
 *  - a freed small block is not the next block malloc hands out (the
 *    use-after-free exploit's reallocation): with a quarantine never, in the
 *    fast profile only when its slab's free list happened to run dry at that
 *    very malloc (the freed block waits on the slab's local free list).
 * Writes after free are in test_write_after_free.c, what a freed small
 * block reads as in test_info_leak.c. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"

#define MiB ((size_t)1 << 20)

static volatile size_t sink;

static void do_free_then_usable_size(void *block) {
    free(block);
    sink = malloc_usable_size(bw_launder(block));
}

static void expect_small_use_after_free(size_t request) {
    char info[64];
    void *block = malloc(request);
    assert_non_null(block);
    bw_expect_report(do_free_then_usable_size, block, "use after free", block,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(request)),
                     "malloc_usable_size");
    free(block);
}

static void test_usable_size_after_free_small(void **state) {
    expect_small_use_after_free(1);
    expect_small_use_after_free(64);
    expect_small_use_after_free(1000);
}

static void test_usable_size_after_free_medium(void **state) {
    expect_small_use_after_free(4096);
    expect_small_use_after_free(40000); /* a span of 8 slots */
    expect_small_use_after_free(65536);
    expect_small_use_after_free(BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES);
}

static void test_usable_size_after_free_large(void **state) {
    static const size_t sizes[] = {BW_TEST_SMALL_MAX + 1, 200000, MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *block = malloc(sizes[i]);
        assert_non_null(block);
        bw_expect_report(do_free_then_usable_size, block, "use after free", block,
                         BW_INFO_NOT_A_BLOCK, "malloc_usable_size");
        free(block);
    }
}

/* ------------------------------------------------------------ large reads */

struct read_after_free {
    char *block;
    size_t offset;       /* byte read after the free */
    size_t other_frees;  /* large blocks freed in between */
    size_t frees_before; /* large blocks freed just before it */
};

static void do_read_after_free(void *arg) {
    const struct read_after_free *op = arg;
    for (size_t i = 0; i < op->frees_before; i++) free(malloc(MiB));
    free(op->block);
    for (size_t i = 0; i < op->other_frees; i++) free(malloc(MiB));
    sink = ((volatile char *)bw_launder(op->block))[op->offset];
}

static void expect_read_fault_after(size_t size, size_t offset, size_t other_frees,
                                    size_t frees_before) {
    char *block = malloc(size);
    assert_non_null(block);
    memset(block, 0x5a, size);
    struct read_after_free op = {block, offset, other_frees, frees_before};
    /* The page of the byte read, no earlier one. */
    char *page = (char *)((uintptr_t)(block + offset) & ~(uintptr_t)(BW_TEST_PAGE - 1));
    bw_expect_fault_in(do_read_after_free, &op, page, page + BW_TEST_PAGE);
    free(block);
}

static void expect_read_fault(size_t size, size_t offset, size_t other_frees) {
    expect_read_fault_after(size, offset, other_frees, 0);
}

static void test_read_after_free_large_faults(void **state) {
    BW_SKIP_UNLESS(BW_LARGE_QUARANTINE);
    expect_read_fault(MiB, 0, 0);
    expect_read_fault(MiB, MiB / 2, 0);
    expect_read_fault(MiB, MiB - 1, 0);
    expect_read_fault(200000, 0, 0);
    expect_read_fault(200000, 199999, 0);
    expect_read_fault(BW_TEST_SMALL_MAX + 1, 0, 0);
}

/* Still inaccessible after BW_LARGE_QUARANTINE - 1 other large frees: the
 * quarantine is a FIFO of that many mappings. */
static void test_read_after_free_large_faults_after_other_frees(void **state) {
    BW_SKIP_UNLESS(BW_LARGE_QUARANTINE);
    expect_read_fault(MiB, 100, BW_LARGE_QUARANTINE > 1 ? BW_LARGE_QUARANTINE - 1 : 0);
}

/* Freed after 8 MiB of other large blocks, more than the freed extents may
 * keep resident (BW_LARGE_KEPT_MIN, 4 MiB, with 1 MiB live): its pages are
 * discarded by a fresh PROT_NONE mapping instead (large.c, bw_extent_seal),
 * which must fault just the same. */
static void test_read_after_free_large_faults_past_kept_budget(void **state) {
    BW_SKIP_UNLESS(BW_LARGE_QUARANTINE);
    expect_read_fault_after(MiB, 0, 0, 8);
    expect_read_fault_after(MiB, MiB - 1, 0, 8);
    expect_read_fault_after(200000, 4096, 0, 8);
}

/* free(p); q = malloc(same size): how often is q == p? 1,000 times for
 * each of several classes, after a warm-up that leaves blocks live. */
static void test_freed_block_is_not_handed_out_next(void **state) {
    static const size_t requests[] = {8, 48, 100, 256, 1000, 4000, 12000};
    enum { TRIALS = 1000, LIVE = 300 };
    static void *live[LIVE];
    size_t reused = 0, total = 0;
    for (size_t r = 0; r < sizeof requests / sizeof requests[0]; r++) {
        for (size_t i = 0; i < LIVE; i++) live[i] = malloc(requests[r]);
        for (size_t t = 0; t < TRIALS; t++) {
            void *p = malloc(requests[r]);
            assert_non_null(p);
            free(p);
            void *q = malloc(requests[r]);
            assert_non_null(q);
            reused += q == p;
            total++;
            free(q);
        }
        for (size_t i = 0; i < LIVE; i++) free(live[i]);
    }
    print_message("freed block handed out by the next malloc: %zu of %zu times\n", reused, total);
    if (bw_opaque_size(BW_QUARANTINE_SLOTS))
        assert_int_equal(reused, 0);
    else
        BW_REQUIRE(reused * 50 <= total, "%zu of %zu", reused, total); /* at most 2% */
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_use_after_free: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usable_size_after_free_small),
        cmocka_unit_test(test_usable_size_after_free_medium),
        cmocka_unit_test(test_usable_size_after_free_large),
        cmocka_unit_test(test_read_after_free_large_faults),
        cmocka_unit_test(test_read_after_free_large_faults_after_other_frees),
        cmocka_unit_test(test_read_after_free_large_faults_past_kept_budget),
        cmocka_unit_test(test_freed_block_is_not_handed_out_next),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

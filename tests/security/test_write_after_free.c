/* test_write_after_free.c — proves that a write into a freed block is
 * caught:
 *  - small blocks (BW_ZERO_ON_FREE + BW_WAF_CHECK_MAX): freed blocks are
 *    zeroed whole, and malloc checks the first BW_WAF_CHECK_MAX bytes of a
 *    block before handing it out again, so a stale write anywhere in that
 *    range is fatal when the block is reused, with
 *        bulwark: write after free of 0x<block> (<class>-byte class) in malloc
 *    and SIGABRT. Shown twice: with the quarantine emptied by malloc_trim(0)
 *    (the block is then on its slab's free list and the next mallocs of the
 *    class reach it), and under churn, where only further frees push the
 *    block out of the quarantine at a random moment; offsets from byte 8 to
 *    the last byte of the block, and deep offsets that only strict and fuzz
 *    check (BW_WAF_CHECK_MAX = 16384);
 *  - the first 8 bytes, where the free-list link goes once the block leaves
 *    the quarantine: a write there while it waits is fatal when it leaves,
 *    in the call that pushed it out (malloc_trim here);
 *  - large blocks (BW_LARGE_QUARANTINE): a write into a freed large block
 *    faults at once (SIGSEGV, no report).
 * A forked child never allocates from the slabs it inherited, so each child
 * makes its block itself and records its address for the report. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"

#define MiB ((size_t)1 << 20)

struct stale_write {
    size_t request;
    size_t offset;
    char *block; /* large blocks: made by the parent (the large path has no sealing) */
};

/* Enough mallocs of the class to drain every slab of it this heap has
 * (64 MiB worth, at least 4096 and at most 65536: a medium class keeps up to
 * 110 ways of 7 blocks open): the block, back on its slab's free list, is
 * handed out within them. */
static size_t drain_mallocs(size_t request) {
    size_t count = ((size_t)64 << 20) / BW_TEST_CLASS_FOR(request);
    return count < 4096 ? 4096 : count < 65536 ? count : 65536;
}

/* In the child: a block with a live neighbour in its slab (so the slab is
 * never released and purged behind the test's back), recorded for the
 * report. */
static char *child_block(size_t request) {
    void *pair[2];
    bw_test_malloc_in_one_slab(request, 2, pair);
    bw_test_record_address(pair[1]);
    return pair[1];
}

static void do_write_after_free_then_flush(void *arg) {
    const struct stale_write *op = arg;
    char *block = child_block(op->request);
    size_t drain = drain_mallocs(op->request);
    free(block);
    ((volatile char *)bw_launder(block))[op->offset] = 0x5a;
    malloc_trim(0); /* empties the quarantine: the block is on a free list */
    for (size_t i = 0; i < drain; i++) {
        if (!malloc(op->request)) _exit(2);
    }
    _exit(4); /* the block never came back */
}

/* No help from malloc_trim: free blocks of another class (once the
 * quarantine is full, each free pushes a random one of its
 * BW_QUARANTINE_SLOTS blocks out) while allocating the block's class without
 * freeing it (draining its slabs, so the block is handed out soon after it
 * leaves the quarantine). After filling the quarantine, 31 times its size in
 * frees leave the block inside with probability e^-31. Small classes only:
 * every round keeps a block of the class. */
#define CHURN_FILLER_SIZE 32
#define CHURN_ROUNDS      (32 * (BW_QUARANTINE_SLOTS + 1) + 4096)

static void do_write_after_free_under_churn(void *arg) {
    const struct stale_write *op = arg;
    char *block = child_block(op->request);
    void **fillers = malloc(CHURN_ROUNDS * sizeof *fillers);
    if (!fillers) _exit(2);
    for (size_t i = 0; i < CHURN_ROUNDS; i++) {
        fillers[i] = malloc(CHURN_FILLER_SIZE);
        if (!fillers[i]) _exit(2);
    }
    free(block);
    ((volatile char *)bw_launder(block))[op->offset] = 0x5a;
    for (size_t i = 0; i < CHURN_ROUNDS; i++) {
        free(fillers[i]);
        if (!malloc(op->request)) _exit(2);
    }
    _exit(4);
}

static void expect_write_after_free(size_t request, size_t offset, void (*body)(void *),
                                    const char *function) {
    char info[64];
    assert_true(offset < BW_TEST_CLASS_FOR(request));
    struct stale_write op = {request, offset, NULL};
    bw_expect_report_recorded(body, &op, "write after free",
                              bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(request)),
                              function);
}

/* The checked range of a block of this class: [8, min(class, max)). */
static size_t checked_end(size_t request) {
    size_t class_size = BW_TEST_CLASS_FOR(request);
    size_t check_max = bw_opaque_size(BW_WAF_CHECK_MAX); /* 0 in fast: no -Wtype-limits */
    return class_size < check_max ? class_size : check_max;
}

static void test_small_write_after_free_detected_at_reuse(void **state) {
    BW_SKIP_UNLESS(BW_ZERO_ON_FREE);
    BW_SKIP_UNLESS(BW_WAF_CHECK_MAX);
    static const size_t requests[] = {1,    40,   64,    200,
                                      1000, 4096, 40000, BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES};
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        size_t end = checked_end(requests[i]);
        expect_write_after_free(requests[i], 8, do_write_after_free_then_flush, "malloc");
        expect_write_after_free(requests[i], end / 2, do_write_after_free_then_flush, "malloc");
        expect_write_after_free(requests[i], end - 1, do_write_after_free_then_flush, "malloc");
    }
}

/* The last 8 bytes of a block hold its canary while it is live; once freed
 * they are zeroed and checked like the rest. */
static void test_small_write_after_free_into_canary_room(void **state) {
    BW_SKIP_UNLESS(BW_ZERO_ON_FREE);
    BW_SKIP_UNLESS(BW_CANARY);
    size_t request = 64 - BW_TEST_CANARY_BYTES; /* a 64-byte class */
    BW_SKIP_WHEN(BW_WAF_CHECK_MAX < 64, "BW_WAF_CHECK_MAX=%d < 64", BW_WAF_CHECK_MAX);
    expect_write_after_free(request, 63, do_write_after_free_then_flush, "malloc");
}

/* Bytes 0-7 are where the link goes when the block leaves the quarantine:
 * the release checks them (a write there used to vanish under the link). */
static void test_small_write_after_free_into_first_word(void **state) {
    BW_SKIP_UNLESS(BW_ZERO_ON_FREE);
    BW_SKIP_UNLESS(BW_QUARANTINE_SLOTS);
    static const size_t requests[] = {1, 64, 1000, BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES};
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        expect_write_after_free(requests[i], 0, do_write_after_free_then_flush, "malloc_trim");
        expect_write_after_free(requests[i], 7, do_write_after_free_then_flush, "malloc_trim");
    }
}

static void test_small_write_after_free_detected_under_churn(void **state) {
    BW_SKIP_UNLESS(BW_ZERO_ON_FREE);
    BW_SKIP_UNLESS(BW_WAF_CHECK_MAX);
    expect_write_after_free(48, 24, do_write_after_free_under_churn, "malloc");
    expect_write_after_free(100, 100, do_write_after_free_under_churn, "malloc");
}

/* Beyond 256 bytes only a whole-block check sees the write. */
static void test_small_write_after_free_deep_in_block(void **state) {
    BW_SKIP_UNLESS(BW_ZERO_ON_FREE);
    BW_SKIP_WHEN(BW_WAF_CHECK_MAX < BW_TEST_SMALL_MAX,
                 "BW_WAF_CHECK_MAX=%d checks less than a whole block", BW_WAF_CHECK_MAX);
    expect_write_after_free(4096, 4000, do_write_after_free_then_flush, "malloc");
    expect_write_after_free(BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES, BW_TEST_SMALL_MAX - 1,
                            do_write_after_free_then_flush, "malloc");
}

/* ------------------------------------------------------------ large */

static void do_large_write_after_free(void *arg) {
    const struct stale_write *op = arg;
    free(op->block);
    ((volatile char *)bw_launder(op->block))[op->offset] = 0x5a;
}

static void test_large_write_after_free_faults(void **state) {
    BW_SKIP_UNLESS(BW_LARGE_QUARANTINE);
    static const size_t sizes[] = {BW_TEST_SMALL_MAX + 1, 200000, MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *block = malloc(sizes[i]);
        assert_non_null(block);
        size_t offsets[] = {0, sizes[i] / 2, sizes[i] - 1};
        for (size_t j = 0; j < 3; j++) {
            struct stale_write op = {sizes[i], offsets[j], block};
            char *page = (char *)((uintptr_t)(block + offsets[j]) & ~(uintptr_t)(BW_TEST_PAGE - 1));
            bw_expect_fault_in(do_large_write_after_free, &op, page, page + BW_TEST_PAGE);
        }
        free(block);
    }
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_write_after_free: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    if (!BW_ZERO_ON_FREE && !BW_LARGE_QUARANTINE) {
        printf("skipped: BW_ZERO_ON_FREE=0, BW_WAF_CHECK_MAX=%d and BW_LARGE_QUARANTINE=0 in "
               "profile %s\n",
               BW_WAF_CHECK_MAX, BW_PROFILE_NAME);
        return 77;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_write_after_free_detected_at_reuse),
        cmocka_unit_test(test_small_write_after_free_into_canary_room),
        cmocka_unit_test(test_small_write_after_free_into_first_word),
        cmocka_unit_test(test_small_write_after_free_detected_under_churn),
        cmocka_unit_test(test_small_write_after_free_deep_in_block),
        cmocka_unit_test(test_large_write_after_free_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

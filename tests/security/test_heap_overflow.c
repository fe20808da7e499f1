/* test_heap_overflow.c — proves that writing past the end of a block is
 * caught, by the canary or by a guard page, and that writing up to the end
 * of malloc_usable_size never is:
 *  - small blocks (BW_CANARY): one byte or eight bytes written at
 *    p[malloc_usable_size(p)] are fatal at the next free, realloc or
 *    free_sized with
 *        bulwark: heap overflow of 0x<block> (<class>-byte class) in <function>
 *    and SIGABRT, for classes from 16 bytes to the largest;
 *  - large blocks: the bytes after malloc_usable_size are the canary (BW_CANARY
 *    without BW_LARGE_RIGHT_ALIGN: report "(<mapping>-byte mapping)" at free
 *    or realloc) or the trailing guard page (SIGSEGV at the first byte past
 *    the usable size); a linear overflow always ends at that guard, an
 *    underflow at the leading one; with BW_LARGE_RIGHT_ALIGN a block of a
 *    multiple of 16 bytes ends exactly at its guard, so p[size] faults;
 *  - a large block realloc grew (left-aligned, with room to grow in place,
 *    in every profile) keeps a canary: one byte past its usable size is
 *    "heap overflow" at free (BW_CANARY), also where new large blocks are
 *    right-aligned instead;
 *  - a linear overflow from a small block across the end of its slab
 *    (memset) faults on the slab's guard page (BW_SLAB_GUARD), at the first
 *    byte of that page;
 *  - no false positive: every usable byte may be written, in every profile. */
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

#define MiB          ((size_t)1 << 20)
#define LARGE_CANARY (BW_CANARY && !BW_LARGE_RIGHT_ALIGN)

static volatile uintptr_t sink;

/* Requests covering the smallest class, a few in between, and the largest. */
static const size_t small_requests[] = {
    1, 8, 24, 64, 100, 1000, 4096, 10000, BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES};
#define SMALL_REQUEST_COUNT (sizeof small_requests / sizeof small_requests[0])

/* Large requests: just above the small limit, page multiples, odd sizes. */
static const size_t large_requests[] = {
    BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES + 1, 20000, 65536, 100000, MiB, MiB + 1};
#define LARGE_REQUEST_COUNT (sizeof large_requests / sizeof large_requests[0])

/* ------------------------------------------------------------ child bodies */

struct overflow {
    char *block;
    size_t offset; /* first byte written */
    size_t length; /* bytes written */
    int then;      /* what follows the write */
};

enum { THEN_FREE, THEN_REALLOC_GROW, THEN_REALLOC_SAME, THEN_FREE_SIZED, THEN_NOTHING };

static void do_overflow(void *arg) {
    const struct overflow *op = arg;
    /* Every byte written differs from what was there: a constant could
     * match a random canary byte (1 time in 256 for a one-byte overflow
     * into the canary's top byte, a flaky test) and a zero its first byte. */
    volatile unsigned char *bytes = (unsigned char *)bw_launder(op->block) + op->offset;
    for (size_t i = 0; i < op->length; i++) bytes[i] = (unsigned char)(bytes[i] ^ 0xa5);
    switch (op->then) {
    case THEN_FREE:
        free(op->block);
        break;
    case THEN_REALLOC_GROW:
        sink = (uintptr_t)realloc(op->block, 4 * op->offset + 100);
        break;
    case THEN_REALLOC_SAME:
        sink = (uintptr_t)realloc(op->block, op->offset);
        break;
    case THEN_FREE_SIZED:
        free_sized(op->block, op->offset);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------ small canary */

static void expect_small_overflow(size_t request, size_t length, int then, const char *function) {
    char info[64];
    char *block = malloc(request);
    assert_non_null(block);
    size_t usable = malloc_usable_size(block);
    assert_int_equal(usable + BW_TEST_CANARY_BYTES, BW_TEST_CLASS_FOR(request));
    struct overflow op = {block, usable, length, then};
    bw_expect_report(do_overflow, &op, "heap overflow", block,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(request)), function);
    free(block);
}

static void test_small_one_byte_overflow_at_free(void **state) {
    BW_SKIP_UNLESS(BW_CANARY);
    for (size_t i = 0; i < SMALL_REQUEST_COUNT; i++)
        expect_small_overflow(small_requests[i], 1, THEN_FREE, "free");
}

static void test_small_eight_byte_overflow_at_free(void **state) {
    BW_SKIP_UNLESS(BW_CANARY);
    for (size_t i = 0; i < SMALL_REQUEST_COUNT; i++)
        expect_small_overflow(small_requests[i], 8, THEN_FREE, "free");
}

/* The last byte of the canary alone. */
static void test_small_overflow_of_last_canary_byte(void **state) {
    BW_SKIP_UNLESS(BW_CANARY);
    char info[64];
    char *block = malloc(64);
    assert_non_null(block);
    struct overflow op = {block, malloc_usable_size(block) + 7, 1, THEN_FREE};
    bw_expect_report(do_overflow, &op, "heap overflow", block,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(64)), "free");
    free(block);
}

static void test_small_overflow_at_realloc_and_free_sized(void **state) {
    BW_SKIP_UNLESS(BW_CANARY);
    for (size_t i = 0; i < SMALL_REQUEST_COUNT; i++) {
        expect_small_overflow(small_requests[i], 1, THEN_REALLOC_GROW, "realloc");
        expect_small_overflow(small_requests[i], 1, THEN_REALLOC_SAME, "realloc");
        expect_small_overflow(small_requests[i], 1, THEN_FREE_SIZED, "free_sized");
    }
}

/* ------------------------------------------------------------ large blocks */

static void expect_large_canary_overflow(size_t request, size_t length, int then,
                                         const char *function) {
    char info[64];
    char *block = malloc(request);
    assert_non_null(block);
    size_t usable = malloc_usable_size(block);
    assert_true(usable >= request);
    struct overflow op = {block, usable, length, then};
    bw_expect_report(do_overflow, &op, "heap overflow", block,
                     bw_info_mapping(info, sizeof info, BW_TEST_LARGE_MAP_SIZE(usable)), function);
    free(block);
}

static void test_large_overflow_caught_by_canary(void **state) {
    BW_SKIP_UNLESS(BW_CANARY);
    BW_SKIP_WHEN(BW_LARGE_RIGHT_ALIGN, "BW_LARGE_RIGHT_ALIGN=1 (large blocks end at their guard "
                                       "page instead of a canary)");
    for (size_t i = 0; i < LARGE_REQUEST_COUNT; i++) {
        expect_large_canary_overflow(large_requests[i], 1, THEN_FREE, "free");
        expect_large_canary_overflow(large_requests[i], 8, THEN_FREE, "free");
        expect_large_canary_overflow(large_requests[i], 1, THEN_REALLOC_GROW, "realloc");
        expect_large_canary_overflow(large_requests[i], 1, THEN_REALLOC_SAME, "realloc");
        expect_large_canary_overflow(large_requests[i], 1, THEN_FREE_SIZED, "free_sized");
    }
}

/* Without a large canary the first byte past the usable size is the
 * trailing guard page. */
static void test_large_one_byte_overflow_faults(void **state) {
    BW_SKIP_WHEN(LARGE_CANARY, "BW_CANARY=1 and BW_LARGE_RIGHT_ALIGN=0 (the canary is there)");
    for (size_t i = 0; i < LARGE_REQUEST_COUNT; i++) {
        char *block = malloc(large_requests[i]);
        assert_non_null(block);
        char *end = block + malloc_usable_size(block);
        struct overflow op = {block, (size_t)(end - block), 1, THEN_NOTHING};
        bw_expect_fault_in(do_overflow, &op, end, end + 1);
        free(block);
    }
}

/* A linear overflow runs through any canary into the trailing guard, in
 * every profile; the fault is at the guard's first byte. */
static void test_large_linear_overflow_faults_at_guard(void **state) {
    for (size_t i = 0; i < LARGE_REQUEST_COUNT; i++) {
        char *block = malloc(large_requests[i]);
        assert_non_null(block);
        size_t usable = malloc_usable_size(block);
        char *guard = block + usable + BW_TEST_LARGE_CANARY_BYTES;
        assert_true(((uintptr_t)guard & (BW_TEST_PAGE - 1)) == 0);
        struct overflow op = {block, 0, usable + BW_TEST_LARGE_CANARY_BYTES + 64, THEN_NOTHING};
        bw_expect_fault_in(do_overflow, &op, guard, guard + BW_TEST_PAGE);
        free(block);
    }
}

/* realloc growing a block into or within the large range gives it room to
 * grow again, so it is not right-aligned even with BW_LARGE_RIGHT_ALIGN:
 * its canary sits before the trailing guard, in every canary profile. */
static void test_large_grown_block_keeps_a_canary(void **state) {
    BW_SKIP_UNLESS(BW_CANARY);
    static const size_t growths[][2] = {{100, 30000}, {20000, 30000}, {MiB, MiB + 1}};
    for (size_t i = 0; i < sizeof growths / sizeof growths[0]; i++) {
        char info[64];
        char *old = malloc(growths[i][0]);
        assert_non_null(old);
        char *block = realloc(old, growths[i][1]);
        assert_non_null(block);
        size_t usable = malloc_usable_size(block);
        assert_true(usable >= growths[i][1]);
        /* the canary's 8 bytes, then the trailing guard page */
        size_t map_size = ((usable + 8 + BW_TEST_PAGE - 1) & ~(size_t)(BW_TEST_PAGE - 1)) +
                          2 * (size_t)BW_TEST_PAGE;
        struct overflow op = {block, usable, 1, THEN_FREE};
        bw_expect_report(do_overflow, &op, "heap overflow", block,
                         bw_info_mapping(info, sizeof info, map_size), "free");
        free(block);
    }
}

/* BW_LARGE_RIGHT_ALIGN: a request that is a multiple of 16 (the alignment
 * malloc guarantees) ends exactly at the guard page, so p[size] faults
 * whether or not the size is a page multiple. */
static void test_large_right_aligned_overflow_by_one_faults(void **state) {
    BW_SKIP_UNLESS(BW_LARGE_RIGHT_ALIGN);
    static const size_t sizes[] = {BW_TEST_SMALL_MAX + 16, 20000, 65536, 100000, MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *block = malloc(sizes[i]);
        assert_non_null(block);
        assert_int_equal(malloc_usable_size(block), sizes[i]);
        struct overflow op = {block, sizes[i], 1, THEN_NOTHING};
        bw_expect_fault_in(do_overflow, &op, block + sizes[i], block + sizes[i] + 1);
        free(block);
    }
}

/* The byte before the first page of a large block is the leading guard;
 * for a page-multiple request that is p[-1] in every profile. */
static void do_underflow(void *arg) {
    char *below = arg;
    *(volatile char *)bw_launder(below) = 0x5a;
}

static void test_large_underflow_faults(void **state) {
    for (size_t i = 0; i < LARGE_REQUEST_COUNT; i++) {
        char *block = malloc(large_requests[i]);
        assert_non_null(block);
        char *below = (char *)((uintptr_t)block & ~(uintptr_t)(BW_TEST_PAGE - 1)) - 1;
        if (large_requests[i] % BW_TEST_PAGE == 0) assert_ptr_equal(below, block - 1);
        bw_expect_fault_in(do_underflow, below, below, below + 1);
        free(block);
    }
}

/* ------------------------------------------------------------ slab guard */

/* memset from a block of the slab to one byte into the guard page at the
 * slab's end: everything before the guard is writable (other blocks, in
 * the child; in a two-slot slab also the page between its slots), the
 * guard's first byte faults. */
static void test_linear_overflow_across_slab_end_faults(void **state) {
    BW_SKIP_UNLESS(BW_SLAB_GUARD);
    for (size_t i = 0; i < SMALL_REQUEST_COUNT; i++) {
        char *block = malloc(small_requests[i]);
        assert_non_null(block);
        char *guard = BW_TEST_SLAB_GUARD_OF(block, BW_TEST_CLASS_FOR(small_requests[i]));
        assert_true(guard > block);
        struct overflow op = {block, 0, (size_t)(guard - block) + 1, THEN_NOTHING};
        bw_expect_fault_in(do_overflow, &op, guard, guard + 1);
        free(block);
    }
}

/* ------------------------------------------------------------ no false positive */

static void do_fill_usable_then_free(void *arg) {
    (void)arg;
    for (size_t i = 0; i < SMALL_REQUEST_COUNT; i++) {
        char *block = malloc(small_requests[i]);
        memset(block, 0xa5, malloc_usable_size(block));
        free(block);
        block = malloc(small_requests[i]);
        memset(block, 0xa5, malloc_usable_size(block));
        block = realloc(block, small_requests[i] * 3);
        memset(block, 0xa5, malloc_usable_size(block));
        free_sized(block, small_requests[i] * 3);
    }
    for (size_t i = 0; i < LARGE_REQUEST_COUNT; i++) {
        char *block = malloc(large_requests[i]);
        memset(block, 0xa5, malloc_usable_size(block));
        free(block);
        block = malloc(large_requests[i]);
        memset(block, 0xa5, malloc_usable_size(block));
        block = realloc(block, large_requests[i] + large_requests[i] / 4);
        memset(block, 0xa5, malloc_usable_size(block));
        block = realloc(block, large_requests[i] * 3);
        memset(block, 0xa5, malloc_usable_size(block));
        free_sized(block, large_requests[i] * 3);
    }
}

static void test_writing_the_usable_size_is_not_an_overflow(void **state) {
    bw_expect_no_report(do_fill_usable_then_free, NULL);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_heap_overflow: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_one_byte_overflow_at_free),
        cmocka_unit_test(test_small_eight_byte_overflow_at_free),
        cmocka_unit_test(test_small_overflow_of_last_canary_byte),
        cmocka_unit_test(test_small_overflow_at_realloc_and_free_sized),
        cmocka_unit_test(test_large_overflow_caught_by_canary),
        cmocka_unit_test(test_large_one_byte_overflow_faults),
        cmocka_unit_test(test_large_linear_overflow_faults_at_guard),
        cmocka_unit_test(test_large_right_aligned_overflow_by_one_faults),
        cmocka_unit_test(test_large_grown_block_keeps_a_canary),
        cmocka_unit_test(test_large_underflow_faults),
        cmocka_unit_test(test_linear_overflow_across_slab_end_faults),
        cmocka_unit_test(test_writing_the_usable_size_is_not_an_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_heap_overflow.c — proves that writing past the end of a block is
 * caught, by the canary or by a guard page, and that writing up to the end
 * of malloc_usable_size never is:
 *  - small blocks (BW_CANARY): one byte or eight bytes written at
 *    p[malloc_usable_size(p)] are fatal at the next free, realloc or
 *    free_sized with
 *        bulwark: heap overflow of 0x<block> (<class>-byte class) in <function>
 *    and SIGABRT, for classes from 16 bytes to the largest; so is a NUL
 *    byte there (the canary has no fixed zero byte);
 *  - byte-exact (BW_EXACT_SIZE): malloc_usable_size is the request, and any
 *    byte written between the request and the end of the block is fatal at
 *    free, the terminator of a string copied into malloc(strlen(s))
 *    included, also after realloc kept a block in place at another size;
 *  - large blocks: the bytes after malloc_usable_size are the canary
 *    (BW_CANARY without BW_LARGE_RIGHT_ALIGN: 8 random bytes right after the
 *    request, NUL-proof; report "(<mapping>-byte mapping)" at free or
 *    realloc; a request of whole pages has none: it ends at its guard), the
 *    pattern before the trailing guard (BW_EXACT_SIZE with
 *    BW_LARGE_RIGHT_ALIGN, a request not a multiple of 16), or the trailing
 *    guard page (SIGSEGV at the first byte past the usable size); a linear
 *    overflow always ends at that guard, an underflow at the leading one;
 *    with BW_LARGE_RIGHT_ALIGN a block of a multiple of 16 bytes ends
 *    exactly at its guard, so p[size] faults;
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

/* A large request of whole pages ends at its guard page: no canary. */
static bool large_has_canary(size_t request) {
    return LARGE_CANARY && request % BW_TEST_PAGE != 0;
}

static volatile uintptr_t sink;

/* Requests covering the smallest class, a few in between, and the largest. */
static const size_t small_requests[] = {
    1,    8,     24,    64,    100,   1000,
    4096, 10000, 20000, 40000, 65536, BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES};
#define SMALL_REQUEST_COUNT (sizeof small_requests / sizeof small_requests[0])

/* Large requests: just above the small limit, page multiples, odd sizes. */
static const size_t large_requests[] = {
    BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES + 1, 140000, 262144, 200000, MiB, MiB + 1};
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
    assert_int_equal(usable, BW_TEST_USABLE_FOR(request));
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
    struct overflow op = {block, BW_TEST_CLASS_FOR(64) - 1, 1, THEN_FREE};
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

/* A zero byte at p[malloc_usable_size(p)], the terminator a string copy
 * off by one writes. */
static void do_write_zero_then_free(void *arg) {
    const struct overflow *op = arg;
    ((volatile char *)bw_launder(op->block))[op->offset] = 0;
    free(op->block);
}

/* An off-by-one NUL lands on the first byte past the usable size: the
 * slack pattern's or the canary's first byte, neither ever zero. 2,000
 * blocks of each size (a secret byte would be zero in about 8 of them)
 * show it, then one NUL is written and must be reported. */
#define NUL_PROBE_BLOCKS 2000
static void test_small_nul_past_usable_size_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_CANARY);
    char info[64];
    static char *probe[NUL_PROBE_BLOCKS];
    for (size_t i = 0; i < SMALL_REQUEST_COUNT; i++) {
        size_t request = small_requests[i];
        size_t blocks = request > 4096 ? NUL_PROBE_BLOCKS / 20 : NUL_PROBE_BLOCKS;
        for (size_t b = 0; b < blocks; b++) {
            probe[b] = malloc(request);
            assert_non_null(probe[b]);
            assert_int_not_equal(probe[b][malloc_usable_size(probe[b])], 0);
        }
        for (size_t b = 0; b < blocks; b++) free(probe[b]);
        char *block = malloc(request);
        assert_non_null(block);
        struct overflow op = {block, malloc_usable_size(block), 1, THEN_FREE};
        bw_expect_report(do_write_zero_then_free, &op, "heap overflow", block,
                         bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(request)), "free");
        free(block);
    }
}

/* BW_EXACT_SIZE: every byte past the request, up to the canary. */
static void test_small_overflow_into_slack_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_EXACT_SIZE);
    char info[64];
    static const size_t requests[] = {1, 13, 20, 50, 64, 100, 1000, 5000};
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        size_t request = requests[i];
        size_t slack_end = BW_TEST_CLASS_FOR(request) - BW_TEST_CANARY_BYTES;
        assert_true(slack_end > request);
        size_t offsets[] = {request, (request + slack_end) / 2, slack_end - 1};
        for (size_t j = 0; j < 3; j++) {
            char *block = malloc(request);
            assert_non_null(block);
            assert_int_equal(malloc_usable_size(block), request);
            struct overflow op = {block, offsets[j], 1, j == 1 ? THEN_FREE_SIZED : THEN_FREE};
            bw_expect_report(do_overflow, &op, "heap overflow", block,
                             bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(request)),
                             j == 1 ? "free_sized" : "free");
            free(block);
        }
    }
}

/* The classic: a copy of a string into malloc(strlen(s)), its terminator
 * one byte past the block (in the slack for every length here). */
static void do_string_copy_off_by_one(void *arg) {
    size_t length = *(const size_t *)arg;
    char text[64];
    memset(text, 'x', length);
    text[length] = 0;
    char *copy = bw_launder(malloc(strlen(text)));
    if (!copy) _exit(2);
    bw_test_record_address(copy);
    memcpy(copy, text, length + 1);
    free(copy);
}

static void test_string_copy_into_strlen_bytes_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_EXACT_SIZE);
    char info[64];
    for (size_t length = 1; length < 48; length++) {
        if (BW_TEST_CLASS_FOR(length) - BW_TEST_CANARY_BYTES == length) continue; /* no slack */
        bw_expect_report_recorded(do_string_copy_off_by_one, &length, "heap overflow",
                                  bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(length)),
                                  "free");
    }
}

/* realloc that keeps a block in place at another size moves the boundary
 * the check uses: one byte past the new size is an overflow. */
struct resize {
    size_t from, to;
};

static void do_overflow_after_resize(void *arg) {
    const struct resize *op = arg;
    char *block = malloc(op->from);
    char *kept = realloc(block, op->to);
    if (!kept || kept != block) _exit(3); /* the premise: realloc kept it */
    bw_test_record_address(kept);
    ((volatile char *)bw_launder(kept))[op->to] ^= 0xa5;
    free(kept);
}

static void test_small_overflow_after_realloc_in_place(void **state) {
    BW_SKIP_UNLESS(BW_EXACT_SIZE);
    char info[64];
    static const struct resize resizes[] = {{100, 60}, {60, 70}, {1000, 600}, {600, 630}};
    for (size_t i = 0; i < sizeof resizes / sizeof resizes[0]; i++) {
        struct resize op = resizes[i];
        bw_expect_report_recorded(do_overflow_after_resize, &op, "heap overflow",
                                  bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(op.from)),
                                  "free");
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
        if (!large_has_canary(large_requests[i])) continue;
        expect_large_canary_overflow(large_requests[i], 1, THEN_FREE, "free");
        expect_large_canary_overflow(large_requests[i], 8, THEN_FREE, "free");
        expect_large_canary_overflow(large_requests[i], 1, THEN_REALLOC_GROW, "realloc");
        expect_large_canary_overflow(large_requests[i], 1, THEN_REALLOC_SAME, "realloc");
        expect_large_canary_overflow(large_requests[i], 1, THEN_FREE_SIZED, "free_sized");
    }
}

/* A zero byte right after a large block's request: its canary's first
 * byte, random per block (a block whose canary starts with zero, 1 in 256,
 * is passed over as for small blocks). */
static void test_large_nul_past_usable_size_is_reported(void **state) {
    BW_SKIP_UNLESS(LARGE_CANARY);
    char info[64];
    for (size_t i = 0; i < LARGE_REQUEST_COUNT; i++) {
        if (!large_has_canary(large_requests[i])) continue;
        char *spare[8];
        size_t spares = 0;
        char *block = malloc(large_requests[i]);
        while (block && block[malloc_usable_size(block)] == 0 && spares < 8) {
            spare[spares++] = block;
            block = malloc(large_requests[i]);
        }
        assert_non_null(block);
        size_t usable = malloc_usable_size(block);
        struct overflow op = {block, usable, 1, THEN_FREE};
        bw_expect_report(do_write_zero_then_free, &op, "heap overflow", block,
                         bw_info_mapping(info, sizeof info, BW_TEST_LARGE_MAP_SIZE(usable)),
                         "free");
        free(block);
        while (spares) free(spare[--spares]);
    }
}

/* Without a large canary (fast; strict and fuzz, whose large blocks end at
 * their guard; whole-page requests in every profile) the first byte past
 * the usable size is the trailing guard page. */
/* The first byte after a large block's region: the trailing guard page. */
static char *region_end(const char *block, size_t usable) {
    return (char *)(((uintptr_t)block + usable + BW_TEST_PAGE - 1) &
                    ~(uintptr_t)(BW_TEST_PAGE - 1));
}

static void test_large_one_byte_overflow_faults(void **state) {
    for (size_t i = 0; i < LARGE_REQUEST_COUNT; i++) {
        if (large_has_canary(large_requests[i])) continue;
        char *block = malloc(large_requests[i]);
        assert_non_null(block);
        /* BW_EXACT_SIZE: a request not a multiple of 16 is followed by a
         * few bytes of pattern (checked at free, see below), then the guard. */
        char *end = region_end(block, malloc_usable_size(block));
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
        char *guard = region_end(block, usable + BW_TEST_LARGE_CANARY_FOR(usable));
        struct overflow op = {block, 0, (size_t)(guard - block) + 64, THEN_NOTHING};
        bw_expect_fault_in(do_overflow, &op, guard, guard + BW_TEST_PAGE);
        free(block);
    }
}

/* realloc growing a block into or within the large range gives it room to
 * grow again, so it is not right-aligned even with BW_LARGE_RIGHT_ALIGN:
 * its canary sits before the trailing guard, in every canary profile. */
static void test_large_grown_block_keeps_a_canary(void **state) {
    BW_SKIP_UNLESS(BW_CANARY);
    static const size_t growths[][2] = {{100, 300000}, {150000, 300000}, {MiB, MiB + 1}};
    for (size_t i = 0; i < sizeof growths / sizeof growths[0]; i++) {
        char info[64];
        char *old = malloc(growths[i][0]);
        assert_non_null(old);
        size_t old_usable = malloc_usable_size(old);
        char *block = realloc(old, growths[i][1]);
        assert_non_null(block);
        size_t usable = malloc_usable_size(block);
        assert_true(usable >= growths[i][1]);
        /* Moved, or grown in place into the free pages after it: room for
         * half as much again, the canary's 8 bytes, then the trailing guard
         * page. Fitting as it was: the mapping of the old block. */
        bool fitted = block == old && growths[i][1] <= old_usable;
        size_t room = fitted ? growths[i][0] : growths[i][1] + growths[i][1] / 2;
        size_t map_size = ((room + 8 + BW_TEST_PAGE - 1) & ~(size_t)(BW_TEST_PAGE - 1)) +
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
    static const size_t sizes[] = {BW_TEST_SMALL_MAX + 16, 140000, 262144, 200000, MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *block = malloc(sizes[i]);
        assert_non_null(block);
        assert_int_equal(malloc_usable_size(block), sizes[i]);
        struct overflow op = {block, sizes[i], 1, THEN_NOTHING};
        bw_expect_fault_in(do_overflow, &op, block + sizes[i], block + sizes[i] + 1);
        free(block);
    }
}

/* BW_EXACT_SIZE with right-aligned large blocks: a request that is not a
 * multiple of 16 leaves up to 15 bytes before the guard, checked at free. */
static void test_large_right_aligned_slack_overflow_is_reported(void **state) {
    BW_SKIP_UNLESS(BW_LARGE_RIGHT_ALIGN);
    BW_SKIP_UNLESS(BW_EXACT_SIZE);
    char info[64];
    static const size_t sizes[] = {BW_TEST_SMALL_MAX + 1, 140001, 200007, MiB + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *block = malloc(sizes[i]);
        assert_non_null(block);
        assert_int_equal(malloc_usable_size(block), sizes[i]);
        size_t offsets[] = {sizes[i], (size_t)(region_end(block, sizes[i]) - block) - 1};
        for (size_t j = 0; j < 2; j++) {
            struct overflow op = {block, offsets[j], 1, THEN_FREE};
            bw_expect_report(do_overflow, &op, "heap overflow", block,
                             bw_info_mapping(info, sizeof info, BW_TEST_LARGE_MAP_SIZE(sizes[i])),
                             "free");
        }
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
        cmocka_unit_test(test_small_nul_past_usable_size_is_reported),
        cmocka_unit_test(test_small_overflow_into_slack_is_reported),
        cmocka_unit_test(test_string_copy_into_strlen_bytes_is_reported),
        cmocka_unit_test(test_small_overflow_after_realloc_in_place),
        cmocka_unit_test(test_large_overflow_caught_by_canary),
        cmocka_unit_test(test_large_nul_past_usable_size_is_reported),
        cmocka_unit_test(test_large_one_byte_overflow_faults),
        cmocka_unit_test(test_large_linear_overflow_faults_at_guard),
        cmocka_unit_test(test_large_right_aligned_overflow_by_one_faults),
        cmocka_unit_test(test_large_right_aligned_slack_overflow_is_reported),
        cmocka_unit_test(test_large_grown_block_keeps_a_canary),
        cmocka_unit_test(test_large_underflow_faults),
        cmocka_unit_test(test_linear_overflow_across_slab_end_faults),
        cmocka_unit_test(test_writing_the_usable_size_is_not_an_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

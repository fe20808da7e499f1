/* test_free_size_mismatch.c — proves that free_sized and free_aligned_sized
 * with a size that cannot belong to the block are fatal with
 *     bulwark: free size mismatch of 0x<block> (<info>) in <function>
 * and SIGABRT (the info names the block's class, or its mapping's size for
 * a large block), for small, medium and large blocks, sizes too small and
 * too large; and that every size that can belong to the block is accepted
 * without a report (CONVENTIONS trap 16: class rounding, canary room and
 * page rounding must not turn a correct sized free into a false positive):
 * the requested size and malloc_usable_size, for every small request size
 * and a range of large ones, and the size a realloc that kept the block in
 * place was given (C23). Sized C++ delete is tested with the C++ API. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"

#define MiB ((size_t)1 << 20)

struct sized {
    void *block;
    size_t size;
    size_t alignment;
};

static void do_free_sized(void *arg) {
    const struct sized *op = arg;
    free_sized(bw_launder(op->block), op->size);
}

static void do_free_aligned_sized(void *arg) {
    const struct sized *op = arg;
    free_aligned_sized(bw_launder(op->block), op->alignment, op->size);
}

static void expect_small_mismatch(size_t request, size_t claimed) {
    char info[64];
    struct sized op = {malloc(request), claimed, 0};
    assert_non_null(op.block);
    bw_expect_report(do_free_sized, &op, "free size mismatch", op.block,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(request)), "free_sized");
    free(op.block);
}

static void expect_large_mismatch(size_t request, size_t claimed) {
    char info[64];
    struct sized op = {malloc(request), claimed, 0};
    assert_non_null(op.block);
    size_t map_size = BW_TEST_LARGE_MAP_SIZE(malloc_usable_size(op.block));
    bw_expect_report(do_free_sized, &op, "free size mismatch", op.block,
                     bw_info_mapping(info, sizeof info, map_size), "free_sized");
    free(op.block);
}

static void test_free_sized_small_too_large(void **state) {
    expect_small_mismatch(64, 4096);
    expect_small_mismatch(64, 100);
    expect_small_mismatch(64, MiB);
}

static void test_free_sized_small_too_small(void **state) {
    expect_small_mismatch(64, 16);
    expect_small_mismatch(64, 0);
    expect_small_mismatch(200, 100);
}

static void test_free_sized_medium(void **state) {
    expect_small_mismatch(4096, 64);
    expect_small_mismatch(4096, 8192);
    expect_small_mismatch(BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES, 4096);
    expect_small_mismatch(BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES, BW_TEST_SMALL_MAX * 2);
}

static void test_free_sized_large(void **state) {
    expect_large_mismatch(MiB, 100);
    expect_large_mismatch(MiB, BW_TEST_SMALL_MAX);
    expect_large_mismatch(MiB, MiB - 2 * BW_TEST_PAGE);
    expect_large_mismatch(MiB, 2 * MiB);
    expect_large_mismatch(200000, 64);
    expect_large_mismatch(200000, 400000);
}

static void test_free_aligned_sized_size_mismatch(void **state) {
    char info[64];
    struct sized small = {aligned_alloc(64, 64), 4096, 64};
    struct sized large = {aligned_alloc(4096, MiB), 64, 4096};
    assert_non_null(small.block);
    assert_non_null(large.block);
    size_t small_class = bw_test_class_aligned(64, 64);
    size_t map_size = BW_TEST_LARGE_MAP_SIZE(malloc_usable_size(large.block));
    bw_expect_report(do_free_aligned_sized, &small, "free size mismatch", small.block,
                     bw_info_class(info, sizeof info, small_class), "free_aligned_sized");
    bw_expect_report(do_free_aligned_sized, &large, "free size mismatch", large.block,
                     bw_info_mapping(info, sizeof info, map_size), "free_aligned_sized");
    free(small.block);
    free(large.block);
}

/* ------------------------------------------------------------ no false positives */

/* Every request size of every small class, freed with the size requested
 * and with the usable size; then large sizes around page boundaries. A
 * false positive kills the child with a report; a wrong usable size exits
 * 3. */
static void do_correct_sized_frees(void *arg) {
    (void)arg;
    for (size_t size = 1; size <= BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES; size++) {
        void *block = malloc(size);
        if (!block || malloc_usable_size(block) < size) _exit(3);
        free_sized(block, size);
        block = malloc(size);
        if (!block) _exit(3);
        free_sized(block, malloc_usable_size(block));
    }
    /* C23 lets free_sized name the size given to the last realloc, and a
     * realloc that shrinks a block to more than half of it keeps it in
     * place, in another class's range: malloc(1000), realloc(p, 600),
     * free_sized(p, 600) (reported as a size mismatch before). */
    for (size_t size = 17; size <= BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES; size += 13) {
        char *block = malloc(size);
        size_t smaller = size / 2 + size / 8 + 1;
        char *kept = block ? realloc(block, smaller) : NULL;
        if (!kept) _exit(3);
        free_sized(kept, smaller);
    }
    char *shrunk = realloc(malloc(1000), 600);
    if (!shrunk) _exit(3);
    free_sized(shrunk, 600);
    static const size_t large[] = {BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES + 1,
                                   BW_TEST_SMALL_MAX + 1,
                                   20000,
                                   65536 - 8,
                                   65536,
                                   65536 + 1,
                                   100000,
                                   200000,
                                   MiB - 1,
                                   MiB,
                                   MiB + 4095,
                                   4 * MiB + 7};
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
        void *block = malloc(large[i]);
        if (!block || malloc_usable_size(block) < large[i]) _exit(3);
        free_sized(block, large[i]);
        block = malloc(large[i]);
        if (!block) _exit(3);
        free_sized(block, malloc_usable_size(block));
        block = aligned_alloc(4096, large[i]);
        if (!block) _exit(3);
        free_aligned_sized(block, 4096, large[i]);
    }
    for (size_t size = 1; size <= 4096; size += 7) {
        void *block = aligned_alloc(64, size);
        if (!block) _exit(3);
        free_aligned_sized(block, 64, size);
    }
}

static void test_correct_sizes_are_accepted(void **state) {
    bw_expect_no_report(do_correct_sized_frees, NULL);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr,
                "test_free_size_mismatch: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_sized_small_too_large),
        cmocka_unit_test(test_free_sized_small_too_small),
        cmocka_unit_test(test_free_sized_medium),
        cmocka_unit_test(test_free_sized_large),
        cmocka_unit_test(test_free_aligned_sized_size_mismatch),
        cmocka_unit_test(test_correct_sizes_are_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

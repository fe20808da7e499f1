/* test_free_alignment_mismatch.c — proves that free_aligned_sized with an
 * alignment the block was not allocated with is fatal with
 *     bulwark: free alignment mismatch of 0x<block> (<info>) in free_aligned_sized
 * and SIGABRT: a small or large block claimed to be aligned more than it
 * is, a small block claimed with the right size but a larger alignment of a
 * class it does not have, and an alignment that is not a power of two. The
 * accepted cases (the alignment used, or less) are in
 * test_free_size_mismatch.c's no-false-positive sweep. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

static void do_free_aligned_sized(void *arg) {
    const struct sized *op = arg;
    free_aligned_sized(bw_launder(op->block), op->alignment, op->size);
}

/* aligned_alloc(alignment, size) until the block is NOT also aligned to
 * `not_aligned_to` (a block may be by chance); the spares are freed. */
static void *allocate_misaligned(size_t alignment, size_t size, size_t not_aligned_to) {
    void *spares[64];
    size_t spare_count = 0;
    void *block = aligned_alloc(alignment, size);
    while (block && (uintptr_t)block % not_aligned_to == 0 && spare_count < 64) {
        spares[spare_count++] = block;
        block = aligned_alloc(alignment, size);
    }
    for (size_t i = 0; i < spare_count; i++) free(spares[i]);
    assert_non_null(block);
    assert_true((uintptr_t)block % alignment == 0);
    assert_true((uintptr_t)block % not_aligned_to != 0);
    return block;
}

static void test_small_block_claimed_more_aligned(void **state) {
    char info[64];
    static const size_t claims[] = {256, 4096, 65536};
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
        void *block = allocate_misaligned(64, 64, claims[i]);
        size_t class_size = bw_test_class_aligned(64, 64);
        struct sized op = {block, 64, claims[i]};
        bw_expect_report(do_free_aligned_sized, &op, "free alignment mismatch", block,
                         bw_info_class(info, sizeof info, class_size), "free_aligned_sized");
        free(block);
    }
}

/* The pointer happens to have the claimed alignment, but a block allocated
 * with it would be in another class: the alignment used was not this one. */
static void test_small_block_aligned_by_chance(void **state) {
    char info[64];
    static void *spares[1024];
    size_t spare_count = 0;
    void *block = aligned_alloc(32, 32);
    while (block && (uintptr_t)block % 1024 != 0 && spare_count < 1024) {
        spares[spare_count++] = block;
        block = aligned_alloc(32, 32);
    }
    for (size_t i = 0; i < spare_count; i++) free(spares[i]);
    assert_non_null(block);
    if ((uintptr_t)block % 1024 != 0) {
        free(block);
        print_message("skipped: no 1024-aligned block among 1024 aligned_alloc(32, 32)\n");
        skip();
    }
    size_t class_size = bw_test_class_aligned(32, 32);
    assert_true(class_size < 1024);
    struct sized op = {block, 32, 1024};
    bw_expect_report(do_free_aligned_sized, &op, "free alignment mismatch", block,
                     bw_info_class(info, sizeof info, class_size), "free_aligned_sized");
    free(block);
}

static void test_large_block_claimed_more_aligned(void **state) {
    char info[64];
    void *block = allocate_misaligned(4096, MiB, 2 * MiB);
    size_t map_size = BW_TEST_LARGE_MAP_SIZE(malloc_usable_size(block));
    struct sized op = {block, MiB, 2 * MiB};
    bw_expect_report(do_free_aligned_sized, &op, "free alignment mismatch", block,
                     bw_info_mapping(info, sizeof info, map_size), "free_aligned_sized");
    free(block);
}

/* Not a power of two: no block can have been allocated with it. bulwark
 * rejects it before looking the block up, so the info names no block. */
static void test_alignment_not_a_power_of_two(void **state) {
    void *small = aligned_alloc(64, 64);
    void *large = aligned_alloc(4096, MiB);
    assert_non_null(small);
    assert_non_null(large);
    struct sized small_op = {small, 64, 48};
    struct sized large_op = {large, MiB, 3 * 4096};
    bw_expect_report(do_free_aligned_sized, &small_op, "free alignment mismatch", small,
                     BW_INFO_NOT_A_BLOCK, "free_aligned_sized");
    bw_expect_report(do_free_aligned_sized, &large_op, "free alignment mismatch", large,
                     BW_INFO_NOT_A_BLOCK, "free_aligned_sized");
    free(small);
    free(large);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr,
                "test_free_alignment_mismatch: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_block_claimed_more_aligned),
        cmocka_unit_test(test_small_block_aligned_by_chance),
        cmocka_unit_test(test_large_block_claimed_more_aligned),
        cmocka_unit_test(test_alignment_not_a_power_of_two),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

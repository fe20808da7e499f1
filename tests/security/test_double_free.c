/* test_double_free.c — proves that freeing a block twice is fatal with
 *     bulwark: double free of 0x<block> (<info>) in <function>
 * and SIGABRT, for every kind of block and every way the second free can
 * arrive: small (64 bytes), medium (about 4 KiB), the largest small class,
 * large (1 MiB, and a size that is not a page multiple, which strict and fuzz
 * place off a page boundary), a first free in another thread (the block then
 * sat on another heap's quarantine or remote list), a block still in the
 * quarantine after hundreds of other frees, a large block whose first free
 * has left the large quarantine since (its address is then only in the
 * history of freed addresses, which takes it when it leaves), and a second
 * free through
 * realloc, free_sized and free_aligned_sized. Every case runs in a forked
 * child; the parent prepares the block, so the reported address is known. */
#include <malloc.h>
#include <pthread.h>
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
#include "large.h" /* bw_large_quarantine_slots */

#define MiB ((size_t)1 << 20)

static volatile uintptr_t sink;

/* ------------------------------------------------------------ child bodies */

static void do_free_twice(void *block) {
    free(block);
    free(bw_launder(block));
}

static void do_free_then_realloc(void *block) {
    free(block);
    sink = (uintptr_t)realloc(bw_launder(block), 100);
}

struct sized {
    void *block;
    size_t size;
    size_t alignment;
};

static void do_free_then_free_sized(void *arg) {
    const struct sized *op = arg;
    free(op->block);
    free_sized(bw_launder(op->block), op->size);
}

static void do_free_then_free_aligned_sized(void *arg) {
    const struct sized *op = arg;
    free(op->block);
    free_aligned_sized(bw_launder(op->block), op->alignment, op->size);
}

static void *thread_free(void *block) {
    free(block);
    return NULL;
}

/* The first free happens in a thread that then exits: the block goes
 * through that thread's heap (quarantine, remote list, abandonment). */
static void do_free_in_thread_then_here(void *block) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_free, block) != 0 || pthread_join(thread, NULL) != 0)
        _exit(112);
    free(bw_launder(block));
}

/* First free here, second in another thread (a remote double free). */
static void do_free_here_then_in_thread(void *block) {
    free(block);
    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_free, bw_launder(block)) != 0 ||
        pthread_join(thread, NULL) != 0)
        _exit(112);
}

/* ------------------------------------------------------------ helpers */

static void expect_small_double_free(size_t request) {
    char info[64];
    void *block = malloc(request);
    assert_non_null(block);
    assert_int_equal(malloc_usable_size(block), BW_TEST_USABLE_FOR(request));
    bw_expect_report(do_free_twice, block, "double free", block,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(request)), "free");
    free(block);
}

/* A large block is forgotten when freed; the report names no mapping. */
static void expect_large_double_free(size_t request) {
    void *block = malloc(request);
    assert_non_null(block);
    bw_expect_report(do_free_twice, block, "double free", block, BW_INFO_NOT_A_BLOCK, "free");
    free(block);
}

/* The first free, then as many large frees as the large quarantine holds,
 * with no malloc after the block's extent left it (none can take its
 * address again), then the second free. */
static void do_free_past_the_large_quarantine_then_free(void *block) {
    static void *others[4096];
    size_t n = bw_large_quarantine_slots();
    if (n > sizeof others / sizeof *others) _exit(113);
    for (size_t i = 0; i < n; i++)
        if (!(others[i] = malloc(BW_TEST_SMALL_MAX + 1))) _exit(114);
    free(block);
    for (size_t i = 0; i < n; i++) free(others[i]);
    free(bw_launder(block));
}

/* ------------------------------------------------------------ tests */

static void test_double_free_small(void **state) {
    expect_small_double_free(1);
    expect_small_double_free(64);
    expect_small_double_free(200);
}

static void test_double_free_medium(void **state) {
    expect_small_double_free(4000);
    expect_small_double_free(4096);
}

static void test_double_free_largest_small_class(void **state) {
    expect_small_double_free(BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES);
}

/* Blocks above 16 KiB live in spans of 4 to 16 slots: reported like any
 * small block, with their class. */
static void test_double_free_span_classes(void **state) {
    expect_small_double_free(20000);
    expect_small_double_free(40000);
    expect_small_double_free(65536);
    expect_small_double_free(100000);
}

static void test_double_free_large(void **state) {
    expect_large_double_free(BW_TEST_SMALL_MAX + 1);
    expect_large_double_free(MiB);
}

static void test_double_free_large_after_its_quarantine(void **state) {
    void *block = malloc(200000);
    assert_non_null(block);
    bw_expect_report(do_free_past_the_large_quarantine_then_free, block, "double free", block,
                     BW_INFO_NOT_A_BLOCK, "free");
    free(block);
}

/* 200000 bytes is not a multiple of 4096: with BW_LARGE_RIGHT_ALIGN the block
 * starts off a page boundary, and must still be recognised the second time. */
static void test_double_free_large_not_page_multiple(void **state) {
    expect_large_double_free(200000);
    expect_large_double_free(MiB + 40);
}

static void test_double_free_first_in_other_thread(void **state) {
    char info[64];
    void *small = malloc(64);
    void *medium = malloc(4096);
    void *large = malloc(MiB);
    assert_non_null(small);
    assert_non_null(medium);
    assert_non_null(large);
    bw_expect_report(do_free_in_thread_then_here, small, "double free", small,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(64)), "free");
    bw_expect_report(do_free_in_thread_then_here, medium, "double free", medium,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(4096)), "free");
    bw_expect_report(do_free_in_thread_then_here, large, "double free", large, BW_INFO_NOT_A_BLOCK,
                     "free");
    free(small);
    free(medium);
    free(large);
}

static void test_double_free_second_in_other_thread(void **state) {
    char info[64];
    void *small = malloc(64);
    void *large = malloc(MiB);
    assert_non_null(small);
    assert_non_null(large);
    bw_expect_report(do_free_here_then_in_thread, small, "double free", small,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(64)), "free");
    bw_expect_report(do_free_here_then_in_thread, large, "double free", large, BW_INFO_NOT_A_BLOCK,
                     "free");
    free(small);
    free(large);
}

/* The block is provably still in the quarantine when it is freed again:
 * malloc_trim(0) empties the calling thread's quarantine, then the block
 * and fewer other blocks than the quarantine holds (by count and by bytes)
 * are freed. Its first word, which zero-on-free clears and which leaving
 * the quarantine overwrites with an encoded link (never zero in practice:
 * 47 of its bits are a tag), confirms it before the second free. */
#define QUARANTINE_FILLERS (BW_QUARANTINE_SLOTS / 2)
#define FILLER_SIZE        64
#define MARKER             0x5a5a5a5a5a5a5a5aull

static void do_double_free_in_quarantine(void *block) {
    static void *fillers[QUARANTINE_FILLERS > 0 ? QUARANTINE_FILLERS : 1];
    const size_t filler_count = bw_opaque_size(QUARANTINE_FILLERS);
    for (size_t i = 0; i < filler_count; i++) {
        fillers[i] = malloc(FILLER_SIZE);
        if (!fillers[i]) _exit(2);
    }
    uint64_t marker = MARKER;
    memcpy(block, &marker, sizeof marker);
    malloc_trim(0);
    free(block);
    for (size_t i = 0; i < filler_count; i++) free(fillers[i]);
    memcpy(&marker, bw_launder(block), sizeof marker);
    if (marker != 0) _exit(3); /* it left the quarantine: the premise failed */
    free(bw_launder(block));
}

static void test_double_free_of_block_in_quarantine(void **state) {
    BW_SKIP_UNLESS(BW_QUARANTINE_SLOTS);
    BW_SKIP_UNLESS(BW_ZERO_ON_FREE); /* the marker check relies on it */
#if BW_QUARANTINE_SLOTS
    _Static_assert((size_t)QUARANTINE_FILLERS * 128 < BW_QUARANTINE_BYTES,
                   "the fillers fit in the quarantine's byte budget");
#endif
    char info[64];
    void *block = malloc(64);
    assert_non_null(block);
    bw_expect_report(do_double_free_in_quarantine, block, "double free", block,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(64)), "free");
    free(block);
}

static void test_double_free_through_realloc(void **state) {
    char info[64];
    void *small = malloc(64);
    void *large = malloc(MiB);
    void *odd_large = malloc(200000);
    assert_non_null(small);
    assert_non_null(large);
    assert_non_null(odd_large);
    bw_expect_report(do_free_then_realloc, small, "double free", small,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(64)), "realloc");
    bw_expect_report(do_free_then_realloc, large, "double free", large, BW_INFO_NOT_A_BLOCK,
                     "realloc");
    bw_expect_report(do_free_then_realloc, odd_large, "double free", odd_large, BW_INFO_NOT_A_BLOCK,
                     "realloc");
    free(small);
    free(large);
    free(odd_large);
}

static void test_double_free_through_free_sized(void **state) {
    char info[64];
    struct sized small = {malloc(64), 64, 0};
    struct sized large = {malloc(MiB), MiB, 0};
    struct sized odd_large = {malloc(200000), 200000, 0};
    assert_non_null(small.block);
    assert_non_null(large.block);
    assert_non_null(odd_large.block);
    bw_expect_report(do_free_then_free_sized, &small, "double free", small.block,
                     bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(64)), "free_sized");
    bw_expect_report(do_free_then_free_sized, &large, "double free", large.block,
                     BW_INFO_NOT_A_BLOCK, "free_sized");
    bw_expect_report(do_free_then_free_sized, &odd_large, "double free", odd_large.block,
                     BW_INFO_NOT_A_BLOCK, "free_sized");
    free(small.block);
    free(large.block);
    free(odd_large.block);
}

static void test_double_free_through_free_aligned_sized(void **state) {
    char info[64];
    struct sized small = {aligned_alloc(64, 64), 64, 64};
    struct sized large = {aligned_alloc(4096, MiB), MiB, 4096};
    assert_non_null(small.block);
    assert_non_null(large.block);
    size_t small_class = bw_test_class_aligned(64, 64);
    bw_expect_report(do_free_then_free_aligned_sized, &small, "double free", small.block,
                     bw_info_class(info, sizeof info, small_class), "free_aligned_sized");
    bw_expect_report(do_free_then_free_aligned_sized, &large, "double free", large.block,
                     BW_INFO_NOT_A_BLOCK, "free_aligned_sized");
    free(small.block);
    free(large.block);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_double_free: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_free_small),
        cmocka_unit_test(test_double_free_medium),
        cmocka_unit_test(test_double_free_largest_small_class),
        cmocka_unit_test(test_double_free_span_classes),
        cmocka_unit_test(test_double_free_large),
        cmocka_unit_test(test_double_free_large_not_page_multiple),
        cmocka_unit_test(test_double_free_large_after_its_quarantine),
        cmocka_unit_test(test_double_free_first_in_other_thread),
        cmocka_unit_test(test_double_free_second_in_other_thread),
        cmocka_unit_test(test_double_free_of_block_in_quarantine),
        cmocka_unit_test(test_double_free_through_realloc),
        cmocka_unit_test(test_double_free_through_free_sized),
        cmocka_unit_test(test_double_free_through_free_aligned_sized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

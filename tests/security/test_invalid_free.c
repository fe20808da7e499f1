/* test_invalid_free.c — proves that handing free (or realloc, free_sized,
 * free_aligned_sized) a pointer bulwark never returned is fatal with
 *     bulwark: invalid free of 0x<pointer> (<info>) in <function>
 * and SIGABRT: interior pointers of small and large blocks, unaligned
 * pointers, the stack, a global, a slab slot of the arena that never served
 * a size class, and a block boundary of a live slab that malloc never handed
 * out, each freed by the thread that allocated the block and by another.
 * The info names the size class when the pointer lies in a slab that
 * serves one, and "not a bulwark block" otherwise. Each case runs in a
 * forked child; the parent computes the pointer, so the address is known. */
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

#define MiB           ((size_t)1 << 20)
#define SEGMENT_BYTES ((uintptr_t)1 << BW_SEGMENT_SHIFT)

/* Aligned like a block, so only its origin makes freeing it wrong. */
static char global_block[256] __attribute__((aligned(64)));

static volatile uintptr_t sink;

/* ------------------------------------------------------------ child bodies */

static void do_free(void *pointer) {
    free(bw_launder(pointer));
}

static void *free_in_thread(void *pointer) {
    free(bw_launder(pointer));
    return NULL;
}

/* A thread that does not own the block's slab frees it: that path claims
 * the pointer's PENDING bit before it checks ALLOCATED (slab.c,
 * bw_slab_remote_free), and must still name a pointer that is no block
 * start an invalid free, not a double free or a free-list corruption. */
static void do_free_other_thread(void *pointer) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, free_in_thread, pointer) != 0) abort();
    pthread_join(thread, NULL);
}

static void do_realloc(void *pointer) {
    sink = (uintptr_t)realloc(bw_launder(pointer), 100);
}

struct sized {
    void *pointer;
    size_t size;
    size_t alignment;
};

static void do_free_sized(void *arg) {
    const struct sized *op = arg;
    free_sized(bw_launder(op->pointer), op->size);
}

static void do_free_aligned_sized(void *arg) {
    const struct sized *op = arg;
    free_aligned_sized(bw_launder(op->pointer), op->alignment, op->size);
}

/* Every entry point that frees must reject the pointer the same way. */
static void expect_invalid_everywhere(void *pointer, const char *info) {
    struct sized sized_op = {pointer, 64, 0};
    struct sized aligned_op = {pointer, 64, 16};
    bw_expect_report(do_free, pointer, "invalid free", pointer, info, "free");
    bw_expect_report(do_free_other_thread, pointer, "invalid free", pointer, info, "free");
    bw_expect_report(do_realloc, pointer, "invalid free", pointer, info, "realloc");
    bw_expect_report(do_free_sized, &sized_op, "invalid free", pointer, info, "free_sized");
    bw_expect_report(do_free_aligned_sized, &aligned_op, "invalid free", pointer, info,
                     "free_aligned_sized");
}

/* ------------------------------------------------------------ tests */

static void test_invalid_free_interior_small(void **state) {
    char info[64];
    char *block = malloc(200);
    assert_non_null(block);
    bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(200));
    expect_invalid_everywhere(block + 16, info);
    expect_invalid_everywhere(block + 64, info);
    free(block);
}

/* A block above 16 KiB, in a span of 8 slots: pointers inside it, in a
 * later slot of the span too, name its class. */
static void test_invalid_free_interior_span_class(void **state) {
    char info[64];
    char *block = malloc(60000);
    assert_non_null(block);
    bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(60000));
    expect_invalid_everywhere(block + 16, info);
    expect_invalid_everywhere(block + 40000, info);
    free(block);
}

static void test_invalid_free_unaligned_small(void **state) {
    char info[64];
    char *block = malloc(64);
    assert_non_null(block);
    bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(64));
    expect_invalid_everywhere(block + 1, info);
    expect_invalid_everywhere(block + 8, info);
    free(block);
}

static void test_invalid_free_interior_large(void **state) {
    char *block = malloc(MiB);
    assert_non_null(block);
    expect_invalid_everywhere(block + BW_TEST_PAGE, BW_INFO_NOT_A_BLOCK);
    expect_invalid_everywhere(block + 16, BW_INFO_NOT_A_BLOCK);
    expect_invalid_everywhere(block + 3, BW_INFO_NOT_A_BLOCK);
    free(block);
}

static void test_invalid_free_stack(void **state) {
    char stack_block[256] __attribute__((aligned(64)));
    memset(stack_block, 0, sizeof stack_block);
    expect_invalid_everywhere(stack_block, BW_INFO_NOT_A_BLOCK);
}

static void test_invalid_free_global(void **state) {
    expect_invalid_everywhere(global_block, BW_INFO_NOT_A_BLOCK);
}

/* The last slab slot of the segment a live block lives in: slots are taken
 * lowest first, and this program uses a handful of slabs, so that slot never
 * served a size class; its descriptor is empty. */
static void test_invalid_free_never_used_slab(void **state) {
    char *block = malloc(64);
    assert_non_null(block);
    uintptr_t segment = (uintptr_t)block & ~(SEGMENT_BYTES - 1);
    char *never_used = (char *)(segment + SEGMENT_BYTES - BW_TEST_SLAB_BYTES);
    assert_true((uintptr_t)never_used - (uintptr_t)block >= BW_TEST_SLAB_BYTES);
    expect_invalid_everywhere(never_used, BW_INFO_NOT_A_BLOCK);
    expect_invalid_everywhere(never_used + 64, BW_INFO_NOT_A_BLOCK);
    free(block);
}

/* A block boundary in a live slab that malloc never returned: the slab was
 * formatted for 14336-byte blocks (4 per 60 KiB slab) by the one malloc of
 * that class in this program, so the other boundaries were never handed
 * out. Freeing one is freeing a pointer the program never got. */
static void test_invalid_free_never_allocated_block(void **state) {
    char info[64];
    const size_t request = 14336 - BW_TEST_CANARY_BYTES;
    const size_t class_size = BW_TEST_CLASS_FOR(request);
    assert_int_equal(class_size, 14336);
    char *block = malloc(request);
    assert_non_null(block);
    uintptr_t slab = (uintptr_t)block & ~(uintptr_t)(BW_TEST_SLAB_BYTES - 1);
    size_t index = ((uintptr_t)block - slab) / class_size;
    char *never_allocated = (char *)slab + (index == 0 ? 1 : 0) * class_size;
    bw_info_class(info, sizeof info, class_size);
    expect_invalid_everywhere(never_allocated, info);
    free(block);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_invalid_free: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_free_interior_small),
        cmocka_unit_test(test_invalid_free_interior_span_class),
        cmocka_unit_test(test_invalid_free_unaligned_small),
        cmocka_unit_test(test_invalid_free_interior_large),
        cmocka_unit_test(test_invalid_free_stack),
        cmocka_unit_test(test_invalid_free_global),
        cmocka_unit_test(test_invalid_free_never_used_slab),
        cmocka_unit_test(test_invalid_free_never_allocated_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

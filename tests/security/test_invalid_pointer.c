/* test_invalid_pointer.c — proves that malloc_usable_size of a pointer
 * bulwark never returned is fatal with
 *     bulwark: invalid pointer of 0x<pointer> (<info>) in malloc_usable_size
 * and SIGABRT, instead of returning a size read from somewhere: interior
 * and unaligned pointers of small blocks (info: their slab's class),
 * interior pointers of a large block, the stack, a global and a slab slot
 * that never served a class ("not a bulwark block"). The same pointers
 * given to free are tested in test_invalid_free.c. */
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

#define MiB           ((size_t)1 << 20)
#define SEGMENT_BYTES ((uintptr_t)1 << BW_SEGMENT_SHIFT)

static char global_block[256] __attribute__((aligned(64)));

static volatile size_t sink;

static void do_usable_size(void *pointer) {
    sink = malloc_usable_size(bw_launder(pointer));
}

static void expect_invalid_pointer(void *pointer, const char *info) {
    bw_expect_report(do_usable_size, pointer, "invalid pointer", pointer, info,
                     "malloc_usable_size");
}

static void test_usable_size_of_interior_small(void **state) {
    char info[64];
    char *block = malloc(200);
    assert_non_null(block);
    bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(200));
    expect_invalid_pointer(block + 16, info);
    expect_invalid_pointer(block + 1, info);
    expect_invalid_pointer(block + 8, info);
    free(block);
}

static void test_usable_size_of_interior_large(void **state) {
    char *block = malloc(MiB);
    assert_non_null(block);
    expect_invalid_pointer(block + BW_TEST_PAGE, BW_INFO_NOT_A_BLOCK);
    expect_invalid_pointer(block + 16, BW_INFO_NOT_A_BLOCK);
    expect_invalid_pointer(block + 1, BW_INFO_NOT_A_BLOCK);
    free(block);
}

static void test_usable_size_of_stack(void **state) {
    char stack_block[256] __attribute__((aligned(64)));
    memset(stack_block, 0, sizeof stack_block);
    expect_invalid_pointer(stack_block, BW_INFO_NOT_A_BLOCK);
}

static void test_usable_size_of_global(void **state) {
    expect_invalid_pointer(global_block, BW_INFO_NOT_A_BLOCK);
}

/* See test_invalid_free.c: the last slab slot of a live block's segment. */
static void test_usable_size_of_never_used_slab(void **state) {
    char *block = malloc(64);
    assert_non_null(block);
    uintptr_t segment = (uintptr_t)block & ~(SEGMENT_BYTES - 1);
    char *never_used = (char *)(segment + SEGMENT_BYTES - BW_TEST_SLAB_BYTES);
    assert_true((uintptr_t)never_used - (uintptr_t)block >= BW_TEST_SLAB_BYTES);
    expect_invalid_pointer(never_used, BW_INFO_NOT_A_BLOCK);
    free(block);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_invalid_pointer: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usable_size_of_interior_small),
        cmocka_unit_test(test_usable_size_of_interior_large),
        cmocka_unit_test(test_usable_size_of_stack),
        cmocka_unit_test(test_usable_size_of_global),
        cmocka_unit_test(test_usable_size_of_never_used_slab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

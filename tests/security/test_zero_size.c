/* test_zero_size.c — proves that a zero-byte allocation cannot be used to
 * read or write anything (BW_ZERO_SIZE_FAULTS): malloc(0) (and calloc with a
 * zero count or size, and realloc(NULL, 0)) returns a unique, non-NULL,
 * freeable pointer whose malloc_usable_size is 0, and any read or write
 * through it faults (SIGSEGV, no report) at that very address; it is still
 * a block, so freeing it twice is fatal with
 *     bulwark: double free of 0x<pointer> (0-byte class) in free
 * and realloc turns it into an ordinary block. More than 2^20 of them can
 * be live at once (2^20 + 1000 here: all distinct, the last still faults),
 * and after all are freed a second free of one is still that report. In a
 * profile without the knob the whole program reports itself skipped
 * (exit 77). */
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

#if defined(BW_ZERO_SIZE_FAULTS) && BW_ZERO_SIZE_FAULTS

static volatile char sink;

static void do_read(void *pointer) {
    sink = *(volatile char *)bw_launder(pointer);
}

static void do_write(void *pointer) {
    *(volatile char *)bw_launder(pointer) = 1;
}

static void do_copy_from(void *pointer) {
    char buffer[16];
    memcpy(buffer, bw_launder(pointer), sizeof buffer);
    sink = buffer[0];
}

static void do_free_twice(void *pointer) {
    free(pointer);
    free(bw_launder(pointer));
}

static void *zero_size_allocations(size_t index) {
    switch (index % 4) {
    case 0:
        return malloc(bw_opaque_size(0));
    case 1:
        return calloc(bw_opaque_size(0), 16);
    case 2:
        return calloc(16, bw_opaque_size(0));
    default:
        return realloc(NULL, bw_opaque_size(0));
    }
}

#define UNIQUE_COUNT 4096

static int compare_pointers(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void test_zero_size_pointers_are_unique_and_freeable(void **state) {
    static uintptr_t pointers[UNIQUE_COUNT];
    for (size_t i = 0; i < UNIQUE_COUNT; i++) {
        void *p = zero_size_allocations(i);
        BW_REQUIRE(p != NULL, "allocation %zu", i);
        BW_REQUIRE(malloc_usable_size(p) == 0, "allocation %zu: usable size %zu", i,
                   malloc_usable_size(p));
        pointers[i] = (uintptr_t)p;
    }
    qsort(pointers, UNIQUE_COUNT, sizeof pointers[0], compare_pointers);
    for (size_t i = 1; i < UNIQUE_COUNT; i++)
        BW_REQUIRE(pointers[i] != pointers[i - 1], "0x%jx returned twice", (uintmax_t)pointers[i]);
    /* Not inside any live ordinary block either. */
    char *block = malloc(64);
    assert_non_null(block);
    for (size_t i = 0; i < UNIQUE_COUNT; i++)
        BW_REQUIRE(pointers[i] < (uintptr_t)block || pointers[i] >= (uintptr_t)block + 64,
                   "0x%jx inside a live block", (uintmax_t)pointers[i]);
    free(block);
    for (size_t i = 0; i < UNIQUE_COUNT; i++) free((void *)pointers[i]);
}

static void test_zero_size_read_faults(void **state) {
    for (size_t i = 0; i < 4; i++) {
        char *p = zero_size_allocations(i);
        assert_non_null(p);
        bw_expect_fault_in(do_read, p, p, p + 1);
        bw_expect_fault_in(do_copy_from, p, p, p + 16);
        free(p);
    }
}

static void test_zero_size_write_faults(void **state) {
    for (size_t i = 0; i < 4; i++) {
        char *p = zero_size_allocations(i);
        assert_non_null(p);
        bw_expect_fault_in(do_write, p, p, p + 1);
        free(p);
    }
}

static void test_zero_size_double_free(void **state) {
    char info[64];
    void *p = malloc(bw_opaque_size(0));
    assert_non_null(p);
    bw_expect_report(do_free_twice, p, "double free", p, bw_info_class(info, sizeof info, 0),
                     "free");
    free(p);
}

static void do_free(void *pointer) {
    free(bw_launder(pointer));
}

/* There used to be room for 2^20 live zero-size blocks; the next malloc(0)
 * returned NULL (ENOMEM). */
#define MANY_COUNT (((size_t)1 << 20) + 1000)

static void test_zero_size_beyond_a_million_live_blocks(void **state) {
    uintptr_t *pointers = malloc(MANY_COUNT * sizeof *pointers);
    assert_non_null(pointers);
    for (size_t i = 0; i < MANY_COUNT; i++) {
        void *p = malloc(bw_opaque_size(0));
        BW_REQUIRE(p != NULL, "malloc(0) #%zu of %zu", i, MANY_COUNT);
        pointers[i] = (uintptr_t)p;
    }
    /* The last ones are zero-size blocks too, not a fallback. */
    char *last = (char *)pointers[MANY_COUNT - 1];
    assert_int_equal(malloc_usable_size(last), 0);
    bw_expect_fault_in(do_write, last, last, last + 1);
    char *first = (char *)pointers[0];
    qsort(pointers, MANY_COUNT, sizeof pointers[0], compare_pointers);
    for (size_t i = 1; i < MANY_COUNT; i++)
        BW_REQUIRE(pointers[i] != pointers[i - 1], "0x%jx returned twice", (uintmax_t)pointers[i]);
    for (size_t i = 0; i < MANY_COUNT; i++) free((void *)pointers[i]);
    free(pointers);
    /* Freed, all of them: one more free of one is a double free. */
    char info[64];
    bw_expect_report(do_free, first, "double free", first, bw_info_class(info, sizeof info, 0),
                     "free");
    bw_expect_report(do_free, last, "double free", last, bw_info_class(info, sizeof info, 0),
                     "free");
}

static void test_zero_size_realloc_gives_an_ordinary_block(void **state) {
    char *p = malloc(bw_opaque_size(0));
    assert_non_null(p);
    char *q = realloc(p, 100);
    assert_non_null(q);
    assert_true(malloc_usable_size(q) >= 100);
    memset(q, 0xa5, 100);
    free(q);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_zero_size: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_size_pointers_are_unique_and_freeable),
        cmocka_unit_test(test_zero_size_read_faults),
        cmocka_unit_test(test_zero_size_write_faults),
        cmocka_unit_test(test_zero_size_double_free),
        cmocka_unit_test(test_zero_size_realloc_gives_an_ordinary_block),
        cmocka_unit_test(test_zero_size_beyond_a_million_live_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void) {
#ifdef BW_ZERO_SIZE_FAULTS
    printf("skipped: BW_ZERO_SIZE_FAULTS=0 in profile %s\n", BW_PROFILE_NAME);
#else
    printf("skipped: BW_ZERO_SIZE_FAULTS is not defined in profile %s\n", BW_PROFILE_NAME);
#endif
    return 77;
}

#endif

/* test_death.c — proves that every misuse of the C allocation API that
 * bulwark promises to catch kills the process with SIGABRT after exactly one
 * report line naming the right bug class, the faulty pointer and the libc
 * function that received it:
 *   invalid free         stack, global, interior (small and large), unaligned,
 *                        wild heap address, foreign mmap page; via free,
 *                        realloc and free_sized
 *   double free          small blocks of 16..16384 bytes, a 1 MiB block, a
 *                        first free in another thread (both orders), via
 *                        free, realloc and free_sized
 *   use after free       malloc_usable_size of a freed block
 *   invalid pointer      malloc_usable_size of a stack or wild heap address
 *   free size mismatch   free_sized with a size of another class (small and
 *                        large blocks)
 *   free alignment mismatch  free_aligned_sized with an alignment the
 *                        pointer does not have
 * Each case runs in a forked child (bw_expect_death_at); the pointer is
 * prepared in the parent so the expected address is known exactly. The C++
 * delete checks live in a C++ program elsewhere. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"

#define MiB ((size_t)1 << 20)

/* A global the size of a small block, aligned like one, so only its origin
 * makes freeing it wrong. */
static char global_block[64] __attribute__((aligned(64)));

/* Results the compiler must not discard. */
static volatile size_t sink;

/* ------------------------------------------------------------ child bodies */

static void do_free(void *arg) {
    free(bw_launder(arg));
}

static void do_free_twice(void *arg) {
    free(arg);
    free(bw_launder(arg));
}

static void do_realloc(void *arg) {
    void *q = realloc(bw_launder(arg), 100);
    sink = (size_t)(uintptr_t)q;
}

static void do_free_then_realloc(void *arg) {
    free(arg);
    void *q = realloc(bw_launder(arg), 100);
    sink = (size_t)(uintptr_t)q;
}

static void do_usable_size(void *arg) {
    sink = malloc_usable_size(bw_launder(arg));
}

static void do_free_then_usable_size(void *arg) {
    free(arg);
    sink = malloc_usable_size(bw_launder(arg));
}

static void *thread_free(void *arg) {
    free(bw_launder(arg));
    return NULL;
}

static void run_thread_free(void *block) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_free, block) != 0 || pthread_join(thread, NULL) != 0)
        _exit(112); /* not a SIGABRT: the parent reports the exit status */
}

/* First free in another thread, second in this one. */
static void do_free_in_thread_then_here(void *arg) {
    run_thread_free(arg);
    free(bw_launder(arg));
}

/* First free here, second in another thread. */
static void do_free_here_then_in_thread(void *arg) {
    free(arg);
    run_thread_free(bw_launder(arg));
}

struct sized_free {
    void *block;
    size_t size;
    size_t alignment;
};

static void do_free_sized(void *arg) {
    const struct sized_free *op = arg;
    free_sized(bw_launder(op->block), op->size);
}

static void do_free_sized_twice(void *arg) {
    const struct sized_free *op = arg;
    free_sized(op->block, op->size);
    free_sized(bw_launder(op->block), op->size);
}

static void do_free_aligned_sized(void *arg) {
    const struct sized_free *op = arg;
    free_aligned_sized(bw_launder(op->block), op->alignment, op->size);
}

/* ------------------------------------------------------------ invalid free */

static void test_invalid_free_stack(void **state) {
    char stack_block[64] __attribute__((aligned(64))) = {0};
    bw_expect_death_at(do_free, stack_block, "invalid free", "free", stack_block);
}

static void test_invalid_free_global(void **state) {
    bw_expect_death_at(do_free, global_block, "invalid free", "free", global_block);
}

static void test_invalid_free_interior_small(void **state) {
    char *block = malloc(64);
    assert_non_null(block);
    bw_expect_death_at(do_free, block + 16, "invalid free", "free", block + 16);
    bw_expect_death_at(do_free, block + 1, "invalid free", "free", block + 1);
    free(block);
}

static void test_invalid_free_interior_large(void **state) {
    char *block = malloc(MiB);
    assert_non_null(block);
    bw_expect_death_at(do_free, block + 4096, "invalid free", "free", block + 4096);
    free(block);
}

static void test_invalid_free_unaligned(void **state) {
    char *block = malloc(64);
    assert_non_null(block);
    bw_expect_death_at(do_free, block + 3, "invalid free", "free", block + 3);
    free(block);
}

/* 16 MiB past a live small block: another segment of the arena that this
 * small test process has not used, or not the arena at all. Whether or not
 * that address is mapped, it is not a block bulwark handed out. */
static void test_invalid_free_wild_heap_address(void **state) {
    char *block = malloc(64);
    assert_non_null(block);
    char *wild = block + 16 * MiB;
    bw_expect_death_at(do_free, wild, "invalid free", "free", wild);
    free(block);
}

/* The same wild address handed to the other entry points that check. */
static void test_wild_heap_address_other_functions(void **state) {
    char *block = malloc(64);
    assert_non_null(block);
    char *wild = block + 16 * MiB;
    bw_expect_death_at(do_realloc, wild, "invalid free", "realloc", wild);
    bw_expect_death_at(do_usable_size, wild, "invalid pointer", "malloc_usable_size", wild);
    struct sized_free op = {wild, 64, 0};
    bw_expect_death_at(do_free_sized, &op, "invalid free", "free_sized", wild);
    free(block);
}

/* Memory bulwark never saw: a page from mmap (a "foreign pointer"). */
static void test_invalid_free_foreign_mapping(void **state) {
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(page != MAP_FAILED);
    bw_expect_death_at(do_free, page, "invalid free", "free", page);
    munmap(page, 4096);
}

static void test_invalid_free_in_realloc(void **state) {
    char stack_block[64] __attribute__((aligned(64))) = {0};
    bw_expect_death_at(do_realloc, stack_block, "invalid free", "realloc", stack_block);
    char *block = malloc(64);
    assert_non_null(block);
    bw_expect_death_at(do_realloc, block + 16, "invalid free", "realloc", block + 16);
    free(block);
}

/* ------------------------------------------------------------ double free */

static void expect_double_free(size_t size) {
    void *block = malloc(size);
    assert_non_null(block);
    bw_expect_death_at(do_free_twice, block, "double free", "free", block);
    free(block);
}

static void test_double_free_16(void **state) {
    expect_double_free(16);
}

static void test_double_free_64(void **state) {
    expect_double_free(64);
}

static void test_double_free_1024(void **state) {
    expect_double_free(1024);
}

static void test_double_free_16384(void **state) {
    expect_double_free(16384);
}

static void test_double_free_large(void **state) {
    expect_double_free(MiB);
}

static void test_double_free_first_in_other_thread(void **state) {
    void *small = malloc(64);
    void *large = malloc(MiB);
    assert_non_null(small);
    assert_non_null(large);
    bw_expect_death_at(do_free_in_thread_then_here, small, "double free", "free", small);
    bw_expect_death_at(do_free_in_thread_then_here, large, "double free", "free", large);
    free(small);
    free(large);
}

static void test_double_free_second_in_other_thread(void **state) {
    void *small = malloc(64);
    assert_non_null(small);
    bw_expect_death_at(do_free_here_then_in_thread, small, "double free", "free", small);
    free(small);
}

static void test_double_free_in_realloc(void **state) {
    void *small = malloc(64);
    void *large = malloc(MiB);
    assert_non_null(small);
    assert_non_null(large);
    bw_expect_death_at(do_free_then_realloc, small, "double free", "realloc", small);
    bw_expect_death_at(do_free_then_realloc, large, "double free", "realloc", large);
    free(small);
    free(large);
}

static void test_double_free_in_free_sized(void **state) {
    struct sized_free op = {malloc(64), 64, 0};
    assert_non_null(op.block);
    bw_expect_death_at(do_free_sized_twice, &op, "double free", "free_sized", op.block);
    free(op.block);
}

/* ------------------------------------------------------------ usable size */

static void test_usable_size_after_free(void **state) {
    void *block = malloc(64);
    assert_non_null(block);
    bw_expect_death_at(do_free_then_usable_size, block, "use after free", "malloc_usable_size",
                       block);
    free(block);
}

static void test_usable_size_of_stack_pointer(void **state) {
    char stack_block[64] __attribute__((aligned(64))) = {0};
    bw_expect_death_at(do_usable_size, stack_block, "invalid pointer", "malloc_usable_size",
                       stack_block);
}

/* ------------------------------------------------------------ sized frees */

static void test_free_sized_mismatch_small(void **state) {
    struct sized_free op = {malloc(64), 4096, 0};
    assert_non_null(op.block);
    bw_expect_death_at(do_free_sized, &op, "free size mismatch", "free_sized", op.block);
    free(op.block);
}

static void test_free_sized_mismatch_large(void **state) {
    struct sized_free op = {malloc(MiB), 100, 0};
    assert_non_null(op.block);
    bw_expect_death_at(do_free_sized, &op, "free size mismatch", "free_sized", op.block);
    free(op.block);
}

static void test_free_aligned_sized_alignment_mismatch(void **state) {
    /* A 64-aligned block that happens to be 4096-aligned too would be a
     * legal answer to the 4096 claim; keep drawing until it is not. */
    void *spares[64];
    size_t spare_count = 0;
    void *block = memalign(64, 64);
    assert_non_null(block);
    while ((uintptr_t)block % 4096 == 0 && spare_count < 64) {
        spares[spare_count++] = block;
        block = memalign(64, 64);
        assert_non_null(block);
    }
    assert_true((uintptr_t)block % 4096 != 0);
    assert_true((uintptr_t)block % 64 == 0);
    struct sized_free op = {block, 64, 4096};
    bw_expect_death_at(do_free_aligned_sized, &op, "free alignment mismatch", "free_aligned_sized",
                       block);
    free(block);
    for (size_t i = 0; i < spare_count; i++) free(spares[i]);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_death: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_free_stack),
        cmocka_unit_test(test_invalid_free_global),
        cmocka_unit_test(test_invalid_free_interior_small),
        cmocka_unit_test(test_invalid_free_interior_large),
        cmocka_unit_test(test_invalid_free_unaligned),
        cmocka_unit_test(test_invalid_free_wild_heap_address),
        cmocka_unit_test(test_wild_heap_address_other_functions),
        cmocka_unit_test(test_invalid_free_foreign_mapping),
        cmocka_unit_test(test_invalid_free_in_realloc),
        cmocka_unit_test(test_double_free_16),
        cmocka_unit_test(test_double_free_64),
        cmocka_unit_test(test_double_free_1024),
        cmocka_unit_test(test_double_free_16384),
        cmocka_unit_test(test_double_free_large),
        cmocka_unit_test(test_double_free_first_in_other_thread),
        cmocka_unit_test(test_double_free_second_in_other_thread),
        cmocka_unit_test(test_double_free_in_realloc),
        cmocka_unit_test(test_double_free_in_free_sized),
        cmocka_unit_test(test_usable_size_after_free),
        cmocka_unit_test(test_usable_size_of_stack_pointer),
        cmocka_unit_test(test_free_sized_mismatch_small),
        cmocka_unit_test(test_free_sized_mismatch_large),
        cmocka_unit_test(test_free_aligned_sized_alignment_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

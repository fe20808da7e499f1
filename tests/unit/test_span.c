/* test_span.c — slabs that span two 64 KiB slots (the classes above 8 KiB,
 * bw_class_span_slots):
 *  - a span starts on a 128 KiB boundary, its second slot's descriptor
 *    names the first as its head, and the span holds at least 7 blocks;
 *  - the block that straddles the slots is writable end to end (with
 *    BW_SLAB_GUARD the guard page between the slots is gone), and blocks in
 *    the second slot are freed locally, from another thread, and checked:
 *    a double free and an interior pointer there are reported with the
 *    class of the span;
 *  - once the span is released, the page between its slots is a guard page
 *    again (BW_SLAB_GUARD): a write there faults. */
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bw_internal.h"
#include "bw_test.h"

#define SPAN_REQUEST 12000u /* the 12288-byte class: 10 blocks per span */
#define MAX_BLOCKS   64

static bw_slab_t *slot_of(const void *p) {
    return &bw_layout.slabs[((uintptr_t)p - bw_layout.arena_base) >> BW_SLAB_SHIFT];
}

/* Blocks of the class until one span holds `count` of them; the others are
 * freed. Returns the span's first byte. */
static uintptr_t fill_one_span(void **blocks, size_t count) {
    bw_test_malloc_in_one_slab(SPAN_REQUEST, 1, blocks); /* warms the class up */
    free(blocks[0]);
    static void *drawn[MAX_BLOCKS * 8];
    size_t n = 0;
    uintptr_t span = 0;
    size_t found = 0;
    while (found < count && n < sizeof drawn / sizeof drawn[0]) {
        drawn[n] = malloc(SPAN_REQUEST);
        assert_non_null(drawn[n]);
        uintptr_t this_span = (uintptr_t)drawn[n] & ~(uintptr_t)(2 * BW_SLAB_SIZE - 1);
        n++;
        found = 0;
        for (size_t i = 0; i < n; i++)
            found += ((uintptr_t)drawn[i] & ~(uintptr_t)(2 * BW_SLAB_SIZE - 1)) == this_span;
        if (found >= count) span = this_span;
    }
    assert_true(span != 0);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (((uintptr_t)drawn[i] & ~(uintptr_t)(2 * BW_SLAB_SIZE - 1)) == span && kept < count)
            blocks[kept++] = drawn[i];
        else
            free(drawn[i]);
    }
    return span;
}

static void test_span_layout(void **state) {
    (void)state;
    unsigned size_class = bw_size_class(SPAN_REQUEST + BW_CANARY_BYTES);
    assert_int_equal(bw_class_span_slots(size_class), 2);
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++)
        assert_true(bw_class_span_usable(c) / bw_class_size[c] >= 7);
    void *p = malloc(SPAN_REQUEST);
    assert_non_null(p);
    bw_slab_t *slot = slot_of(p);
    bw_slab_t *head = bw_slab_head(slot);
    uintptr_t start = bw_slab_start(head);
    assert_int_equal(start % (2 * BW_SLAB_SIZE), 0);
    assert_int_equal(head->head_back, 0);
    assert_int_equal(head[1].head_back, 1);
    assert_int_equal(head->nblocks, bw_class_span_usable(size_class) / head->block_size);
    assert_null(atomic_load(&head[1].owner)); /* frees there take the checked path */
    free(p);
}

static void *free_in_thread(void *arg) {
    free(arg);
    return NULL;
}

static void do_free(void *p) {
    free(bw_launder(p));
}

static void test_blocks_across_and_behind_the_middle(void **state) {
    (void)state;
    void *blocks[MAX_BLOCKS];
    size_t count = bw_class_span_usable(bw_size_class(SPAN_REQUEST + BW_CANARY_BYTES)) /
                   BW_TEST_CLASS_FOR(SPAN_REQUEST);
    uintptr_t span = fill_one_span(blocks, count);
    uintptr_t middle = span + BW_SLAB_SIZE;
    char *straddling = NULL, *behind = NULL, *behind2 = NULL;
    for (size_t i = 0; i < count; i++) {
        uintptr_t b = (uintptr_t)blocks[i];
        if (b < middle && b + SPAN_REQUEST > middle - BW_PAGE_SIZE) straddling = blocks[i];
        if (b >= middle) {
            if (!behind)
                behind = blocks[i];
            else if (!behind2)
                behind2 = blocks[i];
        }
    }
    assert_non_null(straddling); /* 12288 * 5 = 61440: block 5 covers 61440..73728 */
    assert_non_null(behind);
    assert_non_null(behind2);
    memset(straddling, 0x5a, malloc_usable_size(straddling)); /* no guard in the way */
    for (size_t i = 0; i < count; i++) bw_fill(blocks[i], SPAN_REQUEST, i);
    for (size_t i = 0; i < count; i++) assert_true(bw_check(blocks[i], SPAN_REQUEST, i));

    char info[64];
    bw_info_class(info, sizeof info, BW_TEST_CLASS_FOR(SPAN_REQUEST));
    /* Checked like any block: a pointer inside a block of the second slot. */
    bw_expect_report(do_free, behind + 16, "invalid free", behind + 16, info, "free");

    /* A local free of a block in the second slot, then a double free. */
    free(behind);
    bw_expect_report(do_free, behind, "double free", behind, info, "free");

    /* A free from another thread of a block in the second slot. */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_in_thread, behind2), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    bw_expect_report(do_free, behind2, "double free", behind2, info, "free");

    for (size_t i = 0; i < count; i++)
        if (blocks[i] != behind && blocks[i] != behind2) free(blocks[i]);
}

static void do_write(void *p) {
    *(volatile char *)bw_launder(p) = 1;
}

static void test_released_span_guards_its_middle(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_SLAB_GUARD);
    void *blocks[MAX_BLOCKS];
    uintptr_t span = fill_one_span(blocks, 1);
    bw_slab_t *head = bw_slab_head(slot_of(blocks[0]));
    free(blocks[0]);
    malloc_trim(0); /* flushes the quarantine, releases the empty span */
    assert_true(head->state != BW_SLAB_ACTIVE);
    char *inner_guard = (char *)span + BW_SLAB_SIZE - BW_PAGE_SIZE;
    bw_expect_fault_in(do_write, inner_guard, inner_guard, inner_guard + 1);
}

int main(void) {
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_span_layout),
        cmocka_unit_test(test_blocks_across_and_behind_the_middle),
        cmocka_unit_test(test_released_span_guards_its_middle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

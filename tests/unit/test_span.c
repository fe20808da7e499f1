/* test_span.c — slabs that span several 64 KiB slots (the classes above
 * 8 KiB, bw_class_span_slots: 2, 4, 8 or 16 slots), for one class of each
 * span size:
 *  - a span starts on a boundary of its size, every later slot's descriptor
 *    names the first as its head, and the span holds at least 7 blocks;
 *  - the blocks that straddle its slots are writable end to end (with
 *    BW_SLAB_GUARD the guard pages between the slots are gone), and blocks in
 *    a later slot are freed locally, from another thread, and checked:
 *    a double free and an interior pointer there are reported with the
 *    class of the span;
 *  - writing past the last block of a span faults on the guard page that
 *    ends it (BW_SLAB_GUARD);
 *  - once the span is released and one of its inner slots serves a one-slot
 *    class, that slot's last page is a guard page again (BW_SLAB_GUARD): a
 *    write there faults. */
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

/* One class of each span size (canary room included): the 12288-byte
 * class (2 slots, 10 blocks), 32768 (4 slots, 7), 65536 (8 slots, 7) and
 * 131072 (16 slots, 7). */
static const size_t span_requests[] = {12000, 30000, 60000, 120000};
#define SPAN_KINDS (sizeof span_requests / sizeof span_requests[0])
#define MAX_BLOCKS 64

static bw_slab_t *slot_of(const void *p) {
    return &bw_layout.slabs[((uintptr_t)p - bw_layout.arena_base) >> BW_SLAB_SHIFT];
}

static unsigned class_of(size_t request) {
    return bw_size_class(request + BW_CANARY_BYTES);
}

static uintptr_t span_bytes(size_t request) {
    return (uintptr_t)bw_class_span_slots(class_of(request)) * BW_SLAB_SIZE;
}

/* Blocks of the class until one span holds `count` of them; the others are
 * freed. Returns the span's first byte. */
static uintptr_t fill_one_span(size_t request, void **blocks, size_t count) {
    uintptr_t mask = ~(span_bytes(request) - 1);
    static void *drawn[MAX_BLOCKS * 8];
    size_t n = 0;
    uintptr_t span = 0;
    size_t found = 0;
    while (found < count && n < sizeof drawn / sizeof drawn[0]) {
        drawn[n] = malloc(request);
        assert_non_null(drawn[n]);
        uintptr_t this_span = (uintptr_t)drawn[n] & mask;
        n++;
        found = 0;
        for (size_t i = 0; i < n; i++) found += ((uintptr_t)drawn[i] & mask) == this_span;
        if (found >= count) span = this_span;
    }
    assert_true(span != 0);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (((uintptr_t)drawn[i] & mask) == span && kept < count)
            blocks[kept++] = drawn[i];
        else
            free(drawn[i]);
    }
    return span;
}

static void test_span_layout(void **state) {
    (void)state;
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++)
        assert_true(bw_class_span_usable(c) / bw_class_size[c] >= 7);
    for (size_t k = 0; k < SPAN_KINDS; k++) {
        size_t request = span_requests[k];
        unsigned size_class = class_of(request);
        unsigned slots = bw_class_span_slots(size_class);
        assert_int_equal(slots, 2u << k);
        void *p = malloc(request);
        assert_non_null(p);
        bw_slab_t *slot = slot_of(p);
        bw_slab_t *head = bw_slab_head(slot);
        uintptr_t start = bw_slab_start(head);
        assert_int_equal(start % span_bytes(request), 0);
        assert_int_equal((uintptr_t)1 << head->span_shift, span_bytes(request));
        assert_int_equal(head->head_back, 0);
        assert_int_equal(head->size_class, size_class);
        for (unsigned i = 1; i < slots; i++) {
            assert_int_equal(head[i].head_back, i);
            assert_null(atomic_load(&head[i].owner)); /* frees there take the checked path */
        }
        assert_int_equal(head->nblocks, bw_class_span_usable(size_class) / head->block_size);
        free(p);
    }
}

static void *free_in_thread(void *arg) {
    free(arg);
    return NULL;
}

static void do_free(void *p) {
    free(bw_launder(p));
}

static void blocks_across_and_behind(size_t request) {
    void *blocks[MAX_BLOCKS];
    unsigned size_class = class_of(request);
    size_t class_size = bw_class_size[size_class];
    size_t count = bw_class_span_usable(size_class) / class_size;
    uintptr_t span = fill_one_span(request, blocks, count);
    uintptr_t second = span + BW_SLAB_SIZE;
    char *behind = NULL, *behind2 = NULL;
    size_t straddling = 0;
    for (size_t i = 0; i < count; i++) {
        uintptr_t b = (uintptr_t)blocks[i];
        /* A block over the last page of a slot that is not the span's last. */
        uintptr_t slot_end = (b & ~(uintptr_t)(BW_SLAB_SIZE - 1)) + BW_SLAB_SIZE;
        if (b + class_size > slot_end - BW_PAGE_SIZE && slot_end < span + span_bytes(request)) {
            memset(blocks[i], 0x5a, malloc_usable_size(blocks[i])); /* no guard in the way */
            straddling++;
        }
        if (b >= second) {
            if (!behind)
                behind = blocks[i];
            else if (!behind2)
                behind2 = blocks[i];
        }
    }
    assert_true(straddling > 0);
    assert_non_null(behind);
    assert_non_null(behind2);
    for (size_t i = 0; i < count; i++) bw_fill(blocks[i], request, i);
    for (size_t i = 0; i < count; i++) assert_true(bw_check(blocks[i], request, i));

    char info[64];
    bw_info_class(info, sizeof info, class_size);
    /* Checked like any block: a pointer inside a block of a later slot. */
    bw_expect_report(do_free, behind + 16, "invalid free", behind + 16, info, "free");

    /* A local free of a block in a later slot, then a double free. */
    free(behind);
    bw_expect_report(do_free, behind, "double free", behind, info, "free");

    /* A free from another thread of a block in a later slot. */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_in_thread, behind2), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    bw_expect_report(do_free, behind2, "double free", behind2, info, "free");

    for (size_t i = 0; i < count; i++)
        if (blocks[i] != behind && blocks[i] != behind2) free(blocks[i]);
}

static void test_blocks_across_and_behind_the_middle(void **state) {
    (void)state;
    for (size_t k = 0; k < SPAN_KINDS; k++) blocks_across_and_behind(span_requests[k]);
}

static void do_write(void *p) {
    *(volatile char *)bw_launder(p) = 1;
}

/* A linear overflow from the span's last block runs into the guard page
 * that ends the span. */
static void test_write_past_the_span_faults(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_SLAB_GUARD);
    static void *drawn[MAX_BLOCKS * 8];
    for (size_t k = 0; k < SPAN_KINDS; k++) {
        size_t request = span_requests[k];
        unsigned size_class = class_of(request);
        size_t class_size = bw_class_size[size_class];
        size_t count = bw_class_span_usable(size_class) / class_size;
        /* Draw until a block is the last of its span. */
        char *last = NULL;
        size_t n = 0;
        while (!last && n < sizeof drawn / sizeof drawn[0]) {
            char *p = drawn[n++] = malloc(request);
            assert_non_null(p);
            if (((uintptr_t)p & (span_bytes(request) - 1)) == (count - 1) * class_size) last = p;
        }
        assert_non_null(last);
        char *guard = (char *)((uintptr_t)last & ~(span_bytes(request) - 1)) + span_bytes(request) -
                      BW_PAGE_SIZE;
        assert_true(last + class_size <= guard);
        memset(last, 1, malloc_usable_size(last)); /* up to the usable end is fine */
        bw_expect_fault_in(do_write, guard, guard, guard + 1);
        for (size_t i = 0; i < n; i++) free(drawn[i]);
    }
}

/* Once the span is released, its inner pages stay accessible (no system
 * call) until a format makes one of them a slab's end: a one-slot class
 * formatted on an inner slot has its guard back, and a write to the slot's
 * last page faults. The slot is formatted here directly (single thread, no
 * other slot taken meanwhile) and released again, so the pool never knows. */
static void test_released_span_guards_its_middle(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_SLAB_GUARD);
    unsigned one_slot_class = class_of(6000); /* the 6144-byte class: 10 blocks, one slot */
    assert_int_equal(bw_class_span_slots(one_slot_class), 1);
    for (size_t k = 0; k < SPAN_KINDS; k++) {
        size_t request = span_requests[k];
        unsigned slots = bw_class_span_slots(class_of(request));
        void *blocks[MAX_BLOCKS];
        fill_one_span(request, blocks, 1);
        bw_slab_t *head = bw_slab_head(slot_of(blocks[0]));
        free(blocks[0]);
        malloc_trim(0); /* flushes the quarantine, releases the empty span */
        assert_true(head->state != BW_SLAB_ACTIVE);
        for (unsigned i = 0; i + 1 < slots; i++) assert_int_equal(head[i].unguarded, 1);
        assert_int_equal(head[slots - 1].unguarded, 0);
        unsigned inner[2] = {0, slots - 2};
        for (unsigned j = 0; j < 2; j++) {
            bw_slab_t *slot = head + inner[j];
            { /* metadata writes, as an entry point makes them (BW_PKEY_METADATA) */
                BW_META_OPEN();
                bw_slab_format(slot, one_slot_class, bw_tls_heap);
                BW_META_CLOSE();
            }
            assert_int_equal(slot->unguarded, 0);
            char *guard = (char *)bw_slab_start(slot) + BW_SLAB_SIZE - BW_PAGE_SIZE;
            bw_expect_fault_in(do_write, guard, guard, guard + 1);
            {
                BW_META_OPEN();
                bw_slab_slot_release(slot);
                BW_META_CLOSE();
            }
        }
    }
}

int main(void) {
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_span_layout),
        cmocka_unit_test(test_blocks_across_and_behind_the_middle),
        cmocka_unit_test(test_write_past_the_span_faults),
        cmocka_unit_test(test_released_span_guards_its_middle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

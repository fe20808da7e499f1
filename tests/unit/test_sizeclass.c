/* test_sizeclass.c — the size-class layer: bw_size_class() agrees with a
 * linear search of the class table for every size 0..131072, classes are
 * 16-byte multiples and increasing, internal fragmentation stays under 25%
 * above 64 bytes, every class's span is a power of two of at most 16 slots
 * holding 7 to 16 blocks when it takes more than one slot (slab.c's chunk
 * numbers), the aligned lookup returns a class whose blocks all have
 * the alignment, and the block-index reciprocal is exact for every offset of
 * every class (the fast path's boundary check relies on it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bw_internal.h"

static unsigned linear_class(size_t size) {
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++)
        if (bw_class_size[c] >= (size ? size : 1)) return c;
    return 0;
}

static void test_lookup_matches_linear_search(void **state) {
    (void)state;
    for (size_t size = 0; size <= BW_SMALL_MAX; size++)
        assert_int_equal(bw_size_class(size), linear_class(size));
}

static void test_table_shape(void **state) {
    (void)state;
    assert_int_equal(bw_class_size[BW_CLASS_COUNT - 1], BW_SMALL_MAX);
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        assert_int_equal(bw_class_size[c] % 16, 0);
        assert_true(bw_class_size[c] > bw_class_size[c - 1]);
    }
}

static void test_fragmentation_under_25_percent(void **state) {
    (void)state;
    double worst = 0;
    for (size_t size = 65; size <= BW_SMALL_MAX; size++) {
        double waste = (double)(bw_class_size[bw_size_class(size)] - size) / (double)size;
        if (waste > worst) worst = waste;
    }
    print_message("worst internal fragmentation above 64 B: %.1f%% of the request\n", worst * 100);
    assert_true(worst < 0.25);
}

/* Spans (bw_class_span_slots): the fewest slots, a power of two up to 16,
 * that hold 7 blocks; a span of several slots holds at most 16 (each block
 * its own fresh chunk, slab.c), and every request up to 64 KiB is small. */
static void test_span_shape(void **state) {
    (void)state;
    assert_true(bw_request_is_small(65536));
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        unsigned slots = bw_class_span_slots(c);
        uint32_t blocks = bw_class_span_usable(c) / bw_class_size[c];
        assert_true(slots >= 1 && slots <= 16 && (slots & (slots - 1)) == 0);
        assert_true(blocks >= 7);
        if (slots > 1) {
            assert_true(blocks <= 16);
            uint32_t half =
                (uint32_t)(slots / 2 * BW_SLAB_SIZE - (BW_SLAB_GUARD ? BW_PAGE_SIZE : 0));
            assert_true(half / bw_class_size[c] < 7); /* no smaller span would do */
        }
        assert_true(bw_slab_chunk_count(blocks, bw_class_size[c]) <= 16);
    }
    assert_int_equal(bw_class_span_slots(bw_size_class(20480)), 4);
    assert_int_equal(bw_class_span_slots(bw_size_class(65536)), 8);
    assert_int_equal(bw_class_span_slots(BW_CLASS_COUNT - 1), 16);
}

static void test_aligned_class(void **state) {
    (void)state;
    for (size_t align = 16; align <= BW_SMALL_MAX; align *= 2) {
        for (size_t size = 0; size <= BW_SMALL_MAX; size += 7) {
            unsigned c = bw_size_class_aligned(size, align);
            assert_true(c != 0);
            assert_true(bw_class_size[c] >= size);
            assert_int_equal(bw_class_size[c] % align, 0);
        }
    }
    assert_int_equal(bw_size_class_aligned(BW_SMALL_MAX + 1, 16), 0);
    assert_int_equal(bw_size_class_aligned(16, 2 * BW_SMALL_MAX), 0);
}

/* The free-list link check's boundary test (one multiply, no division) is
 * exact for every class and every offset in a slab. */
static void test_boundary_test_exact(void **state) {
    (void)state;
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        bw_slab_t slab = {0};
        uint32_t size = bw_class_size[c];
        slab.block_size = size;
        slab.div_magic = bw_div_magic(size);
        for (uintptr_t off = 0; off < bw_class_span_slots(c) * BW_SLAB_SIZE; off++)
            assert_int_equal(bw_slab_on_boundary(&slab, off), off % size == 0);
    }
}

/* Random ways (placement entropy): every class gets the candidates its
 * target asks for (or the cap), and all ways fit the heap's array. */
static void test_way_layout(void **state) {
    (void)state;
    assert_true(bw_ensure_init());
    unsigned last = BW_CLASS_COUNT - 1;
    assert_true(bw_class_way_base[last] + bw_class_ways[last] <= BW_WAYS_TOTAL);
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        assert_int_equal(bw_class_way_base[c], bw_class_way_base[c - 1] + bw_class_ways[c - 1]);
#if BW_RANDOM_WAYS
        uint32_t blocks = bw_class_span_usable(c) / bw_class_size[c];
        bool small = bw_class_size[c] <= 256;
        uint32_t wanted = (small ? 2u : 3u)
                          << (small ? BW_ENTROPY_BITS_SMALL : BW_ENTROPY_BITS_LARGE);
        assert_true(bw_class_ways[c] * blocks >= wanted || bw_class_ways[c] == BW_WAYS_MAX);
#else
        assert_int_equal(bw_class_ways[c], 1);
#endif
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_matches_linear_search),
        cmocka_unit_test(test_table_shape),
        cmocka_unit_test(test_fragmentation_under_25_percent),
        cmocka_unit_test(test_span_shape),
        cmocka_unit_test(test_aligned_class),
        cmocka_unit_test(test_boundary_test_exact),
        cmocka_unit_test(test_way_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

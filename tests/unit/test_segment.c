/* test_segment.c — the segments layer: slab slots come from the pool of the
 * NUMA node the topology reports (driven here through an injected two-node
 * topology), a segment keeps its node, released slots return to their own
 * node's pool and are reused before new segments are carved, committed
 * segments do not multiply VMAs, and the purge decommits released slots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bw_internal.h"
#include "bw_test.h"
#include "bw_unit.h"

static unsigned fake_node;
static unsigned fake_current_node(void) {
    return fake_node;
}

static bw_segment_t *segment_of(const bw_slab_t *slab) {
    return &bw_layout.segments[bw_slab_index(slab) / BW_SLABS_PER_SEGMENT];
}

static int setup_two_nodes(void **state) {
    (void)state;
    assert_true(bw_ensure_init());
    bw_topology.node_count = 2;
    bw_topology.current_node = fake_current_node;
    return 0;
}

static void test_slots_follow_the_node(void **state) {
    (void)state;
    bw_slab_t *on0[8], *on1[8];
    for (int i = 0; i < 8; i++) {
        fake_node = 0;
        on0[i] = bw_slab_slot_acquire(bw_topology.current_node());
        fake_node = 1;
        on1[i] = bw_slab_slot_acquire(bw_topology.current_node());
        assert_non_null(on0[i]);
        assert_non_null(on1[i]);
        assert_int_equal(segment_of(on0[i])->node, 0);
        assert_int_equal(segment_of(on1[i])->node, 1);
        assert_ptr_not_equal(segment_of(on0[i]), segment_of(on1[i]));
    }
    /* Released slots go back to their own node and are handed out again
     * before any new segment is carved. */
    size_t carved = bw_segments_in_use();
    bw_slab_slot_release(on1[3]);
    fake_node = 0;
    bw_slab_t *again0 = bw_slab_slot_acquire(0);
    assert_int_equal(segment_of(again0)->node, 0);
    bw_slab_t *again1 = bw_slab_slot_acquire(1);
    assert_ptr_equal(again1, on1[3]);
    assert_int_equal(bw_segments_in_use(), carved);
    bw_slab_slot_release(again0);
    bw_slab_slot_release(again1);
    for (int i = 0; i < 8; i++) {
        if (i != 3) bw_slab_slot_release(on1[i]);
        bw_slab_slot_release(on0[i]);
    }
}

static void test_unknown_node_uses_pool_zero(void **state) {
    (void)state;
    assert_int_equal(bw_pool_index_for_node(7), 0);
    assert_int_equal(bw_pool_index_for_node(1), 1);
    bw_slab_t *slab = bw_slab_slot_acquire(9);
    assert_int_equal(segment_of(slab)->node, 0);
    bw_slab_slot_release(slab);
}

static void test_purge_decommits(void **state) {
    (void)state;
    bw_slab_t *slab = bw_slab_slot_acquire(0);
    char *mem = (char *)bw_slab_start(slab);
    memset(mem, 0x5a, BW_SLAB_USABLE); /* the last page is a guard when BW_SLAB_GUARD */
    bw_slab_slot_release(slab);
    assert_int_equal(slab->state, BW_SLAB_DIRTY);
    assert_true(bw_segments_purge(true) >= BW_SLAB_SIZE);
    assert_int_equal(slab->state, BW_SLAB_UNUSED);
    /* MADV_DONTNEED: the memory reads as zero again. */
    for (size_t i = 0; i < BW_SLAB_USABLE; i += 512) assert_int_equal(mem[i], 0);
}

static void test_many_segments_few_mappings(void **state) {
    (void)state;
    size_t before = bw_test_map_count();
    enum { SLOTS = 64 * 40 }; /* 40 segments */
    static bw_slab_t *slots[SLOTS];
    for (int i = 0; i < SLOTS; i++) slots[i] = bw_slab_slot_acquire(0);
    size_t after = bw_test_map_count();
    print_message("mappings before %zu, after carving 40 segments %zu\n", before, after);
    assert_true(after <= before + 6);
    for (int i = 0; i < SLOTS; i++) bw_slab_slot_release(slots[i]);
}

int main(void) {
    bw_unit_enter_as_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_follow_the_node),
        cmocka_unit_test(test_unknown_node_uses_pool_zero),
        cmocka_unit_test(test_purge_decommits),
        cmocka_unit_test(test_many_segments_few_mappings),
    };
    return cmocka_run_group_tests(tests, setup_two_nodes, NULL);
}

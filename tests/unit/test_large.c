/* test_large.c — the large layer: the address table survives growth and
 * backward-shift deletion (thousands of live allocations found, freed in
 * random order), guard pages sit on both sides of every mapping (counted as
 * VMAs only when MADV_GUARD_INSTALL is missing), the cache serves a
 * malloc/free loop without new mappings, and alignments up to 64 MiB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "bulwark.h"
#include "bw_internal.h"
#include "bw_test.h"
#include "bw_unit.h"

static void test_table_growth_and_erase(void **state) {
    (void)state;
    enum { N = 5000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = bw_large_alloc(20000 + (size_t)(i % 7) * 4096, 0, false);
        assert_non_null(blocks[i]);
        *(int *)blocks[i] = i;
    }
    for (int i = 0; i < N; i++) assert_true(bw_large_usable_size(blocks[i], "test") >= 20000);
    /* free in a scrambled order to exercise backward-shift deletion */
    for (int k = 0; k < N; k++) {
        int i = (int)(((unsigned)k * 2654435761u) % N);
        if (!blocks[i]) continue;
        assert_int_equal(*(int *)blocks[i], i);
        assert_true(bw_large_free(blocks[i], 0, 0, "test"));
        blocks[i] = NULL;
        /* every other live block is still found */
        if (k % 500 == 0)
            for (int j = 0; j < N; j++)
                if (blocks[j]) assert_true(bw_large_usable_size(blocks[j], "test") >= 20000);
    }
    for (int i = 0; i < N; i++)
        if (blocks[i]) assert_true(bw_large_free(blocks[i], 0, 0, "test"));
}

static void test_unknown_pointer_is_not_freed(void **state) {
    (void)state;
    static char global[64];
    assert_false(bw_large_free(global, 0, 0, "test"));
}

static void test_cache_reuses_mappings(void **state) {
    (void)state;
    bw_large_trim();
    /* Warm up past the large quarantine (BW_LARGE_QUARANTINE parked
     * mappings) so that what follows only reuses. */
    for (int i = 0; i < 200; i++) free(malloc(200 * 1024 + (size_t)(i % 8) * 4096));
    size_t maps = bw_test_map_count();
    for (int i = 0; i < 2000; i++) {
        void *p = malloc(200 * 1024 + (size_t)(i % 8) * 4096);
        assert_non_null(p);
        memset(p, i, 4096);
        free(p);
    }
    /* Bounded, not growing with the 2,000 iterations: parked (quarantined)
     * mappings merge with their neighbours or not, by chance. */
    assert_true(bw_test_map_count() <= maps + 2 + BW_LARGE_QUARANTINE);
    struct bw_stats s;
    bw_get_stats(&s);
    assert_true(s.large_cached_bytes > 0);
    /* Trimming gives back the free extents' pages and regions free whole;
     * with a large quarantine the freed bodies may already be gone (guard
     * markers discard them). A second trim finds nothing left. */
    size_t released = bw_large_trim();
    if (!BW_LARGE_QUARANTINE) assert_true(released > 0);
    assert_int_equal(bw_large_trim(), 0);
}

static void test_alignments(void **state) {
    (void)state;
    for (size_t align = 4096; align <= ((size_t)64 << 20); align *= 4) {
        void *p = bw_large_alloc(100000, align, false);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % align, 0);
        memset(p, 1, 100000);
        assert_true(bw_large_free(p, 0, 0, "test"));
    }
}

static void test_guard_pages_cost_no_vma(void **state) {
    (void)state;
    enum { N = 200 };
    void *blocks[N];
    size_t before = bw_test_map_count();
    for (int i = 0; i < N; i++) blocks[i] = bw_large_alloc(64 * 1024, 0, false);
    size_t after = bw_test_map_count();
    long added = (long)after - (long)before; /* parked mappings may merge: can be < 0 */
    print_message("200 large blocks: %ld new mappings (guard by madvise: %d)\n", added,
                  bw_os_has_guard_madvise());
    if (bw_os_has_guard_madvise())
        assert_true(added <= N + 2); /* one VMA each at most, no guard VMAs */
    for (int i = 0; i < N; i++) bw_large_free(blocks[i], 0, 0, "test");
}

/* The canary right after the usable size has no zero byte, so a single
 * NUL written there (a string function's terminator) always changes it:
 * 2,000 blocks hold 16,000 canary bytes, of which about 62 would be zero if
 * they were drawn uniformly. */
static void test_canary_has_no_zero_byte(void **state) {
    (void)state;
    if (!BW_CANARY || BW_LARGE_RIGHT_ALIGN) skip();
    enum { N = 2000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = bw_large_alloc(20000 + (size_t)(i % 5) * 1000, 0, false);
        assert_non_null(blocks[i]);
        const unsigned char *canary =
            (const unsigned char *)blocks[i] + bw_large_usable_size(blocks[i], "test");
        for (int k = 0; k < 8; k++) assert_int_not_equal(canary[k], 0);
    }
    for (int i = 0; i < N; i++) assert_true(bw_large_free(blocks[i], 0, 0, "test"));
}

static long minor_faults(void) {
    struct rusage usage;
    return getrusage(RUSAGE_SELF, &usage) == 0 ? usage.ru_minflt : -1;
}

/* Without a large quarantine (fast), a request that no single free extent
 * holds merges the touched extents next to each other that hold it rather
 * than taking pages never used: a fresh page costs a fault and its zeroing.
 * (A region's untouched rest always fits, so extents used to be merged
 * never, and the window benchmark touched 72 MB for 4 live blocks of at
 * most 8 MiB.) Three blocks side by side, the first two written and freed,
 * then one of 1.5 times their size: it starts where the first did, and
 * writing it faults on the guard page the merge removed, not on 384 new
 * pages. */
static void test_touched_extents_merge_before_fresh_pages(void **state) {
    (void)state;
    if (BW_LARGE_QUARANTINE) skip(); /* freed bodies are guarded, merged as they leave */
    bw_large_trim();
    const size_t size = ((size_t)1 << 20) + 16;
    char *first = bw_large_alloc(size, 0, false);
    char *second = bw_large_alloc(size, 0, false);
    char *third = bw_large_alloc(size, 0, false);
    assert_non_null(first);
    assert_non_null(second);
    assert_non_null(third);
    /* The premise: carved side by side from a region's rest. */
    assert_true(second > first && third - second == second - first);
    assert_true((size_t)(second - first) <= size + 3 * 4096);
    memset(first, 1, size);
    memset(second, 2, size);
    assert_true(bw_large_free(first, 0, 0, "test"));
    assert_true(bw_large_free(second, 0, 0, "test"));
    long before = minor_faults();
    char *merged = bw_large_alloc(size + size / 2, 0, false);
    assert_ptr_equal(merged, first);
    memset(merged, 3, size + size / 2);
    long faults = minor_faults() - before;
    print_message("writing the 1.5 MiB block: %ld page faults\n", faults);
    assert_true(faults >= 0 && faults <= 8);
    assert_true(bw_large_free(merged, 0, 0, "test"));
    assert_true(bw_large_free(third, 0, 0, "test"));
}

int main(void) {
    bw_unit_enter_as_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_growth_and_erase),
        cmocka_unit_test(test_unknown_pointer_is_not_freed),
        cmocka_unit_test(test_cache_reuses_mappings),
        cmocka_unit_test(test_alignments),
        cmocka_unit_test(test_guard_pages_cost_no_vma),
        cmocka_unit_test(test_canary_has_no_zero_byte),
        cmocka_unit_test(test_touched_extents_merge_before_fresh_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

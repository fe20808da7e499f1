/* test_vma_count.c — guard pages must not cost mappings (DESIGN.md
 * invariant 5, CONVENTIONS trap 15): with 200,000 small objects of mixed
 * sizes live (every slab followed by its guard page in the hardened
 * profiles), the process has fewer than 1,000 mappings, far from
 * vm.max_map_count. Also holds 2,000 live large blocks (each with two guard
 * pages) and checks the count stays proportional to them, not to guards.
 * Prints the counts for the record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "bw_test.h"

enum { SMALL_LIVE = 200000, LARGE_LIVE = 2000 };

static void test_200k_small_objects_few_mappings(void **state) {
    (void)state;
    void **live = mmap(NULL, SMALL_LIVE * sizeof(void *), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(live != MAP_FAILED);
    size_t before = bw_test_map_count();
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < SMALL_LIVE; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* mixed sizes over every small class: mostly small, some up to 16 KiB */
        size_t size = (x & 3) ? 1 + (x >> 8) % 512 : 1 + (x >> 8) % 16000;
        live[i] = malloc(size);
        assert_non_null(live[i]);
        memset(live[i], (int)i, size < 64 ? size : 64);
    }
    size_t during = bw_test_map_count();
    print_message("profile %s: %zu mappings before, %zu with 200,000 small objects live "
                  "(RSS %zu MiB)\n",
                  BW_PROFILE_NAME, before, during, bw_test_rss_bytes() >> 20);
    assert_true(during < 1000);
    for (size_t i = 0; i < SMALL_LIVE; i++) free(live[i]);
    munmap(live, SMALL_LIVE * sizeof(void *));
}

static void test_2000_large_objects_no_guard_mappings(void **state) {
    (void)state;
    static void *live[LARGE_LIVE];
    size_t before = bw_test_map_count();
    for (size_t i = 0; i < LARGE_LIVE; i++) {
        live[i] = malloc(20000 + (i % 7) * 5000);
        assert_non_null(live[i]);
    }
    size_t during = bw_test_map_count();
    print_message("profile %s: %zu mappings with 2,000 large blocks live (%zu before)\n",
                  BW_PROFILE_NAME, during, before);
    /* Without MADV_GUARD_INSTALL each block would cost 3 mappings. */
    assert_true(during < before + LARGE_LIVE + 100);
    for (size_t i = 0; i < LARGE_LIVE; i++) free(live[i]);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_200k_small_objects_few_mappings),
        cmocka_unit_test(test_2000_large_objects_no_guard_mappings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

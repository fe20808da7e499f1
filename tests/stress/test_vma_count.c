/* test_vma_count.c — guard pages must not cost mappings (DESIGN.md
 * invariant 5, CONVENTIONS trap 15): with 200,000 small objects of mixed
 * sizes live (every slab followed by its guard page in the hardened
 * profiles), the process has fewer than 1,000 mappings, far from
 * vm.max_map_count. Also holds 2,000 live large blocks (each with two guard
 * pages) and checks the count stays proportional to them, not to guards.
 * Prints the counts for the record. The sealed secrets' page (static
 * build) is read-only and lies right before .bss, so that sealing it costs
 * one mapping, not two (in .bss it split .bss in two). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "bw_test.h"
#ifndef BW_TEST_PRELOAD
#include <stdio.h>

#include "random.h" /* bw_secrets */
#endif

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

#ifndef BW_TEST_PRELOAD
extern char __bss_start[]; /* the linker's */

static void test_secrets_page_sealed_before_bss(void **state) {
    (void)state;
    uintptr_t page = (uintptr_t)&bw_secrets;
    assert_true(page % 4096 == 0);
    assert_true(page + 4096 == (uintptr_t)__bss_start);
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    char line[512], perms[8] = "";
    unsigned long start = 0, end = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, maps))
        found =
            sscanf(line, "%lx-%lx %7s", &start, &end, perms) == 3 && start <= page && page < end;
    fclose(maps);
    assert_true(found);
    print_message("secrets' page %#lx-%#lx %s\n", start, end, perms);
    assert_true(start == page && end == page + 4096);
    assert_string_equal(perms, "r--p");
}
#endif

int main(void) {
    if (!bw_is_bulwark_loaded()) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_200k_small_objects_few_mappings),
        cmocka_unit_test(test_2000_large_objects_no_guard_mappings),
#ifndef BW_TEST_PRELOAD
        cmocka_unit_test(test_secrets_page_sealed_before_bss),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

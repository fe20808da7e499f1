/* test_zero_size.c — the zero-size region (zero_size.c, BW_ZERO_SIZE_FAULTS) when it
 * is full:
 *  - fill_then_fall_back: bw_zero_alloc hands out distinct 16-byte-spaced
 *    slots, far more than the 2^20 the region used to be limited to, until
 *    every slot is live and it returns NULL; then malloc(0) still succeeds,
 *    with an ordinary block of the smallest class (not in the region,
 *    usable size 16 minus the canary, or 0 with BW_EXACT_SIZE (the request),
 *    writable that far, accepted by free_sized with
 *    size 0 and by realloc, its double free reported as a 16-byte class's);
 *    a slot freed then is the next malloc(0)'s again; once all are freed
 *    the region hands out slots again.
 * Skipped in profiles without BW_ZERO_SIZE_FAULTS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bw_internal.h"
#include "bw_test.h"
#include "bw_unit.h"

#define OLD_LIMIT ((size_t)1 << 20) /* zero-size slots before this fix */
#define SEEN_MAX  ((size_t)1 << 28) /* slots the test's "seen" bitmap covers */

#if BW_ZERO_SIZE_FAULTS
static void free_twice(void *pointer) {
    free(pointer);
    free(bw_launder(pointer));
}
#endif

static void fill_then_fall_back(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_ZERO_SIZE_FAULTS);
#if BW_ZERO_SIZE_FAULTS
    /* One bit per slot offset from the lowest address, to prove every slot
     * handed out is distinct without keeping millions of pointers. The
     * first pointer's offset from the lowest is at most the region size;
     * start the bitmap that far below it. */
    uint64_t *seen = mmap(NULL, SEEN_MAX / 8, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(seen != MAP_FAILED);
    uintptr_t first = (uintptr_t)bw_zero_alloc(), lowest = first;
    assert_true(first != 0);
    uintptr_t origin = first - (SEEN_MAX / 2) * 16;
    size_t count = 0;
    for (uintptr_t p = first; p; p = (uintptr_t)bw_zero_alloc()) {
        BW_REQUIRE(p % 16 == 0 && bw_zero_owns((void *)p), "slot #%zu at 0x%jx", count,
                   (uintmax_t)p);
        size_t slot = (p - origin) / 16;
        BW_REQUIRE(slot < SEEN_MAX, "slot #%zu at 0x%jx is far from the first", count,
                   (uintmax_t)p);
        BW_REQUIRE(!(seen[slot / 64] & (1ull << (slot % 64))), "0x%jx handed out twice",
                   (uintmax_t)p);
        seen[slot / 64] |= 1ull << (slot % 64);
        if (p < lowest) lowest = p;
        count++;
    }
    print_message("%zu zero-size slots live before the region was full\n", count);
    BW_REQUIRE(count > 4 * OLD_LIMIT, "only %zu slots", count);

    /* Full: malloc(0) falls back to the smallest class. */
    char info[64];
    void *fallback = malloc(bw_opaque_size(0));
    assert_non_null(fallback);
    assert_false(bw_zero_owns(fallback));
    assert_int_equal(malloc_usable_size(fallback), BW_TEST_USABLE_FOR(0));
    memset(fallback, 0xa5, BW_TEST_USABLE_FOR(0));
    free_sized(fallback, 0);
    fallback = calloc(bw_opaque_size(0), 1);
    assert_non_null(fallback);
    assert_false(bw_zero_owns(fallback));
    char *grown = realloc(fallback, 100);
    assert_non_null(grown);
    memset(grown, 0x5a, 100);
    free(grown);
    fallback = malloc(bw_opaque_size(0));
    assert_non_null(fallback);
    bw_expect_report(free_twice, fallback, "double free", fallback,
                     bw_info_class(info, sizeof info, 16), "free");
    free(fallback);

    /* A slot freed now is the only free one: the next malloc(0) gets it. */
    void *middle = (void *)(lowest + (count / 2) * 16);
    free(middle);
    void *again = malloc(bw_opaque_size(0));
    assert_ptr_equal(again, middle);
    assert_int_equal(malloc_usable_size(again), 0);

    /* Every slot back: the region serves malloc(0) again. */
    for (size_t i = 0; i < count; i++) bw_zero_free((void *)(lowest + i * 16), 0, "free");
    void *after = malloc(bw_opaque_size(0));
    assert_true(bw_zero_owns(after));
    free(after);
    munmap(seen, SEEN_MAX / 8);
#endif
}

int main(void) {
    bw_unit_enter_as_allocator();
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fill_then_fall_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

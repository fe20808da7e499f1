/* test_cxx_delete.c — the checked C++ deletes (issue 2, point 6): a sized
 * delete with a size that cannot belong to the block, and an aligned delete
 * with an alignment the pointer does not have, are fatal reports naming
 * "operator delete" / "operator delete[]"; the matching sizes and
 * alignments (including the sizes class rounding allows, CONVENTIONS trap
 * 16) are accepted. Written in C against the Itanium ABI names the library
 * exports, so it runs in the same cmocka harness as the other death tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "bw_test.h"

void *_Znwm(size_t size);                           /* operator new(size_t) */
void *_Znam(size_t size);                           /* operator new[](size_t) */
void *_ZnwmSt11align_val_t(size_t size, size_t al); /* operator new(size_t, align_val_t) */
void _ZdlPvm(void *p, size_t size);                 /* operator delete(void*, size_t) */
void _ZdaPvm(void *p, size_t size);                 /* operator delete[](void*, size_t) */
void _ZdlPvSt11align_val_t(void *p, size_t al);     /* operator delete(void*, align_val_t) */
void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t al);

struct call {
    void *p;
    size_t size;
    size_t alignment;
};

static void sized_delete(void *arg) {
    struct call *c = arg;
    _ZdlPvm(c->p, c->size);
}
static void sized_array_delete(void *arg) {
    struct call *c = arg;
    _ZdaPvm(c->p, c->size);
}
static void aligned_delete(void *arg) {
    struct call *c = arg;
    _ZdlPvSt11align_val_t(c->p, c->alignment);
}
static void sized_aligned_delete(void *arg) {
    struct call *c = arg;
    _ZdlPvmSt11align_val_t(c->p, c->size, c->alignment);
}

static void test_sized_delete_wrong_size_small(void **state) {
    (void)state;
    struct call c = {_Znwm(64), 4096, 0};
    bw_expect_death_at(sized_delete, &c, "free size mismatch", "operator delete", c.p);
    _ZdlPvm(c.p, 64);
}

static void test_sized_delete_wrong_size_large(void **state) {
    (void)state;
    struct call c = {_Znwm(1 << 20), 100, 0};
    bw_expect_death_at(sized_delete, &c, "free size mismatch", "operator delete", c.p);
    _ZdlPvm(c.p, 1 << 20);
}

static void test_sized_array_delete_wrong_size(void **state) {
    (void)state;
    struct call c = {_Znam(200), 16, 0};
    bw_expect_death_at(sized_array_delete, &c, "free size mismatch", "operator delete[]", c.p);
    _ZdaPvm(c.p, 200);
}

static void test_aligned_delete_wrong_alignment(void **state) {
    (void)state;
    /* 64-aligned block; claiming 1 MiB alignment cannot be right for a
     * pointer that is not 1 MiB-aligned (probe until one is not). */
    void *p = _ZnwmSt11align_val_t(64, 64);
    void *keep = NULL;
    if (((uintptr_t)p & ((1u << 20) - 1)) == 0) {
        keep = p;
        p = _ZnwmSt11align_val_t(64, 64);
    }
    struct call c = {p, 0, 1u << 20};
    bw_expect_death_at(aligned_delete, &c, "free alignment mismatch", "operator delete", p);
    _ZdlPvSt11align_val_t(p, 64);
    if (keep) _ZdlPvSt11align_val_t(keep, 64);
}

static void test_sized_aligned_delete_wrong_size(void **state) {
    (void)state;
    struct call c = {_ZnwmSt11align_val_t(64, 64), 8192, 64};
    bw_expect_death_at(sized_aligned_delete, &c, "free size mismatch", "operator delete", c.p);
    _ZdlPvmSt11align_val_t(c.p, 64, 64);
}

/* A sized delete of a large block must name its request (or a size up to
 * the usable size): one a few bytes short is fatal although it rounds to
 * the same pages. The 16,384-byte case of issue 12 (large where the canary
 * room makes it so; a small block accepts what rounds to its class), and a
 * request of whole pages that is large whatever the small/large threshold. */
static void test_sized_aligned_delete_short_size_large(void **state) {
    (void)state;
    const size_t sizes[] = {BW_TEST_SMALL_MAX + 4 * 4096, 16384};
    size_t count = 16384 + BW_TEST_CANARY_BYTES > BW_TEST_SMALL_MAX ? 2 : 1;
    for (size_t i = 0; i < count; i++) {
        struct call c = {_ZnwmSt11align_val_t(sizes[i], 8192), sizes[i] - 10, 8192};
        assert_non_null(c.p);
        bw_expect_death_at(sized_aligned_delete, &c, "free size mismatch", "operator delete", c.p);
        c.size = sizes[i] - 4096; /* a whole page short */
        bw_expect_death_at(sized_aligned_delete, &c, "free size mismatch", "operator delete", c.p);
        _ZdlPvmSt11align_val_t(c.p, sizes[i], 8192);
    }
    struct call c = {_Znwm(BW_TEST_SMALL_MAX + 5000), BW_TEST_SMALL_MAX + 4999, 0};
    bw_expect_death_at(sized_delete, &c, "free size mismatch", "operator delete", c.p);
    _ZdlPvm(c.p, BW_TEST_SMALL_MAX + 5000);
}

static void test_double_delete(void **state) {
    (void)state;
    struct call c = {_Znwm(48), 48, 0};
    _ZdlPvm(c.p, 48);
    bw_expect_death_at(sized_delete, &c, "double free", "operator delete", c.p);
}

/* Every size a new-expression of that size class may pass is accepted. */
static void test_matching_sizes_accepted(void **state) {
    (void)state;
    for (size_t size = 1; size <= 20000; size += (size < 1100 ? 1 : 97)) {
        _ZdlPvm(_Znwm(size), size);
        _ZdaPvm(_Znam(size), size);
        _ZdlPvmSt11align_val_t(_ZnwmSt11align_val_t(size, 64), size, 64);
    }
}

int main(void) {
    if (!bw_is_bulwark_loaded()) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sized_delete_wrong_size_small),
        cmocka_unit_test(test_sized_delete_wrong_size_large),
        cmocka_unit_test(test_sized_array_delete_wrong_size),
        cmocka_unit_test(test_aligned_delete_wrong_alignment),
        cmocka_unit_test(test_sized_aligned_delete_wrong_size),
        cmocka_unit_test(test_sized_aligned_delete_short_size_large),
        cmocka_unit_test(test_double_delete),
        cmocka_unit_test(test_matching_sizes_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

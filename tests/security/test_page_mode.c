/* test_page_mode.c — the fuzz profile's page mode (BW_PAGE_MODE): every
 * block that is not zero bytes has pages of its own and ends at a guard
 * page, so that each bug below is caught in the execution that commits it,
 * at the access where the hardware can see it, else at free:
 *  - every block ends at its 16-byte-rounded request, right before a guard
 *    page; malloc_usable_size is the request;
 *  - reading or writing the first byte past that boundary faults there;
 *  - writing any byte between the request and that boundary (the bytes the
 *    guard page cannot see, 1 to 15 of them) is reported at free as a heap
 *    overflow, for every such offset and a NUL too;
 *  - reading or writing a freed block faults, also after 1,000 other
 *    blocks were freed after it (page mode parks 1,024);
 *  - double and invalid frees are reported;
 *  - calloc, realloc (growing and shrinking, contents kept), the aligned
 *    allocations and free_sized work as in every other mode;
 *  - 5,000 live blocks and 40,000 allocations cost a bounded number of
 *    mappings (guard markers, not a mapping per block as libdislocator).
 * This binary defines bulwark_fuzz_pages = 1 (the profile's default, which
 * tests/lib/bw_test.c turns off for the other tests); its .dyn twin, which
 * tests/run.sh runs with BULWARK_FUZZ_PAGES=0, checks that the switch turns
 * page mode off. Other profiles skip every test. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"

#ifndef BW_PAGE_MODE
#define BW_PAGE_MODE 0
#endif

int bulwark_fuzz_pages = 1;

#define PAGE 4096u

static size_t round16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

/* Page mode is on: a 16-byte block ends at a page boundary. */
static bool page_mode_active(void) {
    void *p = malloc(16);
    bool active = p && ((uintptr_t)p + 16) % PAGE == 0;
    free(p);
    return active;
}

static void skip_unless_page_mode(void) {
    BW_SKIP_UNLESS(BW_PAGE_MODE);
}

/* This binary run again with `--probe`: exit 10 if page mode is on, 11 if
 * off, with BULWARK_FUZZ_PAGES set to `value` (NULL: unset). */
static int probe_page_mode(const char *value) {
    char command[256];
    if (value)
        snprintf(command, sizeof command, "BULWARK_FUZZ_PAGES=%s /proc/%d/exe --probe", value,
                 (int)getpid());
    else
        snprintf(command, sizeof command, "unset BULWARK_FUZZ_PAGES; /proc/%d/exe --probe",
                 (int)getpid());
    int status = system(command);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* On by default (this binary's bulwark_fuzz_pages = 1, as the profile's
 * own default); BULWARK_FUZZ_PAGES=0 turns it off, 1 on. */
static void test_switch(void **state) {
    (void)state;
    BW_SKIP_UNLESS(BW_PAGE_MODE);
    assert_true(page_mode_active());
    assert_int_equal(probe_page_mode(NULL), 10);
    assert_int_equal(probe_page_mode("0"), 11);
    assert_int_equal(probe_page_mode("1"), 10);
}

static void test_blocks_end_at_their_guard(void **state) {
    (void)state;
    skip_unless_page_mode();
    static const size_t sizes[] = {1,   2,    13,   15,   16,   17,    24,    48,     64,
                                   100, 1000, 4080, 4096, 4097, 20000, 65536, 200000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *p = malloc(n);
        assert_non_null(p);
        assert_int_equal(((uintptr_t)p + round16(n)) % PAGE, 0);
        assert_int_equal((uintptr_t)p % 16, 0);
        assert_int_equal(malloc_usable_size(p), n);
        bw_fill(p, n, n);
        assert_true(bw_check(p, n, n));
        free(p);
    }
}

struct access {
    volatile char *at;
    bool write;
};

static void do_access(void *arg) {
    struct access *a = arg;
    if (a->write)
        *a->at = 'x';
    else
        (void)*a->at;
}

static void test_access_past_the_boundary_faults(void **state) {
    (void)state;
    skip_unless_page_mode();
    static const size_t sizes[] = {1, 13, 16, 48, 64, 4096, 5000, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = malloc(sizes[i]);
        assert_non_null(p);
        char *end = p + round16(sizes[i]);
        for (int write = 0; write <= 1; write++) {
            struct access a = {end, write};
            bw_expect_fault_in(do_access, &a, end, end + 1);
        }
        free(p);
    }
}

struct slack_write {
    size_t size, offset;
    bool flip; /* write the byte there with one bit changed, else a NUL */
};

static void do_slack_write_then_free(void *arg) {
    const struct slack_write *w = arg;
    unsigned char *p = malloc(w->size);
    bw_test_record_address(p);
    p[w->offset] = w->flip ? p[w->offset] ^ 0x40 : 0;
    free(p);
}

/* The bytes between the request and the 16-byte boundary: the guard page
 * cannot see them, the check at free must: a NUL (never the pattern, whose
 * bit 0 is set) and any byte that changes what was there. (A write of the
 * value a byte already holds changes nothing and cannot be seen.) */
static void test_slack_write_reported_at_free(void **state) {
    (void)state;
    skip_unless_page_mode();
    char info[64];
    for (size_t size = 1; size <= 47; size++) {
        if (size % 16 == 0) continue;
        for (size_t offset = size; offset < round16(size); offset++) {
            for (int flip = 0; flip <= 1; flip++) {
                struct slack_write w = {size, offset, flip};
                bw_expect_report_recorded(do_slack_write_then_free, &w, "heap overflow",
                                          bw_info_mapping(info, sizeof info, 3 * PAGE), "free");
            }
        }
    }
}

struct after_free {
    size_t size, others;
    bool write;
};

static void do_use_after_free(void *arg) {
    const struct after_free *u = arg;
    volatile char *p = malloc(u->size);
    p[0] = 1;
    free((void *)p);
    for (size_t i = 0; i < u->others; i++) free(malloc(u->size));
    if (u->write)
        p[u->size / 2] = 'x';
    else
        (void)p[u->size / 2];
}

static void test_use_after_free_faults(void **state) {
    (void)state;
    skip_unless_page_mode();
    static const size_t sizes[] = {8, 48, 1000, 40000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int write = 0; write <= 1; write++) {
            struct after_free u = {sizes[i], 0, write};
            bw_expect_signal(do_use_after_free, &u, SIGSEGV);
            u.others = 1000; /* page mode parks 1,024 freed blocks in fuzz */
            bw_expect_signal(do_use_after_free, &u, SIGSEGV);
        }
    }
}

static void do_double_free(void *arg) {
    (void)arg;
    void *p = malloc(40);
    bw_test_record_address(p);
    free(p);
    free(p);
}

static void do_interior_free(void *arg) {
    (void)arg;
    char *p = malloc(100);
    bw_test_record_address(p + 16);
    free(p + 16);
}

static void test_double_and_invalid_free_reported(void **state) {
    (void)state;
    skip_unless_page_mode();
    bw_expect_report_recorded(do_double_free, NULL, "double free", BW_INFO_NOT_A_BLOCK, "free");
    bw_expect_report_recorded(do_interior_free, NULL, "invalid free", BW_INFO_NOT_A_BLOCK, "free");
}

static void test_api_in_page_mode(void **state) {
    (void)state;
    skip_unless_page_mode();
    /* calloc: zero, and the overflow check of count * size */
    unsigned char *z = calloc(33, 3);
    assert_non_null(z);
    assert_true(bw_check_zero(z, 99));
    assert_int_equal(((uintptr_t)z + round16(99)) % PAGE, 0);
    free(z);
    errno = 0;
    assert_null(calloc(bw_opaque_size(SIZE_MAX / 2), 3));
    assert_int_equal(errno, ENOMEM);
    /* realloc: grows and shrinks with the contents kept */
    char *p = malloc(10);
    bw_fill(p, 10, 7);
    p = realloc(p, 5000);
    assert_non_null(p);
    assert_true(bw_check(p, 10, 7));
    bw_fill(p, 5000, 8);
    p = realloc(p, 30);
    assert_non_null(p);
    assert_true(bw_check(p, 30, 8));
    assert_int_equal(malloc_usable_size(p), 30);
    free_sized(p, 30);
    /* aligned allocations */
    for (size_t alignment = 32; alignment <= 65536; alignment *= 4) {
        void *a = NULL;
        assert_int_equal(posix_memalign(&a, alignment, 100), 0);
        assert_int_equal((uintptr_t)a % alignment, 0);
        bw_fill(a, 100, alignment);
        assert_true(bw_check(a, 100, alignment));
        free_aligned_sized(a, alignment, 100);
        void *b = aligned_alloc(alignment, 3 * alignment);
        assert_non_null(b);
        assert_int_equal((uintptr_t)b % alignment, 0);
        free(b);
    }
    /* malloc(0) stays a zero-size block: unique, freeable */
    void *zero = malloc(0);
    assert_non_null(zero);
    free(zero);
}

/* libdislocator maps every block; page mode carves them from regions and
 * guards them with markers: thousands of live blocks, few mappings. */
static void test_many_blocks_few_mappings(void **state) {
    (void)state;
    skip_unless_page_mode();
    enum { LIVE = 5000, ROUNDS = 40000 };
    static char *live[LIVE];
    size_t before = bw_test_map_count();
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < ROUNDS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t k = x % LIVE, size = 1 + (x >> 20) % 300;
        if (live[k]) {
            assert_true(bw_check(live[k], 8, k));
            free(live[k]);
        }
        live[k] = malloc(size < 8 ? 8 : size);
        assert_non_null(live[k]);
        bw_fill(live[k], 8, k);
    }
    size_t during = bw_test_map_count();
    for (size_t k = 0; k < LIVE; k++) {
        free(live[k]);
        live[k] = NULL;
    }
    print_message("page mode: %zu mappings before, %zu with %d blocks live\n", before, during,
                  LIVE);
    assert_true(during < before + 400);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--probe") == 0) return page_mode_active() ? 10 : 11;
    if (!BW_PAGE_MODE) {
        printf("skipped: BW_PAGE_MODE=0 in profile %s\n", BW_PROFILE_NAME);
        return 77;
    }
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_page_mode: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switch),
        cmocka_unit_test(test_blocks_end_at_their_guard),
        cmocka_unit_test(test_access_past_the_boundary_faults),
        cmocka_unit_test(test_slack_write_reported_at_free),
        cmocka_unit_test(test_use_after_free_faults),
        cmocka_unit_test(test_double_and_invalid_free_reported),
        cmocka_unit_test(test_api_in_page_mode),
        cmocka_unit_test(test_many_blocks_few_mappings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_info_leak.c — proves that data freed by one owner never reaches the
 * next owner of the memory, nor a dangling pointer:
 *  - small blocks (BW_ZERO_ON_FREE): a block filled with a secret pattern
 *    and freed reads as zeros through the dangling pointer from the moment
 *    of the free, all of it (its first 8 bytes too, though the free list
 *    uses them once the block leaves the quarantine: a pointer it held must
 *    not be readable while it waits), and when malloc hands the same block
 *    out again (which the test makes sure happens) neither it nor any other
 *    block of the class handed out meanwhile holds any 8-byte word of the
 *    secret; for classes from 16 bytes to the largest. The child makes the
 *    block (a forked child never allocates from slabs it inherited);
 *  - large blocks (BW_LARGE_QUARANTINE: a freed mapping is discarded while
 *    in quarantine): when the mapping comes back from the quarantine and the
 *    cache to a new malloc of the same size, it holds none of the secret.
 * The fast profile keeps old contents by design and is skipped. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"

#define MiB         ((size_t)1 << 20)
#define SECRET_SEED 0x5ec2e7

/* The secret: bw_fill's pattern for SECRET_SEED, as long as the largest
 * block tested; filled once. */
#define SECRET_BYTES (2 * MiB)
static char secret[SECRET_BYTES];

static void fill_secret(char *p, size_t n) {
    if (n > SECRET_BYTES) _exit(7);
    memcpy(p, secret, n);
}

/* True if any aligned 8-byte word of [p, p+n) equals the secret's word at
 * the same offset (reuse is block-granular, so a leak keeps its offset). */
static bool holds_secret(const char *p, size_t n) {
    for (size_t i = 0; i + 8 <= n && i + 8 <= SECRET_BYTES; i += 8) {
        if (memcmp(p + i, secret + i, 8) == 0) {
            fprintf(stderr, "secret word found at %p+%zu\n", (const void *)p, i);
            return true;
        }
    }
    return false;
}

/* True if any aligned word of [p, p+n) that lies in [old, old+old_n) still
 * holds the secret written there (a large extent is carved anew: a leak
 * would sit at the same address, not the same offset). */
static bool holds_secret_at(const char *p, size_t n, const char *old, size_t old_n) {
    const char *from = p > old ? p : old;
    const char *to = p + n < old + old_n ? p + n : old + old_n;
    for (const char *q = from; q + 8 <= to; q += 8) {
        if (memcmp(q, secret + (q - old), 8) == 0) {
            fprintf(stderr, "secret word found at %p\n", (const void *)q);
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------ small */

struct leak {
    char *block; /* large: made by the parent */
    size_t request;
};

/* In the child: make a block with a live neighbour in its slab (a released
 * slab would be zeroed by the kernel, proving nothing about bulwark), fill
 * it with the secret, free it, check the dangling view, empty the
 * quarantine and allocate the class until the block comes back; every
 * block handed out on the way is checked. Exit 3: secret seen; 4: the block
 * never came back; 6: the dangling view was not all zero. */
static void do_small_reuse(void *arg) {
    const struct leak *op = arg;
    void *pair[2];
    bw_test_malloc_in_one_slab(op->request, 2, pair);
    char *block = pair[1];
    size_t usable = malloc_usable_size(block);
    fill_secret(block, usable);
    free(block);
    if (!bw_check_zero(bw_launder(block), usable)) _exit(6);
    malloc_trim(0);
    size_t rounds = ((size_t)64 << 20) / BW_TEST_CLASS_FOR(op->request);
    if (rounds < 4096) rounds = 4096; /* a medium class keeps up to 110 ways of 7 blocks */
    for (size_t i = 0; i < rounds; i++) {
        char *p = malloc(op->request);
        if (!p) _exit(2);
        if (holds_secret(p, malloc_usable_size(p))) _exit(3);
        if (p == block) return;
    }
    _exit(4);
}

static void test_small_freed_secret_never_handed_out(void **state) {
    BW_SKIP_UNLESS(BW_ZERO_ON_FREE);
    static const size_t requests[] = {
        8, 64, 200, 1000, 4096, 10000, BW_TEST_SMALL_MAX - BW_TEST_CANARY_BYTES};
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        struct leak op = {NULL, requests[i]};
        bw_expect_no_report(do_small_reuse, &op);
    }
}

/* ------------------------------------------------------------ large */

/* The large quarantine holds BW_LARGE_QUARANTINE extents; after that many
 * more frees of the same size the secret's extent is free again, and a
 * malloc of the size is carved from it (the test ends when a block
 * overlaps the secret's pages). */
static void do_large_reuse(void *arg) {
    const struct leak *op = arg;
    size_t usable = malloc_usable_size(op->block);
    fill_secret(op->block, usable);
    free(op->block);
    for (size_t i = 0; i < 4 * (BW_LARGE_QUARANTINE + BW_LARGE_CACHE_ENTRIES); i++) {
        char *p = malloc(op->request);
        if (!p) _exit(2);
        size_t got = malloc_usable_size(p);
        if (holds_secret_at(p, got, op->block, usable)) _exit(3);
        if (p < op->block + usable && op->block < p + got) return;
        free(p);
    }
    _exit(4);
}

/* For each request: a block of that size, which `reuse` fills with the
 * secret and frees in a child, then tries to get back. */
static void expect_secret_kept_from_reuse(void (*reuse)(void *), const size_t *requests,
                                          size_t count) {
    for (size_t i = 0; i < count; i++) {
        char *block = malloc(requests[i]);
        assert_non_null(block);
        struct leak op = {block, requests[i]};
        bw_expect_no_report(reuse, &op);
        free(block);
    }
}

static void test_large_freed_secret_never_handed_out(void **state) {
    BW_SKIP_UNLESS(BW_LARGE_QUARANTINE);
    static const size_t requests[] = {BW_TEST_SMALL_MAX + 1, 200000, MiB};
    expect_secret_kept_from_reuse(do_large_reuse, requests, sizeof requests / sizeof requests[0]);
}

/* Freed extents merge with their neighbours and are cut again at other
 * offsets and lengths: a block carved across the secret's old pages, with
 * never-used pages beside them, must still read zero there (the clearing
 * follows where the freed bytes lie, large.c). Blocks of cycling sizes
 * from 66 KiB to 1.5 MiB are made and freed until 8 of them overlapped the
 * secret's pages, each checked word by word where it does. */
static void do_large_reuse_mixed(void *arg) {
    const struct leak *op = arg;
    static const size_t sizes[] = {1536 << 10, 70000,         300000, 900000,
                                   140000,     2 * 65536 + 8, 500000, 1 << 20};
    size_t usable = malloc_usable_size(op->block);
    fill_secret(op->block, usable);
    free(op->block);
    unsigned overlaps = 0;
    for (size_t i = 0; i < 64 * (BW_LARGE_QUARANTINE + BW_LARGE_CACHE_ENTRIES) && overlaps < 8;
         i++) {
        size_t request = sizes[i % (sizeof sizes / sizeof sizes[0])];
        char *p = malloc(request);
        if (!p) _exit(2);
        size_t got = malloc_usable_size(p);
        if (holds_secret_at(p, got, op->block, usable)) _exit(3);
        if (p < op->block + usable && op->block < p + got) overlaps++;
        free(p);
    }
    if (overlaps == 0) _exit(4); /* the secret's pages were never handed out again */
}

static void test_large_freed_secret_never_handed_out_mixed_sizes(void **state) {
    BW_SKIP_UNLESS(BW_LARGE_QUARANTINE);
    static const size_t requests[] = {200000, MiB + 12345};
    expect_secret_kept_from_reuse(do_large_reuse_mixed, requests,
                                  sizeof requests / sizeof requests[0]);
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_info_leak: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    if (!BW_ZERO_ON_FREE && !BW_LARGE_QUARANTINE) {
        printf("skipped: BW_ZERO_ON_FREE=0 and BW_LARGE_QUARANTINE=0 in profile %s\n",
               BW_PROFILE_NAME);
        return 77;
    }
    bw_fill(secret, sizeof secret, SECRET_SEED);
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_freed_secret_never_handed_out),
        cmocka_unit_test(test_large_freed_secret_never_handed_out),
        cmocka_unit_test(test_large_freed_secret_never_handed_out_mixed_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

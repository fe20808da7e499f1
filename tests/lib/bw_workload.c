/* bw_workload.c — the workload of bw_workload.h.
 *
 * Only the public API, so the same file serves the static and the .dyn
 * builds. The block table is static (not from the heap under test), and
 * every failure names the class or size, the block and the pass. */
#include "bw_workload.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bw_test.h"

#define WL_KiB ((size_t)1 << 10)

/* ------------------------------------------------------------ small */

/* Three slabs of the smallest class would be 11,520 blocks; two and a bit
 * are enough to open fresh slabs, and the table stays 64 KiB. */
#define WL_MAX_BLOCKS 8192u

static void *wl_blocks[WL_MAX_BLOCKS];

/* Blocks in three slabs of a class (a slab of the classes above 8 KiB spans
 * two slots), at most the table's size. */
static size_t wl_blocks_for(size_t class_size) {
    size_t slab_bytes = bw_test_span_bytes(class_size) - (BW_SLAB_GUARD ? BW_TEST_PAGE : 0);
    size_t count = 3 * (slab_bytes / class_size);
    return count < WL_MAX_BLOCKS ? count : WL_MAX_BLOCKS;
}

static uint64_t wl_seed(unsigned pass, size_t index, size_t block) {
    return (uint64_t)pass << 48 ^ (uint64_t)index << 32 ^ block;
}

/* Allocates, fills and checks `count` blocks of `request` bytes; every
 * other one by calloc when asked, which must be all zero. */
static bool wl_small_fill(unsigned pass, size_t index, size_t request, size_t count,
                          bool with_calloc) {
    for (size_t i = 0; i < count; i++) {
        bool zeroed = with_calloc && i % 2 == 1;
        void *p = zeroed ? calloc(1, request) : malloc(request);
        wl_blocks[i] = p;
        if (!p) {
            fprintf(stderr, "pass %u: %s(%zu) returned NULL at block %zu\n", pass,
                    zeroed ? "calloc" : "malloc", request, i);
            return false;
        }
        if (zeroed && !bw_check_zero(p, request)) {
            fprintf(stderr, "pass %u: calloc(1, %zu) block %zu (%p) is not zero\n", pass, request,
                    i, p);
            return false;
        }
        bw_fill(p, request, wl_seed(pass, index, i));
    }
    return true;
}

/* Checks and frees the blocks wl_small_fill made, in reverse order. */
static bool wl_small_check_and_free(unsigned pass, size_t index, size_t request, size_t count) {
    for (size_t i = count; i-- > 0;) {
        if (!bw_check(wl_blocks[i], request, wl_seed(pass, index, i))) {
            fprintf(stderr, "pass %u: block %zu (%p) of %zu bytes lost its contents\n", pass, i,
                    wl_blocks[i], request);
            return false;
        }
        free(wl_blocks[i]);
    }
    return true;
}

/* One pass over every class, upward or downward (so that slots a class gave
 * back in the previous pass are taken by other classes). */
static bool wl_small_pass(unsigned pass, bool downward, bool with_calloc) {
    for (size_t k = 0; k < BW_TEST_CLASS_COUNT; k++) {
        size_t index = downward ? BW_TEST_CLASS_COUNT - 1 - k : k;
        size_t class_size = bw_test_class_size(index);
        size_t request = class_size - BW_TEST_CANARY_BYTES;
        size_t count = wl_blocks_for(class_size);
        if (!wl_small_fill(pass, index, request, count, with_calloc) ||
            !wl_small_check_and_free(pass, index, request, count))
            return false;
    }
    return true;
}

bool bw_workload_small_classes(void) {
    if (!wl_small_pass(1, false, false)) return false;
    malloc_trim(0);
    if (!wl_small_pass(2, true, true)) return false;
    malloc_trim(0);
    return wl_small_pass(3, false, true);
}

/* ------------------------------------------------------------ large */

#define WL_LIVE 4u

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t seed;
} wl_large_t;

/* A few sizes again and again, so that cached mappings fit the next ones. */
static size_t wl_large_size(size_t i) {
    static const size_t sizes[] = {20 * WL_KiB + 1, 64 * WL_KiB, 100 * WL_KiB - 8, 256 * WL_KiB,
                                   1024 * WL_KiB - 5};
    return sizes[i % (sizeof sizes / sizeof sizes[0])];
}

/* A fresh block: every third one by calloc (checked zero), every seventh
 * aligned to 64 KiB, the rest by malloc. */
static bool wl_large_new(size_t i, wl_large_t *out) {
    size_t size = wl_large_size(i);
    bool zeroed = i % 3 == 1;
    unsigned char *p = zeroed       ? calloc(1, size)
                       : i % 7 == 3 ? aligned_alloc(64 * WL_KiB, size)
                                    : malloc(size);
    if (!p) {
        fprintf(stderr, "large %zu: allocation of %zu bytes returned NULL\n", i, size);
        return false;
    }
    if (zeroed && !bw_check_zero(p, size)) {
        fprintf(stderr, "large %zu: calloc(1, %zu) at %p is not zero\n", i, size, (void *)p);
        return false;
    }
    out->ptr = p;
    out->size = size;
    out->seed = 0x1a7e0000u + i;
    bw_fill(p, size, out->seed);
    return true;
}

/* Moves the block to 3/2 or 2/5 of its size; the common prefix must
 * survive, then the whole block is filled again. */
static bool wl_large_resize(size_t i, wl_large_t *b) {
    size_t size = i % 2 ? b->size + b->size / 2 : b->size * 2 / 5;
    size_t kept = size < b->size ? size : b->size;
    unsigned char *p = realloc(b->ptr, size);
    if (!p) {
        fprintf(stderr, "large %zu: realloc to %zu bytes returned NULL\n", i, size);
        return false;
    }
    if (!bw_check(p, kept, b->seed)) {
        fprintf(stderr, "large %zu: realloc from %zu to %zu bytes lost the contents\n", i, b->size,
                size);
        return false;
    }
    b->ptr = p;
    b->size = size;
    bw_fill(p, size, b->seed);
    return true;
}

static bool wl_large_check_and_free(size_t i, const wl_large_t *b) {
    if (!bw_check(b->ptr, b->size, b->seed)) {
        fprintf(stderr, "large %zu: block %p of %zu bytes lost its contents\n", i, (void *)b->ptr,
                b->size);
        return false;
    }
    free(b->ptr);
    return true;
}

/* Frees go through the quarantine (BW_LARGE_QUARANTINE mappings) and the
 * cache (BW_LARGE_CACHE_ENTRIES) three times over. */
static bool wl_large_pass(void) {
    const size_t rounds = 3 * (BW_LARGE_QUARANTINE + BW_LARGE_CACHE_ENTRIES) + WL_LIVE;
    wl_large_t live[WL_LIVE];
    for (size_t i = 0; i < rounds; i++) {
        wl_large_t *slot = &live[i % WL_LIVE];
        if (i >= WL_LIVE && !wl_large_check_and_free(i, slot)) return false;
        if (!wl_large_new(i, slot)) return false;
        if (i % 5 == 2 && !wl_large_resize(i, slot)) return false;
    }
    for (size_t i = 0; i < WL_LIVE; i++)
        if (!wl_large_check_and_free(rounds + i, &live[i])) return false;
    return true;
}

bool bw_workload_large_blocks(void) {
    if (!wl_large_pass()) return false;
    malloc_trim(0);
    return wl_large_pass();
}

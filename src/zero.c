/* zero.c — zero-byte allocations (issue 3, BW_ZERO_SIZE_FAULTS).
 *
 * malloc(0) must return a unique pointer that can be freed (CONVENTIONS
 * trap 11); a hardened allocator also makes any access through it fault, as
 * hardened_malloc does. The pointers come from a reservation that is never
 * made accessible: 2^20 slots 16 bytes apart, tracked by an out-of-line
 * bitmap (a double free of a zero-byte block is caught like any other).
 * malloc(0) is rare, so one lock and a scan from a random word are enough. */
#include <errno.h>

#include "bw_internal.h"

#if BW_ZERO_SIZE_FAULTS
#define BW_ZERO_SLOTS   (1u << 20)
#define BW_ZERO_SPACING 16u
#define BW_ZERO_WORDS   (BW_ZERO_SLOTS / 64)

static bw_lock_t bw_zero_lock;
static uintptr_t bw_zero_base;
static uint64_t *bw_zero_bits; /* own mapping, guard pages around it */

bool bw_zero_init(void) {
    void *region = bw_os_reserve((size_t)BW_ZERO_SLOTS * BW_ZERO_SPACING, BW_PAGE_SIZE, true);
    size_t bitmap_bytes = BW_ZERO_WORDS * sizeof(uint64_t);
    char *bits = bw_os_map(bitmap_bytes + 2 * BW_PAGE_SIZE);
    if (!region || !bits) return false;
    if (!bw_os_guard(bits, BW_PAGE_SIZE) ||
        !bw_os_guard(bits + BW_PAGE_SIZE + bitmap_bytes, BW_PAGE_SIZE) ||
        !bw_os_protect_meta(bits + BW_PAGE_SIZE, bitmap_bytes))
        return false;
    bw_zero_bits = (uint64_t *)(void *)(bits + BW_PAGE_SIZE);
    bw_zero_base = (uintptr_t)region;
    return true;
}

bool bw_zero_owns(const void *ptr) {
    return (uintptr_t)ptr - bw_zero_base < (uintptr_t)BW_ZERO_SLOTS * BW_ZERO_SPACING;
}

void *bw_zero_alloc(void) {
    bw_heap_t *heap = bw_heap_get_or_create();
    uint32_t start = heap ? bw_rng_below(&heap->rng, BW_ZERO_WORDS) : 0;
    bw_lock(&bw_zero_lock);
    for (uint32_t n = 0; n < BW_ZERO_WORDS; n++) {
        uint32_t w = (start + n) & (BW_ZERO_WORDS - 1);
        uint64_t free_bits = ~bw_zero_bits[w];
        if (!free_bits) continue;
        unsigned bit = (unsigned)__builtin_ctzll(free_bits);
        bw_zero_bits[w] |= 1ull << bit;
        bw_unlock(&bw_zero_lock);
        return (void *)(bw_zero_base + ((uintptr_t)w * 64 + bit) * BW_ZERO_SPACING);
    }
    bw_unlock(&bw_zero_lock);
    errno = ENOMEM;
    return NULL;
}

/* Validates a zero-byte block; clears it when `release`. */
static void bw_zero_check(void *ptr, bool release, const char *freed_class,
                          const char *invalid_class, const char *function) {
    uintptr_t offset = (uintptr_t)ptr - bw_zero_base;
    if (offset % BW_ZERO_SPACING) bw_fatal(invalid_class, ptr, BW_INFO_CLASS, 0, function);
    size_t slot = offset / BW_ZERO_SPACING;
    uint64_t bit = 1ull << (slot & 63);
    bw_lock(&bw_zero_lock);
    bool live = bw_zero_bits[slot >> 6] & bit;
    if (live && release) bw_zero_bits[slot >> 6] &= ~bit;
    bw_unlock(&bw_zero_lock);
    if (!live) bw_fatal(freed_class, ptr, BW_INFO_CLASS, 0, function);
}

void bw_zero_free(void *ptr, size_t size, const char *function) {
    if (size) bw_fatal("free size mismatch", ptr, BW_INFO_CLASS, 0, function);
    bw_zero_check(ptr, true, "double free", "invalid free", function);
}

void bw_zero_validate(void *ptr, const char *freed_class, const char *invalid_class,
                      const char *function) {
    bw_zero_check(ptr, false, freed_class, invalid_class, function);
}

/* malloc(0) and free of a zero-size block take the lock: a fork while
 * another thread holds it would leave it held forever in the child. */
void bw_zero_fork_prepare(void) {
    bw_lock(&bw_zero_lock);
}
void bw_zero_fork_parent(void) {
    bw_unlock(&bw_zero_lock);
}
void bw_zero_fork_child(void) {
    bw_lock_reset_in_child(&bw_zero_lock);
}
#else
bool bw_zero_init(void) {
    return true;
}
bool bw_zero_owns(const void *ptr) {
    (void)ptr;
    return false;
}
/* No zero-size region, no lock to hand over. */
void bw_zero_fork_prepare(void) {}
void bw_zero_fork_parent(void) {}
void bw_zero_fork_child(void) {}
#endif

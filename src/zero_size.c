/* zero_size.c — zero-byte allocations (issue 3, BW_ZERO_SIZE_FAULTS).
 *
 * malloc(0) must return a unique pointer that can be freed (CONVENTIONS
 * trap 11); a hardened allocator also makes any access through it fault, as
 * hardened_malloc does. The pointers come from a reservation that is never
 * made accessible: BW_ZERO_SLOTS slots 16 bytes apart (256 MiB of PROT_NONE
 * address space; in lazy space, os.c, only the part in use is mapped),
 * tracked by an out-of-line bitmap, one "live" bit per slot
 * (a double free of a zero-byte block is caught like any other).
 *
 * The bitmap's own reservation (2 MiB) is committed in address order, as
 * the zero-byte blocks a program holds grow: 2^20 slots (128 KiB) at
 * start-up, then twice as many each time every committed slot is live. So
 * a program with a few zero-byte blocks commits (and touches) no more than
 * before, and one with millions can have them (there used to be a hard limit
 * of 2^20, after which malloc(0) failed with ENOMEM).
 *
 * Finding a free slot never scans the bitmap: `open` has a bit per bitmap
 * word that has a free slot, `open_any` a bit per `open` word that is not
 * zero. malloc(0) tries one random word first (addresses stay unpredictable
 * while the region is sparse), else takes the first open word at or after
 * the random one's group of 4096 words, reading at most 64 `open_any` words
 * under the lock. All three levels live in one metadata reservation, apart
 * from each other and from the rest by uncommitted pages.
 *
 * With all 2^24 slots live (16M zero-byte blocks at once), bw_zero_alloc
 * returns NULL and malloc(0) hands out an ordinary block of the smallest
 * class instead (heap.c): it does not fault on access, but it is a block
 * like any other to free, free_sized (size 0), realloc and
 * malloc_usable_size (8 bytes under a canary, 16 without). */
#include "zero_size.h"
#include "heap.h"
#include "hot.h"
#include "lock.h"
#include "os.h"
#include "report.h"

#if BW_ZERO_SIZE_FAULTS
#define BW_ZERO_SLOTS_SHIFT 24
#define BW_ZERO_SLOTS       ((size_t)1 << BW_ZERO_SLOTS_SHIFT)
#define BW_ZERO_SPACING     16u
#define BW_ZERO_WORDS_MAX   ((uint32_t)(BW_ZERO_SLOTS / 64)) /* live bits: 2 MiB */
#define BW_ZERO_WORDS_START ((uint32_t)1 << 14)              /* 2^20 slots, 128 KiB */
#define BW_ZERO_OPEN_WORDS  (BW_ZERO_WORDS_MAX / 64)         /* 32 KiB */
#define BW_ZERO_ANY_WORDS   (BW_ZERO_OPEN_WORDS / 64)        /* 512 bytes */
#define BW_ZERO_WORDS_NONE  UINT32_MAX
_Static_assert(BW_ZERO_WORDS_START % 4096 == 0, "whole open_any words cover the committed part");
_Static_assert(BW_ZERO_ANY_WORDS <= 64, "the search reads at most 64 open_any words");

static uintptr_t bw_zero_base;
static uint64_t *bw_zero_bits;     /* live bit per slot; committed up to bw_zero_words */
static uint64_t *bw_zero_open;     /* bit w: bw_zero_bits[w] has a free slot */
static uint64_t *bw_zero_open_any; /* bit i: bw_zero_open[i] is not zero */
static uint32_t bw_zero_words;     /* bitmap words committed (and searched) */

#define BW_ZERO_PAGE_ROUND(bytes) (((bytes) + BW_PAGE_SIZE - 1) & ~(size_t)(BW_PAGE_SIZE - 1))
#define BW_ZERO_BITS_BYTES        ((size_t)BW_ZERO_WORDS_MAX * sizeof(uint64_t))
#define BW_ZERO_SUMMARY_BYTES                                                                      \
    BW_ZERO_PAGE_ROUND(((size_t)BW_ZERO_OPEN_WORDS + BW_ZERO_ANY_WORDS) * sizeof(uint64_t))

#define BW_ZERO_REGION_SIZE (BW_ZERO_SLOTS * BW_ZERO_SPACING)
#define BW_ZERO_META_SIZE                                                                          \
    (BW_PAGE_SIZE + BW_ZERO_BITS_BYTES + BW_PAGE_SIZE + BW_ZERO_SUMMARY_BYTES + BW_PAGE_SIZE)
/* The slots of bitmap word w start at region + w * BW_ZERO_WORD_SPAN. */
#define BW_ZERO_WORD_SPAN (64u * BW_ZERO_SPACING)

static char *bw_zero_region; /* the region, before bw_zero_base publishes it */

/* Commit bitmap words [from, to) and mark them open: fresh pages read as
 * zero, every slot free. In lazy space (os.c) the slots' part of the region
 * is mapped PROT_NONE first (16 MiB for the first 2^20 slots), so that
 * nothing else can be mapped where bulwark hands out pointers.
 * Zero-lock held, or at start-up. */
static bool bw_zero_commit_words(uint32_t from, uint32_t to) {
    char *slots = bw_zero_region + (size_t)from * BW_ZERO_WORD_SPAN;
    size_t slots_bytes = (size_t)(to - from) * BW_ZERO_WORD_SPAN;
    if (bw_os_space_fault(slots, slots_bytes) != BW_MAP_OK) return false;
    if (bw_os_space_commit(bw_zero_bits + from, (size_t)(to - from) * sizeof(uint64_t), true) !=
        BW_MAP_OK) {
        bw_os_space_uncommit(slots, slots_bytes);
        return false;
    }
    for (uint32_t i = from / 64; i < to / 64; i++) bw_zero_open[i] = ~0ull;
    for (uint32_t i = from / 4096; i < to / 4096; i++) bw_zero_open_any[i] = ~0ull;
    bw_zero_words = to;
    return true;
}

/* The bytes of the bitmaps' piece of the metadata zone (init.c). */
size_t bw_zero_meta_bytes(void) {
    return BW_ZERO_META_SIZE;
}

/* The last step of start-up: what it made is undone if it fails, so that
 * a failed start-up leaves nothing mapped (init.c releases the zone, and
 * with it meta). meta: bw_zero_meta_bytes() of the metadata zone. */
bool bw_zero_init(void *meta_piece) {
    /* guard | live bits | guard | open, open_any | guard */
    char *meta = meta_piece;
    char *summary = meta + BW_PAGE_SIZE + BW_ZERO_BITS_BYTES + BW_PAGE_SIZE;
    bw_zero_region = bw_os_space_reserve(BW_ZERO_REGION_SIZE, BW_PAGE_SIZE);
    if (!bw_zero_region) goto fail;
    bw_zero_bits = (uint64_t *)(void *)(meta + BW_PAGE_SIZE);
    if (bw_os_space_commit(summary, BW_ZERO_SUMMARY_BYTES, true) != BW_MAP_OK) goto fail;
    bw_zero_open = (uint64_t *)(void *)summary;
    bw_zero_open_any = bw_zero_open + BW_ZERO_OPEN_WORDS;
    if (!bw_zero_commit_words(0, BW_ZERO_WORDS_START)) {
        bw_os_space_uncommit(summary, BW_ZERO_SUMMARY_BYTES);
        goto fail;
    }
    bw_zero_base = (uintptr_t)bw_zero_region;
    return true;
fail:
    bw_os_space_release(bw_zero_region, BW_ZERO_REGION_SIZE);
    bw_zero_region = NULL;
    bw_zero_bits = bw_zero_open = bw_zero_open_any = NULL;
    return false;
}

/* Before initialisation (and after it failed) the base is 0, and low
 * addresses are nobody's zero-byte blocks. */
bool bw_zero_owns(const void *ptr) {
    return bw_zero_base && (uintptr_t)ptr - bw_zero_base < BW_ZERO_SLOTS * BW_ZERO_SPACING;
}

/* The first bitmap word with a free slot, looking from `near`'s group of
 * 4096 words onwards (and around); BW_ZERO_WORDS_NONE when all are live.
 * Zero-lock held. */
static uint32_t bw_zero_find_open(uint32_t near) {
    uint32_t groups = bw_zero_words / 4096;
    for (uint32_t n = 0, g = near / 4096; n < groups; n++, g = g + 1 < groups ? g + 1 : 0) {
        uint64_t any = bw_zero_open_any[g];
        if (!any) continue;
        uint32_t open_index = g * 64 + (uint32_t)__builtin_ctzll(any);
        return open_index * 64 + (uint32_t)__builtin_ctzll(bw_zero_open[open_index]);
    }
    return BW_ZERO_WORDS_NONE;
}

void *bw_zero_alloc(void) {
    bw_heap_t *heap = bw_heap_get_or_create();
    uint32_t random = heap ? (uint32_t)bw_rng_next(&heap->rng) : 0;
    bw_lock(&bw_locks.zero);
    uint32_t words = bw_zero_words;
    uint32_t w = (uint32_t)(((uint64_t)random * words) >> 32);
    if (!~bw_zero_bits[w]) w = bw_zero_find_open(w);
    if (w == BW_ZERO_WORDS_NONE) {
        /* Every committed slot is live: twice as many, in a random word
         * of the new half. */
        if (words >= BW_ZERO_WORDS_MAX || !bw_zero_commit_words(words, 2 * words)) {
            bw_unlock(&bw_locks.zero);
            return NULL; /* the caller falls back to an ordinary block */
        }
        w = words + (uint32_t)(((uint64_t)random * words) >> 32);
    }
    unsigned bit = (unsigned)__builtin_ctzll(~bw_zero_bits[w]);
    bw_zero_bits[w] |= 1ull << bit;
    if (!~bw_zero_bits[w]) { /* the word is full now: close it */
        bw_zero_open[w / 64] &= ~(1ull << (w % 64));
        if (!bw_zero_open[w / 64]) bw_zero_open_any[w / 4096] &= ~(1ull << (w / 64 % 64));
    }
    bw_unlock(&bw_locks.zero);
    return (void *)(bw_zero_base + ((uintptr_t)w * 64 + bit) * BW_ZERO_SPACING);
}

/* Validates a zero-byte block; clears it when `release`. */
static void bw_zero_check(void *ptr, bool release, const char *freed_class,
                          const char *invalid_class, const char *function) {
    uintptr_t offset = (uintptr_t)ptr - bw_zero_base;
    if (offset % BW_ZERO_SPACING) bw_fatal(invalid_class, ptr, BW_INFO_CLASS, 0, function);
    size_t slot = offset / BW_ZERO_SPACING;
    size_t w = slot / 64;
    uint64_t bit = 1ull << (slot % 64);
    bw_lock(&bw_locks.zero);
    if (w >= bw_zero_words) { /* never committed, so never handed out */
        bw_unlock(&bw_locks.zero);
        bw_fatal(invalid_class, ptr, BW_INFO_CLASS, 0, function);
    }
    bool live = bw_zero_bits[w] & bit;
    if (live && release) {
        if (!~bw_zero_bits[w]) { /* it was full: open it again */
            if (!bw_zero_open[w / 64]) bw_zero_open_any[w / 4096] |= 1ull << (w / 64 % 64);
            bw_zero_open[w / 64] |= 1ull << (w % 64);
        }
        bw_zero_bits[w] &= ~bit;
    }
    bw_unlock(&bw_locks.zero);
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
#else
size_t bw_zero_meta_bytes(void) {
    return 0;
}
bool bw_zero_init(void *meta_piece) {
    (void)meta_piece;
    return true;
}
bool bw_zero_owns(const void *ptr) {
    (void)ptr;
    return false;
}
#endif

/* slab.h — the slab descriptor, its lists and states, the block-state
 * bitmaps, and the slab calls (slab.c). */
#ifndef BW_SLAB_H
#define BW_SLAB_H

#include "segment.h"

/* ------------------------------------------------------------------ slabs */
typedef struct bw_heap bw_heap_t; /* heap.h */

/* Out-of-line slab descriptor, one per 64 KiB slot of the arena, 128 bytes
 * (a power of two, so the lookup is a shift). The first cache line holds
 * what the owner's fast paths read and write; other threads only read
 * `owner` there. What other threads write (the remote list and its queue
 * link) lives in the second line, next to the slow-path list links, so a
 * cross-thread free never invalidates the line the owner's malloc uses. */
struct bw_slab {
    /* --- first line: owner-thread fast path --- */
    void *free;                      /* blocks ready to hand out (the fast path pops here) */
    void *local_free;                /* blocks the owner freed since `free` was last refilled:
                                        a freed block is not handed out again before the rest
                                        of `free`, and an empty `free` sends malloc to the
                                        slow path regularly, where the periodic work runs
                                        (mimalloc's local free list does both) */
    uint64_t key;                    /* per-slab secret of the encoded free-list links */
    _Atomic(struct bw_heap *) owner; /* NULL while abandoned or unused, and in span tails */
    uint64_t canary;                 /* per-slab canary secret */
    uint64_t div_magic;              /* ceil(2^64 / block_size): boundary test by one multiply */
    uint32_t limit;                  /* nblocks * block_size: offsets at or past it hold no block */
    uint32_t block_size;             /* bytes per block, 0 when the slot never served a class */
    uint16_t nblocks;                /* blocks carved in this slab */
    int16_t used;                    /* blocks on neither free list (owner's view: remote frees
                                        not yet collected and quarantined blocks count) */
    int16_t notify_at;               /* a local free that brings `used` down to this calls the
                                        heap (bw_free_slow_local); -1 = never */
    uint8_t size_class;              /* 0 = slot not serving a class */
    uint8_t span_shift;              /* log2 of the bytes the slab spans (bw_class_span_slots:
                                        16 to 20) */
    /* --- second line: slow paths and cross-thread fields --- */
    struct bw_slab *next, *prev;           /* bin lists, abandoned list */
    _Atomic(void *) remote;                /* blocks freed by other threads, not yet collected */
    _Atomic(struct bw_slab *) remote_next; /* link in the owner heap's remote-slab stack */
    uint64_t freed_at_ms;                  /* when the slot became free (purge delay) */
    uint64_t fresh_chunks; /* order of the chunks not linked yet, 4 bits each (slab.c) */
    atomic_uchar queued;   /* on some heap's remote-slab stack */
    uint8_t idle;          /* a way slab found empty by the last aging scan */
    uint8_t list;          /* bw_slab_list: where its heap keeps it */
    uint8_t node;          /* NUMA node of the segment */
    uint16_t way;          /* index in its heap's ways while list == WAY */
    uint8_t fresh_left;    /* chunks not linked yet */
    uint8_t zero_fresh;    /* chunks must be zeroed before they are linked */
    uint8_t state;         /* bw_slab_state */
    uint8_t head_back;     /* > 0: this slot is a span's tail; its head is that many
                              descriptors back (kept until the slot is formatted again,
                              so a stale pointer into a released span is still named) */
    uint8_t unguarded;     /* the slot's last page is not a guard page: it lay inside a
                              span when the slot was last formatted (slab.c puts guards
                              back lazily, when a format makes that page a slab's end) */
    uint8_t pad[1];
    uint32_t gen; /* fork generation of its keys (bw_rng_generation when formatted): a
                     forked child never allocates from a slab of an earlier one */
};
_Static_assert(sizeof(bw_slab_t) == 128, "slab descriptor lookup is a shift by 7");
_Static_assert(offsetof(bw_slab_t, next) == 64, "the fast path's fields fill the first line");

/* Where a heap keeps one of its slabs, and when a local free must tell it:
 *   WAY    the fast path allocates from it: never (notify_at -1; the aging
 *          scan retires idle ways);
 *   AVAIL  has free blocks, waits to become a way: when it is empty
 *          (notify_at 0), so its slot goes back to the segment;
 *   FULL   had no free block when last looked at: when 1/8 of it is free
 *          again (notify_at = nblocks - bw_refill_batch), so it moves to
 *          AVAIL;
 *   SEALED inherited across fork (its keys and free-list order are the
 *          parent's, which a sibling process shares): never allocated from,
 *          only freed into (notify_at -1); the aging scan that finds it
 *          empty twice gives its slot back to the segment, to be formatted
 *          anew with fresh keys. Waiting for a batch rather
 * than for the first free keeps a slab from bouncing between the lists on every free and every
 *          refill (a random free into a full slab used to cost a branch
 *          miss and, soon after, a refill that found one block).
 * The fast path's test is one compare, `--used <= notify_at`. */
enum bw_slab_list { BW_LIST_WAY = 0, BW_LIST_AVAIL = 1, BW_LIST_FULL = 2, BW_LIST_SEALED = 3 };

BW_INLINE int bw_refill_batch(const struct bw_slab *slab) {
    return slab->nblocks >= 16 ? slab->nblocks / 8 : 1;
}

enum bw_slab_state {
    BW_SLAB_UNUSED = 0,   /* slot free, memory decommitted or never touched */
    BW_SLAB_DIRTY = 1,    /* slot free, memory still committed */
    BW_SLAB_ACTIVE = 2,   /* owned by a heap */
    BW_SLAB_ABANDONED = 3 /* owner thread exited; waits for adoption */
};

BW_INLINE size_t bw_slab_index(const bw_slab_t *slab) {
    return (size_t)(slab - bw_layout.slabs);
}
BW_INLINE uintptr_t bw_slab_start(const bw_slab_t *slab) {
    return bw_layout.arena_base + (bw_slab_index(slab) << BW_SLAB_SHIFT);
}
/* The descriptor of the slab that holds the slot: itself, or a span's head. */
BW_INLINE bw_slab_t *bw_slab_head(bw_slab_t *slot) {
    return slot - slot->head_back;
}
/* Descriptor of the slab holding arena offset `offset` (slow paths). */
BW_INLINE bw_slab_t *bw_slab_at(uintptr_t offset) {
    return bw_slab_head(&bw_layout.slabs[offset >> BW_SLAB_SHIFT]);
}

/* slab.c */
void bw_slab_format(bw_slab_t *slab, unsigned size_class, bw_heap_t *owner);
size_t bw_slab_collect_remote(bw_slab_t *slab);
void bw_slab_remote_free(bw_slab_t *slab, void *block, const char *function);
void bw_slab_remote_push(bw_slab_t *slab, void *block);
bool bw_slab_extend(bw_slab_t *slab, bw_heap_t *heap);
unsigned bw_slab_chunk_count(uint32_t nblocks, uint32_t block_size);
/* Block-state bitmaps (invariant 2), out of line and indexed by arena
 * offset, one bit per 16-byte granule (the smallest block) in each of four
 * words per 1 KiB of arena (32 bytes: a group never straddles a cache line):
 *   ALLOCATED    the granule starts a block the program holds, or one
 *                another thread freed that its owner has not collected yet;
 *   PENDING      ... a block a thread other than its owner freed and the
 *                owner has not collected yet (in that thread's quarantine
 *                or on the slab's remote list);
 *   HANDED_OUT   ... a block handed out at least once since its slab was
 *                formatted (tells a double free from a wild pointer);
 *   QUARANTINED  ... a block its owner freed that waits in the owner's
 *                quarantine.
 * A block may be handed out only when ALLOCATED, PENDING and QUARANTINED are
 * all clear: bw_slab_pop checks this, so a forged or crossed free-list link
 * can never hand out a live block or one still in a quarantine.
 * Only block starts ever have bits, so a pointer into the middle of a block
 * or past a slab's last block finds ALLOCATED clear: the free path's
 * liveness test is also its boundary test, and no block index (no multiply)
 * is needed.
 *
 * Writers: the owner thread alone writes ALLOCATED, HANDED_OUT and
 * QUARANTINED, with relaxed loads and stores (plain moves on x86). PENDING is
 * shared: another thread's free claims the block with an atomic OR and only
 * then checks ALLOCATED; the owner clears it with an atomic AND when it
 * collects the block.
 *
 * A double free racing between the owner and another thread: the owner's
 * free (load ALLOCATED and PENDING, store ALLOCATED) takes no atomic
 * read-modify-write (invariant 7), so both frees can pass their checks when
 * the other thread claims PENDING between the owner's load and store. Such a
 * block is left with ALLOCATED clear and PENDING set, a state no valid
 * sequence produces, and sits both in the owner's quarantine or local free
 * list and in the other thread's quarantine or the remote list. Whichever
 * copy the owner reaches first reports "double free": collection finds
 * ALLOCATED clear (the owner's own store), the quarantine release finds
 * PENDING set, and the pop finds PENDING set. The pop's load is ordered
 * after the other thread's claim by the full fence bw_slab_ready makes
 * before a local free list becomes the free list (once per refill, not per
 * block): the claim precedes that thread's load of ALLOCATED, which missed
 * the owner's store, which precedes the fence. */
enum {
    BW_BITS_ALLOCATED = 0,
    BW_BITS_PENDING = 1,
    BW_BITS_HANDED_OUT = 2,
    BW_BITS_QUARANTINED = 3,
};
BW_INLINE _Atomic(uint64_t) *bw_bits_group(uintptr_t arena_offset) {
    return &bw_layout.bitmaps[(arena_offset >> 10) << 2];
}
BW_INLINE uint64_t bw_bits_mask(uintptr_t arena_offset) {
    return 1ull << ((arena_offset >> 4) & 63);
}
BW_INLINE uint64_t bw_bits_load(const _Atomic(uint64_t) *word) {
    return atomic_load_explicit(word, memory_order_relaxed);
}
BW_INLINE void bw_bits_set(_Atomic(uint64_t) *word, uint64_t bit) {
    atomic_store_explicit(word, bw_bits_load(word) | bit, memory_order_relaxed);
}
BW_INLINE void bw_bits_clear(_Atomic(uint64_t) *word, uint64_t bit) {
    atomic_store_explicit(word, bw_bits_load(word) & ~bit, memory_order_relaxed);
}

/* offset_in_slab (< 2^32) is a multiple of the block size: one multiply by
 * c = ceil(2^64 / size) and a compare (D. Lemire, O. Kaser, N. Kurz, "Faster
 * remainder by direct computation", 2019: for 32-bit n and d, n % d == 0
 * iff n * c mod 2^64 < c). tests/unit/test_sizeclass.c checks every class
 * and offset of its span. */
BW_INLINE uint64_t bw_div_magic(uint32_t block_size) {
    return UINT64_MAX / block_size + 1; /* = ceil(2^64 / size) for size > 1 */
}
BW_INLINE bool bw_slab_on_boundary(const bw_slab_t *slab, uint64_t offset_in_slab) {
    return offset_in_slab * slab->div_magic < slab->div_magic;
}
/* First byte of the span a block of the slab lies in: a slab is aligned to
 * the bytes it spans. */
BW_INLINE uintptr_t bw_span_start_of(const bw_slab_t *slab, const void *block) {
    return (uintptr_t)block & ~(((uintptr_t)1 << slab->span_shift) - 1);
}

#endif

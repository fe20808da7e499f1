/* slab.c — one 64 KiB slot of a segment, or an aligned span of 2 to 16 of
 * them, serving one size class
 * (DESIGN.md layer "slabs"). The descriptor and its bitmaps are out of line;
 * the only things kept in user memory are free-list links inside free
 * blocks.
 *
 * The block-state bitmaps (bw_bits_group in slab.h) are interleaved
 * word by word so a check touches one cache line: "allocated" (written only
 * by the owner thread), "remote-pending" (set atomically by a thread that
 * frees a block it does not own, cleared by the owner when it collects the
 * block) and "handed out". Together they make every free checkable
 * (invariant 2) without an atomic read-modify-write on the owner's fast path
 * (invariant 7). */
#include <string.h>

#include "block.h"
#include "bw_internal.h"
#include "foreign.h"
#include "quarantine.h"

/* Lazy, randomized free lists (invariant 3). Formatting a slab links
 * nothing: its blocks are cut into at most 16 chunks — single blocks when
 * the slab holds at most 16, else the blocks that start in one
 * 2^BW_FRESH_CHUNK_SHIFT-byte piece of the slab — whose order is a random
 * permutation kept as 4-bit numbers in one word (fresh_chunks). When a way's
 * free lists are empty the slow path extends the free list by the next
 * chunk, its blocks linked in a random order (Fisher-Yates with ChaCha20
 * draws). So the first allocation from a slab is uniform over the slab, and
 * only the part of a slab a program reaches is touched (mimalloc-secure
 * extends and shuffles its pages a slice at a time for the same reason;
 * the random chunk order is ours). */
#define BW_CHUNK_BYTES ((uint32_t)1 << BW_FRESH_CHUNK_SHIFT)
_Static_assert(BW_SLAB_SIZE / BW_CHUNK_BYTES <= 16, "chunk numbers are 4 bits");

/* A span of several slots always holds at most 16 blocks (the fewest slots
 * that hold 7 hold fewer than 2 * 7 + 1; test_span checks every class), so
 * only one-slot slabs are cut into pieces of the slab, and a medium block
 * is linked, and its pages touched, only when the free list reaches it. */
unsigned bw_slab_chunk_count(uint32_t nblocks, uint32_t block_size) {
    if (nblocks <= 16) return nblocks;
    return (nblocks * block_size + BW_CHUNK_BYTES - 1) / BW_CHUNK_BYTES;
}

static void bw_slab_plan_chunks(bw_slab_t *slab, bw_heap_t *owner) {
    unsigned count = bw_slab_chunk_count(slab->nblocks, slab->block_size);
    uint8_t order[16] = {0};
    for (unsigned i = 0; i < count; i++) order[i] = (uint8_t)i;
#if BW_RANDOM_FREELIST
    for (unsigned i = count; i > 1; i--) { /* Fisher-Yates: order[i-1] <-> a random one below */
        unsigned j = bw_rng_below(&owner->rng, i);
        uint8_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
#else
    (void)owner;
#endif
    uint64_t packed = 0;
    for (unsigned i = count; i-- > 0;) packed = packed << 4 | order[i];
    slab->fresh_chunks = packed;
    slab->fresh_left = (uint8_t)count;
}

/* Link the next fresh chunk onto the (empty) free list. False when every
 * chunk is linked already. Slow path only: it divides. */
bool bw_slab_extend(bw_slab_t *slab, bw_heap_t *heap) {
    uint32_t size = slab->block_size;
    uint32_t first = 0, end = 0;
    while (first == end) {
        if (slab->fresh_left == 0) return false;
        unsigned chunk = (unsigned)(slab->fresh_chunks & 15);
        slab->fresh_chunks >>= 4;
        slab->fresh_left--;
        if (slab->nblocks <= 16) {
            first = chunk;
            end = chunk + 1;
        } else { /* the blocks whose first byte lies in piece `chunk` */
            first = (chunk * BW_CHUNK_BYTES + size - 1) / size;
            end = ((chunk + 1) * BW_CHUNK_BYTES + size - 1) / size;
            if (end > slab->nblocks) end = slab->nblocks;
        }
    }
    char *start = (char *)bw_slab_start(slab);
#if BW_ZERO_ON_FREE
    /* The slot served another class before and was not purged: its old
     * links lie at other offsets, and the write-after-free check needs
     * zeros. Exactly this chunk's blocks, which no other chunk overlaps. */
    if (slab->zero_fresh) memset(start + (size_t)first * size, 0, (size_t)(end - first) * size);
#endif
    uint16_t order[BW_CHUNK_BYTES / BW_MIN_BLOCK];
    uint32_t count = end - first;
    for (uint32_t i = 0; i < count; i++) order[i] = (uint16_t)(first + i);
#if BW_RANDOM_FREELIST
    for (uint32_t i = count; i > 1; i--) {
        uint32_t j = bw_rng_below(&heap->rng, i);
        uint16_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
#else
    (void)heap;
#endif
    void *next = NULL;
    for (uint32_t i = count; i-- > 0;) {
        // cppcheck-suppress uninitvar ; order[0 .. count-1] is written above
        char *block = start + (size_t)order[i] * size;
        bw_link_store(slab, block, next);
        next = block;
    }
    slab->free = next;
    return true;
}

void bw_slab_format(bw_slab_t *slab, unsigned size_class, bw_heap_t *owner) {
    uint32_t size = bw_class_size[size_class];
    unsigned slots = bw_class_span_slots(size_class);
    uint32_t count = bw_class_span_usable(size_class) / size;
    char *start = (char *)bw_slab_start(slab);
    /* A reused slot that served another class still holds that class's old
     * links at other offsets, and so do the chunks a previous life of the
     * slot never linked if that life had to zero them: bw_slab_extend
     * zeroes each chunk first. A purged slot reads as zero. A slot last
     * formatted as this very span, same head, same class (so the same block
     * boundaries), holds only zeros and old links at block starts, as every
     * block was wiped when freed: a span that a class keeps taking back
     * (bench: realloc growth, 16 B to 64 KiB) zeroes nothing. A tail still
     * naming this head was formatted last with it: a later format of the
     * tail would have changed head_back, one of the head its block_size. */
    bool stale_chunks = slab->zero_fresh && slab->fresh_left > 0;
    bool same_span = slab->block_size == size && slab->head_back == 0 && !stale_chunks;
    bool dirty = slab->state == BW_SLAB_DIRTY && !same_span;
    for (unsigned i = 1; i < slots; i++) {
        bw_slab_t *tail = slab + i;
        dirty |= tail->state == BW_SLAB_DIRTY && (!same_span || tail->head_back != i);
        tail->head_back = (uint8_t)i;
        tail->block_size = 0;
        tail->size_class = 0;
        tail->nblocks = 0;
        tail->limit = 0;
        tail->state = BW_SLAB_ACTIVE;
    }
#if BW_SLAB_GUARD
    /* The guard pages inside the span give way to blocks; the last slot's
     * must be a guard. Released slots keep what their last format left
     * (unguarded), and only a format changes it, so a span a class keeps
     * taking back, or a slot formatted again for a one-slot class, makes no
     * system call: a guard protects the end of a slab in use, and a free
     * slot has no block to overflow from (a dangling pointer into it reaches
     * the rest of the slot anyway). A guard page of locked memory may come
     * back with a former block's bytes: then the chunks are zeroed like a
     * dirty slot's. */
    for (unsigned i = 0; i < slots; i++) {
        char *page = start + ((size_t)(i + 1) << BW_SLAB_SHIFT) - BW_PAGE_SIZE;
        if (i + 1 < slots && !slab[i].unguarded) {
            bw_unguard_t done = bw_os_unguard(page, BW_PAGE_SIZE);
            if (done == BW_UNGUARD_FAILED) bw_fatal_os("guard page", 12);
            dirty |= done == BW_UNGUARD_STALE;
            slab[i].unguarded = 1;
        } else if (i + 1 == slots && slab[i].unguarded) {
            if (!bw_os_guard(page, BW_PAGE_SIZE)) bw_fatal_os("guard page", 12);
            slab[i].unguarded = 0;
        }
    }
#endif
    slab->zero_fresh = dirty;
    slab->head_back = 0;
    slab->span_shift = (uint8_t)(BW_SLAB_SHIFT + __builtin_ctz(slots));
    slab->size_class = (uint8_t)size_class;
    slab->block_size = size;
    slab->div_magic = bw_div_magic(size);
    slab->limit = count * size;
    slab->nblocks = (uint16_t)count;
    slab->used = 0;
    slab->local_free = NULL;
    slab->notify_at = -1;
    slab->list = BW_LIST_WAY;
    slab->next = slab->prev = NULL;
    slab->state = BW_SLAB_ACTIVE;
    slab->key = bw_rng_next(&owner->rng);
    slab->canary = bw_rng_next(&owner->rng);
    slab->gen = atomic_load_explicit(&bw_rng_generation, memory_order_relaxed);
    atomic_store_explicit(&slab->remote, NULL, memory_order_relaxed);
    memset((void *)bw_bits_group((uintptr_t)start - bw_layout.arena_base), 0,
           slots * BW_BITMAP_WORDS_PER_SLAB * sizeof(uint64_t));
    slab->free = NULL;
    bw_slab_plan_chunks(slab, owner);
    bw_slab_extend(slab, owner); /* a formatted slab has blocks to hand out */
    atomic_store_explicit(&slab->owner, owner, memory_order_release);
}

/* Owner side: move every block other threads freed onto the local free
 * list (they wait behind `free` like the owner's own frees). Returns the
 * number collected. Every block on the remote list must carry a claim
 * (PENDING): a link to anything else was forged. One that is claimed but no
 * longer ALLOCATED was freed by the owner too (a racing double free).
 *
 * The remote list's links are the local list's (bw_slab_remote_push
 * writes them with bw_link_store and the slab's key), so the list goes in
 * front of the local one whole: each link is decoded and checked as the
 * walk follows it, and only the last block's is written again, to lead to
 * the old local list. Writing every block's link anew cost an encode and
 * a store into a line the freeing thread wrote last, per block: in
 * bench/prodcons (every free remote) this function was 27% of fast's
 * profile (perf). */
size_t bw_slab_collect_remote(bw_slab_t *slab) {
    if (!atomic_load_explicit(&slab->remote, memory_order_relaxed)) return 0;
    void *list = atomic_exchange_explicit(&slab->remote, NULL, memory_order_acquire);
    void *first = list, *last = NULL;
    size_t count = 0;
    while (list) {
        void *next = bw_link_load(slab, list);
        uintptr_t offset = (uintptr_t)list - bw_layout.arena_base;
        _Atomic(uint64_t) *bits = bw_bits_group(offset);
        uint64_t bit = bw_bits_mask(offset);
        if (bw_unlikely(!(bw_bits_load(&bits[BW_BITS_PENDING]) & bit)))
            bw_report_corrupt_link(list, slab);
        if (bw_unlikely(!(bw_bits_load(&bits[BW_BITS_ALLOCATED]) & bit)))
            bw_fatal("double free", list, BW_INFO_CLASS, slab->block_size, "free");
        bw_bits_clear(&bits[BW_BITS_ALLOCATED], bit);
        atomic_fetch_and_explicit(&bits[BW_BITS_PENDING], ~bit, memory_order_relaxed);
        last = list;
        count++;
        list = next;
    }
    if (last) {
        bw_link_store(slab, last, slab->local_free);
        slab->local_free = first;
        slab->used = (int16_t)(slab->used - (int)count);
    }
#if BW_RANDOM_WAYS
    /* Only the owner collects (an abandoned slab has none). */
    bw_heap_t *owner = atomic_load_explicit(&slab->owner, memory_order_relaxed);
    if (owner) owner->bins[slab->size_class].live -= (int32_t)count;
#endif
    return count;
}

/* Free from a thread that does not own the slab: claim the block (an atomic
 * OR of its PENDING bit: of two threads freeing it, one finds the bit set),
 * then check it is live, and only then touch it. Checking ALLOCATED after
 * the claim, not before, matters: a claim made between the check and the OR
 * could land on the block's next life (slab.h, "a double free
 * racing"). */
void bw_slab_remote_free(bw_slab_t *slab, void *block, const char *function) {
    uintptr_t offset = (uintptr_t)block - bw_layout.arena_base;
    _Atomic(uint64_t) *bits = bw_bits_group(offset);
    uint64_t bit = bw_bits_mask(offset);
    uint64_t before = atomic_fetch_or_explicit(&bits[BW_BITS_PENDING], bit, memory_order_seq_cst);
    if (bw_unlikely(!(bw_bits_load(&bits[BW_BITS_ALLOCATED]) & bit)))
        bw_report_not_live(block, slab, "double free", "invalid free", function);
    if (bw_unlikely(before & bit))
        bw_fatal("double free", block, BW_INFO_CLASS, slab->block_size, function);

    bw_block_retire_checks(slab, block, function);
    bw_heap_t *heap = bw_tls_heap;
#if BW_QUARANTINE_SLOTS
    /* The block waits in this thread's quarantine; its pending bit keeps
     * marking it freed until the owner collects it. */
    if (heap != &bw_empty_heap) {
        bw_quarantine_put(heap, block, slab, false, function);
        return;
    }
#endif
    /* Kept for this thread's next malloc of the class, else to its owner. */
    if (!bw_foreign_put(heap, slab, block)) bw_slab_remote_push(slab, block);
}

/* Push a freed block (pending bit already set) on the slab's remote list
 * and make sure the owner hears about it. */
void bw_slab_remote_push(bw_slab_t *slab, void *block) {
    void *head = atomic_load_explicit(&slab->remote, memory_order_relaxed);
    do {
        bw_link_store(slab, block, head);
    } while (!atomic_compare_exchange_weak_explicit(&slab->remote, &head, block,
                                                    memory_order_release, memory_order_relaxed));

    /* Queue the slab on its owner's stack once, so an owner whose slab sits
     * on a full list still finds the freed blocks. Abandoned slabs (owner
     * NULL) are collected by whoever adopts them. */
    bw_heap_t *owner = atomic_load_explicit(&slab->owner, memory_order_acquire);
    if (owner && !atomic_load_explicit(&slab->queued, memory_order_relaxed) &&
        !atomic_exchange_explicit(&slab->queued, 1, memory_order_acq_rel)) {
        bw_slab_t *top = atomic_load_explicit(&owner->remote_slabs, memory_order_relaxed);
        do {
            atomic_store_explicit(&slab->remote_next, top, memory_order_relaxed);
        } while (!atomic_compare_exchange_weak_explicit(
            &owner->remote_slabs, &top, slab, memory_order_release, memory_order_relaxed));
    }
}

/* block.h — a small block's way in and out of the free lists: handing one
 * out (bw_slab_pop, the fast path's core: the bitmaps, link.h's decode,
 * wipe.h's write-after-free check, canary.h's arming, in that order), the
 * checks of a block being freed (bw_block_retire_checks), and turning the
 * owner's local frees into the next free list (bw_slab_ready). */
#ifndef BW_BLOCK_H
#define BW_BLOCK_H

#include "canary.h"
#include "link.h"
#include "wipe.h"

/* Hand out the head of a slab's free list (the caller checked it is
 * non-empty) for a request of `requested` bytes. The block must be free by
 * the bitmaps (not live, not in a quarantine, not claimed by another
 * thread's free): a list that leads anywhere else was forged or crossed
 * and is fatal. The link is wiped so the program never sees a heap address
 * it did not get from malloc; under BW_WAF_CHECK_MAX the block must still be
 * all zero, and BW_CANARY arms its canary. */
BW_INLINE void *bw_slab_pop(bw_slab_t *slab, size_t requested) {
    void *block = slab->free;
    uintptr_t offset = (uintptr_t)block - bw_layout.arena_base;
    _Atomic(uint64_t) *bits = bw_bits_group(offset);
    uint64_t bit = bw_bits_mask(offset);
    uint64_t allocated = bw_bits_load(&bits[BW_BITS_ALLOCATED]);
    uint64_t busy = allocated | bw_bits_load(&bits[BW_BITS_PENDING]);
#if BW_QUARANTINE_SLOTS
    busy |= bw_bits_load(&bits[BW_BITS_QUARANTINED]);
#endif
    if (bw_unlikely(busy & bit)) bw_report_not_free(block, slab);
    slab->free = bw_link_load(slab, block);
    *(uint64_t *)block = 0;
#if BW_WAF_CHECK_MAX
    if (bw_unlikely(!bw_block_still_zero(block, slab->block_size)))
        bw_report_write_after_free(block, slab, "malloc");
#endif
    bw_block_arm(slab, block, requested);
    slab->used++;
    atomic_store_explicit(&bits[BW_BITS_ALLOCATED], allocated | bit, memory_order_relaxed);
    bw_bits_set(&bits[BW_BITS_HANDED_OUT], bit); /* tells a double free from a wild one */
    return block;
}

/* Checks a block being freed (canary, slack), then wipes it. */
BW_INLINE void bw_block_retire_checks(const bw_slab_t *slab, void *block, const char *function) {
    (void)bw_block_verify(slab, block, function);
    bw_block_wipe(slab, block);
}

/* Slow path: when `free` is empty, the owner's frees since the last refill
 * become the blocks to hand out, but for the most recent one, which waits
 * on local_free for the next round: the block a program has just freed is
 * not what its next malloc gets (the reallocation a use-after-free exploit
 * wants). A lone freed block makes way for the next fresh chunk; only when
 * the slab has nothing else is it handed out again. True if the slab has a
 * block to hand out.
 *
 * The fence orders every later pop's bitmap load after this thread's frees
 * of the blocks now on the list (slab.h, "a double free racing"):
 * one per refill, never on the fast path. */
BW_INLINE bool bw_slab_ready(bw_slab_t *slab, bw_heap_t *heap) {
    if (slab->free) return true;
    void *latest = slab->local_free;
    if (!latest) return bw_slab_extend(slab, heap);
    atomic_thread_fence(memory_order_seq_cst);
    void *older = bw_link_load(slab, latest);
    if (older) {
        slab->free = older;
        bw_link_store(slab, latest, NULL);
        return true;
    }
    if (bw_slab_extend(slab, heap)) return true;
    slab->free = latest;
    slab->local_free = NULL;
    return true;
}

#endif

/* block.h — a small block's way in and out of the free lists: handing one
 * out (bw_slab_pop, the fast path's core), wiping a freed one
 * (BW_ZERO_ON_FREE) and the write-after-free check at reuse
 * (BW_WAF_CHECK_MAX), and turning the owner's local frees into the next
 * free list (bw_slab_ready). */
#ifndef BW_BLOCK_H
#define BW_BLOCK_H

#include "canary.h"
#include "link.h"

/* 16-byte lanes (SSE2, the x86-64 baseline; GCC vector extensions, so
 * other targets get the same code in general registers) for the zeroing
 * and the write-after-free check of small blocks. Blocks are 16-byte
 * aligned. */
typedef uint64_t bw_u64x2 __attribute__((vector_size(16)));

/* The write-after-free check (BW_WAF_CHECK_MAX): a block handed out again
 * must still be all zero, as zero-on-free left it (its first word holds the
 * link while it is on a free list, and is zeroed before the check; a write
 * there while it waited in a quarantine is caught when it leaves, see
 * heap.c). The first min(size, BW_WAF_CHECK_MAX) bytes are ORed together 64
 * at a time; the last window overlaps the one before when the size is not
 * a multiple of 64 (an OR does not mind), so no tail loop. */
#if BW_WAF_CHECK_MAX
BW_INLINE bool bw_block_still_zero(const void *block, uint32_t block_size) {
    const bw_u64x2 *lane = (const bw_u64x2 *)block;
    size_t bytes = block_size < BW_WAF_CHECK_MAX ? block_size : BW_WAF_CHECK_MAX;
    bw_u64x2 seen = lane[0];
    if (bw_likely(bytes >= 64)) {
        const bw_u64x2 *last = lane + (bytes - 64) / 16;
        for (; lane < last; lane += 4) seen |= lane[0] | lane[1] | lane[2] | lane[3];
        seen |= last[0] | last[1] | last[2] | last[3];
    } else {
        if (bytes > 16) seen |= lane[1];
        if (bytes > 32) seen |= lane[2];
    }
    return (seen[0] | seen[1]) == 0;
}
#endif

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

/* Zero-on-free: wipes a freed block whole, its first word too (a dangling
 * pointer must not read what it held, often a pointer, while the block
 * waits in a quarantine; the link is written over it only when the block
 * leaves). Up to 256 bytes inline (a call to memset costs more than the
 * stores), memset's wide stores above. The empty asm hides the trip count,
 * or gcc turns the loop into `rep stos`, whose start-up costs tens of
 * cycles for a few 16-byte stores. */
BW_INLINE void bw_block_wipe(const bw_slab_t *slab, void *block) {
#if BW_ZERO_ON_FREE
    uint32_t size = slab->block_size;
    if (size <= 256) {
        char *lane = (char *)block, *end = (char *)block + size;
        while (lane < end) {
            *(bw_u64x2 *)(void *)lane = (bw_u64x2){0, 0};
            lane += 16;
            __asm__("" : "+r"(lane));
        }
    } else {
        __builtin_memset(block, 0, size);
    }
#endif
    (void)slab;
    (void)block;
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

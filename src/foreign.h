/* foreign.h — other heaps' blocks that this thread freed, kept for its own
 * next mallocs of their class (foreign.c empties the rings).
 *
 * Why: a block freed by a thread that does not own its slab went back to
 * its owner: a compare-and-swap on the slab's remote list, one more on the
 * owner's list of slabs to collect, a link written into the block, and the
 * owner's collection later reading that link and clearing the claim, every
 * one of them a cache line the other thread wrote last. In bench/server
 * (two threads trading blocks through a shared table, most frees
 * cross-thread) fast spent 2.2x the CPU per operation at two threads that
 * it spent at one, so two threads did no more work per second than one
 * (bench/RESULTS.md). jemalloc's thread cache keeps such a block in the
 * freeing thread for its own next malloc (its tcache bins take any block of
 * the size, whichever arena it came from), and scales here; this is the
 * same idea with bulwark's bitmaps.
 *
 * A foreign block stays ALLOCATED in its slab and keeps the PENDING claim
 * the freeing thread took (slab.c, bw_slab_remote_free): to every other
 * thread it is freed and not yet collected, so a second free of it anywhere
 * is a double free, as before, and no free list can lead to it (bw_slab_pop
 * refuses claimed blocks). Its slab counts it as used until it comes back.
 * The ring lives in the heap (out of line: nothing is written into the
 * block), holds only blocks of the current fork generation (a forked child
 * never takes its parent's blocks in its parent's order) on the heap's
 * NUMA node, of at most BW_READY_MAX_BLOCK bytes.
 *
 * Reuse order: oldest first, and a malloc takes from the ring only when it
 * holds two blocks or more, so the block the thread has just freed is never
 * what its next malloc gets (the reallocation a use-after-free exploit
 * wants; the owner's own free lists keep the same rule, block.h). In the
 * profiles with a quarantine a block reaches the ring only when it leaves
 * the quarantine (quarantine.c), after the same random wait as any other:
 * then it must still be all zero (BW_WAF_CHECK_MAX) as a ready block must. */
#ifndef BW_FOREIGN_H
#define BW_FOREIGN_H

#include "block.h"
#include "heap.h"
#include "hot.h"

#if BW_FOREIGN_SLOTS
/* Keep a block of another heap (checked, wiped, claimed PENDING by this
 * thread); false when it must go back to its owner. Only in a thread that
 * mallocs: ready_left is set by the malloc slow path, which every thread
 * that mallocs runs at least once per BW_READY_RUN mallocs, and is 0 in a
 * heap that never did (a consumer thread that only frees, whose heap its
 * quarantine made; in bench/prodcons such a ring kept blocks it would
 * never use: peak RSS 8.2 -> 8.6 MB, 1,640 -> 1,830 page faults). */
BW_INLINE bool bw_foreign_put(bw_heap_t *heap, const bw_slab_t *slab, void *block) {
    unsigned size_class = slab->size_class;
    if (heap->ready_left == 0 || heap->foreign_count[size_class] == BW_FOREIGN_SLOTS ||
        slab->block_size > BW_READY_MAX_BLOCK || slab->node != heap->ways_node ||
        slab->gen != atomic_load_explicit(&bw_rng_generation, memory_order_relaxed))
        return false;
    unsigned at = (heap->foreign_head[size_class] + heap->foreign_count[size_class]++) &
                  (BW_FOREIGN_SLOTS - 1);
    heap->foreign[size_class][at] = block;
    return true;
}

/* The oldest block of the class's ring (which is not empty), taken off. */
BW_INLINE void *bw_foreign_take(bw_heap_t *heap, unsigned size_class) {
    unsigned at = heap->foreign_head[size_class];
    heap->foreign_head[size_class] = (uint8_t)((at + 1) & (BW_FOREIGN_SLOTS - 1));
    heap->foreign_count[size_class]--;
    return heap->foreign[size_class][at];
}

/* malloc of a class whose ring holds two blocks or more: the oldest. It
 * must still be allocated and claimed (nothing else may have taken it: a
 * forged remote list that led the owner to it clears the claim), and with
 * BW_WAF_CHECK_MAX all zero. Then armed like any block, and the claim
 * released: from here on it is the caller's. */
BW_INLINE void *bw_foreign_pop(bw_heap_t *heap, unsigned size_class, size_t requested) {
    void *block = bw_foreign_take(heap, size_class);
    uintptr_t offset = (uintptr_t)block - bw_layout.arena_base;
    bw_slab_t *slab = bw_slab_at(offset);
    _Atomic(uint64_t) *bits = bw_bits_group(offset);
    uint64_t bit = bw_bits_mask(offset);
    uint64_t claimed =
        bw_bits_load(&bits[BW_BITS_ALLOCATED]) & bw_bits_load(&bits[BW_BITS_PENDING]);
    if (bw_unlikely(!(claimed & bit))) bw_report_not_free(block, slab);
#if BW_WAF_CHECK_MAX
    if (bw_unlikely(!bw_block_still_zero(block, slab->block_size)))
        bw_report_write_after_free(block, slab, "malloc");
#endif
    bw_block_arm(slab, block, requested);
    atomic_fetch_and_explicit(&bits[BW_BITS_PENDING], ~bit, memory_order_release);
    return block;
}
#else
BW_INLINE bool bw_foreign_put(bw_heap_t *heap, const bw_slab_t *slab, void *block) {
    (void)heap, (void)slab, (void)block;
    return false;
}
#endif

/* foreign.c: every kept block back to its owner (thread exit, malloc_trim,
 * the aging scan, a move to another NUMA node, an exhausted arena). */
void bw_foreign_flush(bw_heap_t *heap);
/* A forked child: the rings are forgotten, their blocks left claimed. */
void bw_foreign_forget(bw_heap_t *heap);

#endif

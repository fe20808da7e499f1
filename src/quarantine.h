/* quarantine.h — freed small blocks wait before reuse (quarantine.c). */
#ifndef BW_QUARANTINE_H
#define BW_QUARANTINE_H

#include "block.h"
#include "heap.h"

/* A block the caller checked, wiped and marked freed (QUARANTINED if the
 * heap owns it, PENDING if another heap does) enters the heap's quarantine;
 * a random older one may leave. */
void bw_quarantine_put(bw_heap_t *heap, void *block, bw_slab_t *slab, const char *function);
/* Every entry leaves (malloc_trim, thread exit, an exhausted arena). */
void bw_quarantine_flush(bw_heap_t *heap, const char *function);
/* The aging scan (heap.c): entries that waited since the previous one leave. */
void bw_quarantine_age(bw_heap_t *heap);
void bw_quarantine_stats(size_t *blocks, size_t *bytes);
/* The blocks waiting for their class's next malloc go back to their slabs
 * (a forked child, before its slabs are sealed). */
void bw_quarantine_flush_ready(bw_heap_t *heap, const char *function);

#if BW_QUARANTINE_SLOTS
/* malloc of a class whose ready stack holds a block: the block the
 * quarantine let go last (its eviction was random, so is the order of
 * reuse). It must still be what the quarantine left: not allocated, not
 * claimed by another thread's free (a racing double free), marked
 * QUARANTINED, and all zero as far as the write-after-free check reads
 * (it was wiped whole at free and no link was written over it since).
 * No free-list link, no slab count: the block was counted as used while it
 * waited. */
BW_INLINE void *bw_ready_pop(bw_heap_t *heap, unsigned size_class, size_t requested) {
    void *block = heap->ready[size_class][--heap->ready_count[size_class]];
    uintptr_t offset = (uintptr_t)block - bw_layout.arena_base;
    bw_slab_t *slab = bw_slab_at(offset);
    _Atomic(uint64_t) *bits = bw_bits_group(offset);
    uint64_t bit = bw_bits_mask(offset);
    uint64_t allocated = bw_bits_load(&bits[BW_BITS_ALLOCATED]);
    uint64_t quarantined = bw_bits_load(&bits[BW_BITS_QUARANTINED]);
    uint64_t busy = allocated | bw_bits_load(&bits[BW_BITS_PENDING]);
    if (bw_unlikely((busy & bit) || !(quarantined & bit))) bw_report_not_free(block, slab);
    atomic_store_explicit(&bits[BW_BITS_QUARANTINED], quarantined & ~bit, memory_order_relaxed);
#if BW_WAF_CHECK_MAX
    if (bw_unlikely(!bw_block_still_zero(block, slab->block_size)))
        bw_report_write_after_free(block, slab, "malloc");
#endif
    bw_block_arm(slab, block, requested);
    atomic_store_explicit(&bits[BW_BITS_ALLOCATED], allocated | bit, memory_order_relaxed);
#if BW_RANDOM_WAYS
    heap->bins[size_class].live++;
#endif
    return block;
}
#endif

#endif

/* quarantine.h — freed small blocks wait before reuse (quarantine.c). */
#ifndef BW_QUARANTINE_H
#define BW_QUARANTINE_H

#include "block.h"
#include "heap.h"
#include "sizeclass.h"

/* Every entry leaves (malloc_trim, thread exit, an exhausted arena). */
void bw_quarantine_flush(bw_heap_t *heap, const char *function);
/* The aging scan (heap.c): entries that waited since the previous one leave. */
void bw_quarantine_age(bw_heap_t *heap);
void bw_quarantine_stats(size_t *blocks, size_t *bytes);
/* The blocks waiting for their class's next malloc go back to their slabs
 * (a forked child, before its slabs are sealed). */
void bw_quarantine_flush_ready(bw_heap_t *heap, const char *function);
/* No block waiting now reaches a ready stack: the stacks are emptied and
 * no entry in the ring may go to one. A forked child (sibling processes
 * must not take the parent's blocks in the same order; its slabs are
 * sealed) and a thread that moved to another NUMA node (its blocks should
 * come from the new node's memory) call it. */
void bw_quarantine_unready(bw_heap_t *heap, const char *function);

#if BW_QUARANTINE_SLOTS
/* A quarantine entry is one word: the block's arena offset (16-byte
 * aligned, below 2^48), its class in bits 48-55, the aging epoch it came in
 * at in bits 56-63, and in bit 0 whether it may wait on its class's ready
 * stack when it leaves (this heap's block, at most BW_READY_MAX_BLOCK bytes,
 * its slab not sealed and on the NUMA node the heap's ways follow). So a block leaves the ring with
 * no look at its slab descriptor or bitmap: bw_ready_pop checks its bitmap state when it is handed
 * out, and blocks that go back to a slab are checked there (quarantine.c). */
_Static_assert(BW_ARENA_SHIFT <= 48, "an arena offset fits a quarantine entry");
#define BW_QUARANTINE_READY   ((uint64_t)1)
#define BW_QUARANTINE_OFFSETS ((((uint64_t)1) << 48) - 16)
BW_INLINE void *bw_quarantine_block(uint64_t entry) {
    return (void *)(bw_layout.arena_base + (uintptr_t)(entry & BW_QUARANTINE_OFFSETS));
}
BW_INLINE unsigned bw_quarantine_class(uint64_t entry) {
    return (unsigned)(entry >> 48) & 0xff;
}
BW_INLINE uint8_t bw_quarantine_epoch(uint64_t entry) {
    return (uint8_t)(entry >> 56);
}

/* quarantine.c: the ring not full yet, or over its byte bound; an entry
 * that goes back to its slab (or, another heap's, to its owner). */
void bw_quarantine_put_slow(bw_heap_t *heap, uint64_t entry, const char *function);
void bw_quarantine_over_bytes(bw_heap_t *heap, size_t newest, const char *function);
void bw_quarantine_release_entry(bw_heap_t *heap, uint64_t entry, const char *function);

/* An entry leaving the ring: onto its class's ready stack, where the next
 * malloc of the class takes it without a free-list link written and
 * decoded and without the slab's counts and lists touched, when its entry
 * allows and there is room; else back to its slab (quarantine.c). */
BW_INLINE void bw_quarantine_leave(bw_heap_t *heap, uint64_t entry, const char *function) {
    unsigned size_class = bw_quarantine_class(entry);
    heap->quarantine_bytes -= bw_class_size[size_class];
    if ((entry & BW_QUARANTINE_READY) && heap->ready_count[size_class] < BW_READY_SLOTS)
        heap->ready[size_class][heap->ready_count[size_class]++] = bw_quarantine_block(entry);
    else
        bw_quarantine_release_entry(heap, entry, function);
}

/* A block the caller checked, wiped and marked freed (QUARANTINED if the
 * heap owns it, `ours`; PENDING if another heap does) enters the heap's
 * quarantine. Once the ring is full, each entry takes the place of a
 * random one, which leaves: so the order of reuse is unpredictable, and a
 * block waits 512 frees on average (BW_QUARANTINE_SLOTS in default). The
 * block that leaves goes to its class's ready stack when it may and there
 * is room; else back to its slab. */
BW_INLINE void bw_quarantine_put(bw_heap_t *heap, void *block, bw_slab_t *slab, bool ours,
                                 const char *function) {
    uint32_t size = slab->block_size;
    uint64_t entry = ((uint64_t)((uintptr_t)block - bw_layout.arena_base)) |
                     ((uint64_t)slab->size_class << 48) | ((uint64_t)heap->quarantine_epoch << 56);
    if (ours && size <= BW_READY_MAX_BLOCK && slab->list != BW_LIST_SEALED &&
        slab->node == heap->ways_node)
        entry |= BW_QUARANTINE_READY;
    heap->quarantine_bytes += size;
    if (bw_unlikely(heap->quarantine_count != BW_QUARANTINE_SLOTS)) {
        bw_quarantine_put_slow(heap, entry, function);
        return;
    }
    size_t slot = bw_rng_u16(&heap->rng) & (BW_QUARANTINE_SLOTS - 1);
    uint64_t victim = heap->quarantine[slot];
    heap->quarantine[slot] = entry;
    bw_quarantine_leave(heap, victim, function);
    if (bw_unlikely(heap->quarantine_bytes > BW_QUARANTINE_BYTES))
        bw_quarantine_over_bytes(heap, slot, function);
}

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

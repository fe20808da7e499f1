/* quarantine.c — freed small blocks wait before reuse (DESIGN.md invariant
 * 4, BW_QUARANTINE_SLOTS, BW_QUARANTINE_BYTES): a per-heap ring that free
 * puts blocks into (bw_quarantine_put, from alloc.h's bw_free_local and
 * slab.c's remote free) and the slow path ages (bw_quarantine_age) and
 * empties (bw_quarantine_flush).
 *
 * A block enters already checked, wiped (all of it) and marked freed:
 * QUARANTINED if this heap owns it, PENDING if another heap does; either way
 * a second free of it is a double free and no free-list link can lead to it
 * (bw_slab_pop). When the ring is full a random victim leaves, so the order
 * of reuse is unpredictable.
 *
 * A leaving block must still be all zero in its first word, which the
 * write-after-free check at reuse cannot see (the link is written over it
 * here; the rest of the block is checked when it is handed out again), and
 * one of ours must not have been claimed by another thread's free meanwhile
 * (a racing double free, slab.h). */
#include "quarantine.h"
#include "block.h"
#include "foreign.h"

static uint32_t bw_quarantine_release(bw_heap_t *heap, void *block, const char *function) {
    uintptr_t offset = (uintptr_t)block - bw_layout.arena_base;
    bw_slab_t *slab = bw_slab_at(offset);
    uint32_t size = slab->block_size; /* read before a settle may release the slot */
    _Atomic(uint64_t) *bits = bw_bits_group(offset);
    uint64_t bit = bw_bits_mask(offset);
    bool ours = bw_bits_load(&bits[BW_BITS_QUARANTINED]) & bit;
    /* Ours, yet claimed by another thread's free: the other copy of it may
     * have been written (wiped, linked) already, so this comes first. */
    if (bw_unlikely(ours && (bw_bits_load(&bits[BW_BITS_PENDING]) & bit)))
        bw_fatal("double free", block, BW_INFO_CLASS, size, function);
#if BW_ZERO_ON_FREE
    if (bw_unlikely(!bw_block_first_word_zero(block)))
        bw_report_write_after_free(block, slab, function);
#endif
    if (!ours) {
        /* Another heap's block (or was, when freed): kept for this heap's
         * next malloc of the class, else back to its owner. */
        if (!bw_foreign_put(heap, slab, block)) bw_slab_remote_push(slab, block);
        return size;
    }
    bw_bits_clear(&bits[BW_BITS_QUARANTINED], bit);
    bw_link_store(slab, block, slab->local_free);
    slab->local_free = block;
    if (bw_unlikely(--slab->used <= slab->notify_at)) bw_heap_settle(heap, slab);
    return size;
}

#if BW_QUARANTINE_SLOTS
/* An entry that leaves for its slab, not a ready stack (bw_quarantine_leave,
 * quarantine.h). */
void bw_quarantine_release_entry(bw_heap_t *heap, uint64_t entry, const char *function) {
    (void)bw_quarantine_release(heap, bw_quarantine_block(entry), function);
}

void bw_quarantine_flush_ready(bw_heap_t *heap, const char *function) {
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++)
        while (heap->ready_count[c]) {
            void *block = heap->ready[c][--heap->ready_count[c]];
            (void)bw_quarantine_release(heap, block, function);
        }
}

void bw_quarantine_unready(bw_heap_t *heap, const char *function) {
    bw_quarantine_flush_ready(heap, function);
    /* Written only where set: a page of the ring the parent left with no
     * such entry stays shared (no copy-on-write fault). */
    for (size_t i = 0; i < heap->quarantine_count; i++)
        if (heap->quarantine[i] & BW_QUARANTINE_READY) heap->quarantine[i] &= ~BW_QUARANTINE_READY;
}

/* The entry (its bytes already counted) fills the next free slot of a
 * ring not yet full; then the byte bound. */
void bw_quarantine_put_slow(bw_heap_t *heap, uint64_t entry, const char *function) {
    size_t newest = heap->quarantine_count++;
    heap->quarantine[newest] = entry;
    if (heap->quarantine_bytes > BW_QUARANTINE_BYTES)
        bw_quarantine_over_bytes(heap, newest, function);
}

/* Over the byte bound: random entries other than the newest (at `newest`,
 * never the victim of its own free) leave until the ring is under it. */
void bw_quarantine_over_bytes(bw_heap_t *heap, size_t newest, const char *function) {
    while (heap->quarantine_bytes > BW_QUARANTINE_BYTES && heap->quarantine_count > 1) {
        /* 16 random bits suffice (a bias of count/65536 at most): a whole
         * keystream word per free, when blocks above 512 bytes make the
         * byte bound the one that holds, ran the cipher every 91 pairs of
         * bench/pairs 1024. */
        size_t i = (bw_rng_u16(&heap->rng) * (heap->quarantine_count - 1)) >> 16;
        if (i >= newest) i++;
        uint64_t victim = heap->quarantine[i];
        size_t last = --heap->quarantine_count;
        heap->quarantine[i] = heap->quarantine[last];
        if (newest == last) newest = i;
        bw_quarantine_leave(heap, victim, function);
    }
}

/* Time bound on top of the count and byte bounds: entries that were already
 * waiting at the previous aging scan (at least BW_PURGE_DELAY_MS ago) leave,
 * so an idle thread's quarantine does not pin slabs forever. */
void bw_quarantine_age(bw_heap_t *heap) {
    uint8_t old = heap->quarantine_epoch;
    size_t i = 0;
    while (i < heap->quarantine_count) {
        uint64_t entry = heap->quarantine[i];
        if (bw_quarantine_epoch(entry) != old) {
            heap->quarantine[i] = heap->quarantine[--heap->quarantine_count];
            heap->quarantine_bytes -=
                bw_quarantine_release(heap, bw_quarantine_block(entry), "malloc");
        } else {
            i++;
        }
    }
    heap->quarantine_epoch = (uint8_t)(old + 1);
    bw_quarantine_flush_ready(heap, "malloc"); /* an idle heap pins no slab */
}

void bw_quarantine_flush(bw_heap_t *heap, const char *function) {
    bw_quarantine_flush_ready(heap, function);
    while (heap->quarantine_count) {
        uint64_t entry = heap->quarantine[--heap->quarantine_count];
        heap->quarantine_bytes -= bw_quarantine_release(heap, bw_quarantine_block(entry), function);
    }
}
#else
void bw_quarantine_age(bw_heap_t *heap) {
    (void)heap;
}
void bw_quarantine_flush(bw_heap_t *heap, const char *function) {
    (void)heap;
    (void)function;
    (void)bw_quarantine_release;
}
void bw_quarantine_flush_ready(bw_heap_t *heap, const char *function) {
    (void)heap;
    (void)function;
}
void bw_quarantine_unready(bw_heap_t *heap, const char *function) {
    (void)heap;
    (void)function;
}
#endif

/* Blocks and bytes waiting in every heap's quarantine (0 without one).
 * Lock-free like bw_heap_stats (bw_heap_pool_readable); another thread's
 * counts may be a free or two out of date. */
void bw_quarantine_stats(size_t *blocks, size_t *bytes) {
    *blocks = *bytes = 0;
#if BW_QUARANTINE_SLOTS
    size_t used;
    const char *region = bw_heap_pool_readable(&used);
    if (!region) return;
    for (size_t at = 0; at + BW_HEAP_STRIDE <= used; at += BW_HEAP_STRIDE) {
        const bw_heap_t *heap = (const bw_heap_t *)(const void *)(region + at);
        *blocks += __atomic_load_n(&heap->quarantine_count, __ATOMIC_RELAXED);
        *bytes += __atomic_load_n(&heap->quarantine_bytes, __ATOMIC_RELAXED);
    }
#endif
}

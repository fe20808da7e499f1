/* alloc.h — the fast paths of malloc and free, in one place.
 *
 * malloc(n <= 1024 - canary room), bin hit: TLS heap load, class table
 * lookup, (hardened profiles: a random byte picks one of the class's open
 * slabs), free-list pop with link decode and validation, link wipe, the
 * write-after-free check and canary (when on), used++, bitmap bits set via
 * a multiply-shift index. No lock, no atomic RMW, no system call, no
 * division (invariant 7). Instruction counts per profile: bench/icount.md;
 * tests/perf/icount-ceilings holds the ceilings `make check` enforces.
 *
 * free(p) of a block the thread owns: arena range check, descriptor lookup
 * by shift, boundary check by multiply, allocated/pending bit check
 * (invariant 2), canary check and zeroing (when on), then the quarantine or
 * a push onto the free list. Everything else is a call to a cold or slow
 * function. */
#ifndef BW_ALLOC_H
#define BW_ALLOC_H

#include "bw_internal.h"

__attribute__((noreturn)) void bw_report_bad_small(const void *ptr, const bw_slab_t *slab,
                                                   const char *function);
void bw_free_outside_arena(void *ptr, size_t size, size_t alignment, const char *function);

BW_INLINE void *bw_alloc_inline(size_t size) {
    /* With BW_ZERO_SIZE_FAULTS, size 0 wraps around and takes the slow path
     * at no cost to the others. */
    if (bw_likely(size - BW_ZERO_SIZE_FAULTS <= 1024 - BW_CANARY_BYTES - BW_ZERO_SIZE_FAULTS)) {
        bw_heap_t *heap = bw_tls_heap;
        unsigned size_class = bw_class_by_16[(size + BW_CANARY_BYTES + 15) >> 4];
#if BW_RANDOM_WAYS
        /* A random byte picks the way. The bytes come from the heap's
         * keystream buffer; when it is empty (or this is the empty heap,
         * which has none) the slow path refills it or creates the heap. */
        if (bw_unlikely(heap->way_draws == 0)) {
            if (bw_unlikely(heap->rng.pos >= BW_RNG_WORDS)) return bw_malloc_slow(size, false);
            heap->way_random = heap->rng.words[heap->rng.pos++];
            heap->way_draws = 8;
        }
        uint32_t r = (uint32_t)heap->way_random & 0xff;
        heap->way_random >>= 8;
        heap->way_draws--;
        const bw_bin_t *bin = &heap->bins[size_class];
        bw_slab_t *slab = heap->ways[bin->way_base + ((r * bin->way_count) >> 8)];
#else
        bw_slab_t *slab = heap->ways[size_class];
#endif
        if (bw_likely(slab->free != NULL)) return bw_slab_pop(slab);
    }
    return bw_malloc_slow(size, false);
}

BW_INLINE void bw_free_inline(void *ptr, const char *function) {
    uintptr_t offset = (uintptr_t)ptr - bw_layout.arena_base;
    if (bw_unlikely(offset >= bw_layout.arena_size)) {
        bw_free_outside_arena(ptr, 0, 0, function); /* NULL, large, or not ours */
        return;
    }
    bw_slab_t *slab = &bw_layout.slabs[offset >> BW_SLAB_SHIFT];
    uintptr_t in_slab = offset & (BW_SLAB_SIZE - 1);
    size_t index = bw_slab_block_index(slab, in_slab);
    /* Not a block boundary, or past the last block, or a slot not in use. */
    if (bw_unlikely(index * slab->block_size != in_slab || index >= slab->nblocks))
        bw_report_bad_small(ptr, slab, function);
    uint64_t bit = 1ull << (index & 63);
    _Atomic(uint64_t) *word = bw_slab_alloc_word(slab, index);
    bw_heap_t *heap = bw_tls_heap;
    if (bw_likely(atomic_load_explicit(&slab->owner, memory_order_relaxed) == heap)) {
        uint64_t allocated = atomic_load_explicit(word, memory_order_relaxed);
        uint64_t pending = atomic_load_explicit(word + 1, memory_order_relaxed);
        if (bw_unlikely((allocated & bit) == 0 || (pending & bit) != 0))
            bw_report_not_live(ptr, slab, index, "double free", "invalid free", function);
        bw_block_retire_checks(slab, ptr, function);
        atomic_store_explicit(word, allocated & ~bit, memory_order_relaxed);
#if BW_QUARANTINE_SLOTS
        bw_quarantine_put(heap, ptr, slab); /* reused later, in random order */
#else
        bw_link_store(slab, ptr, slab->free);
        slab->free = ptr;
        slab->used--;
        if (BW_NOTIFY_NEEDED(slab)) bw_free_slow_local(heap, slab);
#endif
        return;
    }
    bw_slab_remote_free(slab, ptr, index, bit, function);
}

#endif

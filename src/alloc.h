/* alloc.h — the fast paths of malloc and free, in one place.
 *
 * malloc(n <= 128 KiB - canary room), bin hit: class table lookup (one
 * table up to 1 KiB, a second above), TLS heap load, (with a quarantine: a
 * block its eviction put on the class's ready stack, if any, checked and
 * armed as below but with no link and no slab count; quarantine.h),
 * (a block of another heap this thread freed, from the class's foreign
 * ring when it holds two or more: still claimed, checked, armed, its claim
 * released; foreign.h),
 * (hardened profiles: a random byte picks one of the class's open slabs),
 * free-list pop: the
 * block's bitmap state must say free, its link is decoded and its tag and
 * shape validated, the link wiped, then the write-after-free check and the
 * canary (and exact-size slack) when on, used++, two bitmap bits set
 * (indexed by the block's arena offset). No lock, no atomic RMW, no system
 * call, no division (invariant 7). Instruction counts per profile: bench/icount.md;
 * tests/perf/icount-ceilings holds the ceilings `make check` enforces.
 *
 * free(p) of a block the thread owns: one compare for arena range and
 * 16-byte alignment, descriptor lookup by shift, owner test, allocated and
 * pending bit test (invariant 2; it is also the block-boundary test, as only
 * block starts have bits), canary (and slack) check and zeroing (when on),
 * then the quarantine (the block marked quarantined) or a push onto the
 * local free list (an encoded link) and one compare of the slab's count
 * with its notify threshold. Everything else is a call to a cold or slow
 * function. */
#ifndef BW_ALLOC_H
#define BW_ALLOC_H

#include "block.h"
#include "foreign.h"
#include "heap.h"
#include "large.h"
#include "quarantine.h"
#include "sizeclass.h"

/* alloc.c — the checked free, usable size and aligned allocation */
void bw_free_checked(void *ptr, size_t size, size_t alignment, const char *function);
size_t bw_usable_size_checked(const void *ptr, const char *function);
void *bw_alloc_aligned(size_t alignment, size_t size);
void bw_free_outside_arena(void *ptr, size_t size, size_t alignment, const char *function);
void bw_free_not_owned(bw_slab_t *slot, void *ptr, const char *function);

BW_INLINE void *bw_alloc_inline(size_t size) {
#if BW_PAGE_MODE
    /* The fuzz profile: every block on pages of its own (bw_page_mode). */
    if (bw_page_mode() && size != 0) return bw_large_alloc(size, 0, false);
#endif
    /* Every small class is served here. With BW_ZERO_SIZE_FAULTS, size 0
     * wraps around and takes the slow path at no cost to the others. */
    unsigned size_class;
    if (bw_likely(size - BW_ZERO_SIZE_FAULTS <= 1024 - BW_CANARY_BYTES - BW_ZERO_SIZE_FAULTS))
        size_class = bw_class_by_16[(size + BW_CANARY_BYTES + 15) >> 4];
    else if (size - BW_ZERO_SIZE_FAULTS <= BW_SMALL_MAX - BW_CANARY_BYTES - BW_ZERO_SIZE_FAULTS)
        size_class = bw_class_by_128[(size + BW_CANARY_BYTES + 127) >> 7];
    else
        return bw_malloc_slow(size, false);
    bw_heap_t *heap = bw_tls_heap;
#if BW_QUARANTINE_SLOTS
    /* A block the quarantine let go, kept for this class (quarantine.h);
     * every BW_READY_RUN of them, the slow path's periodic work first. */
    if (heap->ready_count[size_class]) {
        if (bw_unlikely(heap->ready_left == 0)) return bw_malloc_slow(size, false);
        heap->ready_left--;
        return bw_ready_pop(heap, size_class, size);
    }
#endif
#if BW_FOREIGN_SLOTS
    /* Another heap's block this thread freed (foreign.h), the oldest of
     * two or more; as often as a ready block. */
    if (heap->foreign_count[size_class] >= 2) {
        if (bw_unlikely(heap->ready_left == 0)) return bw_malloc_slow(size, false);
        heap->ready_left--;
        return bw_foreign_pop(heap, size_class, size);
    }
#endif
#if BW_RANDOM_WAYS
    /* A random byte picks the way. The bytes come from the heap's keystream
     * buffer; when it is empty (or this is the empty heap, which has none)
     * the slow path refills it or creates the heap. */
    bw_bin_t *bin = &heap->bins[size_class];
    if (bw_unlikely(heap->way_draws == 0)) {
        if (bw_unlikely(heap->rng.pos >= BW_RNG_WORDS)) return bw_malloc_slow(size, false);
        heap->way_random = heap->rng.words[heap->rng.pos++];
        heap->way_draws = 8;
        /* Once per 8 mallocs: has the class grown enough for another way?
         * The slow path opens it (a call here would cost every malloc
         * registers saved and restored). */
        if (bw_unlikely(bin->live >= bin->open_at)) return bw_malloc_slow(size, false);
    }
    uint32_t r = (uint32_t)heap->way_random & 0xff;
    heap->way_random >>= 8;
    heap->way_draws--;
    bw_slab_t *slab = heap->ways[bin->way_base + ((r * bin->way_count) >> 8)];
    if (bw_likely(slab->free != NULL)) {
        bin->live++;
        return bw_slab_pop(slab, size);
    }
#else
    bw_slab_t *slab = heap->ways[size_class];
    if (bw_likely(slab->free != NULL)) return bw_slab_pop(slab, size);
#endif
    return bw_malloc_slow(size, false);
}

/* free of a block in a slab the calling thread owns (`offset` is the
 * block's arena offset). */
BW_INLINE void bw_free_local(bw_heap_t *heap, bw_slab_t *slab, void *ptr, uintptr_t offset,
                             const char *function) {
    _Atomic(uint64_t) *bits = bw_bits_group(offset);
    uint64_t bit = bw_bits_mask(offset);
    uint64_t allocated = bw_bits_load(&bits[BW_BITS_ALLOCATED]);
    uint64_t pending = bw_bits_load(&bits[BW_BITS_PENDING]);
    /* Not a live block start: freed before, never allocated, inside a
     * block, or freed by another thread and not yet collected. (Freed and
     * waiting in this thread's quarantine: ALLOCATED is clear.) */
    if (bw_unlikely((allocated & bit) == 0 || (pending & bit) != 0))
        bw_report_not_live(ptr, slab, "double free", "invalid free", function);
    bw_block_verify(slab, ptr, function);
    atomic_store_explicit(&bits[BW_BITS_ALLOCATED], allocated & ~bit, memory_order_relaxed);
#if BW_RANDOM_WAYS
    heap->bins[slab->size_class].live--;
#endif
    /* Wiped after the bitmap is done with, so that a memset call (blocks
     * above 256 bytes) keeps fewer values alive across it. */
    bw_block_wipe(slab, ptr);
#if BW_QUARANTINE_SLOTS
    bw_bits_set(&bits[BW_BITS_QUARANTINED], bit);       /* not free until it leaves */
    bw_quarantine_put(heap, ptr, slab, true, function); /* reused later, in random order */
#else
    bw_link_store(slab, ptr, slab->local_free);
    slab->local_free = ptr;
    if (bw_unlikely(--slab->used <= slab->notify_at)) bw_free_slow_local(heap, slab);
#endif
}

BW_INLINE void bw_free_inline(void *ptr, const char *function) {
    uintptr_t offset = (uintptr_t)ptr - bw_layout.arena_base;
    /* One compare rejects NULL, pointers outside the carved arena and
     * pointers not on a 16-byte granule: the rotation moves the low four
     * bits to the top. */
    uintptr_t granule = (offset >> 4) | (offset << 60);
    if (bw_unlikely(granule >= bw_layout.arena_granules)) {
        bw_free_outside_arena(ptr, 0, 0, function); /* NULL, large, misaligned or not ours */
        return;
    }
    bw_slab_t *slab = &bw_layout.slabs[offset >> BW_SLAB_SHIFT];
    bw_heap_t *heap = bw_tls_heap;
    if (bw_likely(atomic_load_explicit(&slab->owner, memory_order_relaxed) == heap)) {
        bw_free_local(heap, slab, ptr, offset, function);
        return;
    }
    bw_free_not_owned(slab, ptr, function); /* another thread's, a span's tail, or none */
}

#endif

/* alloc.c — the checked slow paths around the fast ones in alloc.h: frees
 * outside the arena, bad-pointer reports, sized and aligned frees, usable
 * size, realloc and aligned allocation. */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "bw_internal.h"

/* The slab of a live small block at arena offset `offset`, or a fatal
 * report: freed_class for a block freed before, invalid_class for anything
 * that never was a live block. The one checked lookup of the slow paths
 * (the fast path in alloc.h inlines the same steps). */
static bw_slab_t *bw_live_small(const void *ptr, uintptr_t offset, const char *freed_class,
                                const char *invalid_class, const char *function) {
    bw_slab_t *slab = bw_slab_at(offset);
    const _Atomic(uint64_t) *bits = bw_bits_group(offset);
    uint64_t bit = bw_bits_mask(offset);
    if ((offset & 15) || !(bw_bits_load(&bits[BW_BITS_ALLOCATED]) & bit) ||
        (bw_bits_load(&bits[BW_BITS_PENDING]) & bit))
        bw_report_not_live(ptr, slab, freed_class, invalid_class, function);
    return slab;
}

/* free's path for a block whose slot the calling thread does not own: a
 * slot in the tail of a span goes by its head's owner. */
void bw_free_not_owned(bw_slab_t *slot, void *ptr, const char *function) {
    bw_slab_t *slab = bw_slab_head(slot);
    bw_heap_t *heap = bw_tls_heap;
    if (slab != slot && atomic_load_explicit(&slab->owner, memory_order_relaxed) == heap) {
        bw_free_local(heap, slab, ptr, (uintptr_t)ptr - bw_layout.arena_base, function);
        return;
    }
    bw_slab_remote_free(slab, ptr, function);
}

void bw_free_outside_arena(void *ptr, size_t size, size_t alignment, const char *function) {
    if (!ptr) return;
    uintptr_t offset = (uintptr_t)ptr - bw_layout.arena_base;
    if (offset < bw_layout.arena_size) { /* free's fast test also rejects misaligned pointers */
        bw_live_small(ptr, offset, "double free", "invalid free", function);
        bw_free_inline(ptr, function); /* only if the arena grew meanwhile */
        return;
    }
    int saved_errno = errno; /* free must not change errno (CONVENTIONS trap 6) */
#if BW_ZERO_SIZE_FAULTS
    if (bw_zero_owns(ptr)) {
        bw_zero_free(ptr, size, function);
        return;
    }
#endif
    if (atomic_load_explicit(&bw_init_state, memory_order_acquire) != 2 ||
        !bw_large_free(ptr, size, alignment, function))
        bw_fatal("invalid free", ptr, BW_INFO_NONE, 0, function);
    errno = saved_errno;
}

/* The largest request a small block of this slab serves in place: its
 * class size less the canary room. realloc keeps a block whose new size
 * lies in (capacity / 2, capacity]. */
static size_t bw_small_capacity(const bw_slab_t *slab) {
    return slab->block_size - BW_CANARY_BYTES;
}

/* free_sized, free_aligned_sized and the sized/aligned C++ deletes: the size
 * must be one that could have produced this block: one of its class (after
 * the alignment rounding), or one realloc kept it for in place (C23 lets
 * free_sized name the size of the last realloc, whichever class that size
 * maps to; CONVENTIONS trap 19). The pointer must have the alignment. */
void bw_free_checked(void *ptr, size_t size, size_t alignment, const char *function) {
    uintptr_t offset = (uintptr_t)ptr - bw_layout.arena_base;
    if (!ptr) return;
    if (offset >= bw_layout.arena_size) {
        bw_free_outside_arena(ptr, size, alignment, function);
        return;
    }
    /* Liveness before size: a freed or never-allocated block is reported as
     * such whatever size the caller passes. */
    const bw_slab_t *slab = bw_live_small(ptr, offset, "double free", "invalid free", function);
    if (alignment && ((uintptr_t)ptr & (alignment - 1)))
        bw_fatal("free alignment mismatch", ptr, BW_INFO_CLASS, slab->block_size, function);
    if (size == 0 && alignment) { /* aligned delete without a size */
        bw_free_inline(ptr, function);
        return;
    }
    unsigned expected = !bw_request_is_small(size) ? 0
                        : alignment > 16 ? bw_size_class_aligned(size + BW_CANARY_BYTES, alignment)
                                         : bw_request_class(size);
    size_t capacity = bw_small_capacity(slab);
    bool kept_in_place = alignment <= 16 && size <= capacity && size > capacity / 2;
    if (expected != slab->size_class && !kept_in_place) {
        /* The size alone fits: the alignment given is not the one used. */
        bool size_fits = size + BW_CANARY_BYTES <= slab->block_size &&
                         (alignment <= 16 || bw_request_class(size) <= slab->size_class);
        bw_fatal(size_fits && alignment > 16 ? "free alignment mismatch" : "free size mismatch",
                 ptr, BW_INFO_CLASS, slab->block_size, function);
    }
    bw_free_inline(ptr, function);
}

/* Usable size of a live block; bad pointers are fatal with the report of
 * the calling function. */
size_t bw_usable_size_checked(const void *ptr, const char *function) {
    uintptr_t offset = (uintptr_t)ptr - bw_layout.arena_base;
    if (offset >= bw_layout.arena_size) {
        if (atomic_load_explicit(&bw_init_state, memory_order_acquire) != 2)
            bw_fatal("invalid pointer", ptr, BW_INFO_NONE, 0, function);
#if BW_ZERO_SIZE_FAULTS
        if (bw_zero_owns(ptr)) {
            bw_zero_validate((void *)ptr, "use after free", "invalid pointer", function);
            return 0;
        }
#endif
        return bw_large_usable_size(ptr, function);
    }
    const bw_slab_t *slab =
        bw_live_small(ptr, offset, "use after free", "invalid pointer", function);
    /* The canary room is not usable (CONVENTIONS trap 10); with
     * BW_EXACT_SIZE nothing past the request is. */
    return bw_block_verify(slab, (void *)ptr, function);
}

/* The request realloc makes for a small block it moves to grow. A block
 * grown by a step under half its size is being appended to (a string or
 * buffer built piece by piece) and will likely grow again: it gets a
 * quarter of room, so that the next appends stay in place, as large blocks
 * get half (bw_large_alloc_for_growth). A copy and, with zero-on-free, a
 * wipe of the old block are saved per class skipped: bench/realloc.c 65536
 * 2000000, default 0.39 -> 0.27 s of CPU (Scudo 0.28), peak RSS 24.5 ->
 * 23.8 MB (fewer moved blocks wait in the quarantine). Growth by half or
 * more (geometric growth, which amortises itself) and blocks of up to 1 KiB
 * (cheap to copy) get the class of their size.
 * Only where a move costs a wipe as well as a copy (zero-on-free) and the
 * size is not byte-exact (there every byte of room is slack that malloc
 * fills and free checks): in fast the same room bought 0.21 -> 0.16 s on
 * that benchmark (mimalloc 0.22) for 27% more peak RSS. */
static size_t bw_small_growth_request(size_t old_size, size_t size) {
#if BW_ZERO_ON_FREE && !BW_EXACT_SIZE
    if (size > 1024 && size > old_size && size - old_size < old_size / 2) {
        size_t roomy = size + size / 4;
        if (bw_request_is_small(roomy)) return roomy;
    }
#endif
    (void)old_size;
    return size;
}

void *bw_realloc_impl(void *ptr, size_t size);
void *bw_realloc_impl(void *ptr, size_t size) {
    if (!ptr) return bw_alloc_inline(size);
    if (size == 0) { /* glibc: free and return NULL (CONVENTIONS trap 9) */
        bw_free_inline(ptr, "realloc");
        return NULL;
    }
    uintptr_t offset = (uintptr_t)ptr - bw_layout.arena_base;
    size_t old_size;
    if (offset < bw_layout.arena_size) {
        /* Reported as a free would: realloc frees the old block. */
        const bw_slab_t *slab =
            bw_live_small(ptr, offset, "double free", "invalid free", "realloc");
        old_size = bw_block_verify(slab, ptr, "realloc");
        /* Kept in place when the new size fits the block and still fills
         * more than half of it (or the block is the smallest class). */
        size_t capacity = bw_small_capacity(slab);
        if (size <= capacity && (size > capacity / 2 || slab->size_class == 1)) {
            bw_block_arm(slab, ptr, size);
            return ptr;
        }
    } else {
        if (atomic_load_explicit(&bw_init_state, memory_order_acquire) != 2)
            bw_fatal("invalid free", ptr, BW_INFO_NONE, 0, "realloc");
#if BW_ZERO_SIZE_FAULTS
        if (bw_zero_owns(ptr)) {
            bw_zero_validate(ptr, "double free", "invalid free", "realloc");
            void *moved = bw_alloc_inline(size);
            if (moved) bw_zero_free(ptr, 0, "realloc");
            return moved;
        }
#endif
        void *kept = bw_large_realloc(ptr, size); /* in place, or moved without a copy */
        if (kept) return kept;
        old_size = bw_large_usable_size(ptr, "realloc");
    }
    /* Growing into a large block: with room to grow again in place. */
    void *moved = size > old_size && !bw_request_is_small(size)
                      ? bw_large_alloc_for_growth(size)
                      : bw_alloc_inline(bw_small_growth_request(old_size, size));
    if (!moved) return NULL; /* errno is ENOMEM, the old block is intact */
    memcpy(moved, ptr, old_size < size ? old_size : size);
    bw_free_inline(ptr, "realloc");
    return moved;
}

/* Aligned allocation; alignment is a power of two (callers check). Small
 * classes serve it when a class is a multiple of the alignment (slabs start
 * on 64 KiB boundaries); larger alignments get their own mapping. */
void *bw_alloc_aligned(size_t alignment, size_t size) {
    if (alignment <= 16) return bw_alloc_inline(size);
    if (!bw_ensure_init()) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned size_class = bw_request_is_small(size) && !(bw_page_mode() && size != 0)
                              ? bw_size_class_aligned(size + BW_CANARY_BYTES, alignment)
                              : 0;
    if (size_class) {
        void *block = bw_malloc_class(size_class, size);
        if (!block) errno = ENOMEM;
        return block;
    }
    return bw_large_alloc(size, alignment, false);
}

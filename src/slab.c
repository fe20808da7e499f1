/* slab.c — one 64 KiB run of a segment serving one size class
 * (DESIGN.md layer "slabs"). The descriptor and its bitmaps are out of line;
 * the only things kept in user memory are free-list links inside free
 * blocks.
 *
 * Two bitmaps per slab, interleaved word by word so a check touches one
 * cache line: "allocated" (written only by the owner thread) and
 * "remote-pending" (set atomically by a thread that frees a block it does
 * not own, cleared by the owner when it collects the block). Together they
 * make every free checkable (invariant 2) without an atomic read-modify-write
 * on the owner's fast path (invariant 7). */
#include <string.h>

#include "bw_internal.h"

/* Fisher-Yates shuffle of the block indices, so the free list hands blocks
 * out in a random order (invariant 3). The scratch array lives on the stack
 * of the slow path: 2 bytes per block, 7.5 KiB for the 16-byte class. */
static void bw_slab_build_free_list(bw_slab_t *slab, bw_heap_t *owner, char *start, uint32_t size,
                                    uint32_t count) {
#if BW_RANDOM_FREELIST
    uint16_t order[BW_MAX_BLOCKS_PER_SLAB];
    for (uint32_t i = 0; i < count; i++) order[i] = (uint16_t)i;
    for (uint32_t i = count - 1; i > 0; i--) {
        uint32_t j = bw_rng_below(&owner->rng, i + 1);
        uint16_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
#define BW_ORDER(i) order[i]
#else
    (void)owner;
#define BW_ORDER(i) (i)
#endif
    for (uint32_t i = 0; i + 1 < count; i++)
        bw_link_store(slab, start + (size_t)BW_ORDER(i) * size,
                      start + (size_t)BW_ORDER(i + 1) * size);
    /* count >= 1 (checked above), so order[0 .. count-1] is written. */
    // cppcheck-suppress uninitvar
    bw_link_store(slab, start + (size_t)BW_ORDER(count - 1) * size, NULL);
    slab->free = start + (size_t)BW_ORDER(0) * size;
#undef BW_ORDER
}

void bw_slab_format(bw_slab_t *slab, unsigned size_class, bw_heap_t *owner) {
    uint32_t size = bw_class_size[size_class];
    uint32_t count = (uint32_t)(BW_SLAB_USABLE / size);
    char *start = (char *)bw_slab_start(slab);
#if BW_ZERO_ON_FREE
    /* A reused slot that served another class still holds that class's old
     * links at other offsets; the write-after-free check needs zeros. */
    if (slab->state == BW_SLAB_DIRTY && slab->block_size != size) memset(start, 0, BW_SLAB_USABLE);
#endif
    slab->size_class = (uint8_t)size_class;
    slab->block_size = size;
    /* ceil(2^32 / size): exact quotient for every offset < 2^16 when
     * size <= 2^14 (error < 2^-16 < 1/size). */
    slab->block_inv = (uint32_t)((((uint64_t)1 << 32) + size - 1) / size);
    slab->nblocks = (uint16_t)count;
    slab->used = 0;
    slab->notify = BW_NOTIFY_NONE;
    slab->next = slab->prev = NULL;
    slab->state = BW_SLAB_ACTIVE;
    slab->key = bw_rng_next(&owner->rng);
    slab->canary = bw_rng_next(&owner->rng);
    atomic_store_explicit(&slab->remote, NULL, memory_order_relaxed);
    memset((void *)slab->bits, 0, 3 * ((count + 63) / 64) * sizeof(uint64_t));
    bw_slab_build_free_list(slab, owner, start, size, count);
    atomic_store_explicit(&slab->owner, owner, memory_order_release);
}

void bw_report_corrupt_link(const void *slot, const bw_slab_t *slab) {
    bw_fatal("free-list corruption", slot, BW_INFO_CLASS, slab->block_size, "malloc");
}

void bw_report_write_after_free(const void *block, const bw_slab_t *slab) {
    bw_fatal("write after free", block, BW_INFO_CLASS, slab->block_size, "malloc");
}

void bw_report_not_live(const void *ptr, const bw_slab_t *slab, size_t index,
                        const char *freed_class, const char *invalid_class, const char *function) {
    const _Atomic(uint64_t) *word = bw_slab_alloc_word(slab, index);
    bool handed_out = atomic_load_explicit(word + 2, memory_order_relaxed) & (1ull << (index & 63));
    bw_fatal(handed_out ? freed_class : invalid_class, ptr, BW_INFO_CLASS, slab->block_size,
             function);
}

void bw_report_overflow(const void *block, const bw_slab_t *slab, const char *function) {
    bw_fatal("heap overflow", block, BW_INFO_CLASS, slab->block_size, function);
}

/* Owner side: move every block other threads freed onto the local free
 * list. Returns the number collected. */
size_t bw_slab_collect_remote(bw_slab_t *slab) {
    if (!atomic_load_explicit(&slab->remote, memory_order_relaxed)) return 0;
    void *list = atomic_exchange_explicit(&slab->remote, NULL, memory_order_acquire);
    size_t count = 0;
    while (list) {
        void *next = bw_link_load(slab, list);
        size_t index = bw_slab_block_index(slab, (uintptr_t)list & (BW_SLAB_SIZE - 1));
        uint64_t bit = 1ull << (index & 63);
        _Atomic(uint64_t) *word = bw_slab_alloc_word(slab, index);
        bw_bits_clear(word, bit);
        atomic_fetch_and_explicit(word + 1, ~bit, memory_order_relaxed);
        bw_link_store(slab, list, slab->free);
        slab->free = list;
        slab->used--;
        count++;
        list = next;
    }
    return count;
}

/* Free from a thread that does not own the slab: check, mark pending, push
 * onto the slab's remote list and make sure the owner hears about it. */
void bw_slab_remote_free(bw_slab_t *slab, void *block, size_t index, uint64_t bit,
                         const char *function) {
    _Atomic(uint64_t) *word = bw_slab_alloc_word(slab, index);
    if (bw_unlikely(!(atomic_load_explicit(word, memory_order_relaxed) & bit)))
        bw_report_not_live(block, slab, index, "double free", "invalid free", function);
    uint64_t before = atomic_fetch_or_explicit(word + 1, bit, memory_order_relaxed);
    if (bw_unlikely(before & bit))
        bw_fatal("double free", block, BW_INFO_CLASS, slab->block_size, function);

    bw_block_retire_checks(slab, block, function);
#if BW_QUARANTINE_SLOTS
    /* The block waits in this thread's quarantine; its pending bit keeps
     * marking it freed until the owner collects it. */
    bw_heap_t *heap = bw_tls_heap;
    if (heap != &bw_empty_heap) {
        bw_quarantine_put(heap, block, slab);
        return;
    }
#endif
    bw_slab_remote_push(slab, block);
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
    if (owner && !atomic_exchange_explicit(&slab->queued, 1, memory_order_acq_rel)) {
        bw_slab_t *top = atomic_load_explicit(&owner->remote_slabs, memory_order_relaxed);
        do {
            atomic_store_explicit(&slab->remote_next, top, memory_order_relaxed);
        } while (!atomic_compare_exchange_weak_explicit(
            &owner->remote_slabs, &top, slab, memory_order_release, memory_order_relaxed));
    }
}

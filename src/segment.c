/* segment.c — the address space (DESIGN.md layer "segments").
 *
 * Two reservations, both at random bases:
 *   arena    2^BW_ARENA_SHIFT bytes of small-object memory, cut into 4 MiB
 *            segments handed out in address order (so committed segments
 *            merge into few VMAs), each cut into 64 slab slots of 64 KiB;
 *   metadata guard | slab descriptors (128 B per slot) | guard |
 *            segment headers (64 B per segment) | guard |
 *            bitmaps (1.5 KiB per slot) | guard
 *            committed piecewise as segments are carved; never adjacent to
 *            user memory (invariant 1).
 * In lazy space (os.c: a finite RLIMIT_AS) neither is reserved: the pieces
 * a carve commits are mapped then, at the same addresses, and a segment
 * whose addresses another mapping holds is skipped (bw_segment_commit).
 * Free slots are pooled per NUMA node: a segment is bound to the node of the
 * thread that carved it and its slots return to that node's pool. A freed
 * slot stays committed ("dirty") for BW_PURGE_DELAY_MS, then the purge
 * returns it with MADV_DONTNEED. */
#include <string.h>

#include "hot.h"
#include "lock.h"
#include "os.h"
#include "random.h"
#include "report.h"
#include "segment.h"
#include "sizeclass.h"
#include "slab.h"

bw_layout_t bw_layout;

typedef struct {           /* its lock: bw_locks.pools[index] (lock.h) */
    bw_segment_t *partial; /* segments with at least one free slot */
    size_t dirty_slots;    /* free slots still committed */
    uint64_t last_purge_ms;
} bw_node_pool_t;

static bw_node_pool_t bw_pools[BW_MAX_NUMA_NODES];
static size_t bw_segments_carved; /* segments handed out so far, in address order;
                                     under bw_locks.arena */

static bw_lock_t *bw_pool_lock(const bw_node_pool_t *pool) {
    return &bw_locks.pools[pool - bw_pools];
}

#define BW_SLAB_DESC_BYTES (BW_SLAB_COUNT * sizeof(bw_slab_t))
#define BW_SEG_HEADER_BYTES                                                                        \
    (((size_t)BW_SEGMENT_COUNT * sizeof(bw_segment_t) + BW_PAGE_SIZE - 1) &                        \
     ~(size_t)(BW_PAGE_SIZE - 1))
#define BW_BITMAP_BYTES_PER_SLAB (BW_BITMAP_WORDS_PER_SLAB * sizeof(uint64_t))
#define BW_BITMAP_BYTES          (BW_SLAB_COUNT * BW_BITMAP_BYTES_PER_SLAB)

/* Mask of the bits below n (n <= 64), without shifting by 64. */
static uint64_t bw_bits_below(unsigned n) {
    return n >= 64 ? ~0ull : (1ull << n) - 1;
}

static uintptr_t bw_meta_slab_descs, bw_meta_seg_headers, bw_meta_bitmaps;
static size_t bw_header_pages; /* pages of segment headers committed, in address order */

#define BW_META_SIZE                                                                               \
    (BW_PAGE_SIZE + BW_SLAB_DESC_BYTES + BW_PAGE_SIZE + BW_SEG_HEADER_BYTES + BW_PAGE_SIZE +       \
     BW_BITMAP_BYTES + BW_PAGE_SIZE)

/* The bytes of the slab metadata's piece of the metadata zone (init.c). */
size_t bw_segments_meta_bytes(void) {
    return BW_META_SIZE;
}

/* meta: bw_segments_meta_bytes() of the metadata zone; the arena is a
 * reservation of its own. Both reserved, or (lazy space, os.c) only placed:
 * in lazy space nothing is mapped before the first segment is carved. */
bool bw_segments_init(void *meta) {
    const size_t guard = BW_PAGE_SIZE;
    void *arena = bw_os_space_reserve(BW_ARENA_SIZE, BW_SEGMENT_SIZE);
    if (!arena) return false;
    /* The reservation is PROT_NONE, so the unused gaps are already guards
     * (in lazy space they are holes, which fault as well). */
    bw_meta_slab_descs = (uintptr_t)meta + guard;
    bw_meta_seg_headers = bw_meta_slab_descs + BW_SLAB_DESC_BYTES + guard;
    bw_meta_bitmaps = bw_meta_seg_headers + BW_SEG_HEADER_BYTES + guard;
    bw_layout.slabs = (bw_slab_t *)bw_meta_slab_descs;
    bw_layout.segments = (bw_segment_t *)bw_meta_seg_headers;
    bw_layout.bitmaps = (void *)bw_meta_bitmaps;
    bw_layout.arena_base = (uintptr_t)arena;
    /* arena_size covers only carved segments (it grows in bw_segment_carve):
     * a wild pointer into the rest of the reservation takes free()'s slow
     * path instead of reading metadata that was never committed. */
    return true;
}

/* Start-up failed after bw_segments_init: no segment was carved, so
 * nothing was committed; the arena goes (the metadata with the zone,
 * init.c). */
void bw_segments_release(void) {
    bw_os_space_release((void *)bw_layout.arena_base, BW_ARENA_SIZE);
    memset(&bw_layout, 0, sizeof bw_layout);
}

unsigned bw_pool_index_for_node(unsigned node) {
    return node < bw_topology.node_count && node < BW_MAX_NUMA_NODES ? node : 0;
}

static void bw_pool_push(bw_node_pool_t *pool, bw_segment_t *seg) {
    seg->prev = NULL;
    seg->next = pool->partial;
    if (pool->partial) pool->partial->prev = seg;
    pool->partial = seg;
    seg->in_pool_list = 1;
}

static void bw_pool_remove(bw_node_pool_t *pool, bw_segment_t *seg) {
    if (seg->prev)
        seg->prev->next = seg->next;
    else
        pool->partial = seg->next;
    if (seg->next) seg->next->prev = seg->prev;
    seg->next = seg->prev = NULL;
    seg->in_pool_list = 0;
}

/* Commit segment `index`: its memory, its descriptors and bitmaps, and its
 * header's page the first time a segment uses it. Arena lock held.
 * BW_MAP_TAKEN (lazy space only): the segment's memory is someone else's
 * mapping; its metadata is committed all the same, so that a pointer into
 * it finds zero descriptors (never a hole) and free reports it as invalid.
 * BW_MAP_NOMEM: nothing of this segment is left committed (lazy: unmapped,
 * so the next attempt does not find its own pieces in the way); a metadata
 * piece someone else holds fails the same way, for good. */
static bw_map_t bw_segment_commit(size_t index) {
    size_t first_slab = index * BW_SLABS_PER_SEGMENT;
    void *descs = &bw_layout.slabs[first_slab];
    void *bitmaps = (char *)bw_meta_bitmaps + first_slab * BW_BITMAP_BYTES_PER_SLAB;
    const size_t descs_bytes = BW_SLABS_PER_SEGMENT * sizeof(bw_slab_t);
    const size_t bitmaps_bytes = BW_SLABS_PER_SEGMENT * BW_BITMAP_BYTES_PER_SLAB;
    size_t header_page = index * sizeof(bw_segment_t) / BW_PAGE_SIZE;
    void *memory = (void *)(bw_layout.arena_base + (index << BW_SEGMENT_SHIFT));

    bw_map_t mem = bw_os_space_commit(memory, BW_SEGMENT_SIZE, false);
    if (mem == BW_MAP_NOMEM) return BW_MAP_NOMEM;
    if (header_page >= bw_header_pages) { /* segments are carved in order: the next page */
        if (bw_os_space_commit((char *)bw_meta_seg_headers + header_page * BW_PAGE_SIZE,
                               BW_PAGE_SIZE, true) != BW_MAP_OK)
            goto fail_memory;
        bw_header_pages = header_page + 1;
    }
    if (bw_os_space_commit(descs, descs_bytes, true) != BW_MAP_OK) goto fail_memory;
    if (bw_os_space_commit(bitmaps, bitmaps_bytes, true) != BW_MAP_OK) {
        bw_os_space_uncommit(descs, descs_bytes);
        goto fail_memory;
    }
    return mem;
fail_memory:
    if (mem == BW_MAP_OK) bw_os_space_uncommit(memory, BW_SEGMENT_SIZE);
    return BW_MAP_NOMEM;
}

/* Carve the next segment of the arena: commit its metadata and its memory
 * (pages stay untouched, so no RSS yet), bind it to the node and install
 * its guard pages. Called with no pool lock held: those are 4 + 64 system
 * calls (and mbind on several nodes), each of which may wait for the mm
 * lock behind the page faults of every other thread, and the pool's other
 * users must not wait for all that: with many more threads than CPUs, a
 * pool lock held across them stalled every thread's refill (measured in
 * tests/stress/test_oversubscribed.c's commit).
 * The arena lock covers only the index and the commits, which must
 * complete in address order before arena_size is published; the segment
 * belongs to the caller until it pushes it into a pool. A fork while a
 * thread is between the two leaves the child a carved segment in no pool:
 * 4 MiB of address space it never uses, nothing worse. */
static bw_segment_t *bw_segment_carve(unsigned node) {
    bw_lock(&bw_locks.arena);
    size_t index;
    bw_map_t committed;
    do { /* a segment someone else holds is skipped (lazy space only) */
        index = bw_segments_carved;
        committed = index < BW_SEGMENT_COUNT ? bw_segment_commit(index) : BW_MAP_NOMEM;
        if (committed == BW_MAP_NOMEM) {
            bw_unlock(&bw_locks.arena);
            /* Not one small block can be had: say why, once (os.c). */
            if (index == 0) bw_os_report_no_space("cannot map its first segment");
            return NULL;
        }
        __atomic_store_n(&bw_segments_carved, index + 1, __ATOMIC_RELAXED); /* stats read it */
        /* Descriptors of the new segment read as zero (fresh commit): a
         * free into it before it is formatted is an invalid free, never a
         * crash. A skipped segment stays so. */
        __atomic_store_n(&bw_layout.arena_size, (uintptr_t)(index + 1) << BW_SEGMENT_SHIFT,
                         __ATOMIC_RELEASE);
        __atomic_store_n(&bw_layout.arena_granules,
                         (uintptr_t)(index + 1) << (BW_SEGMENT_SHIFT - 4), __ATOMIC_RELEASE);
    } while (committed != BW_MAP_OK);
    bw_unlock(&bw_locks.arena);
    size_t first_slab = index * BW_SLABS_PER_SEGMENT;
    void *memory = (void *)(bw_layout.arena_base + (index << BW_SEGMENT_SHIFT));

    bw_os_bind_node(memory, BW_SEGMENT_SIZE, node);
#if BW_SLAB_GUARD
    /* The last page of every slab is a guard (invariant 5). With
     * MADV_GUARD_INSTALL this costs no VMA; the guards survive the purge's
     * MADV_DONTNEED. */
    for (unsigned i = 0; i < BW_SLABS_PER_SEGMENT; i++) {
        char *guard = (char *)memory + ((size_t)(i + 1) << BW_SLAB_SHIFT) - BW_PAGE_SIZE;
        if (!bw_os_guard(guard, BW_PAGE_SIZE)) bw_fatal_os("guard page", 12);
    }
#endif
    bw_segment_t *seg = &bw_layout.segments[index];
    memset(seg, 0, sizeof *seg);
    seg->node = node;
    seg->free_slots = bw_bits_below(BW_SLABS_PER_SEGMENT);
    for (unsigned i = 0; i < BW_SLABS_PER_SEGMENT; i++) {
        bw_slab_t *slab = &bw_layout.slabs[first_slab + i];
        memset(slab, 0, sizeof *slab);
        slab->node = (uint8_t)node;
        slab->state = BW_SLAB_UNUSED;
    }
    return seg;
}

/* Start bits of the runs of `slots` free slots (a power of two) that begin
 * at a multiple of `slots`: a span is aligned to its size, so a block's
 * span starts at the block's address rounded down. */
static uint64_t bw_aligned_runs(uint64_t free, unsigned slots) {
    uint64_t runs = free;
    for (unsigned width = 1; width < slots; width *= 2) runs &= runs >> width;
    uint64_t starts = 0;
    for (unsigned i = 0; i < BW_SLABS_PER_SEGMENT; i += slots) starts |= 1ull << i;
    return runs & starts;
}

/* Take `slots` free slab slots in a row (1, or 2 to 16 for a span) from the
 * node's pool, carving a segment if needed. Prefers slots still committed
 * (no page faults on reuse). Looks at a few of the pool's segments for a
 * free run before carving a new one. The carve runs outside the pool lock
 * (bw_segment_carve says why); the new segment joins the pool at the head
 * of its partial list, where the search that follows finds it first. Two
 * threads that find the pool empty at once both carve, and the second
 * segment waits in the pool for later refills. */
#if BW_SLAB_GUARD
/* What formatting the run of `slots` slots at `first` for a class of
 * `block_size` bytes costs (bw_slab_format), lowest first: a run whose
 * memory was purged (page faults for every page touched again) weighs
 * most, then each guard page that must be removed (inside the span) or
 * installed (at its end), one system call each, then a run last formatted
 * for another class (its fresh chunks are zeroed). A span of a class that
 * keeps releasing and taking back spans of one shape costs nothing. */
static unsigned bw_run_cost(const bw_slab_t *first, unsigned slots, bool dirty, uint32_t block_size,
                            uint64_t free_slots, unsigned slot) {
    unsigned cost = dirty ? 0 : 64;
    /* A run cut out of a larger free aligned block breaks it up (buddy-style
     * best fit): 3 per doubling that would have been free whole, more than
     * a system call. Without it, single slots went to wherever their class
     * was last formatted, scattered over every segment, and spans found no
     * aligned run: test_thread_churn carved 13-17 segments instead of <= 8. */
    for (unsigned width = slots * 2; width <= BW_SLABS_PER_SEGMENT; width *= 2) {
        unsigned start = slot & ~(width - 1);
        uint64_t mask = (width >= 64 ? ~0ull : (1ull << width) - 1) << start;
        if ((free_slots & mask) != mask) break;
        cost += 3;
    }
    for (unsigned i = 0; i + 1 < slots; i++) cost += first[i].unguarded ? 0 : 2;
    cost += first[slots - 1].unguarded ? 2 : 0;
    return cost + (first->block_size == block_size && first->head_back == 0 ? 0 : 1);
}
#endif

/* Pool lock held: the cheapest free run of `slots` aligned slots in the
 * first few of the pool's segments that have one (*seg_out, its first slot
 * returned), or -1. Without guard pages the first segment with a run
 * serves, its committed runs first. */
static int bw_pool_find_run(bw_node_pool_t *pool, unsigned slots, uint32_t block_size,
                            bw_segment_t **seg_out) {
    int best = -1;
#if BW_SLAB_GUARD
    unsigned best_cost = UINT32_MAX;
#endif
    bw_segment_t *seg = pool->partial;
    for (int looked = 0; seg && looked < 8; seg = seg->next, looked++) {
        uint64_t runs = bw_aligned_runs(seg->free_slots, slots);
        if (!runs) continue;
        uint64_t dirty_runs = runs & bw_aligned_runs(seg->free_slots & seg->dirty_slots, slots);
#if BW_SLAB_GUARD
        size_t first_slab = (size_t)(seg - bw_layout.segments) * BW_SLABS_PER_SEGMENT;
        for (uint64_t r = runs; r; r &= r - 1) {
            unsigned slot = (unsigned)__builtin_ctzll(r);
            unsigned cost =
                bw_run_cost(&bw_layout.slabs[first_slab + slot], slots, (dirty_runs >> slot) & 1,
                            block_size, seg->free_slots, slot);
            if (cost < best_cost) {
                best_cost = cost;
                best = (int)slot;
                *seg_out = seg;
                if (cost == 0) return best;
            }
        }
        if (best_cost <= 1) return best; /* no system call, no fault: look no further */
#else
        (void)block_size;
        *seg_out = seg;
        return __builtin_ctzll(dirty_runs ? dirty_runs : runs);
#endif
    }
    return best;
}

bw_slab_t *bw_slab_span_acquire(unsigned node, unsigned slots, uint32_t block_size) {
    unsigned pool_index = bw_pool_index_for_node(node);
    bw_node_pool_t *pool = &bw_pools[pool_index];
    bw_segment_t *fresh = NULL, *seg = NULL;
    int found;
    for (;;) {
        bw_lock(bw_pool_lock(pool));
        if (fresh) bw_pool_push(pool, fresh);
        found = bw_pool_find_run(pool, slots, block_size, &seg);
        if (found >= 0) break;
        bw_unlock(bw_pool_lock(pool));
        fresh = bw_segment_carve(pool_index);
        if (!fresh) return NULL;
    }
    unsigned slot = (unsigned)found;
    uint64_t bits = (slots >= 64 ? ~0ull : (1ull << slots) - 1) << slot;
    seg->free_slots &= ~bits;
    pool->dirty_slots -= (size_t)__builtin_popcountll(seg->dirty_slots & bits);
    seg->dirty_slots &= ~bits;
    if (seg->free_slots == 0) bw_pool_remove(pool, seg);
    bw_unlock(bw_pool_lock(pool));
    size_t seg_index = (size_t)(seg - bw_layout.segments);
    return &bw_layout.slabs[seg_index * BW_SLABS_PER_SEGMENT + slot];
}

static size_t bw_pool_purge(bw_node_pool_t *pool, uint64_t now, uint64_t min_age);

/* Return a slab's slots to its segment's pool. Their memory stays
 * committed until the purge delay has passed. */
void bw_slab_slot_release(bw_slab_t *slab) {
    size_t slab_index = bw_slab_index(slab);
    size_t seg_index = slab_index / BW_SLABS_PER_SEGMENT;
    bw_segment_t *seg = &bw_layout.segments[seg_index];
    bw_node_pool_t *pool = &bw_pools[bw_pool_index_for_node(seg->node)];
    uint64_t now = bw_os_now_ms();
    unsigned slots = slab->size_class ? bw_class_span_slots(slab->size_class) : 1;
    uint64_t bits = ((1ull << slots) - 1) << (slab_index % BW_SLABS_PER_SEGMENT);

    /* A span gave up the guard pages between its slots: they come back
     * when a format makes one of those pages a slab's end (bw_slab_format),
     * not here, so a span released and taken back makes no system call. */
    /* block_size and the bitmaps stay until the slot is formatted again: a
     * free into the slot (owner NULL: the checked remote path) finds every
     * block not allocated, and the "handed out" bits tell a block freed
     * before (double free) from a wild pointer (invalid free). Tails keep
     * head_back for the same reason. */
    slab->size_class = 0;
    slab->nblocks = 0;
    slab->limit = 0;
    slab->used = 0;
    slab->free = slab->local_free = NULL;
    atomic_store_explicit(&slab->owner, NULL, memory_order_release);
    for (unsigned i = 0; i < slots; i++) slab[i].freed_at_ms = now;

    bw_lock(bw_pool_lock(pool));
    for (unsigned i = 0; i < slots; i++) slab[i].state = BW_SLAB_DIRTY;
    seg->free_slots |= bits;
    pool->dirty_slots += (size_t)__builtin_popcountll(bits & ~seg->dirty_slots);
    seg->dirty_slots |= bits;
    if (!seg->in_pool_list) bw_pool_push(pool, seg);
    /* More than BW_PURGE_DIRTY_MAX free slots still committed: purge those
     * free for an eighth of the delay. Spans of several shapes released and
     * taken in turn leave runs no span of another shape fits: on
     * bench/realloc 65536 (medium blocks grown by realloc, default) they
     * held 8-10 MiB of the 27 MiB peak. */
    uint64_t min_age =
        pool->dirty_slots > BW_PURGE_DIRTY_MAX ? BW_PURGE_DELAY_MS / 8 : BW_PURGE_DELAY_MS;
    bool purge_due = now - pool->last_purge_ms >= min_age;
    if (purge_due) pool->last_purge_ms = now; /* one purge at a time is enough */
    bw_unlock(bw_pool_lock(pool));
    if (purge_due) bw_pool_purge(pool, now, min_age);
}

/* The purge decommits free slots whose delay has passed (all of them when
 * forced) with MADV_DONTNEED, one call per run of adjacent slots. The calls
 * are made without the pool lock (each waits for the mm lock behind the
 * process's page faults; bw_segment_carve): the slots leave the pool first,
 * so no refill can be handed one whose pages are being discarded, and come
 * back clean afterwards. Up to BW_PURGE_BATCH runs at a time. */
#define BW_PURGE_BATCH 32u

typedef struct {
    bw_segment_t *seg;
    uint64_t run; /* slot bits */
    bool clean;   /* the kernel took the pages back */
} bw_purge_run_t;

/* Pool lock held: take the runs free for at least min_age ms out of the
 * pool. */
static unsigned bw_pool_purge_take(bw_node_pool_t *pool, uint64_t now, uint64_t min_age,
                                   bw_purge_run_t *runs) {
    unsigned count = 0;
    if (pool->dirty_slots == 0) return 0;
    bw_segment_t *next;
    for (bw_segment_t *seg = pool->partial; seg && count < BW_PURGE_BATCH; seg = next) {
        next = seg->next; /* taking slots may take seg off the list */
        uint64_t dirty = seg->free_slots & seg->dirty_slots;
        if (!dirty) continue;
        size_t seg_index = (size_t)(seg - bw_layout.segments);
        const bw_slab_t *first = &bw_layout.slabs[seg_index * BW_SLABS_PER_SEGMENT];
        uint64_t ready = 0;
        for (uint64_t d = dirty; d; d &= d - 1) {
            unsigned slot = (unsigned)__builtin_ctzll(d);
            if (now - first[slot].freed_at_ms >= min_age) ready |= 1ull << slot;
        }
        while (ready && count < BW_PURGE_BATCH) {
            unsigned start = (unsigned)__builtin_ctzll(ready);
            unsigned end = start;
            while (end < 64 && (ready >> end) & 1) end++;
            uint64_t run = bw_bits_below(end) & ~bw_bits_below(start);
            ready &= ~run;
            seg->free_slots &= ~run;
            seg->dirty_slots &= ~run;
            pool->dirty_slots -= end - start;
            runs[count++] = (bw_purge_run_t){seg, run, false};
        }
        if (seg->free_slots == 0) bw_pool_remove(pool, seg);
    }
    return count;
}

/* Pool lock held: the purged runs come back, clean. Locked memory keeps
 * its pages (MADV_DONTNEED refused): such a run comes back dirty, so
 * bw_slab_format zeroes what it must, and the next purge tries again, a
 * delay later. */
static void bw_pool_purge_give(bw_node_pool_t *pool, const bw_purge_run_t *runs, unsigned count,
                               uint64_t now) {
    for (unsigned i = 0; i < count; i++) {
        bw_segment_t *seg = runs[i].seg;
        size_t seg_index = (size_t)(seg - bw_layout.segments);
        bw_slab_t *first = &bw_layout.slabs[seg_index * BW_SLABS_PER_SEGMENT];
        for (uint64_t r = runs[i].run; r; r &= r - 1) {
            bw_slab_t *slot = &first[__builtin_ctzll(r)];
            if (runs[i].clean)
                slot->state = BW_SLAB_UNUSED;
            else
                slot->freed_at_ms = now;
        }
        if (!runs[i].clean) {
            seg->dirty_slots |= runs[i].run;
            pool->dirty_slots += (size_t)__builtin_popcountll(runs[i].run);
        }
        seg->free_slots |= runs[i].run;
        if (!seg->in_pool_list) bw_pool_push(pool, seg);
    }
}

/* Called without the pool lock. Returns the bytes decommitted. */
static size_t bw_pool_purge(bw_node_pool_t *pool, uint64_t now, uint64_t min_age) {
    size_t purged = 0;
    for (;;) {
        bw_purge_run_t runs[BW_PURGE_BATCH];
        bw_lock(bw_pool_lock(pool));
        unsigned count = bw_pool_purge_take(pool, now, min_age, runs);
        bw_unlock(bw_pool_lock(pool));
        if (count == 0) return purged;
        bool refused = false;
        for (unsigned i = 0; i < count; i++) {
            size_t seg_index = (size_t)(runs[i].seg - bw_layout.segments);
            unsigned start = (unsigned)__builtin_ctzll(runs[i].run);
            size_t bytes = (size_t)__builtin_popcountll(runs[i].run) << BW_SLAB_SHIFT;
            runs[i].clean =
                bw_os_decommit((void *)(bw_layout.arena_base + (seg_index << BW_SEGMENT_SHIFT) +
                                        ((uintptr_t)start << BW_SLAB_SHIFT)),
                               bytes);
            if (runs[i].clean)
                purged += bytes;
            else
                refused = true;
        }
        bw_lock(bw_pool_lock(pool));
        bw_pool_purge_give(pool, runs, count, now);
        bw_unlock(bw_pool_lock(pool));
        /* A refusal (locked memory, a seccomp policy) comes back dirty, and
         * a forced purge would take it again in the next batch: stop, or a
         * locked process with more than a batch of free runs loops here for
         * ever (it did, once spans made runs many: test_mlockall). */
        if (count < BW_PURGE_BATCH || refused) return purged;
    }
}

size_t bw_segments_purge(bool force) {
    size_t purged = 0;
    uint64_t now = bw_os_now_ms();
    for (unsigned i = 0; i < bw_topology.node_count && i < BW_MAX_NUMA_NODES; i++) {
        bw_node_pool_t *pool = &bw_pools[i];
        bw_lock(bw_pool_lock(pool));
        bool due = force || now - pool->last_purge_ms >= BW_PURGE_DELAY_MS;
        if (due) pool->last_purge_ms = now;
        bw_unlock(bw_pool_lock(pool));
        if (due) purged += bw_pool_purge(pool, now, force ? 0 : BW_PURGE_DELAY_MS);
    }
    return purged;
}

/* Read without the arena lock (statistics, maybe from a signal handler). */
size_t bw_segments_in_use(void) {
    return __atomic_load_n(&bw_segments_carved, __ATOMIC_RELAXED);
}

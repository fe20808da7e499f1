/* heap.c — one heap per thread (DESIGN.md layer "heap"): the bins, the
 * refill slow path, collection of remote frees, and abandonment at thread
 * exit with adoption by other threads.
 *
 * A bin holds the slabs the fast path allocates from (its "ways": one, or
 * several picked at random for placement entropy), a list of other slabs that may have free blocks
 * ("avail") and a list of slabs that had none when last looked at ("full"). A thread freeing into
 * one of its own full slabs moves it back to avail; a thread freeing into another thread's slab
 * pushes the block on the slab's remote list and the slab on the owner's remote-slab stack, which
 * the owner drains in its slow path.
 *
 * How many ways a class has open, and the aging scan's closing of them, are
 * in ways.c; the quarantine freed blocks wait in is quarantine.c. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "block.h"
#include "bw_internal.h"
#include "foreign.h"
#include "quarantine.h"
#include "ways.h"

/* Until a thread allocates, its heap is this empty one: every way of every
 * bin is the sentinel slab, whose free list is empty, so the first malloc falls
 * to the slow path without an extra branch on the fast path. */
bw_slab_t bw_sentinel_slab;
bw_heap_t bw_empty_heap = {
    .ways = {[0 ... BW_WAYS_TOTAL - 1] = &bw_sentinel_slab},
    .rng = {.pos = BW_RNG_WORDS}, /* no keystream: the fast path cannot draw from it */
};
__thread bw_heap_t *bw_tls_heap = &bw_empty_heap;

/* ---------------------------------------------------------------- heap pool
 * Heaps live in their own reservation (metadata, never next to user memory)
 * and are never unmapped, so a stale pointer to a dead heap still points at
 * a heap-shaped object; dead heaps are recycled LIFO. */
#define BW_MAX_HEAPS         65536u
#define BW_HEAP_COMMIT_CHUNK (64u * 1024u)

static char *bw_heap_region;       /* reservation start */
static size_t bw_heap_region_used; /* bytes handed out */
static size_t bw_heap_region_committed;
/* End of the first commit chunk another mapping held (lazy space), 0 if
 * none: statistics read no heap past its start. */
static size_t bw_heap_region_skip;
static bw_heap_t *bw_heap_free_list;
static size_t bw_heaps_live; /* changed under the pool lock, read without (bw_heap_stats) */

/* Abandoned slabs per class: LIFO stacks under one lock (slow path only). */
static bw_slab_t *bw_abandoned[BW_CLASS_COUNT];
static size_t bw_abandoned_count; /* changed under the lock, read without (bw_heap_stats) */

static uint64_t bw_heaps_created; /* stream number for each heap's RNG */

static pthread_key_t bw_thread_key;
static bool bw_thread_key_ok;

#define BW_HEAP_REGION_SIZE ((size_t)BW_MAX_HEAPS * BW_HEAP_STRIDE)

/* The bytes of the heap pool's piece of the metadata zone (init.c). */
size_t bw_heaps_region_bytes(void) {
    return BW_HEAP_REGION_SIZE;
}

/* region: bw_heaps_region_bytes() of the metadata zone, reserved, or only
 * placed in lazy space (os.c), where each commit chunk is mapped when the
 * pool first needs it. */
void bw_heaps_init(void *region) {
    bw_heap_region = region;
    /* pthread_key_create takes a slot in a static table: no allocation. */
    bw_thread_key_ok = pthread_key_create(&bw_thread_key, bw_heap_thread_exit) == 0;
}

/* Start-up failed after bw_heaps_init: no heap was made yet. */
void bw_heaps_release(void) {
    if (bw_thread_key_ok) pthread_key_delete(bw_thread_key);
    bw_thread_key_ok = false;
    bw_heap_region = NULL; /* the zone goes with the rest (init.c) */
}

static bw_heap_t *bw_heap_pool_take(void) {
    bw_lock(&bw_locks.heap_pool);
    bw_heap_t *heap = bw_heap_free_list;
    if (heap) {
        bw_heap_free_list = heap->next_free;
    } else {
        while (bw_heap_region_used + BW_HEAP_STRIDE > bw_heap_region_committed &&
               bw_heap_region_committed < BW_HEAP_REGION_SIZE) {
            bw_map_t got = bw_os_space_commit(bw_heap_region + bw_heap_region_committed,
                                              BW_HEAP_COMMIT_CHUNK, true);
            if (got == BW_MAP_NOMEM) break;
            bw_heap_region_committed += BW_HEAP_COMMIT_CHUNK;
            /* Lazy space: a chunk another mapping holds is skipped, and so
             * is the heap that would have reached into it. */
            if (got == BW_MAP_TAKEN) {
                if (bw_heap_region_skip == 0)
                    __atomic_store_n(&bw_heap_region_skip, bw_heap_region_committed,
                                     __ATOMIC_RELAXED);
                bw_heap_region_used = bw_heap_region_committed;
            }
        }
        if (bw_heap_region_used + BW_HEAP_STRIDE <= bw_heap_region_committed &&
            bw_heap_region_used + BW_HEAP_STRIDE <= BW_HEAP_REGION_SIZE) {
            heap = (bw_heap_t *)(void *)(bw_heap_region + bw_heap_region_used);
            bw_heap_region_used += BW_HEAP_STRIDE;
            atomic_store(&heap->remote_slabs, NULL);
        }
    }
    if (heap) {
        __atomic_store_n(&bw_heaps_live, bw_heaps_live + 1, __ATOMIC_RELAXED);
        heap->rng.stream = bw_heaps_created++;
    }
    bw_unlock(&bw_locks.heap_pool);
    return heap;
}

static void bw_heap_pool_give(bw_heap_t *heap) {
    bw_lock(&bw_locks.heap_pool);
    heap->next_free = bw_heap_free_list;
    bw_heap_free_list = heap;
    __atomic_store_n(&bw_heaps_live, bw_heaps_live - 1, __ATOMIC_RELAXED);
    bw_unlock(&bw_locks.heap_pool);
}

/* ---------------------------------------------------------------- bin lists */
static void bw_list_push(bw_slab_t **head, bw_slab_t *slab) {
    slab->prev = NULL;
    slab->next = *head;
    if (*head) (*head)->prev = slab;
    *head = slab;
}

static void bw_list_remove(bw_slab_t **head, bw_slab_t *slab) {
    if (slab->prev)
        slab->prev->next = slab->next;
    else
        *head = slab->next;
    if (slab->next) slab->next->prev = slab->prev;
    slab->next = slab->prev = NULL;
}

/* The bin lists and their notify thresholds (bw_slab_list in slab.h).
 * The full list keeps its tail, so refill can look at the slabs that have
 * been full longest (and so had the most time to collect frees). */
static void bw_bin_put_full(bw_bin_t *bin, bw_slab_t *slab) {
    slab->list = BW_LIST_FULL;
    slab->notify_at = (int16_t)(slab->nblocks - bw_refill_batch(slab));
    if (!bin->full) bin->full_tail = slab;
    bw_list_push(&bin->full, slab);
}

static void bw_bin_remove_full(bw_bin_t *bin, bw_slab_t *slab) {
    if (bin->full_tail == slab) bin->full_tail = slab->prev;
    bw_list_remove(&bin->full, slab);
}

void bw_bin_put_avail(bw_bin_t *bin, bw_slab_t *slab) {
    slab->list = BW_LIST_AVAIL;
    slab->notify_at = 0;
    bw_list_push(&bin->avail, slab);
}

/* Sealed: inherited across fork, only freed into (bw_slab_list). Like a
 * way, it is not retired by the free that empties it but by the aging scan
 * that finds it empty twice (bw_heap_age_ways): a slot released at once is
 * soon another class's, and a stale free of one of its blocks would then be
 * named an invalid free rather than the double free it is. */
static void bw_heap_seal(bw_heap_t *heap, bw_slab_t *slab) {
    slab->list = BW_LIST_SEALED;
    slab->notify_at = -1;
    slab->idle = 0;
    bw_list_push(&heap->sealed, slab);
}

static void bw_bin_unlink(bw_heap_t *heap, bw_bin_t *bin, bw_slab_t *slab) {
    if (slab->list == BW_LIST_WAY)
        heap->ways[slab->way] = &bw_sentinel_slab;
    else if (slab->list == BW_LIST_FULL)
        bw_bin_remove_full(bin, slab);
    else if (slab->list == BW_LIST_SEALED)
        bw_list_remove(&heap->sealed, slab);
    else
        bw_list_remove(&bin->avail, slab);
}

/* The slab holds no live block: give its slot back to the segment pool. */
static void bw_heap_retire(bw_heap_t *heap, bw_slab_t *slab) {
    bw_bin_unlink(heap, &heap->bins[slab->size_class], slab);
    bw_slab_slot_release(slab);
}

/* After frees into a slab that is not a way: retire it when empty, move it
 * from full to avail once a refill's worth of it is free. Ways stay (the
 * aging scan retires idle ones). */
void bw_heap_settle(bw_heap_t *heap, bw_slab_t *slab) {
    if (slab->list == BW_LIST_WAY || slab->list == BW_LIST_SEALED) return;
    bw_bin_t *bin = &heap->bins[slab->size_class];
    if (slab->used <= 0) {
        bw_heap_retire(heap, slab);
    } else if (slab->list == BW_LIST_FULL && slab->nblocks - slab->used >= bw_refill_batch(slab)) {
        bw_bin_remove_full(bin, slab);
        bw_bin_put_avail(bin, slab);
    }
}

/* Called by free() when the owner's free reached the slab's notify_at. */
void bw_free_slow_local(bw_heap_t *heap, bw_slab_t *slab) {
    bw_heap_settle(heap, slab);
}

/* Collect the remote frees of every slab other threads have queued on this
 * heap. A slab that is no longer ours (its old owner died and it was
 * adopted) is passed on to its current owner. */
static void bw_heap_drain_remote(bw_heap_t *heap) {
    if (!atomic_load_explicit(&heap->remote_slabs, memory_order_relaxed)) return;
    bw_slab_t *slab = atomic_exchange_explicit(&heap->remote_slabs, NULL, memory_order_acquire);
    while (slab) {
        bw_slab_t *next = atomic_load_explicit(&slab->remote_next, memory_order_relaxed);
        atomic_store_explicit(&slab->queued, 0, memory_order_release);
        bw_heap_t *owner = atomic_load_explicit(&slab->owner, memory_order_acquire);
        if (owner == heap) {
            bw_slab_collect_remote(slab);
            bw_heap_settle(heap, slab);
        } else if (owner && !atomic_exchange_explicit(&slab->queued, 1, memory_order_acq_rel)) {
            bw_slab_t *top = atomic_load_explicit(&owner->remote_slabs, memory_order_relaxed);
            do {
                atomic_store_explicit(&slab->remote_next, top, memory_order_relaxed);
            } while (!atomic_compare_exchange_weak_explicit(
                &owner->remote_slabs, &top, slab, memory_order_release, memory_order_relaxed));
        }
        slab = next;
    }
}

/* ---------------------------------------------------------------- abandonment */
static void bw_abandoned_push(bw_slab_t *slab) {
    bw_lock(&bw_locks.abandoned);
    slab->next = bw_abandoned[slab->size_class];
    slab->prev = NULL;
    bw_abandoned[slab->size_class] = slab;
    __atomic_store_n(&bw_abandoned_count, bw_abandoned_count + 1, __ATOMIC_RELAXED);
    bw_unlock(&bw_locks.abandoned);
}

/* NUMA: whether a slab's memory is on `node` (a pool index, as
 * bw_heap_node_now returns; BW_ANY_NODE takes every slab). On one node
 * every slab is local. */
#define BW_ANY_NODE 0xffffffffu
static bool bw_slab_on_node(const bw_slab_t *slab, unsigned node) {
    return node == BW_ANY_NODE || bw_topology.node_count <= 1 || slab->node == node;
}

/* The node of the CPU the thread runs on now (getcpu through the vDSO):
 * asked at every refill, not cached at heap creation, so that a thread the
 * scheduler moved to another node fills its ways from that node's memory
 * from then on instead of its first node's (issue 12: 29% of a migrated
 * thread's small pages stayed remote). */
static unsigned bw_heap_node_now(bw_heap_t *heap) {
    if (bw_topology.node_count > 1 && bw_topology.current_node)
        heap->node = bw_pool_index_for_node(bw_topology.current_node());
    return heap->node;
}

/* An abandoned slab of the class on `node` (the first few of the list are
 * looked at; a miss only costs a fresh slot on the right node). */
#define BW_ADOPT_LOOK 8
static bw_slab_t *bw_abandoned_pop(unsigned size_class, unsigned node) {
    if (!bw_abandoned[size_class]) /* racy peek: a miss only costs a fresh slab */
        return NULL;
    bw_lock(&bw_locks.abandoned);
    bw_slab_t **link = &bw_abandoned[size_class];
    for (int looked = 0; *link && looked < BW_ADOPT_LOOK; looked++) {
        if (bw_slab_on_node(*link, node)) break;
        link = &(*link)->next;
    }
    bw_slab_t *slab = *link;
    if (slab && bw_slab_on_node(slab, node)) {
        *link = slab->next;
        slab->next = NULL;
        __atomic_store_n(&bw_abandoned_count, bw_abandoned_count - 1, __ATOMIC_RELAXED);
    } else {
        slab = NULL;
    }
    bw_unlock(&bw_locks.abandoned);
    return slab;
}

/* Abandoned slabs whose blocks were all freed by other threads return
 * their slot; looks at up to `max` slabs. Returns how many were released. */
size_t bw_abandoned_sweep(size_t max) {
    size_t released = 0, looked = 0;
    for (unsigned c = 1; c < BW_CLASS_COUNT && looked < max; c++) {
        bw_slab_t *keep = NULL;
        bw_slab_t *slab;
        while (looked < max && (slab = bw_abandoned_pop(c, BW_ANY_NODE))) {
            looked++;
            bw_slab_collect_remote(slab);
            if (slab->used == 0) {
                bw_slab_slot_release(slab);
                released++;
            } else {
                slab->next = keep;
                keep = slab;
            }
        }
        while (keep) {
            bw_slab_t *next = keep->next;
            bw_abandoned_push(keep);
            keep = next;
        }
    }
    return released;
}

static void bw_abandon_slab(bw_slab_t *slab) {
    atomic_store_explicit(&slab->owner, NULL, memory_order_release);
    slab->list = BW_LIST_WAY;
    slab->notify_at = -1;
    slab->next = slab->prev = NULL;
    bw_slab_collect_remote(slab);
    if (slab->used == 0) {
        bw_slab_slot_release(slab);
    } else {
        slab->state = BW_SLAB_ABANDONED;
        bw_abandoned_push(slab);
    }
}

/* Thread exit: every slab becomes adoptable (or is released when empty);
 * the heap returns to the pool. */
void bw_heap_abandon(bw_heap_t *heap) {
    bw_quarantine_flush(heap, "thread exit");
    bw_foreign_flush(heap);
    bw_heap_drain_remote(heap);
    while (heap->sealed) {
        bw_slab_t *slab = heap->sealed;
        heap->sealed = slab->next;
        bw_abandon_slab(slab);
    }
    for (unsigned w = 0; w < BW_WAYS_TOTAL; w++) {
        if (heap->ways[w] != &bw_sentinel_slab) bw_abandon_slab(heap->ways[w]);
        heap->ways[w] = &bw_sentinel_slab;
    }
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        bw_bin_t *bin = &heap->bins[c];
        while (bin->avail) {
            bw_slab_t *slab = bin->avail;
            bin->avail = slab->next;
            bw_abandon_slab(slab);
        }
        while (bin->full) {
            bw_slab_t *slab = bin->full;
            bin->full = slab->next;
            bw_abandon_slab(slab);
        }
        bin->full_tail = NULL;
    }
    /* Slabs queued here between the first drain and the owner change only
     * need their flag cleared (their owner is now NULL or another heap). */
    bw_heap_drain_remote(heap);
    heap->live = 0;
    bw_heap_pool_give(heap);
}

/* An abandoned slab of the class for this heap, NULL if none. One a forked
 * child inherited (an earlier fork generation: its keys and free-list order
 * are its parent's) is taken over sealed, never allocated from. */
static bw_slab_t *bw_heap_adopt(bw_heap_t *heap, unsigned size_class, unsigned node) {
    unsigned generation = atomic_load_explicit(&bw_rng_generation, memory_order_relaxed);
    bw_slab_t *slab;
    while ((slab = bw_abandoned_pop(size_class, node))) {
        slab->state = BW_SLAB_ACTIVE;
        slab->list = BW_LIST_WAY; /* not on a list yet: refill installs it or puts it on one */
        slab->notify_at = -1;
        atomic_store_explicit(&slab->owner, heap, memory_order_release);
#if BW_RANDOM_WAYS
        heap->bins[size_class].live += slab->used; /* its blocks are ours to count now */
#endif
        bw_slab_collect_remote(slab);
        if (slab->gen == generation) return slab;
        bw_heap_seal(heap, slab);
    }
    return NULL;
}

/* ---------------------------------------------------------------- thread heaps */
void bw_heap_thread_exit(void *arg) {
    bw_heap_t *heap = arg;
    if (heap && heap == bw_tls_heap) {
        BW_META_OPEN(); /* called by libc, not through an entry point */
        bw_tls_heap = &bw_empty_heap;
        bw_heap_abandon(heap);
        BW_META_CLOSE();
    }
}

/* The calling thread's heap, created on first use. Returns NULL only if no
 * heap can be had (address space exhausted). */
bw_heap_t *bw_heap_get_or_create(void) {
    bw_heap_t *heap = bw_tls_heap;
    if (bw_likely(heap != &bw_empty_heap)) return heap;
    heap = bw_heap_pool_take();
    if (!heap) return NULL;
    for (unsigned w = 0; w < BW_WAYS_TOTAL; w++) heap->ways[w] = &bw_sentinel_slab;
    for (unsigned c = 0; c < BW_CLASS_COUNT; c++) {
        heap->bins[c].avail = heap->bins[c].full = heap->bins[c].full_tail = NULL;
        heap->bins[c].way_base = BW_RANDOM_WAYS ? bw_class_way_base[c] : c;
        heap->bins[c].way_count = 1;
        heap->bins[c].live = 0;
#if BW_RANDOM_WAYS
        bw_bin_set_open_at(&heap->bins[c], c);
#else
        heap->bins[c].open_at = INT32_MAX; /* one way per class, never more */
#endif
    }
    heap->way_random = 0;
    heap->way_draws = 0;
    heap->last_age_ms = 0;
    bw_rng_seed(&heap->rng, heap->rng.stream);
#if BW_QUARANTINE_SLOTS
    heap->quarantine_count = 0;
    heap->quarantine_bytes = 0;
    heap->quarantine_epoch = 0;
#endif
    heap->node = 0;
    heap->ways_node = bw_heap_node_now(heap);
    heap->live = 1;
    heap->slow_calls = 0;
    heap->sealed = NULL;
    heap->next_free = NULL;
    bw_tls_heap = heap;
    /* May allocate (a second-level key block for keys >= 32): our heap is
     * already in place, so the nested malloc succeeds. */
    if (bw_thread_key_ok) pthread_setspecific(bw_thread_key, heap);
    bw_heap_drain_remote(heap); /* stale entries from the heap's previous life */
    return heap;
}

/* Give a way of a bin a slab with at least one free block: the way's slab
 * after collecting its remote frees, another of the bin's slabs, an
 * abandoned slab of the class, or a fresh slot. NULL when memory is
 * exhausted. */
static bw_slab_t *bw_heap_install(bw_heap_t *heap, unsigned way, bw_slab_t *slab) {
    slab->list = BW_LIST_WAY;
    slab->notify_at = -1;
    slab->idle = 0;
    slab->way = (uint16_t)way;
    heap->ways[way] = slab;
    return slab;
}

/* Way slabs are never retired by free (a malloc/free loop would otherwise
 * acquire and release a slab each time), nor are sealed ones (bw_heap_seal);
 * instead, every BW_PURGE_DELAY_MS the slow path retires those found empty
 * by two scans in a row, so an
 * idle heap's memory returns to the segment pools and the purge. The slow
 * path runs regularly even in a malloc/free loop: frees go to the slab's
 * local_free, so its `free` list runs dry. */
static void bw_heap_age_ways(bw_heap_t *heap) {
    uint64_t now = bw_os_now_ms();
    if (now - heap->last_age_ms < BW_PURGE_DELAY_MS) return;
    heap->last_age_ms = now;
    bw_quarantine_age(heap);
    bw_foreign_flush(heap); /* an idle heap pins no other heap's slab */
    bw_ways_close_unneeded(heap);
    for (bw_slab_t *slab = heap->sealed, *next; slab; slab = next) {
        next = slab->next;
        bw_slab_collect_remote(slab);
        if (slab->used != 0)
            slab->idle = 0;
        else if (!slab->idle)
            slab->idle = 1;
        else
            bw_heap_retire(heap, slab);
    }
    bw_ways_retire_idle(heap);
    /* Slots other heaps (or this one, in a burst of frees) released stay
     * committed until a purge finds their delay expired; releases may have
     * stopped, so the scan runs it too. */
    bw_segments_purge(false);
}

/* The first of the bin's slabs on `*list` that has a block to hand out,
 * taken off the list; NULL if none has. */
static bw_slab_t *bw_bin_take_ready(bw_heap_t *heap, bw_bin_t *bin, bw_slab_t *list) {
    for (bw_slab_t *slab = list, *next; slab; slab = next) {
        next = slab->next;
        bw_slab_collect_remote(slab);
        if (bw_slab_ready(slab, heap)) {
            bw_bin_unlink(heap, bin, slab);
            return slab;
        }
    }
    return NULL;
}

/* No slot is left for a fresh slab (the arena is exhausted): before malloc
 * fails, every block this heap could hand out is looked for, not only the
 * randomly chosen way's (issue: a small arena returned NULL, then succeeded
 * 883 times in the next 100,000 malloc(48)). The quarantine gives its
 * blocks back, remote frees are collected, every way, avail and full slab
 * of the class is tried, abandoned slabs are swept and adopted, and the
 * other nodes' pools are asked for a slot. */
static BW_NOINLINE bw_slab_t *bw_heap_refill_exhausted(bw_heap_t *heap, unsigned size_class,
                                                       unsigned way, unsigned node) {
    bw_bin_t *bin = &heap->bins[size_class];
    bw_quarantine_flush(heap, "malloc");
    bw_foreign_flush(heap);
    bw_heap_drain_remote(heap);
    for (unsigned w = bin->way_base; w < bin->way_base + bw_class_ways[size_class]; w++) {
        bw_slab_t *slab = heap->ways[w];
        if (slab == &bw_sentinel_slab) continue;
        bw_slab_collect_remote(slab);
        if (bw_slab_ready(slab, heap)) return slab; /* stays in its own way */
    }
    bw_slab_t *slab = bw_bin_take_ready(heap, bin, bin->avail);
    if (!slab) slab = bw_bin_take_ready(heap, bin, bin->full);
    if (slab) return bw_heap_install(heap, way, slab);
    bw_abandoned_sweep((size_t)-1);
    while ((slab = bw_heap_adopt(heap, size_class, BW_ANY_NODE))) {
        if (bw_slab_ready(slab, heap)) return bw_heap_install(heap, way, slab);
        bw_bin_put_full(bin, slab);
    }
    unsigned slots = bw_class_span_slots(size_class);
    for (unsigned n = 0; n < bw_topology.node_count && !slab; n++)
        slab = bw_slab_span_acquire(n == 0 ? node : (n == node ? 0 : n), slots,
                                    bw_class_size[size_class]);
    if (!slab) return NULL;
    bw_slab_format(slab, size_class, heap);
    return bw_heap_install(heap, way, slab);
}

static bw_slab_t *bw_heap_refill(bw_heap_t *heap, unsigned size_class, unsigned way) {
    bw_bin_t *bin = &heap->bins[size_class];
    bw_heap_drain_remote(heap);

    unsigned node = bw_heap_node_now(heap);

    /* Every slab taken below is on the node the thread runs on now; the
     * others wait on the bin's lists for a refill made from their node, or
     * for the arena to run out (bw_heap_refill_exhausted takes any). */
    bw_slab_t *slab = heap->ways[way];
    if (slab != &bw_sentinel_slab) {
        bw_slab_collect_remote(slab);
        bool local = bw_slab_on_node(slab, node);
        if (local && bw_slab_ready(slab, heap)) return slab;
        heap->ways[way] = &bw_sentinel_slab;
        bw_bin_put_full(bin, slab);
        if (!local) bw_heap_settle(heap, slab); /* to avail if it has blocks, or retired */
    }
    bw_slab_t *next;
    int remote_seen = 0;
    for (slab = bin->avail; slab && remote_seen < BW_ADOPT_LOOK; slab = next) {
        next = slab->next;
        if (!bw_slab_on_node(slab, node)) {
            remote_seen++;
            continue;
        }
        bw_list_remove(&bin->avail, slab);
        bw_slab_collect_remote(slab);
        if (bw_slab_ready(slab, heap)) return bw_heap_install(heap, way, slab);
        bw_bin_put_full(bin, slab);
    }
    for (int tries = 0; tries < 4 && (slab = bw_heap_adopt(heap, size_class, node)); tries++) {
        if (bw_slab_ready(slab, heap)) return bw_heap_install(heap, way, slab);
        bw_bin_put_full(bin, slab);
    }
    /* Before a fresh slot: the slabs full longest may have had frees that
     * never reached a refill's worth (a class that is mostly allocated, not
     * freed). Look at a few, oldest first, and take the one with the most
     * free blocks; the others go to the front. */
    bw_slab_t *best = NULL;
    for (int looked = 0; looked < 8 && bin->full_tail; looked++) {
        slab = bin->full_tail;
        bw_bin_remove_full(bin, slab);
        bw_slab_collect_remote(slab);
        if (!bw_slab_on_node(slab, node) || (best && slab->used >= best->used)) {
            bw_bin_put_full(bin, slab);
            bw_heap_settle(heap, slab); /* remote frees may have emptied it */
            continue;
        }
        if (best) {
            bw_bin_put_full(bin, best);
            bw_heap_settle(heap, best);
        }
        best = slab;
    }
    if (best) {
        if (bw_slab_ready(best, heap)) return bw_heap_install(heap, way, best);
        bw_bin_put_full(bin, best);
    }
    /* Periodically reclaim abandoned slabs of other classes that other
     * threads emptied, so thread churn cannot strand memory. */
    if ((heap->slow_calls & 63) == 0) bw_abandoned_sweep(16);
    slab = bw_slab_span_acquire(node, bw_class_span_slots(size_class), bw_class_size[size_class]);
    if (!slab) return bw_heap_refill_exhausted(heap, size_class, way, node);
    bw_slab_format(slab, size_class, heap);
    return bw_heap_install(heap, way, slab);
}

/* The thread runs on another node than at its last look: every way slab
 * of the old node leaves its way (to the bin's lists, as a refill makes one
 * leave), so the next blocks of every class come from the new node. Left in
 * place, the slabs open when the thread moved kept serving it until used
 * up: on a two-node VM (tests/vm/numa.sh) 42% of the pages of 2,100 blocks
 * of 64 B-128 KiB allocated after a move were still on the old node. One
 * getcpu (vDSO) per 16 slow calls. */
static void bw_heap_follow_node(bw_heap_t *heap) {
    /* Compared with the node of the last look here, not heap->node: a
     * refill after the move updates that one but only its own way (the
     * first version compared with it and missed moves half the time). */
    unsigned node = bw_heap_node_now(heap);
    if (node == heap->ways_node) return;
    heap->ways_node = node;
    bw_quarantine_unready(heap, "malloc");
    bw_foreign_flush(heap);
    for (unsigned w = 0; w < BW_WAYS_TOTAL; w++) {
        bw_slab_t *slab = heap->ways[w];
        if (slab == &bw_sentinel_slab || bw_slab_on_node(slab, node)) continue;
        heap->ways[w] = &bw_sentinel_slab;
        bw_bin_put_full(&heap->bins[slab->size_class], slab);
        bw_heap_settle(heap, slab);
    }
}

/* A block of the class from a random way, refilling it if needed, for a
 * request of `size` bytes. */
static void *bw_heap_alloc_class(bw_heap_t *heap, unsigned size_class, size_t size) {
    bw_bin_t *bin = &heap->bins[size_class];
    unsigned way = bin->way_base;
#if BW_QUARANTINE_SLOTS || BW_FOREIGN_SLOTS
    heap->ready_left = BW_READY_RUN;
#endif
    if ((++heap->slow_calls & 15) == 0) {
        if (bw_topology.node_count > 1) bw_heap_follow_node(heap);
        bw_heap_age_ways(heap); /* reads the (vDSO) clock once per 16 slow calls */
    }
#if BW_RANDOM_WAYS
    if (bin->live >= bin->open_at) bw_heap_fit_ways(heap, size_class);
    way += bw_rng_below(&heap->rng, bin->way_count);
    if (heap->way_draws == 0) { /* refill the fast path's random draws */
        heap->way_random = bw_rng_next(&heap->rng);
        heap->way_draws = 8;
    }
#endif
    bw_slab_t *slab = heap->ways[way];
    /* A way that ran dry with less than a refill's worth of blocks back
     * gives way to an avail slab, which has at least that many: under a
     * quarantine most blocks of the class's slabs wait there, the few that
     * leave it spread over every slab, and refilling the way with the one
     * or two that came back to it sent every fourth malloc of
     * bench/pairs 1024 (default) here. The way waits on the full list
     * until a batch is free (bw_heap_settle). */
    if (slab != &bw_sentinel_slab && !slab->free && bin->avail &&
        slab->nblocks - slab->used < bw_refill_batch(slab)) {
        heap->ways[way] = &bw_sentinel_slab;
        bw_bin_put_full(bin, slab);
        slab = &bw_sentinel_slab;
    }
    if (slab == &bw_sentinel_slab || !bw_slab_ready(slab, heap)) {
        slab = bw_heap_refill(heap, size_class, way);
        if (bw_unlikely(!slab)) return NULL;
    }
#if BW_RANDOM_WAYS
    bin->live++;
#endif
    return bw_slab_pop(slab, size);
}

/* Small allocation when the fast path missed; large ones go to large.c. */
void *bw_malloc_slow(size_t size, bool zero) {
    if (bw_unlikely(!bw_ensure_init())) {
        errno = ENOMEM;
        return NULL;
    }
    if (!bw_request_is_small(size)) return bw_large_alloc(size, 0, zero);
#if BW_ZERO_SIZE_FAULTS
    if (size == 0) {
        void *faulting = bw_zero_alloc();
        if (bw_likely(faulting != NULL)) return faulting;
        /* All 2^24 zero-size slots are live (zero_size.c): an ordinary block of
         * the smallest class, which free, free_sized(p, 0), realloc and
         * malloc_usable_size treat like any other, rather than ENOMEM. */
    }
#endif
    bw_heap_t *heap = bw_heap_get_or_create();
    if (bw_unlikely(!heap)) {
        errno = ENOMEM;
        return NULL;
    }
    void *block = bw_heap_alloc_class(heap, bw_request_class(size), size);
    if (bw_unlikely(!block)) {
        errno = ENOMEM;
        return NULL;
    }
    if (zero && size > BW_KNOWN_ZERO_BYTES) memset(block, 0, size);
    return block;
}

/* Small allocation of a specific class for `size` bytes (the memalign
 * family). */
void *bw_malloc_class(unsigned size_class, size_t size) {
    bw_heap_t *heap = bw_heap_get_or_create();
    if (bw_unlikely(!heap)) return NULL;
    return bw_heap_alloc_class(heap, size_class, size);
}

/* malloc_trim: release the calling thread's empty current slabs, collect
 * everything queued for it, and sweep abandoned slabs. */
size_t bw_heap_trim_current(void) {
    bw_heap_t *heap = bw_tls_heap;
    size_t released = 0;
    if (heap != &bw_empty_heap) {
        /* Quarantined blocks first: they may be the last live blocks of
         * abandoned slabs the sweep below can then release. */
        bw_quarantine_flush(heap, "malloc_trim");
        bw_foreign_flush(heap);
        bw_heap_drain_remote(heap);
        for (bw_slab_t *slab = heap->sealed, *next; slab; slab = next) {
            next = slab->next;
            bw_slab_collect_remote(slab);
            if (slab->used == 0) {
                bw_heap_retire(heap, slab);
                released++;
            }
        }
        for (unsigned w = 0; w < BW_WAYS_TOTAL; w++) {
            bw_slab_t *slab = heap->ways[w];
            if (slab == &bw_sentinel_slab) continue;
            bw_slab_collect_remote(slab);
            if (slab->used == 0) {
                heap->ways[w] = &bw_sentinel_slab;
                bw_slab_slot_release(slab);
                released++;
            }
        }
    }
    return released + bw_abandoned_sweep((size_t)-1);
}

/* Takes no lock (statistics may come from a signal handler that
 * interrupted the lock's holder): relaxed loads of counters stored whole. */
void bw_heap_stats(size_t *heaps_live, size_t *abandoned) {
    *heaps_live = __atomic_load_n(&bw_heaps_live, __ATOMIC_RELAXED);
    *abandoned = __atomic_load_n(&bw_abandoned_count, __ATOMIC_RELAXED);
}

/* The pool as statistics may read it without a lock (bw_quarantine_stats):
 * heaps are never unmapped, and the pool only grows, so every heap below its
 * high-water mark can be read, but for the rare heaps past a chunk someone
 * else's mapping held, left out. Returns the region (NULL before start-up)
 * and in *bytes how much of it holds heaps, BW_HEAP_STRIDE apart. */
const char *bw_heap_pool_readable(size_t *bytes) {
    char *region = __atomic_load_n(&bw_heap_region, __ATOMIC_RELAXED);
    size_t used = __atomic_load_n(&bw_heap_region_used, __ATOMIC_RELAXED);
    size_t skip = __atomic_load_n(&bw_heap_region_skip, __ATOMIC_RELAXED);
    if (skip && skip - BW_HEAP_COMMIT_CHUNK < used) used = skip - BW_HEAP_COMMIT_CHUNK;
    *bytes = used;
    return region;
}

/* In a forked child: the calling thread's heap (the child's only one) seals
 * every slab it holds. Their free lists are linked in an order its parent
 * drew, and their keys are its parent's: a sibling process forked from the
 * same parent would hand out the same addresses in the same order, and a
 * crash in one would teach an attacker about the others. Sealed slabs are
 * only freed into; each is formatted anew, with keys drawn from the child's
 * reseeded generator, once nothing in it is live. New blocks come from
 * fresh slabs, so they carry the child's secrets. This touches descriptors
 * only, never user memory: the pages the child shares with its parent stay
 * shared (no copy-on-write fault at fork). */
static void bw_heap_fork_seal(bw_heap_t *heap) {
    /* Blocks waiting for their class's next malloc: every sibling would
     * take the same ones in the same order. */
    bw_quarantine_unready(heap, "fork");
    bw_foreign_forget(heap); /* its blocks were freed in the parent */
    for (unsigned w = 0; w < BW_WAYS_TOTAL; w++) {
        bw_slab_t *slab = heap->ways[w];
        if (slab == &bw_sentinel_slab) continue;
        heap->ways[w] = &bw_sentinel_slab;
        bw_heap_seal(heap, slab);
    }
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        bw_bin_t *bin = &heap->bins[c];
        while (bin->avail) {
            bw_slab_t *slab = bin->avail;
            bw_list_remove(&bin->avail, slab);
            bw_heap_seal(heap, slab);
        }
        while (bin->full) {
            bw_slab_t *slab = bin->full;
            bw_bin_remove_full(bin, slab);
            bw_heap_seal(heap, slab);
        }
    }
}

void bw_heaps_fork_child(void) {
    bw_heap_t *heap = bw_tls_heap;
    if (heap != &bw_empty_heap) bw_heap_fork_seal(heap);
}

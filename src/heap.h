/* heap.h — the per-thread heap, its bins and the slow paths (heap.c). */
#ifndef BW_HEAP_H
#define BW_HEAP_H

#include "random.h"
#include "slab.h"
#include "ways.h"

/* ------------------------------------------------------------------ heaps */
typedef struct bw_bin {
    bw_slab_t *avail;     /* other slabs that may have free blocks (list head) */
    bw_slab_t *full;      /* slabs that had no free block when last looked at, newest first */
    bw_slab_t *full_tail; /* ... and the oldest, which refill looks at first */
    uint32_t way_base;    /* this class's first slot in the heap's ways */
    uint32_t way_count;   /* ways the fast path chooses among: follows `live`, up to
                             bw_class_ways (bw_heap_fit_ways) */
    int32_t live;         /* BW_RANDOM_WAYS: blocks of the class this heap handed out and
                             that were not freed yet (remote frees count when collected);
                             what sets way_count (bw_heap_fit_ways) */
    int32_t open_at;      /* `live` at which the next way opens (INT32_MAX: all open) */
} bw_bin_t;

struct bw_heap {
    uint64_t way_random; /* random bytes for the fast path's way choice */
    uint32_t way_draws;  /* bytes left in way_random; 0 in the empty heap */
    uint32_t ready_left; /* mallocs the ready stacks and foreign rings may serve before the
                            slow path runs again (its periodic work): BW_READY_RUN at each
                            slow path; 0 in a heap that never malloc'd, which keeps no
                            foreign block (foreign.h) */
    bw_bin_t bins[BW_CLASS_COUNT];
    bw_rng_t rng;
#if BW_QUARANTINE_SLOTS
    size_t quarantine_count;
    size_t quarantine_bytes;
    uint8_t quarantine_epoch; /* bumped by each aging scan */
    /* Blocks that left the quarantine, kept for their class's next malloc
     * (quarantine.c, bw_ready_pop): still marked QUARANTINED, on no free
     * list, counted in their slab's `used`. The counts sit here, next to
     * the generator, not beside the stacks 64 KiB on: a forked child reads
     * every count (bw_quarantine_unready), and in page mode, whose parent
     * never touched that page, the read cost a page fault of its own. */
    uint8_t ready_count[BW_CLASS_COUNT];
    uint64_t quarantine[BW_QUARANTINE_SLOTS]; /* entries: block, class, epoch (quarantine.h) */
    void *ready[BW_CLASS_COUNT][BW_READY_SLOTS];
#endif
#if BW_FOREIGN_SLOTS
    /* Other heaps' blocks this thread freed, for its own next mallocs
     * (foreign.h): a ring per class, oldest first. */
    uint8_t foreign_head[BW_CLASS_COUNT];
    uint8_t foreign_count[BW_CLASS_COUNT];
    void *foreign[BW_CLASS_COUNT][BW_FOREIGN_SLOTS];
#endif
    bw_slab_t *sealed;                 /* slabs inherited across fork (BW_LIST_SEALED) */
    _Atomic(bw_slab_t *) remote_slabs; /* slabs with remote frees to collect */
    struct bw_heap *next_free;         /* heap pool free list */
    uint32_t node;                     /* NUMA pool index of the CPU at the last refill */
    uint32_t ways_node;                /* ... at the last bw_heap_follow_node */
    uint32_t live;                     /* 1 while a thread uses the heap */
    uint64_t slow_calls;               /* slow-path entries, to pace maintenance */
    bw_slab_t *ways[BW_WAYS_TOTAL];    /* slabs the fast path allocates from; never NULL */
    uint64_t last_age_ms;              /* last aging scan of the ways */
};

extern BW_HIDDEN __thread bw_heap_t *bw_tls_heap;
extern BW_HIDDEN bw_heap_t bw_empty_heap;
extern BW_HIDDEN bw_slab_t bw_sentinel_slab;

/* heap.c */
size_t bw_heaps_region_bytes(void); /* the heap pool's piece of the metadata zone */
void bw_heaps_init(void *region);   /* start-up: the heap pool in that piece */
void bw_heaps_release(void);        /* start-up failed after bw_heaps_init */
void *bw_malloc_slow(size_t size, bool zero);
void bw_free_slow_local(bw_heap_t *heap, bw_slab_t *slab);
bw_heap_t *bw_heap_get_or_create(void);
void bw_heap_abandon(bw_heap_t *heap);
size_t bw_heap_trim_current(void);
size_t bw_abandoned_sweep(size_t max);
void bw_heaps_fork_child(void);
void bw_heap_stats(size_t *heaps_live, size_t *abandoned);
void bw_heap_thread_exit(void *arg);
void *bw_malloc_class(unsigned size_class, size_t size);
/* After frees into a slab that is not a way (the quarantine's releases
 * too): retire it when empty, move it from full to avail once a refill's
 * worth of it is free. */
void bw_heap_settle(bw_heap_t *heap, bw_slab_t *slab);
/* A slab leaving its way with free blocks (ways.c closes ways). */
void bw_bin_put_avail(bw_bin_t *bin, bw_slab_t *slab);
/* Heaps lie BW_HEAP_STRIDE apart in their pool (heap.c). */
#define BW_HEAP_STRIDE ((sizeof(bw_heap_t) + 63) & ~(size_t)63)
const char *bw_heap_pool_readable(size_t *bytes);

#endif

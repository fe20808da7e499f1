/* large.h — blocks above the small classes (large.c). */
#ifndef BW_LARGE_H
#define BW_LARGE_H

#include "config.h"

struct bw_large_entry;
struct bw_extent;
struct bw_region;

/* The large layer's scalars, which every large malloc and free writes:
 * on the locks' page (bw_hot, hot.h); large.c names them bw_table, bw_free
 * and so on. Written under bw_locks.large; the statistics read the counts
 * without it (large.c, bw_counter_set). */
typedef struct {
    struct bw_large_entry *table; /* own mapping with guard pages */
    size_t table_capacity;        /* power of two */
    size_t table_count;
    size_t in_use_bytes;
    size_t freed_history_next;
    size_t free_bytes;      /* of free and quarantined extents */
    struct bw_extent *free; /* free extents, sorted by address */
    size_t free_count, free_capacity;
    size_t extent_total;       /* extents in every state, in every region */
    struct bw_region *regions; /* sorted by address */
    size_t region_count, region_capacity;
    uint64_t decay_last_ms;
    size_t fifo_head, fifo_count; /* the large quarantine */
    bool locked;                  /* the process locks new mappings: regions of one block */
} bw_large_state_t;

/* large.c */
void *bw_large_alloc(size_t size, size_t alignment, bool zero);
void *bw_large_alloc_for_growth(size_t size);
void bw_large_warm(void);
size_t bw_large_quarantine_slots(void);
bool bw_large_free(void *ptr, size_t size, size_t alignment, const char *function);
size_t bw_large_usable_size(const void *ptr, const char *function);
void *bw_large_realloc(void *ptr, size_t size);
size_t bw_large_trim(void);
void bw_large_stats(size_t *in_use, size_t *cached, size_t *count);
void bw_large_cache_stats(size_t *free_extents, size_t *quarantined, size_t *regions);

#endif

/* large.h — blocks above the small classes (large.c). */
#ifndef BW_LARGE_H
#define BW_LARGE_H

#include "config.h"

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

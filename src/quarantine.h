/* quarantine.h — freed small blocks wait before reuse (quarantine.c). */
#ifndef BW_QUARANTINE_H
#define BW_QUARANTINE_H

#include "heap.h"

/* A block the caller checked, wiped and marked freed (QUARANTINED if the
 * heap owns it, PENDING if another heap does) enters the heap's quarantine;
 * a random older one may leave. */
void bw_quarantine_put(bw_heap_t *heap, void *block, bw_slab_t *slab, const char *function);
/* Every entry leaves (malloc_trim, thread exit, an exhausted arena). */
void bw_quarantine_flush(bw_heap_t *heap, const char *function);
/* The aging scan (heap.c): entries that waited since the previous one leave. */
void bw_quarantine_age(bw_heap_t *heap);
void bw_quarantine_stats(size_t *blocks, size_t *bytes);

#endif

/* segment.h — segments, the arena's layout and the slots they hand out
 * (segment.c). */
#ifndef BW_SEGMENT_H
#define BW_SEGMENT_H

#include "config.h"

typedef struct bw_slab bw_slab_t; /* slab.h */

/* Out-of-line segment header. */
typedef struct bw_segment {
    uint64_t free_slots;   /* bit i: slab slot i is free */
    uint64_t dirty_slots;  /* bit i: free and still committed */
    uint32_t node;         /* NUMA node the segment is bound to */
    uint32_t in_pool_list; /* on its node's partial list */
    struct bw_segment *next, *prev;
    uint8_t pad[24];
} bw_segment_t;
_Static_assert(sizeof(bw_segment_t) == 64, "segment header lookup is a shift by 6");

/* The arena as laid out at start-up (segment.c): every block, descriptor and
 * bitmap word is found from it by arithmetic. */
typedef struct {
    uintptr_t arena_base;       /* start of the small-object reservation */
    uintptr_t arena_size;       /* bytes of carved segments; 0 until then: every free is slow */
    uintptr_t arena_granules;   /* arena_size / 16: free()'s one range-and-alignment test */
    bw_slab_t *slabs;           /* descriptor array, one per slab slot */
    bw_segment_t *segments;     /* header array, one per segment */
    _Atomic(uint64_t) *bitmaps; /* BW_BITMAP_WORDS_PER_SLAB words per slab slot */
} bw_layout_t;

extern BW_HIDDEN bw_layout_t bw_layout;

/* segment.c */
size_t bw_segments_meta_bytes(void);
bool bw_segments_init(void *meta);
void bw_segments_release(void);
/* `block_size`: the class the span is for, which picks among free runs the
 * one whose last format fits best (segment.c); 0 for none. */
bw_slab_t *bw_slab_span_acquire(unsigned node, unsigned slots, uint32_t block_size);
BW_INLINE bw_slab_t *bw_slab_slot_acquire(unsigned node) {
    return bw_slab_span_acquire(node, 1, 0);
}
void bw_slab_slot_release(bw_slab_t *slab);
size_t bw_segments_purge(bool force);
size_t bw_segments_in_use(void);
unsigned bw_pool_index_for_node(unsigned node);

#endif

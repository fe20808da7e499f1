/* foreign.c — the foreign rings (foreign.h) emptied: each block goes back
 * to its owner's remote list, still claimed, as a remote free without the
 * ring would have sent it. */
#include <string.h>

#include "bw_internal.h"
#include "foreign.h"

void bw_foreign_flush(bw_heap_t *heap) {
#if BW_FOREIGN_SLOTS
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        while (heap->foreign_count[c]) {
            void *block = bw_foreign_take(heap, c);
            bw_slab_remote_push(bw_slab_at((uintptr_t)block - bw_layout.arena_base), block);
        }
    }
#else
    (void)heap;
#endif
}

/* In a forked child the kept blocks are its parent's, of slabs the child
 * never allocates from again (sealed, or owned by heaps whose threads did
 * not cross the fork). Handing them back would write a link into each, a
 * copy-on-write fault per page in every child of a fork server; they stay
 * claimed instead: a few blocks per class that the child never reuses, as
 * it never reuses the rest of its inherited slabs until they empty. */
void bw_foreign_forget(bw_heap_t *heap) {
#if BW_FOREIGN_SLOTS
    memset(heap->foreign_count, 0, sizeof heap->foreign_count);
#else
    (void)heap;
#endif
}

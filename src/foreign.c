/* foreign.c — the foreign rings (foreign.h) emptied: each block goes back
 * to its owner's remote list, still claimed, as a remote free without the
 * ring would have sent it. */
#include "foreign.h"
#include "bw_internal.h"

void bw_foreign_flush(bw_heap_t *heap) {
#if BW_FOREIGN_SLOTS
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        while (heap->foreign_count[c]) {
            unsigned at = heap->foreign_head[c];
            void *block = heap->foreign[c][at];
            heap->foreign_head[c] = (uint8_t)((at + 1) & (BW_FOREIGN_SLOTS - 1));
            heap->foreign_count[c]--;
            bw_slab_remote_push(bw_slab_at((uintptr_t)block - bw_layout.arena_base), block);
        }
    }
#else
    (void)heap;
#endif
}

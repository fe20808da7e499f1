/* ways.h — placement: how many slabs ("ways") a heap keeps open per class
 * and picks among at random (ways.c). */
#ifndef BW_WAYS_H
#define BW_WAYS_H

#include "config.h"

/* Random ways: a bin keeps up to BW_WAYS_MAX open slabs and every malloc
 * picks one at random (ways.c explains the counts). The ways of all
 * classes share one flat array of BW_WAYS_TOTAL slots per heap. */
#if BW_ENTROPY_BITS_SMALL || BW_ENTROPY_BITS_LARGE
#define BW_RANDOM_WAYS 1
#define BW_WAYS_MAX    256u  /* one random byte per malloc picks the way */
#define BW_WAYS_TOTAL  2176u /* the default knobs need 2,083 */
#else
#define BW_RANDOM_WAYS 0
#define BW_WAYS_MAX    1u
#define BW_WAYS_TOTAL  BW_CLASS_COUNT
#endif
extern BW_HIDDEN uint16_t bw_class_ways[BW_CLASS_COUNT];
extern BW_HIDDEN uint16_t bw_class_way_base[BW_CLASS_COUNT];
extern BW_HIDDEN uint16_t bw_class_way_step[BW_CLASS_COUNT];
extern BW_HIDDEN uint16_t bw_class_way_delay[BW_CLASS_COUNT];
extern BW_HIDDEN uint8_t bw_class_way_pace[BW_CLASS_COUNT];
/* Ways a class opens per way's worth of live blocks (ways.c, its "pace"):
 * enough that the entropy targets hold once 2^target blocks are live
 * (test_entropy).
 *  - Up to 256 bytes (10-bit target, 2.25 times 2^10 candidates): 8. With
 *    twice 2^10 candidates the 256-byte class measured 9.95-10.15 bits at
 *    pace 4, 10.1-10.3 at 8.
 *  - From 320 bytes to 16 KiB (8-bit target, three times 2^8 candidates):
 *    3, so all their ways are open at 256 live blocks instead of 96. They
 *    measure 8.59-9.22 bits at K = 256 (Chao-Shen, three runs; 8.93-9.39
 *    at pace 8, 8.89-9.30 at 4, lowest 8.10 at 2, too close to the
 *    target). A thread holding a few dozen blocks of each such class opens
 *    fewer slabs: bench/threadchurn 400 2 2000 (default) 0.36 -> 0.28 s of
 *    CPU (7 interleaved runs, medians; server and strings unchanged), peak
 *    RSS 28.6 -> 20.1 MiB.
 *  - Above BW_MEDIUM_WAYS_ABOVE: 8, starting later (bw_class_way_delay,
 *    ways.c), with all their ways open once BW_WAYS_FULL_MEDIUM_NUM / 16 of
 *    2^target blocks are live. */
#ifndef BW_WAYS_PER_LIVE
#define BW_WAYS_PER_LIVE 8u
#endif
#ifndef BW_WAYS_PER_LIVE_MID
#define BW_WAYS_PER_LIVE_MID 3u
#endif
#ifndef BW_MEDIUM_WAYS_ABOVE
#define BW_MEDIUM_WAYS_ABOVE 16384u
#endif
#ifndef BW_WAYS_FULL_MEDIUM_NUM
#define BW_WAYS_FULL_MEDIUM_NUM 12u
#endif
void bw_ways_init(void);

struct bw_bin;
struct bw_heap;
/* The fast path checks a bin's `live` against its open_at once per 8
 * mallocs; the slow path then opens more ways (bw_heap_fit_ways). */
void bw_bin_set_open_at(struct bw_bin *bin, unsigned size_class);
void bw_heap_fit_ways(struct bw_heap *heap, unsigned size_class);
/* The aging scan's part (heap.c, bw_heap_age_ways). */
void bw_ways_close_unneeded(struct bw_heap *heap);
void bw_ways_retire_idle(struct bw_heap *heap);

#endif

/* ways.c — placement (DESIGN.md "ways"): the slabs a heap allocates from.
 *
 * Without random ways (BW_ENTROPY_BITS_* 0: fast) a class has one way, the
 * slab its next blocks come from. With them, a class keeps up to
 * bw_class_ways[class] slabs open and the fast path (alloc.h) picks one at
 * random for every malloc, so where the next block lies is not predictable
 * from the last. This file holds how many ways each class may have and
 * where they sit in a heap's flat array (bw_ways_init), how many a heap
 * opens as the class's live blocks grow (bw_heap_fit_ways, from the slow
 * path), and the aging scan's part: closing ways the class no longer needs
 * and retiring idle ones. Filling a way with a slab is heap.c's refill. */
#include "ways.h"
#include "heap.h"
#include "sizeclass.h"

/* Random ways (Guarder's entropy target, BW_ENTROPY_BITS_*): a bin keeps
 * enough open slabs that a malloc chooses among at least 2.25 (3 above 256
 * bytes) times 2^bits blocks that are equally likely next, so the target
 * still holds when 2^bits of them are live. With twice 2^bits up to 256
 * bytes the 112, 224 and 256-byte classes (4, 8 and 9 ways: 2,160 to
 * 2,192 blocks) read 10.08-10.29 bits at K = 2^10 (Chao-Shen, the lowest
 * class of each of 26 runs, default and strict), and 1 run of about 60
 * read 9.99, below the target; with 2.25 times (5, 9 and 10 ways) the
 * lowest classes read 10.27-10.39 (4 runs), for 0.4 MiB more peak RSS in
 * bench/workingset (8.7 -> 9.1 MiB) and 4% more of its CPU (5 interleaved
 * runs; server, churn and prodcons within noise). Guarder (USENIX Security 2018)
 * sets 10 bits for small objects; the issue asks 10 bits up to 256 bytes and
 * 8 above. What one way offers is its current chunk (slab.c: the blocks of
 * a 2^BW_FRESH_CHUNK_SHIFT-byte piece are linked together, in random order),
 * or its whole slab when the slab holds at most 16 blocks (each block is
 * its own chunk, so the next one is uniform over the slab). Capped at
 * BW_WAYS_MAX. The classes above 8 KiB span 2, 4, 8 or 16 slots
 * (bw_class_span_slots) so that a slab holds at least 7 of them: with 3
 * blocks per guarded slot the 16 KiB class measured 8.0 bits however many
 * ways were open, with 7 per span it measures 9.2, and the 32, 64 and
 * 128 KiB classes (7 per span of 4, 8, 16 slots) 9.1-9.2 (test_entropy,
 * default). Those up to 110 ways of a medium class are spans of up to 1 MiB,
 * but a way touches only the blocks it hands out (one fresh block linked at
 * a time). The memory cost: a class
 * in use keeps up to that many slabs open per thread, each touched only as
 * far as its chunks were reached (the aging scan, bw_ways_retire_idle, retires the ones
 * that go idle).
 *
 * A heap does not open all of them at once: a class starts with one way and
 * opens eight more for every chunk's worth of blocks it holds live
 * (bw_class_way_step = what one way offers; three from 320 bytes to
 * 16 KiB, bw_class_way_pace, ways.h; bw_heap_fit_ways), and
 * closes them again when the live count falls (the aging scan), so the
 * candidates stay a few times the blocks the class holds and the target
 * holds by the time 2^bits blocks are allocated, while a thread that keeps
 * a few dozen blocks of a class touches a few chunks, not a few dozen
 * slabs, however many it allocates and frees. The medium classes (above
 * 16 KiB) wait longer before they open their second way (below). */
uint16_t bw_class_ways[BW_CLASS_COUNT] = {[0 ... BW_CLASS_COUNT - 1] = 1};
uint16_t bw_class_way_base[BW_CLASS_COUNT];
uint16_t bw_class_way_step[BW_CLASS_COUNT] = {[0 ... BW_CLASS_COUNT - 1] = 1};
uint16_t bw_class_way_delay[BW_CLASS_COUNT];
uint8_t bw_class_way_pace[BW_CLASS_COUNT] = {[0 ... BW_CLASS_COUNT - 1] = BW_WAYS_PER_LIVE};

void bw_ways_init(void) {
    uint32_t next = 0;
    for (unsigned c = 0; c < BW_CLASS_COUNT; c++) {
        uint32_t wanted = 1;
#if BW_RANDOM_WAYS
        if (c > 0) {
            uint32_t size = bw_class_size[c];
            uint32_t blocks = bw_class_span_usable(c) / size;
            if (blocks > 16) {
                uint32_t per_chunk = ((uint32_t)1 << BW_FRESH_CHUNK_SHIFT) / size;
                if (per_chunk < blocks) blocks = per_chunk ? per_chunk : 1;
            }
            /* Classes of 16 blocks or fewer per slab (4 KiB and up) once
             * opened ways four times faster than this (eight per quarter
             * slab live): 25 ways of the 8 KiB class for three live blocks,
             * and bench/strings (default) peaked at 18.2 MiB on 192 slabs;
             * at this pace 8.9 MiB on 70, and those classes still measure
             * 9.1-9.4 bits at K = 2^target (test_entropy), as they reach
             * their most ways long before 2^target blocks are live. */
            bw_class_way_step[c] = (uint16_t)blocks;
            bool small = size <= 256;
            bool mid = !small && size <= BW_MEDIUM_WAYS_ABOVE;
            bw_class_way_pace[c] = (uint8_t)(mid ? BW_WAYS_PER_LIVE_MID : BW_WAYS_PER_LIVE);
            unsigned bits = small ? BW_ENTROPY_BITS_SMALL : BW_ENTROPY_BITS_LARGE;
            uint32_t candidates = small ? (9u << bits) / 4 : 3u << bits;
            wanted = candidates / blocks + (candidates % blocks != 0);
            if (wanted > BW_WAYS_MAX) wanted = BW_WAYS_MAX;
            if (size > BW_MEDIUM_WAYS_ABOVE) {
                /* Medium classes open their extra ways late, at the same
                 * pace, so that all are open once BW_WAYS_FULL_MEDIUM_NUM
                 * sixteenths of 2^bits blocks are live (192 of 256 in
                 * default: the first extra way opens at 96 or 97 live
                 * blocks). Each of their ways is a span of 128 KiB to
                 * 1 MiB that a few live blocks soon touch whole: opened at
                 * the small classes' pace, a dozen live blocks of a class
                 * kept about 12 ways, and bench/realloc 65536 400000
                 * (buffers grown by realloc to 64 KiB, default) peaked at
                 * 61-69 MiB; opened at 3 per way's worth (all open at 256
                 * live), 43 MiB; with this delay 27.5 MiB, one way per
                 * class. Below the delay a medium block's placement is
                 * random among its way's blocks only (2.8-3.6 bits, the
                 * K = 0 column of test_entropy); at K = 2^bits the 20, 32,
                 * 64 and 128 KiB classes measured 8.85-9.29 bits with the
                 * delay, 9.11-9.21 without; at pace 3 the first three
                 * measured 8.62-9.10. */
                uint32_t pace = bw_class_way_pace[c];
                uint32_t ramp = ((wanted - 1) * blocks + pace - 1) / pace;
                uint32_t full_at = (BW_WAYS_FULL_MEDIUM_NUM << bits) / 16;
                bw_class_way_delay[c] = (uint16_t)(full_at > ramp ? full_at - ramp : 0);
            }
            if (next + wanted > BW_WAYS_TOTAL - (BW_CLASS_COUNT - 1 - c))
                wanted = 1; /* out of slots: cannot happen with the shipped knobs */
        }
#endif
        bw_class_ways[c] = (uint16_t)wanted;
        bw_class_way_base[c] = (uint16_t)next;
        next += wanted;
    }
}

#if BW_RANDOM_WAYS
/* How many ways the class should have open: one, and BW_WAYS_PER_LIVE more
 * for every way's worth of fresh blocks (bw_class_way_step) the heap holds
 * live beyond the class's bw_class_way_delay (0 but for the medium classes),
 * up to bw_class_ways (bw_ways_init explains the pace). Counting live blocks,
 * not blocks ever linked, matters under churn: a program that builds and
 * frees strings of every size links fresh chunks all the time (the
 * quarantine keeps its freed blocks out of reach), and a count of linked
 * blocks opened every class's ways to the maximum — 1,067 slabs, 62 MiB
 * resident for 64 live strings (bench/strings in default). */
static uint32_t bw_bin_ways_wanted(const bw_bin_t *bin, unsigned size_class) {
    uint32_t live = bin->live > 0 ? (uint32_t)bin->live : 0;
    uint32_t delay = bw_class_way_delay[size_class];
    live = live > delay ? live - delay : 0;
    uint32_t wanted = 1 + bw_class_way_pace[size_class] * live / bw_class_way_step[size_class];
    return wanted < bw_class_ways[size_class] ? wanted : bw_class_ways[size_class];
}

/* The fast path checks `live` against this once per 8 mallocs: the
 * smallest live count for which bw_bin_ways_wanted exceeds way_count. */
void bw_bin_set_open_at(bw_bin_t *bin, unsigned size_class) {
    uint32_t step = bw_class_way_step[size_class];
    uint32_t pace = bw_class_way_pace[size_class];
    bin->open_at =
        bin->way_count >= bw_class_ways[size_class]
            ? INT32_MAX
            : (int32_t)((bin->way_count * step + pace - 1) / pace + bw_class_way_delay[size_class]);
}

/* Open more ways if the class has grown: called from the slow path when
 * `live` reached open_at (the fast path checks once per 8 mallocs and
 * comes here). Ways close in the aging scan, bw_heap_age_ways. */
void bw_heap_fit_ways(bw_heap_t *heap, unsigned size_class) {
    bw_bin_t *bin = &heap->bins[size_class];
    uint32_t wanted = bw_bin_ways_wanted(bin, size_class);
    if (wanted > bin->way_count) bin->way_count = wanted;
    bw_bin_set_open_at(bin, size_class);
}
#endif

/* Aging scan (heap.c, bw_heap_age_ways): ways the class no longer needs
 * close: their slabs join the bin's avail list, where refill finds them
 * before a fresh slot, and are retired when empty. */
void bw_ways_close_unneeded(bw_heap_t *heap) {
#if BW_RANDOM_WAYS
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        bw_bin_t *bin = &heap->bins[c];
        uint32_t wanted = bw_bin_ways_wanted(bin, c);
        for (uint32_t w = wanted; w < bin->way_count; w++) {
            bw_slab_t *slab = heap->ways[bin->way_base + w];
            if (slab == &bw_sentinel_slab) continue;
            heap->ways[bin->way_base + w] = &bw_sentinel_slab;
            bw_slab_collect_remote(slab);
            if (slab->used <= 0)
                bw_slab_slot_release(slab);
            else
                bw_bin_put_avail(bin, slab);
        }
        if (wanted < bin->way_count) bin->way_count = wanted;
        bw_bin_set_open_at(bin, c);
    }
#else
    (void)heap;
#endif
}

/* Aging scan: a way slab found empty by two scans in a row gives its slot
 * back (way slabs are never retired by free). */
void bw_ways_retire_idle(bw_heap_t *heap) {
    for (unsigned w = 0; w < BW_WAYS_TOTAL; w++) {
        bw_slab_t *slab = heap->ways[w];
        if (slab == &bw_sentinel_slab) continue;
        if (slab->used != 0 || atomic_load_explicit(&slab->remote, memory_order_relaxed)) {
            slab->idle = 0;
        } else if (!slab->idle) {
            slab->idle = 1; /* empty now: retired if still empty at the next scan */
        } else {
            slab->idle = 0;
            heap->ways[w] = &bw_sentinel_slab;
            bw_slab_slot_release(slab);
        }
    }
}

/* sizeclass.c — the size-class table and the two lookup tables.
 *
 * Classes: 16-byte steps up to 128, then four classes per power of two
 * (5/4, 6/4, 7/4, 8/4 of the previous power), as in jemalloc's and
 * mimalloc's spacing, up to 128 KiB (48 classes). The worst internal
 * fragmentation for a request above 64 bytes is 20.0% of the block (a
 * 129-byte request in a 160-byte block is 19.4%; 257 in 320 is 19.7%), under
 * the 25% the design asks; eight classes per doubling would keep it under
 * 12.5% but double the classes, and with them the ways and slabs a heap keeps
 * open for its entropy target.
 *
 * Medium classes (above 16 KiB) are served from slabs like the others, up to
 * 128 KiB rather than 64 KiB: every request up to 64 KiB must be small, and
 * with the canary 64 KiB lands in the 80 KiB class already; the four classes
 * up to 128 KiB cost no more than the eight below them (spans of 16 slots,
 * 7 to 12 blocks each), and a loop of 100,000-byte malloc/free or realloc
 * growth through them makes no system call, where a mapping per block costs
 * an mmap or the large cache's turnover.
 *
 * bw_size_class() needs no loop or division: requests up to 1024 bytes index
 * bw_class_by_16 with (size + 15) / 16, larger ones bw_class_by_128 with
 * (size + 127) / 128 (every class above 1024 is a multiple of 128). The tables
 * were generated from bw_class_size by taking, for each index, the smallest
 * class that holds the largest size mapping to it; test_sizeclass checks every
 * size from 0 to 131072 against a linear search. */
#include "bw_internal.h"

const uint32_t bw_class_size[BW_CLASS_COUNT] = {
    0,     16,    32,    48,    64,    80,    96,    112,   128,    160,    192,   224,   256,
    320,   384,   448,   512,   640,   768,   896,   1024,  1280,   1536,   1792,  2048,  2560,
    3072,  3584,  4096,  5120,  6144,  7168,  8192,  10240, 12288,  14336,  16384, 20480, 24576,
    28672, 32768, 40960, 49152, 57344, 65536, 81920, 98304, 114688, 131072,
};

const uint8_t bw_class_by_16[1024 / 16 + 1] = {
    1,  1,  2,  3,  4,  5,  6,  7,  8,  9,  9,  10, 10, 11, 11, 12, 12, 13, 13, 13, 13, 14,
    14, 14, 14, 15, 15, 15, 15, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17, 18, 18, 18,
    18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19, 20, 20, 20, 20, 20, 20, 20, 20,
};

const uint8_t bw_class_by_128[BW_SMALL_MAX / 128 + 1] = {
    1,  8,  12, 14, 16, 17, 18, 19, 20, 21, 21, 22, 22, 23, 23, 24, 24, 25, 25, 25, 25, 26, 26, 26,
    26, 27, 27, 27, 27, 28, 28, 28, 28, 29, 29, 29, 29, 29, 29, 29, 29, 30, 30, 30, 30, 30, 30, 30,
    30, 31, 31, 31, 31, 31, 31, 31, 31, 32, 32, 32, 32, 32, 32, 32, 32, 33, 33, 33, 33, 33, 33, 33,
    33, 33, 33, 33, 33, 33, 33, 33, 33, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
    34, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 36, 36, 36, 36, 36, 36, 36,
    36, 36, 36, 36, 36, 36, 36, 36, 36, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37,
    37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 38, 38, 38, 38, 38, 38, 38,
    38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
    38, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39,
    39, 39, 39, 39, 39, 39, 39, 39, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 41, 41, 41, 41, 41, 41, 41,
    41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41,
    41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41,
    41, 41, 41, 41, 41, 41, 41, 41, 41, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42,
    42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42,
    42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42,
    42, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43,
    43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43,
    43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 44, 44, 44, 44, 44, 44, 44,
    44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44,
    44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44,
    44, 44, 44, 44, 44, 44, 44, 44, 44, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45,
    45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45,
    45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45,
    45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45,
    45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45,
    45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 46, 46, 46, 46, 46, 46, 46,
    46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46,
    46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46,
    46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46,
    46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46,
    46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46,
    46, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47,
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47,
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47,
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47,
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47,
    47, 47, 47, 47, 47, 47, 47, 47, 47, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48,
    48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48,
    48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48,
    48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48,
    48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48,
    48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48,
};

/* The smallest class whose blocks are all aligned to `alignment`: a slab
 * starts on a boundary of the bytes it spans, a power of two of at least 64
 * KiB and at least 7 blocks, so above any alignment up to its class size,
 * and block i is aligned iff the class size is a multiple of the alignment.
 * Slow path (memalign family) only. Returns 0 if none. */
unsigned bw_size_class_aligned(size_t size, size_t alignment) {
    if (size > BW_SMALL_MAX || alignment > BW_SMALL_MAX) return 0;
    for (unsigned c = bw_size_class(size ? size : 1); c < BW_CLASS_COUNT; c++) {
        if ((bw_class_size[c] & (alignment - 1)) == 0) return c;
    }
    return 0;
}

/* Random ways (Guarder's entropy target, BW_ENTROPY_BITS_*): a bin keeps
 * enough open slabs that a malloc chooses among at least 2 (3 above 256
 * bytes) times 2^bits blocks that are equally likely next, so the target
 * still holds when 2^bits of them are live. Guarder (USENIX Security 2018)
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
 * far as its chunks were reached (the aging scan in heap.c retires the ones
 * that go idle).
 *
 * A heap does not open all of them at once: a class starts with one way and
 * opens eight more for every chunk's worth of blocks it holds live
 * (bw_class_way_step = what one way offers; heap.c, bw_heap_fit_ways), and
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
            unsigned bits = small ? BW_ENTROPY_BITS_SMALL : BW_ENTROPY_BITS_LARGE;
            uint32_t candidates = (small ? 2u : 3u) << bits;
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
                uint32_t ramp = ((wanted - 1) * blocks + BW_WAYS_PER_LIVE - 1) / BW_WAYS_PER_LIVE;
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

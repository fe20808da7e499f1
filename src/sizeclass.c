/* sizeclass.c — the size-class table and the two lookup tables.
 *
 * Classes: 16-byte steps up to 128, then four classes per power of two
 * (5/4, 6/4, 7/4, 8/4 of the previous power), as in jemalloc's and
 * mimalloc's spacing. The worst internal fragmentation for a request above
 * 64 bytes is 20.0% of the block (a 129-byte request in a 160-byte
 * block is 19.4%; 257 in 320 is 19.7%), under the 25% the design asks.
 *
 * bw_size_class() needs no loop or division: requests up to 1024 bytes index
 * bw_class_by_16 with (size + 15) / 16, larger ones bw_class_by_128 with
 * (size + 127) / 128 (every class above 1024 is a multiple of 128). The tables
 * were generated from bw_class_size by taking, for each index, the smallest
 * class that holds the largest size mapping to it; test_sizeclass checks every
 * size from 0 to 16384 against a linear search. */
#include "bw_internal.h"

const uint32_t bw_class_size[BW_CLASS_COUNT] = {
    0, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896,
    1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288,
    14336, 16384,
};

const uint8_t bw_class_by_16[1024 / 16 + 1] = {
    1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14,
    15, 15, 15, 15, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17, 18, 18, 18, 18, 18, 18, 18,
    18, 19, 19, 19, 19, 19, 19, 19, 19, 20, 20, 20, 20, 20, 20, 20, 20,
};

const uint8_t bw_class_by_128[BW_SMALL_MAX / 128 + 1] = {
    1, 8, 12, 14, 16, 17, 18, 19, 20, 21, 21, 22, 22, 23, 23, 24, 24, 25, 25, 25, 25, 26, 26,
    26, 26, 27, 27, 27, 27, 28, 28, 28, 28, 29, 29, 29, 29, 29, 29, 29, 29, 30, 30, 30, 30, 30,
    30, 30, 30, 31, 31, 31, 31, 31, 31, 31, 31, 32, 32, 32, 32, 32, 32, 32, 32, 33, 33, 33, 33,
    33, 33, 33, 33, 33, 33, 33, 33, 33, 33, 33, 33, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
    34, 34, 34, 34, 34, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 36, 36,
    36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36,
};

/* The smallest class whose blocks are all aligned to `alignment`: slabs start
 * on a 64 KiB boundary, so block i is aligned iff the class size is a multiple
 * of the alignment. Slow path (memalign family) only. Returns 0 if none. */
unsigned bw_size_class_aligned(size_t size, size_t alignment) {
    if (size > BW_SMALL_MAX || alignment > BW_SMALL_MAX)
        return 0;
    for (unsigned c = bw_size_class(size ? size : 1); c < BW_CLASS_COUNT; c++) {
        if ((bw_class_size[c] & (alignment - 1)) == 0)
            return c;
    }
    return 0;
}

/* Random ways (Guarder's entropy target, BW_ENTROPY_BITS_*): a bin may keep
 * enough open slabs that a malloc chooses among at least twice 2^bits free
 * blocks when they are all fresh, so the target still holds when they are
 * half used. Guarder (USENIX Security 2018) sets 10 bits for small objects;
 * the issue asks 10 bits up to 256 bytes and 8 above. Capped at
 * BW_WAYS_MAX (the 16 KiB class reaches 128 ways x 3 blocks = 8.6 bits).
 * A bin opens these ways only as the class fills slabs (heap.c), so a
 * lightly used class costs one slab. */
uint8_t bw_class_ways[BW_CLASS_COUNT] = {[0 ... BW_CLASS_COUNT - 1] = 1};

void bw_ways_init(void) {
#if BW_WAYS_MAX > 1
    for (unsigned c = 1; c < BW_CLASS_COUNT; c++) {
        uint32_t blocks = (uint32_t)(BW_SLAB_USABLE / bw_class_size[c]);
        unsigned bits = bw_class_size[c] <= 256 ? BW_ENTROPY_BITS_SMALL : BW_ENTROPY_BITS_LARGE;
        uint32_t wanted = (2u << bits) / blocks + ((2u << bits) % blocks != 0);
        bw_class_ways[c] = (uint8_t)(wanted < 1 ? 1 : wanted > BW_WAYS_MAX ? BW_WAYS_MAX : wanted);
    }
#endif
}

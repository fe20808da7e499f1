/* sizeclass.h — size classes (sizeclass.c): the size → class tables and
 * the slots a class's slab spans. */
#ifndef BW_SIZECLASS_H
#define BW_SIZECLASS_H

#include "config.h"

/* size classes (sizeclass.c) */
extern BW_HIDDEN const uint8_t bw_class_by_16[1024 / 16 + 1];
extern BW_HIDDEN const uint8_t bw_class_by_128[BW_SMALL_MAX / 128 + 1];
_Static_assert(BW_CLASS_COUNT <= 256, "a class number is a byte");
extern BW_HIDDEN const uint32_t bw_class_size[BW_CLASS_COUNT];

/* Size → class without loops or division: two small tables. */
BW_INLINE unsigned bw_size_class(size_t size) {
    if (size <= 1024) return bw_class_by_16[(size + 15) >> 4];
    return bw_class_by_128[(size + 127) >> 7]; /* caller guarantees size <= BW_SMALL_MAX */
}
unsigned bw_size_class_aligned(size_t size, size_t alignment);
/* Slots (64 KiB each) a slab of the class spans: the fewest, a power of two
 * up to BW_SPAN_SLOTS_MAX, whose span less its trailing guard holds at least
 * 7 blocks (sizeclass.c: 1 up to 8 KiB, 2 up to 16 KiB, 4 up to 32 KiB, 8 up
 * to 64 KiB, 16 up to 128 KiB). Slow paths only: a loop of at most 4 steps. */
BW_INLINE unsigned bw_class_span_slots(unsigned size_class) {
    uint32_t size = bw_class_size[size_class];
    unsigned slots = 1;
    while (slots < BW_SPAN_SLOTS_MAX &&
           (slots * BW_SLAB_SIZE - (BW_SLAB_GUARD ? BW_PAGE_SIZE : 0)) / size < 7)
        slots *= 2;
    return slots;
}
/* Bytes a slab of the class can carve: its slots but the trailing guard. */
BW_INLINE uint32_t bw_class_span_usable(unsigned size_class) {
    return (uint32_t)(bw_class_span_slots(size_class) * BW_SLAB_SIZE -
                      (BW_SLAB_GUARD ? BW_PAGE_SIZE : 0));
}

/* The class serving a request: canary room included. */
BW_INLINE bool bw_request_is_small(size_t size) {
    return size <= BW_SMALL_MAX - BW_CANARY_BYTES;
}
BW_INLINE unsigned bw_request_class(size_t size) {
    return bw_size_class(size + BW_CANARY_BYTES);
}

#endif

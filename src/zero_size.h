/* zero_size.h — malloc(0) (zero_size.c). */
#ifndef BW_ZERO_SIZE_H
#define BW_ZERO_SIZE_H

#include "config.h"

/* zero_size.c — zero-byte allocations that fault on access (malloc(0)) */
size_t bw_zero_meta_bytes(void);
bool bw_zero_init(void *meta_piece);
bool bw_zero_owns(const void *ptr);
void *bw_zero_alloc(void);
void bw_zero_free(void *ptr, size_t size, const char *function);
void bw_zero_validate(void *ptr, const char *freed_class, const char *invalid_class,
                      const char *function);

#endif

/* bench.h — small helpers shared by the bench/ workloads: a fast
 * deterministic PRNG (so every allocator sees the same request stream),
 * argument parsing, a fatal-check macro, block tagging (so every workload can
 * verify that the memory it got back still holds what it wrote), and reading
 * the resident set size from /proc. Header-only: each workload is one .c file
 * compiled on its own with `gcc -O2 -pthread`. */
#ifndef BENCH_H
#define BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A wrong result is a failed benchmark run: say why on stderr, exit 1. */
#define BENCH_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Allocation failure is also a failed run (no workload here is near the
 * machine's memory size). */
static inline void *bench_nonnull(void *p, size_t size) {
    if (p == NULL) {
        fprintf(stderr, "allocation of %zu bytes failed\n", size);
        exit(1);
    }
    return p;
}

/* splitmix64: a handful of arithmetic instructions per draw, passes BigCrush,
 * and needs one word of state per thread — cheap enough not to blur the
 * allocator's share of a workload's time. */
typedef struct {
    uint64_t state;
} bench_rng;

static inline uint64_t bench_next(bench_rng *rng) {
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi] without division: multiply-shift (Lemire); the tiny
 * bias is irrelevant for a request stream. */
static inline uint64_t bench_range(bench_rng *rng, uint64_t lo, uint64_t hi) {
    uint64_t span = hi - lo + 1;
    return lo + (uint64_t)(((unsigned __int128)bench_next(rng) * span) >> 64);
}

/* Log-uniform in [lo, hi]: as many requests between 64 and 128 bytes as
 * between 32 KiB and 64 KiB, the usual shape of real size distributions. */
static inline size_t bench_log_range(bench_rng *rng, size_t lo, size_t hi) {
    int lo_bits = 63 - __builtin_clzll(lo);
    int hi_bits = 63 - __builtin_clzll(hi);
    int bits = (int)bench_range(rng, (uint64_t)lo_bits, (uint64_t)hi_bits);
    size_t base = (size_t)1 << bits;
    size_t size = base + (size_t)bench_range(rng, 0, base - 1);
    if (size < lo) size = lo;
    if (size > hi) size = hi;
    return size;
}

/* Positional argument i as a positive integer, or the default. */
static inline long bench_arg(int argc, char **argv, int i, long fallback) {
    if (argc <= i) return fallback;
    char *end;
    long value = strtol(argv[i], &end, 10);
    if (*end != '\0' || value <= 0) {
        fprintf(stderr, "%s: argument %d must be a positive integer, got '%s'\n", argv[0], i,
                argv[i]);
        exit(2);
    }
    return value;
}

/* A block's tag: a word derived from an identity (slot, generation) and the
 * block's size, written at the start and, when there is room, at the end of
 * the block, so that overlapping blocks, lost writes and blocks handed out
 * twice are all caught when the block is checked before it is freed. */
static inline uint64_t bench_tag_value(uint64_t id, size_t size) {
    uint64_t z = id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)size;
    return z ^ (z >> 29);
}

static inline void bench_tag(void *block, size_t size, uint64_t id) {
    uint64_t tag = bench_tag_value(id, size);
    if (size >= 8)
        memcpy(block, &tag, 8);
    else
        memcpy(block, &tag, size);
    if (size >= 16) memcpy((char *)block + size - 8, &tag, 8);
}

static inline int bench_tag_ok(const void *block, size_t size, uint64_t id) {
    uint64_t tag = bench_tag_value(id, size), got = 0;
    if (size >= 8)
        memcpy(&got, block, 8);
    else {
        memcpy(&got, block, size);
        uint64_t mask = size ? (~0ULL >> (64 - 8 * size)) : 0;
        return (got & mask) == (tag & mask);
    }
    if (got != tag) return 0;
    if (size >= 16) {
        memcpy(&got, (const char *)block + size - 8, 8);
        if (got != tag) return 0;
    }
    return 1;
}

/* A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: peak). */
static inline long bench_status_kb(const char *field) {
    FILE *status = fopen("/proc/self/status", "r");
    if (status == NULL) return -1;
    char line[256];
    size_t field_len = strlen(field);
    long kb = -1;
    while (fgets(line, sizeof line, status) != NULL) {
        if (strncmp(line, field, field_len) == 0 && line[field_len] == ':') {
            kb = strtol(line + field_len + 1, NULL, 10);
            break;
        }
    }
    fclose(status);
    return kb;
}

/* A block whose every page is tagged (large.c, window.c): each page's first
 * word and the block's last word hold a tag of (id, offset), written by
 * bench_paged_fill and checked by bench_paged_check_and_free, so every page
 * is touched once as a program filling a buffer would, and a block that
 * changed under the program fails the run. */
#define BENCH_PAGE 4096
typedef struct {
    uint64_t *block;
    size_t size; /* a multiple of 16 */
    uint64_t id;
} bench_paged_block;

static inline void bench_paged_fill(bench_paged_block *b, uint64_t id, size_t size) {
    b->block = bench_nonnull(malloc(size), size);
    b->size = size;
    b->id = id;
    for (size_t offset = 0; offset + 8 <= size; offset += BENCH_PAGE)
        b->block[offset / 8] = bench_tag_value(id, offset);
    /* and the last word, which is rarely on a page boundary */
    b->block[size / 8 - 1] = bench_tag_value(id, size);
}

static inline void bench_paged_check_and_free(bench_paged_block *b) {
    for (size_t offset = 0; offset + 8 <= b->size; offset += BENCH_PAGE)
        BENCH_CHECK(b->block[offset / 8] == bench_tag_value(b->id, offset),
                    "block %llu (%zu bytes) changed at offset %zu", (unsigned long long)b->id,
                    b->size, offset);
    BENCH_CHECK(b->block[b->size / 8 - 1] == bench_tag_value(b->id, b->size),
                "block %llu (%zu bytes) changed at its end", (unsigned long long)b->id, b->size);
    free(b->block);
}

#endif

/* realloc.c — models programs that build buffers by appending (string
 * builders, growing arrays, readers that do not know a message's length):
 * BUFFERS buffers, each grown by realloc from 16 bytes to MAX bytes in random
 * steps of 1 to 19 bytes (about 6,500 reallocs per 64 KiB buffer, 650,000
 * for the default 100), a random buffer at each step, so blocks of every
 * size up to MAX are live at once. Every byte appended is written, as a
 * program appending would. Allocators that serve the sizes above 16 KiB
 * from individual mappings pay system calls and page faults here that
 * allocators with medium size classes do not.
 *
 * usage: realloc [BUFFERS [MAX [ROUNDS]]]
 * ROUNDS (default 1) repeats the whole growth, all buffers freed in between:
 * what a round after the first costs is the steady state.
 * Each buffer's bytes are a function of its id and their offset, checked in
 * full before it is freed; a mismatch exits 1. */
#include "bench.h"

typedef struct {
    unsigned char *data;
    size_t size;
    uint64_t id;
} growing;

static unsigned char byte_at(uint64_t id, size_t offset) {
    return (unsigned char)(id * 131 + offset * 7 + (offset >> 8));
}

int main(int argc, char **argv) {
    long buffers = bench_arg(argc, argv, 1, 100);
    long max = bench_arg(argc, argv, 2, 65536);
    long rounds = bench_arg(argc, argv, 3, 1);
    bench_rng rng = {42};
    BENCH_CHECK(buffers > 0 && max >= 16 && rounds > 0, "need BUFFERS > 0, MAX >= 16, ROUNDS > 0");
    growing *all = bench_nonnull(calloc((size_t)buffers, sizeof *all), sizeof *all);
    size_t *open = bench_nonnull(calloc((size_t)buffers, sizeof *open), sizeof *open);
    size_t reallocs = 0;
    for (long round = 0; round < rounds; round++) {
        size_t open_count = (size_t)buffers;
        for (size_t i = 0; i < (size_t)buffers; i++) {
            all[i].size = 16;
            all[i].id = i;
            all[i].data = bench_nonnull(malloc(16), 16);
            for (size_t b = 0; b < 16; b++) all[i].data[b] = byte_at(i, b);
            open[i] = i;
        }
        while (open_count > 0) {
            size_t pick = (size_t)bench_range(&rng, 0, open_count - 1);
            growing *g = &all[open[pick]];
            size_t size = g->size + (size_t)bench_range(&rng, 1, 19);
            if (size > (size_t)max) size = (size_t)max;
            g->data = bench_nonnull(realloc(g->data, size), size);
            for (size_t b = g->size; b < size; b++) g->data[b] = byte_at(g->id, b);
            g->size = size;
            reallocs++;
            if (size == (size_t)max) open[pick] = open[--open_count];
        }
        for (size_t i = 0; i < (size_t)buffers; i++) {
            for (size_t b = 0; b < all[i].size; b++)
                BENCH_CHECK(all[i].data[b] == byte_at(i, b), "buffer %zu changed at offset %zu", i,
                            b);
            free(all[i].data);
        }
    }
    free(open);
    free(all);
    printf("%zu reallocs\n", reallocs);
    return 0;
}

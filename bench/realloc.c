/* realloc.c — models buffers that grow by many small appends (a log line
 * being assembled, a network read buffer, a vector without a capacity
 * policy, code that calls realloc for every append): BUFFERS live buffers
 * (100 by default), each grown by realloc from 16 bytes to MAX_BYTES in
 * random steps, one buffer at random per step, so neighbouring buffers grow
 * in turn and get in each other's way. A buffer that reaches MAX_BYTES is
 * checked, freed and started again at 16 bytes. Measures realloc: growing in
 * place when the memory after a block is free, moving (and copying) when it
 * is not, and what growth costs in mappings and page faults once blocks
 * leave the small size classes.
 *
 * usage: realloc MAX_BYTES REALLOCS [BUFFERS]
 * Steps are log-uniform, 1 byte .. MAX_BYTES/32. A buffer's bytes are a
 * window of a fixed random pattern starting at an offset chosen per buffer
 * and generation; every realloc is followed by a check of the old first and
 * last bytes (realloc must have kept them) before the new bytes are written,
 * and the whole buffer is compared with the pattern before it is freed. A
 * mismatch exits 1. ops = malloc/calloc/realloc calls made. */
#include "bench.h"

#define MIN_SIZE 16
/* Offsets into the pattern differ per buffer and generation, so a buffer
 * holding another's bytes (overlap, a stale copy) is caught. */
#define OFFSETS  251

typedef struct {
    unsigned char *bytes;
    size_t size;
    size_t offset; /* where in the pattern this buffer's content starts */
} growing;

static unsigned char *pattern;

static void check(const growing *buffer, size_t from, size_t length, long index) {
    BENCH_CHECK(memcmp(buffer->bytes + from, pattern + buffer->offset + from, length) == 0,
                "buffer %ld (%zu bytes) differs at %zu..%zu", index, buffer->size, from,
                from + length);
}

static void start(growing *buffer, size_t offset) {
    buffer->bytes = bench_nonnull(malloc(MIN_SIZE), MIN_SIZE);
    buffer->size = MIN_SIZE;
    buffer->offset = offset;
    memcpy(buffer->bytes, pattern + offset, MIN_SIZE);
}

int main(int argc, char **argv) {
    size_t max_size = (size_t)bench_arg(argc, argv, 1, 65536);
    long reallocs = bench_arg(argc, argv, 2, 650000);
    long buffer_count = bench_arg(argc, argv, 3, 100);
    BENCH_CHECK(max_size >= 64 * MIN_SIZE, "MAX_BYTES must be at least %d", 64 * MIN_SIZE);

    /* The pattern is not part of the measurement; its allocation is still an
     * allocator call and is counted. */
    size_t pattern_size = max_size + OFFSETS;
    pattern = bench_nonnull(malloc(pattern_size), pattern_size);
    bench_rng pattern_rng = {4242};
    for (size_t i = 0; i < pattern_size; i += 8) {
        uint64_t word = bench_next(&pattern_rng);
        memcpy(pattern + i, &word, pattern_size - i < 8 ? pattern_size - i : 8);
    }
    growing *buffers =
        bench_nonnull(calloc(buffer_count, sizeof *buffers), buffer_count * sizeof *buffers);
    uint64_t ops = 2;

    bench_rng rng = {8086};
    for (long i = 0; i < buffer_count; i++)
        start(&buffers[i], (size_t)bench_range(&rng, 0, OFFSETS - 1));
    ops += (uint64_t)buffer_count;

    size_t max_step = max_size / 32;
    uint64_t completed = 0, grown_bytes = 0;
    for (long done = 0; done < reallocs; done++) {
        long index = (long)bench_range(&rng, 0, buffer_count - 1);
        growing *buffer = &buffers[index];
        size_t old_size = buffer->size;
        size_t new_size = old_size + bench_log_range(&rng, 1, max_step);
        if (new_size > max_size) new_size = max_size;
        buffer->bytes = bench_nonnull(realloc(buffer->bytes, new_size), new_size);
        buffer->size = new_size;
        ops++;
        check(buffer, 0, 8, index);
        check(buffer, old_size - 8, 8, index);
        memcpy(buffer->bytes + old_size, pattern + buffer->offset + old_size, new_size - old_size);
        grown_bytes += new_size - old_size;
        if (new_size == max_size) {
            check(buffer, 0, max_size, index);
            free(buffer->bytes);
            start(buffer, (size_t)bench_range(&rng, 0, OFFSETS - 1));
            ops++;
            completed++;
        }
    }

    for (long i = 0; i < buffer_count; i++) {
        check(&buffers[i], 0, buffers[i].size, i);
        free(buffers[i].bytes);
    }
    free(buffers);
    free(pattern);
    printf("realloc max=%zu buffers=%ld reallocs=%ld completed=%llu grown_bytes=%llu ops=%llu\n",
           max_size, buffer_count, reallocs, (unsigned long long)completed,
           (unsigned long long)grown_bytes, (unsigned long long)ops);
    return 0;
}

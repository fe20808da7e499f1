/* strings.c — models string builders and growable vectors: a pool of live
 * buffers of mixed final sizes (log-uniform 16 B .. 64 KiB), each built by
 * appending chunks and growing with realloc, then kept for a while, read and
 * freed. Half the builders grow geometrically (capacity doubles, as C++
 * vectors and most string libraries do), half grow exactly to the new length
 * on every append (naive C code), which stresses in-place realloc and the
 * copy when a block has to move to a larger size class.
 *
 * usage: strings BUILDS [POOL]
 * Each buffer's words are a function of its id and position; when a buffer
 * is replaced its whole content is verified (realloc must have copied every
 * byte). A mismatch exits 1. ops = malloc/calloc/realloc calls made. */
#include "bench.h"

#define MAX_LENGTH (64 * 1024)

/* malloc/calloc/realloc calls made, for the result line's ops=. */
static uint64_t allocation_calls;

typedef struct {
    uint64_t *words;
    size_t length; /* in words */
    uint64_t id;
} text_buffer;

/* Content is written and checked a word at a time: the point is the
 * allocator's realloc, not a byte loop. */
static inline uint64_t word_at(uint64_t id, size_t position) {
    return id * 0x9e3779b97f4a7c15ULL + position;
}

static void build(text_buffer *buffer, uint64_t id, bench_rng *rng) {
    size_t target = bench_log_range(rng, 16, MAX_LENGTH) / 8;
    int exact_growth = (int)(id & 1);
    size_t capacity = exact_growth ? 0 : 2, length = 0;
    uint64_t *words = exact_growth ? NULL : bench_nonnull(malloc(capacity * 8), capacity * 8);
    allocation_calls += !exact_growth;
    while (length < target) {
        /* Appends are 8..64 bytes, a bigger bite (64 B..2 KiB) now and then. */
        size_t chunk =
            bench_range(rng, 0, 15) == 0 ? bench_range(rng, 8, 256) : bench_range(rng, 1, 8);
        if (chunk > target - length) chunk = target - length;
        if (length + chunk > capacity) {
            size_t wanted = length + chunk;
            if (!exact_growth)
                while (capacity < wanted) capacity *= 2;
            else
                capacity = wanted;
            words = bench_nonnull(realloc(words, capacity * 8), capacity * 8);
            allocation_calls++;
        }
        for (size_t i = 0; i < chunk; i++) words[length + i] = word_at(id, length + i);
        length += chunk;
    }
    buffer->words = words;
    buffer->length = length;
    buffer->id = id;
}

static uint64_t verify_and_free(text_buffer *buffer) {
    uint64_t sum = 0;
    for (size_t i = 0; i < buffer->length; i++) {
        BENCH_CHECK(buffer->words[i] == word_at(buffer->id, i), "buffer %llu word %zu of %zu",
                    (unsigned long long)buffer->id, i, buffer->length);
        sum += buffer->words[i] >> 32;
    }
    free(buffer->words);
    buffer->words = NULL;
    return sum;
}

int main(int argc, char **argv) {
    long builds = bench_arg(argc, argv, 1, 200000);
    long pool_size = bench_arg(argc, argv, 2, 64);

    text_buffer *pool = bench_nonnull(calloc(pool_size, sizeof *pool), pool_size * sizeof *pool);
    allocation_calls++;
    bench_rng rng = {2024};
    uint64_t checksum = 0, total_bytes = 0;
    for (long b = 0; b < builds; b++) {
        text_buffer *slot = &pool[bench_range(&rng, 0, pool_size - 1)];
        if (slot->words != NULL) checksum += verify_and_free(slot);
        build(slot, (uint64_t)b, &rng);
        total_bytes += slot->length * 8;
    }
    for (long i = 0; i < pool_size; i++)
        if (pool[i].words != NULL) checksum += verify_and_free(&pool[i]);
    free(pool);
    printf("strings builds=%ld pool=%ld bytes=%llu checksum=%llu ops=%llu\n", builds, pool_size,
           (unsigned long long)total_bytes, (unsigned long long)checksum,
           (unsigned long long)allocation_calls);
    return 0;
}

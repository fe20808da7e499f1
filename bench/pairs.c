/* pairs.c — models the tightest allocation pattern there is: a loop that
 * allocates one block of a fixed size, uses it briefly and frees it (a
 * temporary buffer per request). Measures the allocator's fast path, malloc
 * plus free of the same block, with nothing live in between.
 *
 * usage: pairs SIZE ITERATIONS
 * Every block gets a pattern in its first and last word; the pattern is
 * read back before the free and summed; the sum is checked against the value
 * computed without the allocator. Prints one line: workload, parameters, sum,
 * ops (malloc calls). */
#include "bench.h"

/* The compiler may drop a malloc/free pair whose memory is never observed:
 * the pointer escapes through this volatile so every pair really happens. */
static void *volatile escaped_block;

int main(int argc, char **argv) {
    size_t size = (size_t)bench_arg(argc, argv, 1, 64);
    long iterations = bench_arg(argc, argv, 2, 10000000);
    BENCH_CHECK(size >= 16, "size must be at least 16, got %zu", size);

    uint64_t sum = 0;
    for (long i = 0; i < iterations; i++) {
        uint64_t *block = malloc(size);
        bench_nonnull(block, size);
        escaped_block = block;
        block[0] = (uint64_t)i;
        block[size / 8 - 1] = (uint64_t)i * 3;
        /* Read back through the escaped pointer: another thread could have
         * written it as far as the compiler knows, so the loads stay. */
        uint64_t *seen = escaped_block;
        sum += seen[0] + seen[size / 8 - 1];
        free(block);
    }

    /* sum over i of 4*i */
    uint64_t expected = 4 * ((uint64_t)iterations * (uint64_t)(iterations - 1) / 2);
    BENCH_CHECK(sum == expected, "sum %llu, expected %llu", (unsigned long long)sum,
                (unsigned long long)expected);
    printf("pairs size=%zu iterations=%ld sum=%llu ops=%ld\n", size, iterations,
           (unsigned long long)sum, iterations);
    return 0;
}

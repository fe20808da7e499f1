/* arena_exhaustion.c — what malloc does when the small-object arena is
 * full, run by tests/stress/arena_exhaustion.sh under a build of the
 * profile whose arena is 16 MiB (make's small-arena library) so that the
 * arena is filled in a moment. The claims:
 *  1. the malloc that finds no room returns NULL with errno ENOMEM (no
 *     crash, no report), and only when there is none: 100,000 further
 *     mallocs of the class all fail too (before, malloc tried only the way
 *     it picked at random, returned NULL while the class's other open slabs
 *     still had blocks, and 883 of the next 100,000 succeeded);
 *  2. once k blocks are freed, the next k mallocs of their class succeed:
 *     every freed block can be handed out again, wherever it waits (the
 *     quarantine, a slab's local free list, a way other than the one a
 *     malloc picked at random, a slab on the full list) — before, malloc
 *     went on returning NULL now and then while thousands of freed blocks
 *     of its class were available;
 *  3. the same for blocks other threads freed (collected remote frees);
 *  4. once everything is freed, another class gets the memory back (empty
 *     slabs return to the segments): at least 90% as many bytes as the
 *     first class had.
 * Exit status 0 on success; a failed claim prints what it saw and exits 1. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bw_test.h"

#define MAX_BLOCKS (1u << 22)

static void **blocks; /* mmap'd, so the bookkeeping needs no arena */

static size_t fill(size_t size) {
    size_t n = 0;
    errno = 0;
    while (n < MAX_BLOCKS) {
        void *p = malloc(size);
        if (!p) break;
        memset(p, 0x5a, size);
        blocks[n++] = p;
    }
    if (n == MAX_BLOCKS || errno != ENOMEM) {
        fprintf(stderr, "fill(%zu): %zu blocks, then errno %d (want a NULL with ENOMEM)\n", size, n,
                errno);
        exit(1);
    }
    return n;
}

/* Frees every other block of blocks[0..n), then asks for as many again. */
static void refill_after_freeing_half(size_t n, size_t size, const char *how) {
    size_t freed = 0;
    for (size_t i = 0; i < n; i += 2, freed++) free(blocks[i]);
    for (size_t i = 0; i < freed; i++) {
        void *p = malloc(size);
        if (!p) {
            fprintf(stderr, "%s: malloc %zu of %zu after freeing %zu returned NULL\n", how, i + 1,
                    freed, freed);
            exit(1);
        }
        blocks[2 * i] = p;
    }
    printf("%s: %zu blocks of %zu bytes filled the arena; %zu freed, %zu handed out again\n", how,
           n, size, freed, freed);
}

/* The other thread is started before the arena fills (creating a thread
 * allocates), then waits for its turn. */
static size_t remote_count;
static sem_t remote_turn;
static void *free_every_other(void *arg) {
    (void)arg;
    while (sem_wait(&remote_turn) != 0) {
    }
    for (size_t i = 1; i < remote_count; i += 2) free(blocks[i]);
    return NULL;
}

int main(void) {
    blocks = mmap(NULL, MAX_BLOCKS * sizeof *blocks, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pthread_t thread;
    if (blocks == MAP_FAILED || sem_init(&remote_turn, 0, 0) != 0 ||
        pthread_create(&thread, NULL, free_every_other, NULL) != 0)
        return 2;

    size_t n = fill(48);
    size_t late = 0;
    for (int i = 0; i < 100000; i++) {
        void *p = malloc(48);
        if (p) blocks[n + late++] = p;
    }
    if (late) {
        fprintf(stderr, "first NULL after %zu blocks, then %zu of 100000 mallocs succeeded\n", n,
                late);
        return 1;
    }
    refill_after_freeing_half(n, 48, "local frees");

    /* Another thread frees the other half: the owner collects them. */
    remote_count = n;
    sem_post(&remote_turn);
    pthread_join(thread, NULL);
    size_t remote_freed = n / 2;
    for (size_t i = 0; i < remote_freed; i++) {
        void *p = malloc(48);
        if (!p) {
            fprintf(stderr, "remote frees: malloc %zu of %zu returned NULL\n", i + 1, remote_freed);
            return 1;
        }
        blocks[2 * i + 1] = p;
    }
    printf("remote frees: %zu freed by another thread, %zu handed out again\n", remote_freed,
           remote_freed);

    for (size_t i = 0; i < n; i++) free(blocks[i]);
    malloc_trim(0);
    size_t m = fill(1000);
    printf("other class: %zu blocks of 1000 bytes (%zu KiB) after %zu of 48 (%zu KiB)\n", m,
           m * 1000 / 1024, n, n * 48 / 1024);
    if (m * BW_TEST_CLASS_FOR(1000) < n * BW_TEST_CLASS_FOR(48) * 9 / 10) {
        fprintf(stderr, "other class got less than 90%% of the memory back\n");
        return 1;
    }
    for (size_t i = 0; i < m; i++) free(blocks[i]);
    return 0;
}

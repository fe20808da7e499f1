/* prodcons.c — models a pipeline in the shape of xmalloc-test: a producer
 * thread allocates every block and a consumer thread frees every block, so
 * the producer's heap never sees its own memory come back directly; the
 * allocator has to move freed memory from the consumer back to the producer
 * (remote free lists, thread caches that overflow into a shared pool).
 *
 * usage: prodcons BLOCKS_PER_PAIR [PAIRS]
 * PAIRS producer/consumer pairs run at once, each handing batches of 256
 * blocks (16..512 bytes, log-uniform) through a bounded queue (at most 32
 * batches in flight). The consumer checks every block's tag (producer,
 * sequence number, size) before freeing it, and that it received the
 * sequence numbers in order and all of them; otherwise it exits 1.
 * ops = malloc/calloc calls made (blocks and the batches carrying them). */
#include <pthread.h>

#include "bench.h"

#define BATCH       256
#define QUEUE_DEPTH 32
#define MIN_SIZE    16
#define MAX_SIZE    512

typedef struct {
    void *blocks[BATCH];
    uint32_t sizes[BATCH];
    int count;
} batch;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    batch *queue[QUEUE_DEPTH];
    int head, length;
    int done;
    long blocks;
    uint64_t pair_index;
    uint64_t consumed;
} pipe_state;

static void pipe_push(pipe_state *pipe, batch *full) {
    pthread_mutex_lock(&pipe->lock);
    while (pipe->length == QUEUE_DEPTH) pthread_cond_wait(&pipe->changed, &pipe->lock);
    pipe->queue[(pipe->head + pipe->length) % QUEUE_DEPTH] = full;
    pipe->length++;
    pthread_cond_broadcast(&pipe->changed);
    pthread_mutex_unlock(&pipe->lock);
}

/* NULL when the producer is done and the queue is empty. */
static batch *pipe_pop(pipe_state *pipe) {
    pthread_mutex_lock(&pipe->lock);
    while (pipe->length == 0 && !pipe->done) pthread_cond_wait(&pipe->changed, &pipe->lock);
    batch *next = NULL;
    if (pipe->length > 0) {
        next = pipe->queue[pipe->head];
        pipe->head = (pipe->head + 1) % QUEUE_DEPTH;
        pipe->length--;
        pthread_cond_broadcast(&pipe->changed);
    }
    pthread_mutex_unlock(&pipe->lock);
    return next;
}

static void *producer(void *arg) {
    pipe_state *pipe = arg;
    bench_rng rng = {7 + pipe->pair_index};
    uint64_t id_base = pipe->pair_index << 40;
    long sent = 0;
    while (sent < pipe->blocks) {
        /* The batch itself is allocated here and freed by the consumer too. */
        batch *full = bench_nonnull(malloc(sizeof *full), sizeof *full);
        full->count = 0;
        while (full->count < BATCH && sent < pipe->blocks) {
            size_t size = bench_log_range(&rng, MIN_SIZE, MAX_SIZE);
            void *block = bench_nonnull(malloc(size), size);
            bench_tag(block, size, id_base | (uint64_t)sent);
            full->blocks[full->count] = block;
            full->sizes[full->count] = (uint32_t)size;
            full->count++;
            sent++;
        }
        pipe_push(pipe, full);
    }
    pthread_mutex_lock(&pipe->lock);
    pipe->done = 1;
    pthread_cond_broadcast(&pipe->changed);
    pthread_mutex_unlock(&pipe->lock);
    return NULL;
}

static void *consumer(void *arg) {
    pipe_state *pipe = arg;
    uint64_t id_base = pipe->pair_index << 40;
    batch *full;
    while ((full = pipe_pop(pipe)) != NULL) {
        for (int i = 0; i < full->count; i++) {
            BENCH_CHECK(bench_tag_ok(full->blocks[i], full->sizes[i], id_base | pipe->consumed),
                        "block %llu of pair %llu is corrupt or out of order",
                        (unsigned long long)pipe->consumed, (unsigned long long)pipe->pair_index);
            free(full->blocks[i]);
            pipe->consumed++;
        }
        free(full);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long blocks = bench_arg(argc, argv, 1, 5000000);
    long pairs = bench_arg(argc, argv, 2, 1);

    pipe_state *pipes = bench_nonnull(calloc(pairs, sizeof *pipes), pairs * sizeof *pipes);
    pthread_t *ids = bench_nonnull(malloc(2 * pairs * sizeof *ids), 2 * pairs * sizeof *ids);
    for (long p = 0; p < pairs; p++) {
        pthread_mutex_init(&pipes[p].lock, NULL);
        pthread_cond_init(&pipes[p].changed, NULL);
        pipes[p].blocks = blocks;
        pipes[p].pair_index = (uint64_t)p;
        BENCH_CHECK(pthread_create(&ids[2 * p], NULL, producer, &pipes[p]) == 0, "create");
        BENCH_CHECK(pthread_create(&ids[2 * p + 1], NULL, consumer, &pipes[p]) == 0, "create");
    }
    uint64_t consumed = 0;
    for (long p = 0; p < pairs; p++) {
        pthread_join(ids[2 * p], NULL);
        pthread_join(ids[2 * p + 1], NULL);
        BENCH_CHECK(pipes[p].consumed == (uint64_t)blocks, "pair %ld freed %llu of %ld", p,
                    (unsigned long long)pipes[p].consumed, blocks);
        consumed += pipes[p].consumed;
    }
    free(ids);
    free(pipes);
    unsigned long long batches = ((unsigned long long)blocks + BATCH - 1) / BATCH;
    printf("prodcons pairs=%ld blocks_per_pair=%ld freed=%llu ops=%llu\n", pairs, blocks,
           (unsigned long long)consumed, 2 + (unsigned long long)pairs * (blocks + batches));
    return 0;
}

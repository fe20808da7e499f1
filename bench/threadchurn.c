/* threadchurn.c — models programs that start short-lived threads (a thread
 * per request or per task): each round starts THREADS threads that allocate
 * a few thousand blocks (16 B .. 4 KiB, log-uniform), free half of them,
 * hand the other half back and exit; the blocks handed back are freed by the
 * next round's threads, so memory outlives the thread that allocated it.
 * Measures the per-thread set-up and tear-down of the allocator (heap
 * creation, abandonment, adoption of orphaned memory) and cross-thread frees.
 *
 * usage: threadchurn ROUNDS [THREADS] [BLOCKS_PER_THREAD]
 * Every block is tagged with the thread and index that made it and checked
 * by whoever frees it; a bad tag exits 1. ops = malloc/calloc calls made. */
#include <pthread.h>

#include "bench.h"

typedef struct {
    void *block;
    size_t size;
    uint64_t id;
} handed_block;

typedef struct {
    uint64_t thread_id; /* unique over the whole run */
    long block_count;
    handed_block *inherited; /* from the previous round: free these */
    long inherited_count;
    handed_block *handed; /* to the next round */
    long handed_count;
} thread_job;

static void check_and_free(handed_block *entry) {
    BENCH_CHECK(bench_tag_ok(entry->block, entry->size, entry->id),
                "block %llx (%zu bytes) was overwritten", (unsigned long long)entry->id,
                entry->size);
    free(entry->block);
}

static void *worker(void *arg) {
    thread_job *job = arg;
    bench_rng rng = {job->thread_id * 7919 + 1};
    for (long i = 0; i < job->inherited_count; i++) check_and_free(&job->inherited[i]);
    free(job->inherited);
    job->inherited = NULL;

    handed_block *made =
        bench_nonnull(malloc(job->block_count * sizeof *made), job->block_count * sizeof *made);
    for (long i = 0; i < job->block_count; i++) {
        size_t size = bench_log_range(&rng, 16, 4096);
        made[i] = (handed_block){bench_nonnull(malloc(size), size), size,
                                 job->thread_id << 32 | (uint64_t)i};
        bench_tag(made[i].block, size, made[i].id);
    }
    /* Free the even ones here; the odd ones go to the next round, in an
     * array this thread allocates and another thread will free. */
    job->handed_count = job->block_count / 2;
    job->handed = bench_nonnull(malloc(job->handed_count * sizeof *job->handed),
                                job->handed_count * sizeof *job->handed);
    for (long i = 0; i < job->block_count; i++) {
        if (i % 2 == 0)
            check_and_free(&made[i]);
        else if (i / 2 < job->handed_count)
            job->handed[i / 2] = made[i];
        else
            check_and_free(&made[i]);
    }
    free(made);
    return NULL;
}

int main(int argc, char **argv) {
    long rounds = bench_arg(argc, argv, 1, 2000);
    long threads = bench_arg(argc, argv, 2, 2);
    long block_count = bench_arg(argc, argv, 3, 2000);

    thread_job *jobs = bench_nonnull(calloc(threads, sizeof *jobs), threads * sizeof *jobs);
    pthread_t *ids = bench_nonnull(malloc(threads * sizeof *ids), threads * sizeof *ids);
    uint64_t next_thread_id = 1, threads_run = 0;
    for (long round = 0; round < rounds; round++) {
        for (long t = 0; t < threads; t++) {
            /* Thread t inherits what thread (t+1) % threads handed over last
             * round, so blocks change hands between different threads. */
            thread_job *previous = &jobs[(t + 1) % threads];
            jobs[t].thread_id = next_thread_id++;
            jobs[t].block_count = block_count;
            jobs[t].inherited = previous->handed;
            jobs[t].inherited_count = previous->handed_count;
        }
        for (long t = 0; t < threads; t++) {
            /* Every job's hand-over array was moved to an inheritor above. */
            jobs[t].handed = NULL;
            jobs[t].handed_count = 0;
        }
        for (long t = 0; t < threads; t++)
            BENCH_CHECK(pthread_create(&ids[t], NULL, worker, &jobs[t]) == 0, "create");
        for (long t = 0; t < threads; t++) pthread_join(ids[t], NULL);
        threads_run += (uint64_t)threads;
    }
    for (long t = 0; t < threads; t++) {
        for (long i = 0; i < jobs[t].handed_count; i++) check_and_free(&jobs[t].handed[i]);
        free(jobs[t].handed);
    }
    free(ids);
    free(jobs);
    printf("threadchurn rounds=%ld threads=%ld blocks_per_thread=%ld threads_run=%llu ops=%llu\n",
           rounds, threads, block_count, (unsigned long long)threads_run,
           2 + threads_run * (2 + (unsigned long long)block_count));
    return 0;
}

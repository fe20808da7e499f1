/* icount_workingset.c — the working-set workload (workingset.c) reduced to
 * what `make bench-icount` measures under callgrind: 10,000 live blocks of
 * 16..512 bytes are allocated, 20,000 replacement steps warm the allocator up
 * (in ws_warm_up), then bw_icount_ws_loop performs STEPS (100,000 unless
 * given) steps. callgrind's inclusive count of bw_icount_ws_loop divided by
 * STEPS is the instructions per step: the allocator's malloc+free plus the
 * loop's own work (random slot and size, tag check and write), which is the
 * function's exclusive (self) count, so inclusive - self is the allocator's
 * share. Run it with LD_PRELOAD to measure any allocator. */
#include "workingset.h"

#define SLOTS         10000
#define WARM_UP_STEPS 20000

__attribute__((noinline)) void ws_warm_up(ws_slot *slots, bench_rng *rng);
__attribute__((noinline)) void ws_warm_up(ws_slot *slots, bench_rng *rng) {
    ws_steps(slots, SLOTS, rng, WARM_UP_STEPS);
}

__attribute__((noinline)) void bw_icount_ws_loop(ws_slot *slots, bench_rng *rng, long steps);
__attribute__((noinline)) void bw_icount_ws_loop(ws_slot *slots, bench_rng *rng, long steps) {
    ws_steps(slots, SLOTS, rng, steps);
}

int main(int argc, char **argv) {
    long steps = bench_arg(argc, argv, 1, 100000);
    static ws_slot slots[SLOTS];
    bench_rng rng = {42};
    for (uint32_t i = 0; i < SLOTS; i++)
        ws_fill(&slots[i], i, (size_t)bench_range(&rng, WS_MIN_SIZE, WS_MAX_SIZE));
    ws_warm_up(slots, &rng);
    bw_icount_ws_loop(slots, &rng, steps);
    for (uint32_t i = 0; i < SLOTS; i++) {
        ws_check(&slots[i], i);
        free(slots[i].block);
    }
    printf("%ld\n", steps);
    return 0;
}

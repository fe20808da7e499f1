/* test_entropy.c — measures Guarder's metric, the bits of entropy in the
 * placement of an allocation, for every small size class, and checks it
 * against the profile's target (BW_ENTROPY_BITS_SMALL for classes up to 256
 * bytes, BW_ENTROPY_BITS_LARGE above: 10 and 8 in default, strict and fuzz,
 * as Guarder, USENIX Security 2018, and the project issue ask).
 *
 * Classes above 16 KiB: four of the twelve (class_measured says which and
 * why).
 *
 * Method. A trial is one fresh thread (so a fresh heap: new random state,
 * no open slab of the class; the slots the previous trial released are
 * reformatted and reshuffled). It makes K allocations of the class (the
 * "attacker's" warm-up, all kept), then one more, the probe, and records
 * the probe's position AMONG THE CANDIDATES THE ATTACKER CANNOT RULE OUT:
 *     (ordinal of the probe's slab among the slabs the warm-up blocks came
 *      from, in order of first appearance, or "a slab not seen yet";
 *      rank of the probe among the block boundaries of that slab that the
 *      warm-up does not hold)
 * — the attacker knows every address they were given, so what they can
 * predict from slab addresses or from blocks they hold is not entropy.
 * Then it frees everything and exits (its slabs become empty and are
 * released). R independent trials give R samples of that position; the
 * Shannon entropy of their distribution is estimated with the Chao-Shen
 * coverage-adjusted estimator (A. Chao, T.-J. Shen, Environmental and
 * Ecological Statistics 10, 2003), which stays close to the true value when
 * R is of the order of the number of positions, where the plain plug-in
 * estimate (printed too, with the Miller-Madow correction) is biased low.
 * The collision (Renyi-2) entropy, a lower bound of Shannon's, is printed as
 * well. Two warm-ups:
 *   K = 0           the first allocation of the class in a thread;
 *   K = 2^target    after as many allocations as the target number of
 *                   candidates (1024 for classes up to 256 bytes, 256
 *                   above): a heap in use, the case the target is for.
 * Trials per class at K = 2^target: 768 up to 256 bytes, 1024 above (the
 * warm-up of the large classes moves megabytes per trial); at K = 0: 384
 * when a slab has more than 1024 blocks, 192 otherwise. At these sample
 * sizes the Chao-Shen estimate has a standard deviation of about 0.12 bit
 * at K = 2^target (0.35 bit at K = 0) and reads about 0.1 bit high
 * (simulated on uniform distributions), so a class that passes its target
 * by less than that passes by luck; the collision entropy column is the
 * conservative reading. A run takes about 3 s of CPU (fuzz is the slowest:
 * it zeroes and checks whole blocks).
 *
 * Tests:
 *  - test_entropy_measure prints the table (class, slab capacity, bits at
 *    K = 0 and K = 2^target by each estimator) and checks that the
 *    measurement itself worked;
 *  - test_first_allocation_uniform_in_slab (BW_RANDOM_FREELIST): at K = 0 the
 *    probe is uniform over its slab's blocks (the free list is a uniform
 *    random permutation): no class more than 2 bits below log2(blocks per
 *    slab), and 0.3 bit on average over the classes;
 *  - test_fork_children_place_differently (BW_ENTROPY_BITS_SMALL): children
 *    forked from one parent inherit its heap, free lists included, so the
 *    only thing that can tell their next allocations apart is the random
 *    choice among the open slabs ("ways"), which must be drawn afresh in
 *    each child: 32 children's first malloc of a 256-byte class must not
 *    all return the same block (a pre-forking server's workers would
 *    otherwise share one predictable layout);
 *  - test_entropy_target (profiles defining BW_ENTROPY_BITS_SMALL): every
 *    class reaches its target at K = 2^target. A class that does not is
 *    reported as "entropy target not met: measured X bits ..." and the test
 *    fails. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs these first; a separate block keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bw_test.h"

/* Set to 1 to make a missed target a failure in every build. */

#ifdef BW_ENTROPY_BITS_SMALL
#define TARGET_SMALL BW_ENTROPY_BITS_SMALL
#define TARGET_LARGE BW_ENTROPY_BITS_LARGE
#else /* measured against the numbers, not asserted */
#define TARGET_SMALL 10
#define TARGET_LARGE 8
#endif

/* A "slab" here is what bulwark shuffles as one: a 64 KiB slot, or a span
 * of 2 to 16 for the classes a slot holds fewer than 7 of
 * (bw_test_span_bytes). */
#define MAX_WARMUP                                                                                 \
    (1u << TARGET_SMALL > 1u << TARGET_LARGE ? 1u << TARGET_SMALL : 1u << TARGET_LARGE)
#define TRIALS_WARM_SMALL 768  /* K = 2^target, classes up to 256 bytes */
#define TRIALS_WARM_LARGE 1024 /* K = 2^target, larger classes: enough samples to read >8 bits */
#define TRIALS_FIRST_MANY 384  /* K = 0, slabs of more than 1024 blocks */
#define TRIALS_FIRST      192  /* K = 0, other slabs */
#define MAX_TRIALS        TRIALS_WARM_LARGE

static unsigned target_bits(size_t class_size) {
    return class_size <= 256 ? TARGET_SMALL : TARGET_LARGE;
}

/* Every class up to 16 KiB, and above it one class of each span shape that
 * holds the fewest blocks (7: 32 KiB in 4 slots, 64 KiB in 8, 128 KiB in
 * 16; their ways are sized by the same rule as the 9 to 12 blocks of the
 * others, ways.c) and 20 KiB (12 blocks in 4 slots). A trial of a
 * class of B bytes zeroes 257 B-byte blocks at free: the twelve classes
 * above 16 KiB all measured took 55 s of the test's 65 s (default), these
 * four about a third of that. */
static bool class_measured(size_t class_size) {
    return class_size <= 16384 || class_size == 20480 || class_size == 32768 ||
           class_size == 65536 || class_size == 131072;
}

/* ------------------------------------------------------------ one trial */

struct trial {
    size_t request;
    size_t warmup;     /* K */
    void **blocks;     /* K + 1 slots, allocated by the parent thread */
    uint64_t position; /* out: slab ordinal << 32 | rank */
    uint64_t relative; /* out: slab ordinal << 32 | distance from the slab's last warm-up block */
    bool failed;
};

static void *run_trial(void *arg) {
    struct trial *t = arg;
    for (size_t i = 0; i <= t->warmup; i++) {
        t->blocks[i] = malloc(t->request);
        if (!t->blocks[i]) {
            t->failed = true;
            for (size_t j = 0; j < i; j++) free(t->blocks[j]);
            return NULL;
        }
    }
    size_t class_size = bw_test_class_of(t->request + BW_TEST_CANARY_BYTES);
    size_t span = bw_test_span_bytes(class_size);
    uintptr_t probe = (uintptr_t)t->blocks[t->warmup];
    uintptr_t probe_slab = probe / span;

    /* Ordinal of the probe's slab: distinct slabs before its first
     * appearance in the warm-up, or the number of distinct slabs if it never
     * appears. Quadratic in the worst case, K <= 1024: fine. */
    uint64_t ordinal = 0;
    bool seen = false;
    for (size_t i = 0; i < t->warmup && !seen; i++) {
        uintptr_t slab = (uintptr_t)t->blocks[i] / span;
        bool first = true;
        for (size_t j = 0; j < i && first; j++) first = (uintptr_t)t->blocks[j] / span != slab;
        if (slab == probe_slab)
            seen = true;
        else if (first)
            ordinal++;
    }
    /* Rank among the slab's block boundaries the warm-up does not hold. */
    uint64_t rank = (probe & (span - 1)) / class_size;
    for (size_t i = 0; i < t->warmup; i++) {
        uintptr_t block = (uintptr_t)t->blocks[i];
        if (block / span == probe_slab && block < probe) rank--;
    }
    t->position = ordinal << 32 | rank;
    /* The same, but relative to what the attacker saw last in that slab:
     * the distance in blocks from the slab's most recent warm-up block. A
     * free list handed out in pieces (a chunk of the slab at a time) keeps
     * the next block near the last one; this measure sees that, the rank
     * above does not. A slab the warm-up never reached keeps its rank. */
    t->relative = t->position;
    for (size_t i = t->warmup; i-- > 0;) {
        uintptr_t block = (uintptr_t)t->blocks[i];
        if (block / span != probe_slab) continue;
        int64_t distance = ((int64_t)probe - (int64_t)block) / (int64_t)class_size;
        t->relative = ordinal << 32 | (uint64_t)(distance + (1 << 20));
        break;
    }
    for (size_t i = 0; i <= t->warmup; i++) free(t->blocks[i]);
    return NULL;
}

/* ------------------------------------------------------------ estimators */

struct estimate {
    double plugin, miller_madow, chao_shen, collision;
    size_t distinct;
};

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static struct estimate estimate_entropy(uint64_t *samples, size_t count) {
    struct estimate e = {0, 0, 0, 0, 0};
    qsort(samples, count, sizeof samples[0], compare_u64);
    size_t singletons = 0;
    double pairs = 0;
    for (size_t i = 0; i < count;) {
        size_t j = i;
        while (j < count && samples[j] == samples[i]) j++;
        size_t n = j - i;
        double p = (double)n / (double)count;
        e.plugin -= p * log2(p);
        singletons += n == 1;
        pairs += (double)n * (double)(n - 1);
        e.distinct++;
        i = j;
    }
    e.miller_madow = e.plugin + (double)(e.distinct - 1) / (2.0 * (double)count * log(2.0));
    /* Chao-Shen: estimated sample coverage C = 1 - f1/n scales every
     * observed frequency, and the Horvitz-Thompson weight 1/(1-(1-p)^n)
     * stands in for the positions never observed. */
    double coverage = 1.0 - (double)singletons / (double)count;
    if (coverage <= 0) coverage = 1.0 - (double)(singletons - 1) / (double)count;
    for (size_t i = 0; i < count;) {
        size_t j = i;
        while (j < count && samples[j] == samples[i]) j++;
        double p = coverage * (double)(j - i) / (double)count;
        e.chao_shen -= p * log2(p) / (1.0 - pow(1.0 - p, (double)count));
        i = j;
    }
    e.collision = pairs > 0 ? -log2(pairs / ((double)count * (double)(count - 1))) : INFINITY;
    return e;
}

/* ------------------------------------------------------------ per class */

struct class_result {
    size_t class_size;
    size_t blocks_per_slab;
    size_t warmup;
    struct estimate first;    /* K = 0 */
    struct estimate warm;     /* K = 2^target */
    struct estimate warm_rel; /* K = 2^target, relative to the last block seen */
    double milliseconds;      /* spent measuring the class */
};

static struct class_result results[BW_TEST_CLASS_COUNT];
static bool measured;

static bool measure(size_t request, size_t warmup, size_t trials, struct estimate *out,
                    struct estimate *out_relative) {
    static uint64_t positions[MAX_TRIALS], relatives[MAX_TRIALS];
    static void *blocks[MAX_WARMUP + 1];
    for (size_t r = 0; r < trials; r++) {
        struct trial t = {request, warmup, blocks, 0, 0, false};
        pthread_t thread;
        if (pthread_create(&thread, NULL, run_trial, &t) != 0 || pthread_join(thread, NULL) != 0 ||
            t.failed)
            return false;
        positions[r] = t.position;
        relatives[r] = t.relative;
    }
    *out = estimate_entropy(positions, trials);
    if (out_relative) *out_relative = estimate_entropy(relatives, trials);
    return true;
}

static double now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6;
}

static void measure_all(void) {
    if (measured) return;
    for (size_t c = 0; c < BW_TEST_CLASS_COUNT; c++) {
        struct class_result *res = &results[c];
        double start = now_ms();
        res->class_size = bw_test_class_size(c);
        if (!class_measured(res->class_size)) continue;
        res->blocks_per_slab =
            (bw_test_span_bytes(res->class_size) - BW_TEST_SLAB_BYTES + BW_TEST_SLAB_USABLE) /
            res->class_size;
        res->warmup = (size_t)1 << target_bits(res->class_size);
        size_t request = res->class_size - BW_TEST_CANARY_BYTES;
        size_t trials = res->class_size <= 256 ? TRIALS_WARM_SMALL : TRIALS_WARM_LARGE;
        size_t first_trials = res->blocks_per_slab > 1024 ? TRIALS_FIRST_MANY : TRIALS_FIRST;
        BW_REQUIRE(measure(request, 0, first_trials, &res->first, NULL), "class %zu, K = 0",
                   res->class_size);
        BW_REQUIRE(measure(request, res->warmup, trials, &res->warm, &res->warm_rel),
                   "class %zu, K = %zu", res->class_size, res->warmup);
        res->milliseconds = now_ms() - start;
    }
    measured = true;
}

/* ------------------------------------------------------------ tests */

static void test_entropy_measure(void **state) {
    measure_all();
    print_message("placement entropy in bits, profile %s (Chao-Shen / plug-in / Miller-Madow / "
                  "collision):\n",
                  BW_PROFILE_NAME);
    print_message("%6s %6s %8s | %-27s | %5s %-38s %5s %s\n", "class", "blocks", "log2", "K = 0",
                  "K", "K = 2^target", "rel", "ms");
    for (size_t c = 0; c < BW_TEST_CLASS_COUNT; c++) {
        const struct class_result *res = &results[c];
        if (!class_measured(res->class_size)) continue;
        print_message("%6zu %6zu %8.2f | %5.2f %5.2f %5.2f %5.2f %4s | %5zu %5.2f %5.2f %5.2f "
                      "%5.2f (target %2u) %5.2f %5.0f\n",
                      res->class_size, res->blocks_per_slab, log2((double)res->blocks_per_slab),
                      res->first.chao_shen, res->first.plugin, res->first.miller_madow,
                      res->first.collision, "", res->warmup, res->warm.chao_shen, res->warm.plugin,
                      res->warm.miller_madow, res->warm.collision, target_bits(res->class_size),
                      res->warm_rel.chao_shen, res->milliseconds);
        /* The measurement worked: positions varied unless the class has
         * one block per slab, and no estimate is absurd. */
        BW_REQUIRE(res->warm.chao_shen >= 0 && res->warm.chao_shen < 32, "class %zu: %f",
                   res->class_size, res->warm.chao_shen);
    }
}

/* A class may read up to 2 bits low (5 standard deviations of the
 * estimate at K = 0); the mean over all classes, where the noise averages
 * out, at most 0.3 bit. A free list that is not a uniform permutation, or a
 * slab not reshuffled for a new heap, loses far more. */
static void test_first_allocation_uniform_in_slab(void **state) {
    BW_SKIP_UNLESS(BW_RANDOM_FREELIST);
    measure_all();
    double total_shortfall = 0;
    size_t classes = 0;
    for (size_t c = 0; c < BW_TEST_CLASS_COUNT; c++) {
        const struct class_result *res = &results[c];
        if (!class_measured(res->class_size)) continue;
        classes++;
        double expected = log2((double)res->blocks_per_slab);
        total_shortfall += expected - res->first.chao_shen;
        BW_REQUIRE(res->first.chao_shen >= expected - 2.0,
                   "class %zu: first allocation %.2f bits, a shuffled slab of %zu blocks gives "
                   "%.2f",
                   res->class_size, res->first.chao_shen, res->blocks_per_slab, expected);
    }
    double mean_shortfall = total_shortfall / (double)classes;
    print_message("first allocation: %.3f bits below log2(blocks per slab) on average\n",
                  mean_shortfall);
    BW_REQUIRE(mean_shortfall <= 0.3, "first allocations %.2f bits below uniform on average",
               mean_shortfall);
}

/* Three rounds (the parent allocates in between, so the state it forks
 * from differs): in each, 32 children each report their first malloc of the
 * class through a pipe. */
#define FORK_CHILDREN 32
#define FORK_ROUNDS   3

static void test_fork_children_place_differently(void **state) {
#ifndef BW_ENTROPY_BITS_SMALL
    print_message("skipped: BW_ENTROPY_BITS_SMALL is not defined in profile %s (one slab per "
                  "class: children share the parent's next block by design)\n",
                  BW_PROFILE_NAME);
    skip();
#else
    const size_t request = 256 - BW_TEST_CANARY_BYTES;
    static void *warm[1024];
    for (size_t i = 0; i < 1024; i++) {
        warm[i] = malloc(request);
        assert_non_null(warm[i]);
    }
    for (size_t round = 0; round < FORK_ROUNDS; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        free(malloc(request)); /* the parent moves on between rounds */
        fflush(stdout);
        fflush(stderr);
        for (size_t c = 0; c < FORK_CHILDREN; c++) {
            pid_t pid = fork();
            assert_true(pid >= 0);
            if (pid == 0) {
                uintptr_t first = (uintptr_t)malloc(request);
                _exit(write(fds[1], &first, sizeof first) == sizeof first ? 0 : 1);
            }
            int status;
            assert_int_equal(waitpid(pid, &status, 0), pid);
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        uintptr_t firsts[FORK_CHILDREN];
        size_t distinct = 0;
        for (size_t c = 0; c < FORK_CHILDREN; c++) {
            assert_int_equal(read(fds[0], &firsts[c], sizeof firsts[c]), sizeof firsts[c]);
            bool repeat = false;
            for (size_t d = 0; d < c && !repeat; d++) repeat = firsts[d] == firsts[c];
            distinct += !repeat;
        }
        close(fds[0]);
        close(fds[1]);
        print_message("round %zu: %zu distinct first blocks among %d forked children\n", round,
                      distinct, FORK_CHILDREN);
        BW_REQUIRE(distinct > 1, "all %d children of one fork got block 0x%jx first", FORK_CHILDREN,
                   (uintmax_t)firsts[0]);
    }
    for (size_t i = 0; i < 1024; i++) free(warm[i]);
#endif
}

static void test_entropy_target(void **state) {
#ifndef BW_ENTROPY_BITS_SMALL
    print_message("skipped: BW_ENTROPY_BITS_SMALL is not defined in profile %s (no target)\n",
                  BW_PROFILE_NAME);
    skip();
#else
    measure_all();
    size_t missed = 0;
    for (size_t c = 0; c < BW_TEST_CLASS_COUNT; c++) {
        const struct class_result *res = &results[c];
        if (!class_measured(res->class_size)) continue;
        unsigned target = target_bits(res->class_size);
        /* The lower of the two readings: position among the blocks the
         * attacker does not hold, and relative to the last one they got. */
        double bits = res->warm.chao_shen < res->warm_rel.chao_shen ? res->warm.chao_shen
                                                                    : res->warm_rel.chao_shen;
        if (bits >= target) continue;
        missed++;
        print_message("entropy target not met: measured %.2f bits for the %zu-byte class after "
                      "%zu allocations (target %u bits, profile %s)\n",
                      bits, res->class_size, res->warmup, target, BW_PROFILE_NAME);
    }
    if (missed) fail_msg("%zu classes below their entropy target", missed);
#endif
}

int main(void) {
    if (!bw_is_bulwark_loaded()) {
        fprintf(stderr, "test_entropy: malloc is not bulwark's; refusing to test glibc\n");
        return 1;
    }
    bw_test_filters_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entropy_measure),
        cmocka_unit_test(test_first_allocation_uniform_in_slab),
        cmocka_unit_test(test_fork_children_place_differently),
        cmocka_unit_test(test_entropy_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

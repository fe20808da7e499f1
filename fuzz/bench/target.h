/* fuzz/bench/target.h — what the six planted-bug targets share: read the
 * input from stdin, and the gate that commits the bug only for inputs that
 * start with "BU". The gate tests one byte at a time, with a volatile store
 * between the tests, so the compiler cannot fold the compares into one and
 * a coverage-guided fuzzer sees progress at each byte (the shape of a magic
 * value a real parser checks); an unguided one needs about 2^16 tries. Two
 * bytes, not four: on the shared 2-CPU machine of fuzz/RESULTS.md each byte
 * took AFL++ about 5,000 executions (its deterministic arith stage), and a
 * campaign is 15 s. Direct trigger: printf 'BU' | ./target. */
#ifndef BW_BENCH_TARGET_H
#define BW_BENCH_TARGET_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int bench_stage; /* how far the gate got; keeps the tests apart */
static volatile unsigned char bench_sink;

static size_t bench_read_input(unsigned char *buf, size_t size) {
    size_t n = 0;
    ssize_t r;
    while (n < size && (r = read(0, buf + n, size - n)) > 0) n += (size_t)r;
    return n;
}

static int bench_gate(const unsigned char *in, size_t n) {
    bench_stage = 0;
    if (n < 1 || in[0] != 'B') return 0;
    bench_stage = 1;
    if (n < 2 || in[1] != 'U') return 0;
    bench_stage = 2;
    return 1;
}

/* Some ordinary work after the bug, the same in every target: a program
 * goes on allocating and freeing blocks of the sizes it uses. */
static void bench_more_work(size_t size) {
    for (int i = 0; i < 16; i++) {
        unsigned char *q = malloc(size);
        if (!q) exit(2);
        memset(q, i, size);
        bench_sink = q[size - 1];
        free(q);
    }
}

#endif

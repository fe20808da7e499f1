/* double_free.c — a 40-byte block freed twice (an error path that frees
 * what the caller frees again), on inputs that start with "BU". */
#include "target.h"

static void *volatile launder;

int main(void) {
    unsigned char in[64];
    size_t n = bench_read_input(in, sizeof in);
    char *buf = malloc(40);
    if (!buf) return 2;
    memset(buf, 'x', 40);
    bench_sink = (unsigned char)buf[39];
    free(buf);
    launder = buf;
    if (bench_gate(in, n)) free(launder); /* the bug */
    bench_more_work(40);
    return 0;
}

/* off_by_one.c — one byte written past malloc(13) (a strlen copy without
 * room for its NUL), on inputs that start with "BU". */
#include "target.h"

int main(void) {
    unsigned char in[64];
    size_t n = bench_read_input(in, sizeof in);
    char *name = malloc(13);
    if (!name) return 2;
    memcpy(name, "abcdefghijkl", 12);
    name[12] = 'm';
    if (bench_gate(in, n)) name[13] = 0; /* the bug */
    bench_sink = (unsigned char)name[0];
    free(name);
    bench_more_work(13);
    return 0;
}

/* overflow200.c — 200 bytes written past a 100-byte block (a copy of a
 * 300-byte record into a buffer sized for the usual 100), on inputs that
 * start with "BU". */
#include "target.h"

int main(void) {
    unsigned char in[64];
    size_t n = bench_read_input(in, sizeof in);
    char *record = malloc(100);
    if (!record) return 2;
    size_t length = bench_gate(in, n) ? 300 : 100; /* the bug */
    memset(record, 'r', length);
    bench_sink = (unsigned char)record[50];
    free(record);
    bench_more_work(100);
    return 0;
}

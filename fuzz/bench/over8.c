/* over8.c — 8 bytes written past malloc(64) (a loop's bound off by one
 * element of 8 bytes), on inputs that start with "BU". */
#include <stdint.h>

#include "target.h"

int main(void) {
    unsigned char in[64];
    size_t n = bench_read_input(in, sizeof in);
    uint64_t *table = malloc(64);
    if (!table) return 2;
    size_t count = bench_gate(in, n) ? 9 : 8; /* the bug: 9 elements of 8 bytes */
    for (size_t i = 0; i < count; i++) table[i] = i * 0x0101010101010101ull;
    bench_sink = (unsigned char)table[3];
    free(table);
    bench_more_work(64);
    return 0;
}

/* window: 4 live slots; each of 2,000 replacements frees a slot and mallocs a
 * log-uniform 64 KiB..8 MiB block, writing one byte per page. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 2000;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char *slot[4] = {0};
    size_t sum = 0;
    for (int i = 0; i < steps; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0;
        size_t size = (size_t)(65536.0 * exp(u * log(128.0)));
        int k = (int)((x >> 3) & 3);
        free(slot[k]);
        slot[k] = malloc(size);
        if (!slot[k]) return 1;
        for (size_t off = 0; off < size; off += 4096) slot[k][off] = (char)i;
        sum += (unsigned char)slot[k][size / 2];
    }
    for (int k = 0; k < 4; k++) free(slot[k]);
    printf("%zu\n", sum);
    return 0;
}

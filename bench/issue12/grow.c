/* grow: one buffer grown by realloc in 64 KiB steps to N MiB, one byte
 * written per new page; repeated R times. */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 256;
    size_t step = argc > 2 ? (size_t)atoi(argv[2]) * 1024 : 65536;
    int rounds = argc > 3 ? atoi(argv[3]) : 4;
    size_t sum = 0;
    for (int r = 0; r < rounds; r++) {
        char *p = NULL;
        size_t size = 0;
        while (size < (mib << 20)) {
            size_t next = size + step;
            char *q = realloc(p, next);
            if (!q) return 1;
            p = q;
            for (size_t off = size; off < next; off += 4096) p[off] = (char)off;
            size = next;
        }
        sum += (unsigned char)p[size - 4096];
        free(p);
    }
    printf("%zu\n", sum);
    return 0;
}

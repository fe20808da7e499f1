#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
    size_t s = (size_t)atoi(argv[1]) << 20;
    int n = 20;
    double total = 0;
    for (int i = 0; i < n; i++) {
        char *p = malloc(s);
        memset(p, i, s);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        char *q = realloc(p, 2 * s + 4096 * 100);
        clock_gettime(CLOCK_MONOTONIC, &b);
        total += (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
        if (q[s - 1] != (char)i) return 1;
        free(q);
    }
    printf("%zu MiB realloc x2: %.0f us per call\n", s >> 20, total / n);
    return 0;
}

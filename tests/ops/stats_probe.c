/* stats_probe.c — the program tests/ops/stats.sh runs under bulwark (see
 * there for the claims). Linked without bulwark: the preload provides the
 * bw_ functions, declared weak so that the program also links alone (and
 * says so). Built a second time with libbulwark.a linked in, for the
 * set-uid run, where the preload would not be honoured.
 *
 *   stats_probe COUNT SIZE DIR
 *
 * writes into DIR, each report with bw_print_stats_json:
 *   before.json   at the start;
 *   after.json    after COUNT blocks of SIZE bytes were allocated (and
 *                 written to), with nothing else allocated in between;
 *   info.xml      malloc_info(0, ...) then;
 *   large.json    with one 1 MiB block live;
 *   freed.json    after that block and 100 of the COUNT blocks were freed;
 * prints its pid on stdout and exits through exit(), the rest of the
 * blocks still live (BULWARK_STATS reports at exit). */
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void bw_print_stats_json(int fd) __attribute__((weak));

static void report(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror(path);
        exit(2);
    }
    bw_print_stats_json(fd);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: stats_probe COUNT SIZE DIR\n");
        return 2;
    }
    if (!bw_print_stats_json) {
        fprintf(stderr, "stats_probe: bulwark is not loaded (no bw_print_stats_json)\n");
        return 3;
    }
    size_t count = strtoul(argv[1], NULL, 10), size = strtoul(argv[2], NULL, 10);
    const char *dir = argv[3];
    char info_path[4096];
    snprintf(info_path, sizeof info_path, "%s/info.xml", dir);
    /* stdio's buffers before the measured section, not inside it */
    printf("%ld\n", (long)getpid());
    fflush(stdout);
    FILE *info = fopen(info_path, "w");
    if (!info) return perror(info_path), 2;
    char **blocks = malloc(count * sizeof *blocks);
    if (!blocks) return 2;

    report(dir, "before.json");
    for (size_t i = 0; i < count; i++) {
        blocks[i] = malloc(size);
        if (!blocks[i]) return 2;
        blocks[i][0] = blocks[i][size - 1] = (char)i;
    }
    report(dir, "after.json");
    if (malloc_info(0, info) != 0) return 2;
    fclose(info);

    char *large = malloc(1u << 20);
    if (!large) return 2;
    large[0] = large[(1u << 20) - 1] = 1;
    report(dir, "large.json");
    free(large);
    for (size_t i = 0; i < 100 && i < count; i++) free(blocks[i]);
    report(dir, "freed.json");
    exit(0);
}

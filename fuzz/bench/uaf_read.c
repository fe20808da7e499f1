/* uaf_read.c — a field of a freed 48-byte struct read, on inputs that start
 * with "BU". */
#include "target.h"

struct session {
    long id;
    char user[32];
    long flags;
};

int main(void) {
    unsigned char in[64];
    size_t n = bench_read_input(in, sizeof in);
    struct session *s = malloc(sizeof *s);
    if (!s) return 2;
    s->id = 7;
    memcpy(s->user, "someone", 8);
    s->flags = 1;
    int bug = bench_gate(in, n);
    if (!bug) bench_sink = (unsigned char)s->flags;
    free(s);
    if (bug) bench_sink = (unsigned char)((volatile struct session *)s)->flags; /* the bug */
    bench_more_work(sizeof *s);
    return 0;
}

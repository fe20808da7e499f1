/* forkloop.c — what a fork server pays per execution, without AFL++ and
 * its own costs: the parent, warmed up (small and large blocks made and
 * freed once, as a harness's set-up would), forks CHILDREN children one
 * after the other; each child makes 20 malloc/free pairs of 48 bytes,
 * writing every block (a small target's work), and leaves with _exit; the
 * parent waits for it before the next fork. Prints the CPU time per
 * execution, user + system of the parent and of the waited-for children
 * (getrusage), the minor page faults per execution (both sides), and
 * those of the parent alone.
 *
 * usage: forkloop [CHILDREN]        (fuzz/bench/forkloop.sh runs it under
 * each malloc, interleaved). Built with -fno-builtin, or the compiler drops
 * a malloc/free pair whose block does not escape. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static double cpu_us(const struct rusage *r) {
    return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) * 1e6 +
           (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec);
}

int main(int argc, char **argv) {
    long children = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
    if (children <= 0) return 2;
    void *warm[16];
    for (int i = 0; i < 16; i++) warm[i] = malloc(i < 12 ? (size_t)(13 + i * 40) : (size_t)300000);
    for (int i = 0; i < 16; i++) free(warm[i]);
    struct rusage self_before, kids_before, self_after, kids_after;
    getrusage(RUSAGE_SELF, &self_before);
    getrusage(RUSAGE_CHILDREN, &kids_before);
    for (long n = 0; n < children; n++) {
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            for (int k = 0; k < 20; k++) {
                char *block = malloc(48);
                if (!block) _exit(3);
                memset(block, k, 48);
                free(block);
            }
            _exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
    }
    getrusage(RUSAGE_SELF, &self_after);
    getrusage(RUSAGE_CHILDREN, &kids_after);
    double cpu =
        cpu_us(&self_after) - cpu_us(&self_before) + cpu_us(&kids_after) - cpu_us(&kids_before);
    long parent_faults = self_after.ru_minflt - self_before.ru_minflt;
    long faults = parent_faults + kids_after.ru_minflt - kids_before.ru_minflt;
    printf("forkloop children=%ld cpu_us_per_exec=%.1f faults_per_exec=%.1f "
           "parent_faults_per_exec=%.2f\n",
           children, cpu / (double)children, (double)faults / (double)children,
           (double)parent_faults / (double)children);
    return 0;
}

/* afl_main.c — the driver that turns a libFuzzer-style target
 * (LLVMFuzzerTestOneInput) into an AFL++ target, or into a replayer.
 *
 *   harness FILE...   runs each file once, in order (corpus replay, crash
 *                     reproduction; used by tests/fuzz/harnesses.sh)
 *   harness           under afl-fuzz: deferred fork server and persistent
 *                     mode with the test case in shared memory; otherwise
 *                     one input from stdin
 *
 * BW_FUZZ_LOOP=n (environment, default 1000) is the number of inputs one
 * forked child runs in persistent mode. The harnesses free everything they
 * allocate, but the allocator keeps state (quarantine, free-list order)
 * from one input to the next; BW_FUZZ_LOOP=1 gives every input a freshly
 * forked child, which is what replaying a crash file does. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();
#endif

#define BW_FUZZ_MAX_INPUT (1u << 20) /* afl-fuzz's own default cap */

static unsigned char *bw_read_all(FILE *f, size_t *len) {
    unsigned char *buf = malloc(BW_FUZZ_MAX_INPUT);
    if (!buf) return NULL;
    *len = fread(buf, 1, BW_FUZZ_MAX_INPUT, f);
    return buf;
}

int main(int argc, char **argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            FILE *f = fopen(argv[i], "rb");
            if (!f) {
                perror(argv[i]);
                return 2;
            }
            size_t len;
            unsigned char *buf = bw_read_all(f, &len);
            fclose(f);
            if (!buf) return 2;
            LLVMFuzzerTestOneInput(buf, len);
            free(buf);
        }
        return 0;
    }
#ifdef __AFL_FUZZ_TESTCASE_LEN
    /* Start the allocator (arena, secrets, first heap) before the fork
     * server, so no forked child repeats it. */
    free(malloc(1));
    const char *loop_env = getenv("BW_FUZZ_LOOP");
    int loops = loop_env && *loop_env ? atoi(loop_env) : 1000;
    if (loops < 1) loops = 1;
    __AFL_INIT();
    unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
    while (__AFL_LOOP(loops)) LLVMFuzzerTestOneInput(buf, (size_t)__AFL_FUZZ_TESTCASE_LEN);
    return 0;
#else
    size_t len;
    unsigned char *buf = bw_read_all(stdin, &len);
    if (!buf) return 2;
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
#endif
}

/* ops.c — the op-sequence harness: one thread, 256 slots, every call of
 * the malloc API driven by the input (bw_fuzz.c has the op table). Builds
 * as a libFuzzer target and, with afl_main.c, as an AFL++ target. */
#include <stddef.h>
#include <stdint.h>

#include "bw_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bw_fz_ctx_t ctx; /* 10 KiB: off the stack of libFuzzer's thread */
    bw_fz_input_t in = {data, size, 0};
    bw_fz_init(&ctx, "ops", BW_FZ_SLOTS, BW_FZ_MAX_LIVE);
    bw_fz_run(&ctx, &in);
    return 0;
}

/* bw_test.h — small helpers shared by the cmocka test programs.
 *
 * What they are for:
 *  - death tests: run a function in a forked child and assert that bulwark
 *    killed it with SIGABRT after printing exactly one well-formed report line;
 *  - proving that the allocator under test is bulwark and not glibc, so that a
 *    test never passes by accident against the system malloc;
 *  - reading the process's resident memory and mapping count from /proc;
 *  - filling a block with a position-dependent pattern and checking it, so a
 *    prefix of the block (after realloc) can be checked against the same seed;
 *  - the size-class table as the specification states it, so tests can probe
 *    every class boundary without linking against library internals (the
 *    .dyn builds cannot see hidden symbols). */
#ifndef BW_TEST_H
#define BW_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Runs fn(arg) in a forked child whose stderr and stdout go into a pipe, and
 * asserts (cmocka) that the child died of SIGABRT and wrote exactly one line
 * containing "bulwark:", of the form
 *     bulwark: <bug_class> of 0x<hex> ... in <function>
 * On failure everything the child wrote is printed. If fn returns, the child
 * exits with status 0, which fails the test. Core dumps are disabled in the
 * child; a child that hangs for 30 s is killed and the test fails. */
void bw_expect_death(void (*fn)(void *), void *arg, const char *bug_class, const char *function);

/* Same, and the reported address must be exactly `address` (the pointer the
 * faulty call received). Prepare the pointer in the parent before calling:
 * fork keeps it valid at the same address in the child. */
void bw_expect_death_at(void (*fn)(void *), void *arg, const char *bug_class, const char *function,
                        const void *address);

/* 1 if the process's malloc is bulwark's: bw_malloc is visible to dlsym (the
 * shared-library and LD_PRELOAD builds), or the malloc that dlsym finds first
 * is not the one in libc.so (the static build, where libbulwark.a's malloc
 * lives in the executable and is exported because libc also defines it). */
int bw_is_bulwark_loaded(void);

/* Applies cmocka test filters from the environment, for running one test of
 * a program (a fatal allocator error ends the whole process, so the tests
 * after it never run): BW_TEST_FILTER=<glob> runs only matching tests,
 * BW_TEST_SKIP=<glob> skips matching ones. Call before cmocka_run_group_tests. */
void bw_test_filters_from_env(void);

/* CLOCK_MONOTONIC in milliseconds (bounds on how long a child may run). */
uint64_t bw_test_now_ms(void);

/* Resident set size of this process in bytes (/proc/self/statm). */
size_t bw_test_rss_bytes(void);

/* Number of mappings of this process (lines of /proc/self/maps). */
size_t bw_test_map_count(void);

/* Fills n bytes at p with a pattern that depends on the seed and on each
 * byte's offset from p (not on p itself), so the first k bytes of a block
 * filled with (n, seed) equal the fill of (k, seed). */
void bw_fill(void *p, size_t n, uint64_t seed);

/* True if the n bytes at p hold bw_fill's pattern for seed. On a mismatch it
 * prints the first differing offset to stderr before returning false. */
bool bw_check(const void *p, size_t n, uint64_t seed);

/* True if all n bytes at p are zero; prints the first non-zero offset if not. */
bool bw_check_zero(const void *p, size_t n);

/* The small size classes as the specification defines them: 16-byte steps up
 * to 128, then four classes per power of two up to 131072. */
#define BW_TEST_SMALL_MAX   131072u
#define BW_TEST_CLASS_COUNT 48u
size_t bw_test_class_size(size_t index); /* index 0 .. BW_TEST_CLASS_COUNT-1 */
/* The class size a request of `size` bytes falls into (16 for size 0), or 0
 * when size is above the largest class. */
size_t bw_test_class_of(size_t size);

/* Hides a pointer's origin from the compiler so that deliberate misuse
 * (freeing a stack or global address, using a freed pointer) neither draws
 * -Wfree-nonheap-object / -Wuse-after-free nor gets optimised on the basis
 * of undefined behaviour. */
static inline void *bw_launder(const void *p) {
    void *q = (void *)p;
    __asm__ volatile("" : "+r"(q));
    return q;
}

/* Hides a size from the compiler: impossible sizes such as SIZE_MAX passed
 * as constants trip -Walloc-size-larger-than, which is the point here. */
static inline size_t bw_opaque_size(size_t n) {
    __asm__ volatile("" : "+r"(n));
    return n;
}

/* cmocka's assert_true with a printf-style explanation, for checks inside
 * loops where the failing size or alignment matters. fmt must be a literal. */
#define BW_REQUIRE(cond, fmt, ...)                                                                 \
    do {                                                                                           \
        if (!(cond)) fail_msg("%s:%d: %s: " fmt, __FILE__, __LINE__, #cond, ##__VA_ARGS__);        \
    } while (0)

/* ------------------------------------------------------------ security tests
 * (tests/security/): the exact report line, faults, and "no report". */

/* The profile as the tests model it (every test is compiled with
 * -include policy/<profile>.h): a small block's class holds its usable size
 * plus the canary; a large block keeps its canary in the 8 bytes after its
 * request unless it is right-aligned onto its trailing guard. */
#define BW_TEST_CANARY_BYTES       (BW_CANARY ? 8u : 0u)
#define BW_TEST_LARGE_CANARY_BYTES ((BW_CANARY && !BW_LARGE_RIGHT_ALIGN) ? 8u : 0u)
#define BW_TEST_PAGE               4096u
#define BW_TEST_SLAB_BYTES         ((size_t)1 << BW_SLAB_SHIFT)
#define BW_TEST_SLAB_USABLE        (BW_TEST_SLAB_BYTES - (BW_SLAB_GUARD ? BW_TEST_PAGE : 0))
/* Bytes a slab of a class spans: the fewest 64 KiB slots, a power of two,
 * whose span less its guard page holds at least 7 of its blocks (as
 * bw_class_span_slots). A slab is aligned to them. */
static inline size_t bw_test_span_bytes(size_t class_size) {
    size_t bytes = BW_TEST_SLAB_BYTES;
    while ((bytes - (BW_TEST_SLAB_BYTES - BW_TEST_SLAB_USABLE)) / class_size < 7) bytes *= 2;
    return bytes;
}
/* First byte of the guard page at the end of the slab holding p, a block of
 * a class of class_size bytes (BW_SLAB_GUARD). */
#define BW_TEST_SLAB_GUARD_OF(p, class_size)                                                       \
    ((char *)(((uintptr_t)(p) & ~(uintptr_t)(bw_test_span_bytes(class_size) - 1)) +                \
              bw_test_span_bytes(class_size) - BW_TEST_PAGE))

/* What malloc_usable_size reports for a small request: the request itself
 * with BW_EXACT_SIZE (byte-exact overflow detection), else its class less
 * the canary room. */
#define BW_TEST_USABLE_FOR(request)                                                                \
    (BW_EXACT_SIZE ? (size_t)(request) : BW_TEST_CLASS_FOR(request) - BW_TEST_CANARY_BYTES)

/* The class aligned_alloc(alignment, request) lands in: the smallest that
 * holds the request and its canary and whose size is a multiple of the
 * alignment (slabs start on 64 KiB boundaries). */
size_t bw_test_class_aligned(size_t request, size_t alignment);

/* The class a small request lands in, and the size of the mapping behind a
 * large block of `usable` bytes (user pages, canary room, two guards). */
#define BW_TEST_CLASS_FOR(request) bw_test_class_of((request) + BW_TEST_CANARY_BYTES)
#define BW_TEST_LARGE_MAP_SIZE(usable)                                                             \
    ((((usable) + BW_TEST_LARGE_CANARY_FOR(usable) + BW_TEST_PAGE - 1) &                           \
      ~(size_t)(BW_TEST_PAGE - 1)) +                                                               \
     2 * (size_t)BW_TEST_PAGE)
/* A large request of whole pages ends at its guard page in every profile:
 * no canary after it. */
#define BW_TEST_LARGE_CANARY_FOR(request)                                                          \
    ((request) % BW_TEST_PAGE != 0 ? BW_TEST_LARGE_CANARY_BYTES : 0u)

/* Allocates blocks of `request` bytes until `count` of them share one slab
 * (the span of its class, bw_test_span_bytes), stores those in out[0..count-1] in the
 * order they were returned, and frees the others. Tests that use a block
 * after free keep one of them (an anchor) live: a slab with a live block is
 * never released and decommitted, which would zero it behind the test's
 * back. Fails the test if 4096 draws do not give such a group. */
void bw_test_malloc_in_one_slab(size_t request, size_t count, void **out);

/* Like bw_expect_death_at, but the whole report line must be exactly
 *     bulwark: <bug_class> of 0x<address> (<info>) in <function>
 * where info is e.g. "64-byte class", "1060864-byte mapping" or
 * "not a bulwark block". */
void bw_expect_report(void (*fn)(void *), void *arg, const char *bug_class, const void *address,
                      const char *info, const char *function);

/* For a bug whose block the child allocates itself: a forked child never
 * allocates from the slabs it inherited (bulwark seals them so that sibling
 * processes do not share placement), so a test that needs a block freed and
 * handed out again, or a free list it can poison, makes that block in the
 * child. The child calls bw_test_record_address(block) before the bug, and
 * the report line must name that address, exactly as bw_expect_report. */
void bw_expect_report_recorded(void (*fn)(void *), void *arg, const char *bug_class,
                               const char *info, const char *function);
void bw_test_record_address(const void *address);
/* What the last child recorded (0 if nothing), after bw_run_child. */
uintptr_t bw_test_recorded_address(void);

/* Runs fn(arg) in a forked child (set up as for the death tests, with the
 * same 30 s bound) and returns its wait status, the first line it wrote
 * containing "bulwark:" (empty if none) and how many such lines it wrote:
 * for tests that judge many children by their own rule. */
int bw_run_child(void (*fn)(void *), void *arg, char *report, size_t report_size,
                 size_t *report_lines);

/* Runs fn(arg) in a forked child and asserts that the child died of exactly
 * signal_number (e.g. SIGSEGV for a guard page) and printed no line
 * containing "bulwark:" (a fault is not a report). */
void bw_expect_signal(void (*fn)(void *), void *arg, int signal_number);

/* Like bw_expect_signal(fn, arg, SIGSEGV), and the faulting address
 * (siginfo's si_addr, recorded by a handler the child installs) must lie in
 * [low, high): proves that the access faulted where the guard is, not
 * somewhere earlier. */
void bw_expect_fault_in(void (*fn)(void *), void *arg, const void *low, const void *high);

/* Runs fn(arg) in a forked child and asserts that it returned (the child
 * then exits 0) without dying and without printing a "bulwark:" line: the
 * allocator accepted everything fn did. fn reports a failed check of its
 * own with _exit(<nonzero>), which is shown. */
void bw_expect_no_report(void (*fn)(void *), void *arg);

/* The "(<info>)" text a report gives for a small block of class_size bytes
 * and for a large mapping of map_size bytes, formatted into buf. */
const char *bw_info_class(char *buf, size_t size, size_t class_size);
const char *bw_info_mapping(char *buf, size_t size, size_t map_size);
#define BW_INFO_NOT_A_BLOCK "not a bulwark block"

/* cmocka skip() that names the profile knob which turned the mechanism off:
 *     skipped: BW_CANARY=0 in profile fast
 * The test then counts as skipped, never as passed. */
#define BW_SKIP_UNLESS(knob)                                                                       \
    do {                                                                                           \
        if (!(knob)) {                                                                             \
            print_message("skipped: %s=%lld in profile %s\n", #knob, (long long)(knob),            \
                          BW_PROFILE_NAME);                                                        \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The same with a reason of the caller's: BW_SKIP_WHEN(cond, "BW_WAF_CHECK_MAX=%d < %d", ...). */
#define BW_SKIP_WHEN(cond, fmt, ...)                                                               \
    do {                                                                                           \
        if (cond) {                                                                                \
            print_message("skipped: " fmt " in profile %s\n", ##__VA_ARGS__, BW_PROFILE_NAME);     \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* Declared by C23 <stdlib.h> but not by glibc 2.36: bulwark exports them. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* BW_TEST_H */

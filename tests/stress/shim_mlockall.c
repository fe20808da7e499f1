/* shim_mlockall.c — preloaded next to libbulwark.so by tests/stress/mlockall.sh:
 * locks all the process's memory, present and future, from a constructor,
 * before the program's main runs, as a daemon that must never page does
 * first thing. Whether bulwark initialises before or after the lock depends
 * on which constructor runs first: glibc runs the preloaded objects'
 * constructors last-listed first. A lock that fails ends the program, so
 * the script never passes without the lock. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* write(2), not stdio: nothing in a constructor that may allocate before
 * the allocator is ready. */
static void bw_shim_say(const char *text) {
    ssize_t ignored = write(STDERR_FILENO, text, strlen(text));
    (void)ignored;
}

__attribute__((constructor)) static void bw_shim_lock_all(void) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) return;
    char digits[16];
    size_t n = sizeof digits;
    digits[--n] = 0;
    for (unsigned e = (unsigned)errno; n > 0 && (e || n == sizeof digits - 1); e /= 10)
        digits[--n] = (char)('0' + e % 10);
    bw_shim_say("shim_mlockall: mlockall(MCL_CURRENT | MCL_FUTURE) failed, errno ");
    bw_shim_say(digits + n);
    bw_shim_say("\n");
    _exit(99);
}

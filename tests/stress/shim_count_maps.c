/* shim_count_maps.c — preloaded before libbulwark.so by
 * tests/stress/rlimit_as.sh: counts the address-space system calls the
 * process makes through libc's mmap, munmap and mprotect, which is how
 * bulwark makes them (pkey_mprotect, made by syscall(), is not counted:
 * it only follows one of these), without strace. Each wrapper makes the
 * system call itself (no dlsym, which may allocate while the allocator is
 * not ready). bw_shim_map_calls() returns the count so far. */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static atomic_ulong bw_shim_calls;

__attribute__((visibility("default"))) unsigned long bw_shim_map_calls(void) {
    return atomic_load(&bw_shim_calls);
}

/* The raw system call returns -errno on failure; libc's convention is -1
 * and errno. */
static long bw_shim_result(long r) {
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

static long bw_shim_raw(long nr, long a, long b, long c, long d, long e, long f) {
    long r;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
}

__attribute__((visibility("default"))) void *mmap(void *addr, size_t length, int prot, int flags,
                                                  int fd, off_t offset) {
    atomic_fetch_add(&bw_shim_calls, 1);
    return (void *)bw_shim_result(
        bw_shim_raw(SYS_mmap, (long)addr, (long)length, prot, flags, fd, (long)offset));
}

__attribute__((visibility("default"))) int munmap(void *addr, size_t length) {
    atomic_fetch_add(&bw_shim_calls, 1);
    return (int)bw_shim_result(bw_shim_raw(SYS_munmap, (long)addr, (long)length, 0, 0, 0, 0));
}

__attribute__((visibility("default"))) int mprotect(void *addr, size_t length, int prot) {
    atomic_fetch_add(&bw_shim_calls, 1);
    return (int)bw_shim_result(bw_shim_raw(SYS_mprotect, (long)addr, (long)length, prot, 0, 0, 0));
}

/* glibc_malloc.c — a preload that puts glibc's own malloc back in front of
 * a program linked with another one (bench/daemons.sh: Debian's
 * redis-server is linked with libjemalloc, so "no preload" measures
 * jemalloc, not glibc). Every entry point forwards to glibc's exported
 * __libc_* implementation; malloc_usable_size, which glibc exports under
 * that name only, is looked up in libc.so.6 itself (a plain RTLD_NEXT
 * lookup would find jemalloc's). Not part of the library. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

#define EXPORT __attribute__((visibility("default")))

EXPORT void *malloc(size_t size) {
    return __libc_malloc(size);
}
EXPORT void free(void *ptr) {
    __libc_free(ptr);
}
EXPORT void *calloc(size_t count, size_t size) {
    return __libc_calloc(count, size);
}
EXPORT void *realloc(void *ptr, size_t size) {
    return __libc_realloc(ptr, size);
}
EXPORT void *memalign(size_t alignment, size_t size) {
    return __libc_memalign(alignment, size);
}
EXPORT void *aligned_alloc(size_t alignment, size_t size) {
    return __libc_memalign(alignment, size);
}
EXPORT void *valloc(size_t size) {
    return __libc_valloc(size);
}
EXPORT void *pvalloc(size_t size) {
    return __libc_pvalloc(size);
}
EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1))) return EINVAL;
    void *block = __libc_memalign(alignment, size);
    if (!block) return ENOMEM;
    *out = block;
    return 0;
}
EXPORT size_t malloc_usable_size(void *ptr) {
    static size_t (*glibc_usable_size)(void *);
    if (!glibc_usable_size) {
        void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        if (libc) glibc_usable_size = (size_t(*)(void *))dlsym(libc, "malloc_usable_size");
        if (!glibc_usable_size) return 0;
    }
    return glibc_usable_size(ptr);
}

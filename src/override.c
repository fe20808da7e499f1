/* override.c — the libc names bulwark exports, all in one reviewable place
 * (CONVENTIONS "the drop-in surface"). malloc and free inline the fast path
 * themselves; the others forward to the bw_* functions of api.c. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "alloc.h"
#include "bulwark.h"
#include "bw_internal.h"

#define BW_EXPORT __attribute__((visibility("default")))

struct mallinfo2 bw_mallinfo2_impl(void);

/* malloc and free inline the fast path (bw_malloc and bw_free in api.c do
 * the same); the other names call the bw_* entry points. */
BW_EXPORT void *malloc(size_t size) {
    BW_META_OPEN();
    void *block = bw_alloc_inline(size);
    BW_META_CLOSE();
    return block;
}

BW_EXPORT void free(void *ptr) {
    BW_META_OPEN();
    bw_free_inline(ptr, "free");
    BW_META_CLOSE();
}

BW_EXPORT void *calloc(size_t count, size_t size) {
    return bw_calloc(count, size);
}

BW_EXPORT void *realloc(void *ptr, size_t size) {
    return bw_realloc(ptr, size);
}

BW_EXPORT void *reallocarray(void *ptr, size_t count, size_t size) {
    return bw_reallocarray(ptr, count, size);
}

BW_EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
    return bw_posix_memalign(out, alignment, size);
}

BW_EXPORT void *aligned_alloc(size_t alignment, size_t size) {
    return bw_aligned_alloc(alignment, size);
}

BW_EXPORT void *memalign(size_t alignment, size_t size) {
    return bw_memalign(alignment, size);
}

BW_EXPORT void *valloc(size_t size) {
    return bw_valloc(size);
}

BW_EXPORT void *pvalloc(size_t size) {
    return bw_pvalloc(size);
}

BW_EXPORT size_t malloc_usable_size(void *ptr) {
    return bw_malloc_usable_size(ptr);
}

/* C23; glibc 2.36 does not declare these yet. */
BW_EXPORT void free_sized(void *ptr, size_t size);
BW_EXPORT void free_sized(void *ptr, size_t size) {
    bw_free_sized(ptr, size);
}

BW_EXPORT void free_aligned_sized(void *ptr, size_t alignment, size_t size);
BW_EXPORT void free_aligned_sized(void *ptr, size_t alignment, size_t size) {
    bw_free_aligned_sized(ptr, alignment, size);
}

/* Legacy name (removed from glibc's headers, still exported by glibc). */
BW_EXPORT void cfree(void *ptr);
BW_EXPORT void cfree(void *ptr) {
    bw_free(ptr);
}

BW_EXPORT int malloc_trim(size_t pad) {
    return bw_malloc_trim(pad);
}

BW_EXPORT void malloc_stats(void) {
    bw_malloc_stats();
}

BW_EXPORT int malloc_info(int options, FILE *stream) {
    return bw_malloc_info(options, stream);
}

BW_EXPORT struct mallinfo2 mallinfo2(void) {
    return bw_mallinfo2_impl();
}

/* The old int-sized struct: values saturate instead of wrapping. */
BW_EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 wide = bw_mallinfo2_impl();
    struct mallinfo narrow;
#define BW_NARROW(field) narrow.field = wide.field > 0x7fffffff ? 0x7fffffff : (int)wide.field
    BW_NARROW(arena);
    BW_NARROW(ordblks);
    BW_NARROW(smblks);
    BW_NARROW(hblks);
    BW_NARROW(hblkhd);
    BW_NARROW(usmblks);
    BW_NARROW(fsmblks);
    BW_NARROW(uordblks);
    BW_NARROW(fordblks);
    BW_NARROW(keepcost);
#undef BW_NARROW
    return narrow;
}

/* glibc's tunables have no meaning here; the known ones are accepted (return
 * 1, as glibc does on success) so programs that set them keep working. */
BW_EXPORT int mallopt(int param, int value) {
    (void)value;
    switch (param) {
    case M_MXFAST:
    case M_TRIM_THRESHOLD:
    case M_TOP_PAD:
    case M_MMAP_THRESHOLD:
    case M_MMAP_MAX:
    case M_CHECK_ACTION:
    case M_PERTURB:
    case M_ARENA_TEST:
    case M_ARENA_MAX:
        return 1;
    default:
        return 0;
    }
}

/* glibc's internal aliases, which some programs and libraries call. */
BW_EXPORT void *__libc_malloc(size_t size);
BW_EXPORT void *__libc_malloc(size_t size) {
    return bw_malloc(size);
}
BW_EXPORT void __libc_free(void *ptr);
BW_EXPORT void __libc_free(void *ptr) {
    bw_free(ptr);
}
BW_EXPORT void *__libc_calloc(size_t count, size_t size);
BW_EXPORT void *__libc_calloc(size_t count, size_t size) {
    return bw_calloc(count, size);
}
BW_EXPORT void *__libc_realloc(void *ptr, size_t size);
BW_EXPORT void *__libc_realloc(void *ptr, size_t size) {
    return bw_realloc(ptr, size);
}
BW_EXPORT void *__libc_memalign(size_t alignment, size_t size);
BW_EXPORT void *__libc_memalign(size_t alignment, size_t size) {
    return bw_memalign(alignment, size);
}
BW_EXPORT void *__libc_valloc(size_t size);
BW_EXPORT void *__libc_valloc(size_t size) {
    return bw_valloc(size);
}
BW_EXPORT void *__libc_pvalloc(size_t size);
BW_EXPORT void *__libc_pvalloc(size_t size) {
    return bw_pvalloc(size);
}
BW_EXPORT int __posix_memalign(void **out, size_t alignment, size_t size);
BW_EXPORT int __posix_memalign(void **out, size_t alignment, size_t size) {
    return bw_posix_memalign(out, alignment, size);
}

/* For override_cxx.cc: is the C++ runtime its weak references point to
 * there? (It is when the program is C++; a static link pulls in only the
 * parts the program uses, so each symbol throwing std::bad_alloc needs is
 * checked.) Addresses only: these are never used as chars. The same names
 * are made weak in override_cxx.cc (a symbol stays a weak reference in the
 * library only if every object refers to it weakly): keep the lists alike. */
extern char bw_cxx_get_new_handler __asm__("_ZSt15get_new_handlerv") __attribute__((weak));
extern char bw_cxx_allocate_exception __asm__("__cxa_allocate_exception") __attribute__((weak));
extern char bw_cxx_throw __asm__("__cxa_throw") __attribute__((weak));
extern char bw_cxx_bad_alloc_typeinfo __asm__("_ZTISt9bad_alloc") __attribute__((weak));
extern char bw_cxx_bad_alloc_vtable __asm__("_ZTVSt9bad_alloc") __attribute__((weak));
extern char bw_cxx_bad_alloc_dtor __asm__("_ZNSt9bad_allocD1Ev") __attribute__((weak));

bool bw_cxx_runtime_present(void);
bool bw_cxx_runtime_present(void) {
    return &bw_cxx_get_new_handler != NULL && &bw_cxx_allocate_exception != NULL &&
           &bw_cxx_throw != NULL && &bw_cxx_bad_alloc_typeinfo != NULL &&
           &bw_cxx_bad_alloc_vtable != NULL && &bw_cxx_bad_alloc_dtor != NULL;
}

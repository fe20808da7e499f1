/* c_operator_new.c — a C program (no C++ runtime loaded) that calls
 * bulwark's operator new and delete through dlsym, as a C++ library it
 * dlopens later would. libbulwark.so links no libstdc++, so:
 *   - operator new / delete of a normal size work;
 *   - nothrow new of an impossible size returns NULL;
 *   - throwing new of an impossible size cannot throw std::bad_alloc and
 *     must end in bulwark's one-line report and SIGABRT (argv[1] = "throw").
 * Exit 0 when the first two hold (the third never returns). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void *(*new_fn)(size_t);
typedef void *(*new_nothrow_fn)(size_t, const void *);
typedef void (*delete_fn)(void *);

int main(int argc, char **argv) {
    new_fn op_new = (new_fn)dlsym(RTLD_DEFAULT, "_Znwm");
    new_nothrow_fn op_new_nothrow = (new_nothrow_fn)dlsym(RTLD_DEFAULT, "_ZnwmRKSt9nothrow_t");
    delete_fn op_delete = (delete_fn)dlsym(RTLD_DEFAULT, "_ZdlPv");
    if (!op_new || !op_new_nothrow || !op_delete) {
        printf("operator new/delete not found: is bulwark preloaded?\n");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "throw") == 0) {
        void *p = op_new(SIZE_MAX / 2);
        printf("operator new(SIZE_MAX / 2) returned %p\n", p);
        return 1;
    }
    char *p = op_new(100);
    if (!p) return 1;
    memset(p, 0x5a, 100);
    op_delete(p);
    int tag = 0;
    if (op_new_nothrow(SIZE_MAX / 2, &tag) != NULL) {
        printf("nothrow operator new(SIZE_MAX / 2) did not return NULL\n");
        return 1;
    }
    printf("operator new, delete and nothrow new work without a C++ runtime\n");
    return 0;
}

// override_cxx.cc — the C++ operator new/delete family (Itanium ABI, the 20
// replaceable forms). C++ semantics: a throwing new retries through the
// installed new_handler and throws std::bad_alloc when there is none; the
// nothrow forms call the same loop and return nullptr instead. Sized and
// aligned deletes are checked against the block (a mismatch is fatal).
#include <cstddef>
#include <new>

#include "bulwark.h"

extern "C" {
void bw_free_checked_entry(void *ptr, size_t size, size_t alignment, const char *function);
}

#define BW_CXX_EXPORT __attribute__((visibility("default")))

namespace {

// align_val_t is a power of two ([new.delete.general]), so bw_aligned_alloc
// never refuses it for that.
void *bw_alloc_any(std::size_t size, std::size_t alignment) {
    return alignment > alignof(std::max_align_t) ? bw_aligned_alloc(alignment, size)
                                                 : bw_malloc(size);
}

// Throwing forms: retry through the new_handler, throw std::bad_alloc when
// there is none ([new.delete.single]).
void *bw_new_impl(std::size_t size, std::size_t alignment) {
    for (;;) {
        void *p = bw_alloc_any(size, alignment);
        if (p) return p;
        std::new_handler handler = std::get_new_handler();
        if (!handler) throw std::bad_alloc();
        handler();
    }
}

// Nothrow forms: the same loop, but a handler that throws bad_alloc ends it
// with nullptr; nothing escapes.
void *bw_new_nothrow(std::size_t size, std::size_t alignment) noexcept {
    for (;;) {
        void *p = bw_alloc_any(size, alignment);
        if (p) return p;
        std::new_handler handler = std::get_new_handler();
        if (!handler) return nullptr;
        try {
            handler();
        } catch (...) {
            return nullptr;
        }
    }
}

void bw_delete_sized(void *p, std::size_t size, std::size_t alignment, const char *fn) {
    // A null pointer is a no-op; size 0 never comes from a real new-expression
    // but is tolerated as "unknown".
    bw_free_checked_entry(p, size, alignment, fn);
}

} // namespace

BW_CXX_EXPORT void *operator new(std::size_t n) {
    return bw_new_impl(n, 0);
}
BW_CXX_EXPORT void *operator new[](std::size_t n) {
    return bw_new_impl(n, 0);
}
BW_CXX_EXPORT void *operator new(std::size_t n, const std::nothrow_t &) noexcept {
    return bw_new_nothrow(n, 0);
}
BW_CXX_EXPORT void *operator new[](std::size_t n, const std::nothrow_t &) noexcept {
    return bw_new_nothrow(n, 0);
}
BW_CXX_EXPORT void *operator new(std::size_t n, std::align_val_t a) {
    return bw_new_impl(n, static_cast<std::size_t>(a));
}
BW_CXX_EXPORT void *operator new[](std::size_t n, std::align_val_t a) {
    return bw_new_impl(n, static_cast<std::size_t>(a));
}
BW_CXX_EXPORT void *operator new(std::size_t n, std::align_val_t a,
                                 const std::nothrow_t &) noexcept {
    return bw_new_nothrow(n, static_cast<std::size_t>(a));
}
BW_CXX_EXPORT void *operator new[](std::size_t n, std::align_val_t a,
                                   const std::nothrow_t &) noexcept {
    return bw_new_nothrow(n, static_cast<std::size_t>(a));
}

BW_CXX_EXPORT void operator delete(void *p) noexcept {
    bw_free(p);
}
BW_CXX_EXPORT void operator delete[](void *p) noexcept {
    bw_free(p);
}
BW_CXX_EXPORT void operator delete(void *p, const std::nothrow_t &) noexcept {
    bw_free(p);
}
BW_CXX_EXPORT void operator delete[](void *p, const std::nothrow_t &) noexcept {
    bw_free(p);
}
BW_CXX_EXPORT void operator delete(void *p, std::size_t n) noexcept {
    bw_delete_sized(p, n, 0, "operator delete");
}
BW_CXX_EXPORT void operator delete[](void *p, std::size_t n) noexcept {
    bw_delete_sized(p, n, 0, "operator delete[]");
}
BW_CXX_EXPORT void operator delete(void *p, std::align_val_t a) noexcept {
    bw_delete_sized(p, 0, static_cast<std::size_t>(a), "operator delete");
}
BW_CXX_EXPORT void operator delete[](void *p, std::align_val_t a) noexcept {
    bw_delete_sized(p, 0, static_cast<std::size_t>(a), "operator delete[]");
}
BW_CXX_EXPORT void operator delete(void *p, std::align_val_t a, const std::nothrow_t &) noexcept {
    bw_delete_sized(p, 0, static_cast<std::size_t>(a), "operator delete");
}
BW_CXX_EXPORT void operator delete[](void *p, std::align_val_t a, const std::nothrow_t &) noexcept {
    bw_delete_sized(p, 0, static_cast<std::size_t>(a), "operator delete[]");
}
BW_CXX_EXPORT void operator delete(void *p, std::size_t n, std::align_val_t a) noexcept {
    bw_delete_sized(p, n, static_cast<std::size_t>(a), "operator delete");
}
BW_CXX_EXPORT void operator delete[](void *p, std::size_t n, std::align_val_t a) noexcept {
    bw_delete_sized(p, n, static_cast<std::size_t>(a), "operator delete[]");
}

/* os.c — every system call bulwark makes (DESIGN.md layer "os").
 *
 * Failures other than ENOMEM from mmap/mprotect/madvise mean the process is
 * in a state we do not understand, and are fatal (as hardened_malloc's
 * memory.c does), with two exceptions the kernel makes on purpose: memory
 * the program locked (mlock, mlockall) refuses MADV_DONTNEED and
 * MADV_GUARD_INSTALL with EINVAL, and a seccomp policy may refuse advice it
 * does not know (MADV_GUARD_INSTALL/REMOVE) with EINVAL at any time. Nothing
 * here allocates or uses stdio. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hot.h"
#include "lock.h"
#include "meta_key.h"
#include "os.h"
#include "random.h"
#include "report.h"
#include "segment.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 uapi/asm-generic/mman-common.h */
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif
#ifndef MPOL_PREFERRED
#define MPOL_PREFERRED 1
#endif

static bool bw_guard_madvise_ok; /* kernel supports MADV_GUARD_INSTALL */

/* What guards are made of, learnt as the process runs: sticky process-wide
 * flags rather than a record per range, since the callers guard and unguard
 * ranges of very different kinds (slab guard pages, whole parked mappings)
 * and unguarding undoes whatever may have guarded a range. Both only go
 * from false to true, so relaxed atomics suffice: bw_guard_by_mprotect is
 * set before the mprotect that guards a range, and the range reaches the
 * thread that unguards it through a lock (segment pool, large lock), which
 * then sees the flag; a thread that reads a stale bw_guard_remove_denied
 * only makes one more madvise that fails, and learns it itself. */
static atomic_bool bw_guard_by_mprotect;   /* some range was guarded by mprotect */
static atomic_bool bw_guard_remove_denied; /* MADV_GUARD_REMOVE refused (seccomp) */
/* Pages guarded since start-up, by how (statistics): relaxed adds next to
 * a system call, on slow paths only; on the locks' page (hot.h), a cache
 * line of their own (they are added to outside the large lock). */
#define bw_guard_pages_madvise  (bw_hot.guards.by_madvise)
#define bw_guard_pages_mprotect (bw_hot.guards.by_mprotect)

bw_topology_t bw_topology = {1, NULL};

/* Reserve address space with no access. With random_base, try a few random
 * aligned hints in the 47-bit user range first so that the arena's position
 * is unpredictable (ASLR gives mmap only page-granular, correlated bases). */
void *bw_os_reserve(size_t size, size_t alignment, bool random_base) {
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    if (random_base) {
        for (int attempt = 0; attempt < 8; attempt++) {
            uint64_t r;
            bw_random_bytes(&r, sizeof r);
            /* between 1 TiB and 64 TiB: far from the program, the stack and
             * the usual mmap area near 127 TiB. */
            uintptr_t hint = ((uintptr_t)1 << 40) + (uintptr_t)(r % ((uint64_t)63 << 40));
            hint &= ~(uintptr_t)(alignment - 1);
            void *p = mmap((void *)hint, size, PROT_NONE, flags | MAP_FIXED_NOREPLACE, -1, 0);
            if (p == (void *)hint) return p;
            if (p != MAP_FAILED) munmap(p, size); /* old kernel ignored MAP_FIXED_NOREPLACE */
        }
    }
    /* Fallback: over-reserve and trim to the alignment. */
    size_t over = size + alignment;
    void *p = mmap(NULL, over, PROT_NONE, flags, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t start = ((uintptr_t)p + alignment - 1) & ~(uintptr_t)(alignment - 1);
    if (start > (uintptr_t)p) munmap(p, start - (uintptr_t)p);
    uintptr_t end = start + size;
    if ((uintptr_t)p + over > end) munmap((void *)end, (uintptr_t)p + over - end);
    return (void *)start;
}

/* ------------------------------------------------------------ lazy space
 * bulwark's regions (arena, metadata, heaps, zero-size blocks) are laid out
 * at random bases and address arithmetic finds everything in them
 * (config.h, segment.h). Normally each region is one PROT_NONE reservation made
 * at start-up and committed piecewise with mprotect: nobody else can map
 * inside it, and every gap between committed pieces is a guard.
 *
 * PROT_NONE reservations count against RLIMIT_AS, though, and together they
 * come to about 67 GiB: under any smaller limit (`ulimit -v`, a container
 * or a test harness) they cannot be made, and before this mode bulwark
 * returned NULL from the first malloc. So when the soft limit is finite at
 * start-up, or a full reservation fails anyway, the space is "lazy"
 * (bw_space_lazy): a region is only placed (a random base, no system
 * call) and each piece is mapped on first use with MAP_FIXED_NOREPLACE at
 * the very address the reservation would have given it. Only what is used
 * counts against the limit, and the address arithmetic is unchanged.
 * What lazy space gives up: the holes between mapped pieces (the metadata
 * guard gaps, the arena not carved yet) fault just as PROT_NONE does, but
 * nothing stops another mapping (a MAP_FIXED or hinted mmap of the program
 * or a library) from landing in one later, next to a metadata array or a
 * segment. A piece whose addresses turn out to be taken is never used: an
 * arena segment is skipped, a metadata piece fails its caller with ENOMEM.
 * An unlimited process keeps the reservations; a finite limit lowered after
 * start-up only makes later mappings (large blocks, lazy pieces) fail with
 * ENOMEM, which malloc passes on. */
bool bw_space_lazy;

/* Whether a finite RLIMIT_AS asks for lazy space. */
bool bw_os_space_limited(void) {
    struct rlimit limit;
    return getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY;
}

/* Lazy regions placed so far: a new one must not overlap them (a
 * reservation would have been refused by the kernel), nor touch them (a
 * segment of guard space between regions, as between reservations at
 * independent random bases there almost always is). */
#define BW_PLACED_MAX 8u
static struct { uintptr_t start, end; } bw_placed[BW_PLACED_MAX];

static void *bw_os_place(size_t size, size_t alignment) {
    const uintptr_t gap = BW_SEGMENT_SIZE;
    unsigned free_entry = BW_PLACED_MAX;
    for (unsigned i = 0; i < BW_PLACED_MAX; i++)
        if (bw_placed[i].end == 0) free_entry = i;
    if (free_entry == BW_PLACED_MAX) return NULL;
    for (int attempt = 0; attempt < 64; attempt++) {
        uint64_t r;
        bw_random_bytes(&r, sizeof r);
        /* the window of bw_os_reserve's random hints */
        uintptr_t start = ((uintptr_t)1 << 40) + (uintptr_t)(r % (((uint64_t)63 << 40) - size));
        start &= ~(uintptr_t)(alignment - 1);
        bool clear = true;
        for (unsigned i = 0; i < BW_PLACED_MAX && clear; i++)
            clear = bw_placed[i].end == 0 || start + size + gap <= bw_placed[i].start ||
                    start >= bw_placed[i].end + gap;
        if (!clear) continue;
        bw_placed[free_entry].start = start;
        bw_placed[free_entry].end = start + size;
        return (void *)start;
    }
    return NULL;
}

/* A region's address space: reserved (PROT_NONE), or placed when lazy. */
void *bw_os_space_reserve(size_t size, size_t alignment) {
    return bw_space_lazy ? bw_os_place(size, alignment) : bw_os_reserve(size, alignment, true);
}

/* Give a region back (failed start-up). Lazy: only the placement is
 * forgotten; the caller unmaps the pieces it mapped (bw_os_space_uncommit),
 * since unmapping the whole range could remove someone else's mapping. */
void bw_os_space_release(void *base, size_t size) {
    if (!base) return;
    if (!bw_space_lazy) {
        bw_os_release(base, size);
        return;
    }
    for (unsigned i = 0; i < BW_PLACED_MAX; i++)
        if (bw_placed[i].start == (uintptr_t)base) bw_placed[i].start = bw_placed[i].end = 0;
}

/* A fresh anonymous mapping exactly at addr that replaces nothing. The
 * flags are the reservation's, so pieces mapped next to each other merge
 * into one VMA as committed ranges of a reservation do. EEXIST: someone
 * else's mapping is in the way; a kernel before 4.17 does not know the flag
 * and takes addr as a hint, which the address returned tells. */
static bw_map_t bw_os_map_fixed(void *addr, size_t size, int prot) {
    void *p = mmap(addr, size, prot,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == addr) return BW_MAP_OK;
    if (p != MAP_FAILED) {
        munmap(p, size);
        return BW_MAP_TAKEN;
    }
    if (errno == EEXIST) return BW_MAP_TAKEN;
    if (errno == EINVAL) bw_fatal_os("mmap", errno); /* a misaligned piece: our bug */
    return BW_MAP_NOMEM; /* RLIMIT_AS, the mapping count, or a policy refusing mmap */
}

/* Make a piece of a region readable and writable (meta: metadata, with
 * the metadata key). Reserved: bw_os_commit(_meta); lazy: bw_os_map_fixed,
 * then the key. BW_MAP_TAKEN only when lazy. */
bw_map_t bw_os_space_commit(void *addr, size_t size, bool meta) {
    if (!bw_space_lazy) {
        bool ok = meta ? bw_os_commit_meta(addr, size) : bw_os_commit(addr, size);
        return ok ? BW_MAP_OK : BW_MAP_NOMEM;
    }
    bw_map_t mapped = bw_os_map_fixed(addr, size, PROT_READ | PROT_WRITE);
    if (mapped != BW_MAP_OK || !meta || bw_meta_pkey < 0) return mapped;
    if (bw_os_commit_meta(addr, size)) return BW_MAP_OK;
    munmap(addr, size);
    return BW_MAP_NOMEM;
}

/* A piece of a region that must fault on every access (zero-size blocks):
 * already so when reserved; a PROT_NONE mapping when lazy, so that no other
 * mapping can take the addresses bulwark hands out. */
bw_map_t bw_os_space_fault(void *addr, size_t size) {
    return bw_space_lazy ? bw_os_map_fixed(addr, size, PROT_NONE) : BW_MAP_OK;
}

/* Undo bw_os_space_commit or bw_os_space_fault of a piece the caller will
 * not use (a failed step): lazy, the mapping goes, so that the next attempt
 * does not find its own piece in the way; reserved, the pages stay
 * committed (committing them again is harmless) until the reservation is
 * released. */
void bw_os_space_uncommit(void *addr, size_t size) {
    if (bw_space_lazy) bw_os_release(addr, size);
}

/* Make reserved pages usable. Adjacent committed ranges with equal
 * protection merge into one VMA, so committing segments in address order
 * does not grow the mapping count. */
bool bw_os_commit(void *addr, size_t size) {
    if (mprotect(addr, size, PROT_READ | PROT_WRITE) == 0) return true;
    if (errno == ENOMEM) return false;
    bw_fatal_os("mprotect", errno);
}

/* Metadata protection key (BW_PKEY_METADATA; meta_key.h explains the
 * scheme). Allocated write-enabled for the calling thread, which is in the
 * middle of initialisation; the entry point's BW_META_CLOSE disables writes.
 * No PKU (pkey_alloc fails with ENOSPC, EINVAL or ENOSYS): silently none. */
int bw_meta_pkey = -1;

void bw_os_meta_key_init(void) {
#if BW_PKEY_METADATA
    long key = syscall(SYS_pkey_alloc, 0ul, 0ul);
    if (key > 0 && key < 16) bw_meta_pkey = (int)key;
#endif
}

/* Start-up failed: the key goes back (there are 15), once every mapping
 * that carried it is gone. */
void bw_os_meta_key_release(void) {
#if BW_PKEY_METADATA
    if (bw_meta_pkey < 0) return;
    syscall(SYS_pkey_free, (unsigned long)bw_meta_pkey);
    bw_meta_pkey = -1;
#endif
}

/* Commit metadata pages: like bw_os_commit, tagged with the metadata key. */
bool bw_os_commit_meta(void *addr, size_t size) {
    if (bw_meta_pkey < 0) return bw_os_commit(addr, size);
    if (syscall(SYS_pkey_mprotect, addr, size, PROT_READ | PROT_WRITE, bw_meta_pkey) == 0)
        return true;
    if (errno == ENOMEM) return false;
    bw_fatal_os("pkey_mprotect", errno);
}

/* Tag already accessible metadata pages with the metadata key. */
bool bw_os_protect_meta(void *addr, size_t size) {
    return bw_meta_pkey < 0 || bw_os_commit_meta(addr, size);
}

/* Give the pages back to the kernel but keep the range readable and
 * writable: it reads as zeros when touched again, and no VMA is split.
 * False when the pages stayed as they were: the program locked them
 * (mlock/mlockall make MADV_DONTNEED fail with EINVAL), a seccomp policy
 * refused the call, or the range is not mapped (ENOMEM). The caller must
 * then treat the range as still holding its old contents. */
bool bw_os_decommit(void *addr, size_t size) {
    if (madvise(addr, size, MADV_DONTNEED) == 0) return true;
    if (errno == EINVAL || errno == ENOMEM || errno == EPERM || errno == EAGAIN) return false;
    bw_fatal_os("madvise", errno);
}

void bw_os_release(void *addr, size_t size) {
    if (munmap(addr, size) != 0) bw_fatal_os("munmap", errno);
}

/* Guard markers install only while nothing refused them: madvise then
 * answers EINVAL for a locked VMA or under a seccomp policy that does not
 * know the advice. */
static bool bw_guard_markers_usable(void) {
    return bw_guard_madvise_ok &&
           !atomic_load_explicit(&bw_guard_by_mprotect, memory_order_relaxed);
}

/* Make [addr, addr+size) fault on any access. MADV_GUARD_INSTALL (Linux
 * 6.13) installs guard markers in the page tables without splitting the
 * VMA; elsewhere mprotect(PROT_NONE) costs one or two VMAs. Once markers
 * have been refused (EINVAL: locked memory or a seccomp policy, neither of
 * which usually goes away) every later guard is made by mprotect, so that
 * a locked process does not pay a failing system call per guard. */
bool bw_os_guard(void *addr, size_t size) {
    if (bw_guard_markers_usable()) {
        if (madvise(addr, size, MADV_GUARD_INSTALL) == 0) {
            atomic_fetch_add_explicit(&bw_guard_pages_madvise, size / BW_PAGE_SIZE,
                                      memory_order_relaxed);
            return true;
        }
        if (errno == ENOMEM || errno == EAGAIN) return false;
    }
    if (bw_guard_madvise_ok)
        atomic_store_explicit(&bw_guard_by_mprotect, true, memory_order_relaxed);
    if (mprotect(addr, size, PROT_NONE) == 0) {
        atomic_fetch_add_explicit(&bw_guard_pages_mprotect, size / BW_PAGE_SIZE,
                                  memory_order_relaxed);
        return true;
    }
    if (errno == ENOMEM) return false;
    bw_fatal_os("mprotect", errno);
}

/* Make a range inaccessible and keep its pages (mprotect): a freed large
 * body in the quarantine, which bw_os_commit makes accessible again and
 * the allocator clears. For a block of a few MiB that costs a fifth of
 * what guard markers do, which discard the pages so that the next owner
 * faults every one of them in again (large.c measures both). Costs a VMA
 * or two while it lasts. False when out of mappings. */
bool bw_os_protect_none(void *addr, size_t size) {
    if (mprotect(addr, size, PROT_NONE) == 0) return true;
    if (errno == ENOMEM) return false;
    bw_fatal_os("mprotect", errno);
}

/* Inaccessible and discarded in one call: a fresh PROT_NONE anonymous
 * mapping over the range (the arena's flags) drops its pages and any guard
 * markers in it, as mprotect and MADV_DONTNEED would in two. The range
 * loses its NUMA policy, which the caller binds again. False when out of
 * mappings or memory. */
bool bw_os_protect_none_fresh(void *addr, size_t size) {
    void *p =
        mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (p == addr) return true;
    if (errno == ENOMEM) return false;
    bw_fatal_os("mmap", errno);
}

/* Guard markers that madvise may no longer remove go with their pages: a
 * fresh anonymous mapping over the range (the same flags as the arena's, so
 * it merges with its neighbours) is accessible and reads as zeros. */
static bw_unguard_t bw_os_replace_pages(void *addr, size_t size) {
    void *p = mmap(addr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (p == addr) return BW_UNGUARD_ZERO;
    if (errno == ENOMEM) return BW_UNGUARD_FAILED;
    bw_fatal_os("mmap", errno);
}

/* Remove the guard markers a range may carry. BW_UNGUARD_ZERO: there were
 * only markers and the range is done (installing them discarded the
 * contents); BW_UNGUARD_STALE: the range may also have been guarded by
 * mprotect, which the caller undoes next. */
static bw_unguard_t bw_os_remove_markers(void *addr, size_t size) {
    if (!atomic_load_explicit(&bw_guard_remove_denied, memory_order_relaxed)) {
        if (madvise(addr, size, MADV_GUARD_REMOVE) == 0)
            return atomic_load_explicit(&bw_guard_by_mprotect, memory_order_relaxed)
                       ? BW_UNGUARD_STALE
                       : BW_UNGUARD_ZERO;
        if (errno == ENOMEM || errno == EAGAIN) return BW_UNGUARD_FAILED;
        atomic_store_explicit(&bw_guard_remove_denied, true, memory_order_relaxed);
    }
    return bw_os_replace_pages(addr, size);
}

/* Undo bw_os_guard, whichever way the range was guarded: afterwards it is
 * readable and writable, and reads as zeros (BW_UNGUARD_ZERO) unless the
 * pages were locked, when it may still hold what it held before it was
 * guarded (BW_UNGUARD_STALE: mprotect kept the contents and MADV_DONTNEED
 * may not discard locked pages). BW_UNGUARD_FAILED: out of memory or
 * mappings, the range is still guarded. */
bw_unguard_t bw_os_unguard(void *addr, size_t size) {
    if (bw_guard_madvise_ok) {
        bw_unguard_t done = bw_os_remove_markers(addr, size);
        if (done != BW_UNGUARD_STALE) return done;
    }
    if (mprotect(addr, size, PROT_READ | PROT_WRITE) != 0) {
        if (errno == ENOMEM) return BW_UNGUARD_FAILED;
        bw_fatal_os("mprotect", errno);
    }
    return bw_os_decommit(addr, size) ? BW_UNGUARD_ZERO : BW_UNGUARD_STALE;
}

/* Whether guards are made by MADV_GUARD_INSTALL now (statistics, tests). */
bool bw_os_has_guard_madvise(void) {
    return bw_guard_markers_usable();
}

/* How guards are made now, for operators (statistics, `bulwark --check`). */
const char *bw_os_guard_method(void) {
    if (bw_guard_markers_usable()) return "MADV_GUARD_INSTALL";
    if (bw_guard_madvise_ok) return "mprotect (guard markers refused: locked memory or seccomp)";
    return "mprotect (kernel without MADV_GUARD_INSTALL)";
}

/* Pages bw_os_guard guarded since start-up, by guard markers and by
 * mprotect (ranges unguarded or unmapped since are not subtracted). */
void bw_os_guard_stats(size_t *by_madvise, size_t *by_mprotect) {
    *by_madvise = atomic_load_explicit(&bw_guard_pages_madvise, memory_order_relaxed);
    *by_mprotect = atomic_load_explicit(&bw_guard_pages_mprotect, memory_order_relaxed);
}

/* A fresh anonymous mapping (large regions, metadata), read-write or
 * inaccessible. No swap is reserved (MAP_NORESERVE): a large region is
 * mostly untouched address space, committed page by page as blocks are
 * written. */
static void *bw_os_map_prot(size_t size, int prot) {
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    /* Seeded: at an address from the seed (the window of bw_os_reserve's
     * hints), where the kernel's mmap base would differ from run to run
     * (ASLR) and so would the address of every large block. Not in a lazy
     * region's placement, which only looks free. */
    for (int attempt = 0; bw_random_seeded() && attempt < 16; attempt++) {
        uint64_t r;
        bw_random_bytes(&r, sizeof r);
        uintptr_t hint = ((uintptr_t)1 << 40) + (uintptr_t)(r % (((uint64_t)63 << 40) - size));
        hint &= ~(uintptr_t)(BW_PAGE_SIZE - 1);
        bool clear = true;
        for (unsigned i = 0; i < BW_PLACED_MAX && clear; i++)
            clear = bw_placed[i].end == 0 || hint + size <= bw_placed[i].start ||
                    hint >= bw_placed[i].end;
        if (!clear) continue;
        void *p = mmap((void *)hint, size, prot, flags | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == (void *)hint) return p;
        if (p != MAP_FAILED) munmap(p, size);
    }
    void *p = mmap(NULL, size, prot, flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *bw_os_map(size_t size) {
    return bw_os_map_prot(size, PROT_READ | PROT_WRITE);
}

/* Address space only: PROT_NONE, no page table entry until a part is
 * opened (bw_os_commit). A large region of the hardened profiles starts so
 * (large.c's bw_region_open_to): guard markers over all of it would be
 * page table entries that every fork copies. */
void *bw_os_map_none(size_t size) {
    return bw_os_map_prot(size, PROT_NONE);
}

/* Whether the process locks its future mappings (mlockall MCL_FUTURE),
 * which populates and locks every new mapping whole: a fresh one-page
 * mapping is then resident before anything touched it. Three system calls;
 * large.c asks before it maps a region. */
bool bw_os_future_locked(void) {
    void *probe = bw_os_map(BW_PAGE_SIZE);
    if (!probe) return false;
    unsigned char vec = 0;
    bool resident = mincore(probe, BW_PAGE_SIZE, &vec) == 0 && (vec & 1);
    bw_os_release(probe, BW_PAGE_SIZE);
    return resident;
}

/* Move the pages of [from, from+size) to `to` (mremap MREMAP_FIXED: page
 * table entries move, no byte is copied) and map fresh zero pages back
 * over `from` unless the caller unmaps it (remap_source false). False when
 * the kernel refused (out of mappings): nothing moved. */
bool bw_os_move_pages(void *from, size_t size, void *to, bool remap_source) {
    void *p = mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    if (p == MAP_FAILED) {
        if (errno == ENOMEM || errno == EAGAIN) return false;
        bw_fatal_os("mremap", errno);
    }
    if (remap_source && bw_os_replace_pages(from, size) != BW_UNGUARD_ZERO)
        bw_fatal_os("mmap", ENOMEM); /* a hole in a large region: nothing sane to do */
    return true;
}

/* mbind(MPOL_PREFERRED) of a range to one node (raw syscall: no libnuma);
 * returns 0 or the errno. The mask has BW_MAX_NUMA_NODES bits and maxnode
 * is one more: the kernel reads maxnode - 1 bits (mm/mempolicy.c,
 * get_nodes: "maxnode--"), so passing BW_MAX_NUMA_NODES, as this code did,
 * silently dropped node 63. The policy is a preference, so the kernel's
 * refusals are tolerated: EINVAL also means a node without memory or
 * outside the cpuset (getcpu reports CPU-only nodes), ENOMEM no memory for
 * the policy, EPERM/ENOSYS a policy or kernel without NUMA. EFAULT can only
 * mean our bug (a mask we passed or a hole in a range we committed): fatal.
 * tests/unit/test_os.c proves the kernel reads the node's bit. */
int bw_os_mbind_preferred(void *addr, size_t size, unsigned node) {
    unsigned long mask[(BW_MAX_NUMA_NODES + 63) / 64] = {0};
    if (node >= BW_MAX_NUMA_NODES) return EINVAL;
    mask[node / 64] = 1ul << (node % 64);
    if (syscall(SYS_mbind, addr, size, MPOL_PREFERRED, mask, (unsigned long)BW_MAX_NUMA_NODES + 1,
                0u) == 0)
        return 0;
    if (errno == EFAULT) bw_fatal_os("mbind", errno);
    return errno;
}

/* Prefer the given node for the range. PREFERRED, not BIND, so a full node
 * spills over instead of failing the allocation. */
void bw_os_bind_node(void *addr, size_t size, unsigned node) {
    if (bw_topology.node_count <= 1 || node >= BW_MAX_NUMA_NODES) return;
    int saved_errno = errno;
    (void)bw_os_mbind_preferred(addr, size, node);
    errno = saved_errno;
}

/* The clock of the time-driven choices (the heaps' aging and purge, the
 * large blocks' decay): with a seed it is a count of its own reads, one
 * "millisecond" each, so that which blocks those choices release, and so
 * where later blocks land, depends on the program's calls and not on how
 * fast the machine ran them. It still advances: memory still goes back. */
static atomic_uint_fast64_t bw_seeded_clock;

uint64_t bw_os_now_ms(void) {
    if (bw_random_seeded())
        return atomic_fetch_add_explicit(&bw_seeded_clock, 1, memory_order_relaxed);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* vDSO: no system call */
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Make whole pages of bulwark's own data read-only (secrets drawn once). A
 * refusal (a seccomp policy, say) leaves them writable: hardening, not a
 * condition to die of. */
void bw_os_protect_readonly(void *addr, size_t size) {
    (void)mprotect(addr, size, PROT_READ);
}

/* Parse "0", "0-3" or "0-1,4" from /sys/devices/system/node/possible
 * without stdio: the highest node number + 1. */
unsigned bw_os_node_count_sysfs(void) {
    char text[256];
    int fd = open("/sys/devices/system/node/possible", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return 1;
    text[n] = 0;
    unsigned highest = 0, value = 0;
    bool in_number = false;
    for (ssize_t i = 0; i <= n; i++) {
        char c = text[i];
        if (c >= '0' && c <= '9') {
            value = value * 10 + (unsigned)(c - '0');
            in_number = true;
        } else {
            if (in_number && value > highest) highest = value;
            value = 0;
            in_number = false;
        }
    }
    unsigned count = highest + 1;
    return count > BW_MAX_NUMA_NODES ? BW_MAX_NUMA_NODES : count;
}

unsigned bw_os_current_node_getcpu(void) {
    unsigned cpu = 0, node = 0;
    if (getcpu(&cpu, &node) != 0) return 0;
    return node;
}

/* Probe kernel features once, at initialisation. */
void bw_os_init(void) {
    bw_topology.node_count = bw_os_node_count_sysfs();
    bw_topology.current_node = bw_os_current_node_getcpu;
    void *probe =
        mmap(NULL, 2 * BW_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe != MAP_FAILED) {
        bw_guard_madvise_ok = madvise(probe, BW_PAGE_SIZE, MADV_GUARD_INSTALL) == 0;
        munmap(probe, 2 * BW_PAGE_SIZE);
    }
}

/* Reads a small /proc file whole into text (NUL-terminated); its length. */
static size_t bw_os_read_small(const char *path, char *text, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, text, size - 1);
    close(fd);
    text[n > 0 ? n : 0] = 0;
    return n > 0 ? (size_t)n : 0;
}

/* Mappings of the process: lines of /proc/self/maps, counted in a
 * stack buffer (no allocation, no stdio). */
static size_t bw_os_mapping_count(void) {
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char chunk[1024];
    size_t lines = 0;
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        for (ssize_t i = 0; i < n; i++) lines += chunk[i] == '\n';
    close(fd);
    return lines;
}

static size_t bw_os_append(char *line, size_t at, size_t cap, const char *text) {
    while (*text && at < cap) line[at++] = *text++;
    return at;
}

static size_t bw_os_append_u64(char *line, size_t at, size_t cap, uint64_t value) {
    char digits[24];
    digits[bw_fmt_u64(digits, value)] = 0;
    return bw_os_append(line, at, cap, digits);
}

/* bulwark cannot work at all: start-up failed for good (init.c, state 3,
 * what = "cannot start"), or it started but the arena's first segment
 * cannot be mapped (segment.c, "cannot map its first segment"). One line
 * on stderr, once per process, names the limit that stopped it, instead
 * of a silent NULL from every malloc. The mappings failed with ENOMEM,
 * which has three causes: a finite RLIMIT_AS (lazy space was tried too, so
 * even the regions' first pieces did not fit), a full map table
 * (vm.max_map_count), or a kernel that refuses to overcommit
 * (vm.overcommit_memory=2). write(2) only: no allocation, no stdio. */
void bw_os_report_no_space(const char *what) {
    static atomic_bool reported;
    if (atomic_exchange_explicit(&reported, true, memory_order_relaxed)) return;
    char line[256];
    const size_t cap = sizeof line - 1;
    size_t n = bw_os_append(line, 0, cap, "bulwark: ");
    n = bw_os_append(line, n, cap, what);
    n = bw_os_append(line, n, cap, ": ");
    struct rlimit limit;
    char text[32];
    size_t maps = 0, max_maps = 0;
    if (bw_os_read_small("/proc/sys/vm/max_map_count", text, sizeof text)) {
        for (const char *c = text; *c >= '0' && *c <= '9'; c++)
            max_maps = max_maps * 10 + (size_t)(*c - '0');
        maps = bw_os_mapping_count();
    }
    if (getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
        n = bw_os_append(line, n, cap, "address-space limit (RLIMIT_AS, ulimit -v) of ");
        n = bw_os_append_u64(line, n, cap, limit.rlim_cur);
        n = bw_os_append(line, n, cap, " bytes is too small for its regions");
    } else if (max_maps && maps + 64 >= max_maps) {
        n = bw_os_append(line, n, cap, "map table full (");
        n = bw_os_append_u64(line, n, cap, maps);
        n = bw_os_append(line, n, cap, " mappings, vm.max_map_count ");
        n = bw_os_append_u64(line, n, cap, max_maps);
        n = bw_os_append(line, n, cap, ")");
    } else {
        n = bw_os_append(line, n, cap,
                         "the kernel refused its address-space reservations (ENOMEM; "
                         "vm.overcommit_memory=2?)");
    }
    n = bw_os_append(line, n, cap, "; malloc returns NULL\n");
    line[n] = 0;
    bw_write_str(STDERR_FILENO, line);
}

/* getrandom(2) itself: the bytes it wrote, or -errno. On x86-64 the
 * system call instruction, which touches no page of libc: a forked child's
 * first call of libsodium's randombytes_buf took 3 page faults of its own
 * (its code, its getrandom stub, glibc's getrandom), and saving errno
 * around syscall() 1 (glibc's __errno_location). */
static long bw_getrandom(void *buf, size_t size) {
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "0"((long)SYS_getrandom), "D"(buf), "S"(size), "d"(0L)
                     : "rcx", "r11", "memory");
    return ret;
#else
    int saved = errno;
    long ret = syscall(SYS_getrandom, buf, size, 0u);
    if (ret < 0) ret = -errno;
    errno = saved;
    return ret;
#endif
}

/* `size` bytes of the kernel's randomness, errno left as it was. An
 * interrupted call (only one above 256 bytes can be cut short) goes on
 * where it stopped. False when the kernel refuses (no getrandom before
 * Linux 3.17, a seccomp filter): the caller then takes libsodium's
 * randombytes_buf, which falls back to /dev/urandom. */
bool bw_os_random(void *buf, size_t size) {
    /* A refusal stands (ENOSYS from a kernel without it, EPERM or ENOSYS
     * from a seccomp filter): remembered, as refused guard markers are, so
     * that each later heap seed and forked child's re-key goes straight to
     * the fallback instead of making the failing call first (and, under a
     * filter that kills or traps, being seen for it every time). Written
     * once; a forked child inherits it. */
    static atomic_bool refused;
    if (atomic_load_explicit(&refused, memory_order_relaxed)) return false;
    char *at = buf;
    while (size) {
        long got = bw_getrandom(at, size);
        if (got == -EINTR) continue;
        if (got <= 0) {
            if (got != -EAGAIN) atomic_store_explicit(&refused, true, memory_order_relaxed);
            return false;
        }
        at += got;
        size -= (size_t)got;
    }
    return true;
}

/* Contended lock (bw_lock_t in lock.h). Locks guard slow paths
 * that hold them for a microsecond or so: the segment pools' carving and
 * purging make their system calls outside the pool lock, and the few
 * critical sections that do make one are rare (the arena's commits once per
 * 4 MiB segment, the large table's growth). A running holder releases soon:
 * spin about that long first. After that the holder is most likely not
 * running, and a waiter that keeps the CPU (or its virtual CPU) only delays
 * it: mark the lock contended (2) and sleep until the unlock wakes a
 * waiter. Whoever takes the lock by the exchange leaves it at 2, so its
 * unlock wakes the next sleeper (a spare wake when there is none). errno is
 * kept: free() must not change it, and FUTEX_WAIT fails with EAGAIN when
 * the lock changed before the thread slept. */
#define BW_LOCK_SPINS 100u

void bw_lock_acquire_slow(bw_lock_t *lock) {
    for (unsigned spins = 0; spins < BW_LOCK_SPINS; spins++) {
        __builtin_ia32_pause();
        int expected = 0;
        if (atomic_load_explicit(&lock->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&lock->state, &expected, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
    }
    int saved_errno = errno;
    while (atomic_exchange_explicit(&lock->state, 2, memory_order_acquire) != 0)
        syscall(SYS_futex, &lock->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    errno = saved_errno;
}

void bw_lock_wake_one(bw_lock_t *lock) {
    int saved_errno = errno;
    syscall(SYS_futex, &lock->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved_errno;
}

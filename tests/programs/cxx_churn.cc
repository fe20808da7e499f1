// tests/programs/cxx_churn.cc — a C++17 allocation workload for cxx.sh.
//
// Proves, when run with bulwark preloaded and compared with a run on glibc,
// that the C++ new/delete family behaves like libstdc++'s own:
//  - std::vector / std::string / std::map / std::unordered_map /
//    std::shared_ptr churn, plain, array, nothrow and aligned new
//    (alignas(64) types go through operator new(size_t, align_val_t)) with
//    their sized and aligned deletes, in two threads, with objects handed from
//    one thread to the other and freed there, gives the same checksum;
//  - every aligned-new object really is 64-byte aligned;
//  - new of an impossible size throws std::bad_alloc (also new[] and aligned
//    new), nothrow new of it returns nullptr;
//  - a new_handler installed with std::set_new_handler is called when new
//    fails, and when it gives up (uninstalls itself) new throws bad_alloc.
// Everything printed depends only on fixed seeds, so the output must be
// byte-identical under any correct allocator.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

// A fixed-seed generator (xorshift64*): the same sequence everywhere.
struct Rng {
    std::uint64_t state;
    explicit Rng(std::uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 1) {}
    std::uint64_t next() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1Dull;
    }
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h;
}

// Over-aligned types: `new` of these calls the align_val_t operators.
struct alignas(64) CacheLine {
    std::uint64_t words[8];
};
struct alignas(256) BigAligned {
    unsigned char bytes[1000];
};

std::atomic<unsigned> misaligned_objects{0};

template <typename T> void check_alignment(const T *p) {
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0) {
        misaligned_objects.fetch_add(1);
    }
}

// Objects passed from one thread to the other, which frees them: the
// allocator sees frees of blocks owned by another thread's heap.
struct Handoff {
    std::mutex lock;
    std::deque<std::shared_ptr<std::vector<std::string>>> items;
};

std::uint64_t churn_containers(Rng &rng, Handoff *out, Handoff *in) {
    std::uint64_t h = 0;
    std::map<std::string, std::vector<int>> ordered;
    std::unordered_map<std::uint64_t, std::string> hashed;
    for (int round = 0; round < 150; ++round) {
        for (int i = 0; i < 2000; ++i) {
            std::string key = "key-" + std::to_string(rng.below(5000));
            std::vector<int> &values = ordered[key];
            values.resize(rng.below(40));
            for (std::size_t j = 0; j < values.size(); ++j) {
                values[j] = static_cast<int>(j * 7 + static_cast<std::size_t>(i));
            }
            hashed[rng.next() % 20000] =
                std::string(rng.below(300), static_cast<char>('a' + i % 26));
        }
        // Erase about half so the trees and buckets shrink and refill.
        for (auto it = ordered.begin(); it != ordered.end();) {
            it = (rng.next() & 1) ? ordered.erase(it) : std::next(it);
        }
        for (auto it = hashed.begin(); it != hashed.end();) {
            it = (it->first % 2 == static_cast<std::uint64_t>(round % 2)) ? hashed.erase(it)
                                                                          : std::next(it);
        }
        for (const auto &entry : ordered) {
            h = mix(h, entry.first.size() + entry.second.size());
        }
        std::size_t hashed_bytes = 0;
        for (const auto &entry : hashed) {
            hashed_bytes += entry.second.size();
        }
        h = mix(h, hashed.size() + hashed_bytes);

        // A batch of strings for the other thread to free.
        auto batch = std::make_shared<std::vector<std::string>>();
        for (int i = 0; i < 200; ++i) {
            batch->emplace_back(rng.below(2000) + 1, static_cast<char>('A' + i % 26));
        }
        {
            std::lock_guard<std::mutex> guard(out->lock);
            out->items.push_back(std::move(batch));
        }

        // Drop whatever the other thread sent us so far.
        std::deque<std::shared_ptr<std::vector<std::string>>> received;
        {
            std::lock_guard<std::mutex> guard(in->lock);
            received.swap(in->items);
        }
        received.clear();
    }
    return h;
}

std::uint64_t churn_raw_new(Rng &rng) {
    std::uint64_t h = 0;
    std::vector<CacheLine *> lines;
    std::vector<BigAligned *> bigs;
    std::vector<char *> arrays;
    std::vector<std::uint64_t *> scalars;
    for (int i = 0; i < 400000; ++i) {
        switch (rng.below(6)) {
        case 0: { // aligned new, aligned (and sized) delete later
            auto *line = new CacheLine();
            check_alignment(line);
            line->words[0] = static_cast<std::uint64_t>(i);
            lines.push_back(line);
            break;
        }
        case 1: {
            auto *big = new BigAligned();
            check_alignment(big);
            big->bytes[999] = static_cast<unsigned char>(i);
            bigs.push_back(big);
            break;
        }
        case 2: { // array new of sizes across small classes and large mappings
            std::size_t n =
                (rng.next() & 15) == 0 ? 16384 + rng.below(100000) : rng.below(2048) + 1;
            char *array = new char[n];
            std::memset(array, i & 0xff, n);
            array[n - 1] = static_cast<char>(n & 0x7f);
            arrays.push_back(array);
            h = mix(h, n);
            break;
        }
        case 3: { // nothrow new
            auto *value = new (std::nothrow) std::uint64_t(static_cast<std::uint64_t>(i) * 3);
            if (value == nullptr) {
                std::puts("nothrow new of 8 bytes returned nullptr");
                std::exit(1);
            }
            scalars.push_back(value);
            break;
        }
        case 4: { // array of over-aligned objects: operator new[](size, align)
            auto *row = new CacheLine[1 + rng.below(8)](); // value-initialised: all zero
            check_alignment(row);
            h = mix(h, row[0].words[7]);
            delete[] row;
            break;
        }
        default: // free a random earlier object of some kind (sized delete)
            if (!lines.empty()) {
                std::size_t k = rng.below(lines.size());
                h = mix(h, lines[k]->words[0]);
                delete lines[k];
                lines[k] = lines.back();
                lines.pop_back();
            }
            if (!scalars.empty()) {
                std::size_t k = rng.below(scalars.size());
                h = mix(h, *scalars[k]);
                delete scalars[k];
                scalars[k] = scalars.back();
                scalars.pop_back();
            }
            if (arrays.size() > 64) {
                std::size_t k = rng.below(arrays.size());
                delete[] arrays[k];
                arrays[k] = arrays.back();
                arrays.pop_back();
            }
            break;
        }
    }
    for (CacheLine *line : lines) {
        delete line;
    }
    for (BigAligned *big : bigs) {
        h = mix(h, big->bytes[999]);
        delete big;
    }
    for (char *array : arrays) {
        delete[] array;
    }
    for (std::uint64_t *value : scalars) {
        delete value;
    }
    return h;
}

std::uint64_t worker(unsigned seed, Handoff *out, Handoff *in) {
    Rng rng(seed);
    std::uint64_t h = churn_containers(rng, out, in);
    h = mix(h, churn_raw_new(rng));
    return h;
}

// Opaque to the optimiser, so that no new-expression of an impossible size is
// folded away or warned about at compile time.
volatile std::size_t impossible_size = SIZE_MAX / 2;
void *volatile escape;

int new_handler_calls = 0;

void giving_up_handler() {
    ++new_handler_calls;
    // A handler that cannot free memory must uninstall itself (or throw):
    // operator new then throws bad_alloc.
    std::set_new_handler(nullptr);
}

int check_failures() {
    int failures = 0;
    auto expect_bad_alloc = [&failures](const char *what, void (*attempt)()) {
        try {
            attempt();
            std::printf("%s: returned instead of throwing std::bad_alloc\n", what);
            ++failures;
        } catch (const std::bad_alloc &) {
            std::printf("%s: std::bad_alloc\n", what);
        }
    };
    expect_bad_alloc("operator new(SIZE_MAX/2)", [] {
        void *p = ::operator new(impossible_size);
        ::operator delete(p);
    });
    expect_bad_alloc("new char[SIZE_MAX/2]", [] {
        // Stored to a volatile so the new/delete pair cannot be elided.
        char *p = new char[impossible_size];
        escape = p;
        delete[] p;
    });
    expect_bad_alloc("operator new(SIZE_MAX/2, align 64)", [] {
        void *p = ::operator new(impossible_size, std::align_val_t(64));
        ::operator delete(p, std::align_val_t(64));
    });

    void *p = ::operator new(impossible_size, std::nothrow);
    std::printf("nothrow new(SIZE_MAX/2): %s\n", p == nullptr ? "nullptr" : "NOT nullptr");
    failures += p != nullptr;
    ::operator delete(p, std::nothrow);

    std::set_new_handler(giving_up_handler);
    expect_bad_alloc("new with a giving-up new_handler", [] {
        void *q = ::operator new(impossible_size);
        ::operator delete(q);
    });
    std::printf("new_handler called %d time(s)\n", new_handler_calls);
    failures += new_handler_calls != 1;
    failures += std::get_new_handler() != nullptr;
    return failures;
}

} // namespace

int main() {
    Handoff to_second, to_first;
    std::uint64_t first_result = 0, second_result = 0;
    std::thread first([&] { first_result = worker(1, &to_second, &to_first); });
    std::thread second([&] { second_result = worker(2, &to_first, &to_second); });
    first.join();
    second.join();
    // Batches the other thread never picked up are freed here, by main.
    to_first.items.clear();
    to_second.items.clear();

    std::printf("thread 1 checksum %016llx\n", static_cast<unsigned long long>(first_result));
    std::printf("thread 2 checksum %016llx\n", static_cast<unsigned long long>(second_result));
    std::printf("misaligned over-aligned objects: %u\n", misaligned_objects.load());

    int failures = check_failures();
    failures += misaligned_objects.load() != 0;
    std::printf("%s\n", failures == 0 ? "all checks passed" : "CHECKS FAILED");
    return failures == 0 ? 0 : 1;
}

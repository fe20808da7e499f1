#!/usr/bin/env python3
"""fuzz/mkcorpus.py — writes the seed corpus fuzz/corpus/<harness>/.

The committed corpus is this script's output (run it from the repository
root after changing the op encoding of fuzz/bw_fuzz.c; the inputs are
deterministic). Each input exercises one thing on purpose: one call per
op, sizes at size-class and small/large boundaries, every alignment,
realloc chains across classes, the impossible requests, sized frees after
realloc, cross-thread handoffs, seeded runs with a planted overflow.
Files named found-* are inputs a campaign found (minimised); they are kept."""
import os
import random

OPS = dict(malloc=0, calloc=2, realloc=3, free=5, aligned_alloc=7, posix_memalign=8,
           memalign=9, usable=10, reallocarray=11, impossible=12, realloc0=13, valloc=14)


def size(n):
    """The bytes bw_fz_size decodes to exactly n."""
    if n <= 128:
        return [0, n]
    if n <= 1024:
        return [128, n & 255, n >> 8]
    if n <= 16384:
        return [192, n & 255, n >> 8]
    if n <= 160 * 1024:
        return [232, n & 255, (n >> 8) & 255, n >> 16]
    assert n <= 4 << 20
    return [252, n & 255, (n >> 8) & 255, n >> 16]


def op(name, slot, *args, variant=0):
    """One op; variant (0-15) goes in the high nibble (which free, pvalloc)."""
    out = [OPS[name] | variant << 4, slot]
    for a in args:
        out += a if isinstance(a, list) else [a]
    return out


def align(shift, odd=False):
    """bw_fz_alignment: 1 << (a % 18), plus 8 (not a power of two) when a >= 240."""
    if not odd:
        return shift
    return next((a for a in range(240, 256) if a % 18 == shift), 240)


def mix(rng, n, slots=16):
    """n random valid ops over a few slots, small sizes mostly."""
    out = []
    for _ in range(n):
        s = rng.randrange(slots)
        kind = rng.choice(["malloc", "malloc", "calloc", "realloc", "free", "free",
                           "aligned_alloc", "posix_memalign", "memalign", "usable",
                           "reallocarray", "impossible", "realloc0", "valloc"])
        sz = size(rng.choice([0, 1, 7, 16, 24, 100, 128, 500, 1024, 3000, 16384,
                              131064, 131065, 200000]))
        if kind in ("malloc", "realloc", "reallocarray", "valloc"):
            out += op(kind, s, sz, variant=rng.randrange(16))
        elif kind == "calloc":
            out += op(kind, s, rng.randrange(16), sz)
        elif kind in ("aligned_alloc", "posix_memalign", "memalign"):
            out += op(kind, s, align(rng.randrange(18), rng.random() < 0.1), sz)
        elif kind == "impossible":
            out += op(kind, s, rng.randrange(8))
        else:
            out += op(kind, s, variant=rng.randrange(16))
    return out


def ops_corpus():
    c = {}
    # Every class boundary region, each freed three ways.
    for n in [0, 1, 8, 15, 16, 17, 24, 32, 48, 64, 96, 128, 129, 256, 1000, 1024, 1025, 4096,
              16384, 16385, 65536, 131064, 131065, 131072, 131073, 262144, 1 << 20, 4 << 20]:
        c[f"malloc-{n}"] = (op("malloc", 1, size(n)) + op("usable", 1) +
                            op("free", 1, variant=n % 3))
    for n in [1, 100, 5000, 140000]:
        c[f"calloc-{n}"] = op("calloc", 2, 3, size(n)) + op("free", 2, variant=1)
    # realloc chains: grow through the classes into large and back.
    chain = op("malloc", 3, size(10))
    for n in [24, 25, 40, 1000, 20000, 131064, 131072, 300000, 2 << 20, 100, 5, 0]:
        chain += op("realloc", 3, size(n))
    c["realloc-chain"] = chain
    c["realloc-null-25"] = op("realloc", 4, size(25)) + op("free", 4, variant=1)
    c["realloc-keep-24"] = (op("malloc", 4, size(25)) + op("realloc", 4, size(24)) +
                            op("free", 4, variant=1))
    c["realloc-usable"] = (op("malloc", 5, size(20)) + op("usable", 5) +
                           op("realloc", 5, size(40)) + op("free", 5, variant=1))
    c["reallocarray"] = (op("malloc", 5, size(20)) + op("reallocarray", 5, size(600)) +
                         op("reallocarray", 5, size(0)))
    for shift in [0, 3, 4, 5, 6, 12, 13, 16, 17]:
        c[f"aligned-{1 << shift}"] = (
            op("aligned_alloc", 6, align(shift), size(100)) +
            op("posix_memalign", 7, align(shift), size(5000)) +
            op("memalign", 8, align(shift), size(140000)) +
            op("free", 6, variant=2) + op("realloc", 7, size(70)) + op("free", 7, variant=1) +
            op("free", 8, variant=1))
    c["aligned-odd"] = (op("aligned_alloc", 6, align(4, True), size(33)) +
                        op("memalign", 7, align(12, True), size(10)) + op("free", 6) +
                        op("free", 7))
    c["valloc"] = (op("valloc", 9, size(10)) + op("valloc", 10, size(5000), variant=8) +
                   op("free", 9) + op("free", 10))
    c["impossible"] = op("malloc", 11, size(64)) + sum(
        (op("impossible", 11, w) for w in range(8)), []) + op("free", 11, variant=1)
    c["zero-sizes"] = (op("malloc", 12, size(0)) + op("calloc", 13, 4, size(0)) +
                       op("realloc", 14, size(0)) + op("realloc0", 12) + op("free", 13, variant=1) +
                       op("free", 14, variant=1))
    rng = random.Random(15)
    for i in range(8):
        c[f"mix-{i}"] = mix(rng, 40 + 20 * i)
    return c


def threads_corpus():
    rng = random.Random(16)
    c = {}

    def interleave(flags, streams):
        n = max(len(s) for s in streams)
        streams = [s + [0] * (n - len(s)) for s in streams]
        return [flags] + [streams[j % 3][j // 3] for j in range(3 * n)]

    give = lambda slot: [200, slot]
    take = lambda slot: [201, slot]
    rfree = lambda how: [202, 0, how]
    rrealloc = lambda slot, n: [203, slot] + size(n)
    for i in range(6):
        streams = []
        for t in range(3):
            s = []
            for k in range(6 + 2 * i):
                s += op("malloc", k, size(rng.choice([16, 48, 200, 4000, 140000])))
                s += give(k)
            s += [0] * 48  # pad past a phase boundary: the handoff happens
            s += rfree(1) + take(20) + rrealloc(21, 300) + rfree(0) + rfree(2)
            streams.append(s)
        c[f"handoff-{i}"] = interleave(i % 8, streams)
    for i in range(10):
        streams = []
        for t in range(3):
            s = []
            for _ in range(8):
                s += mix(rng, 6, slots=8)
                s += rng.choice([give(rng.randrange(8)), take(rng.randrange(8)),
                                 rfree(rng.randrange(3)), rrealloc(rng.randrange(8), 64)])
            streams.append(s)
        c[f"mix-{i}"] = interleave(rng.randrange(8), streams)
    c["leave-all"] = interleave(7, [op("malloc", k, size(100 * k + 1)) for k in range(3)])
    return c


def seed_corpus():
    rng = random.Random(17)
    c = {}
    ops = ops_corpus()
    for i, name in enumerate(["realloc-chain", "aligned-64", "aligned-4096", "impossible",
                              "zero-sizes", "mix-0", "mix-1", "mix-2", "mix-3"]):
        c[f"{name}"] = list(i.to_bytes(4, "little")) + [0] + ops[name]
    for i in range(12):
        body = mix(rng, 30 + 10 * i)
        flags = 1 | (rng.randrange(128) << 1)
        # keep one block live for the planted overflow to land in
        body += op("malloc", 200, size(rng.choice([1, 24, 100, 1000, 140000, 5000])))
        c[f"plant-{i}"] = list(rng.randrange(1 << 32).to_bytes(4, "little")) + [flags] + body
    return c


def main():
    for harness, corpus in [("ops", ops_corpus()), ("threads", threads_corpus()),
                            ("seed", seed_corpus())]:
        d = os.path.join("fuzz", "corpus", harness)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if not f.startswith("found-"):  # inputs campaigns found stay
                os.remove(os.path.join(d, f))
        for name, data in corpus.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(bytes(data))
        print(f"{d}: {len(corpus)} inputs")


if __name__ == "__main__":
    main()

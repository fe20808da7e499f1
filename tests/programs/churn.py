"""tests/programs/churn.py — an allocation-heavy Python workload for python3.sh.

Builds and drops large dicts, lists, strings, bytes and bytearrays (a few
hundred MB of allocation churn in all, a few seconds), some of it in worker
threads and freed by the main thread, and prints a digest of everything it
computed. The output depends only on the fixed seeds, so it must be identical
under any correct malloc; python3.sh runs it with PYTHONMALLOC=malloc so that
every object, not only the large ones, comes from the allocator under test.
"""

import gc
import hashlib
import random
import sys
import threading

ROUNDS = 4


def churn_dicts(rng, digest, round_no):
    """A dict of 200k entries with string keys and mixed values, then dropped."""
    table = {}
    for i in range(200_000):
        key = "k%d-%d" % (round_no, rng.getrandbits(40))
        kind = i % 4
        if kind == 0:
            table[key] = i
        elif kind == 1:
            table[key] = "v" * (i % 97)
        elif kind == 2:
            table[key] = [i, i + 1, i + 2]
        else:
            table[key] = (key, i)
    # Delete every third key (holes, then a resize as it shrinks on copy).
    for n, key in enumerate(list(table)):
        if n % 3 == 0:
            del table[key]
    copy = dict(table)
    digest.update(("dict %d %d\n" % (round_no, len(copy))).encode())
    digest.update(repr(sorted(copy)[:50]).encode())
    del table, copy


def churn_lists(rng, digest, round_no):
    """Lists grown by append (realloc of the item array), sorted, sliced."""
    numbers = []
    for _ in range(300_000):
        numbers.append(rng.random())
    numbers.sort()
    pairs = [(x, str(x)) for x in numbers[::3]]
    nested = [[j] * (j % 50) for j in range(20_000)]
    digest.update(("list %d %r %r %d\n" % (round_no, numbers[0], pairs[-1], sum(map(len, nested)))).encode())
    del numbers, pairs, nested


def churn_strings(rng, digest, round_no):
    """Multi-megabyte strings and bytes: joins, replaces, encodes (large blocks)."""
    words = ["".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(1, 12))) for _ in range(5000)]
    text = " ".join(rng.choice(words) for _ in range(400_000))  # ~2.6 MB
    upper = text.upper()
    replaced = text.replace("a", "<A>")
    encoded = replaced.encode("utf-16")
    pieces = text.split(" ")
    digest.update(hashlib.sha256(encoded).digest())
    digest.update(("str %d %d %d %d\n" % (round_no, len(text), len(upper), len(pieces))).encode())
    del text, upper, replaced, encoded, pieces, words


def churn_bytearrays(rng, digest, round_no):
    """A bytearray grown to 16 MB in uneven steps and shrunk again (realloc both ways)."""
    buf = bytearray()
    step = 1
    while len(buf) < 16 * 1024 * 1024:
        buf += bytes([rng.randrange(256)]) * step
        step = step * 3 // 2 + 1
    size = len(buf)
    while len(buf) > 4096:
        del buf[len(buf) // 2:]
    digest.update(("bytearray %d %d %s\n" % (round_no, size, bytes(buf[:64]).hex())).encode())
    del buf


def thread_worker(seed, results, slot):
    """Builds objects in another thread; the main thread frees them."""
    rng = random.Random(seed)
    made = []
    for i in range(30_000):
        made.append({"id": i, "name": "w%d" % rng.getrandbits(32), "data": [rng.random()] * (i % 20)})
    results[slot] = made


def churn_threads(digest, round_no):
    results = [None] * 4
    threads = [threading.Thread(target=thread_worker, args=(round_no * 10 + t, results, t)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(len(d["data"]) for made in results for d in made)
    names = "".join(made[-1]["name"] for made in results)
    digest.update(("threads %d %d %s\n" % (round_no, total, names)).encode())
    results.clear()  # the main thread frees what the workers allocated


def main():
    digest = hashlib.sha256()
    for round_no in range(ROUNDS):
        rng = random.Random(1000 + round_no)
        churn_dicts(rng, digest, round_no)
        churn_lists(rng, digest, round_no)
        churn_strings(rng, digest, round_no)
        churn_bytearrays(rng, digest, round_no)
        churn_threads(digest, round_no)
        gc.collect()
        print("round %d %s" % (round_no, digest.hexdigest()[:16]))
    print("digest %s" % digest.hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())

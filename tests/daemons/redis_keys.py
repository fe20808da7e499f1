#!/usr/bin/env python3
"""tests/daemons/redis_keys.py — the byte-for-byte round trip of redis.sh.

  redis_keys.py gen N SEED          RESP commands (SET) of N keys on stdout,
                                    for `redis-cli --pipe`
  redis_keys.py check PORT N SEED   over one connection: GET every key and
                                    compare it byte for byte, then APPEND to
                                    the even keys, DEL one key in three, and
                                    read them all back again

Key i holds a value of round(10 * 10240^(i/(N-1))) bytes: sizes from 10 B to
100 KiB spread evenly on a log scale, so every small size class of the
allocator and its large blocks are used. Values are pseudo-random bytes from
a fixed seed (any byte, CR and LF included), so the test is the same on
every run. Standard library only.
"""

import random
import socket
import sys


def key(i):
    return b"bw:key:%d" % i


def size(i, n):
    return round(10 * 10240 ** (i / (n - 1)))


def value(i, n, seed):
    return random.Random(seed * 1000003 + i).randbytes(size(i, n))


def suffix(i):
    # What phase 2 appends to key i: 1 to 4 KiB, so values grow across size
    # classes (redis reallocates them).
    return random.Random(-1 - i).randbytes(1024 * (1 + i % 4))


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Reader:
    """Reads RESP replies (simple, error, integer, bulk) from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed by redis")
        self.buf += chunk

    def _line(self):
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            self._fill()

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            while len(self.buf) < length + 2:
                self._fill()
            data = bytes(self.buf[:length])
            del self.buf[: length + 2]
            return data
        if kind in (b"+", b":"):
            return rest
        raise RuntimeError("unexpected reply from redis: %r" % line[:200])


def gen(n, seed):
    out = sys.stdout.buffer
    for i in range(n):
        out.write(command(b"SET", key(i), value(i, n, seed)))


def get_all(sock, reader, n):
    sock.sendall(b"".join(command(b"GET", key(i)) for i in range(n)))
    return [reader.reply() for i in range(n)]


def compare(got, expected, what):
    bad = 0
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            bad += 1
            if bad <= 5:
                glen = "nil" if g is None else len(g)
                elen = "nil" if e is None else len(e)
                print("FAIL: %s: key %d: got %s bytes, expected %s" % (what, i, glen, elen))
    return bad


def check(port, n, seed):
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    reader = Reader(sock)
    expected = [value(i, n, seed) for i in range(n)]
    bad = compare(get_all(sock, reader, n), expected, "after SET")

    # Phase 2: grow the even keys, delete one in three.
    cmds = []
    for i in range(n):
        if i % 3 == 1:
            cmds.append(command(b"DEL", key(i)))
            expected[i] = None
        elif i % 2 == 0:
            cmds.append(command(b"APPEND", key(i), suffix(i)))
            expected[i] += suffix(i)
    sock.sendall(b"".join(cmds))
    for i in range(len(cmds)):
        reader.reply()
    bad += compare(get_all(sock, reader, n), expected, "after APPEND/DEL")

    sock.sendall(command(b"DBSIZE"))
    dbsize = int(reader.reply())
    live = sum(1 for e in expected if e is not None)
    if dbsize != live:
        print("FAIL: DBSIZE %d, expected %d" % (dbsize, live))
        bad += 1
    total = sum(len(e) for e in expected if e is not None)
    if bad:
        return 1
    print("ok: %d keys of %d B to %d B read back byte for byte; after APPEND/DEL "
          "%d keys, %d bytes, identical" % (n, size(0, n), size(n - 1, n), live, total))
    return 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "gen":
        gen(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "check":
        return check(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

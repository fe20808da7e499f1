#!/bin/sh
# tests/programs/java.sh — the JVM (HotSpot: JIT compilers, GC threads,
# zip and class loading in C++) and javac under bulwark.
#
# Proves that javac compiles a program to the same class file with bulwark
# preloaded as without, and that the program (a pool of 8 threads filling
# hash maps, java.util.zip deflate/inflate, which allocate through zlib's C
# code, and a sort) prints the same results; and that the JVM's malloc
# (libjvm.so: its C++ heap, thread stacks' bookkeeping, the JIT's arenas)
# really was bulwark's. Java objects live in the JVM's own heap; bulwark
# serves everything the JVM itself allocates, from many threads.

. "$(dirname "$0")/common.inc"

need_tool java openjdk-17-jdk-headless
need_tool javac openjdk-17-jdk-headless
BOUND_PROGRAMS=libjvm.so

workload() {
    cat >Churn.java <<'JAVA'
import java.util.*;
import java.util.concurrent.*;
import java.util.zip.*;

public class Churn {
    static long task(int seed) throws Exception {
        Map<String, Integer> map = new HashMap<>();
        for (int i = 0; i < 50000; i++) map.put("k" + ((i * 2654435761L + seed) % 100003), i);
        byte[] input = new byte[1 << 18];
        for (int i = 0; i < input.length; i++) input[i] = (byte) ((i * seed) ^ (i >> 7));
        Deflater deflater = new Deflater(1 + seed % 9);
        deflater.setInput(input);
        deflater.finish();
        byte[] packed = new byte[input.length * 2];
        int packedLength = deflater.deflate(packed);
        deflater.end();
        Inflater inflater = new Inflater();
        inflater.setInput(packed, 0, packedLength);
        byte[] output = new byte[input.length];
        int outputLength = inflater.inflate(output);
        inflater.end();
        if (outputLength != input.length || !Arrays.equals(input, output))
            throw new IllegalStateException("zip round trip differs");
        CRC32 crc = new CRC32();
        crc.update(output);
        List<String> keys = new ArrayList<>(map.keySet());
        Collections.sort(keys);
        return map.size() * 31L + packedLength + crc.getValue() + keys.get(keys.size() / 2).hashCode();
    }

    public static void main(String[] args) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(8);
        List<Future<Long>> results = new ArrayList<>();
        for (int seed = 1; seed <= 24; seed++) {
            final int s = seed;
            results.add(pool.submit(() -> task(s)));
        }
        for (int seed = 1; seed <= 24; seed++)
            System.out.println("task " + seed + ": " + results.get(seed - 1).get());
        pool.shutdown();
    }
}
JAVA
    javac -d classes Churn.java
    sha256sum classes/Churn.class | cut -c1-64
    java -Xmx256m -cp classes Churn
}

bw_main "$@"

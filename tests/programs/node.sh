#!/bin/sh
# tests/programs/node.sh — Node.js (V8, libuv's thread pool, zlib, OpenSSL)
# under bulwark.
#
# Proves that a script using six worker threads (each with its own V8
# isolate and heap), zlib deflate/inflate of buffers up to 1 MiB, sha256
# of them, JSON round trips, sorting, regular expressions and Maps prints
# the same digests and counts with bulwark preloaded as without, and that
# node's malloc really was bulwark's. V8 keeps JavaScript objects in its
# own heap; what bulwark serves is everything around it: buffers, zlib and
# OpenSSL state, libuv's requests, the isolates' C++ objects.

. "$(dirname "$0")/common.inc"

need_tool node nodejs
# Debian's node links V8 in; a build with libnode.so binds malloc from there.
if ! $BW_IN_WORKLOAD; then
    BOUND_PROGRAMS=$(bw_malloc_caller "$(command -v node)" libnode)
fi

workload() {
    cat >work.js <<'JS'
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const zlib = require('zlib');
const crypto = require('crypto');

function work(seed) {
  let digest = crypto.createHash('sha256');
  let count = 0;
  for (let round = 0; round < 60; round++) {
    const size = 1000 + ((seed * 7919 + round * 104729) % (1 << 20));
    const buffer = Buffer.alloc(size);
    for (let i = 0; i + 4 <= size; i += 4096) buffer.writeUInt32LE((seed + round + i) >>> 0, i);
    const packed = zlib.deflateSync(buffer, { level: 1 + (round % 9) });
    const unpacked = zlib.inflateSync(packed);
    if (!unpacked.equals(buffer)) throw new Error('zlib round trip differs');
    digest.update(crypto.createHash('sha256').update(unpacked).digest());
    const records = [];
    for (let i = 0; i < 2000; i++) records.push({ id: (i * 2654435761 + seed) % 100003, name: 'r' + i + '-' + round });
    const copy = JSON.parse(JSON.stringify(records));
    copy.sort((a, b) => a.id - b.id || (a.name < b.name ? -1 : 1));
    const map = new Map(copy.map(r => [r.name, r.id]));
    count += map.size + copy.filter(r => /-[0-9]*5$/.test(r.name)).length;
    digest.update(String(copy[0].id) + copy[copy.length - 1].name);
  }
  return { seed, count, digest: digest.digest('hex') };
}

if (isMainThread) {
  const results = [];
  let pending = 6;
  for (let seed = 1; seed <= 6; seed++) {
    const worker = new Worker(__filename, { workerData: seed });
    worker.on('message', result => {
      results.push(result);
      if (--pending === 0) {
        results.sort((a, b) => a.seed - b.seed);
        for (const r of results) console.log(`worker ${r.seed}: ${r.count} ${r.digest}`);
        console.log('main:', JSON.stringify(work(0)));
      }
    });
    worker.on('error', error => { console.error(error); process.exitCode = 1; });
  }
} else {
  parentPort.postMessage(work(workerData));
}
JS
    node work.js
}

bw_main "$@"

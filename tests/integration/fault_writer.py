#!/usr/bin/env python3
"""fault_writer.py: the writer of tests/integration/test_faults.sh.

    fault_writer.py MNT ACKLOG --blocks b1,b2 --records R [--count N] [--stop-file F]
                    [--rate W] [--stop-on-error]

Writes {"n": v} to MNT/<block>/Counter/<id>.json with open/write/close, one block after the
other. v is the block's write counter: it goes up by one with every write to the block, so
the order of a block's writes is the order of their values. The record is id = k * 1000 +
(v % R) + 1 for the k-th block (1-based), so each block cycles through R records.

Every write is appended to ACKLOG (outside the mount) only after it finished:
    A <block> <id> <v>          close() returned 0: acknowledged
    F <block> <id> <v> <errno>  open, write or close failed: not acknowledged (it may still
                                have been stored, if the daemon died while answering)
The next value of a block continues after the highest value ACKLOG holds for it, so several
runs (one per fault) extend one history.

Stops after N writes per block (--count), once the file F exists (--stop-file), or at the
first failure (--stop-on-error; what a kill -9 of the daemon causes). --rate limits the
writes per second over all blocks. Prints "acked=N failed=M slowest_ms=T" at the end (T: the
longest open-write-close).
"""
import argparse
import errno
import os
import sys
import time


def report(acked, failed, slowest):
    print("acked=%d failed=%d slowest_ms=%d" % (acked, failed, slowest[0] * 1000))
    if slowest[0] >= 0.5:
        print("# slowest write: %s value %d, %d ms" % (slowest[2], slowest[1], slowest[0] * 1000))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mnt")
    ap.add_argument("acklog")
    ap.add_argument("--blocks", required=True)
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--stop-file")
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--stop-on-error", action="store_true")
    a = ap.parse_args()

    blocks = a.blocks.split(",")
    index = {b: k + 1 for k, b in enumerate(blocks)}
    nxt = {b: 1 for b in blocks}
    try:
        with open(a.acklog) as f:
            for line in f:
                p = line.split()
                if len(p) >= 4 and p[1] in nxt:
                    nxt[p[1]] = max(nxt[p[1]], int(p[3]) + 1)
    except FileNotFoundError:
        pass

    log = os.open(a.acklog, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    acked = failed = 0
    start = time.monotonic()
    done = 0
    rounds = 0
    slowest = (0.0, 0, "")
    while True:
        if a.count and rounds >= a.count:
            break
        if a.stop_file and os.path.exists(a.stop_file):
            break
        rounds += 1
        for b in blocks:
            v = nxt[b]
            nxt[b] = v + 1
            rid = index[b] * 1000 + v % a.records + 1
            path = "%s/%s/Counter/%d.json" % (a.mnt, b, rid)
            body = b'{"n":%d}\n' % v
            err = 0
            fd = -1
            t0 = time.monotonic()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                if os.write(fd, body) != len(body):
                    err = errno.EIO
            except OSError as e:
                err = e.errno or errno.EIO
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError as e:
                    err = err or e.errno or errno.EIO
            took = time.monotonic() - t0
            if took > slowest[0]:
                slowest = (took, v, b)
            if err:
                failed += 1
                os.write(log, b"F %s %d %d %d\n" % (b.encode(), rid, v, err))
                if a.stop_on_error:
                    report(acked, failed, slowest)
                    return 0
                time.sleep(0.01)
            else:
                acked += 1
                os.write(log, b"A %s %d %d\n" % (b.encode(), rid, v))
            done += 1
            if a.rate > 0:
                ahead = done / a.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    report(acked, failed, slowest)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""nodes_writer.py: one node's writer in tests/integration/test_nodes.sh.

    nodes_writer.py MNT ACKLOG --node K --block B [--count N] [--stop-file F] [--stop-on-error]

Writes {"n": K * 1000000 + v} with open/write/close to MNT/B/Counter/<id>.json, v going up
by one with every write of this writer (so a node's writes are ordered by their values).
Writes alternate between the node's own records (ids K * 1000 + 1 ... + 8) and records every
node writes (ids 1 ... 4). Each write is appended to ACKLOG only after it finished:
    A <block> <id> <n>          close() returned 0: acknowledged
    F <block> <id> <n> <errno>  failed: not acknowledged (may still have been stored)
v continues after the highest value ACKLOG holds, so runs extend one history. Prints
"acked=N failed=M" at the end.
"""
import argparse
import os

SCALE = 1000000
OWN, SHARED = 8, 4


def record(node, v):
    if v % 2:
        return node * 1000 + (v // 2) % OWN + 1
    return (v // 2) % SHARED + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mnt")
    ap.add_argument("acklog")
    ap.add_argument("--node", type=int, required=True)
    ap.add_argument("--block", required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--stop-file")
    ap.add_argument("--stop-on-error", action="store_true")
    a = ap.parse_args()

    v = 0
    try:
        with open(a.acklog) as f:
            for line in f:
                p = line.split()
                if len(p) >= 4:
                    v = max(v, int(p[3]) - a.node * SCALE)
    except FileNotFoundError:
        pass
    log = os.open(a.acklog, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    acked = failed = done = 0
    while not (a.count and done >= a.count):
        if a.stop_file and os.path.exists(a.stop_file):
            break
        v += 1
        done += 1
        rid, n = record(a.node, v), a.node * SCALE + v
        err = 0
        try:
            fd = os.open("%s/%s/Counter/%d.json" % (a.mnt, a.block, rid),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, b'{"n":%d}\n' % n)
            finally:
                os.close(fd)
        except OSError as e:
            err = e.errno or -1
        if err:
            failed += 1
            os.write(log, b"F %s %d %d %d\n" % (a.block.encode(), rid, n, err))
            if a.stop_on_error:
                break
        else:
            acked += 1
            os.write(log, b"A %s %d %d\n" % (a.block.encode(), rid, n))
    print("acked=%d failed=%d" % (acked, failed))


if __name__ == "__main__":
    main()

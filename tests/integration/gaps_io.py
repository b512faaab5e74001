"""gaps_io.py - system calls with their errno, for test_gaps.sh.

Each command prints one line: "ok" or the errno's name (EINVAL, EFBIG, ...), and for
writes the count write() returned, so that a short count shows.

  mkdir HEXPATH                 os.mkdir of the path given as hex bytes (any bytes)
  write PATH SIZE [PARTS]       open (create, truncate), write a JSON document of SIZE bytes in
                                PARTS write() calls (default 1), close: "write=... close=..."
  hold PREFIX COUNT SIZE        open COUNT files PREFIX<i>.json (i from 1), write SIZE bytes of an
                                unfinished document to each in one write(), all held open at
                                once, then close them: "writes=... closes=..."
"""
import errno
import os
import sys


def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def doc(size, pk=1):
    head = b'{"id":%d,"email":"big-%d@example.com","name":"' % (pk, pk)
    tail = b'"}\n'
    return head + b"a" * (size - len(head) - len(tail)) + tail


def do_mkdir(hexpath):
    try:
        os.mkdir(bytes.fromhex(hexpath))
        return "ok"
    except OSError as e:
        return name(e)


def do_write(path, size, parts=1):
    pk = int(os.path.basename(path).split(".")[0])
    data = doc(int(size), pk)
    parts = int(parts)
    step = -(-len(data) // parts)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    results = []
    try:
        for off in range(0, len(data), step):
            try:
                results.append(str(os.write(fd, data[off:off + step])))
            except OSError as e:
                results.append(name(e))
                break
    finally:
        try:
            os.close(fd)
            closed = "ok"
        except OSError as e:
            closed = name(e)
    return "write=%s close=%s" % (",".join(results), closed)


def do_hold(prefix, count, size):
    fds, writes, closes = [], [], []
    for i in range(1, int(count) + 1):
        fd = os.open("%s%d.json" % (prefix, i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fds.append(fd)
        try:
            n = os.write(fd, doc(int(size) + 3, i)[:int(size)])
            writes.append("ok" if n == int(size) else "short%d" % n)
        except OSError as e:
            writes.append(name(e))
    for fd in fds:
        try:
            os.close(fd)
            closes.append("ok")
        except OSError as e:
            closes.append(name(e))
    return "writes=%s closes=%s" % (",".join(writes), ",".join(closes))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    print({"mkdir": do_mkdir, "write": do_write, "hold": do_hold}[cmd](*args))

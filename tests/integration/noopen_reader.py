"""Reader for test_noopen.sh: PATH PUB SECONDS. The publisher writes PUB.start (the change it
begins) before each change and PUB (the last change acknowledged) after `invalidate` returned.
Until PUB.done or SECONDS, the reader reads the record in one read() (open, read, close). A read
with no change in flight from before it began to after it ended must be the last acknowledged
version, whole; any read must not be older than what was acknowledged before it began. A read
that overlaps a change (a records=ro open keeps no snapshot) may mix the two: counted, printed.
Prints "reads=N clean=C overlapping=O torn=T" and exits 1 with the first violation."""
import json, os, sys, time

def num(path):
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except (FileNotFoundError, ValueError):
        return 0

def main(path, pub, seconds):
    rid = int(os.path.basename(path).split(".")[0])
    end = time.time() + seconds
    reads = clean = overlapping = torn = 0
    while time.time() < end and not os.path.exists(pub + ".done"):
        s0 = num(pub + ".start")
        want = num(pub)
        fd = os.open(path, os.O_RDONLY)
        data = os.read(fd, 65536)
        os.close(fd)
        quiet = s0 == want and num(pub + ".start") == want
        reads += 1
        try:
            doc = json.loads(data)
            got = int(doc["name"][1:7])
            whole = doc.get("email") == "race%d@example.com" % rid and data.endswith(b"}\n")
        except (ValueError, KeyError, TypeError):
            got, whole = None, False
        if quiet:
            clean += 1
            if not whole or got != want:
                print("no change in flight, version %d acknowledged, read: %r" % (want, data))
                return 1
        else:
            overlapping += 1
            torn += not whole
        if whole and got < want:
            print("stale: read version %d after version %d was acknowledged: %r" % (got, want, data))
            return 1
    print("reads=%d clean=%d overlapping=%d torn=%d" % (reads, clean, overlapping, torn))
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))

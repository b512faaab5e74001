"""Writer and readers for test_cache.sh: a reader never sees a stale or torn record.

writer PATH PUB N: writes PATH N times (open O_TRUNC, write, close), each a version i in
  "name" padded to a length that goes up and down, every third one a partial body (only
  "name", merged into the stored record); after each close() returns it publishes i in PUB
  (rename of a temporary file, so a reader sees one whole number).
reader PATH PUB SECONDS: until the writer's last version or SECONDS: reads PUB, then the
  record (open, read to the end, close, a new descriptor each time), which must be one whole
  JSON object with the email the writer never changes, and a version >= the one published
  before the open. Prints "reads=N cached=M" and exits 1 with the first violation.
"""
import json, os, sys, time

def publish(pub, i):
    tmp = pub + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(i))
    os.replace(tmp, pub)

def published(pub):
    try:
        with open(pub) as f:
            return int(f.read() or 0)
    except (FileNotFoundError, ValueError):
        return 0

def body(i, rid):
    name = "v%06d-" % i + "x" * ((i * 37) % 90)
    if i % 3 == 1:
        return json.dumps({"name": name})
    return json.dumps({"id": rid, "email": "race%d@example.com" % rid, "name": name})

def writer(path, pub, n):
    rid = int(os.path.basename(path).split(".")[0])
    for i in range(1, n + 1):
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, (body(i, rid) + "\n").encode())
        os.close(fd)
        publish(pub, i)
        if i % 10 == 0:
            time.sleep(0.002)   # room for readers between writers
    publish(pub + ".done", 1)

def reader(path, pub, seconds):
    rid = int(os.path.basename(path).split(".")[0])
    end = time.time() + seconds
    reads = 0
    while time.time() < end:
        want = published(pub)
        fd = os.open(path, os.O_RDONLY)
        if reads % 2:
            os.fstat(fd)   # as cat does: stale attributes are asked for again
        data = b""
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
        os.close(fd)
        reads += 1
        try:
            doc = json.loads(data)
            got = int(doc["name"][1:7])
        except (ValueError, KeyError, TypeError) as e:
            print("torn after version %d: %r (%s)" % (want, data, e))
            return 1
        if doc.get("email") != "race%d@example.com" % rid or not data.endswith(b"}\n"):
            print("not whole after version %d: %r" % (want, data))
            return 1
        if got < want:
            print("stale: read version %d after version %d was acknowledged: %r" % (got, want, data))
            return 1
        if os.path.exists(pub + ".done") and got == want:
            break
    print("reads=%d" % reads)
    return 0

if __name__ == "__main__":
    if sys.argv[1] == "writer":
        writer(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(reader(sys.argv[2], sys.argv[3], float(sys.argv[4])))

#!/usr/bin/env python3
"""nodes_check.py: what test_nodes.sh's writers on several nodes became in PostgreSQL.

    nodes_check.py LOG_TSV FINAL_TSV ACKLOG...

ACKLOG: one per node, nodes_writer.py's log (node K writes values K * 1000000 + v, v going up
with every write). LOG_TSV: counter_log as "seq txid id n", one row per row the trigger saw;
FINAL_TSV: "Counter" as "id n". Per node, over the rows holding its values:

  reordered   a record goes back to a lower value of the node (later in the log); or a
              transaction holds a value of the node at or below one of an earlier transaction
  duplicated  a (record, value) applied more than once
  unknown     a value that the node never wrote to that record
  lost        a record only this node writes does not end on its last acknowledged value
              (or a later unacknowledged one); or an acknowledged write to such a record is
              missing from the transaction that applied the writes around it (a transaction
              collapses a record's run of writes to its last: it must show, for each record
              it touched, the last acknowledged write at or below its highest value)
  shared      a record every node writes does not end on some node's last acknowledged
              value (or a later unacknowledged one): the last commit wins

Prints "acknowledged=N transactions=T lost=L duplicated=D reordered=R unknown=U shared=S",
then (with --per-node, given first) a line per node "node K: acknowledged=N lost=L
duplicated=D reordered=R unknown=U", then up to 10 "# ..." lines per kind.
"""
import sys
from collections import defaultdict

SCALE = 1000000


def note(counts, node, kind):
    counts[node][kind] += 1


def main():
    args = sys.argv[1:]
    per_node = bool(args) and args[0] == "--per-node"
    if per_node:
        args = args[1:]
    log_tsv, final_tsv = args[:2]
    writes = defaultdict(dict)  # node -> v -> (rid, acked)
    acked = 0
    for path in args[2:]:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) < 4:
                    continue
                n = int(p[3])
                writes[n // SCALE][n % SCALE] = (int(p[2]), p[0] == "A")
                acked += p[0] == "A"
    rows = defaultdict(list)  # node -> [(seq, txid, rid, v)]
    with open(log_tsv) as f:
        for line in f:
            p = line.split()
            if len(p) == 4:
                seq, txid, rid, n = (int(x) for x in p)
                rows[n // SCALE].append((seq, txid, rid, n % SCALE))
    final = {}
    with open(final_tsv) as f:
        for line in f:
            p = line.split()
            if len(p) == 2:
                final[int(p[0])] = int(p[1])

    problems = defaultdict(list)
    counts = defaultdict(lambda: defaultdict(int))  # node -> kind -> count
    ntx = set()
    for node, w in writes.items():
        seen, last_v, hi_prev = set(), {}, 0
        by_tx = defaultdict(list)
        for seq, txid, rid, v in sorted(rows[node]):
            ntx.add(txid)
            by_tx[txid].append((seq, rid, v))
            if (rid, v) in seen:
                note(counts, node, "duplicated")
                problems["duplicated"].append("node %d: record %d got %d twice" % (node, rid, v))
            seen.add((rid, v))
            if v not in w or w[v][0] != rid:
                note(counts, node, "unknown")
                problems["unknown"].append("node %d: record %d got %d" % (node, rid, v))
            if rid in last_v and v <= last_v[rid]:
                note(counts, node, "reordered")
                problems["reordered"].append("node %d: record %d went from %d to %d" %
                                             (node, rid, last_v[rid], v))
            last_v[rid] = v
        # transactions in commit order: each one's values above the earlier ones'; each
        # record only this node writes shows its last acknowledged write of the run
        values = sorted(w)
        pos = 0
        for txid, txrows in sorted(by_tx.items(), key=lambda t: min(r[0] for r in t[1])):
            vs = [r[2] for r in txrows]
            if min(vs) <= hi_prev:
                note(counts, node, "reordered")
                problems["reordered"].append("node %d: transaction %d holds %d, an earlier one "
                                             "had %d" % (node, txid, min(vs), hi_prev))
                continue
            got = {rid: v for _, rid, v in sorted(txrows)}
            run = defaultdict(list)
            while pos < len(values) and values[pos] <= max(vs):
                run[w[values[pos]][0]].append(values[pos])
                pos += 1
            for rid, vals in run.items():
                if rid // 1000 != node:
                    continue  # shared: another node's write may have collapsed it
                allowed = []
                for v in reversed(vals):
                    allowed.append(v)
                    if w[v][1]:
                        break
                if not w[allowed[-1]][1]:
                    allowed.append(None)  # only unacknowledged writes in the run
                if got.get(rid) not in allowed:
                    note(counts, node, "lost")
                    problems["lost"].append("node %d: record %d: transaction %d applied %s, "
                                            "expected one of %s" % (node, rid, txid,
                                                                    got.get(rid), allowed))
            hi_prev = max(vs)
    # the end state
    ends = defaultdict(set)  # rid -> values it may end on
    owners = defaultdict(set)
    for node, w in writes.items():
        last = {}
        for v in sorted(w):
            rid, ok = w[v]
            owners[rid].add(node)
            if ok:
                last[rid] = {node * SCALE + v}
            else:
                last.setdefault(rid, set()).add(node * SCALE + v)
        for rid, vs in last.items():
            ends[rid] |= vs
    for rid, allowed in sorted(ends.items()):
        if final.get(rid) not in allowed:
            kind = "lost" if len(owners[rid]) == 1 else "shared"
            if kind == "lost":
                note(counts, next(iter(owners[rid])), "lost")
            problems[kind].append("record %d ends on %s, expected one of %s" %
                                  (rid, final.get(rid), sorted(allowed)[-4:]))
    print("acknowledged=%d transactions=%d %s" % (acked, len(ntx), " ".join(
        "%s=%d" % (k, len(problems[k]))
        for k in ("lost", "duplicated", "reordered", "unknown", "shared"))))
    if per_node:
        for node in sorted(writes):
            print("node %d: acknowledged=%d %s" % (
                node, sum(ok for _, ok in writes[node].values()), " ".join(
                    "%s=%d" % (k, counts[node][k])
                    for k in ("lost", "duplicated", "reordered", "unknown"))))
    for k, lines in problems.items():
        for line in lines[:10]:
            print("# %s: %s" % (k, line))


if __name__ == "__main__":
    main()

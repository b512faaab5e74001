#!/usr/bin/env python3
"""fault_check.py: what test_faults.sh's writes became in PostgreSQL.

    fault_check.py ACKLOG LOG_TSV FINAL_TSV BLOCK...

ACKLOG is fault_writer.py's log ("A block id v" acknowledged, "F block id v errno" not).
LOG_TSV is counter_log as "seq txid id n" (tab separated, one row per row the trigger saw,
seq in insertion order); FINAL_TSV is "Counter" as "id n". The k-th BLOCK (1-based) owns the
ids k * 1000 + 1 ... k * 1000 + 999; other ids are not looked at.

A block's values go up with every write to it (its seq order), and one PostgreSQL transaction
applies a contiguous run of the block's writes, collapsed to the last write of each record.
So, per block, with the transactions in commit order and hi(k) the highest value of the k-th:

  reordered   a transaction holds a value at or below one of an earlier transaction
  duplicated  a (record, value) applied more than once
  unknown     a value that no write sent to that record
  lost        in the run (hi(k-1), hi(k)], a record written in it does not show the last
              acknowledged write of the run (an unacknowledged write after it may show
              instead, or nothing if the run holds only unacknowledged writes to it); or,
              at the end, "Counter" does not hold a record's last acknowledged value (or a
              later unacknowledged one)

Prints one line "acknowledged=N unacknowledged=M transactions=T lost=L duplicated=D
reordered=R unknown=U" and then up to 10 "# ..." lines of detail per kind.
"""
import sys
from collections import defaultdict


def main():
    acklog, log_tsv, final_tsv = sys.argv[1:4]
    blocks = sys.argv[4:]
    index = {b: k + 1 for k, b in enumerate(blocks)}
    owner = {k + 1: b for k, b in enumerate(blocks)}

    writes = {b: {} for b in blocks}  # block -> v -> (id, acked)
    acked = unacked = 0
    with open(acklog) as f:
        for line in f:
            p = line.split()
            if len(p) < 4 or p[1] not in writes:
                continue
            ok = p[0] == "A"
            writes[p[1]][int(p[3])] = (int(p[2]), ok)
            if ok:
                acked += 1
            else:
                unacked += 1

    txns = {b: {} for b in blocks}  # block -> txid -> [(seq, id, n)]
    with open(log_tsv) as f:
        for line in f:
            p = line.split()
            if len(p) != 4:
                continue
            seq, txid, rid, n = (int(x) for x in p)
            b = owner.get(rid // 1000)
            if b is not None:
                txns[b].setdefault(txid, []).append((seq, rid, n))

    final = {}
    with open(final_tsv) as f:
        for line in f:
            p = line.split()
            if len(p) == 2:
                final[int(p[0])] = int(p[1])

    problems = defaultdict(list)

    def bad(kind, text):
        problems[kind].append(text)

    ntx = 0
    for b in blocks:
        w = writes[b]
        order = sorted(txns[b].values(), key=lambda rows: min(r[0] for r in rows))
        ntx += len(order)
        seen = set()
        hi_prev = 0
        values = sorted(w)
        pos = 0  # values[:pos] are at or below hi_prev
        for k, rows in enumerate(order, 1):
            rows.sort()
            ns = [r[2] for r in rows]
            lo, hi = min(ns), max(ns)
            if lo <= hi_prev:
                bad("reordered", "block %s: transaction %d holds value %d, an earlier one "
                    "already had %d" % (b, k, lo, hi_prev))
            last = {}
            for seq, rid, n in rows:
                if (rid, n) in seen:
                    bad("duplicated", "block %s: record %d got value %d again (transaction "
                        "%d, log seq %d)" % (b, rid, n, k, seq))
                seen.add((rid, n))
                if n not in w or w[n][0] != rid:
                    bad("unknown", "block %s: record %d got value %d, which no write sent "
                        "to it" % (b, rid, n))
                if rid in last and n <= last[rid]:
                    bad("reordered", "block %s: record %d went from %d to %d inside "
                        "transaction %d" % (b, rid, last[rid], n, k))
                last[rid] = n
            if hi <= hi_prev:
                continue  # already reported; the run is meaningless
            # the run (hi_prev, hi]: the writes it holds, per record
            run = defaultdict(list)
            end = pos
            while end < len(values) and values[end] <= hi:
                v = values[end]
                run[w[v][0]].append((v, w[v][1]))
                end += 1
            pos = end
            for rid, ws in run.items():
                allowed = []
                may_lack = True
                for v, ok in reversed(ws):
                    allowed.append(v)
                    if ok:
                        may_lack = False
                        break
                got = last.get(rid)
                if got is None:
                    if not may_lack:
                        bad("lost", "block %s: record %d: transaction %d (values %d..%d) "
                            "lacks acknowledged value %d" % (b, rid, k, hi_prev + 1, hi,
                                                            allowed[-1]))
                elif got not in allowed:
                    bad("lost", "block %s: record %d: transaction %d (values %d..%d) applied "
                        "%d, expected %s" % (b, rid, k, hi_prev + 1, hi, got, allowed))
            hi_prev = hi
        # the end state: each record's last acknowledged value, or a later unacknowledged one
        last_ack, later = {}, defaultdict(set)
        for v in values:
            rid, ok = w[v]
            if ok:
                last_ack[rid] = v
                later[rid] = set()
            else:
                later[rid].add(v)
        for rid, v in sorted(last_ack.items()):
            got = final.get(rid)
            if got != v and got not in later[rid]:
                bad("lost", "block %s: record %d holds %s in PostgreSQL, its last "
                    "acknowledged value is %d" % (b, rid, got, v))
        tail = [v for v in values[pos:] if w[v][1]]
        if tail:
            bad("lost", "block %s: %d acknowledged writes (values %d..%d) never applied "
                "(last applied value %d)" % (b, len(tail), tail[0], tail[-1], hi_prev))

    print("acknowledged=%d unacknowledged=%d transactions=%d lost=%d duplicated=%d "
          "reordered=%d unknown=%d" % (acked, unacked, ntx, len(problems["lost"]),
                                       len(problems["duplicated"]),
                                       len(problems["reordered"]), len(problems["unknown"])))
    for kind in ("lost", "duplicated", "reordered", "unknown"):
        for text in problems[kind][:10]:
            print("# %s: %s" % (kind, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())

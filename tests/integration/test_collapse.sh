#!/usr/bin/env bash
# Collapsing never changes meaning (issue 11, items 2, 3 and 6):
# - delete, then re-create with fewer columns, while PostgreSQL is down: the row holds exactly
#   the new document (every column checked in psql), and a re-creation PostgreSQL refuses
#   leaves the acknowledged deletion done;
# - a valid write, then at once a refused one of the same record, in one batch: the valid one
#   is applied, only the refused one is a dead letter;
# - two processes writing different keys of one record at the same moment, hundreds of times:
#   every key written is there, in the file and in PostgreSQL.
# TRIALS (default 300) sets the number of concurrent-write trials.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TRIALS=${TRIALS:-300}

# put FILE BODY: write BODY plus "\n" in one write(); errors from write() or close() show.
put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }
status_of() { timeout 10 sed -n "s/^$1 //p" "$B/sync-status"; }
pending_is_zero() { [[ $(status_of pending) == 0 ]]; }
dead_is() { [[ $(status_of dead) == "$1" ]]; }
# row MODEL ID: the row as PostgreSQL has it, one JSON object ("" when absent).
row() { psql_q "select row_to_json(t) from \"$1\" t where id = $2"; }
# jq_is EXPECTED JSON FILTER
jq_is() { [[ $(jq -c "$3" <<<"$2") == "$1" ]]; }

setup_tmp
start_postgres
load_sample_schema
start_redis
mount_sharded
B=$MNT/c1
require "mkdir a block" mkdir "$B"
for f in User/3 Order/20 Order/11; do
  require "read $f while PostgreSQL is up" test -s "$B/$f.json"
done
t0=$(psql_q "select extract(epoch from now())::bigint")

# --- delete + re-create, valid + refused, all while PostgreSQL is down: one batch -------------
stop_postgres
check "rm User/3.json (PostgreSQL down)" rm "$B/User/3.json"
check "rm Order/20.json (PostgreSQL down)" rm "$B/Order/20.json"
sleep 3   # past the grace in which a new write revokes a deletion: it is in Redis now
check "re-create User/3 with only id and email" put "$B/User/3.json" '{"id":3,"email":"g2@example.com"}'
check "re-create Order/20 with a user that does not exist" put "$B/Order/20.json" '{"id":20,"userId":999999}'
check "write total 2.50 to Order/11" put "$B/Order/11.json" '{"total":2.50}'
check "then at once userId 999999 to Order/11" put "$B/Order/11.json" '{"userId":999999}'
_pg_start
check "everything is applied" wait_for 30 pending_is_zero
check "two dead letters" wait_for 10 dead_is 2

u=$(row User 3)
check_eq "User 3: id and email are the new document's" '[3,"g2@example.com"]' "$(jq -c '[.id, .email]' <<<"$u")"
check_eq "User 3: name is NULL, not the deleted row's" null "$(jq -c .name <<<"$u")"
check_eq "User 3: active is the default (the deleted row had false)" true "$(jq -c .active <<<"$u")"
check_eq "User 3: settings is the default (the deleted row had beta)" '{}' "$(jq -c .settings <<<"$u")"
check "User 3: created_at is the default now(), not 2024's" \
  test "$(psql_q "select extract(epoch from created_at)::bigint >= $t0 from \"User\" where id = 3")" = t
check_eq "User 3's file reads as PostgreSQL's row" "$(jq -cS . <<<"$u")" "$(jq -cS . "$B/User/3.json")"
check_eq "Order 20: the acknowledged deletion happened (re-creation refused)" "" "$(row Order 20)"
check "Order/20.json is gone from the block" test ! -e "$B/Order/20.json"
check_eq "Order 11: the valid write is applied" '2.50|1' \
  "$(psql_q 'select total::text || '"'|'"' || "userId" from "Order" where id = 11')"
# field FIELD: that field of every dead letter, one line each
field() { redis_cli XRANGE 'sharded:{c1}:dead' - + | awk -v f="$1" 'p == f {print} {p = $0}' | tr '\n' ' '; }
check_eq "the dead letters are Order 20's re-creation and Order 11's second write" "20 11 " "$(field pk)"
check_eq "both carry userId 999999" 2 "$(field doc | grep -o '"userId":999999' | wc -l)"

# --- two processes, different keys of one record, at the same moment ------------------------
cat >"$T/race.py" <<'EOF'
import json, multiprocessing as mp, os, sys

path, trials = sys.argv[1], int(sys.argv[2])

def put(body):
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, body.encode())
    finally:
        os.close(fd)

def worker(which, barrier):
    for t in range(trials):
        barrier.wait()
        put(json.dumps({"name": "n%d" % t} if which == 0 else {"settings": {"t": t}}))
        barrier.wait()

barrier = mp.Barrier(3)
ps = [mp.Process(target=worker, args=(w, barrier)) for w in (0, 1)]
for p in ps:
    p.start()
lost = 0
for t in range(trials):
    barrier.wait()
    barrier.wait()
    with open(path) as f:
        doc = json.load(f)
    if doc.get("name") != "n%d" % t or doc.get("settings") != {"t": t}:
        lost += 1
for p in ps:
    p.join()
print(lost)
EOF
lost=$(timeout 120 python3 "$T/race.py" "$B/User/2.json" "$TRIALS" || echo failed)
check_eq "$TRIALS trials of two concurrent partial writes: no key lost" 0 "$lost"
check "the writes are applied" wait_for 30 pending_is_zero
last=$((TRIALS - 1))
check_eq "PostgreSQL holds both keys' last values" "[\"n$last\",{\"t\":$last},\"alan@example.com\"]" \
  "$(row User 2 | jq -c '[.name, .settings, .email]')"

check "unmount" unmount_sharded
finish

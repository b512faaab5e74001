#!/usr/bin/env bash
# The drain in a chain of batches (core/sync.c apply_entries): while batch k+1 is applied in
# PostgreSQL, batch k settles in the block file on a helper thread, which then reads batch
# k+2 from Redis. Checked with 6,000 records of a table whose trigger bumps "ver" on every
# update, all rewritten twice while PostgreSQL is down and the first 1,000 a third time, so
# that the drain takes three batches of at most 5,000 (the third read ahead) and records of
# one batch are written again in the next:
# - every row in PostgreSQL holds its last write, bumped once per write (exactly once, in
#   order: 1,000 rows at ver 3, 5,000 at ver 2);
# - every file reads as PostgreSQL's row: an earlier batch's refresh, settled late, never
#   overwrote a record a later batch changed after it;
# - the outbox is empty, nothing is dead, and Redis holds neither entries nor pending ones
#   (each batch acknowledged after its settle).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=6000 THRICE=1000
status_of() { timeout 10 sed -n "s/^$2 //p" "$1/sync-status"; }
drained() { [[ $(status_of "$1" pending) == 0 ]]; }
metric() { timeout 10 sed -n "s/^sharded_$1 //p" "$MNT/metrics"; }
# rewrite DIR FROM TO TAG: {"name": "TAG-id"} into records FROM..TO, in one process (a
# process per write would take a minute); prints how many writes failed
rewrite() {
  python3 - "$@" <<'PY'
import sys
d, lo, hi, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
failed = 0
for i in range(lo, hi + 1):
    try:
        with open(f"{d}/{i}.json", "w") as f:
            f.write('{"name":"%s-%d"}\n' % (tag, i))
    except OSError:
        failed += 1
print(failed)
PY
}

setup_tmp
start_postgres
start_redis
psql_q "CREATE TABLE \"Acct\" (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text,
  ver int NOT NULL DEFAULT 0);
CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS
  \$\$ BEGIN NEW.ver := OLD.ver + 1; RETURN NEW; END \$\$;
CREATE TRIGGER bump BEFORE UPDATE ON \"Acct\" FOR EACH ROW EXECUTE FUNCTION bump();
INSERT INTO \"Acct\" SELECT g, 'a' || g || '@example.com', 'before'
  FROM generate_series(1, $N) g;" >/dev/null
cat >"$T/rules" <<'RULES'
block acct
    "Acct" where true
RULES
mount_sharded "loaders=$T/rules"
A=$MNT/acct
require "mkdir acct loads $N records" mkdir "$A"
batches0=$(metric apply_batches_total)

stop_postgres
check_eq "$N rewrites acknowledged while PostgreSQL is down" 0 "$(rewrite "$A/Acct" 1 "$N" one)"
check_eq "and again" 0 "$(rewrite "$A/Acct" 1 "$N" two)"
check_eq "$THRICE of them a third time" 0 "$(rewrite "$A/Acct" 1 "$THRICE" three)"
check_eq "all of them pending" "$((2 * N + THRICE))" "$(status_of "$A" pending)"
_pg_start
check "acct drains" wait_for 60 drained "$A"
xlen() { redis_cli XLEN 'sharded:{acct}:ops'; }
xpending() { redis_cli XPENDING 'sharded:{acct}:ops' sharded | head -1; }
stream_empty() { [[ $(xlen) == 0 && $(xpending) == 0 ]]; }
sleep 1   # the metrics count a pass at its end
batches=$(($(metric apply_batches_total) - batches0))
log "drain: $batches batches"
check "the drain took three batches or more" test "$batches" -ge 3

check_eq "the records written three times hold the third write, bumped three times" "$THRICE" \
  "$(psql_q "select count(*) from \"Acct\" where id <= $THRICE and name = 'three-' || id and ver = 3")"
check_eq "the others hold the second write, bumped twice" "$((N - THRICE))" \
  "$(psql_q "select count(*) from \"Acct\" where id > $THRICE and name = 'two-' || id and ver = 2")"
sorted_rows() { psql_q "select row_to_json(t) from \"Acct\" t" | jq -cS . | sort; }
sorted_files() { find "$A/Acct" -name '*.json' -print0 | timeout 60 xargs -0 jq -cS . | sort; }
rows=$(sorted_rows) files=$(sorted_files)
check_eq "every file reads as PostgreSQL's row (no late refresh of an earlier batch)" \
  "$(md5sum <<<"$rows")" "$(md5sum <<<"$files")"
check_eq "as many files as rows" "$N" "$(wc -l <<<"$files")"
check_eq "nothing dead" 0 "$(status_of "$A" dead)"
# copies the relay sent again (its 30 s re-send, on a machine slow enough) may still be in
# the stream with the outbox empty: one more write makes the apply thread read them, skip
# them as applied and acknowledge them
check_eq "one more write" 0 "$(rewrite "$A/Acct" 1 1 last)"
check "the stream empties (each batch acknowledged after its settle)" wait_for 30 stream_empty
check_eq "no entry left in the stream" 0 "$(xlen)"
check_eq "none pending in the group" 0 "$(xpending)"

# --- kill -9 between PostgreSQL's commits and the block file's settle: a process holds the
# block file's write lock (the settle waits for it) while the batches commit, then the daemon
# is killed. After the restart the writes are skipped as applied, never applied twice, and
# their records are read back from PostgreSQL: the trigger's "ver" reaches the files
all_landed() { [[ $(psql_q "select count(*) from \"Acct\" where name like 'four-%'") == "$N" ]]; }
stop_postgres
check_eq "round 2: $N more rewrites while PostgreSQL is down" 0 "$(rewrite "$A/Acct" 1 "$N" four)"
relayed() { (($(xlen) >= N)); }
check "round 2: relayed to Redis" wait_for 30 relayed
sleep 0.5   # the relay marks them relayed after its XADDs
python3 - "$DATA/acct.sqlite" "$T/locked" <<'PY' &
import sqlite3, sys, time, os
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(30)
PY
LOCKER=$!
track_pid "$LOCKER"
wait_for 10 test -e "$T/locked"
_pg_start
check "round 2: every batch committed in PostgreSQL (the settle waits for the lock)" \
  wait_for 60 all_landed
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
timeout 10 fusermount3 -uz "$MNT" 2>/dev/null || true
DAEMON_PID=""
kill "$LOCKER" 2>/dev/null
wait "$LOCKER" 2>/dev/null || true
mount_sharded "loaders=$T/rules"
check "round 2: acct drains after the restart" wait_for 60 drained "$A"
check_eq "round 2: every row holds its fourth write, bumped once more (none twice)" "$N" \
  "$(psql_q "select count(*) from \"Acct\" where name = 'four-' || id and
     ver = case when id <= $THRICE then 4 else 3 end + case when id = 1 then 1 else 0 end")"
rows=$(sorted_rows) files=$(sorted_files)
check_eq "round 2: every file reads as PostgreSQL's row" "$(md5sum <<<"$rows")" "$(md5sum <<<"$files")" ||
  log "round 2: rows (<) and files (>) differ: $(diff <(echo "$rows") <(echo "$files") | head -6)"
check_eq "round 2: nothing dead" 0 "$(status_of "$A" dead)"
unmount_sharded
finish

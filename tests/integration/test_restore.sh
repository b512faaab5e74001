#!/usr/bin/env bash
# A block file that goes back in time must never have a new write mistaken for an applied one
# (issue 11, item 1): restored from a backup as the README says, rolled back by a power loss
# (the WAL's last frames gone), or deleted and created again. Each time, writes made afterwards
# reach PostgreSQL with the values written, and what PostgreSQL already had is not applied again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }
pending_zero() { timeout 5 grep -qx 'pending 0' "$MNT/$1/sync-status"; }
pg_is() { [[ $(psql_q "$2") == "$1" ]]; }
name_of() { psql_q "select coalesce(name, '<null>') from \"User\" where id = $1"; }
# set_name BLOCK ID NAME: write the record back with a new name (the whole document)
set_name() {
  local doc
  doc=$(timeout 10 cat "$MNT/$1/User/$2.json") || return 1
  put "$MNT/$1/User/$2.json" "$(jq -c --arg n "$3" '.name = $n' <<<"$doc")"
}
# drained BLOCK WHAT: every write of BLOCK is in PostgreSQL
drained() { check "$2: written and applied" wait_for 20 pending_zero "$1"; }

setup_tmp
start_postgres
load_sample_schema
start_redis

# --- data from a version before origins ---------------------------------------------------------
# sharded_applied keyed by block alone says seq 1002 of block "old" is applied; the block file
# holds 1002 (applied, not deleted yet: a crash) and 1003 (pending) in its old outbox.
psql_q "create table sharded_applied (block text primary key, seq bigint not null,
  applied_at timestamptz); insert into sharded_applied values ('old', 1002, now())" >/dev/null
mkdir -p "$T/data"
now_ns=$(date +%s%N)
sqlite3 "$T/data/old.sqlite" "pragma journal_mode=wal;
  create table meta(key text primary key, value text not null) without rowid;
  create table records(model text not null, pk text not null, doc text not null,
    mtime_ns integer not null, primary key(model, pk)) without rowid;
  create table outbox(seq integer primary key, op text not null, model text not null,
    pk text not null, doc text, mtime_ns integer not null, relayed_ns integer not null default 0);
  insert into meta values ('base_seq', '1000'), ('last_seq', '1003'), ('created_ns', '$now_ns'),
    ('loaded_ns', '$now_ns');
  insert into records values ('User', '602', '{\"id\":602,\"email\":\"stale@example.com\",\"name\":\"stale\"}', $now_ns),
    ('User', '601', '{\"id\":601,\"email\":\"legacy@example.com\",\"name\":\"legacy-pending\"}', $now_ns);
  insert into outbox(seq, op, model, pk, doc, mtime_ns) values
    (1002, 'U', 'User', '602', '{\"id\":602,\"email\":\"stale@example.com\",\"name\":\"stale\"}', $now_ns),
    (1003, 'U', 'User', '601', '{\"id\":601,\"email\":\"legacy@example.com\",\"name\":\"legacy-pending\"}', $now_ns);" \
  >/dev/null
mount_sharded
check "upgrade: a write after the upgrade is acknowledged" set_name old 601 after-upgrade
drained old "upgrade: the old outbox and the new write"
check_eq "upgrade: the old pending write was applied, then the new one" after-upgrade "$(name_of 601)"
check_eq "upgrade: the write sharded_applied had is not applied again" 0 \
  "$(psql_q 'select count(*) from "User" where id = 602')"
check_eq "upgrade: sharded_applied is keyed by (block, origin), the old row the legacy origin's" \
  "old|0|1003" "$(psql_q "select block, origin, seq from sharded_applied where origin = '0'")"

# --- restore from a backup (README, "Backups": sqlite3 .backup of a mounted block) ------------
mkdir "$MNT/r1"
set_name r1 1 before-backup
drained r1 "restore: the first update"
# the backup holds one write still pending, which PostgreSQL applies after it was taken
stop_postgres fast
set_name r1 1 pending-at-backup
sqlite3 "$DATA/r1.sqlite" ".backup '$T/r1.backup'"
_pg_start
for i in 1 2 3 4 5; do set_name r1 1 "after-backup-$i"; done
drained r1 "restore: five updates after the backup"
check_eq "restore: postgres has the fifth" after-backup-5 "$(name_of 1)"
require "restore: unmount" unmount_sharded
cp "$T/r1.backup" "$DATA/r1.sqlite"
rm -f "$DATA/r1.sqlite-wal" "$DATA/r1.sqlite-shm"
mount_sharded
check "restore: a new record is acknowledged" put "$MNT/r1/User/501.json" \
  '{"id":501,"email":"restored@example.com","name":"new-after-restore"}'
check "restore: an update is acknowledged" set_name r1 2 updated-after-restore
drained r1 "restore: two writes after the restore"
check_eq "restore: the new record reaches postgres" new-after-restore "$(name_of 501)"
check_eq "restore: the update reaches postgres" updated-after-restore "$(name_of 2)"
check_eq "restore: the write pending in the backup, applied before, is not applied again" \
  after-backup-5 "$(name_of 1)"

# --- a power loss: the WAL's last frames are gone ---------------------------------------------
# synchronous=NORMAL (sync=normal, the default) may lose the last commits at a power loss. The
# daemon is killed after everything was applied and its WAL cut back to where it was after the
# first update: the block file forgets three applied writes, PostgreSQL does not.
mkdir "$MNT/p1"
set_name p1 3 power-1
drained p1 "power loss: the first update"
wal_size=$(stat -c %s "$DATA/p1.sqlite-wal")
for i in 2 3 4; do set_name p1 3 "power-$i"; done
drained p1 "power loss: three more"
check "power loss: the WAL grew (no checkpoint in between)" \
  test "$(stat -c %s "$DATA/p1.sqlite-wal")" -gt "$wal_size"
last_seq=$(sqlite3 "$DATA/p1.sqlite" "select value from meta where key = 'last_seq'")
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
timeout 10 fusermount3 -uz "$MNT" 2>/dev/null || true
DAEMON_PID=""
truncate -s "$wal_size" "$DATA/p1.sqlite-wal"
rm -f "$DATA/p1.sqlite-shm"
check "power loss: the block file went back in time (last_seq $last_seq before)" \
  test "$(sqlite3 "$DATA/p1.sqlite" "select value from meta where key = 'last_seq'")" -lt "$last_seq"
mount_sharded
check "power loss: a new record is acknowledged" put "$MNT/p1/User/502.json" \
  '{"id":502,"email":"power@example.com","name":"new-after-power-loss"}'
check "power loss: an update is acknowledged" set_name p1 3 updated-after-power-loss
drained p1 "power loss: two writes after the restart"
check_eq "power loss: the new record reaches postgres" new-after-power-loss "$(name_of 502)"
check_eq "power loss: the update reaches postgres" updated-after-power-loss "$(name_of 3)"

# --- a block deleted and created again ----------------------------------------------------------
mkdir "$MNT/c1"
check "re-create: a record" put "$MNT/c1/User/503.json" '{"id":503,"email":"c1@example.com","name":"first"}'
drained c1 "re-create: the first incarnation"
check "re-create: rmdir" rmdir "$MNT/c1"
check "re-create: mkdir" mkdir "$MNT/c1"
check "re-create: an update in the new block" set_name c1 503 second
check "re-create: a new record in the new block" put "$MNT/c1/User/504.json" \
  '{"id":504,"email":"c2@example.com","name":"new-in-second"}'
drained c1 "re-create: the second incarnation"
check_eq "re-create: the update reaches postgres" second "$(name_of 503)"
check_eq "re-create: the new record reaches postgres" new-in-second "$(name_of 504)"

for b in r1 p1 c1; do
  check "$b: no dead letters" timeout 5 grep -qx 'dead 0' "$MNT/$b/sync-status"
done
require "unmount" unmount_sharded
finish

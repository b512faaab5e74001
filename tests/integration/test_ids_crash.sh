#!/usr/bin/env bash
# An id from <Model>/.next-id is never handed out twice, and one handed out stays usable, across
# a kill -9 of the daemon and across a power loss that takes the last commits back from the
# block's WAL (simulated as test_restore does: the daemon killed, its WAL cut back). .next-id
# hands ids out of a lease marked in the block file in one fsynced commit; after a restart the
# ids of a lease not known handed count as handed (gaps), and the rows PostgreSQL got for ids
# whose store the WAL lost still read through.
# - kill -9: ids read before (some never written) never come again; ids=strict admits a record
#   with an id read before the kill;
# - WAL tail lost after the records of 10 ids were applied to PostgreSQL: none of those ids
#   comes again, their records read through from PostgreSQL, creates with the new ids are all
#   applied: no dead letter (no duplicate key), no row merged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }
status_of() { timeout 10 sed -n "s/^$1 //p" "$B/sync-status"; }
pending_is_zero() { [[ $(status_of pending) == 0 ]]; }
next_id() { timeout 10 cat "$B/Ticket/.next-id"; }
kill9() {
  kill -KILL "$DAEMON_PID"
  wait "$DAEMON_PID" 2>/dev/null || true
  timeout 10 fusermount3 -uz "$MNT" 2>/dev/null || true
  DAEMON_PID=""
}
# seen ID...: none of the ids given was handed out before (in HANDED); then adds them
declare -A HANDED=()
twice=()
seen() { local id; for id in "$@"; do [[ -n ${HANDED[$id]:-} ]] && twice+=("$id"); HANDED[$id]=1; done; }

setup_tmp
start_postgres
psql_q 'create table "Ticket" (id serial primary key, title text not null)' >/dev/null
start_redis
mount_sharded
B=$MNT/crash
require "mkdir a block" mkdir "$B"

# --- kill -9 ---------------------------------------------------------------------------------
ids=()
for i in 1 2 3 4 5; do ids+=("$(next_id)"); done
seen "${ids[@]}"
check "kill -9: the first two ids read are created" \
  bash -c "$(declare -f put); put '$B/Ticket/${ids[0]}.json' '{\"title\":\"k0\"}' &&
           put '$B/Ticket/${ids[1]}.json' '{\"title\":\"k1\"}'"
kill9
mount_sharded ids=strict
after=()
for i in $(seq 20); do after+=("$(next_id)"); done
seen "${after[@]}"
check_eq "kill -9: 20 ids read after the restart, none handed out before" "" "${twice[*]}"
check "kill -9: ids=strict admits an id read before the kill (never written)" \
  put "$B/Ticket/${ids[2]}.json" '{"title":"k2 after the restart"}'
check "kill -9: and one read after" put "$B/Ticket/${after[0]}.json" '{"title":"a0"}'
check "kill -9: everything is applied" wait_for 30 pending_is_zero
check_eq "kill -9: no dead letter" 0 "$(status_of dead)"
check_eq "kill -9: PostgreSQL holds the four records" 4 \
  "$(psql_q "select count(*) from \"Ticket\" where id in (${ids[0]}, ${ids[1]}, ${ids[2]}, ${after[0]})")"

# --- power loss: the WAL's last commits are gone ---------------------------------------------
# The daemon is killed after the records of 10 more ids were applied, and its WAL cut back to
# where it was before they were read: the block forgets them, PostgreSQL does not.
twice=()
wal_size=$(stat -c %s "$DATA/crash.sqlite-wal")
lost=()
for i in $(seq 10); do
  id=$(next_id) || break
  lost+=("$id")
  put "$B/Ticket/$id.json" "{\"title\":\"lost $i\"}" || break
done
seen "${lost[@]}"
check_eq "power loss: 10 records created" 10 "${#lost[@]}"
check "power loss: they are applied" wait_for 30 pending_is_zero
check "power loss: the WAL grew (no checkpoint in between)" \
  test "$(stat -c %s "$DATA/crash.sqlite-wal")" -gt "$wal_size"
kill9
truncate -s "$wal_size" "$DATA/crash.sqlite-wal"
rm -f "$DATA/crash.sqlite-shm"
check_eq "power loss: the block file forgot the 10 records" 0 \
  "$(sqlite3 "$DATA/crash.sqlite" "select count(*) from records where pk in ($(IFS=,; echo "${lost[*]}"))")"
mount_sharded ids=strict
new=()
for i in $(seq 20); do
  id=$(next_id) || break
  new+=("$id")
  put "$B/Ticket/$id.json" "{\"title\":\"new $i\"}" || break
done
seen "${new[@]}"
check_eq "power loss: 20 ids read and created after the restart" 20 "${#new[@]}"
check_eq "power loss: none of them was handed out before" "" "${twice[*]}"
check_eq "power loss: a record the block forgot reads through from PostgreSQL" "lost 1" \
  "$(timeout 10 jq -r .title "$B/Ticket/${lost[0]}.json" 2>&1)"
check "power loss: everything is applied" wait_for 30 pending_is_zero
check_eq "power loss: no dead letter (no create of an id PostgreSQL has)" 0 "$(status_of dead)"
check_eq "power loss: PostgreSQL holds the 10 forgotten and the 20 new, each its own" 30 \
  "$(psql_q "select count(*) from \"Ticket\" where title like 'lost %' or title like 'new %'")"
unmount_sharded
finish

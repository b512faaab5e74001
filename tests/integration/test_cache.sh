#!/usr/bin/env bash
# Reads from the kernel's page cache (issue 15): a record read again is answered without a READ
# (open and release only, counted in the metrics file), and still no reader sees a stale or torn
# record: a writer publishes each version once its close() returned while readers in other
# processes read it thousands of times (partial bodies merged into whole records among them);
# a change made in PostgreSQL shows in full right after `invalidate` returned; a record changed
# by the sync's refresh, a partial write, or a truncate shows whole, with stat's size its length.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=/usr/bin/python3
RACE=$SHARDED_SOURCE_DIR/tests/integration/cache_race.py
RACE_WRITES=${RACE_WRITES:-1500}

snap() { timeout 10 cat "$MNT/metrics" | grep '^sharded_fuse_requests_total' >"$T/$1"; }
opens() {   # opens KIND: read-only opens of records so far that the page cache served so
  timeout 10 cat "$MNT/metrics" | awk -v k="$1" 'index($1, "read_opens_total{cache=\"" k "\"") { print $2 }'
}
# delta A B C D [OP]: requests between snapshots C and D, less those between A and B (what
# looking at the metrics file costs), of opcode OP or all
delta() {
  awk -v op="${5:-}" '
    FNR == 1 { f++ }
    op == "" || index($1, "op=\"" op "\"") { n[f] += $2 }
    END { print (n[4] - n[3]) - (n[2] - n[1]) }' "$T/$1" "$T/$2" "$T/$3" "$T/$4"
}
name_of() { timeout 10 jq -r .name "$1" 2>&1; }
size_truth() {   # size_truth FILE: stat's size is what cat returns, and it is one JSON object
  local s n
  s=$(stat -c %s "$1") n=$(timeout 10 cat "$1" | wc -c)
  [[ $s == "$n" ]] || { echo "stat says $s, cat returns $n"; return 1; }
  timeout 10 jq -e 'type == "object"' "$1" >/dev/null
}
status_of() { timeout 10 sed -n "s/^$1 //p" "$B/sync-status"; }
pending_is_zero() { [[ $(status_of pending) == 0 ]]; }

setup_tmp
start_postgres
start_redis
load_sample_schema
psql_q "INSERT INTO \"User\" (id, email, name) VALUES
  (901, 'race901@example.com', 'v000000-'), (902, 'two@example.com', 'two'),
  (903, 'three@example.com', 'three');
  CREATE TABLE \"Ticket\" (id serial PRIMARY KEY, title text NOT NULL)" >/dev/null
mount_sharded
B=$MNT/cache
require "mkdir a block" mkdir "$B"
R=$B/User/902.json

# --- requests: a second read sends no READ -------------------------------------------------
check "a record reads whole" size_truth "$R"
timeout 10 cat "$R" >/dev/null
snap m0
snap m1
snap c0
for _ in $(seq 20); do timeout 10 cat "$R" >/dev/null; done
snap c1
log "20 cached reads: $(delta m0 m1 c0 c1) requests: open $(delta m0 m1 c0 c1 open), read $(delta m0 m1 c0 c1 read), getattr $(delta m0 m1 c0 c1 getattr), lookup $(delta m0 m1 c0 c1 lookup), release $(delta m0 m1 c0 c1 release)"
check_eq "cached reads send no READ" 0 "$(delta m0 m1 c0 c1 read)"
check "20 cached reads send at most 2 requests each (open, release)" \
  test "$(delta m0 m1 c0 c1)" -le 40
check "page_cache=off is refused when misspelt" bash -c \
  "! '$SHARDED_BUILD_DIR/mount.sharded' -f -o page_cache=maybe,pg=x,redis=y,data=$T/nodata $T/nomnt 2>/dev/null"

# --- a partial write, a truncate: the whole record, with its size --------------------------
timeout 10 cat "$R" >/dev/null
check "a partial body is merged" bash -c "printf '{\"name\":\"partial-longer-than-before\"}\n' >'$R'"
check_eq "the merged record reads whole after close()" "partial-longer-than-before" "$(name_of "$R")"
check_eq "with the email it had" "two@example.com" "$(timeout 10 jq -r .email "$R")"
check "stat's size is the merged record's" size_truth "$R"
timeout 10 cat "$R" >/dev/null
check "a shorter partial body" bash -c "printf '{\"name\":\"p\"}\n' >'$R'"
check_eq "reads whole, shorter" "p" "$(name_of "$R")"
check "and its size" size_truth "$R"

# --- the sync's refresh (PostgreSQL's defaults) reaches readers -----------------------------
timeout 10 cat "$B/User/903.json" >/dev/null
check "a new record is written" bash -c "printf '{\"id\":904,\"email\":\"four@example.com\"}\n' >'$B/User/904.json'"
timeout 10 cat "$B/User/904.json" >/dev/null
timeout 10 cat "$B/User/904.json" >/dev/null
check "the sync drains" wait_for 20 pending_is_zero
check "the refresh (created_at filled in) shows" wait_for 10 \
  jq -e '.created_at != null and .active == true' "$B/User/904.json"
check "whole, with its size" size_truth "$B/User/904.json"

# --- invalidate: what PostgreSQL says shows right after it returned ------------------------
bad=0
for k in $(seq 30); do
  timeout 10 cat "$B/User/903.json" >/dev/null
  timeout 10 cat "$B/User/903.json" >/dev/null
  pad=$(printf 'y%.0s' $(seq $(((k * 29) % 70 + 1))))
  psql_q "UPDATE \"User\" SET name = 'inv$k-$pad' WHERE id = 903" >/dev/null
  echo 1 >"$B/invalidate"
  got=$(name_of "$B/User/903.json")
  if [[ $got != "inv$k-$pad" ]] || ! size_truth "$B/User/903.json" >/dev/null; then
    bad=$((bad + 1))
    log "round $k: read '$got' after invalidate, expected 'inv$k-$pad'"
  fi
done
check_eq "30 invalidates: every read after one returned is the new record, whole" 0 "$bad"

# --- a new record with an id from .next-id: no PostgreSQL at lookup -------------------------
misses() { timeout 10 cat "$MNT/metrics" | awk '/^sharded_cache_misses_total/ { print $2 }'; }
# PostgreSQL logs every statement from here on: a read of a Ticket row shows as one
ticket_reads() { grep -c 'FROM "public"."Ticket"\|FROM "Ticket"\|FROM public."Ticket"' "$T/postgres.log" || true; }
psql_q "ALTER SYSTEM SET log_statement = 'all'" >/dev/null
psql_q "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
tid=$(timeout 10 cat "$B/Ticket/.next-id")
m0=$(misses) q0=$(ticket_reads)
check "test -e of an id just handed out is false" test ! -e "$B/Ticket/$tid.json"
check "a Ticket with it is written" bash -c "printf '{\"id\":$tid,\"title\":\"t\"}\n' >'$B/Ticket/$tid.json'"
check_eq "neither asked PostgreSQL (cache_misses_total)" "$m0" "$(misses)"
check_eq "no statement read a Ticket row (PostgreSQL's log)" "$q0" "$(ticket_reads)"
check_eq "it reads back" "t" "$(timeout 10 jq -r .title "$B/Ticket/$tid.json")"
check "the sync drains" wait_for 20 pending_is_zero
check_eq "PostgreSQL has it" "t" "$(psql_q "SELECT title FROM \"Ticket\" WHERE id = $tid")"
psql_q "INSERT INTO \"Ticket\" (id, title) VALUES (900001, 'pg only')" >/dev/null
check_eq "a Ticket only in PostgreSQL reads through" "pg only" \
  "$(timeout 10 jq -r .title "$B/Ticket/900001.json" 2>&1)"
check_eq "that one asked PostgreSQL" "$((m0 + 1))" "$(misses)"
check "and PostgreSQL's log shows the read (the check above can fail)" test "$(ticket_reads)" -gt "$q0"
# an id of our own: the lookup asks PostgreSQL, and the create it leads to does not again
q1=$(ticket_reads)
check "a Ticket with an id of our own is written" bash -c "printf '{\"id\":800001,\"title\":\"own\"}\n' >'$B/Ticket/800001.json'"
check_eq "one statement read its row (the lookup's), not two" "$((q1 + 1))" "$(ticket_reads)"
check "the sync drains" wait_for 20 pending_is_zero
check_eq "PostgreSQL has it" "own" "$(psql_q "SELECT title FROM \"Ticket\" WHERE id = 800001")"
psql_q "ALTER SYSTEM RESET log_statement" >/dev/null
psql_q "SELECT pg_reload_conf()" >/dev/null
echo 1 >"$B/invalidate"   # no loader rule: the block holds nothing after it
check_eq "the Ticket written with a handed-out id reads through once the block dropped it" "t" \
  "$(timeout 10 jq -r .title "$B/Ticket/$tid.json" 2>&1)"

# --- one writer, three readers in other processes ---------------------------------------------
W=$B/User/901.json
check "the race record reads" jq -e '.name == "v000000-"' "$W"
rm -f "$T/pub" "$T/pub.done"
kept0=$(opens kept) filled0=$(opens filled) bypassed0=$(opens bypassed)
"$PY" "$RACE" writer "$W" "$T/pub" "$RACE_WRITES" >"$T/writer.out" 2>&1 &
wpid=$!
rpids=()
for i in 1 2 3; do
  "$PY" "$RACE" reader "$W" "$T/pub" 60 >"$T/reader$i.out" 2>&1 &
  rpids+=($!)
done
wrc=0
wait "$wpid" || wrc=$?
check_eq "the writer wrote $RACE_WRITES versions" "0" "$wrc"
for i in 1 2 3; do
  rrc=0
  wait "${rpids[$((i - 1))]}" || rrc=$?
  check_eq "reader $i saw no stale or torn record ($(head -c 300 "$T/reader$i.out"))" 0 "$rrc"
done
kept=$(($(opens kept) - kept0)) filled=$(($(opens filled) - filled0))
log "race: opens served by the page cache: $kept kept, $filled filled; $(($(opens bypassed) - bypassed0)) bypassed"
check "the race used the page cache (kept and filled more than 100 times each)" \
  test "$kept" -gt 100 -a "$filled" -gt 100
check_eq "the last version reads back" "$(printf 'v%06d-' "$RACE_WRITES")" \
  "$(name_of "$W" | cut -c1-8)"
check "and whole" size_truth "$W"
check "the sync drains" wait_for 30 pending_is_zero

unmount_sharded
finish

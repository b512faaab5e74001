#!/usr/bin/env bash
# -o records=ro (issue 15's read goal): the kernel opens files with no request (ENOSYS to OPEN,
# FUSE_CAP_NO_OPEN_SUPPORT), so a cached record is read with no FUSE request at all (counted in
# the metrics file). Record writes, creates, truncates and deletes fail with EROFS and change
# nothing; control files and mkdir work. No reader sees a stale or torn record after a change
# was acknowledged: `invalidate` after psql updates (30 rounds, then 3 readers in other
# processes racing 150 more: the reads with no change in flight), a change capture brings in
# with no invalidate, and a block's expiry.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=/usr/bin/python3
SHARDED=$SHARDED_BUILD_DIR/sharded
RACE=$SHARDED_SOURCE_DIR/tests/integration/noopen_reader.py
ROUNDS=${NOOPEN_ROUNDS:-150}

snap() { timeout 10 cat "$MNT/metrics" | grep '^sharded_fuse_requests_total' >"$T/$1"; }
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
py_write() {   # py_write FILE FLAGS: open(FILE, O_WRONLY|FLAGS) and write; fails on any error
  "$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | int(sys.argv[2]))
os.write(fd, b"{\"name\":\"rogue\"}\n")
os.close(fd)' "$1" "$2"
}

setup_tmp
start_postgres
start_redis
load_sample_schema
psql_q "INSERT INTO \"User\" (id, email, name) VALUES
  (901, 'race901@example.com', 'v000000-'), (902, 'two@example.com', 'two'),
  (903, 'three@example.com', 'three')" >/dev/null
check "sharded capture install" "$SHARDED" capture install --pg "$PG_URL"
check "records=maybe is refused" bash -c \
  "! '$SHARDED_BUILD_DIR/mount.sharded' -f -o records=maybe,pg=x,redis=y,data=$T/nodata $T/nomnt 2>/dev/null"
mount_sharded "records=ro"
B=$MNT/ro
require "mkdir a block" mkdir "$B"
R=$B/User/902.json
listening() { grep -q '^capture up' "$B/sync-status"; }
check "capture listens" wait_for 10 listening

# --- requests: a cached read sends none ------------------------------------------------------
check "a record reads whole" size_truth "$R"
timeout 10 cat "$R" >/dev/null
snap m0
snap m1
snap c0
for _ in $(seq 20); do timeout 10 cat "$R" >/dev/null; done
snap c1
log "20 cached reads: $(delta m0 m1 c0 c1) requests: open $(delta m0 m1 c0 c1 open), read $(delta m0 m1 c0 c1 read), getattr $(delta m0 m1 c0 c1 getattr), lookup $(delta m0 m1 c0 c1 lookup), release $(delta m0 m1 c0 c1 release), flush $(delta m0 m1 c0 c1 flush)"
check_eq "20 cached reads (cat: open, fstat, read, close) send no FUSE request" 0 \
  "$(delta m0 m1 c0 c1)"

# --- record writes: EROFS, and nothing changes ------------------------------------------------
check_eq "records show no write bits" "444" "$(stat -c %a "$R")"
before=$(timeout 10 cat "$R")
check_fails "echo > record (O_TRUNC) fails" bash -c "printf '{\"name\":\"x\"}\n' >'$R'"
check_fails "a write without O_TRUNC fails" py_write "$R" 0
check_fails "an append fails" py_write "$R" "$("$PY" -c 'import os; print(os.O_APPEND)')"
check_fails "truncate fails" truncate -s 0 "$R"
check_fails "a new record cannot be created" bash -c "printf '{\"id\":905,\"email\":\"f@x\"}\n' >'$B/User/905.json'"
check_fails "a record cannot be removed" rm "$R"
check_fails ".next-id cannot be read (no record can be created)" timeout 10 cat "$B/User/.next-id"
check_eq "the record is as it was" "$before" "$(timeout 10 cat "$R")"
check "and whole, with its size" size_truth "$R"
check "the refusal is logged with the reason" grep -q 'records=ro' "$T/daemon.log"
check_eq "PostgreSQL still has it" "two" "$(psql_q "SELECT name FROM \"User\" WHERE id = 902")"

# --- control files work, and are read fresh ---------------------------------------------------
check "a control file is written" bash -c "echo 3600 >'$B/ttl'"
check_eq "and reads back" "3600" "$(timeout 10 cat "$B/ttl")"
check "again, another value" bash -c "echo 120 >'$B/ttl'"
check_eq "reads back the new one" "120" "$(timeout 10 cat "$B/ttl")"
reqs() { timeout 10 cat "$MNT/metrics" | awk '/^sharded_fuse_requests_total/ { n += $2 } END { print n }'; }
r1=$(reqs) r2=$(reqs)
check "the metrics file is read fresh each time ($r1 then $r2 requests)" test "$r2" -gt "$r1"

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

# --- capture: a change made in PostgreSQL replaces the kept pages, no invalidate -------------
timeout 10 cat "$R" >/dev/null
psql_q "UPDATE \"User\" SET name = 'captured-and-longer-than-before' WHERE id = 902" >/dev/null
check "the captured change shows (kept pages dropped)" wait_for 10 \
  bash -c "[[ \$(jq -r .name '$R') == captured-and-longer-than-before ]]"
check "whole, with its size" size_truth "$R"

# --- three readers in other processes while PostgreSQL changes and `invalidate` returns -------
# A records=ro open keeps no snapshot: a read that overlaps a change may mix the two versions
# (counted and printed, not refused); a read that begins after a change was acknowledged and
# ends before the next begins must be that version, whole.
W=$B/User/901.json
check "the race record reads" jq -e '.name == "v000000-"' "$W"
rm -f "$T/pub" "$T/pub.start" "$T/pub.done"
rpids=()
for i in 1 2 3; do
  "$PY" "$RACE" "$W" "$T/pub" 60 >"$T/reader$i.out" 2>&1 &
  rpids+=($!)
done
for i in $(seq "$ROUNDS"); do
  name=$(printf 'v%06d-' "$i")$(printf 'x%.0s' $(seq $(((i * 37) % 90 + 1))))
  printf '%s' "$i" >"$T/pub.start.tmp" && mv "$T/pub.start.tmp" "$T/pub.start"
  psql_q "UPDATE \"User\" SET name = '$name' WHERE id = 901" >/dev/null
  echo 1 >"$B/invalidate"
  printf '%s' "$i" >"$T/pub.tmp" && mv "$T/pub.tmp" "$T/pub"
done
touch "$T/pub.done"
for i in 1 2 3; do
  rrc=0
  wait "${rpids[$((i - 1))]}" || rrc=$?
  check_eq "reader $i: no stale read, none torn with no change in flight ($(head -c 300 "$T/reader$i.out"))" 0 "$rrc"
  clean=$(sed -n 's/.*clean=\([0-9]*\).*/\1/p' "$T/reader$i.out")
  check "reader $i read more than 100 times with no change in flight" test "${clean:-0}" -gt 100
done
check_eq "the last version reads back" "$(printf 'v%06d-' "$ROUNDS")" "$(name_of "$W" | cut -c1-8)"

# --- an expired block read again: the expiry dropped the kernel's pages, the reload is current --
E=$MNT/exp
require "mkdir a second block" mkdir "$E"
check_eq "a record reads there" "captured-and-longer-than-before" "$(name_of "$E/User/902.json")"
check "echo 1 > ttl" bash -c "echo 1 >'$E/ttl'"
check "the block expires" wait_for 15 grep -q "block 'exp': expired" "$T/daemon.log"
psql_q "UPDATE \"User\" SET name = 'after-expiry' WHERE id = 902" >/dev/null
check_eq "the record reads again, current (PostgreSQL changed it while the block was expired)" \
  "after-expiry" "$(name_of "$E/User/902.json")"
check "whole, with its size" size_truth "$E/User/902.json"

unmount_sharded
finish

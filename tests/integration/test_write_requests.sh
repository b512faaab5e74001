#!/usr/bin/env bash
# What a write costs in FUSE requests (issue 15), and that the cheaper path still tells the truth:
# the rewrite of a record the sync has refreshed asks no GETATTR (the refresh reaches the kernel
# whole, its mode left valid), the create of a new record asks none for the file itself (its
# CREATE's attributes are kept), a file created with nothing stored is gone for `test -e` as
# soon as close() returned, and a refreshed record reads whole with stat's size its length.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=/usr/bin/python3
snap() { timeout 10 cat "$MNT/metrics" | grep '^sharded_fuse_requests_total' >"$T/$1"; }
# delta A B C D OP: requests of opcode OP between snapshots C and D, less those between A and B
# (what reading the metrics file costs)
delta() {
  awk -v op="$5" '
    FNR == 1 { f++ }
    index($1, "op=\"" op "\"") { n[f] += $2 }
    END { print (n[4] - n[3]) - (n[2] - n[1]) }' "$T/$1" "$T/$2" "$T/$3" "$T/$4"
}
# put FILE TEXT: open O_CREAT|O_TRUNC, one write, close, as a shell redirection without the dup
put() {
  timeout 10 "$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, sys.argv[2].encode())
os.close(fd)' "$1" "$2"
}
doc() { printf '{"id":%s,"email":"w%s@example.com","name":"writer %s"}' "$1" "$1" "$1"; }
status_of() { timeout 10 sed -n "s/^$1 //p" "$B/sync-status"; }
pending_is_zero() { [[ $(status_of pending) == 0 ]]; }
size_truth() {   # stat's size is what a read returns, and the record is PostgreSQL's
  local s n
  s=$(stat -c %s "$1") n=$(timeout 10 cat "$1" | wc -c)
  [[ $s == "$n" ]] || { echo "stat says $s, cat returns $n"; return 1; }
  timeout 10 jq -e '.created_at != null and .active == true' "$1" >/dev/null
}
# small_reads FILE: the whole file read 7 bytes at a time, without a stat first
small_reads() {
  timeout 10 "$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
out = b""
while True:
    b = os.read(fd, 7)
    if not b:
        break
    out += b
os.close(fd)
sys.stdout.buffer.write(out)' "$1"
}

setup_tmp
start_postgres
start_redis
load_sample_schema
mount_sharded
B=$MNT/wr
require "mkdir a block" mkdir "$B"
U=$B/User

# --- a rewrite after the sync's refresh ------------------------------------------------------
require "write a new record" put "$U/1001.json" "$(doc 1001)"
require "write another" put "$U/1002.json" "$(doc 1002)"
require "the sync applies them" wait_for 20 pending_is_zero
sleep 0.5   # the refresh's notification reaches the kernel after the outbox lets go
stat "$U" >/dev/null   # the directory's attributes, which the creates made stale
snap m0
snap m1
snap r0
require "rewrite the refreshed record" put "$U/1001.json" "$(doc 1001)"
snap r1
log "rewrite after a refresh: getattr $(delta m0 m1 r0 r1 getattr), open $(delta m0 m1 r0 r1 open), lookup $(delta m0 m1 r0 r1 lookup)"
check_eq "the rewrite of a refreshed record asks no GETATTR" 0 "$(delta m0 m1 r0 r1 getattr)"

# --- the refreshed record reads whole, stat's size its length --------------------------------
# small_whole FILE: 7-byte reads without a stat first return the record whole, as long as stat says
small_whole() {
  local out
  out=$(small_reads "$1")
  jq -e '.created_at != null' <<<"$out" >/dev/null || { echo "read: $out"; return 1; }
  [[ $((${#out} + 1)) == $(stat -c %s "$1") ]] || { echo "read ${#out}+1 bytes, stat: $(stat -c %s "$1")"; return 1; }
}
check "small reads of a refreshed record return it whole" small_whole "$U/1002.json"
check "stat's size of a refreshed record is its length" size_truth "$U/1002.json"
require "the rewrite is applied" wait_for 20 pending_is_zero
sleep 0.5
check "the rewritten record, refreshed again, reads whole" small_whole "$U/1001.json"
check "and stat's size is its length" size_truth "$U/1001.json"

# --- a new record: no GETATTR for the file it creates ----------------------------------------
require "create one" put "$U/2001.json" "$(doc 2001)"
snap c0
require "create the next" put "$U/2002.json" "$(doc 2002)"
snap c1
log "create: getattr $(delta m0 m1 c0 c1 getattr) (the model directory's, which the previous create made stale), create $(delta m0 m1 c0 c1 create)"
check "the create of a new record asks at most one GETATTR (its directory's)" \
  test "$(delta m0 m1 c0 c1 getattr)" -le 1
check_eq "the new record reads back" "$(doc 2002)" "$(timeout 10 jq -c '{id, email, name}' "$U/2002.json")"

# --- created with nothing stored: gone as soon as close() returned -----------------------------
for i in $(seq 3001 3010); do
  timeout 10 "$PY" -c 'import os, sys
os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
sys.exit(1 if os.path.exists(sys.argv[1]) else 0)' "$U/$i.json" || echo "$i" >>"$T/empty-seen"
done
check_eq "a file created and closed with nothing written is not there after close()" \
  "" "$(cat "$T/empty-seen" 2>/dev/null)"
for i in $(seq 3101 3110); do
  timeout 10 "$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
try:
    os.write(fd, b"[1, 2]")
except OSError:
    pass
try:
    os.close(fd)
except OSError:
    pass
sys.exit(1 if os.path.exists(sys.argv[1]) else 0)' "$U/$i.json" || echo "$i" >>"$T/refused-seen"
done
check_eq "a new file whose document was refused is not there after close()" \
  "" "$(cat "$T/refused-seen" 2>/dev/null)"
check "none of them reached PostgreSQL" \
  test "$(psql_q "SELECT count(*) FROM \"User\" WHERE id BETWEEN 3001 AND 3110")" -eq 0

# --- a write merges into the record as it is at close(), not as it was at write() -------------
# (the check at write() merged the body already; close() reuses that only if nothing changed).
# PostgreSQL is stopped so that no sync refresh can mend the record afterwards.
require "stop PostgreSQL" stop_postgres fast
timeout 10 "$PY" -c 'import os, subprocess, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"{\"name\": \"partial 1002\"}")
other = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(other, sys.argv[2].encode())
os.close(other)
os.close(fd)' "$U/1002.json" '{"id":1002,"email":"changed1002@example.com","name":"other writer"}'
check_eq "a body written before another writer's close() merges into that writer's record" \
  '{"email":"changed1002@example.com","name":"partial 1002"}' \
  "$(timeout 10 jq -c '{email, name}' "$U/1002.json")"

finish

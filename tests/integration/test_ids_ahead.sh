#!/usr/bin/env bash
# .next-id never waits for PostgreSQL while its block has ids left: the reserve is refilled
# ahead, in the background (core/ahead.c). With PostgreSQL stopped (SIGSTOP: it accepts nothing
# and answers nothing, the worst case for a waiting reader), 80 reads of .next-id past the point
# where the reserve runs low (fewer than 50 of 100 left) each answer within 2 s (main waited out
# the 5 s read-through deadline in the read that found the reserve low), all different; once
# PostgreSQL runs again the reserve is refilled and the records created with those ids are
# applied.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }
status_of() { timeout 10 sed -n "s/^$1 //p" "$B/sync-status"; }
pending_is_zero() { [[ $(status_of pending) == 0 ]]; }
# PostgreSQL's processes (postmaster and children), for SIGSTOP / SIGCONT (as test_freeze).
pg_pids() {
  local pm
  pm=$(head -n 1 "$T/pg/postmaster.pid" 2>/dev/null) || return 0
  echo "$pm"
  ps -o pid= --ppid "$pm" 2>/dev/null || true
}
pg_signal() { local p; for p in $(pg_pids); do kill "-$1" "$p" 2>/dev/null || true; done; }
ahead_cleanup() { pg_signal CONT; cleanup; }

setup_tmp
trap ahead_cleanup EXIT
start_postgres
psql_q 'create table "Ticket" (id serial primary key, title text not null)' >/dev/null
start_redis
mount_sharded
B=$MNT/ahead
require "mkdir a block" mkdir "$B"
first=$(timeout 10 cat "$B/Ticket/.next-id")
check "the first read reserves (PostgreSQL up)" test -n "$first"

pg_signal STOP
ids=() slowest=0
for i in $(seq 80); do
  s=${EPOCHREALTIME/./}
  id=$(timeout 20 cat "$B/Ticket/.next-id") || break
  ms=$(((${EPOCHREALTIME/./} - s) / 1000))
  ((ms > slowest)) && slowest=$ms
  ids+=("$id")
done
pg_signal CONT
check_eq "PostgreSQL stopped: 80 ids read" 80 "${#ids[@]}"
check "PostgreSQL stopped: no read of .next-id waited for it (slowest ${slowest} ms, < 2000)" \
  test "$slowest" -lt 2000
check_eq "all different, none the first" 81 "$(printf '%s\n' "$first" "${ids[@]}" | sort -u | wc -l)"
for id in "${ids[@]:0:5}"; do put "$B/Ticket/$id.json" "{\"title\":\"t$id\"}"; done
next_id_reads() { [[ -n $(timeout 10 cat "$B/Ticket/.next-id" 2>/dev/null) ]]; }
check "PostgreSQL back: .next-id reads" wait_for 20 next_id_reads
check "the records created are applied" wait_for 30 pending_is_zero
check_eq "PostgreSQL holds them" 5 "$(psql_q "select count(*) from \"Ticket\" where title like 't%'")"
unmount_sharded
finish

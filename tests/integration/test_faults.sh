#!/usr/bin/env bash
# Faults: acknowledged writes reach PostgreSQL exactly once and in order through kill -9 of the
# daemon, PostgreSQL stopped, Redis stopped, and Redis restarted empty. A trigger logs every
# value PostgreSQL receives, so a duplicate or a reordering shows as a non-increasing step.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

setup_tmp
start_postgres
start_redis
load_sample_schema
psql_q 'create table "Counter" (id bigint primary key, n bigint not null);
        create table counter_log (seq bigserial primary key, id bigint, n bigint);
        create function log_counter() returns trigger language plpgsql as
          $$ begin insert into counter_log(id, n) values (new.id, new.n); return new; end $$;
        create trigger counter_log after insert or update on "Counter"
          for each row execute function log_counter();' >/dev/null
mount_sharded

BLOCKS=(b1 b2 b3)
declare -A ACKED   # last acknowledged value per block (the block's Counter row is its number)
for i in 1 2 3; do mkdir "$MNT/b$i"; ACKED[b$i]=0; done

# write_counters N: N more acknowledged writes to each block's counter, round robin.
# Stops quietly at the first failure (the daemon was killed).
write_counters() {
  local n=$1 i k b v
  for ((i = 0; i < n; i++)); do
    for k in 1 2 3; do
      b=b$k
      v=$((ACKED[$b] + 1))
      echo "{\"n\":$v}" >"$MNT/$b/Counter/$k.json" 2>/dev/null || return 0
      ACKED[$b]=$v
    done
  done
}

pending_total() {
  local b sum=0 p
  for b in "${BLOCKS[@]}"; do
    p=$(awk '$1 == "pending" {print $2}' "$MNT/$b/sync-status")
    sum=$((sum + p))
  done
  echo "$sum"
}
drained() { [[ $(pending_total) == 0 ]]; }

# In PostgreSQL: every counter holds its last acknowledged value, and the log of values it
# received only ever goes up (no duplicate, no reordering).
verify() {
  local what=$1 k
  for k in 1 2 3; do
    check_eq "$what: b$k's counter holds its last acknowledged value" "${ACKED[b$k]}" \
      "$(psql_q "select n from \"Counter\" where id = $k")"
  done
  check_eq "$what: no value applied twice or out of order" 0 \
    "$(psql_q 'select count(*) from (select n <= lag(n) over (partition by id order by seq) as bad
                                     from counter_log) s where bad')"
}

# --- kill -9 of the daemon, three times, while it is being written to -------------------------
# the writer runs in a subshell: learn what was stored from the files themselves (a write cut
# short by the kill may be stored without having been acknowledged, and that is fine)
learn_acked() { local k; for k in 1 2 3; do ACKED[b$k]=$(jq .n "$MNT/b$k/Counter/$k.json" 2>/dev/null || echo 0); done; }
for round in 1 2 3; do
  learn_acked
  write_counters 150 &
  writer=$!
  sleep 0.$((RANDOM % 6 + 2))
  kill -KILL "$DAEMON_PID"
  wait "$DAEMON_PID" 2>/dev/null || true
  wait "$writer" || true
  timeout 10 fusermount3 -uz "$MNT" 2>/dev/null || true
  DAEMON_PID=""
  mount_sharded
done
learn_acked
write_counters 100
check "kill -9: backlog drains" wait_for 30 drained
verify "kill -9"

# --- PostgreSQL stopped for a while during writes -----------------------------------------------
stop_postgres fast
write_counters 100
check "postgres down: writes still acknowledged and readable" \
  test "$(jq .n "$MNT/b1/Counter/1.json")" = "${ACKED[b1]}"
check "postgres down: sync-status says so" wait_for 15 grep -qx 'postgres down' "$MNT/b1/sync-status"
check "postgres down: writes wait in the outbox" test "$(pending_total)" -gt 0
write_counters 50 & writer=$!   # keep writing through the outage (10 s in all)
sleep 10
wait "$writer" || true
learn_acked
start=${EPOCHREALTIME/./}
_pg_start
check "postgres back: backlog drains by itself" wait_for 30 drained
echo "# drain after postgres outage: $(((${EPOCHREALTIME/./} - start) / 1000)) ms"
verify "postgres down"

# --- Redis stopped for a while during writes ----------------------------------------------------
restart_redis_same_port() {
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$T/redis" --daemonize no \
    --save '' --appendonly no --logfile "$T/redis/redis.log" </dev/null >/dev/null 2>&1 &
  REDIS_PID=$!
  wait_for 10 _redis_ping
}
stop_redis
write_counters 100
check "redis down: writes wait in the outbox" test "$(pending_total)" -gt 0
write_counters 50 & writer=$!
sleep 10
wait "$writer" || true
learn_acked
restart_redis_same_port   # empty: it lost every stream and group
check "redis back (empty): backlog drains by itself" wait_for 30 drained
verify "redis down"

# --- Redis loses its data while writes are pending ----------------------------------------------
stop_postgres fast
write_counters 50
check "relayed to redis before the flush" wait_for 10 \
  bash -c "[[ \$(redis-cli -h 127.0.0.1 -p $REDIS_PORT XLEN 'sharded:{b1}:ops') -gt 0 ]]"
redis_cli FLUSHALL >/dev/null
_pg_start
check "redis flushed: backlog drains by itself" wait_for 60 drained
verify "redis flushed"

# --- SIGTERM with PostgreSQL down: a bounded, clean exit that keeps the outbox ----------------
stop_postgres fast
write_counters 20
exec 7>"$MNT/b3/Counter/3.json"   # a writer still holding a half-written record open
printf '{"n":' >&7
started=${EPOCHREALTIME/./}
kill -TERM "$DAEMON_PID"
check "sigterm: the daemon exits within 15 s" wait_exit "$DAEMON_PID" 15
status=0; wait "$DAEMON_PID" || status=$?
check_eq "sigterm: exit status 0" 0 "$status"
echo "# shutdown with postgres down took $(((${EPOCHREALTIME/./} - started) / 1000)) ms"
DAEMON_PID=""
exec 7>&- 2>/dev/null || true
check "sigterm: the mount is gone" bash -c "! mountpoint -q '$MNT'"
check "sigterm: pending writes kept in the outbox" \
  test "$(sqlite3 "$DATA/b1.sqlite" 'select count(*) from outbox')" -gt 0
_pg_start
mount_sharded
check "after restart: the kept writes drain" wait_for 30 drained
verify "sigterm"

# --- entries PostgreSQL already has leave the outbox by themselves -----------------------------
# As after a crash between PostgreSQL's commit and the outbox delete: PostgreSQL's applied seq
# already covers a write that the block still holds as pending.
stop_postgres fast
echo '{"n":-7}' >"$MNT/b2/Counter/2.json"
if unmount_sharded; then _pass "unmount with one write pending"; else _fail "unmount with one write pending"; fi
_pg_start
last=$(sqlite3 "$DATA/b2.sqlite" "select value from meta where key = 'last_seq'")
psql_q "update sharded_applied set seq = $last where block = 'b2'" >/dev/null
mount_sharded
b2_pending_zero() { grep -qx 'pending 0' "$MNT/b2/sync-status"; }
check "an already-applied write leaves the outbox with no new write" wait_for 45 b2_pending_zero
check_eq "and is not applied a second time" "${ACKED[b2]}" "$(psql_q 'select n from "Counter" where id = 2')"

# --- a permanent refusal goes to the dead letters and blocks nothing ---------------------------
mkdir "$MNT/u1"
echo '{"userId":424242,"total":1}' >"$MNT/u1/Order/9001.json"
echo '{"email":"later@example.com"}' >"$MNT/u1/User/9002.json"
user_9002_in_pg() { [[ $(psql_q 'select count(*) from "User" where id = 9002') == 1 ]]; }
check "dead letter: later write still reaches postgres" wait_for 15 user_9002_in_pg
check "dead letter: counted in sync-status" wait_for 15 grep -qx 'dead 1' "$MNT/u1/sync-status"
check "dead letter: kept in the dead stream with the error" \
  bash -c "redis-cli -h 127.0.0.1 -p $REDIS_PORT XRANGE 'sharded:{u1}:dead' - + | grep -q foreign"
check "dead letter: the file shows postgresql's truth (no such row)" \
  wait_for 15 test ! -e "$MNT/u1/Order/9001.json"
check "dead letter: nothing left pending" wait_for 15 grep -qx 'pending 0' "$MNT/u1/sync-status"

# --- a second daemon on the same data directory is refused -------------------------------------
mkdir -p "$T/m2"
second=$(timeout 20 "$SHARDED_BUILD_DIR/mount.sharded" -f -o "pg=$PG_URL,redis=$REDIS_URL,data=$DATA" \
  "$T/m2" 2>&1) && status=0 || status=$?
check "second daemon on one data directory: refused" test "$status" -ne 0
check "second daemon: says the directory is in use" grep -q "in use by another mount.sharded" <<<"$second"
check "second daemon: nothing mounted" bash -c "! mountpoint -q '$T/m2'"

# not through check: its command substitution is a subshell, which cannot wait for the daemon
if unmount_sharded; then _pass "clean unmount"; else _fail "clean unmount"; fi
total=$(psql_q 'select count(*) from counter_log')
echo "# writes applied (after collapsing): $total; acknowledged: $((ACKED[b1] + ACKED[b2] + ACKED[b3]))"
finish

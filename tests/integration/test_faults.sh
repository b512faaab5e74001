#!/usr/bin/env bash
# Faults: a write acknowledged to the program (close() returned 0) is applied to PostgreSQL
# exactly once, after every earlier acknowledged write to the same block, through kill -9 of
# the daemon, Redis stopped / restarted empty / restarted with its data / flushed, PostgreSQL
# stopped (fast and immediate, the latter inside a batch), and the network to either server
# black-holed or cut; and the backlog drains by itself once they are back.
#
# How it is checked:
#   - fault_writer.py writes {"n": v} to 4 blocks x 8 records ("Counter" ids k*1000+1..8),
#     v going up by one with every write to a block. It appends "A block id v" to $ACKS
#     (outside the mount) only after close() returned 0, and "F ..." for a write that failed
#     (at a kill -9 the one write in progress; during an outage a failure fails the test).
#     Nothing is learned back through the mount.
#   - A trigger logs every row PostgreSQL receives with txid_current(). fault_check.py then
#     checks, per block, that each transaction's values all lie above the earlier ones'
#     (order), that no (record, value) arrives twice (exactly once), that each transaction
#     shows the last acknowledged write of every record its run of writes touched, and that
#     "Counter" ends holding each record's last acknowledged value (lost); an unacknowledged
#     write in flight at a kill may or may not be there.
#   - Every outage has the writer running through it (failed writes must be 0), times the
#     drain (from the server, or the network, being back to pending 0 in every block; bound
#     15 s) and counts the daemon's reconnections (they must back off).
#   - The last line before the counts: "# faults: acknowledged=N faults=K lost=0 ...".
# The daemon runs in a network namespace of its own and reaches both servers through
# sharded-bench's TCP proxy there. The network is cut three ways: the proxy stopped (SIGSTOP:
# a hung middlebox, nothing reset, the kernel still acknowledges), every packet to the proxy
# dropped (tc: a cut cable, TCP retransmits with backoff), the proxy killed (connections
# reset, new ones refused).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib.sh"

setup_tmp
trap cleanup_with_proxies EXIT   # lib.sh's cleanup, after continuing a stopped proxy
start_postgres
start_redis
load_sample_schema
psql_q 'create table "Counter" (id bigint primary key, n bigint not null);
        create table counter_log (seq bigserial primary key, txid bigint not null, id bigint,
                                  n bigint);
        create function log_counter() returns trigger language plpgsql as
          $$ begin insert into counter_log(txid, id, n) values (txid_current(), new.id, new.n);
                   return new; end $$;
        create trigger counter_log after insert or update on "Counter"
          for each row execute function log_counter();' >/dev/null
# with the catalog from a file the daemon also starts (after a kill -9) while PostgreSQL is
# unreachable
"$SHARDED_BUILD_DIR/sharded" generate --pg "$PG_CONNINFO" -o "$T/catalog.json"
netns_create
proxy_start pg "$PGPORT"
proxy_start redis "$REDIS_PORT"
mount_via_proxies() {
  PG_URL="postgresql://postgres@127.0.0.1:${PROXY_PORTS[pg]}/sharded_test" \
    REDIS_URL="redis://127.0.0.1:${PROXY_PORTS[redis]}" mount_sharded_netns "catalog=$T/catalog.json"
}
mount_via_proxies

BLOCKS=(b1 b2 b3 b4)
ACKS=$T/acks        # the writer's log of acknowledged (A) and failed (F) writes
RATE=300            # writes per second (all blocks) while a server is away
FAULTS=0            # faults injected
OUTAGE_FAILED=0     # writes refused while a server was away (must stay 0)
DRAINS=()           # name:ms, the drain after each outage
for b in "${BLOCKS[@]}"; do mkdir "$MNT/$b"; done

now_us() { echo "${EPOCHREALTIME/./}"; }
acked_count() { grep -c '^A ' "$ACKS" 2>/dev/null || true; }

# writer_start [fault_writer.py options]: the writer in the background ($WRITER_PID);
# RECORDS=N (default 8) records per block. writer_stop asks it to stop and waits; both set
# WRITER_ACKED and WRITER_FAILED from its report. writer_wait only waits (--count, or
# --stop-on-error after a kill).
writer_start() {
  rm -f "$T/writer.stop"
  python3 "$HERE/fault_writer.py" "$MNT" "$ACKS" --blocks "$(IFS=,; echo "${BLOCKS[*]}")" \
    --records "${RECORDS:-8}" --stop-file "$T/writer.stop" "$@" >"$T/writer.out" 2>&1 &
  WRITER_PID=$!
  track_pid "$WRITER_PID"
}
writer_wait() {
  local limit=${1:-30} status=0
  WRITER_ACKED=0 WRITER_FAILED=-1 WRITER_SLOWEST=-1
  if ! wait_exit "$WRITER_PID" "$limit"; then
    _fail "the writer finishes within $limit s (it hangs in the mount)" \
      "$(cat /proc/"$WRITER_PID"/wchan 2>/dev/null; echo) $(tail -n 2 "$ACKS")"
    kill -KILL "$WRITER_PID" 2>/dev/null || true
  fi
  wait "$WRITER_PID" 2>/dev/null || status=$?
  if ((status != 0)); then
    _fail "the writer exits with status 0" "status $status: $(tail -n 5 "$T/writer.out")"
  fi
  read -r WRITER_ACKED WRITER_FAILED WRITER_SLOWEST < <(sed -n 's/^acked=\([0-9]*\) failed=\([0-9]*\) slowest_ms=\([0-9]*\)$/\1 \2 \3/p' \
    "$T/writer.out" | tail -n 1) || true
  : "${WRITER_ACKED:=0}" "${WRITER_FAILED:=-1}" "${WRITER_SLOWEST:=-1}"
}
writer_stop() { touch "$T/writer.stop"; writer_wait "$@"; }

# pending_total: pending writes of all blocks (fails if a sync-status cannot be read).
pending_total() {
  local b sum=0 p
  for b in "${BLOCKS[@]}"; do
    p=$(timeout 5 awk '$1 == "pending" {print $2}' "$MNT/$b/sync-status") || return 1
    [[ $p =~ ^[0-9]+$ ]] || return 1
    sum=$((sum + p))
  done
  echo "$sum"
}
drained() { [[ $(pending_total) == 0 ]]; }
some_pending() { local p; p=$(pending_total) && ((p > 0)); }
status_says() { timeout 5 grep -qx "$1" "$MNT/b1/sync-status"; }
backends() { timeout 5 grep -E '^(redis|postgres) ' "$MNT/b1/sync-status" | tr '\n' ' '; }

# drain_after NAME START_US [BOUND_S]: wait for pending 0 everywhere; pass if it came within
# BOUND_S (default 15) seconds of START_US (when the server or network was back).
drain_after() {
  local name=$1 start=$2 bound=${3:-15} ms
  if wait_for "$((bound + 1))" drained; then
    ms=$((($(now_us) - start) / 1000))
  else
    ms=-1
  fi
  DRAINS+=("$name:$ms")
  echo "# drain after $name: $ms ms"
  if ((ms >= 0 && ms <= bound * 1000)); then
    _pass "$name: the backlog drains by itself within $bound s ($ms ms)"
  else
    _fail "$name: the backlog drains by itself within $bound s" \
      "took $ms ms (-1: not drained); pending now: $(pending_total || echo '?'); $(backends)"
  fi
}

# verify WHAT: fault_check.py over the whole history so far; sets CHECK_LINE.
verify() {
  local what=$1 out k v bad=0
  psql_q 'copy (select seq, txid, id, n from counter_log order by seq) to stdout' >"$T/log.tsv"
  psql_q 'copy (select id, n from "Counter") to stdout' >"$T/final.tsv"
  out=$(python3 "$HERE/fault_check.py" "$ACKS" "$T/log.tsv" "$T/final.tsv" "${BLOCKS[@]}")
  CHECK_LINE=$(head -n 1 <<<"$out")
  for k in lost duplicated reordered unknown; do
    v=$(sed -n "s/.* $k=\([0-9]*\).*/\1/p" <<<"$CHECK_LINE")
    [[ $v == 0 ]] || bad=1
  done
  if ((bad == 0)); then
    _pass "$what: PostgreSQL has every acknowledged write once and in order ($CHECK_LINE)"
  else
    local details
    details=$(tail -n +2 <<<"$out")
    _fail "$what: PostgreSQL has every acknowledged write once and in order" "$CHECK_LINE" \
      "$details"
  fi
}

# outage NAME DOWN_FN UP_FN SECONDS [SYNC_STATUS_LINE]: the writer runs (at $RATE) from one
# second before DOWN_FN to the end of the SECONDS of outage; no write may fail, and the outbox
# must hold writes. The drain is timed from UP_FN's return (the server, or the network, back).
outage() {
  local name=$1 down=$2 up=$3 secs=$4 expect=${5:-} start log_from reconnects
  log_from=$(stat -c %s "$T/daemon.log")
  writer_start --rate "$RATE"
  sleep 1
  "$down"
  FAULTS=$((FAULTS + 1))
  if [[ -n $expect ]]; then
    check "$name: sync-status says '$expect'" wait_for "$secs" status_says "$expect"
  fi
  sleep "$secs"
  echo "# $name: sync-status at the end of the outage: $(backends)"
  check "$name: writes wait in the outbox" some_pending
  writer_stop
  "$up"
  start=$(now_us)
  OUTAGE_FAILED=$((OUTAGE_FAILED + (WRITER_FAILED < 0 ? 1 : WRITER_FAILED)))
  check_eq "$name: no write failed during the outage ($WRITER_ACKED acknowledged, slowest $WRITER_SLOWEST ms)" \
    0 "$WRITER_FAILED"
  check "$name: the writer kept writing" test "$WRITER_ACKED" -gt "$((RATE * secs / 2))"
  drain_after "$name" "$start"
  # a server that accepts connections and drops them at once (a proxy or load balancer in
  # front of a dead one) must not make the daemon flap between up and down in a tight loop.
  # Only that is seen here: a connection that is refused or hangs leaves no trace in the log
  # (those retries follow the backoff that tests/unit/test_backoff.c checks)
  reconnects=$(tail -c +"$((log_from + 1))" "$T/daemon.log" | grep -c 'backend reachable again' || true)
  echo "# $name: daemon log: $(tail -c +"$((log_from + 1))" "$T/daemon.log" | wc -l) lines, $reconnects 'backend reachable again'"
  check "$name: no tight up/down loop (at most 40 'reachable again' in the outage, saw $reconnects)" \
    test "$reconnects" -le 40
  verify "$name"
}

# kill_daemon_during_writes ROUND: kill -9 while the writer writes at full speed, then mount
# again on the same data directory.
kill_daemon_during_writes() {
  local round=$1 before
  before=$(acked_count)
  writer_start --stop-on-error
  wrote_since() { (($(acked_count) > $1)); }
  wait_for 10 wrote_since "$before" || true
  sleep "0.$((RANDOM % 8 + 2))"
  # the kill must land while the writer writes
  if alive "$WRITER_PID" && wrote_since "$before"; then
    _pass "kill -9 round $round: the writer is writing ($(($(acked_count) - before)) acknowledged)"
  else
    _fail "kill -9 round $round: the writer is writing" "$(cat "$T/writer.out")"
  fi
  kill -KILL "$DAEMON_PID"
  FAULTS=$((FAULTS + 1))
  wait "$DAEMON_PID" 2>/dev/null || true
  writer_wait 20   # it stops at its first failed write
  check_eq "kill -9 round $round: the writer saw the kill as one failed write" 1 "$WRITER_FAILED"
  timeout 10 fusermount3 -uz "$MNT" 2>/dev/null || true
  DAEMON_PID=""
  mount_via_proxies
}

# --- the records -------------------------------------------------------------------------------
writer_start --count 8
writer_wait
check_eq "setup: the records are written" 32 "$WRITER_ACKED"
check "setup: and reach postgres" wait_for 15 drained
verify "setup"

# --- kill -9 of the daemon, five times, while it is being written to ---------------------------
for round in 1 2 3 4 5; do
  kill_daemon_during_writes "$round"
done
drain_after "kill -9 x5 (from the last mount)" "$(now_us)"
verify "kill -9"

# --- kill -9 while PostgreSQL is unreachable: the outbox survives, the daemon starts anyway ----
proxy_cut pg
FAULTS=$((FAULTS + 1))
kill_daemon_during_writes 6
check "kill -9 with postgres unreachable: sync-status says so" \
  wait_for 15 status_says 'postgres down'
writer_start --rate "$RATE"
sleep 2
writer_stop
check_eq "kill -9 with postgres unreachable: no write failed after the restart" 0 "$WRITER_FAILED"
OUTAGE_FAILED=$((OUTAGE_FAILED + (WRITER_FAILED < 0 ? 1 : WRITER_FAILED)))
proxy_start pg "$PGPORT"
drain_after "kill -9 with postgres unreachable" "$(now_us)"
verify "kill -9 with postgres unreachable"

# hold_row WHAT ID: a session ($holder) holds row ID of "Counter" locked (FOR UPDATE), so that
# the batch that writes it waits inside its transaction; release_row ends that session.
lock_held() {
  [[ $(psql_q "select count(*) from pg_stat_activity
               where query like '%pg_sleep(120)%' and state = 'active' and pid <> pg_backend_pid()") == 1 ]]
}
batch_waits() {
  [[ $(psql_q "select count(*) from pg_stat_activity
               where application_name = 'sharded' and wait_event_type = 'Lock'") -ge 1 ]]
}
hold_row() {
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<SQL &
begin;
select 1 from "Counter" where id = $2 for update;
select pg_sleep(120);
SQL
  holder=$!
  track_pid "$holder"
  check "$1: a session holds record $2 locked" wait_for 10 lock_held
}
release_row() {
  psql_q "select pg_terminate_backend(pid) from pg_stat_activity
          where query like '%pg_sleep(120)%' and pid <> pg_backend_pid()" >/dev/null
  wait "$holder" 2>/dev/null || true
}

# --- kill -9 while a batch is inside its PostgreSQL transaction ---------------------------------
proxy_cut pg
writer_start --count 100
writer_wait
hold_row "kill -9 in a transaction" 1006
proxy_start pg "$PGPORT"
check "kill -9 in a transaction: a batch waits inside its transaction" wait_for 20 batch_waits
kill -KILL "$DAEMON_PID"
FAULTS=$((FAULTS + 1))
wait "$DAEMON_PID" 2>/dev/null || true
timeout 10 fusermount3 -uz "$MNT" 2>/dev/null || true
DAEMON_PID=""
mount_via_proxies
sleep 1
release_row   # the dead daemon's session goes on, finds its client gone and rolls back
drain_after "kill -9 inside a postgres transaction (from the lock's release)" "$(now_us)"
verify "kill -9 in a transaction"

# --- PostgreSQL stopped -------------------------------------------------------------------------
pg_down() { stop_postgres fast; }
pg_up() { _pg_start; }
outage "postgres stopped 8 s" pg_down pg_up 8 'postgres down'

# --- PostgreSQL stopped -m immediate inside a big batch ----------------------------------------
# A backlog of 4,000 writes to 400 records per block piles up while the network to PostgreSQL
# is cut. A session holds one row of b1 locked, so once the network is back the batch that
# writes it waits in the middle of its transaction; PostgreSQL is stopped -m immediate then.
proxy_cut pg
FAULTS=$((FAULTS + 1))
RECORDS=400 writer_start --count 1000
writer_wait 60
check_eq "immediate: the backlog's writes are acknowledged" 4000 "$WRITER_ACKED"
pending_before=$(pending_total || echo 0)
check "immediate: they wait in the outbox" test "$pending_before" -gt 3000
hold_row immediate 1005
proxy_start pg "$PGPORT"
check "immediate: a batch waits inside its transaction" wait_for 20 batch_waits
echo "# immediate: pending when postgres stops: $(pending_total || echo '?') of $pending_before"
pg_down_immediate() {
  stop_postgres immediate
  wait "$holder" 2>/dev/null || true   # its session went down with the server
}
outage "postgres stopped -m immediate inside a batch" pg_down_immediate pg_up 5 'postgres down'

# --- the network to PostgreSQL: proxy stopped, every packet dropped, connections reset ---------
pg_blackhole() { proxy_blackhole pg; }
pg_unblackhole() { proxy_unblackhole pg; }
outage "postgres network black-holed 10 s" pg_blackhole pg_unblackhole 10
pg_drop() { netns_drop_port "${PROXY_PORTS[pg]}" || _fail "tc can drop packets in a network namespace (htb, u32, blackhole)"; }
outage "postgres network dropping every packet 10 s" pg_drop netns_undrop 10
pg_cut() { proxy_cut pg; }
pg_uncut() { proxy_start pg "$PGPORT"; }
outage "postgres network cut (reset) 10 s" pg_cut pg_uncut 10 'postgres down'

# --- Redis shut down without saving: it comes back empty ---------------------------------------
redis_shutdown() {   # SHUTDOWN SAVE|NOSAVE; the server exits
  redis_cli SHUTDOWN "$1" >/dev/null 2>&1 || true
  wait_exit "$REDIS_PID" 10 || die "redis-server did not shut down"
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=""
}
redis_down_empty() { redis_shutdown NOSAVE; rm -f "$T/redis/dump.rdb"; }
redis_up() { start_redis; }   # on its port again, reading $T/redis/dump.rdb if there is one
outage "redis shut down nosave 8 s (back empty)" redis_down_empty redis_up 8 'redis down'

# --- Redis restarted with its data while the stream holds writes PostgreSQL has not got ------
xlen_b1() { redis_cli XLEN 'sharded:{b1}:ops'; }
stream_holds() { [[ $(xlen_b1) -gt 0 ]]; }
redis_restart_saved() {
  stop_postgres fast
  sleep 1
  check "redis restart with data: the stream holds writes" wait_for 10 stream_holds
  redis_shutdown SAVE
  check "redis restart with data: it saved them" test -s "$T/redis/dump.rdb"
  loads=$(grep -c 'DB loaded from disk' "$T/redis/redis.log" || true)
  start_redis
  check_eq "redis restart with data: it loaded from disk" "$((loads + 1))" \
    "$(grep -c 'DB loaded from disk' "$T/redis/redis.log" || true)"
  check "redis restart with data: ... keys, not an empty database" \
    grep -qE 'keys loaded: [1-9]' <(grep 'Done loading RDB' "$T/redis/redis.log" | tail -n 1)
  FAULTS=$((FAULTS + 1))   # the PostgreSQL stop; outage counts the Redis restart
}
redis_restart_saved_after() { _pg_start; }
outage "redis restarted with its data (postgres down)" redis_restart_saved \
  redis_restart_saved_after 2
rm -f "$T/redis/dump.rdb"

# --- the network to Redis: proxy stopped, every packet dropped, connections reset --------------
redis_blackhole() { proxy_blackhole redis; }
redis_unblackhole() { proxy_unblackhole redis; }
outage "redis network black-holed 10 s" redis_blackhole redis_unblackhole 10
redis_drop() { netns_drop_port "${PROXY_PORTS[redis]}" || _fail "tc can drop packets in a network namespace (htb, u32, blackhole)"; }
outage "redis network dropping every packet 10 s" redis_drop netns_undrop 10
redis_cut() { proxy_cut redis; }
redis_uncut() { proxy_start redis "$REDIS_PORT"; }
outage "redis network cut (reset) 10 s" redis_cut redis_uncut 10 'redis down'

# --- Redis loses its data while writes are pending ----------------------------------------------
stop_postgres fast
writer_start --count 50
writer_wait
check "flush: relayed to redis before the flush" wait_for 10 stream_holds
redis_cli FLUSHALL >/dev/null
FAULTS=$((FAULTS + 2))
_pg_start
drain_after "redis flushed with writes pending (postgres down)" "$(now_us)"
verify "redis flushed"

# --- SIGTERM with PostgreSQL down: a bounded, clean exit that keeps the outbox ----------------
stop_postgres fast
writer_start --count 20
writer_wait
exec 7>"$MNT/b3/Counter/3001.json"   # a writer still holding a half-written record open
printf '{"n":' >&7
started=$(now_us)
kill -TERM "$DAEMON_PID"
FAULTS=$((FAULTS + 2))
check "sigterm: the daemon exits within 15 s" wait_exit "$DAEMON_PID" 15
status=0; wait "$DAEMON_PID" || status=$?
check_eq "sigterm: exit status 0" 0 "$status"
echo "# shutdown with postgres down took $((($(now_us) - started) / 1000)) ms"
DAEMON_PID=""
exec 7>&- 2>/dev/null || true
not_mounted() { ! is_mounted "$1"; }
check "sigterm: the mount is gone" not_mounted "$MNT"
check "sigterm: pending writes kept in the outbox" \
  test "$(sqlite3 "$DATA/b1.sqlite" 'select count(*) from outbox')" -gt 0
_pg_start
mount_via_proxies
drain_after "restart after sigterm" "$(now_us)"
verify "sigterm"

# --- entries PostgreSQL already has leave the outbox by themselves -----------------------------
# As after a crash between PostgreSQL's commit and the outbox delete: PostgreSQL's applied seq
# already covers a write that the block still holds as pending. (Its own block and record,
# outside the writer's history: that write deliberately never reaches PostgreSQL.)
mkdir "$MNT/ap"
echo '{"n":1}' >"$MNT/ap/Counter/99001.json"
ap_pending_zero() { timeout 5 grep -qx 'pending 0' "$MNT/ap/sync-status"; }
check "already applied: the record reaches postgres" wait_for 15 ap_pending_zero
stop_postgres fast
echo '{"n":-7}' >"$MNT/ap/Counter/99001.json"
if unmount_sharded; then _pass "unmount with one write pending"; else _fail "unmount with one write pending"; fi
_pg_start
last=$(sqlite3 "$DATA/ap.sqlite" "select value from meta where key = 'last_seq'")
psql_q "update sharded_applied set seq = $last where block = 'ap'" >/dev/null
mount_via_proxies
check "an already-applied write leaves the outbox with no new write" wait_for 45 ap_pending_zero
check_eq "and is not applied a second time" 1 "$(psql_q 'select n from "Counter" where id = 99001')"

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
# It must exit by itself (a timeout is a failure: it would be serving), say why, and leave
# the first daemon serving.
mkdir -p "$T/m2"
second=$(timeout 15 "$SHARDED_BUILD_DIR/mount.sharded" -f \
  -o "pg=$PG_URL,redis=$REDIS_URL,data=$DATA,catalog=$T/catalog.json" "$T/m2" 2>&1) &&
  status=0 || status=$?
check "second daemon on one data directory: refused (status $status; 124 = still running)" \
  test "$status" -ne 0 -a "$status" -ne 124
check "second daemon: says the directory is in use" grep -q "in use by another mount.sharded" <<<"$second"
check "second daemon: nothing mounted" not_mounted "$T/m2"
check "second daemon: the first one still runs" alive "$DAEMON_PID"
check "second daemon: the first mount still answers" timeout 5 grep -q '^state ready$' "$MNT/b1/sync-status"
writer_start --count 25
writer_wait
check_eq "second daemon: the first mount still takes writes" 100 "$WRITER_ACKED"
drain_after "last writes" "$(now_us)"

# not through check: its command substitution is a subshell, which cannot wait for the daemon
if unmount_sharded; then _pass "clean unmount"; else _fail "clean unmount"; fi

# --- the whole history --------------------------------------------------------------------------
verify "all faults"
kv() { sed -n "s/.*\<$1=\([0-9]*\).*/\1/p" <<<"$CHECK_LINE"; }
echo "# faults: acknowledged=$(kv acknowledged) faults=$FAULTS lost=$(kv lost)" \
  "duplicated=$(kv duplicated) reordered=$(kv reordered) unknown=$(kv unknown)" \
  "failed_during_outages=$OUTAGE_FAILED unacknowledged_at_kills=$(kv unacknowledged)" \
  "transactions=$(kv transactions) drain_ms=$(IFS=,; echo "${DRAINS[*]##*:}")" \
  "(max $(printf '%s\n' "${DRAINS[@]##*:}" | sort -n | tail -n 1); in the order of the drains above)"
check_eq "summary: no write lost" 0 "$(kv lost)"
check_eq "summary: no write applied twice" 0 "$(kv duplicated)"
check_eq "summary: no write applied out of order" 0 "$(kv reordered)"
check_eq "summary: no write refused while a server was away" 0 "$OUTAGE_FAILED"
check "summary: thousands of acknowledged writes" test "$(kv acknowledged)" -gt 5000
finish

#!/usr/bin/env bash
# A stuck PostgreSQL never freezes what is local (issue 11, items 8, 9, 10):
# - a table locked (LOCK TABLE in a psql session): a mkdir whose loader reads it returns within
#   1 s and the block goes once the load fails (lock_timeout); uncached reads pile up, more of them
#   than the daemon has FUSE threads: every local probe (cached read of another block,
#   sync-status, ls of the root, metrics, mkdir of a block without a loader rule) answers
#   within 1 s, the stuck reads end with EAGAIN, and once the lock goes they read again;
# - invalidate under writers: 1 writer + 3 invalidating loops (each invalidate well under 2 s),
#   then 8 writers + invalidates with zero failed writes (the load's end took the store's lock
#   while it held SQLite's write lock: each waited out the other's busy timeout);
# - a big load (mkdir of a block of BIG_ROWS rows) with the root probed: ls, metrics, the
#   loading block's sync-status, reads of other blocks answer within 1 s;
# - PostgreSQL stopped with SIGSTOP: the same probes, sync-status and metrics say postgres
#   down within a bounded time; SIGCONT and everything drains; stopped again, SIGTERM still
#   unmounts within 15 s.
# Probes run in the background and are given 3 s: a probe the kernel holds (the root's lock
# during a mkdir) is reported, not waited for; cleanup aborts the mount.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIG_ROWS=${BIG_ROWS:-150000}
PILE=40              # uncached reads started at once: more than the FUSE threads (32)
INV_ROWS=2000        # rows of the block invalidated under writers

# ---------------------------------------------------------------------------------------------
# Helpers

# probe NAME CMD...: CMD must succeed within 1 s. Run in the background and waited for 3 s at
# most; failures and slow answers go to SLOW, the slowest answer to PROBE_MAX.
SLOW=()
PROBE_MAX=0
NPROBE=0
probe() {
  local name=$1 f rc ms deadline
  shift
  NPROBE=$((NPROBE + 1))
  f=$T/probe.$NPROBE
  (
    s=${EPOCHREALTIME/./}
    r=0
    "$@" >/dev/null 2>&1 || r=$?
    echo "$r $(((${EPOCHREALTIME/./} - s) / 1000))" >"$f.tmp" && mv "$f.tmp" "$f"
  ) &
  track_pid $!
  deadline=$((${EPOCHREALTIME/./} + 3000000))
  until [[ -s $f ]] || ((${EPOCHREALTIME/./} > deadline)); do sleep 0.02; done
  if [[ ! -s $f ]]; then
    SLOW+=("$name: no answer within 3 s")
    return 0
  fi
  read -r rc ms <"$f"
  ((rc == 0 && ms <= 1000)) || SLOW+=("$name: status $rc after $ms ms")
  ((ms <= PROBE_MAX)) || PROBE_MAX=$ms
}

# quick CMD...: CMD's output when it finished within 3 s, else "<no answer>" (a lookup under
# a root that a mkdir holds cannot even be killed: the test must not wait for it).
NQUICK=0
quick() {
  local f deadline
  NQUICK=$((NQUICK + 1))
  f=$T/quick.$NQUICK
  ( "$@" >"$f.tmp" 2>&1; mv "$f.tmp" "$f" ) &
  track_pid $!
  deadline=$((${EPOCHREALTIME/./} + 3000000))
  until [[ -e $f ]] || ((${EPOCHREALTIME/./} > deadline)); do sleep 0.02; done
  if [[ -e $f ]]; then cat "$f"; else echo "<no answer>"; fi
}

# local_probes TAG: every probe of what is local, once.
local_probes() {
  local tag=$1 k=$NPROBE
  probe "$tag: cached read of a/User/$((k % 3 + 1)).json" cat "$MNT/a/User/$((k % 3 + 1)).json"
  probe "$tag: a/sync-status" cat "$MNT/a/sync-status"
  probe "$tag: ls of the root" ls "$MNT"
  probe "$tag: metrics" cat "$MNT/metrics"
  probe "$tag: mkdir of a new block (no loader rule)" mkdir "$MNT/new-$k"
}

# pile FIRST COUNT: COUNT uncached reads of User/FIRST.. in the background, each with its
# status and error in $T/pile.<id>. Record i is read in block p<i % PILE>: the kernel sends
# the lookups of one directory one at a time (no parallel directory operations), so only
# reads in different directories take several of the daemon's threads at once.
PILE_PIDS=()
pile() {
  local i
  PILE_PIDS=()
  for ((i = $1; i < $1 + $2; i++)); do
    (
      r=0
      timeout -s KILL 120 cat "$MNT/p$((i % PILE))/User/$i.json" >"$T/pile.$i.out" 2>"$T/pile.$i.err" || r=$?
      echo "$r" >"$T/pile.$i.rc"
    ) &
    track_pid $!
    PILE_PIDS+=($!)
  done
}
pile_done() { local p; for p in "${PILE_PIDS[@]}"; do ! alive "$p" || return 1; done; }
# pile_errors FIRST COUNT: the distinct outcomes of the pile ("0" or the error text).
pile_outcomes() {
  local i
  for ((i = $1; i < $1 + $2; i++)); do
    if [[ $(cat "$T/pile.$i.rc" 2>/dev/null) == 0 ]]; then echo ok
    else sed 's/.*: //' "$T/pile.$i.err" 2>/dev/null || echo "no status"; fi
  done | sort | uniq -c | sed 's/^ *//' | tr '\n' ';'
}

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
pg_is() { [[ $(psql_q "$2") == "$1" ]]; }
status_of() { timeout 5 awk -v k="$2" '$1 == k {print $2}' "$MNT/$1/sync-status" 2>/dev/null || true; }
pg_down_shown() {
  [[ $(status_of a postgres) == down ]] &&
    timeout 5 grep -qx 'sharded_postgres_up 0' "$MNT/metrics"
}
pg_up_shown() { [[ $(status_of a postgres) == up ]]; }

# PostgreSQL's processes (postmaster and children), for SIGSTOP / SIGCONT.
pg_pids() {
  local pm
  pm=$(head -n 1 "$T/pg/postmaster.pid" 2>/dev/null) || return 0
  echo "$pm"
  ps -o pid= --ppid "$pm" 2>/dev/null || true
}
pg_signal() { local p; for p in $(pg_pids); do kill "-$1" "$p" 2>/dev/null || true; done; }

freeze_cleanup() {
  local rc=$?
  pg_signal CONT
  set +e
  (exit $rc)
  cleanup
}

report_slow() {
  if ((${#SLOW[@]})); then printf '%s\n' "${SLOW[@]}"; return 1; fi
}

# ---------------------------------------------------------------------------------------------
# Setup

setup_tmp
trap freeze_cleanup EXIT
start_postgres
load_sample_schema
psql_q "insert into \"User\" (id, email) select g, 'u' || g || '@example.com'
          from generate_series(100, 299) g;
        create table \"Big\" (id bigint primary key, v text not null);
        insert into \"Big\" select g, md5(g::text) from generate_series(1, $BIG_ROWS) g;
        analyze \"Big\"" >/dev/null
cat >"$T/loaders" <<'EOF'
block big-{n}
    Big where "id" >= $n
block user-{n}
    User where "id" = $n
EOF
start_redis
mount_sharded "loaders=$T/loaders"
require "mkdir M/a and M/b (no loader rule)" mkdir "$MNT/a" "$MNT/b"
require "mkdir M/p0 .. M/p$((PILE - 1)) (blocks to read through in parallel)" \
  mkdir $(for ((i = 0; i < PILE; i++)); do echo "$MNT/p$i"; done)
require "a holds User 1-3 (read through once)" cat "$MNT/a/User/1.json" "$MNT/a/User/2.json" \
  "$MNT/a/User/3.json"

# ---------------------------------------------------------------------------------------------
# Item 8: a table locked while uncached reads pile up

log "LOCK TABLE \"User\" for up to 30 s; $PILE uncached reads of p*/User/*"
PGAPPNAME=freeze-locker "$PGBIN/psql" -qX -c 'begin' -c 'lock table "User" in access exclusive mode' \
  -c 'select pg_sleep(30)' -c 'commit' </dev/null >/dev/null 2>&1 &
track_pid $!
locked() { [[ $(psql_q "select count(*) from pg_locks l join pg_class c on c.oid = l.relation
                         where c.relname = 'User' and l.mode = 'AccessExclusiveLock' and l.granted") == 1 ]]; }
require "the table is locked" wait_for 10 locked
mark=$(stat -c %s "$T/daemon.log")
started=$(now_ms)
pile 100 "$PILE"
sleep 1
SLOW=()
PROBE_MAX=0
for round in 1 2 3; do
  local_probes "lock $round"
  sleep 0.5
done
check "table locked, $PILE uncached reads waiting: every local probe answered within 1 s" report_slow
log "slowest local probe under the lock: $PROBE_MAX ms"
SLOW=()
probe "mkdir M/user-1 (its loader reads the locked table)" mkdir "$MNT/user-1"
MKDIR_SLOW=("${SLOW[@]}")
check_eq "mkdir M/user-1 (its loader reads the locked table) returns 0 within 1 s" "" "${MKDIR_SLOW[*]}"
check_eq "user-1's sync-status says loading" loading "$(quick status_of user-1 state)"
check "the stuck reads all ended within 20 s" wait_for 20 pile_done
log "the pile ended $(($(now_ms) - started)) ms after it started; outcomes: $(pile_outcomes 100 "$PILE")"
check "a read stuck behind the lock fails with EAGAIN (not ENOENT: the row exists)" \
  grep -q "Resource temporarily unavailable" <(cat "$T"/pile.1[0-3]?.err)
check_eq "no read stuck behind the lock said ENOENT" "" \
  "$(grep -l "No such file" "$T"/pile.1[0-3]?.err 2>/dev/null || true)"
gone() { ! timeout 5 ls "$MNT" | grep -qx "$1"; }
check "user-1's load failed on lock_timeout (10 s): the block is removed" wait_for 15 gone user-1
check "the daemon logged it" grep -q "block 'user-1': its load failed after mkdir returned" \
  <(tail -c +"$((mark + 1))" "$T/daemon.log")
psql_q "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'freeze-locker'" >/dev/null
check "the lock released, a read waiting for it reads again (p0/User/120.json)" \
  wait_for 15 grep -q u120@example.com "$MNT/p0/User/120.json"

# ---------------------------------------------------------------------------------------------
# Item 9: invalidate under writers

require "mkdir M/big-$((BIG_ROWS - INV_ROWS + 1)) ($INV_ROWS rows)" mkdir "$MNT/big-$((BIG_ROWS - INV_ROWS + 1))"
INV=$MNT/big-$((BIG_ROWS - INV_ROWS + 1))
require "its load is done" wait_for 30 eval '[[ $(status_of big-'$((BIG_ROWS - INV_ROWS + 1))' state) == ready ]]'

# writer N K FIRST: K writes to $INV/User/N.json, failures counted in $T/wfail.N.
writer() {
  local n=$1 k=$2 i fails=0
  for ((i = 0; i < k; i++)); do
    printf '{"id":%d,"email":"w%d@example.com","name":"w%d"}\n' "$n" "$n" "$i" >"$INV/User/$n.json" \
      2>>"$T/werr.$n" || fails=$((fails + 1))
  done
  echo "$fails" >"$T/wfail.$n"
}
# invalidator K: K invalidates, the duration of each (ms) in $T/inv.<pid>.
invalidator() {
  local k=$1 i s r
  for ((i = 0; i < k; i++)); do
    s=${EPOCHREALTIME/./}
    r=0
    timeout -s KILL 60 sh -c "echo 1 > '$INV/invalidate'" 2>/dev/null || r=$?
    echo "$r $(((${EPOCHREALTIME/./} - s) / 1000))" >>"$T/inv.$BASHPID"
    sleep 0.05
  done
}
# inv_stats: "N invalidates, slowest M ms, F failed".
inv_stats() {
  cat "$T"/inv.* 2>/dev/null | awk '{n++; if ($2 > m) m = $2; if ($1 != 0) f++}
    END {printf "%d invalidates, slowest %d ms, %d failed\n", n, m, f}'
}

rm -f "$T"/inv.* "$T"/wfail.* "$T"/werr.*
pids=()
writer 1000 150 & pids+=($!)
for j in 1 2 3; do invalidator 8 & pids+=($!); done
for p in "${pids[@]}"; do track_pid "$p"; done
wait "${pids[@]}" || true
stats=$(inv_stats)
log "1 writer + 3 invalidating loops: $stats; writes failed: $(cat "$T/wfail.1000")"
slowest=$(awk '{print $4}' <<<"$stats")
check "1 writer + 3 invalidates: each invalidate took < 2 s (slowest ${slowest} ms)" \
  test "${slowest:-99999}" -lt 2000
check_eq "1 writer + 3 invalidates: all 24 invalidates ran" 24 "$(awk '{print $1}' <<<"$stats")"
check_eq "1 writer + 3 invalidates: no invalidate failed" 0 "$(awk '{print $6}' <<<"$stats")"
check_eq "1 writer + 3 invalidates: no write failed" 0 "$(cat "$T/wfail.1000")"

rm -f "$T"/inv.* "$T"/wfail.* "$T"/werr.*
pids=()
for n in 1001 1002 1003 1004 1005 1006 1007 1008; do writer "$n" 60 & pids+=($!); done
for j in 1 2; do invalidator 6 & pids+=($!); done
for p in "${pids[@]}"; do track_pid "$p"; done
wait "${pids[@]}" || true
failed=$(cat "$T"/wfail.* | awk '{s += $1} END {print s + 0}')
log "8 writers (480 writes) + 2 invalidating loops: $(inv_stats); writes failed: $failed $(cat "$T"/werr.* 2>/dev/null | sort | uniq -c | head -3 | tr '\n' ' ')"
check_eq "8 writers + invalidates: zero failed writes" 0 "$failed"
stats=$(inv_stats)
check_eq "8 writers + invalidates: all 12 invalidates ran, none failed" "12 0" \
  "$(awk '{print $1, $6}' <<<"$stats")"
check "8 writers + invalidates: every invalidate < 2 s" \
  test "$(awk '{print $4}' <<<"$stats")" -lt 2000
check "the writes reach PostgreSQL" \
  wait_for 30 pg_is 9 "select count(*) from \"User\" where id between 1000 and 1008"

# ---------------------------------------------------------------------------------------------
# Item 10: a big load with the root probed

log "mkdir M/big-1 ($BIG_ROWS rows) with the root probed"
SLOW=()
PROBE_MAX=0
started=$(now_ms)
mkdir "$MNT/big-1" 2>"$T/big.err" &
BIGMK=$!
track_pid $BIGMK
loading_seen=0
k=200
while (($(now_ms) - started < 60000)); do
  probe "load: ls of the root" ls "$MNT"
  probe "load: metrics" cat "$MNT/metrics"
  probe "load: cached read of another block" cat "$MNT/a/User/1.json"
  probe "load: uncached read of another block" cat "$MNT/b/User/$k.json"
  k=$((k + 1))
  if ! alive $BIGMK; then
    probe "load: sync-status of the loading block" cat "$MNT/big-1/sync-status"
    [[ $(status_of big-1 state) == loading ]] && loading_seen=1
    [[ $(status_of big-1 state) == ready ]] && break
  fi
  sleep 0.2
done
took=$(($(now_ms) - started))
mk_rc=0
wait $BIGMK || mk_rc=$?
log "big-1 loaded in $took ms (the probes need it to take more than a second or two); slowest probe $PROBE_MAX ms"
check_eq "mkdir M/big-1 succeeded" "0 " "$mk_rc $(cat "$T/big.err")"
check "during the load of big-1 every probe of the root and other blocks answered within 1 s" report_slow
check_eq "big-1's sync-status was readable while it loaded (state loading seen)" 1 "$loading_seen"
check_eq "big-1 holds all $BIG_ROWS rows" "$BIG_ROWS" \
  "$(timeout 10 sqlite3 "$DATA/big-1.sqlite" 'select count(*) from records' 2>&1)"
check "big-1/Big/7.json reads" grep -q '"id" *: *7' "$MNT/big-1/Big/7.json"

# ---------------------------------------------------------------------------------------------
# Item 8: PostgreSQL stopped (SIGSTOP)

check "a write to a/User/2.json (pending while PostgreSQL is stopped)" \
  sh -c "echo '{\"name\":\"stopped\"}' > '$MNT/a/User/2.json'"
log "SIGSTOP PostgreSQL; $PILE uncached reads of p*/User/*"
pg_signal STOP
started=$(now_ms)
pile 140 "$PILE"
sleep 1
SLOW=()
PROBE_MAX=0
for round in 1 2 3; do
  local_probes "stopped $round"
  sleep 0.5
done
check "PostgreSQL stopped, $PILE uncached reads waiting: every local probe answered within 1 s" report_slow
log "slowest local probe with PostgreSQL stopped: $PROBE_MAX ms"
left=$((15 - ($(now_ms) - started) / 1000))
((left > 0)) || left=1
check "sync-status and metrics say postgres down within 15 s of the stop" wait_for "$left" pg_down_shown
check "the stuck reads all ended within 20 s" wait_for 20 pile_done
log "outcomes with PostgreSQL stopped: $(pile_outcomes 140 "$PILE")"
check "a read with PostgreSQL stopped fails with EAGAIN" \
  grep -q "Resource temporarily unavailable" <(cat "$T"/pile.1[4-7]?.err)

log "SIGCONT"
pg_signal CONT
check "sync-status says postgres up again" wait_for 40 pg_up_shown
check "the write made while it was stopped reaches PostgreSQL" \
  wait_for 40 pg_is stopped "select name from \"User\" where id = 2"
check "an uncached read works again (p1/User/141.json)" \
  wait_for 15 grep -q u141@example.com "$MNT/p1/User/141.json"

log "SIGSTOP again, reads waiting, then SIGTERM to the daemon"
pg_signal STOP
pile 180 10
sleep 1
started=$(now_ms)
kill -TERM "$DAEMON_PID"
check "SIGTERM with PostgreSQL stopped: the daemon exits within 15 s" \
  wait_for 15 eval "! alive $DAEMON_PID"
log "the daemon exited $(($(now_ms) - started)) ms after SIGTERM"
check "and the mount is gone" wait_for 5 eval "! is_mounted '$MNT'"
pg_signal CONT

finish

#!/usr/bin/env bash
# Blocks as living things (issue 4): loader rules (several models, order by/limit, no rule, a
# failure halfway, PostgreSQL down, bound parameters), progress and waiting readers while a big
# block loads, TTL expiry held back by pending writes and done after the sync, invalidate with
# unsynced writes, rmdir with pending writes, every control file with good and bad values, the
# Prometheus metrics file parsed by prometheus_client, the kernel cache after a reload, a bad
# rules file failing the mount, and a block's ttl surviving a remount.
# Also: a load made slow by PostgreSQL (pg_sleep in the rule) that readers wait for, with its
# progress (load_rows, load_total) in sync-status; expiry of a big block not holding up reads of
# other blocks; control-file values split over two write() calls, writes to the read-only
# sync-status, ttl read while another process rewrites it; TTL as idle time (reads and writes
# keep a block); stat's size after PostgreSQL rewrote a record (trigger, default) and after an
# expiry and reload; rmdir deleting a block's settings; rm -r of a block.
#
# Needs python3-prometheus-client (Debian) for the metrics checks.
# BIG_ROWS (default 200000) sets the size of the table used to watch a load in progress.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIG_ROWS=${BIG_ROWS:-200000}
ORDER_LIMIT=5        # the user-{id} rule keeps the newest ORDER_LIMIT orders
EXTRA_ORDERS=8       # user 2 gets this many more orders, so it has more than the limit
SLOW_ROWS=20         # slow-{n} loads this many rows, PostgreSQL sleeping 0.1 s on each

# ---------------------------------------------------------------------------------------------
# Helpers

# put FILE BODY: write BODY plus "\n" in one write(); errors from write() or close() show.
put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }
# put_raw FILE BYTES: write exactly BYTES (printf %b escapes) in one write().
put_raw() { printf '%b' "$2" | timeout 10 tee "$1" >/dev/null; }

# fails_with TEXT CMD...: CMD fails (not a timeout) and its output contains TEXT.
fails_with() {
  local want=$1 out rc=0
  shift
  out=$("$@" 2>&1) || rc=$?
  ((rc != 0)) || { echo "it succeeded: $out"; return 1; }
  ((rc != 124)) || { echo "timed out"; return 1; }
  [[ $out == *"$want"* ]] || { echo "failed (status $rc), but not with '$want': $out"; return 1; }
}
einval() { fails_with "Invalid argument" "$@"; }

# content FILE: the file's bytes, or <absent>.
content() { timeout 10 cat "$1" 2>/dev/null || echo "<absent>"; }
# listing DIR: the names in DIR, sorted, on one line.
listing() { { timeout 10 ls -A "$1" 2>/dev/null || true; } | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'; }
# blocks: the blocks listed at the mount root.
blocks() { { timeout 10 ls -A "$MNT" 2>/dev/null || true; } | grep -vx metrics | LC_ALL=C sort || true; }
listed() { grep -qxF -- "$1" <<<"$(blocks)"; }
not_listed() { ! listed "$1"; }

# status_of BLOCK KEY: one value of the block's sync-status.
status_of() { timeout 10 awk -v k="$2" '$1 == k {print $2}' "$MNT/$1/sync-status" 2>/dev/null || true; }
state_is() { [[ $(status_of "$1" state) == "$2" ]]; }
pending_is_zero() { [[ $(status_of "$1" pending) == 0 ]]; }
all_synced() { local b; for b in $(blocks); do pending_is_zero "$b" || return 1; done; }

# sq BLOCK SQL: a query on the block's SQLite file, read from outside the mount (so that it
# neither touches the block's idle time nor triggers a load).
sq() {
  [[ -f $DATA/$1.sqlite ]] || { echo "<no file>"; return 0; }
  timeout 10 sqlite3 "$DATA/$1.sqlite" "$2" 2>&1 || true
}
records_of() { sq "$1" "select count(*) from records${2:+ where model = '$2'}"; }
records_are() { [[ $(records_of "$1") == "$2" ]]; }
records_gt0() { local n; n=$(records_of "$1"); [[ $n =~ ^[0-9]+$ ]] && ((n > 0)); }
outbox_is_zero() { [[ $(sq "$1" 'select count(*) from outbox') == 0 ]]; }

# no_trace BLOCK: nothing of the block in the data directory (no .sqlite, -wal, temp file).
no_trace() {
  local left
  left=$(ls -A "$DATA" | grep -E "(^|[^[:alnum:]])$1([^[:alnum:]]|\$)" || true)
  [[ -z $left ]] || { echo "left behind: $left"; return 1; }
}

# pg_is EXPECTED SQL: the query prints exactly EXPECTED.
pg_is() { [[ $(psql_q "$2") == "$1" ]]; }
pg_json() { psql_q "select row_to_json(t) from \"$1\" t where id = $2" | jq -cS "del(.$3)"; }
file_json() { timeout 10 jq -cS "del(.$2)" "$1" 2>&1 || true; }
epoch() { date -d "$1" +%s 2>/dev/null || echo "bad date '$1'"; }

# size_matches FILE: stat's size is the number of bytes cat returns.
size_matches() {
  local s n
  s=$(timeout 10 stat -c %s "$1") || return 1
  n=$(timeout 10 cat "$1" | wc -c) || return 1
  [[ $s == "$n" ]] || { echo "stat says $s, cat returns $n bytes"; return 1; }
}

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
log_since() { tail -c +"$((LOG_MARK + 1))" "$T/daemon.log" 2>/dev/null || true; }
mark_log() { LOG_MARK=$(stat -c %s "$T/daemon.log" 2>/dev/null || echo 0); }
LOG_MARK=0

# ---------------------------------------------------------------------------------------------
# Setup: the sample schema, more orders for user 2, a big table, the rules file.

setup_tmp
start_postgres
start_redis
load_sample_schema
psql_q "insert into \"Order\" (id, \"userId\", total, status, placed_at)
          select 200 + g, 2, g, 'extra', timestamptz '2024-06-01 00:00:00+00' + g * interval '1 day'
          from generate_series(1, $EXTRA_ORDERS) g" >/dev/null
psql_q "create table \"Big\" (id bigint primary key, v text not null);
        insert into \"Big\" select g, md5(g::text) from generate_series(1, $BIG_ROWS) g;
        analyze \"Big\"" >/dev/null
# Slow: rows of 9000 bytes, so that PostgreSQL sends each one as it is produced (it flushes its
# 8 KiB output buffer) and a load's progress shows row by row.
psql_q "create table \"Slow\" (id bigint primary key, v text not null);
        insert into \"Slow\" select g, repeat(chr(97 + g % 26), 9000) from generate_series(1, $SLOW_ROWS) g" >/dev/null
# Note: PostgreSQL rewrites every write of a row (a trigger) and fills a default, so a synced
# record changes size when it is refreshed from PostgreSQL's answer.
psql_q "create table \"Note\" (id bigint primary key, body text not null, rev int not null default 0,
          tag text not null default 'filled-in-by-a-postgresql-default');
        create function note_stamp() returns trigger language plpgsql as \$\$
          begin new.rev := coalesce(new.rev, 0) + 1; new.body := new.body || ' (seen by postgres)'; return new; end \$\$;
        create trigger note_stamp before insert or update on \"Note\" for each row execute function note_stamp();
        insert into \"Note\" (id, body) select g, 'note ' || g from generate_series(1, 9) g" >/dev/null

RULES=$T/loaders.rules
cat >"$RULES" <<EOF
# Loader rules for test_lifecycle.sh.
# Comment lines and blank lines are ignored.

block user-{id}
    User  where "id" = \$id
    Order where "userId" = \$id order by "placed_at" desc limit $ORDER_LIMIT

# two captures
block pair-{a}-{b}
    Order where "userId" = \$a and "id" = \$b

# fails at run time on the second order of user 1 (id 11), after one row was streamed
block half-{id}
    User  where "id" = \$id
    Order where "userId" = \$id and 1.0 / ("id" - 11) <> 0

block big-{n}
    Big where "id" >= \$n

# fails at run time at row 100000 of a sequential scan
block bighalf-{n}
    Big where "id" >= \$n and 1.0 / ("id" - 100000) <> 0

# slow: PostgreSQL sleeps 0.1 s on every row, when counting load_total and again when loading
block slow-{n}
    Slow where "id" <= \$n and pg_sleep(0.1) is not null
EOF

# ---------------------------------------------------------------------------------------------
# A bad rules file fails mount.sharded at start, naming the file and the line.

# bad_rules NAME LINE: mount.sharded with loaders=$T/NAME.rules exits non-zero, mounts nothing,
# and says which file and (unless LINE is empty) which line.
bad_rules() {
  local name=$1 line=$2 f=$T/$1.rules m=$T/m-$1 out=$T/$1.out rc=0
  mkdir -p "$m" "$T/d-$name"
  timeout 15 "$SHARDED_BUILD_DIR/mount.sharded" -f \
    -o "pg=$PG_URL,redis=$REDIS_URL,data=$T/d-$name,loaders=$f" "$m" </dev/null >"$out" 2>&1 || rc=$?
  if is_mounted "$m"; then force_unmount "$m"; echo "it mounted"; return 1; fi
  ((rc != 0 && rc != 124)) || { echo "exit status $rc, output:"; head -c 500 "$out"; return 1; }
  grep -qF "$name.rules" "$out" || { echo "the message does not name $name.rules:"; cat "$out"; return 1; }
  if [[ -n $line ]] && ! grep -qE "(line |:)$line([^0-9]|\$)" "$out"; then
    echo "the message does not name line $line:"
    cat "$out"
    return 1
  fi
  echo "exit $rc: $(head -c 300 "$out")"
}

cat >"$T/bad-model.rules" <<'EOF'
# unknown model on line 5

block user-{id}
    User  where "id" = $id
    Nope  where "id" = $id
EOF
cat >"$T/bad-param.rules" <<'EOF'
# $x is not captured by the pattern: line 4
block user-{id}
    User  where "id" = $id
    Order where "userId" = $x
EOF
cat >"$T/bad-sql.rules" <<'EOF'
# SQL that PostgreSQL cannot parse on line 4

block user-{id}
    User  where "id" = = $id
EOF
cat >"$T/bad-where.rules" <<'EOF'
block user-{id}
    User  where "id" = $id
    Order "userId" = $id
EOF
cat >"$T/bad-order.rules" <<'EOF'
# a model line before any block line: line 2
    User where "id" = 1
block user-{id}
    User where "id" = $id
EOF
check "bad rules: an unknown model fails the mount, naming the file and line 5" bad_rules bad-model 5
check "bad rules: a \$name not captured fails the mount (line 4)" bad_rules bad-param 4
check "bad rules: bad SQL fails the mount (line 4)" bad_rules bad-sql 4
check "bad rules: a model line without 'where' fails the mount (line 3)" bad_rules bad-where 3
check "bad rules: a model line before any block line fails the mount (line 2)" bad_rules bad-order 2
check "bad rules: a missing rules file fails the mount, naming it" bad_rules missing ""
check "bad rules: nothing was mounted" test -z "$(fuse_mounts_under "$T")"

# ---------------------------------------------------------------------------------------------
mount_sharded "loaders=$RULES,ttl=0"
log "mounted with loaders=$RULES,ttl=0"

# --- a loader with several models --------------------------------------------------------------
U1=$MNT/user-1
require "mkdir M/user-1 (rule: User and Order)" mkdir "$U1"
check_eq "user-1: 1 User and 2 Orders are in SQLite right after mkdir" \
  "User 1|Order 2" "$(sq user-1 "select 'User ' || count(*) filter (where model = 'User') || '|Order ' || count(*) filter (where model = 'Order') from records")"
check_eq "user-1: ls User" "1.json" "$(listing "$U1/User")"
check_eq "user-1: ls Order" "10.json 11.json" "$(listing "$U1/Order")"
check_eq "user-1: ls Event is empty (no rule line for it)" "" "$(listing "$U1/Event")"
check_eq "user-1: no more than the loader's rows were fetched by the listing" 3 "$(records_of user-1)"
check_eq "user-1: User/1.json matches PostgreSQL (all but created_at)" \
  "$(pg_json User 1 created_at)" "$(file_json "$U1/User/1.json" created_at)"
check_eq "user-1: created_at is the same instant" "$(epoch '2024-01-02 03:04:05+00')" \
  "$(epoch "$(jq -r .created_at "$U1/User/1.json" 2>/dev/null)")"
for o in 10 11; do
  check_eq "user-1: Order/$o.json matches PostgreSQL (all but placed_at)" \
    "$(pg_json Order "$o" placed_at)" "$(file_json "$U1/Order/$o.json" placed_at)"
  check_eq "user-1: Order/$o.json placed_at is the same instant" \
    "$(epoch "$(psql_q "select placed_at from \"Order\" where id = $o")")" \
    "$(epoch "$(jq -r .placed_at "$U1/Order/$o.json" 2>/dev/null)")"
done
check_eq "user-1: sync-status says state ready" ready "$(status_of user-1 state)"
check "user-1: ls M lists it" listed user-1

# --- order by ... limit: user 2 has more orders than the limit ----------------------------------
U2=$MNT/user-2
check_eq "user 2 has more orders than the limit in PostgreSQL" $((EXTRA_ORDERS + 1)) \
  "$(psql_q 'select count(*) from "Order" where "userId" = 2')"
require "mkdir M/user-2" mkdir "$U2"
newest=$(psql_q "select id || '.json' from \"Order\" where \"userId\" = 2 order by placed_at desc limit $ORDER_LIMIT" |
  LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
check_eq "user-2: the block holds exactly the newest $ORDER_LIMIT orders" "$newest" "$(listing "$U2/Order")"
check_eq "user-2: $ORDER_LIMIT Order rows in SQLite" "$ORDER_LIMIT" "$(records_of user-2 Order)"
oldest=$(psql_q 'select id from "Order" where "userId" = 2 and placed_at is not null order by placed_at limit 1')
check_eq "user-2: an older order outside the limit still reads through" \
  "$(pg_json Order "$oldest" placed_at)" "$(file_json "$U2/Order/$oldest.json" placed_at)"

# --- two captures ---------------------------------------------------------------------------
require "mkdir M/pair-1-10 (rule with two captures)" mkdir "$MNT/pair-1-10"
check_eq "pair-1-10: holds Order 10 only" "10.json" "$(listing "$MNT/pair-1-10/Order")"
check_eq "pair-1-10: holds no User" "" "$(listing "$MNT/pair-1-10/User")"

# --- a load after PostgreSQL restarted: the connections kept from earlier loads died with it ----
restart_postgres fast
require "mkdir M/pair-1-11 after a PostgreSQL restart (loads keep their connections)" \
  mkdir "$MNT/pair-1-11"
check_eq "pair-1-11: holds Order 11" "11.json" "$(listing "$MNT/pair-1-11/Order")"

# --- blocks matching no rule start empty and fill by read-through --------------------------------
F=$MNT/free-x
require "mkdir M/free-x (no rule)" mkdir "$F"
check_eq "free-x: starts empty" 0 "$(records_of free-x)"
check_eq "free-x: ls User is empty" "" "$(listing "$F/User")"
check_eq "free-x: read-through of User/1.json" "$(pg_json User 1 created_at)" \
  "$(file_json "$F/User/1.json" created_at)"
check_eq "free-x: read-through of User/2.json" "$(pg_json User 2 created_at)" \
  "$(file_json "$F/User/2.json" created_at)"
check_eq "free-x: the read rows are now cached" 2 "$(records_of free-x)"
check_eq "free-x: sync-status says state ready" ready "$(status_of free-x state)"
for id in my-user-1 user-; do
  check "mkdir M/$id (the pattern must match the whole id, {id} one or more characters)" mkdir "$MNT/$id"
  check_eq "$id: starts empty" 0 "$(records_of "$id")"
done

# --- captured values are bound parameters, never SQL ---------------------------------------------
check "mkdir 'M/user-0 or true' fails (bound as a bigint, not pasted into SQL)" \
  fails_with "Input/output error" mkdir "$MNT/user-0 or true"
check "'user-0 or true' is not listed" not_listed "user-0 or true"
check "'user-0 or true' leaves nothing in the data directory" test ! -e "$DATA/user-0 or true.sqlite"
check_eq "the injection attempt loaded nobody" "" "$(listing "$MNT/user-0 or true/User")"

# --- a loader that fails halfway: mkdir fails, nothing is left behind ----------------------------
# load_fails ID: mkdir fails with EIO; or, when the load still ran after 0.5 s (mkdir returned,
# the load went on), the block goes away once the load fails.
load_fails() {
  local out rc=0
  out=$(timeout 120 mkdir "$MNT/$1" 2>&1) || rc=$?
  if ((rc == 0)); then
    wait_for 120 not_listed "$1" || { echo "mkdir returned 0 and the block stayed"; return 1; }
  elif [[ $out != *"Input/output error"* ]]; then
    echo "failed (status $rc), but not with EIO: $out"
    return 1
  fi
}
for id in half-1 bighalf-1; do
  mark_log
  check "mkdir M/$id fails with EIO (or the block goes) when the loader fails halfway" load_fails "$id"
  check "$id is not listed" not_listed "$id"
  check "$id left nothing in the data directory" no_trace "$id"
  check "$id: the daemon logged the reason (division by zero)" \
    grep -q "division by zero" <<<"$(log_since)"
  check "$id: the log names the block" grep -qF "$id" <<<"$(log_since)"
  check "mkdir M/$id fails again (no stale state)" load_fails "$id"
  check "$id is still not listed" not_listed "$id"
done
check "the daemon still serves after the failed loads" test -n "$(content "$U1/User/1.json" | jq -r .email)"

# ---------------------------------------------------------------------------------------------
# A big load: readers wait for it; progress is visible in sync-status.
#
# mkdir returns after 0.5 s while a longer load goes on (the kernel holds the root directory's
# lock during mkdir); a reader started meanwhile waits for the load. Progress is watched
# during a reload (invalidate) below.

BIGB=$MNT/big-1
started=$(now_ms)
mkdir "$BIGB" 2>"$T/big-mkdir.err" &
mk_pid=$!
track_pid "$mk_pid"
sleep 0.3
timeout 120 cat "$BIGB/Big/5.json" >"$T/big5.out" 2>&1 &
cat_pid=$!
track_pid "$cat_pid"
partial=""
# one SQLite transaction: an outside reader sees all rows or none
while alive "$mk_pid" || [[ $(status_of big-1 state) == loading ]]; do
  if [[ -f $DATA/big-1.sqlite ]]; then
    n=$(timeout 5 sqlite3 "file:$DATA/big-1.sqlite?mode=ro" 'select count(*) from records' 2>/dev/null || true)
    if [[ $n =~ ^[0-9]+$ ]] && ((n > 0 && n < BIG_ROWS)); then partial+=" $n"; fi
  fi
  sleep 0.1
  (($(now_ms) - started < 180000)) || break
done
mk_rc=0; wait "$mk_pid" || mk_rc=$?
cat_rc=0; wait "$cat_pid" || cat_rc=$?
log "mkdir big-1 ($BIG_ROWS rows) took $(($(now_ms) - started)) ms"
check_eq "mkdir M/big-1 ($BIG_ROWS rows) succeeds" "0 " "$mk_rc $(cat "$T/big-mkdir.err")"
check_eq "a read started during mkdir's load succeeds once it ends" \
  "0 5 $(psql_q 'select v from "Big" where id = 5')" "$cat_rc $(jq -r '"\(.id) \(.v)"' "$T/big5.out" 2>&1)"
check_eq "big-1: all $BIG_ROWS rows are in SQLite" "$BIG_ROWS" "$(records_of big-1)"
check_eq "big-1: no outside reader saw part of the load (one transaction)" "" "$partial"
check_eq "big-1: state ready" ready "$(status_of big-1 state)"

# Reload through invalidate; the cat after it triggers the reload if invalidate only drops.
started=$(now_ms)
(
  rc=0; echo 1 >"$BIGB/invalidate" || rc=$?; echo "invalidate $rc"
  rc=0; timeout 120 cat "$BIGB/Big/1.json" >/dev/null || rc=$?; echo "cat $rc"
) >"$T/reload.out" 2>&1 &
job=$!
track_pid "$job"
seen=0 went_down=0 bad_total="" last_rows=0 reader="" reader_ms=0 reader_waited="" obs="" total_known=0
while (($(now_ms) - started < 180000)); do
  s=$(timeout 10 cat "$BIGB/sync-status" 2>/dev/null || true)
  st=$(awk '$1 == "state" {print $2}' <<<"$s")
  rows=$(awk '$1 == "load_rows" {print $2}' <<<"$s")
  total=$(awk '$1 == "load_total" {print $2}' <<<"$s")
  if [[ $st == loading ]]; then
    obs+=" $rows/$total"
    if [[ $rows =~ ^[0-9]+$ ]]; then
      ((rows >= last_rows)) || went_down=1
      last_rows=$rows
      if ((rows > 0)); then
        seen=1
        [[ $total == - || ($total =~ ^[0-9]+$ && total -ge rows) ]] || bad_total+=" $rows/$total"
        if [[ $total == "$BIG_ROWS" ]]; then total_known=1; fi
      fi
    fi
    if ((seen)) && [[ -z $reader ]]; then   # a reader of a record while the block loads
      timeout 120 cat "$BIGB/Big/$BIG_ROWS.json" >"$T/reader.out" 2>&1 &
      reader=$!
      track_pid "$reader"
      reader_ms=$(now_ms)
    elif [[ -n $reader ]] && (($(now_ms) - reader_ms >= 300)) && [[ -z $reader_waited ]]; then
      # still loading 0.3 s after the reader started: it must still be waiting
      if alive "$reader"; then reader_waited=yes; else reader_waited=no; fi
    fi
  elif ! alive "$job"; then
    break
  fi
  sleep 0.02
done
wait "$job" || true
reader_rc=none
if [[ -n $reader ]]; then reader_rc=0; wait "$reader" || reader_rc=$?; fi
log "reload of big-1 took $(($(now_ms) - started)) ms; load_rows/load_total seen:$(head -c 300 <<<"$obs")"
check_eq "reload: invalidate and a read after it succeed" "invalidate 0 cat 0" "$(tr '\n' ' ' <"$T/reload.out" | sed 's/ $//')"
check_eq "reload: sync-status showed state loading with load_rows > 0" 1 "$seen"
check_eq "reload: load_rows never went down" 0 "$went_down"
check_eq "reload: load_total is '-' or a number >= load_rows" "" "$bad_total"
# life.c counts the rows (SELECT count(*) of every rule line) before it streams them
check_eq "reload: while rows streamed, load_total showed the count ($BIG_ROWS)" 1 "$total_known"
# This load may be too fast to watch a reader wait; slow-N below makes sure of it.
log "big-1: a reader started during the reload still waited 0.3 s later: ${reader_waited:-(the load ended first)}"
check_eq "reload: that read then succeeds with the row" \
  "0 $BIG_ROWS $(psql_q "select v from \"Big\" where id = $BIG_ROWS")" \
  "$reader_rc $(jq -r '"\(.id) \(.v)"' "$T/reader.out" 2>&1)"
check_eq "reload: state ready afterwards" ready "$(status_of big-1 state)"
check_eq "reload: all $BIG_ROWS rows are back" "$BIG_ROWS" "$(records_of big-1)"

# Expiry never blocks requests: while big-1 ($BIG_ROWS records) expires (the records are deleted
# and the file vacuumed), reads of other blocks keep answering.
cat >"$T/timed_reads.py" <<'EOF'
# timed_reads.py STOPFILE FILE...: read the FILEs in turn, every 50 ms, until STOPFILE exists.
# One line per read: "<start, unix ms> <duration ms> <bytes read, or the errno's name>".
import errno, os, sys, time
stop, files, i = sys.argv[1], sys.argv[2:], 0
while not os.path.exists(stop):
    f = files[i % len(files)]
    i += 1
    start, t0 = time.time(), time.monotonic()
    try:
        with open(f, "rb") as fh:
            r = str(len(fh.read()))
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    print(int(start * 1000), int((time.monotonic() - t0) * 1000), r, f, flush=True)
    time.sleep(0.05)
EOF
rm -f "$T/reads.stop"
python3 "$T/timed_reads.py" "$T/reads.stop" "$U1/User/1.json" "$U2/Order/20.json" "$F/User/1.json" \
  "$F/sync-status" >"$T/reads.out" 2>&1 &
reads_pid=$!
track_pid "$reads_pid"
sleep 0.5
check "big-1: echo 1 > ttl (it was last used a while ago)" put "$BIGB/ttl" 1
exp_from=$(now_ms)
check "big-1 expires (sync-status state expired)" wait_for 30 state_is big-1 expired
exp_to=$(now_ms)
sleep 0.3
touch "$T/reads.stop"
wait "$reads_pid" || true
log "big-1 expired $((exp_to - exp_from)) ms after its ttl was set to 1"
check_eq "big-1: its records were dropped" 0 "$(records_of big-1)"
during=$(awk -v a="$exp_from" -v b="$exp_to" '$1 >= a && $1 <= b' "$T/reads.out")
check "reads of other blocks went on while big-1 expired (>= 5 of them)" \
  test "$(grep -c . <<<"$during" || true)" -ge 5
check_eq "every read of another block succeeded and took < 1 s while big-1 expired" "" \
  "$(awk '$2 >= 1000 || $3 !~ /^[0-9]+$/ || $3 == 0' "$T/reads.out")"
log "reads during the expiry: $(grep -c . <<<"$during" || true), slowest $(awk 'BEGIN {m = 0} $2 > m {m = $2} END {print m}' "$T/reads.out") ms"
check "rmdir M/big-1 (nothing pending) succeeds" rmdir "$BIGB"
check "big-1 is no longer listed" not_listed big-1
check "big-1's SQLite file is gone" no_trace big-1

# ---------------------------------------------------------------------------------------------
# A slow load: slow-N's rule has PostgreSQL sleep 0.1 s on every row, once while counting
# load_total and again while loading, so that a load of SLOW_ROWS rows takes about
# 2 * SLOW_ROWS * 0.1 s. Readers wait for it; sync-status shows its progress.

SL=$MNT/slow-$SLOW_ROWS
# slow_sig FILE: "<id> <md5 of v>" of a Slow record file, or the error; pg_slow_sig ID: the same
# from PostgreSQL.
slow_sig() {
  python3 -c 'import hashlib, json, sys; d = json.load(open(sys.argv[1])); print(d["id"], hashlib.md5(d["v"].encode()).hexdigest())' \
    "$1" 2>&1 | tail -n 1 || true
}
pg_slow_sig() { psql_q "select id || ' ' || md5(v) from \"Slow\" where id = $1"; }
# bg_cat NAME FILE: cat FILE in the background into $T/NAME.out, its status into $T/NAME.rc.
bg_cat() {
  (rc=0; timeout 60 cat "$2" >"$T/$1.out" 2>&1 || rc=$?; echo "$rc" >"$T/$1.rc") &
  BG_PID=$!
  track_pid "$BG_PID"
}

# mkdir: it returns after 0.5 s while the load goes on (sync-status says loading); a reader
# started while it loads waits, then sees the loaded record.
started=$(now_ms)
mkdir "$SL" 2>"$T/slow-mkdir.err" &
mk_pid=$!
track_pid "$mk_pid"
sleep 1
mk_then=$(status_of "slow-$SLOW_ROWS" state)
bg_cat slow-r1 "$SL/Slow/3.json"
r1=$BG_PID
sleep 1
r1_then=$(alive "$r1" && echo waiting || echo done)
mk_later=$(status_of "slow-$SLOW_ROWS" state)
mk_rc=0; wait "$mk_pid" || mk_rc=$?
mk_ms=$(($(now_ms) - started))
wait "$r1" || true
log "mkdir slow-$SLOW_ROWS took $mk_ms ms"
check_eq "slow: mkdir M/slow-$SLOW_ROWS succeeds" "0 " "$mk_rc $(cat "$T/slow-mkdir.err")"
check "slow: the load took >= 2 s (PostgreSQL sleeps on every row; took $mk_ms ms)" test "$mk_ms" -ge 2000
check_eq "slow: the block was still loading when the reader started and 1 s later" "loading loading" "$mk_then $mk_later"
check_eq "slow: a read of M/slow-$SLOW_ROWS/Slow/3.json started during mkdir still waited 1 s later" waiting "$r1_then"
check_eq "slow: that read then returned the loaded record (not ENOENT)" "0 $(pg_slow_sig 3)" \
  "$(cat "$T/slow-r1.rc" 2>&1) $(slow_sig "$T/slow-r1.out")"
check_eq "slow: all $SLOW_ROWS rows are in SQLite" "$SLOW_ROWS" "$(records_of "slow-$SLOW_ROWS")"
check_eq "slow: sync-status after mkdir: state ready, load_rows and load_total $SLOW_ROWS" \
  "ready $SLOW_ROWS $SLOW_ROWS" \
  "$(status_of "slow-$SLOW_ROWS" state) $(status_of "slow-$SLOW_ROWS" load_rows) $(status_of "slow-$SLOW_ROWS" load_total)"

# echo 1 > invalidate: the reload's progress in sync-status, and a reader that waits for it in
# the daemon (the block's directory exists, so nothing holds the reader up in the kernel).
started=$(now_ms)
(rc=0; echo 1 >"$SL/invalidate" || rc=$?; echo "$rc" >"$T/slow-inv.rc") 2>"$T/slow-inv.err" &
inv=$!
track_pid "$inv"
obs="" r2="" r2_ms=0 r2_then=""
while alive "$inv" && (($(now_ms) - started < 60000)); do
  s=$(timeout 10 cat "$SL/sync-status" 2>/dev/null || true)
  st=$(awk '$1 == "state" {print $2}' <<<"$s")
  if [[ $st == loading ]]; then
    obs+=" $(awk '$1 == "load_rows" {print $2}' <<<"$s")/$(awk '$1 == "load_total" {print $2}' <<<"$s")"
    if [[ -z $r2 ]]; then
      bg_cat slow-r2 "$SL/Slow/7.json"
      r2=$BG_PID r2_ms=$(now_ms)
    fi
  fi
  if [[ -n $r2 && -z $r2_then ]] && (($(now_ms) - r2_ms >= 500)); then
    # the reader first, then the state: a reader alive while the block still loads waited
    r2_then="$(alive "$r2" && echo waiting || echo done) $(status_of "slow-$SLOW_ROWS" state)"
  fi
  sleep 0.05
done
wait "$inv" || true
[[ -z $r2 ]] || wait "$r2" || true
log "reload of slow-$SLOW_ROWS took $(($(now_ms) - started)) ms; load_rows/load_total seen:$obs"
check_eq "slow: echo 1 > invalidate succeeds" "0 " "$(cat "$T/slow-inv.rc" 2>&1) $(cat "$T/slow-inv.err")"
check "slow: sync-status showed state loading during the reload" test -n "$obs"
check_eq "slow: a read started during the reload was still waiting 0.5 s later, the block still loading" \
  "waiting loading" "$r2_then"
check_eq "slow: that read then returned the reloaded record (not ENOENT)" "0 $(pg_slow_sig 7)" \
  "$(cat "$T/slow-r2.rc" 2>&1) $(slow_sig "$T/slow-r2.out")"
# load_rows only grows and goes through several values; load_total is '-' while PostgreSQL
# counts, then the count, never anything else.
prog=$(awk -v n="$SLOW_ROWS" '
  { for (i = 1; i <= NF; i++) {
      split($i, a, "/"); r = a[1]; t = a[2]
      if (r !~ /^[0-9]+$/) { bad = bad " " $i; continue }
      if (r + 0 < last) down = 1
      last = r + 0
      if (r > 0 && r < n) mid[r] = 1
      if (t == "-") { if (known) bad = bad " " $i; dash = 1 }
      else if (t == n) known = 1
      else bad = bad " " $i
  } }
  END { m = 0; for (k in mid) m++
        printf "down=%d dash=%d known=%d mids>=3=%s bad=%s", down, dash, known, (m >= 3 ? "yes" : "no(" m ")"), bad }' <<<"$obs")
check_eq "slow: load_rows grew through several values, load_total went from '-' to $SLOW_ROWS" \
  "down=0 dash=1 known=1 mids>=3=yes bad=" "$prog"
check_eq "slow: after the reload: state ready, load_rows and load_total $SLOW_ROWS" \
  "ready $SLOW_ROWS $SLOW_ROWS" \
  "$(status_of "slow-$SLOW_ROWS" state) $(status_of "slow-$SLOW_ROWS" load_rows) $(status_of "slow-$SLOW_ROWS" load_total)"
check_eq "slow: all $SLOW_ROWS rows are back" "$SLOW_ROWS" "$(records_of "slow-$SLOW_ROWS")"
check "rmdir M/slow-$SLOW_ROWS succeeds" rmdir "$SL"

# ---------------------------------------------------------------------------------------------
# Control files, good and bad values (block free-x).

# ttl_refused LABEL BYTES: a write of BYTES to free-x/ttl is EINVAL and the value stays 120.
ttl_refused() {
  check "ttl: $1 is refused with EINVAL" einval put_raw "$F/ttl" "$2"
  check_eq "ttl: unchanged after $1" 120 "$(content "$F/ttl")"
}
check_eq "ttl: defaults to -o ttl=0" 0 "$(content "$F/ttl")"
check "ttl: printf 0 (no newline) is accepted" put_raw "$F/ttl" 0
check_eq "ttl: reads 0" 0 "$(content "$F/ttl")"
check "ttl: printf 120 (no newline) is accepted" put_raw "$F/ttl" 120
check_eq "ttl: reads 120" 120 "$(content "$F/ttl")"
check "ttl: echo 0 > ttl is accepted" put "$F/ttl" 0
check "ttl: echo 120 > ttl is accepted" bash -c "echo 120 > '$F/ttl'"
check_eq "ttl: holds exactly \"120\\n\"" "$(printf '120\n' | od -c)" "$(timeout 10 cat "$F/ttl" | od -c)"
check "ttl: stat size equals the bytes read" size_matches "$F/ttl"
ttl_refused "-1" '-1\n'
ttl_refused "abc" 'abc\n'
ttl_refused "1.5" '1.5\n'
ttl_refused "an empty line" '\n'
ttl_refused "' 5'" ' 5\n'
ttl_refused "'5 '" '5 \n'
ttl_refused "+5" '+5\n'
ttl_refused "99999999999999999999" '99999999999999999999\n'
ttl_refused "two newlines" '120\n\n'
check "ttl: a write at an offset is refused with EINVAL" \
  einval dd of="$F/ttl" bs=1 seek=1 conv=notrunc status=none <<<"5"
check_eq "ttl: unchanged after the write at an offset" 120 "$(content "$F/ttl")"
check "ttl: an open with O_TRUNC and no write succeeds" bash -c ": > '$F/ttl'"
check_eq "ttl: unchanged by an open with O_TRUNC and no write" 120 "$(content "$F/ttl")"

# A value split over two write() calls on one descriptor: each write() is taken as the whole
# value (fs/ops.c ctl_write, README "a write must be the whole value"), so the first sets the
# ttl and the second, at offset 2, is EINVAL. The two parts never join into one value.
cat >"$T/split_write.py" <<'PY'
# split_write.py FILE PART...: one open (O_WRONLY), one write() per PART, then close; prints
# what each call returned.
import errno, os, sys
fd, out = os.open(sys.argv[1], os.O_WRONLY), []
for part in sys.argv[2:]:
    try:
        out.append("wrote %d" % os.write(fd, part.encode()))
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
try:
    os.close(fd)
    out.append("closed")
except OSError as e:
    out.append("close " + errno.errorcode.get(e.errno, str(e.errno)))
print(", ".join(out))
PY
check_eq "ttl: '36' then '00\\n' in two write() calls: the first is the whole value, the second EINVAL" \
  "wrote 2, EINVAL, closed" "$(python3 "$T/split_write.py" "$F/ttl" 36 $'00\n' 2>&1)"
check_eq "ttl: reads 36 after the split write (never 3600)" 36 "$(content "$F/ttl")"
check_eq "ttl: '7200' then '\\n' in two write() calls: the first is the whole value, the second EINVAL" \
  "wrote 4, EINVAL, closed" "$(python3 "$T/split_write.py" "$F/ttl" 7200 $'\n' 2>&1)"
check_eq "ttl: reads 7200 after it" 7200 "$(content "$F/ttl")"

# Reads of ttl while another process rewrites it in a loop: always one whole value.
cat >"$T/ttl_race.py" <<'PY'
# ttl_race.py FILE N: a child process writes "3600\n" and "8640000\n" to FILE in turn (open with
# O_TRUNC, one write, close) while this one reads FILE N times. Prints a JSON summary.
import json, os, signal, sys, time
path, n = sys.argv[1], int(sys.argv[2])
values = [b"3600\n", b"8640000\n"]
rd, wr = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(rd)
    i = 0
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, values[i % 2])
            os.write(wr, b"w")
        except OSError:
            os.write(wr, b"E")
        os.close(fd)
        i += 1
os.close(wr)
time.sleep(0.05)
bad, seen = [], {}
for _ in range(n):
    with open(path, "rb") as f:
        v = f.read()
    if v in values:
        seen[v.decode().strip()] = seen.get(v.decode().strip(), 0) + 1
    else:
        bad.append(repr(v))
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
done = b""
while True:
    chunk = os.read(rd, 65536)
    if not chunk:
        break
    done += chunk
print(json.dumps({"reads": n, "writes": done.count(b"w"), "failed_writes": done.count(b"E"),
                  "seen": seen, "bad": bad[:10], "nbad": len(bad)}))
PY
race=$(timeout 60 python3 "$T/ttl_race.py" "$F/ttl" 200 2>&1 || true)
log "ttl race: $race"
check_eq "ttl: 200 reads while another process rewrites it: none torn or empty" "0 []" \
  "$(jq -rc '"\(.nbad) \(.bad)"' <<<"$race" 2>&1)"
check "ttl: the writer really rewrote it meanwhile (>= 20 writes, none failed)" \
  jq -e '.writes >= 20 and .failed_writes == 0' <<<"$race"
check "ttl: both values were read (the reads overlapped the writes)" \
  jq -e '(.seen | length) == 2' <<<"$race"
check "ttl: echo 120 > ttl after the race" put "$F/ttl" 120
check_eq "ttl: reads 120 again" 120 "$(content "$F/ttl")"

# invalidate
loaded=$(content "$F/invalidate")
check "invalidate: reads as a unix time" grep -qxE '[1-9][0-9]{9,}' <<<"$loaded"
check_eq "invalidate: holds exactly the time and a newline" "$(printf '%s\n' "$loaded" | od -c)" \
  "$(timeout 10 cat "$F/invalidate" | od -c)"
check "invalidate: stat size equals the bytes read" size_matches "$F/invalidate"
content "$F/User/1.json" >/dev/null
content "$F/User/2.json" >/dev/null
check_eq "invalidate: free-x holds 2 records before" 2 "$(records_of free-x)"
sleep 1.1   # so that a reload would show as a later time
for bad in '2' 'yes' '0' '11' '' '1 ' ' 1' '1\n\n' 'true'; do
  check "invalidate: '$bad\n' is refused with EINVAL" einval put_raw "$F/invalidate" "$bad\n"
done
check "invalidate: '2' without a newline is refused with EINVAL" einval put_raw "$F/invalidate" 2
check "invalidate: a write at an offset is refused with EINVAL" \
  einval dd of="$F/invalidate" bs=1 seek=1 conv=notrunc status=none <<<"1"
check_eq "invalidate: the refusals changed nothing (time)" "$loaded" "$(content "$F/invalidate")"
check_eq "invalidate: the refusals changed nothing (records)" 2 "$(records_of free-x)"
check "invalidate: printf 1 (no newline) is accepted" put_raw "$F/invalidate" 1
after=$(content "$F/invalidate")
check "invalidate: the load time moved forward ($loaded -> $after)" test "$after" -gt "$loaded"
check_eq "invalidate: free-x (no rule) is empty again" 0 "$(records_of free-x)"
sleep 1.1
check "invalidate: echo 1 > invalidate is accepted" bash -c "echo 1 > '$F/invalidate'"
check "invalidate: the load time moved forward again" test "$(content "$F/invalidate")" -gt "$after"

# sync-status
s=$(content "$F/sync-status")
check "sync-status: every line is \"key value\"" test -z "$(grep -vE '^[a-z_]+ .+$' <<<"$s")"
check "sync-status: has a state line" grep -qE '^state (ready|loading|expired)$' <<<"$s"
check "sync-status: a write fails" fails_with "" put "$F/sync-status" "pending 0"
# README: sync-status is read-only. fs/ops.c refuses opening it for writing with EACCES.
cat >"$T/open_errno.py" <<'PY'
# open_errno.py FILE: for O_WRONLY, O_RDWR and O_WRONLY|O_TRUNC, the errno's name of open(), or
# what a write() after it returned.
import errno, os, sys
out = []
for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
    try:
        fd = os.open(sys.argv[1], flags)
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
        continue
    try:
        os.write(fd, b"pending 0\n")
        out.append("opened-and-written")
    except OSError as e:
        out.append("opened-write-" + errno.errorcode.get(e.errno, str(e.errno)))
    os.close(fd)
print(" ".join(out))
PY
check_eq "sync-status: opening it for writing is EACCES (O_WRONLY, O_RDWR, O_TRUNC)" "EACCES EACCES EACCES" \
  "$(python3 "$T/open_errno.py" "$F/sync-status" 2>&1)"
check "sync-status: echo > sync-status fails with 'Permission denied'" \
  fails_with "Permission denied" put "$F/sync-status" "pending 0"
check "sync-status: still readable after the refused write" grep -q '^pending ' <<<"$(content "$F/sync-status")"
check "sync-status: stat size equals the bytes read" wait_for 5 size_matches "$F/sync-status"
check "a record: stat size equals the bytes read" size_matches "$U1/User/1.json"

# ---------------------------------------------------------------------------------------------
# Invalidate with unsynced writes (Redis down: writes stay pending, PostgreSQL is up)

content "$U2/Order/20.json" >/dev/null
psql_q "update \"User\" set name = 'pg-side-2' where id = 2; update \"Order\" set status = 'pg-changed' where id = 20" >/dev/null
stop_redis
check "redis down: a write to user-2/User/2.json is accepted" put "$U2/User/2.json" '{"name":"unsynced-2"}'
check "redis down: the write is pending" test "$(status_of user-2 pending)" -ge 1
check "redis down: echo 1 > invalidate succeeds" put "$U2/invalidate" 1
check_eq "redis down: the unsynced write survives invalidate" unsynced-2 "$(jq -r .name "$U2/User/2.json" 2>&1)"
check_eq "redis down: synced data was reloaded fresh (Order 20)" pg-changed "$(jq -r .status "$U2/Order/20.json" 2>&1)"
check_eq "redis down: the loader's orders are back" "$newest" "$(listing "$U2/Order")"
start_redis
check "redis back: the write reaches PostgreSQL" wait_for 30 pg_is unsynced-2 'select name from "User" where id = 2'
check "redis back: user-2 has nothing pending" wait_for 15 pending_is_zero user-2

# ---------------------------------------------------------------------------------------------
# PostgreSQL down: loads fail, expiry waits for the outbox, rmdir hides a block whose write is
# pending, invalidate keeps unsynced writes. Then PostgreSQL comes back: everything syncs, the
# removed block's file goes, user-1 expires.

R=$MNT/rm-1
require "mkdir M/rm-1 (no rule)" mkdir "$R"
check_eq "user-1: the cached User/1.json before the outage" "Ada Lovelace" "$(jq -r .name "$U1/User/1.json" 2>&1)"
stop_postgres fast
mark_log
check "pg down: mkdir M/user-3 fails with EIO" fails_with "Input/output error" timeout 60 mkdir "$MNT/user-3"
check "pg down: user-3 is not listed" not_listed user-3
check "pg down: user-3 left nothing in the data directory" no_trace user-3

check "pg down: a write to user-1/User/1.json is accepted" put "$U1/User/1.json" '{"name":"offline-1"}'
check_eq "pg down: it reads back (and sits in the kernel's page cache)" offline-1 "$(jq -r .name "$U1/User/1.json" 2>&1)"
check "pg down: echo 1 > user-1/ttl is accepted" put "$U1/ttl" 1
ttl_set=$(now_ms)

check "pg down: a new record in rm-1 is accepted" put "$R/User/77.json" '{"id":77,"email":"rm77@example.com"}'
check "pg down: rmdir M/rm-1 with a pending write succeeds" rmdir "$R"
check "pg down: rm-1 is no longer listed" not_listed rm-1
check "pg down: M/rm-1/User/77.json is gone for the user" fails_with "No such file or directory" cat "$R/User/77.json"
check "pg down: rm-1's SQLite file stays until its write is in PostgreSQL" test -f "$DATA/rm-1.sqlite"
check "pg down: mkdir M/rm-1 again is EBUSY while the old one's write is pending" \
  fails_with "Device or resource busy" mkdir "$R"

check "pg down: a write to user-2/User/2.json is accepted" put "$U2/User/2.json" '{"name":"offline-2"}'
inv_rc=0; timeout 15 bash -c "echo 1 > '$U2/invalidate'" 2>"$T/inv.err" || inv_rc=$?
check "pg down: echo 1 > invalidate does not hang" test "$inv_rc" != 124
log "pg down: echo 1 > user-2/invalidate: status $inv_rc $(cat "$T/inv.err")"
check_eq "pg down: the unsynced write survives invalidate" offline-2 "$(jq -r .name "$U2/User/2.json" 2>&1)"

# user-1 (ttl 1) is idle for 3 s with a pending write: it must keep its records
wait_ms=$((3000 - ($(now_ms) - ttl_set)))
((wait_ms <= 0)) || sleep "$((wait_ms / 1000)).$(printf '%03d' $((wait_ms % 1000)))"
check "pg down: user-1 still has a pending write (outbox)" test "$(sq user-1 'select count(*) from outbox')" -ge 1
check_eq "pg down: user-1, idle past its ttl with a pending write, keeps its records" 3 "$(records_of user-1)"

_pg_start
check "pg back: user-1's write reaches PostgreSQL" wait_for 30 pg_is offline-1 'select name from "User" where id = 1'
check "pg back: user-1's outbox empties" wait_for 30 outbox_is_zero user-1
check "pg back: user-1 then expires (its records are dropped)" wait_for 20 records_are user-1 0
check_eq "expired: sync-status says state expired" expired "$(status_of user-1 state)"
check "expired: user-1 is still listed" listed user-1
check_eq "expired: its SQLite file is still there" yes "$(test -f "$DATA/user-1.sqlite" && echo yes)"
psql_q "update \"User\" set name = 'fresh-1' where id = 1" >/dev/null
name=$(jq -r .name "$U1/User/1.json" 2>&1 || true)
ttl_rc=0; put "$U1/ttl" 0 || ttl_rc=$?   # right away, so that it does not expire again
check_eq "expired: the next read reloads the block and shows fresh data, not the cached page" fresh-1 "$name"
check_eq "expired: echo 0 > ttl after the reload is accepted" 0 "$ttl_rc"
check_eq "expired: state ready after the reload" ready "$(status_of user-1 state)"
check_eq "expired: the loader ran again (Order rows back)" "10.json 11.json" "$(listing "$U1/Order")"
check_eq "expired: 3 records after the reload" 3 "$(records_of user-1)"

check "pg back: the removed rm-1's write reaches PostgreSQL" wait_for 30 pg_is 1 'select count(*) from "User" where id = 77'
check "pg back: then rm-1's SQLite file goes" wait_for 15 no_trace rm-1
check "rm-1 is still not listed" not_listed rm-1
check "mkdir M/rm-1 works again, empty" mkdir "$R"
check_eq "the new rm-1 holds nothing of the old one" 0 "$(records_of rm-1)"
check "rmdir M/rm-1 (nothing pending) succeeds" rmdir "$R"
check "rm-1's SQLite file is gone" no_trace rm-1
check "pg back: user-2's write reaches PostgreSQL" wait_for 30 pg_is offline-2 'select name from "User" where id = 2'
check_eq "pg back: user-2 shows it" offline-2 "$(jq -r .name "$U2/User/2.json" 2>&1)"

# ---------------------------------------------------------------------------------------------
# Kernel cache: after invalidate, cat shows the new content at once.

U3=$MNT/user-3
check "mkdir M/user-3 now succeeds" mkdir "$U3"
check_eq "user-3: loaded its User" 1 "$(records_of user-3 User)"
content "$U3/User/3.json" >/dev/null
check_eq "user-3: User/3.json has no name" null "$(jq -r .name "$U3/User/3.json" 2>&1)"
psql_q "update \"User\" set name = 'kernel-cache-new' where id = 3" >/dev/null
check "user-3: echo 1 > invalidate" put "$U3/invalidate" 1
check_eq "user-3: cat shows the new value at once" kernel-cache-new "$(jq -r .name "$U3/User/3.json" 2>&1)"
check "user-3: stat size equals the bytes read after the change" size_matches "$U3/User/3.json"

# ---------------------------------------------------------------------------------------------
# Records PostgreSQL rewrites (Note: a trigger and a default): stat's size follows the refresh.
# TTL is idle time: reads and writes keep a block, an idle one expires, and after the reload
# stat's size is right again. rmdir deletes a block's settings; rm -r removes a block.

I=$MNT/idle-1
note_pg() { psql_q "select row_to_json(t) from \"Note\" t where id = $1" | jq -cS . 2>&1 || true; }
note_file() { timeout 10 jq -cS . "$1" 2>&1 || true; }
require "mkdir M/idle-1 (no rule)" mkdir "$I"

# a new record, refreshed from PostgreSQL's answer: the trigger's body, rev and the default tag
stop_redis
check "refresh: a new Note/60.json {id, body} is accepted (Redis down: it stays pending)" \
  put "$I/Note/60.json" '{"id":60,"body":"hi"}'
check "refresh: while pending, stat size equals the bytes cat returns" size_matches "$I/Note/60.json"
start_redis
_note_is_pg() { local f; f=$(note_file "$I/Note/$1.json"); [[ $f == "$(note_pg "$1")" && $f == *"$2"* ]]; }
check "refresh: once synced, Note/60.json is the row as PostgreSQL rewrote it (trigger, default)" \
  wait_for 30 _note_is_pg 60 filled-in-by-a-postgresql-default
check "refresh: stat size equals the bytes cat returns after the refresh" size_matches "$I/Note/60.json"
check "refresh: an update {body} is accepted" put "$I/Note/60.json" '{"body":"second"}'
timeout 10 stat -c %s "$I/Note/60.json" >/dev/null 2>&1 || true   # the kernel may keep this size
check "refresh: once synced, Note/60.json is PostgreSQL's rewrite of the update" \
  wait_for 30 _note_is_pg 60 '"body":"second (seen by postgres)'
check "refresh: stat size equals the bytes cat returns after the update's refresh" size_matches "$I/Note/60.json"

# reads keep the block: ttl 2, a read every 0.5 s for 4 s
check_eq "idle-1: read-through of Note/1.json" "$(note_pg 1)" "$(note_file "$I/Note/1.json")"
check "idle-1: echo 2 > ttl" put "$I/ttl" 2
held=$(records_of idle-1)
off=""
for ((k = 0; k < 8; k++)); do
  content "$I/Note/1.json" >/dev/null
  sleep 0.5
  st=$(status_of idle-1 state)   # control files do not count as use
  [[ $st == ready ]] || off+=" $k:$st"
done
check_eq "ttl 2: a block read every 0.5 s for 4 s never expired (state ready throughout)" "" "$off"
check_eq "ttl 2: it kept its records ($held)" "$held" "$(records_of idle-1)"
# writes keep it too: a write every 0.5 s for 3 s (each is synced within the gap)
off=""
for ((k = 0; k < 6; k++)); do
  put "$I/Note/52.json" "{\"id\":52,\"body\":\"w$k\"}" || off+=" $k:write-failed"
  sleep 0.5
  st=$(status_of idle-1 state)
  [[ $st == ready ]] || off+=" $k:$st"
done
check_eq "ttl 2: a block written every 0.5 s for 3 s never expired" "" "$off"
check_eq "ttl 2: it kept its records and the new one" "$((held + 1))" "$(records_of idle-1)"
# idle: it expires, but not before its ttl. The last use is a cat (an open always reaches the
# daemon; a stat may be answered from the kernel's cache).
timeout 10 stat -c %s "$I/Note/60.json" >/dev/null 2>&1 || true   # the kernel may keep this size
content "$I/Note/1.json" >/dev/null
idle_from=$(now_ms)
check "ttl 2: left idle, idle-1 expires (its records are dropped)" wait_for 20 records_are idle-1 0
idle_ms=$(($(now_ms) - idle_from))
log "idle-1 expired $idle_ms ms after its last use"
check "ttl 2: not before it was idle for about its ttl (${idle_ms} ms)" test "$idle_ms" -ge 1500
check "ttl 2: sync-status says state expired" wait_for 5 state_is idle-1 expired
check "ttl 2: no write was pending when it expired" pending_is_zero idle-1

# expired, then reloaded: the row changed in PostgreSQL meanwhile (a longer body)
psql_q "update \"Note\" set body = repeat('longer ', 30) where id = 60" >/dev/null
check "after expiry: stat size equals the bytes cat returns (the row grew meanwhile)" size_matches "$I/Note/60.json"
check_eq "after expiry: Note/60.json is PostgreSQL's row" "$(note_pg 60)" "$(note_file "$I/Note/60.json")"
check "after expiry: echo 555 > ttl" put "$I/ttl" 555
check_eq "after expiry: state ready after the reload" ready "$(status_of idle-1 state)"

# rmdir deletes the block's settings: a new block of the same id has the mount's default ttl
check "idle-1: nothing pending" wait_for 15 pending_is_zero idle-1
check "rmdir M/idle-1 (nothing pending) succeeds" rmdir "$I"
check "idle-1's SQLite file is gone" wait_for 10 no_trace idle-1
check "mkdir M/idle-1 again" mkdir "$I"
check_eq "the new idle-1's ttl is the mount's default (0), not the old block's 555" 0 "$(content "$I/ttl")"
check_eq "the new idle-1 holds nothing of the old one" 0 "$(records_of idle-1)"
check "rmdir M/idle-1 again" rmdir "$I"

# rm -r of a block with nothing pending (and no records) removes it
RR=$MNT/rmr-1
require "mkdir M/rmr-1 (no rule)" mkdir "$RR"
rm_rc=0; rm_out=$(timeout 30 rm -r "$RR" 2>&1) || rm_rc=$?
check_eq "rm -r M/rmr-1 (nothing pending) succeeds" "0 " "$rm_rc $(head -c 400 <<<"$rm_out")"
check "rmr-1 is no longer listed after rm -r" not_listed rmr-1
check "rmr-1's SQLite file is gone after rm -r" wait_for 10 no_trace rmr-1
if listed rmr-1; then rmdir "$RR" 2>/dev/null || true; fi   # leave the later checks a clean mount

# rm -r of a block holding records drops the local copy only: no row is deleted in PostgreSQL,
# and a write still pending when rm -r runs reaches PostgreSQL (the block retires). A plain rm
# of one record still deletes its row.
RR=$MNT/rmr-2
require "mkdir M/rmr-2 (no rule)" mkdir "$RR"
check "rmr-2: a record 4401 is written" put "$RR/User/4401.json" '{"id":4401,"email":"r4401@example.com"}'
check "rmr-2: a record 4402 is written" put "$RR/User/4402.json" '{"id":4402,"email":"r4402@example.com"}'
check "rmr-2: both reach PostgreSQL" wait_for 30 pg_is 2 'select count(*) from "User" where id in (4401, 4402)'
check "rmr-2: nothing pending" wait_for 15 pending_is_zero rmr-2
check "rmr-2: rm of 4402.json alone deletes its row" rm "$RR/User/4402.json"
check "rmr-2: 4402 leaves PostgreSQL" wait_for 30 pg_is 0 'select count(*) from "User" where id = 4402'
stop_redis
check "rmr-2 (redis down): a write to 4403 is accepted and stays pending" \
  put "$RR/User/4403.json" '{"id":4403,"email":"r4403@example.com"}'
rm_rc=0; rm_out=$(timeout 30 rm -r "$RR" 2>&1) || rm_rc=$?
check_eq "rm -r M/rmr-2 (records, one write pending) succeeds" "0 " "$rm_rc $(head -c 400 <<<"$rm_out")"
check "rmr-2 is no longer listed after rm -r" not_listed rmr-2
check_eq "rm -r deleted no row in PostgreSQL (4401 is still there)" 1 \
  "$(psql_q 'select count(*) from "User" where id = 4401')"
start_redis
check "the pending write of the removed rmr-2 still reaches PostgreSQL" \
  wait_for 30 pg_is 1 'select count(*) from "User" where id = 4403'
check "then rmr-2's SQLite file goes" wait_for 15 no_trace rmr-2
check_eq "4401 is still in PostgreSQL after all of it" 1 "$(psql_q 'select count(*) from "User" where id = 4401')"

# ---------------------------------------------------------------------------------------------
# The metrics file

PY=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import prometheus_client.parser' 2>/dev/null; then PY=$p; break; fi
done
cat >"$T/prom.py" <<'EOF'
import json, math, re, sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
problems = []
if not text.endswith("\n"):
    problems.append("does not end with a newline")
helps, types = set(), {}
name_re = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
for n, line in enumerate(text.split("\n")[:-1], 1):
    if line.startswith("# HELP "):
        parts = line.split(" ", 3) + [""]
        if len(parts) < 5 or not parts[3].strip():
            problems.append(f"line {n}: HELP without text")
        helps.add(parts[2])
    elif line.startswith("# TYPE "):
        parts = line.split(" ")
        if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
            problems.append(f"line {n}: bad TYPE line: {line}")
        else:
            types[parts[2]] = parts[3]
    elif line.startswith("#") or line == "":
        continue
    else:
        m = name_re.match(line)
        name = m.group(0) if m else ""
        cands = [name] + [name[: -len(s)] for s in ("_bucket", "_sum", "_count") if name.endswith(s)]
        if not any(c in types for c in cands):
            problems.append(f"line {n}: sample {name!r} has no TYPE line before it")
        if not any(c in helps for c in cands):
            problems.append(f"line {n}: sample {name!r} has no HELP line before it")
families, samples = {}, {}
for f in text_string_to_metric_families(text):
    families[f.name] = {"type": f.type, "help": f.documentation}
    for s in f.samples:
        if math.isnan(s.value) or math.isinf(s.value):
            problems.append(f"{s.name}: value {s.value}")
        samples[s.name] = samples.get(s.name, 0) + s.value
print(json.dumps({"families": families, "samples": samples, "problems": problems}))
EOF

# metrics_parse: parse M/metrics into $T/metrics.json; fails with the parser's error.
metrics_parse() {
  timeout 10 cat "$MNT/metrics" >"$T/metrics.txt" || return 1
  "$PY" "$T/prom.py" "$T/metrics.txt" >"$T/metrics.json" 2>"$T/metrics.err" || { cat "$T/metrics.err"; return 1; }
}
# metric SAMPLE: the sample's value (summed over labels), or "missing".
metric() { jq -r --arg n "$1" '.samples[$n] // "missing"' "$T/metrics.json" 2>/dev/null || echo missing; }
metric_int() { jq -r --arg n "$1" '.samples[$n] // "missing" | if type == "number" then floor else . end' "$T/metrics.json" 2>/dev/null || echo missing; }
gt() { [[ $1 =~ ^[0-9.e+-]+$ && $2 =~ ^[0-9.e+-]+$ ]] && awk -v a="$1" -v b="$2" 'BEGIN {exit !(a + 0 > b + 0)}'; }

check "metrics: M/metrics is a regular file" test -f "$MNT/metrics"
check "metrics: ls M lists it" grep -qx metrics <<<"$(timeout 10 ls "$MNT")"
check_fails "metrics: mkdir M/metrics fails" mkdir "$MNT/metrics"
check_fails "metrics: a write to M/metrics fails" put "$MNT/metrics" "x"
check_fails "metrics: rm M/metrics fails" rm -f "$MNT/metrics"
check "metrics: still there after those" test -f "$MNT/metrics"
check "metrics: stat size equals the bytes read" wait_for 5 size_matches "$MNT/metrics"
if [[ -z $PY ]]; then
  _fail "metrics: python3 with prometheus_client is available (apt-get install python3-prometheus-client)"
else
  check "everything is synced before reading metrics" wait_for 20 all_synced
  check "metrics: prometheus_client parses M/metrics" metrics_parse
fi
if [[ -n $PY ]] && ((CHECK_RC == 0)); then
  check_eq "metrics: no format problems" "" "$(jq -r '.problems[]' "$T/metrics.json" 2>&1)"
  for m in sharded_blocks:gauge sharded_records:gauge sharded_pending_writes:gauge \
           sharded_applied_writes:counter sharded_dead_letters:counter \
           sharded_sync_lag_seconds:gauge sharded_cache_hits:counter sharded_cache_misses:counter; do
    name=${m%%:*} type=${m#*:}
    check_eq "metrics: $name is a $type with HELP" "$type yes" \
      "$(jq -r --arg n "$name" '.families[$n] | if . == null then "missing" else "\(.type) \(if .help != "" then "yes" else "no" end)" end' "$T/metrics.json" 2>&1)"
  done
  check_eq "metrics: sharded_blocks equals the blocks listed" "$(blocks | wc -l)" "$(metric_int sharded_blocks)"
  total=0
  while read -r b; do
    [[ -n $b ]] || continue
    n=$(records_of "$b")
    if [[ $n =~ ^[0-9]+$ ]]; then total=$((total + n)); fi
  done <<<"$(blocks)"
  check_eq "metrics: sharded_records equals the records in the blocks' SQLite files" "$total" "$(metric_int sharded_records)"
  check_eq "metrics: sharded_pending_writes is 0 when all is synced" 0 "$(metric_int sharded_pending_writes)"
  check "metrics: sharded_applied_writes_total counts the writes applied so far (>= 3)" \
    test "$(metric_int sharded_applied_writes_total)" -ge 3
  check_eq "metrics: sharded_dead_letters_total is 0" 0 "$(metric_int sharded_dead_letters_total)"
  check "metrics: sharded_sync_lag_seconds is >= 0" gt "$(metric sharded_sync_lag_seconds)" -1

  misses0=$(metric sharded_cache_misses_total)
  check_eq "metrics: read-through of free-x/Order/11.json" 11 "$(jq -r .id "$F/Order/11.json" 2>&1)"
  metrics_parse || true
  misses1=$(metric sharded_cache_misses_total) hits1=$(metric sharded_cache_hits_total)
  check "metrics: cache misses grew after reading an uncached record ($misses0 -> $misses1)" gt "$misses1" "$misses0"
  check_eq "metrics: free-x/Order/11.json again" 11 "$(jq -r .id "$F/Order/11.json" 2>&1)"
  metrics_parse || true
  hits2=$(metric sharded_cache_hits_total) misses2=$(metric sharded_cache_misses_total)
  check "metrics: cache hits grew after reading it again ($hits1 -> $hits2)" gt "$hits2" "$hits1"
  check_eq "metrics: no miss for the cached read" "$misses1" "$misses2"

  applied0=$(metric_int sharded_applied_writes_total)
  stop_redis
  check "metrics: a write while Redis is down" put "$F/User/1.json" '{"name":"metrics-1"}'
  metrics_parse || true
  check "metrics: sharded_pending_writes counts it" test "$(metric_int sharded_pending_writes)" -ge 1
  start_redis
  check "metrics: the write is synced" wait_for 30 pg_is metrics-1 'select name from "User" where id = 1'
  _metrics_drained() { metrics_parse && [[ $(metric_int sharded_pending_writes) == 0 ]]; }
  check "metrics: sharded_pending_writes back to 0" wait_for 15 _metrics_drained
  check "metrics: sharded_applied_writes_total grew" test "$(metric_int sharded_applied_writes_total)" -gt "$applied0"
fi

# ---------------------------------------------------------------------------------------------
# ttl survives a remount; -o ttl= is the default for blocks without their own value.

check "free-x: echo 3600 > ttl" put "$F/ttl" 3600
before=$(blocks | tr '\n' ' ')
if unmount_sharded; then _pass "unmount: the daemon exits cleanly"; else _fail "unmount: the daemon exits cleanly"; fi
mount_sharded "loaders=$RULES,ttl=7"
check_eq "remount: the same blocks are listed" "$before" "$(blocks | tr '\n' ' ')"
check_eq "remount: free-x keeps its own ttl 3600" 3600 "$(content "$F/ttl")"
check_eq "remount: user-1 keeps its own ttl 0 (default is now 7)" 0 "$(content "$U1/ttl")"
check_eq "remount: user-3 (no own ttl) takes the new default 7" 7 "$(content "$U3/ttl")"
check_eq "remount: user-2's data is still there" offline-2 "$(jq -r .name "$U2/User/2.json" 2>&1)"
check_eq "remount: user-1's records are still there" 3 "$(records_of user-1)"
if unmount_sharded; then _pass "unmount again: the daemon exits cleanly"; else _fail "unmount again: the daemon exits cleanly"; fi

finish

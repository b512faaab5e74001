#!/usr/bin/env bash
# Change capture: rows changed in PostgreSQL by anyone (psql, another node's sync) reach every
# node that holds them. Two daemons (nodes a and b) share one PostgreSQL and one Redis and both
# hold block user-1 (tools/sample-loaders.rules: the user, their orders, their events) after
# `sharded capture install`.
#   - psql UPDATE, INSERT (an Order of user 1: the loader rule takes it) and DELETE show on
#     both nodes within 1 s (measured);
#   - a write through node a shows on node b after a's sync applied it: p50/p99 over 100 writes;
#   - read-your-writes: while node b's write waits (its apply lock held), a psql UPDATE of that record
#     does not replace b's value on b, and b's write then wins in PostgreSQL;
#   - the listener's connection cut (pg_terminate_backend) and new connections refused while
#     rows change: after it reconnects, both nodes show what PostgreSQL holds;
#   - a TRUNCATE empties the table in both nodes' blocks;
#   - `sharded capture remove` leaves no trigger, function or schema; the application's writes
#     work with and without capture, and their rate with and without it is printed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib.sh"

SHARDED=$SHARDED_BUILD_DIR/sharded
setup_tmp
start_postgres
start_redis
load_sample_schema

# writes/s of the application's own single-row UPDATEs (4 clients, 2 s), for the cost of capture
app_rate() {
  "$PGBIN/pgbench" -n -c 4 -T 2 -f "$T/app.sql" 2>/dev/null | sed -n 's/^tps = \([0-9]*\).*/\1/p'
}
psql_q 'create table app_bench (id int primary key, n int not null);
        insert into app_bench select g, 0 from generate_series(1, 1000) g' >/dev/null
printf '\\set id random(1, 1000)\nupdate app_bench set n = n + 1 where id = :id;\n' >"$T/app.sql"
# ms of one UPDATE of all 1000 rows of app_bench (best of 3)
bulk_ms() {
  local i
  for i in 1 2 3; do
    "$PGBIN/psql" -qtAX -c '\timing on' -c 'update app_bench set n = n + 1' </dev/null |
      sed -n 's/^Time: \([0-9.]*\).*/\1/p'
  done | sort -n | head -n 1
}
RATE_OFF=$(app_rate)
BULK_OFF=$(bulk_ms)

check "sharded capture install" "$SHARDED" capture install --pg "$PG_URL"
check "sharded capture install again (idempotent)" "$SHARDED" capture install --pg "$PG_URL"
check_eq "three statement triggers and a truncate trigger per table (4 tables)" 16 \
  "$(psql_q "select count(*) from pg_trigger where tgname like 'sharded_capture%'")"
RATE_ON=$(app_rate)
BULK_ON=$(bulk_ms)
echo "# application writes/s (pgbench, single-row UPDATE, 4 clients): without capture $RATE_OFF," \
  "with $RATE_ON (ratio $(awk -v a="$RATE_ON" -v b="$RATE_OFF" 'BEGIN{printf "%.2f", b ? a/b : 0}'))"
echo "# one UPDATE of 1000 rows: without capture $BULK_OFF ms, with $BULK_ON ms"
check "the application's writes work with capture" psql_q 'update app_bench set n = n + 1'

declare -A NODE_MNT NODE_PID
mount_node() {
  MNT=$T/mnt-$1 DATA=$T/data-$1 mount_sharded "node=n$1,loaders=$SHARDED_SOURCE_DIR/tools/sample-loaders.rules"
  NODE_MNT[$1]=$MNT NODE_PID[$1]=$DAEMON_PID
}
mount_node a
mount_node b
for n in a b; do mkdir "${NODE_MNT[$n]}/user-1"; done
listening() { grep -q '^capture up' "${NODE_MNT[$1]}/user-1/sync-status"; }
for n in a b; do check "node $n listens" wait_for 10 listening "$n"; done

now_us() { echo "${EPOCHREALTIME/./}"; }
name_is() { [[ $(jq -r .name "${NODE_MNT[$1]}/user-1/User/1.json" 2>/dev/null) == "$2" ]]; }
listed() { ls "${NODE_MNT[$1]}/user-1/Order" | grep -qx "$2.json"; }
absent() { ! ls "${NODE_MNT[$1]}/user-1/Order" | grep -qx "$2.json" && ! test -e "${NODE_MNT[$1]}/user-1/Order/$2.json"; }

# seen WHAT CMD...: CMD (given the node) holds on both nodes within 1 s of now; prints the time
seen() {
  local what=$1 start n ms
  shift
  start=$(now_us)
  for n in a b; do
    ms=-1
    wait_for 2 "$@" "$n" && ms=$((($(now_us) - start) / 1000))
    echo "# $what on node $n: $ms ms"
    check "$what: seen on node $n within 1 s ($ms ms; -1: not in 2 s)" test "$ms" -ge 0 -a "$ms" -le 1000
  done
}

# cat both first, so that the kernel caches the file and must be told
for n in a b; do name_is "$n" "Ada Lovelace" || true; done
psql_q "update \"User\" set name = 'Ada King' where id = 1" >/dev/null
name_king() { name_is "$1" "Ada King"; }
seen "psql UPDATE" name_king

for n in a b; do listed "$n" 12 || true; done
psql_q "insert into \"Order\" (id, \"userId\", total) values (12, 1, 5)" >/dev/null
listed_12() { listed "$1" 12; }
seen "psql INSERT of an order of user 1" listed_12
check_eq "the new order's content on node b" 5 "$(jq -r .total "${NODE_MNT[b]}/user-1/Order/12.json")"

for n in a b; do cat "${NODE_MNT[$n]}/user-1/Order/11.json" >/dev/null; done
psql_q 'delete from "Order" where id = 11' >/dev/null
absent_11() { absent "$1" 11; }
seen "psql DELETE" absent_11

# an UPDATE of a key: the old name goes, the new one comes
psql_q 'update "Order" set id = 14 where id = 12' >/dev/null
moved() { absent "$1" 12 && listed "$1" 14; }
seen "psql UPDATE of a key" moved

# commits out of order: a transaction that changed a row first (a lower id in the changes
# table) commits after another that changed a row later and was read by a poll meanwhile;
# a poll that only read ids above the last it saw would never see the first
psql_q "begin; update \"Order\" set total = 77 where id = 14; select pg_sleep(1.5); commit" \
  >/dev/null &
SLOW_PID=$!
sleep 0.5
psql_q "update \"User\" set name = 'Ada Late' where id = 1" >/dev/null
name_late() { name_is "$1" "Ada Late"; }
seen "an UPDATE committed while an earlier transaction is open" name_late
wait "$SLOW_PID"
total_77() { [[ $(jq -r .total "${NODE_MNT[$1]}/user-1/Order/14.json" 2>/dev/null) == 77 ]]; }
seen "the earlier transaction, committed after the later one was read" total_77

# a write through node a, visible on node b once a's sync applied it
lat=()
unseen=0
for i in $(seq 1 100); do
  start=$(now_us)
  echo "{\"name\": \"w$i\"}" >"${NODE_MNT[a]}/user-1/User/1.json"
  wait_for 5 name_is b "w$i" || unseen=$((unseen + 1))
  lat+=($((($(now_us) - start) / 1000)))
done
check_eq "every one of the 100 writes on node a became visible on node b within 5 s" 0 "$unseen"
read -r P50 P99 MAX < <(printf '%s\n' "${lat[@]}" | sort -n |
  awk '{v[NR] = $1} END {print v[int(NR * 0.5)], v[int(NR * 0.99)], v[NR]}')
echo "# write on node a to visible on node b (incl. a's sync): p50 $P50 ms, p99 $P99 ms, max $MAX ms"
check "node b shows node a's last write" name_is b w100
# the goal is 100 ms on an idle machine; the bound is loose for a loaded one
check "cross-node visibility p99 under 3 s ($P99 ms)" test "$P99" -lt 3000

# read-your-writes on node b: a session holds block user-1's advisory lock, which every apply
# of the block takes (core/pg.c lock_block), so b's write stays pending while psql updates
# the record and commits
psql_q "select pg_advisory_lock(hashtext('sharded_applied'), hashtext('user-1')), pg_sleep(4)" \
  >/dev/null &
LOCK_PID=$!
locked() { [[ $(psql_q "select count(*) from pg_locks where locktype = 'advisory' and granted") -ge 1 ]]; }
check "a session holds the block's apply lock" wait_for 5 locked
echo '{"name": "mine"}' >"${NODE_MNT[b]}/user-1/User/1.json"
check_eq "node b's write is pending" 1 "$(awk '$1 == "pending" {print $2}' "${NODE_MNT[b]}/user-1/sync-status")"
psql_q "update \"User\" set name = 'theirs' where id = 1" >/dev/null
kept() { grep -Eq '^sharded_remote_changes_kept_total [1-9]' "${NODE_MNT[b]}/metrics"; }
check "node b was told of the psql UPDATE and kept its own write" wait_for 3 kept
check_eq "node b still shows its pending write" mine "$(jq -r .name "${NODE_MNT[b]}/user-1/User/1.json")"
wait "$LOCK_PID" || true
pg_mine() { [[ $(psql_q 'select name from "User" where id = 1') == mine ]]; }
check "node b's write reaches PostgreSQL after the psql UPDATE" wait_for 15 pg_mine
name_mine() { name_is "$1" mine; }
check "node a converges on node b's write" wait_for 5 name_mine a

# the listener cut off while rows change: no new connection is let in meanwhile, so nothing
# but the revalidation after reconnecting can bring the changes
allow() {
  echo "\\! PGDATABASE=postgres $PGBIN/psql -qtAX -c 'alter database sharded_test allow_connections $1'"
}
{
  allow false
  echo "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'sharded-capture';"
  echo "update \"User\" set name = 'while cut' where id = 1;"
  echo "insert into \"Order\" (id, \"userId\", total) values (13, 1, 7);"
  echo 'delete from "Order" where id = 10;'
  echo 'select pg_sleep(1.5);'
  allow true
} >"$T/cut.sql"
check_eq "both listeners cut off while rows change" 2 \
  "$("$PGBIN/psql" -qtAX -v ON_ERROR_STOP=1 -f "$T/cut.sql" </dev/null)"
name_cut() { name_is "$1" "while cut"; }
listed_13() { listed "$1" 13; }
absent_10() { absent "$1" 10; }
for n in a b; do
  check "node $n listens again" wait_for 10 listening "$n"
  check "node $n: the UPDATE made while it was cut off" wait_for 5 name_cut "$n"
  check "node $n: the INSERT made while it was cut off" wait_for 5 listed_13 "$n"
  check "node $n: the DELETE made while it was cut off" wait_for 5 absent_10 "$n"
done
grep -E '^sharded_(capture|remote)' "${NODE_MNT[b]}/metrics" | sed 's/^/# node b: /'

# a TRUNCATE names no key: every open block reloads
for n in a b; do ls "${NODE_MNT[$n]}/user-1/Event" >/dev/null; done
psql_q 'truncate "Event"' >/dev/null
no_events() { [[ -z $(ls "${NODE_MNT[$1]}/user-1/Event") ]]; }
seen "psql TRUNCATE" no_events

# capture removed: nothing left behind, the nodes say so, the application's writes work
check "sharded capture remove" "$SHARDED" capture remove --pg "$PG_URL"
check "sharded capture remove again (idempotent)" "$SHARDED" capture remove --pg "$PG_URL"
check_eq "no trigger, function or schema left" "0 0 0" \
  "$(psql_q "select (select count(*) from pg_trigger where tgname like 'sharded_capture%') || ' ' ||
                    (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                     where n.nspname = 'sharded_capture') || ' ' ||
                    (select count(*) from pg_namespace where nspname = 'sharded_capture')")"
check "the application's writes work without capture" psql_q 'update app_bench set n = n + 1'

for n in a b; do
  MNT=${NODE_MNT[$n]} DAEMON_PID=${NODE_PID[$n]}
  check "node $n unmounts cleanly" unmount_sharded
done
finish

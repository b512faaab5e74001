#!/usr/bin/env bash
# Two nodes, one block: two daemons (own data directories, own mount points, node=na and
# node=nb) share one Redis and one PostgreSQL and both hold block both-1. Both relays XADD to
# sharded:{both-1}:ops and both apply threads read it in consumer group "sharded", so a node
# applies the other's writes too; PostgreSQL's sharded_applied (block, origin) keeps each
# write once and each origin in order.
#
# How it is checked (nodes_writer.py, nodes_check.py):
#   - a writer per node writes {"n": K*1000000 + v} (v up by one per write) alternately to
#     the node's own records and to 4 records both nodes write, logging a write only after
#     close() returned 0, outside the mount; a trigger logs every row PostgreSQL receives with
#     its transaction id. Per node: nothing lost (each own record ends on its last
#     acknowledged value, each transaction shows the last acknowledged write of the run it
#     applied), nothing twice, nothing reordered (a record never goes back to a lower value of
#     the node); a shared record ends on one node's last acknowledged value.
#   - both nodes' outboxes drain within 15 s (a node learns that the other applied its
#     writes, rather than waiting for its 30 s re-send);
#   - kill -9 of node B while both write, then a restart: still nothing lost;
#   - node B started again with node A's writes in its consumer's pending list reads them
#     (with nothing of its own to send), so node A does not wait for the 60 s takeover;
#   - the periodic cleanup of node A (cleanup=1) keeps node B's stream of a block A does not
#     hold while B's entries wait in it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib.sh"

setup_tmp
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

declare -A NODE_MNT NODE_DATA NODE_PID
# mount_node NAME: node NAME's daemon on $T/mnt-NAME, data $T/data-NAME
mount_node() {
  MNT=$T/mnt-$1 DATA=$T/data-$1 mount_sharded "node=n$1,cleanup=1"
  NODE_MNT[$1]=$MNT NODE_DATA[$1]=$DATA NODE_PID[$1]=$DAEMON_PID
}
mount_node a
mount_node b
for n in a b; do mkdir "${NODE_MNT[$n]}/both-1"; done

pending() { timeout 5 awk '$1 == "pending" {print $2}' "${NODE_MNT[$1]}/$2/sync-status"; }
drained() { [[ $(pending a both-1) == 0 && $(pending b both-1) == 0 ]]; }
now_us() { echo "${EPOCHREALTIME/./}"; }

# writer NODE K [options]: nodes_writer.py in the background, its pid in WPID[NODE]
declare -A WPID
writer() {
  local n=$1 k=$2
  shift 2
  python3 "$HERE/nodes_writer.py" "${NODE_MNT[$n]}" "$T/acks-$n" --node "$k" --block both-1 \
    "$@" >>"$T/writer-$n.out" 2>&1 &
  WPID[$n]=$!
  track_pid "${WPID[$n]}"
}

# drain NAME: both outboxes empty within 15 s
drain() {
  local start ms=-1
  start=$(now_us)
  wait_for 16 drained && ms=$((($(now_us) - start) / 1000))
  echo "# drain after $1: $ms ms (pending a=$(pending a both-1) b=$(pending b both-1))"
  check "$1: both outboxes drain within 15 s ($ms ms; -1: not drained)" \
    test "$ms" -ge 0 -a "$ms" -le 15000
}

verify() {
  local out line bad=0 k v
  psql_q 'copy (select seq, txid, id, n from counter_log order by seq) to stdout' >"$T/log.tsv"
  psql_q 'copy (select id, n from "Counter") to stdout' >"$T/final.tsv"
  out=$(python3 "$HERE/nodes_check.py" "$T/log.tsv" "$T/final.tsv" "$T"/acks-*)
  line=$(head -n 1 <<<"$out")
  for k in lost duplicated reordered unknown shared; do
    v=$(sed -n "s/.* $k=\([0-9]*\).*/\1/p" <<<"$line")
    [[ $v == 0 ]] || bad=1
  done
  if ((bad == 0)); then
    _pass "$1: every acknowledged write of each node once and in order ($line)"
  else
    _fail "$1: every acknowledged write of each node once and in order" "$line" \
      "$(tail -n +2 <<<"$out" | head -n 20)"
  fi
}

# 1. both nodes write at full speed, to their own and to the same records
writer a 1 --count 300
writer b 2 --count 300
wait "${WPID[a]}" || true
wait "${WPID[b]}" || true
echo "# writers: a $(tail -n 1 "$T/writer-a.out"), b $(tail -n 1 "$T/writer-b.out")"
# counted by acknowledgement: a writer that died early leaves no F line either
check_eq "both writers: every write acknowledged (300 each)" "300 300" \
  "$(grep -c '^A' "$T/acks-a") $(grep -c '^A' "$T/acks-b")"
drain "concurrent writes"
verify "concurrent writes"

# 2. kill -9 of node B while both write, and a restart on its data directory
rm -f "$T/stop"
writer a 1 --stop-file "$T/stop"
writer b 2 --stop-on-error
sleep 1.5
kill -KILL "${NODE_PID[b]}"
wait "${WPID[b]}" || true
force_unmount "${NODE_MNT[b]}" || true
echo "# killed node b after $(grep -c '^A' "$T/acks-b") acknowledged writes"
mount_node b
writer b 2 --count 100
wait "${WPID[b]}"
touch "$T/stop"
wait "${WPID[a]}"
drain "kill -9 of node b and a restart"
verify "kill -9 of node b and a restart"

# 3. node B stops while entries of node A are in its consumer's pending list (as when it is
# killed right after reading them): started again, it reads that list, though it has nothing
# of its own to send, rather than leave node A waiting for the 60 s takeover or its 30 s
# re-send. To put them there: a lock holds node A's apply thread inside PostgreSQL while its
# relay adds five more writes, which a client takes as consumer nb.
MNT=${NODE_MNT[b]} DAEMON_PID=${NODE_PID[b]}
check "node b unmounts" unmount_sharded
psql_q 'begin; lock table "Counter" in exclusive mode; select pg_sleep(3); commit' >/dev/null &
LOCK_PID=$!
sleep 0.5
echo '{"n":1900001}' >"${NODE_MNT[a]}/both-1/Counter/1901.json"
sleep 0.5
for i in 2 3 4 5 6; do echo "{\"n\":190000$i}" >"${NODE_MNT[a]}/both-1/Counter/190$i.json"; done
sleep 0.5
redis_cli XREADGROUP GROUP sharded nb COUNT 100 STREAMS 'sharded:{both-1}:ops' '>' >/dev/null
held=$(redis_cli XPENDING 'sharded:{both-1}:ops' sharded - + 100 nb | grep -c '^nb$' || true)
check "node b's consumer holds node a's writes ($held)" test "$held" -ge 1
wait "$LOCK_PID"
mount_node b
drain "node b restarted holding node a's writes"
a_applied() { [[ $(psql_q 'select count(*) from "Counter" where id between 1901 and 1906') == 6 ]]; }
check "node a's six writes are in PostgreSQL" a_applied

# 4. node A's periodic cleanup keeps node B's stream of a block A does not hold: B's writes
# wait in it while a lock holds PostgreSQL's table
mkdir "${NODE_MNT[b]}/only-b"
psql_q 'begin; lock table "Counter" in exclusive mode; select pg_sleep(4); commit' >/dev/null &
LOCK_PID=$!
sleep 0.5
for i in 1 2 3; do echo "{\"n\":$((3000000 + i))}" >"${NODE_MNT[b]}/only-b/Counter/$((3000 + i)).json"; done
sleep 3   # node A's cleanup runs every second
check_eq "node a's cleanup keeps node b's stream while it holds entries" 1 \
  "$(redis_cli EXISTS 'sharded:{only-b}:ops')"
wait "$LOCK_PID"
only_b_applied() { [[ $(psql_q 'select count(*) from "Counter" where id between 3001 and 3003') == 3 ]]; }
check "node b's writes to only-b reach PostgreSQL" wait_for 15 only_b_applied

for n in a b; do
  MNT=${NODE_MNT[$n]} DAEMON_PID=${NODE_PID[$n]}
  check "node $n unmounts cleanly" unmount_sharded
done
finish

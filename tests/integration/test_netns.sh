#!/usr/bin/env bash
# Three nodes, three hosts: PostgreSQL and Redis in the root network namespace, bound to the
# address of a bridge of their own (10.77.X.1, X from the test's pid); each of three daemons
# (node=na, nb, nc) in a network namespace of its own that reaches them over a veth pair on
# that bridge (10.77.X.11-13) and has no other route: the traffic stays inside. The daemons
# and writers run under `nsenter --net` (not `ip netns exec`, which also unshares the mount
# namespace: the FUSE mounts would be invisible here).
#
# All three hold block all-1; a writer per node writes at full speed to the node's own
# records and to records all write, logging a write only after close() returned 0
# (nodes_writer.py); a trigger logs every row PostgreSQL receives; nodes_check.py proves per
# node: nothing lost, nothing applied twice, nothing reordered. Phases, each checked so:
#   1. kill -9 of node C mid-stream and a restart;
#   2. node B cut off from both servers for 10 s (its veth down) while all write: its
#      writes queue in its outbox, `sharded status --nodes` shows it silent, then all
#      converge;
#   3. PostgreSQL restarted while all write;
#   4. node C dies for good while its writes to a block only it holds are in Redis (in its
#      consumer's pending list and unread, a lock keeping every node from applying them):
#      the other nodes, idle and without that block, apply them within 10 s of the kill;
# and at the end every node reads exactly what PostgreSQL holds, without an invalidate: the
# others' writes reached it through change capture (`sharded capture install`).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib.sh"

NODES=(a b c)
NET=10.77.$(($$ % 200 + 20))
BR=shb$$
declare -A NS NODE_IP NODE_MNT NODE_PID WPID K=([a]=1 [b]=2 [c]=3)
for i in "${!NODES[@]}"; do
  n=${NODES[$i]}
  NS[$n]=shn$$$n NODE_IP[$n]=$NET.$((11 + i))
done

net_cleanup() {
  local n
  for n in "${NODES[@]}"; do ip netns del "${NS[$n]}" 2>/dev/null || true; done
  ip link del "$BR" 2>/dev/null || true
}
on_exit() {
  local rc=$?
  set +e
  (exit "$rc")
  cleanup   # unmounts and stops the daemons first: they need no network to go
  net_cleanup
  return "$rc"
}

setup_tmp
trap on_exit EXIT
# a hung mount must not hang the suite: the TERM trap cleans up
(sleep 240 && kill -TERM $$) >/dev/null 2>&1 &
track_pid $!

# the wire: a bridge in the root namespace, a veth per node
ip link add "$BR" type bridge || die "cannot create a bridge (needs CAP_NET_ADMIN)"
ip addr add "$NET.1/24" dev "$BR"
ip link set "$BR" up
for n in "${NODES[@]}"; do
  ip netns add "${NS[$n]}"
  ip link add "shv$$$n" type veth peer name "shp$$$n"
  ip link set "shv$$$n" master "$BR" up
  ip link set "shp$$$n" netns "${NS[$n]}"
  ip -n "${NS[$n]}" addr add "${NODE_IP[$n]}/24" dev "shp$$$n"
  ip -n "${NS[$n]}" link set "shp$$$n" up
  ip -n "${NS[$n]}" link set lo up
done

PG_LISTEN="127.0.0.1,$NET.1"   # restart_postgres starts it so again
start_postgres
echo "host all all $NET.0/24 trust" >>"$T/pg/pg_hba.conf"
psql_q 'select pg_reload_conf()' >/dev/null
REDIS_BIND="127.0.0.1 $NET.1" start_redis
redis_cli CONFIG SET protected-mode no >/dev/null   # no password: the bridge is ours alone
load_sample_schema
psql_q 'create table "Counter" (id bigint primary key, n bigint not null);
        create table counter_log (seq bigserial primary key, txid bigint not null, id bigint,
                                  n bigint);
        create function log_counter() returns trigger language plpgsql as
          $$ begin insert into counter_log(txid, id, n) values (txid_current(), new.id, new.n);
                   return new; end $$;
        create trigger counter_log after insert or update on "Counter"
          for each row execute function log_counter();
        -- the shared records exist: a create of one record by two nodes at once is refused
        -- (a create is never merged), which is not what this test is about
        insert into "Counter" select g, 0 from generate_series(1, 4) g;' >/dev/null
NODE_PG="postgresql://postgres@$NET.1:$PGPORT/sharded_test"
# change capture: every node hears of the rows the others' syncs change
require "sharded capture install" "$SHARDED_BUILD_DIR/sharded" capture install --pg "$PG_URL"
NODE_REDIS="redis://$NET.1:$REDIS_PORT"

reach() {
  [[ $(nsenter --net="/run/netns/${NS[$1]}" -- redis-cli -h "$NET.1" -p "$REDIS_PORT" PING) == PONG ]]
}
require "node a's namespace reaches Redis on the bridge" reach a
only_bridge() { ! ip -n "${NS[$1]}" route show | grep -qv "^$NET.0/24 "; }
require "node a's namespace has no route but the bridge's subnet" only_bridge a

# mount_node N: node N's daemon in its namespace, on $T/mnt-N with data $T/data-N
mount_node() {
  local bin=$T/bin-$1
  mkdir -p "$bin"
  printf '#!/bin/sh\nexec nsenter --net=/run/netns/%s -- %q "$@"\n' "${NS[$1]}" \
    "$SHARDED_BUILD_DIR/mount.sharded" >"$bin/mount.sharded"
  chmod 755 "$bin/mount.sharded"
  PG_URL=$NODE_PG REDIS_URL=$NODE_REDIS SHARDED_BUILD_DIR=$bin MNT=$T/mnt-$1 DATA=$T/data-$1 \
    mount_sharded "node=n$1"
  NODE_MNT[$1]=$MNT NODE_PID[$1]=$DAEMON_PID
}
for n in "${NODES[@]}"; do mount_node "$n"; done
for n in "${NODES[@]}"; do mkdir "${NODE_MNT[$n]}/all-1"; done

# writer N [options]: node N's writer, in its namespace, in the background
writer() {
  local n=$1
  shift
  nsenter --net="/run/netns/${NS[$n]}" -- python3 "$HERE/nodes_writer.py" "${NODE_MNT[$n]}" \
    "$T/acks-$n" --node "${K[$n]}" --block all-1 "$@" >>"$T/writer-$n.out" 2>&1 &
  WPID[$n]=$!
  track_pid "${WPID[$n]}"
}
# all_write [N]: every node's writer until all_stop; node N's stops at its first failure
all_write() {
  local n
  rm -f "$T/stop"
  for n in "${NODES[@]}"; do
    writer "$n" --stop-file "$T/stop" ${1:+$([[ $n == "$1" ]] && echo --stop-on-error)}
  done
}
all_stop() { touch "$T/stop"; for n in "${NODES[@]}"; do wait "${WPID[$n]}" || true; done; }
acked() { grep -c '^A' "$T/acks-$1" 2>/dev/null || echo 0; }

pending() { timeout 5 awk '$1 == "pending" {print $2}' "${NODE_MNT[$1]}/all-1/sync-status"; }
drained() { local n; for n in "${NODES[@]}"; do [[ $(pending "$n") == 0 ]] || return 1; done; }
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
drain() {
  local start ms=-1
  start=$(now_ms)
  wait_for 20 drained && ms=$(($(now_ms) - start))
  echo "# drain after $1: $ms ms (pending a=$(pending a) b=$(pending b) c=$(pending c))"
  check "$1: every outbox drains within 20 s ($ms ms; -1: not drained)" test "$ms" -ge 0
}

verify() {
  local out line bad=0 k v
  psql_q 'copy (select seq, txid, id, n from counter_log order by seq) to stdout' >"$T/log.tsv"
  psql_q 'copy (select id, n from "Counter") to stdout' >"$T/final.tsv"
  out=$(python3 "$HERE/nodes_check.py" --per-node "$T/log.tsv" "$T/final.tsv" "$T"/acks-*)
  line=$(head -n 1 <<<"$out")
  grep '^node ' <<<"$out" | sed "s/^/# $1: /"
  for k in lost duplicated reordered unknown shared; do
    v=$(sed -n "s/.* $k=\([0-9]*\).*/\1/p" <<<"$line")
    [[ $v == 0 ]] || bad=1
  done
  if ((bad == 0)); then
    _pass "$1: every acknowledged write of each node once and in order ($line)"
  else
    _fail "$1: every acknowledged write of each node once and in order" "$line" \
      "$(grep '^#' <<<"$out" | head -n 20)"
  fi
}

# 1. all write; kill -9 of node C mid-stream, and a restart
all_write c
sleep 2
kill -KILL "${NODE_PID[c]}"
wait "${WPID[c]}" || true
force_unmount "${NODE_MNT[c]}" || true
echo "# killed node c after $(acked c) acknowledged writes"
mount_node c
writer c --stop-file "$T/stop"
sleep 1.5
all_stop
echo "# acknowledged: a=$(acked a) b=$(acked b) c=$(acked c)"
drain "kill -9 of node c and a restart"
verify "kill -9 of node c and a restart"

# 2. node B cut off from both servers for 10 s while all write
status_nodes() { "$SHARDED_BUILD_DIR/sharded" --redis "$REDIS_URL" status --nodes --json; }
b_silent() { [[ $(status_nodes | jq -r '.[] | select(.node == "nb") | .state') == silent ]]; }
all_write
sleep 1
before=$(acked b)
ip -n "${NS[b]}" link set "shp$$b" down
check "sharded status --nodes shows node b silent while cut off" wait_for 9 b_silent
sleep 10
ip -n "${NS[b]}" link set "shp$$b" up
check "node b acknowledged writes while cut off ($(($(acked b) - before)) by now)" \
  test "$(acked b)" -gt "$before"
sleep 1
all_stop
echo "# acknowledged: a=$(acked a) b=$(acked b) c=$(acked c)"
drain "node b cut off for 10 s"
verify "node b cut off for 10 s"
alive3() { [[ $(status_nodes | jq '[.[] | select(.state == "alive")] | length') == 3 ]]; }
check "sharded status --nodes: three nodes alive again" wait_for 5 alive3
check "the metrics count three live nodes" \
  grep -qx 'sharded_nodes_alive 3' "${NODE_MNT[a]}/metrics"
status_table() {
  local out
  out=$("$SHARDED_BUILD_DIR/sharded" --data "$T/data-a" --redis "$REDIS_URL" status)
  if grep -Eq '^block +pending' <<<"$out" &&
    grep -Eq '^node +host +pid +version +started +state +pending$' <<<"$out" &&
    [[ $(grep -Ec '^n[abc] .* alive +[0-9]+$' <<<"$out") == 3 ]]; then
    return 0
  fi
  echo "$out"
  return 1
}
check "sharded status lists the blocks, then the three nodes alive" status_table

# 3. PostgreSQL restarted while all write
all_write
sleep 1
restart_postgres fast
sleep 2
all_stop
echo "# acknowledged: a=$(acked a) b=$(acked b) c=$(acked c)"
drain "postgresql restarted"
verify "postgresql restarted"

# 4. node C dies for good with writes in Redis. A lock keeps every node from applying them:
# C's apply thread reads the first and waits inside PostgreSQL; the next four stay unread.
mkdir "${NODE_MNT[c]}/only-c"
psql_q 'begin; lock table "Counter" in exclusive mode; select pg_sleep(3); commit' >/dev/null &
LOCK_PID=$!
sleep 0.5
echo '{"n":9000001}' >"${NODE_MNT[c]}/only-c/Counter/9001.json"
sleep 0.5
for i in 2 3 4 5; do echo "{\"n\":900000$i}" >"${NODE_MNT[c]}/only-c/Counter/900$i.json"; done
in_stream() { (($(redis_cli XLEN 'sharded:{only-c}:ops') >= 5)); }
require "node c's five writes are in Redis" wait_for 5 in_stream
kill -KILL "${NODE_PID[c]}"
killed=$(now_ms)
force_unmount "${NODE_MNT[c]}" || true
c_applied() { [[ $(psql_q 'select count(*) from "Counter" where id between 9001 and 9005') == 5 ]]; }
ms=-1
wait_for 15 c_applied && ms=$(($(now_ms) - killed))
echo "# node c's writes applied by the others $ms ms after its kill -9"
check "node c's five writes applied by the other nodes within 10 s of its death ($ms ms)" \
  test "$ms" -ge 0 -a "$ms" -le 10000
wait "$LOCK_PID" || true
check_eq "node c's five writes once each in PostgreSQL" 5 \
  "$(psql_q 'select count(*) from counter_log where id between 9001 and 9005')"

# the end: node C comes back; every outbox drains and every node reads what PostgreSQL holds
mount_node c
drain "the end"
verify "the end"
reads_pg() {
  local n=$1 id want got bad=0
  while IFS=$'\t' read -r id want; do
    ((id < 9000)) || continue
    got=$(jq -r .n "${NODE_MNT[$n]}/all-1/Counter/$id.json" 2>/dev/null || echo none)
    [[ $got == "$want" ]] || { echo "node $n: record $id reads $got, postgresql has $want"; bad=1; }
  done < <(psql_q 'copy (select id, n from "Counter") to stdout')
  return "$bad"
}
# no invalidate: the other nodes' writes reached every node through change capture
converges() { wait_for 5 reads_pg "$1" || reads_pg "$1"; }
for n in "${NODES[@]}"; do
  check "node $n reads exactly what PostgreSQL holds" converges "$n"
done
for n in "${NODES[@]}"; do
  MNT=${NODE_MNT[$n]} DAEMON_PID=${NODE_PID[$n]}
  check "node $n unmounts cleanly" unmount_sharded
done
left() { [[ $(redis_cli HLEN sharded:nodes) == 0 ]]; }
check "the registry is empty once every node stopped cleanly" wait_for 5 left
finish

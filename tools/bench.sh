#!/usr/bin/env bash
# tools/bench.sh: run sharded-bench (tools/bench.c) against a throwaway PostgreSQL, Redis and
# mount, the way docs/benchmarks.md was made. As root, from a clone:
#
#   tools/bench.sh                 # everything, about 10 minutes on 2 cores
#   BENCH_PHASES="main drain" tools/bench.sh
#
# Phases (BENCH_PHASES, default all, in this order):
#   main        write update read readthrough writers ls, one mount
#   drain       create BENCH_DRAIN records, stop PostgreSQL, rewrite them all, start it, time
#               the drain
#   roundtrips  FUSE requests per operation, counted in a mount's -o debug output
#   memory      a fresh mount; BENCH_MEM_BLOCKS blocks holding BENCH_MEM_RECORDS records
#   remote      PostgreSQL in a network namespace behind a veth pair, 0/5/20 ms of delay
#   capture     `sharded capture install`, two more mounts (nodes bench-a and bench-b, one
#               Redis database of their own): a write on one until the other shows it, an
#               UPDATE over libpq until both show it (visibility, BENCH_VIS_N samples each); the
#               application's own UPDATEs/s with capture removed vs installed (capture-cost)
#
# Knobs: BENCH_N (1000 operations per scenario), BENCH_DRAIN (20000), BENCH_LS (100000),
# BENCH_MEM_BLOCKS (10000), BENCH_MEM_RECORDS (1000000), BENCH_REMOTE_N (200),
# BENCH_DELAYS ("0 5 20"), BENCH_VIS_N (200), BENCH_RATE_S (3 s per writes/s figure),
# BENCH_ROUNDS (2 removed/installed alternations), BENCH_PG_FSYNC (on: PostgreSQL as deployed; the integration tests
# run it with fsync=off), BENCH_OUT (also write the output there), SHARDED_BUILD_DIR
# (default build-bench, configured as Release and built if mount.sharded or sharded-bench is
# missing). The result lines start with RESULT; a summary table ends the output.
set -euo pipefail

SHARDED_SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${SHARDED_BUILD_DIR:=$SHARDED_SOURCE_DIR/build-bench}"
: "${BENCH_PHASES:=main drain roundtrips memory remote capture}"
: "${BENCH_N:=1000}" "${BENCH_DRAIN:=20000}" "${BENCH_LS:=100000}"
: "${BENCH_MEM_BLOCKS:=10000}" "${BENCH_MEM_RECORDS:=1000000}"
: "${BENCH_REMOTE_N:=200}" "${BENCH_DELAYS:=0 5 20}" "${BENCH_PG_FSYNC:=on}"
: "${BENCH_VIS_N:=200}" "${BENCH_RATE_S:=3}" "${BENCH_ROUNDS:=2}"
export SHARDED_SOURCE_DIR SHARDED_BUILD_DIR

if [[ -n ${BENCH_OUT:-} ]]; then
  exec > >(tee "$BENCH_OUT") 2>&1
fi

BENCH=$SHARDED_BUILD_DIR/sharded-bench
if [[ ! -x $BENCH || ! -x $SHARDED_BUILD_DIR/mount.sharded || ! -x $SHARDED_BUILD_DIR/sharded ]]; then
  echo "# building $SHARDED_BUILD_DIR (Release)" >&2
  cmake -S "$SHARDED_SOURCE_DIR" -B "$SHARDED_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$SHARDED_BUILD_DIR" -j"$(nproc)" --target mount.sharded sharded sharded-bench >/dev/null
fi

# shellcheck source=../tests/integration/lib.sh
source "$SHARDED_SOURCE_DIR/tests/integration/lib.sh"

# lib.sh runs PostgreSQL with fsync=off for speed; a baseline should be PostgreSQL as deployed.
_pg_start() {
  local extra="-c fsync=off -c full_page_writes=off"
  [[ $BENCH_PG_FSYNC == on ]] && extra=""
  pg_as_postgres "$PGBIN/pg_ctl" -D "$T/pg" -l "$T/postgres.log" -w -t 30 -s \
    -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $T/pg $extra" \
    start </dev/null >/dev/null 2>&1 || {
    show_log "$T/postgres.log"
    die "postgres did not start on 127.0.0.1:$PGPORT"
  }
  PG_STARTED=1
}

has_phase() { [[ " $BENCH_PHASES " == *" $1 "* ]]; }

RESULTS=()
# bench ARGS...: run sharded-bench, show its output, keep its RESULT lines
bench() {
  local out rc=0
  out=$("$BENCH" "$@" 2>&1) || rc=$?
  printf '%s\n' "$out"
  while IFS= read -r line; do RESULTS+=("${line#RESULT }"); done < <(grep '^RESULT ' <<<"$out")
  ((rc == 0)) || die "sharded-bench $* failed with status $rc"
}

# ---------------------------------------------------------------------------------------------
# Network namespaces of our own (remote phase); removed on every exit path

NS_APP="" NS_DB="" PGR_DIR="" PGR_PORT=5432
bench_cleanup() {
  local rc=$?
  set +e
  if [[ -n $PGR_DIR && -f $PGR_DIR/postmaster.pid ]]; then
    timeout 30 runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGR_DIR" -m immediate -w -t 20 -s \
      stop </dev/null >/dev/null 2>&1
  fi
  [[ -n $NS_APP ]] && ip netns del "$NS_APP" 2>/dev/null
  [[ -n $NS_DB ]] && ip netns del "$NS_DB" 2>/dev/null
  (exit "$rc")
  cleanup
}

# kv LINE KEY: the value of KEY=... in a RESULT line
kv() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<" $1"; }
result() {
  local r
  for r in "${RESULTS[@]}"; do [[ ${r%% *} == "$1" ]] && { printf '%s\n' "$r"; return; }; done
}

# ---------------------------------------------------------------------------------------------

setup_tmp
trap bench_cleanup EXIT
echo "# sharded-bench: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "# PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') fsync=$BENCH_PG_FSYNC, \
redis $(redis-server --version | awk '{print $3}' | cut -d= -f2), libfuse $(pkg-config --modversion fuse3)"
echo "# phases: $BENCH_PHASES; $(date -u '+%F %T UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
start_postgres
load_sample_schema
psql_q 'CREATE TABLE "BenchUser" (LIKE "User" INCLUDING ALL);
  CREATE TABLE "BenchTicket" (id bigserial PRIMARY KEY, email text NOT NULL, name text);
  CREATE TABLE "BenchBig" (id bigint PRIMARY KEY, email text NOT NULL, name text);
  CREATE TABLE "BenchMem" (id bigint PRIMARY KEY, blk text NOT NULL, name text);
  CREATE INDEX ON "BenchMem" (blk);
  CREATE TABLE "BenchApp" (id int PRIMARY KEY, n int NOT NULL);' >/dev/null
start_redis
cat >"$T/loaders" <<'EOF'
# tools/bench.sh: the ls scenario's 100,000 records, and the memory scenario's blocks
block big-{n}
    BenchBig where "id" > 0 and $n <> ''
block mem-{n}
    BenchMem where "blk" = $n
EOF
RUN=1
# mount_at NAME [OPTS]: another mount at $T/mnt-NAME with data in $T/data-NAME; back_to_main
# makes the main mount the current one again (MNT, DATA, DAEMON_PID as lib.sh uses them).
mount_at() {
  MNT=$T/mnt-$1 DATA=$T/data-$1
  mount_sharded "${2:-}"
}
back_to_main() { MNT=$MAIN_MNT DATA=$MAIN_DATA DAEMON_PID=$MAIN_PID; }
MAIN_MNT=$T/mnt MAIN_DATA=$T/data
MNT=$MAIN_MNT DATA=$MAIN_DATA
mount_sharded "loaders=$T/loaders"
MAIN_PID=$DAEMON_PID

if has_phase main; then
  bench --mount "$MNT" --pg "$PG_CONNINFO" --run $RUN --n "$BENCH_N" --ls-records "$BENCH_LS" \
    --scenario write update read readthrough writers ls nextid
  # the same reads on a mount without the page cache (every read asks the daemon, as before)
  # (other ids, blocks, node name and Redis database: the two daemons share nothing)
  SAVED_REDIS_URL=$REDIS_URL REDIS_URL=$REDIS_URL/14
  mount_at nocache "loaders=$T/loaders,page_cache=off,node=bench-nocache"
  REDIS_URL=$SAVED_REDIS_URL
  bench --mount "$MNT" --pg "$PG_CONNINFO" --run $((RUN + 1)) --n "$BENCH_N" --label nocache \
    --scenario read
  unmount_sharded || log "the page_cache=off mount did not stop cleanly"
  # cached reads with no FUSE request: -o records=ro (opens without a request)
  SAVED_REDIS_URL=$REDIS_URL REDIS_URL=$REDIS_URL/13
  mount_at ro "loaders=$T/loaders,records=ro,node=bench-ro"
  REDIS_URL=$SAVED_REDIS_URL
  bench --mount "$MNT" --pg "$PG_CONNINFO" --run $((RUN + 2)) --n "$BENCH_N" --label ro \
    --scenario readro
  unmount_sharded || log "the records=ro mount did not stop cleanly"
  back_to_main
fi

if has_phase drain; then
  # the records exist first, so that the queued writes are updates: a new record reads through
  # to PostgreSQL at lookup, which with PostgreSQL down costs a failed connection attempt per
  # write (see docs/benchmarks.md)
  bench --mount "$MNT" --pg "$PG_CONNINFO" --run $RUN --n "$BENCH_DRAIN" --scenario drain-prep
  echo "== drain: stopping PostgreSQL"
  stop_postgres fast
  bench --mount "$MNT" --pg "$PG_CONNINFO" --run $RUN --n "$BENCH_DRAIN" --time-limit 110 \
    --scenario drain-queue
  queued=$(kv "$(result drain-queue)" queued)   # fewer than BENCH_DRAIN if the time ran out
  "$BENCH" --mount "$MNT" --pg "$PG_CONNINFO" --run $RUN --n "$queued" --time-limit 110 \
    --scenario drain-wait >"$T/drain.out" 2>&1 &
  waiter=$!
  track_pid "$waiter"
  sleep 0.5          # the waiter is polling before PostgreSQL comes back
  echo "== drain: starting PostgreSQL"
  _pg_start
  rc=0
  wait "$waiter" || rc=$?
  cat "$T/drain.out"
  while IFS= read -r line; do RESULTS+=("${line#RESULT }"); done < <(grep '^RESULT ' "$T/drain.out")
  ((rc == 0)) || die "drain-wait failed with status $rc"
fi

# FUSE requests per operation: a second mount with -o debug, 20 of each operation done by
# `sharded-bench io`, the scenarios' own open (O_CREAT|O_TRUNC to write) + write or read + close.
if has_phase roundtrips; then
  echo "== roundtrips: FUSE requests per operation (mount with -o debug, 20 operations each)"
  mount_at dbg debug
  DBG_MNT=$MNT DBG_LOG=$T/daemon.log
  mkdir "$DBG_MNT/rt"
  psql_q "INSERT INTO \"User\" (id, email, name) SELECT g, 'rt' || g || '@example.com', 'rt'
          FROM generate_series(900000001, 900000100) g" >/dev/null
  doc() { printf '{"id":%d,"email":"rt%d@example.com","name":"%s"}\n' "$1" "$1" "$2"; }
  doc 800000000 warm >"$DBG_MNT/rt/User/800000000.json"   # the directories are looked up
  count_ops() {   # count_ops NAME FUNCTION: run FUNCTION, count the requests it caused
    local name=$1 before after
    before=$(stat -c %s "$DBG_LOG")
    "$2"
    sleep 0.2
    after=$(stat -c %s "$DBG_LOG")
    printf '%-28s' "$name"
    tail -c +"$((before + 1))" "$DBG_LOG" | head -c "$((after - before))" |
      sed -n 's/.*opcode: \([A-Z_]*\) .*/\1/p' | sort | uniq -c | sort -rn |
      awk '{n += $1; s = s sprintf(" %s %.2f", $2, $1 / 20)} END {printf "%5.2f requests/op:%s\n", n / 20, s}'
  }
  wr() { "$BENCH" io write "$DBG_MNT/rt/User/$1.json" "$(doc "$1" "$2")"; }
  rd() { "$BENCH" io read "$DBG_MNT/rt/User/$1.json"; }
  op_write_new() { local i; for ((i = 1; i <= 20; i++)); do wr $((800000000 + i)) new; done; }
  op_write_upd() { local i; for ((i = 1; i <= 20; i++)); do wr $((800000000 + i)) upd; done; }
  op_read_cached() { local i; for ((i = 1; i <= 20; i++)); do rd $((800000000 + i)); done; }
  op_read_through() { local i; for ((i = 1; i <= 20; i++)); do rd $((900000000 + i)); done; }
  count_ops "write (new record)" op_write_new
  count_ops "write (existing record)" op_write_upd
  count_ops "read (cached, 2nd read)" op_read_cached
  count_ops "read (not yet cached)" op_read_through
  sleep 1.2   # past the 1 s entry/attr timeouts
  count_ops "read (cached, after 1.2 s)" op_read_cached
  unmount_sharded || log "the debug mount did not stop cleanly"
  back_to_main
fi

if has_phase memory; then
  mount_at mem "loaders=$T/loaders"
  echo "# memory: daemon pid $DAEMON_PID, open files limit $(awk '/Max open files/ {print $4}' /proc/$DAEMON_PID/limits)"
  bench --mount "$MNT" --pg "$PG_CONNINFO" --run $RUN --mem-blocks "$BENCH_MEM_BLOCKS" \
    --mem-records "$BENCH_MEM_RECORDS" --pid "$DAEMON_PID" --time-limit 110 --scenario memory
  unmount_sharded || log "the memory mount did not stop cleanly"
  back_to_main
fi

# A remote PostgreSQL: its own instance in network namespace NS_DB, joined by a veth pair to
# NS_APP; both namespaces and their private addresses exist only for this run. The kernel here
# has no netem (CONFIG_NET_SCH_NETEM), so the delay comes from sharded-bench's proxy: it
# listens on 127.0.0.1, connects from inside NS_APP, and holds each client-to-server chunk for
# the delay (one delay per round trip, as netem on one end of the link).
if has_phase remote; then
  echo "== remote: PostgreSQL in a network namespace, delays: $BENCH_DELAYS ms"
  if ! command -v ip >/dev/null; then
    echo "remote: skipped: no 'ip' (apt-get install -y iproute2)"
  else
    NS_APP=shbench-app-$$ NS_DB=shbench-db-$$
    sub=$((RANDOM % 250 + 1))
    A_IP=10.213.$sub.1 DB_IP=10.213.$sub.2
    if ! { ip netns add "$NS_APP" && ip netns add "$NS_DB" &&
           ip -n "$NS_APP" link add veth-app type veth peer name veth-db netns "$NS_DB" &&
           ip -n "$NS_APP" addr add "$A_IP/30" dev veth-app &&
           ip -n "$NS_DB" addr add "$DB_IP/30" dev veth-db &&
           ip -n "$NS_APP" link set veth-app up && ip -n "$NS_DB" link set veth-db up &&
           ip -n "$NS_APP" link set lo up && ip -n "$NS_DB" link set lo up; }; then
      echo "remote: skipped: cannot create network namespaces and a veth pair here"
    else
      if ip netns exec "$NS_APP" tc qdisc add dev veth-app root netem delay 1ms 2>/dev/null; then
        ip netns exec "$NS_APP" tc qdisc del dev veth-app root
        echo "# netem is available; the delay still comes from the proxy, for one code path"
      else
        echo "# tc netem is not available (kernel without CONFIG_NET_SCH_NETEM): the delay comes from sharded-bench's proxy"
      fi
      PGR_DIR=$T/pgr
      install -d -o postgres -g postgres -m 700 "$PGR_DIR"
      install -o postgres -g postgres -m 600 /dev/null "$T/pgr.log"
      pg_as_postgres "$PGBIN/initdb" -D "$PGR_DIR" -A trust -U postgres -E UTF8 --locale=C \
        --no-sync >"$T/initdb-r.log" 2>&1 || die "initdb of the remote PostgreSQL failed"
      echo "host all postgres $A_IP/32 trust" >>"$PGR_DIR/pg_hba.conf"
      extra="-c fsync=off -c full_page_writes=off"
      [[ $BENCH_PG_FSYNC == on ]] && extra=""
      # nsenter --net, not 'ip netns exec': that also gives the server a mount namespace of its
      # own, a copy holding every FUSE mount of this run, which then outlive their unmount here
      nsenter --net="/run/netns/$NS_DB" runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGR_DIR" -l "$T/pgr.log" \
        -w -t 30 -s -o "-p $PGR_PORT -c listen_addresses=$DB_IP -k $PGR_DIR $extra" start \
        </dev/null >/dev/null 2>&1 || { show_log "$T/pgr.log"; die "remote postgres did not start"; }
      rpsql() { "$PGBIN/psql" -h "$PGR_DIR" -p $PGR_PORT -U postgres -qtAX -v ON_ERROR_STOP=1 "$@" </dev/null; }
      rpsql -d postgres -c "create database sharded_test" >/dev/null
      rpsql -d sharded_test -f "$SHARDED_SOURCE_DIR/tools/sample-schema.sql" >/dev/null
      rpsql -d sharded_test -c 'CREATE TABLE "BenchUser" (LIKE "User" INCLUDING ALL);
        CREATE TABLE "BenchTicket" (id bigserial PRIMARY KEY, email text NOT NULL, name text)' >/dev/null
      SAVED_PG_URL=$PG_URL SAVED_REDIS_URL=$REDIS_URL
      db=0
      for d in $BENCH_DELAYS; do
        db=$((db + 1))
        port=$(free_port)
        "$BENCH" proxy "$port" "$DB_IP" $PGR_PORT "$d" "/run/netns/$NS_APP" 2>>"$T/proxy.log" &
        track_pid $!
        wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" || die "the proxy did not listen"
        # each mount its own Redis database, so no daemon applies another's streams
        PG_URL="postgresql://postgres@127.0.0.1:$port/sharded_test" REDIS_URL="$SAVED_REDIS_URL/$db"
        mount_at "r$d"
        PG_URL=$SAVED_PG_URL REDIS_URL=$SAVED_REDIS_URL
        bench --mount "$MNT" --pg "host=127.0.0.1 port=$port user=postgres dbname=sharded_test" \
          --run $RUN --n "$BENCH_REMOTE_N" --warmup 20 --label "${d}ms" \
          --scenario write update read readthrough nextid
        unmount_sharded || log "the remote mount did not stop cleanly"
        if [[ $d == "${BENCH_DELAYS##* }" ]]; then   # the largest delay: new records, local=User
          PG_URL="postgresql://postgres@127.0.0.1:$port/sharded_test" REDIS_URL="$SAVED_REDIS_URL/$((db + 8))"
          mount_at "r${d}l" "local=User"
          PG_URL=$SAVED_PG_URL REDIS_URL=$SAVED_REDIS_URL
          bench --mount "$MNT" --pg "host=127.0.0.1 port=$port user=postgres dbname=sharded_test" \
            --run $RUN --n "$BENCH_REMOTE_N" --warmup 20 --label "${d}ms-local" --scenario write
          unmount_sharded || log "the remote local=User mount did not stop cleanly"
        fi
      done
      back_to_main
    fi
  fi
fi

# Change capture: two nodes (their own Redis database, shared by the two) hold one block.
# Capture is installed before they mount (a node without it looks again only every 10 s).
if has_phase capture; then
  echo "== capture: two nodes, change capture installed"
  "$SHARDED_BUILD_DIR/sharded" capture install --pg "$PG_URL" >/dev/null
  SAVED_REDIS_URL=$REDIS_URL REDIS_URL=$REDIS_URL/13
  mount_at capa "node=bench-a"
  CAPA_MNT=$MNT CAPA_PID=$DAEMON_PID
  mount_at capb "node=bench-b"
  CAPB_MNT=$MNT CAPB_PID=$DAEMON_PID
  REDIS_URL=$SAVED_REDIS_URL
  bench --mount "$CAPA_MNT" --mount2 "$CAPB_MNT" --pg "$PG_CONNINFO" --run $RUN --n "$BENCH_VIS_N" \
    --sharded "$SHARDED_BUILD_DIR/sharded" --rate-seconds "$BENCH_RATE_S" --rounds "$BENCH_ROUNDS" \
    --scenario visibility capture-cost
  "$SHARDED_BUILD_DIR/sharded" capture remove --pg "$PG_URL" >/dev/null
  MNT=$CAPB_MNT DAEMON_PID=$CAPB_PID
  unmount_sharded || log "node bench-b did not stop cleanly"
  MNT=$CAPA_MNT DAEMON_PID=$CAPA_PID
  unmount_sharded || log "node bench-a did not stop cleanly"
  back_to_main
fi

# ---------------------------------------------------------------------------------------------
echo
echo "== summary (median latencies; ratio = mount / libpq)"
for name in write update read read@nocache readthrough nextid; do
  r=$(result $name) || true
  [[ -n $r ]] || continue
  printf '%-12s mount %8s us  libpq %8s us  ratio %6s  %5s FUSE requests/op  %s %s\n' "$name" \
    "$(kv "$r" mount_median_us)" "$(kv "$r" libpq_median_us)" "$(kv "$r" ratio)" \
    "$(kv "$r" fuse_requests_per_op)" "$(kv "$r" goal)" "$(grep -o 'MET\|NOT-MET' <<<"$r" | tail -n 1)"
done
r=$(result writers) || true
[[ -n $r ]] && printf '%-12s mount %8s/s   libpq %8s/s\n' writers "$(kv "$r" mount_writes_s)" "$(kv "$r" libpq_writes_s)"
r=$(result ls) || true
[[ -n $r ]] && printf '%-12s load %s s, ls median %s ms (goal < 1000 ms)\n' ls "$(kv "$r" load_s)" "$(kv "$r" ls_median_ms)"
r=$(result drain) || true
[[ -n $r ]] && printf '%-12s first %s s, all %s s, %s rows/s vs batch %s rows/s: ratio %s (%s against the upsert over existing rows)\n' drain \
  "$(kv "$r" first_s)" "$(kv "$r" all_s)" "$(kv "$r" drain_rows_s)" "$(kv "$r" batch_rows_s)" "$(kv "$r" ratio)" "$(kv "$r" ratio_update)"
r=$(result memory) || true
[[ -n $r ]] && printf '%-12s %s blocks, %s records: VmRSS %s MiB (goal < 64)\n' memory \
  "$(kv "$r" blocks)" "$(kv "$r" records)" "$(kv "$r" rss_mib)"
r=$(result visibility) || true
[[ -n $r ]] && printf '%-12s cross-node p50 %s ms p99 %s ms (not seen %s); direct UPDATE p50 %s ms p99 %s ms (not seen %s) %s %s\n' \
  visibility "$(kv "$r" cross_p50_ms)" "$(kv "$r" cross_p99_ms)" "$(kv "$r" cross_lost)" \
  "$(kv "$r" direct_p50_ms)" "$(kv "$r" direct_p99_ms)" "$(kv "$r" direct_lost)" "$(kv "$r" goal)" \
  "$(grep -o 'MET\|NOT-MET' <<<"$r" | tail -n 1)"
r=$(result capture-cost) || true
[[ -n $r ]] && printf '%-12s writes/s with/without capture: 1 client %s, 4 clients %s; bulk UPDATE of %s rows %s -> %s ms (ratio %s)\n' \
  capture "$(kv "$r" ratio_1c)" "$(kv "$r" ratio_4c)" "$(kv "$r" bulk_rows)" "$(kv "$r" off_bulk_ms)" \
  "$(kv "$r" on_bulk_ms)" "$(kv "$r" ratio_bulk)"
for d in $BENCH_DELAYS; do
  for name in write update read readthrough nextid write@${d}ms-local; do
    [[ $name == *@* ]] || name=$name@${d}ms
    r=$(result "$name") || true
    [[ -n $r ]] || continue
    printf '%-20s mount %8s us  libpq %8s us  speedup %6s\n' "$name" \
      "$(kv "$r" mount_median_us)" "$(kv "$r" libpq_median_us)" "$(kv "$r" speedup)"
  done
done
back_to_main
unmount_sharded || log "the main mount did not stop cleanly"
echo "# done $(date -u '+%T UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"

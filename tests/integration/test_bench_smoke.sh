#!/usr/bin/env bash
# The benchmark keeps working: sharded-bench (tools/bench.c) runs every scenario with a few
# dozen operations against a real mount and exits 0 with each scenario's RESULT line. Speed is
# never checked here; docs/benchmarks.md holds the figures.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

BENCH=$SHARDED_BUILD_DIR/sharded-bench
[[ -x $BENCH ]] || die "no $BENCH: build first"

setup_tmp
start_postgres
load_sample_schema
psql_q 'CREATE TABLE "BenchUser" (LIKE "User" INCLUDING ALL);
  CREATE TABLE "BenchTicket" (id bigserial PRIMARY KEY, email text NOT NULL, name text);
  CREATE TABLE "BenchBig" (id bigint PRIMARY KEY, email text NOT NULL, name text);
  CREATE TABLE "BenchMem" (id bigint PRIMARY KEY, blk text NOT NULL, name text);
  CREATE INDEX ON "BenchMem" (blk);' >/dev/null
start_redis
cat >"$T/loaders" <<'EOF'
block big-{n}
    BenchBig where "id" > 0 and $n <> ''
block mem-{n}
    BenchMem where "blk" = $n
EOF
mount_sharded "loaders=$T/loaders"

# run_to FILE CMD...: CMD's output into FILE, at most 120 s
run_to() {
  local f=$1
  shift
  timeout 120 "$@" >"$f" 2>&1
}

# has_results FILE NAME...: FILE holds a RESULT line for every NAME
has_results() {
  local f=$1 name
  shift
  for name in "$@"; do
    grep -q "^RESULT $name " "$f" || { echo "no RESULT line for $name"; return 1; }
  done
}

check_eq "--help exits 0" 0 "$("$BENCH" --help >/dev/null 2>&1; echo $?)"
check_eq "no --mount is a usage error" 2 "$("$BENCH" --pg x >/dev/null 2>&1; echo $?)"
check_eq "an unknown scenario is a usage error" 2 \
  "$("$BENCH" --mount "$MNT" --pg x --scenario nope >/dev/null 2>&1; echo $?)"
check_eq "a bad --n is a usage error" 2 "$("$BENCH" --mount "$MNT" --pg x --n -3 >/dev/null 2>&1; echo $?)"

B=("$BENCH" --mount "$MNT" --pg "$PG_CONNINFO" --run 7)
check "write update read readthrough writers ls run" \
  run_to "$T/main.out" "${B[@]}" --n 30 --warmup 5 --ls-records 300 \
  --scenario write update read readthrough writers ls
check "every scenario printed its RESULT line" \
  has_results "$T/main.out" write update read readthrough writers ls
check "nextid runs" run_to "$T/nextid.out" "${B[@]}" --n 30 --warmup 5 --scenario nextid
check "nextid printed its RESULT line" has_results "$T/nextid.out" nextid
check "the scenarios count FUSE requests per operation" \
  grep -q 'RESULT read .*fuse_requests_per_op=[0-9]' "$T/main.out"

# sync drain: queue with PostgreSQL stopped, time the drain once it is back
stop_postgres fast
check "drain-queue runs with PostgreSQL stopped" \
  run_to "$T/queue.out" "${B[@]}" --n 40 --scenario drain-queue
timeout 60 "${B[@]}" --n 40 --time-limit 25 --scenario drain-wait >"$T/wait.out" 2>&1 &
waiter=$!
track_pid "$waiter"
sleep 0.3
_pg_start
wait "$waiter"
check_eq "drain-wait exits 0" 0 "$?"
check "drain-queue and drain-wait printed their RESULT lines" \
  bash -c "$(declare -f has_results); has_results '$T/queue.out' drain-queue && has_results '$T/wait.out' drain"
check "all 40 drained rows landed" grep -q 'RESULT drain rows=40 landed=40 ' "$T/wait.out"

check "memory runs" run_to "$T/mem.out" "${B[@]}" --mem-blocks 4 --mem-records 80 \
  --pid "$DAEMON_PID" --scenario memory
check "memory printed its RESULT line" has_results "$T/mem.out" memory

# the delaying proxy (the remote scenario's fallback for netem), here on loopback
PORT=$(free_port)
"$BENCH" proxy "$PORT" 127.0.0.1 "$PGPORT" 2 2>"$T/proxy.log" &
track_pid $!
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT"
check "a scenario through the delaying proxy" \
  run_to "$T/proxy.out" "$BENCH" --mount "$MNT" --pg "host=127.0.0.1 port=$PORT user=postgres dbname=sharded_test" \
  --run 8 --n 10 --warmup 2 --label 2ms --scenario read
check "its RESULT line is labelled" has_results "$T/proxy.out" 'read@2ms'
check "the proxy added its delay to the libpq select (median >= 2 ms)" \
  awk '/^RESULT read@2ms/ { for (i = 1; i <= NF; i++) if ($i ~ /^libpq_median_us=/) { split($i, a, "="); ok = a[2] >= 2000 } } END { exit !ok }' "$T/proxy.out"

for f in main queue wait mem proxy; do
  ((CHECKS_FAILED)) && show_log "$T/$f.out" 40
done
check "unmount" unmount_sharded
finish

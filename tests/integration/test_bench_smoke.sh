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
  CREATE INDEX ON "BenchMem" (blk);
  CREATE TABLE "BenchApp" (id int PRIMARY KEY, n int NOT NULL);' >/dev/null
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
# readro on a second mount whose records are read-only: reads with no FUSE request
SAVED_MNT=$MNT SAVED_DATA=$DATA SAVED_PID=$DAEMON_PID
MNT=$T/mnt-ro DATA=$T/data-ro mount_sharded "records=ro,node=smoke-ro"
check "readro runs on a records=ro mount" \
  run_to "$T/ro.out" "$BENCH" --mount "$MNT" --pg "$PG_CONNINFO" --run 8 --n 30 --warmup 5 \
  --scenario readro
check "readro printed its RESULT line, with no FUSE request per read" \
  grep -q '^RESULT readro .*fuse_requests_per_op=0.00' "$T/ro.out"
unmount_sharded
MNT=$SAVED_MNT DATA=$SAVED_DATA DAEMON_PID=$SAVED_PID

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

# change capture: two more nodes (one Redis database of their own) mounted after the install;
# a few samples of visibility, one short round of capture-cost
# field FILE NAME KEY: KEY=... of FILE's RESULT NAME line
field() { sed -n "s/^RESULT $2 .* $3=\([^ ]*\).*/\1/p" "$1"; }
positive() { awk -v v="$1" 'BEGIN { exit !(v + 0 > 0) }'; }
MAIN_MNT=$MNT MAIN_PID=$DAEMON_PID
check "sharded capture install" "$SHARDED_BUILD_DIR/sharded" capture install --pg "$PG_URL"
SAVED_REDIS_URL=$REDIS_URL REDIS_URL=$REDIS_URL/13
MNT=$T/mnt-a DATA=$T/data-a mount_sharded "node=smoke-a"
A_MNT=$MNT A_PID=$DAEMON_PID
MNT=$T/mnt-b DATA=$T/data-b mount_sharded "node=smoke-b"
B_MNT=$MNT B_PID=$DAEMON_PID
REDIS_URL=$SAVED_REDIS_URL
check "visibility and capture-cost run" \
  run_to "$T/cap.out" "$BENCH" --mount "$A_MNT" --mount2 "$B_MNT" --pg "$PG_CONNINFO" --run 9 \
  --n 5 --warmup 1 --rate-seconds 1 --rounds 1 --bulk-rows 500 --scenario visibility capture-cost
check "visibility and capture-cost printed their RESULT lines" \
  has_results "$T/cap.out" visibility capture-cost
check_eq "every visibility sample was seen (cross, direct on A, direct on B)" "0 0 0" \
  "$(field "$T/cap.out" visibility cross_lost) $(field "$T/cap.out" visibility direct_lost) $(field "$T/cap.out" visibility direct_b_lost)"
for k in cross_p50_ms cross_p99_ms direct_p50_ms direct_b_p99_ms; do
  check "visibility $k is a positive number ($(field "$T/cap.out" visibility $k))" \
    positive "$(field "$T/cap.out" visibility $k)"
done
# the last direct sample (warm-up 1 + 5) is the record's value on node B
check "node B shows the last UPDATE made over libpq" \
  grep -q ', direct-5, ' "$B_MNT/b9-vis/User/$((9 * 100000000 + 6 * 10000000)).json"
for k in off_1c_writes_s on_1c_writes_s off_4c_writes_s on_4c_writes_s off_bulk_ms on_bulk_ms; do
  check "capture-cost $k is a positive number ($(field "$T/cap.out" capture-cost $k))" \
    positive "$(field "$T/cap.out" capture-cost $k)"
done
check "capture-cost left capture installed (its last round)" \
  test "$(psql_q "select count(*) from pg_trigger where tgname like 'sharded_capture%'")" -gt 0
MNT=$B_MNT DAEMON_PID=$B_PID
check "node B unmounts" unmount_sharded
MNT=$A_MNT DAEMON_PID=$A_PID
check "node A unmounts" unmount_sharded
MNT=$MAIN_MNT DAEMON_PID=$MAIN_PID

for f in main queue wait mem proxy cap; do
  ((CHECKS_FAILED)) && show_log "$T/$f.out" 40
done
check "unmount" unmount_sharded
finish

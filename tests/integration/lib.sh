# Harness for sharded's integration tests: sourced by every tests/integration/test_*.sh.
#
# Each test gets a private temporary directory $T holding a throwaway PostgreSQL ($T/pg, run as
# the postgres user), a redis-server ($T/redis), the FUSE mount point ($T/mnt) and the block
# files ($T/data), all on free loopback ports. A trap tears everything down on any exit (a
# failed check, set -e, INT, TERM), with timeouts so that cleanup never hangs. Only SIGKILL of
# the test itself leaves things behind.
#
# Typical test:
#   source "$(dirname "$0")/lib.sh"
#   setup_tmp; start_postgres; load_sample_schema; start_redis; mount_sharded
#   check "mkdir creates a block" mkdir "$MNT/user-1"
#   check_eq "name" "Ada Lovelace" "$(jq -r .name "$MNT/user-1/User/1.json")"
#   finish
#
# Environment: SHARDED_BUILD_DIR (default <repo>/build-test), SHARDED_SOURCE_DIR (default the
# repo root), KEEP_TMP=1 keeps $T after the test, CHECK_TIMEOUT (default 30) bounds each
# external command run by check and wait_for so that a hung mount cannot hang the test.

: "${SHARDED_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${SHARDED_BUILD_DIR:=$SHARDED_SOURCE_DIR/build-test}"
: "${CHECK_TIMEOUT:=30}"
export SHARDED_SOURCE_DIR SHARDED_BUILD_DIR

if [[ -z ${PGBIN:-} ]]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi

T=""
MNT=""
DATA=""
DAEMON_PID=""
DAEMON_LOG_OFFSET=0
DAEMON_PIDS=()   # every daemon started by mount_sharded, for cleanup
EXTRA_PIDS=()    # anything else a test started in the background: track_pid PID
REDIS_PID=""
REDIS_PORT=""
PG_STARTED=0
CHECKS_PASSED=0
CHECKS_FAILED=0
CHECK_RC=0
_CLEANED_UP=0

log() { printf '# %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Processes

# alive PID: the process exists and is not a zombie.
alive() {
  local pid=$1 state
  [[ -n $pid ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z ]]
}

# wait_exit PID SECONDS: wait until PID is gone; 1 if it is still alive afterwards.
wait_exit() {
  local pid=$1 deadline=$((${EPOCHREALTIME/./} + $2 * 1000000))
  while alive "$pid"; do
    ((${EPOCHREALTIME/./} < deadline)) || return 1
    sleep 0.05
  done
}

# stop_pid PID [GRACE_S]: TERM, then KILL after GRACE_S (default 5) seconds.
stop_pid() {
  local pid=$1 grace=${2:-5}
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  wait_exit "$pid" "$grace" && return 0
  log "pid $pid ignored TERM for ${grace}s: killing it"
  kill -KILL "$pid" 2>/dev/null
  wait_exit "$pid" 5
}

track_pid() { EXTRA_PIDS+=("$1"); }

# ---------------------------------------------------------------------------------------------
# Temporary directory and cleanup

setup_tmp() {
  ((EUID == 0)) || die "integration tests must run as root (FUSE mounts, runuser postgres)"
  T=$(mktemp -d "${TMPDIR:-/tmp}/sharded-test.XXXXXX")
  chmod 755 "$T"
  export T
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

# fuse_mounts_under DIR: FUSE mount points at or below DIR, deepest first. Reads mountinfo
# rather than stat()ing anything, so a hung daemon cannot hang us.
fuse_mounts_under() {
  awk -v d="$1" '$0 ~ / - fuse/ && ($5 == d || index($5, d "/") == 1) {print length($5), $5}' \
    /proc/self/mountinfo | sort -rn | cut -d' ' -f2-
}

is_mounted() { [[ -n $(fuse_mounts_under "$1" | grep -Fx -- "$1") ]]; }

# abort_fuse_connection DIR: the kernel's last resort for a daemon that does not answer.
abort_fuse_connection() {
  local minor
  minor=$(awk -v d="$1" '$5 == d {split($3, a, ":"); print a[2]}' /proc/self/mountinfo | tail -n 1)
  [[ -n $minor && -w /sys/fs/fuse/connections/$minor/abort ]] &&
    echo 1 >"/sys/fs/fuse/connections/$minor/abort" 2>/dev/null
  return 0
}

# force_unmount DIR: unmount whatever way works, never hanging.
force_unmount() {
  local m=$1
  is_mounted "$m" || return 0
  timeout 5 fusermount3 -u "$m" 2>/dev/null && ! is_mounted "$m" && return 0
  abort_fuse_connection "$m"
  timeout 5 fusermount3 -uz "$m" 2>/dev/null
  is_mounted "$m" && timeout 5 umount -l "$m" 2>/dev/null
  ! is_mounted "$m"
}

cleanup() {
  local rc=$?
  ((_CLEANED_UP)) && return
  _CLEANED_UP=1
  trap '' INT TERM HUP
  set +e
  [[ -n $T && -d $T ]] || return

  local m pid
  while read -r m; do
    [[ -n $m ]] && { force_unmount "$m" || log "cleanup: could not unmount $m"; }
  done < <(fuse_mounts_under "$T")
  for pid in "${DAEMON_PIDS[@]}" "${EXTRA_PIDS[@]}"; do
    stop_pid "$pid" 5
  done
  if ((rc != 0 || CHECKS_FAILED > 0)); then
    show_log "$T/daemon.log" 80
  fi
  stop_postgres immediate >/dev/null 2>&1
  stop_redis >/dev/null 2>&1

  if [[ -n ${KEEP_TMP:-} ]]; then
    log "KEEP_TMP set: leaving $T"
  elif [[ -n $(fuse_mounts_under "$T") ]]; then
    log "cleanup: $T still has a mount, not removing it"
  else
    rm -rf --one-file-system "$T"
  fi
}

show_log() {
  local f=$1 n=${2:-60}
  [[ -s $f ]] || return 0
  printf -- '--- %s (last %d lines) ---\n' "$f" "$n" >&2
  tail -n "$n" "$f" >&2
  printf -- '--- end of %s ---\n' "$f" >&2
}

# ---------------------------------------------------------------------------------------------
# Ports

# free_port: a TCP port on 127.0.0.1 that nothing listens on, below the ephemeral range.
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12000))
    if [[ -z $(ss -Htln "( sport = :$p )" 2>/dev/null) ]] &&
       ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "free_port: no free port found"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg_as_postgres() { runuser -u postgres -- "$@"; }

start_postgres() {
  [[ -n $T ]] || die "start_postgres: call setup_tmp first"
  [[ -x $PGBIN/initdb ]] || die "start_postgres: no PostgreSQL binaries in '${PGBIN:-/usr/lib/postgresql/*/bin}'"
  if [[ ! -f $T/pg/PG_VERSION ]]; then
    install -d -o postgres -g postgres -m 700 "$T/pg"
    install -o postgres -g postgres -m 600 /dev/null "$T/postgres.log"
    pg_as_postgres "$PGBIN/initdb" -D "$T/pg" -A trust -U postgres -E UTF8 --locale=C \
      --no-sync >"$T/initdb.log" 2>&1 || { show_log "$T/initdb.log"; die "initdb failed"; }
    PGPORT=$(free_port)
  fi
  _pg_start || return 1
  export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=sharded_test
  export PG_CONNINFO="host=127.0.0.1 port=$PGPORT user=postgres dbname=sharded_test"
  export PG_URL="postgresql://postgres@127.0.0.1:$PGPORT/sharded_test"
  if [[ -z $(PGDATABASE=postgres psql_q "select 1 from pg_database where datname = 'sharded_test'") ]]; then
    PGDATABASE=postgres psql_q "create database sharded_test" >/dev/null
  fi
}

_pg_start() {
  pg_as_postgres "$PGBIN/pg_ctl" -D "$T/pg" -l "$T/postgres.log" -w -t 30 -s \
    -o "-p $PGPORT -c listen_addresses=${PG_LISTEN:-127.0.0.1} -k $T/pg -c fsync=off -c full_page_writes=off" \
    start </dev/null >/dev/null 2>&1 || {
    show_log "$T/postgres.log"
    die "postgres did not start on 127.0.0.1:$PGPORT"
  }
  PG_STARTED=1
}

# stop_postgres [MODE]: MODE is smart, fast (default) or immediate.
stop_postgres() {
  local mode=${1:-fast}
  ((PG_STARTED)) || return 0
  if ! timeout 30 runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg" -m "$mode" -w -t 20 -s stop \
       </dev/null >/dev/null 2>&1; then
    local pid
    pid=$(head -n 1 "$T/pg/postmaster.pid" 2>/dev/null)
    # The postmaster's children notice its death and exit on their own.
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
  fi
  PG_STARTED=0
}

# restart_postgres [MODE]: stop (MODE as stop_postgres) and start again on the same port.
restart_postgres() {
  stop_postgres "${1:-fast}"
  _pg_start
}

psql_q() {
  "$PGBIN/psql" -tAX -v ON_ERROR_STOP=1 -c "$1" </dev/null
}

load_sample_schema() {
  "$PGBIN/psql" -qX -v ON_ERROR_STOP=1 -f "$SHARDED_SOURCE_DIR/tools/sample-schema.sql" \
    </dev/null >/dev/null || die "loading tools/sample-schema.sql failed"
}

# ---------------------------------------------------------------------------------------------
# Redis

# start_redis: a new redis-server on a free port, or on $REDIS_PORT again after stop_redis.
start_redis() {
  [[ -n $T ]] || die "start_redis: call setup_tmp first"
  mkdir -p "$T/redis"
  [[ -n ${REDIS_PORT:-} ]] || REDIS_PORT=$(free_port)
  # shellcheck disable=SC2086 # REDIS_BIND: addresses, one word each
  redis-server --bind ${REDIS_BIND:-127.0.0.1} --port "$REDIS_PORT" --dir "$T/redis" --daemonize no \
    --save '' --appendonly no --protected-mode yes --logfile "$T/redis/redis.log" \
    </dev/null >/dev/null 2>&1 &
  REDIS_PID=$!
  export REDIS_PORT REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  if ! wait_for 10 _redis_ping; then
    show_log "$T/redis/redis.log"
    die "redis-server did not answer PING on 127.0.0.1:$REDIS_PORT"
  fi
}

_redis_ping() { [[ $(redis_cli PING 2>/dev/null) == PONG ]]; }

stop_redis() {
  [[ -n $REDIS_PID ]] || return 0
  stop_pid "$REDIS_PID" 5
  REDIS_PID=""
}

# restart_redis: stop and start on the same port. Without persistence it comes back empty,
# having lost every stream and consumer group.
restart_redis() {
  stop_redis
  start_redis
}

redis_cli() { timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@" </dev/null; }

# ---------------------------------------------------------------------------------------------
# The mount

# mount_sharded [EXTRA_OPTS]: start the daemon in the foreground (-f) in the background of this
# shell and wait until it has mounted $MNT. Sets MNT, DATA, DAEMON_PID. The daemon's stdout and
# stderr go to $T/daemon.log. The PostgreSQL URI form keeps commas, spaces and '=' out of -o.
mount_sharded() {
  [[ -n $T ]] || die "mount_sharded: call setup_tmp first"
  [[ -x $SHARDED_BUILD_DIR/mount.sharded ]] || die "no $SHARDED_BUILD_DIR/mount.sharded: build first"
  [[ -c /dev/fuse ]] || die "/dev/fuse is missing"
  MNT=${MNT:-$T/mnt}
  DATA=${DATA:-$T/data}
  mkdir -p "$MNT" "$DATA"
  local opts="pg=$PG_URL,redis=$REDIS_URL,data=$DATA${1:+,$1}"
  DAEMON_LOG_OFFSET=$(stat -c %s "$T/daemon.log" 2>/dev/null || echo 0)
  echo "### $(date '+%T') mount.sharded -f -o $opts $MNT" >>"$T/daemon.log"
  "$SHARDED_BUILD_DIR/mount.sharded" -f -o "$opts" "$MNT" </dev/null >>"$T/daemon.log" 2>&1 &
  DAEMON_PID=$!
  DAEMON_PIDS+=("$DAEMON_PID")
  local deadline=$((${EPOCHREALTIME/./} + 15000000))
  until is_mounted "$MNT"; do
    if ! alive "$DAEMON_PID"; then
      local status=0
      wait "$DAEMON_PID" || status=$?
      show_log "$T/daemon.log"
      die "mount.sharded exited with status $status before mounting $MNT"
    fi
    if ((${EPOCHREALTIME/./} > deadline)); then
      stop_pid "$DAEMON_PID" 5
      show_log "$T/daemon.log"
      die "mount.sharded did not mount $MNT within 15 s"
    fi
    sleep 0.05
  done
  export MNT DATA DAEMON_PID
}

# unmount_sharded: fusermount3 -u, then wait (max 15 s) for the daemon to exit. Fails if it
# does not, if it exits non-zero, or if its log holds a sanitizer report.
unmount_sharded() {
  local i status=0
  for ((i = 0; i < 50; i++)); do   # EBUSY right after use is normal for a moment
    timeout 10 fusermount3 -u "$MNT" 2>/dev/null && break
    is_mounted "$MNT" || break
    sleep 0.1
  done
  if is_mounted "$MNT"; then
    timeout 10 fusermount3 -u "$MNT" || true
    log "unmount_sharded: $MNT is still mounted"
    return 1
  fi
  if [[ -n $DAEMON_PID ]]; then
    if ! wait_exit "$DAEMON_PID" 15; then
      log "unmount_sharded: mount.sharded (pid $DAEMON_PID) still running 15 s after unmount"
      stop_pid "$DAEMON_PID" 2
      show_log "$T/daemon.log"
      return 1
    fi
    wait "$DAEMON_PID" 2>/dev/null || status=$?
    DAEMON_PID=""
    if ((status != 0)); then
      log "unmount_sharded: mount.sharded exited with status $status"
      show_log "$T/daemon.log"
      return 1
    fi
  fi
  if sanitizer_report "$T/daemon.log" "${DAEMON_LOG_OFFSET:-0}" >/dev/null; then
    show_log "$T/daemon.log" 120
    log "unmount_sharded: sanitizer report in daemon.log"
    return 1
  fi
}

# sanitizer_report FILE [OFFSET]: prints the first ASan/UBSan/LSan report line in FILE from
# byte OFFSET on (default the whole file); fails if there is none.
sanitizer_report() {
  local line
  [[ -f $1 ]] || return 1
  line=$(tail -c +"$((${2:-0} + 1))" "$1" | grep -E \
    'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' |
    head -n 1) || true
  [[ -n $line ]] && printf '%s\n' "$line"
}

# ---------------------------------------------------------------------------------------------
# Waiting and checking

# _run CMD...: shell functions and builtins run as they are; external commands run under
# timeout so that a hung mount turns into a failure instead of a hung test.
_run() {
  case $(type -t "$1") in
    function | builtin | keyword) "$@" ;;
    *) timeout "${_RUN_TIMEOUT:-$CHECK_TIMEOUT}" "$@" ;;
  esac
}

# wait_for TIMEOUT_S CMD...: poll CMD every 0.1 s until it succeeds (0) or time runs out (1).
wait_for() {
  local limit=$1
  shift
  local deadline=$((${EPOCHREALTIME/./} + ${limit%.*} * 1000000))
  while true; do
    _RUN_TIMEOUT=$limit _run "$@" >/dev/null 2>&1 && return 0
    ((${EPOCHREALTIME/./} < deadline)) || return 1
    sleep 0.1
  done
}

_pass() {
  CHECKS_PASSED=$((CHECKS_PASSED + 1))
  printf 'ok - %s\n' "$1"
}

_fail() {
  CHECKS_FAILED=$((CHECKS_FAILED + 1))
  printf 'FAIL - %s\n' "$1"
  shift
  local line
  for line in "$@"; do printf '    %s\n' "$line"; done
}

# _capture CMD...: run CMD in this shell (so that it may change the harness's state, e.g.
# unmount_sharded), its output to a file; sets CHECK_RC and _OUT (the first 20 lines).
_capture() {
  local f
  if [[ -n $T && -d $T ]]; then f=$T/check.out; else f=$(mktemp); fi
  if _run "$@" >"$f" 2>&1; then CHECK_RC=0; else CHECK_RC=$?; fi
  _OUT=$(sed -n '1,20p' "$f")
  rm -f "$f"
}

# check NAME CMD...: run CMD; "ok - NAME" if it succeeds, else "FAIL - NAME" with the command,
# its status and its output. Always returns 0 so the test goes on; the status is in CHECK_RC.
check() {
  local name=$1
  shift
  _capture "$@"
  if ((CHECK_RC == 0)); then
    _pass "$name"
  else
    _fail "$name" "command: $(printf '%q ' "$@")" "status: $CHECK_RC${_OUT:+, output:}" \
      ${_OUT:+"$_OUT"}
  fi
  return 0
}

# check_fails NAME CMD...: the check passes when CMD fails (status non-zero, not a timeout).
check_fails() {
  local name=$1
  shift
  _capture "$@"
  if ((CHECK_RC != 0 && CHECK_RC != 124)); then
    _pass "$name"
    CHECK_RC=0
  else
    _fail "$name" "command: $(printf '%q ' "$@")" \
      "expected failure, got status $CHECK_RC${_OUT:+, output:}" ${_OUT:+"$_OUT"}
    CHECK_RC=1
  fi
  return 0
}

# check_eq NAME EXPECTED ACTUAL
check_eq() {
  if [[ $2 == "$3" ]]; then
    CHECK_RC=0
    _pass "$1"
  else
    CHECK_RC=1
    _fail "$1" "expected: $(printf '%q' "$2")" "actual:   $(printf '%q' "$3")"
  fi
  return 0
}

# require NAME CMD...: like check, but a failure ends the test (later steps depend on it).
require() {
  check "$@"
  ((CHECK_RC == 0)) || {
    echo "# stopping: later steps depend on \"$1\""
    finish
  }
}

# finish: print "N passed, N failed" and exit 1 if anything failed or nothing ran. A sanitizer
# report in the daemon's log is a failure too.
finish() {
  local report
  if [[ -n $T ]] && report=$(sanitizer_report "$T/daemon.log"); then
    _fail "no sanitizer report in daemon.log" "$report"
  fi
  printf '%d passed, %d failed\n' "$CHECKS_PASSED" "$CHECKS_FAILED"
  if ((CHECKS_FAILED > 0 || CHECKS_PASSED == 0)); then
    exit 1
  fi
  exit 0
}

# ---------------------------------------------------------------------------------------------
# A private network namespace for the daemon, and TCP proxies to cut its network
#
#   netns_create                  a network namespace $NETNS with its loopback up
#   mount_sharded_netns [OPTS]    mount_sharded, the daemon inside $NETNS
#   proxy_start NAME PORT         sharded-bench's proxy: inside $NETNS (if set) it listens on
#                                 127.0.0.1:PROXY_PORTS[NAME] and connects out of it, to
#                                 127.0.0.1:PORT where the servers run
#   proxy_blackhole / proxy_unblackhole NAME   SIGSTOP / SIGCONT the proxy
#   proxy_cut NAME                kill -9 the proxy (proxy_start NAME PORT brings it back)
#   netns_drop_port PORT / netns_undrop        drop every packet to or from PORT in $NETNS
# A test that uses them sets `trap cleanup_with_proxies EXIT` after setup_tmp.

NETNS=""
declare -A PROXY_PIDS=() PROXY_PORTS=() PROXY_TARGETS=()

netns_create() {
  NETNS=sharded-test-$$
  ip netns add "$NETNS" || die "ip netns add $NETNS failed (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
  ip netns exec "$NETNS" ip link set lo up || die "cannot bring up lo in $NETNS"
}

# in_netns CMD...: CMD in $NETNS (network namespace only: mounts stay visible), or here.
in_netns() {
  if [[ -n $NETNS ]]; then nsenter --net="/run/netns/$NETNS" -- "$@"; else "$@"; fi
}

mount_sharded_netns() {
  [[ -n $NETNS ]] || die "mount_sharded_netns: call netns_create first"
  local bin=$T/netns-bin
  mkdir -p "$bin"
  # nsenter execs the daemon (no fork without a pid namespace): DAEMON_PID is the daemon
  printf '#!/bin/sh\nexec nsenter --net=/run/netns/%s -- %q "$@"\n' "$NETNS" \
    "$SHARDED_BUILD_DIR/mount.sharded" >"$bin/mount.sharded"
  chmod 755 "$bin/mount.sharded"
  SHARDED_BUILD_DIR=$bin mount_sharded "$@"
}

# proxy_listening PORT: something listens on 127.0.0.1:PORT (in $NETNS if set).
proxy_listening() { [[ -n $(in_netns ss -Htln "( sport = :$1 )" 2>/dev/null) ]]; }

proxy_start() {
  local name=$1 target=$2 port=${PROXY_PORTS[$1]:-} pid
  local bench=$SHARDED_BUILD_DIR/sharded-bench
  [[ -x $bench ]] || die "no $bench: build first"
  [[ -n $port ]] || port=$(free_port)
  if [[ -n $NETNS ]]; then
    nsenter --net="/run/netns/$NETNS" -- "$bench" proxy "$port" 127.0.0.1 "$target" 0 \
      "/proc/$$/ns/net" </dev/null >>"$T/proxy-$name.log" 2>&1 &
  else
    "$bench" proxy "$port" 127.0.0.1 "$target" 0 </dev/null >>"$T/proxy-$name.log" 2>&1 &
  fi
  pid=$!
  track_pid "$pid"
  PROXY_PIDS[$name]=$pid PROXY_PORTS[$name]=$port PROXY_TARGETS[$name]=$target
  wait_for 10 proxy_listening "$port" || die "proxy $name did not listen on 127.0.0.1:$port"
}

# Stopped, the proxy answers nothing and resets nothing: the kernel still completes
# handshakes and takes data into socket buffers, but not a byte goes through.
proxy_blackhole() { kill -STOP "${PROXY_PIDS[$1]}"; }
proxy_unblackhole() { kill -CONT "${PROXY_PIDS[$1]}"; }

# Killed, the proxy's connections are closed (reset where data was unread) and new ones are
# refused until proxy_start NAME PORT runs again (on the same port).
proxy_cut() {
  local pid=${PROXY_PIDS[$1]}
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  PROXY_PIDS[$1]=""
  wait_for 10 proxy_gone "${PROXY_PORTS[$1]}"
}
proxy_gone() { ! proxy_listening "$1"; }

# netns_drop_port PORT: a real black hole, as a cut cable: every packet to or from PORT on
# $NETNS's loopback is dropped (nothing is answered, acknowledged or reset; TCP retransmits
# with growing intervals). netns_undrop lets them through again.
netns_drop_port() {
  [[ -n $NETNS ]] || die "netns_drop_port: call netns_create first"
  ip netns exec "$NETNS" sh -e -c "
    tc qdisc add dev lo root handle 1: htb default 1
    tc class add dev lo parent 1: classid 1:1 htb rate 10gbit
    tc class add dev lo parent 1: classid 1:2 htb rate 10gbit
    tc qdisc add dev lo parent 1:2 handle 20: blackhole
    tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip dport $1 0xffff flowid 1:2
    tc filter add dev lo parent 1: protocol ip prio 2 u32 match ip sport $1 0xffff flowid 1:2
  " >/dev/null 2>&1
}
netns_undrop() { ip netns exec "$NETNS" tc qdisc del dev lo root 2>/dev/null || true; }

# cleanup_with_proxies: the EXIT trap of a test using the above: continues stopped proxies (a
# stopped process ignores TERM), runs the usual cleanup with the exit status kept, then
# deletes $NETNS.
cleanup_with_proxies() {
  local rc=$? name
  set +e
  for name in "${!PROXY_PIDS[@]}"; do
    [[ -n ${PROXY_PIDS[$name]} ]] && kill -CONT "${PROXY_PIDS[$name]}" 2>/dev/null
  done
  (exit "$rc")
  cleanup
  [[ -n $NETNS ]] && ip netns del "$NETNS" 2>/dev/null
  return "$rc"
}

# help_ok PATTERN CMD...: CMD exits 0 and prints a line matching PATTERN (for --help).
help_ok() {
  local out rc=0
  out=$(timeout 10 "${@:2}" 2>/dev/null) || rc=$?
  ((rc == 0)) || { echo "exit status $rc"; return 1; }
  grep -q -- "$1" <<<"$out" || { echo "no line matching '$1' in: ${out:0:200}"; return 1; }
}

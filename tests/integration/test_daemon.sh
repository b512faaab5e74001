#!/usr/bin/env bash
# The daemon as a process: what it shows in ps and /proc/mounts, its debug output, and its
# refusal of bad options before anything is mounted.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

setup_tmp
start_postgres
start_redis
load_sample_schema
psql_q "alter user postgres password 'sekrit-pw'" >/dev/null
PG_URL="postgresql://postgres:sekrit-pw@127.0.0.1:$PGPORT/sharded_test"
mount_sharded "debug"

check "the password is not in the daemon's command line" \
  bash -c "! tr '\0' ' ' < /proc/$DAEMON_PID/cmdline | grep -q sekrit-pw"
check "the password's place is masked" grep -q 'postgres:\*\*\*' <(tr '\0' ' ' < "/proc/$DAEMON_PID/cmdline")
check_eq "/proc/mounts shows source and type" "sharded fuse.sharded" \
  "$(awk -v m="$MNT" '$2 == m {print $1, $3}' /proc/mounts)"
mkdir "$MNT/d1"
cat "$MNT/d1/User/1.json" >/dev/null
check "-o debug logs libfuse's requests" grep -q 'opcode: LOOKUP' "$T/daemon.log"
check "the password is never logged" bash -c "! grep -v '^###' '$T/daemon.log' | grep -q sekrit-pw"

bad() {  # bad NAME OPTIONS: the mount fails at once with one line and nothing mounted
  local out status=0
  mkdir -p "$T/m-$1"
  out=$(timeout 20 "$SHARDED_BUILD_DIR/mount.sharded" -f -o "$2" "$T/m-$1" 2>&1) || status=$?
  check "$1: refused with a non-zero exit" test "$status" -ne 0
  check_eq "$1: one line of explanation" 1 "$(grep -c . <<<"$out")"
  check "$1: nothing mounted" bash -c "! mountpoint -q '$T/m-$1'"
}
bad "bad ttl" "pg=$PG_URL,redis=$REDIS_URL,data=$T/d2,ttl=soon"
bad "bad sync" "pg=$PG_URL,redis=$REDIS_URL,data=$T/d2,sync=sometimes"
bad "bad max_doc" "pg=$PG_URL,redis=$REDIS_URL,data=$T/d2,max_doc=-1"
bad "unknown model" "pg=$PG_URL,redis=$REDIS_URL,data=$T/d2,models=User\\,Nope"
bad "bad redis url" "pg=$PG_URL,redis=http://x,data=$T/d2"
mkdir -p "$T/m3"
check "models=User exposes only User" bash -c "
  timeout 20 '$SHARDED_BUILD_DIR/mount.sharded' -o 'pg=$PG_URL,redis=$REDIS_URL,data=$T/d3,models=User' '$T/m3' &&
  mkdir '$T/m3/b' && ls '$T/m3/b' | grep -qx User && ! ls '$T/m3/b' | grep -qx Order;
  status=\$?; fusermount3 -u '$T/m3'; exit \$status"

if unmount_sharded; then _pass "clean unmount"; else _fail "clean unmount"; fi
finish
